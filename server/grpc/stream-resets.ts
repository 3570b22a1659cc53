/**
 * Rapid reset (CVE-2023-44487). nghttp2's guard inside Node ends a connection that resets more than
 * 1000 streams at once, then more than 33 a second, with GOAWAY INTERNAL_ERROR, and Node's client then
 * fails every call on it. Clients that cancel as they are meant to (breaking out of a JacobianRows
 * loop, short deadlines: each cancel is a RST_STREAM) crossed it after ~1000 calls on one channel, and
 * six unrelated Jacobians on it failed INTERNAL. And each reset call is handled in full before its
 * reset is read: a client that wrote ~750 Describe calls, each reset at once, in one 64 KB read held the
 * event loop 0.5 s here (bench/rapid-reset.ts), before nghttp2 would even count them.
 *
 * Node 20 cannot configure the guard, so this server keeps its own count of each connection's
 * resets, by nghttp2's rule with a smaller burst: a connection's worth of streams
 * (MAX_CONCURRENT_STREAMS; a client cancelling every call it has at once stays within it). Past it,
 * the connection is closed gracefully (GOAWAY NO_ERROR): the calls on it finish, Node refuses the
 * streams it opens after, and the client opens a new connection for new calls (a session watcher:
 * http2-sessions.ts).
 */
import * as http2 from "node:http2";
import { MAX_CONCURRENT_STREAMS } from "../../common/transport-defaults";

/** Resets a connection may make at once; one more closes it. Far below nghttp2's 1000. */
const RESET_BURST = MAX_CONCURRENT_STREAMS;
/** Resets per second after the burst: nghttp2's rate, so that its guard never fires first. */
const RESET_RATE = 33;

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
      if (left >= 0) return;
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
