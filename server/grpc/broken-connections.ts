/**
 * A client that breaks an HTTP/2 rule (DATA on stream 0, a malformed SETTINGS…) is answered GOAWAY
 * PROTOCOL_ERROR by nghttp2, which then stops reading the connection; Node tells JavaScript nothing
 * and never closes the socket, even once the client has gone. Each such connection held a file
 * descriptor until the idle limit (60 s), or for good with a call on it that could never end: a
 * client opening a few hundred a second (bench/soak.ts opens 40) took every descriptor the process
 * has. A stopped session answers no PING, so every session is pinged (PINGs cost a frame; HTTP/2
 * stacks answer them themselves) every `ms` / 2 (`ms`: the silent-connection time, 10 s by default)
 * and destroyed when one goes unanswered that long with no call on it (closing an idle connection
 * costs a client only a reconnect), or 3 × `ms` with calls, so that a client whose event loop is
 * busy for a while keeps them. A session watcher (http2-sessions.ts), from the client's
 * SETTINGS on: before them, closeSilentConnections bounds the connection.
 */
import type * as http2 from "node:http2";
import type { SessionWatcher } from "./http2-sessions";

export function closeBrokenConnections(ms: number): SessionWatcher {
  const interval = ms / 2;
  return (session) => {
    let calls = 0;
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      calls++;
      stream.once("close", () => calls--);
    });
    let timer: NodeJS.Timeout | undefined;
    let pingSentAt: number | undefined; // set while a ping waits for its answer
    const ended = () => session.closed || session.destroyed;
    const probe = () => {
      if (ended()) return;
      if (pingSentAt === undefined) {
        pingSentAt = performance.now();
        try {
          session.ping(() => (pingSentAt = undefined)); // an error too: the session is ending
        } catch {
          return void session.destroy(); // Node refused the ping: the session is ending already
        }
        return void (timer = setTimeout(afterPendingInput(probe), interval).unref());
      }
      const unanswered = performance.now() - pingSentAt;
      const limit = calls === 0 ? interval : 3 * ms;
      if (unanswered >= limit) return void session.destroy();
      timer = setTimeout(afterPendingInput(probe), Math.min(interval, limit - unanswered)).unref();
    };
    session.once("remoteSettings", () => (timer = setTimeout(afterPendingInput(probe), ms / 10).unref()));
    session.once("close", () => clearTimeout(timer));
  };
}

/**
 * `probe` once this loop turn's pending input has been read: after the event loop was held (a long
 * apply inline), timers run before sockets are read, and an answer that had come during the hold
 * would be missed.
 */
function afterPendingInput(probe: () => void): () => void {
  return () => void setImmediate(probe);
}
