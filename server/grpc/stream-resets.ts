/**
 * HTTP/2's rapid-reset guard (CVE-2023-44487), nghttp2's inside Node: a connection that resets more
 * than 1000 streams at once, then more than 33 a second, is ended with GOAWAY INTERNAL_ERROR, and
 * Node's client then fails every call on it. Clients that cancel as they are meant to (breaking out
 * of a JacobianRows loop, short deadlines: each cancel is a RST_STREAM) crossed it after ~1000 calls
 * on one channel, and six unrelated Jacobians on it failed INTERNAL. Node 20 cannot configure the
 * guard, so this server keeps its own count of each connection's resets, by nghttp2's rule, and
 * before the guard would fire closes the connection gracefully (GOAWAY NO_ERROR): the calls on it
 * finish, nghttp2 counts no more resets on it, and the client opens a new connection for new calls
 * (a session watcher: http2-sessions.ts).
 */
import * as http2 from "node:http2";

/** nghttp2's guard: resets a connection may make at once, and per second after that. */
const RESET_BURST = 1000;
const RESET_RATE = 33;
/** A connection is closed once its resets leave this many of the guard's (its count is by the second). */
const RESETS_LEFT_AT_CLOSE = 250;

/** Streams closed before their status (the peer's cancels), in a bucket refilled as nghttp2's is. */
export function closeBeforeResetGuard(session: http2.ServerHttp2Session): void {
  let left = RESET_BURST;
  let at = performance.now();
  session.on("stream", (stream) =>
    stream.once("close", () => {
      // A gRPC call ends with its status (in trailers, or trailers-only headers): a stream closed
      // before it was reset (by the peer, mostly: its cancel), or its connection lost.
      if (statusSent(stream) || session.closed || session.destroyed) return;
      const now = performance.now();
      left = Math.min(RESET_BURST, left + ((now - at) / 1000) * RESET_RATE) - 1;
      at = now;
      if (left > RESETS_LEFT_AT_CLOSE) return;
      try {
        // As grpc-js closes a connection past its maximum age: every stream opened so far may finish.
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1, Buffer.from("many cancelled calls: reconnect"));
        session.close();
      } catch {
        session.destroy(); // the session was closing already
      }
    }),
  );
}

function statusSent(stream: http2.ServerHttp2Stream): boolean {
  const sent = stream as unknown as { sentTrailers?: http2.OutgoingHttpHeaders; sentHeaders?: http2.OutgoingHttpHeaders };
  return sent.sentTrailers?.["grpc-status"] !== undefined || sent.sentHeaders?.["grpc-status"] !== undefined;
}
