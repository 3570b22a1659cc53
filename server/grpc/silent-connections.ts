/**
 * A connection that opens TCP and never sends HTTP/2's preface held its socket for good (grpc-js
 * turns the http2 server's timeout off): an open file descriptor each, for as long as the peer
 * likes, and enough of them refuse every new client. A connection whose client has not sent its
 * SETTINGS (the preface's frame) within SILENT_CONNECTION_MS (ServeOptions.silentConnectionMs) is
 * closed. A session watcher (http2-sessions.ts); over TLS the session starts after the handshake,
 * which closeSilentHandshakes bounds likewise. A session closed gracefully with no call left ends
 * within the same time (destroyClosedSessions).
 */
import * as tls from "node:tls";
import type { Socket } from "node:net";
import type { Http2ServerWatcher, SessionWatcher } from "./http2-sessions";

/** How long a connection may stay silent before its first frame, by default. */
export const SILENT_CONNECTION_MS = 10_000;

/**
 * `close` once the timer has fired and this loop turn's pending input has been read: after the
 * event loop was held past `ms` (a long apply inline), timers run before sockets are read, and a
 * client that had spoken during the hold was dropped as silent.
 */
function afterPendingInput(close: () => void): () => void {
  return () => void setImmediate(close);
}

/** The watcher that closes a session silent for `ms`. */
export function closeSilentConnections(ms: number): SessionWatcher {
  return (session) => {
    let spoke = false;
    const timer = setTimeout(afterPendingInput(() => spoke || session.destroy()), ms).unref();
    session.once("remoteSettings", () => ((spoke = true), clearTimeout(timer)));
    session.once("close", () => clearTimeout(timer));
  };
}

/**
 * Over TLS, a connection whose handshake has not finished within `ms` is closed: Node gives a
 * handshake 2 minutes (grpc-js sets no handshakeTimeout), and a peer that sent nothing, or half a
 * ClientHello, held its socket that long. An http2 server watcher (http2-sessions.ts). Node pairs a
 * TCP socket with its TLS socket internally only: here they are paired by their remote address and
 * port, which no two open connections share.
 */
export function closeSilentHandshakes(ms: number): Http2ServerWatcher {
  return (server) => {
    if (!(server instanceof tls.Server)) return;
    const pending = new Map<string, NodeJS.Timeout>();
    const peer = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;
    const forget = (key: string, timer: NodeJS.Timeout) => {
      clearTimeout(timer);
      if (pending.get(key) === timer) pending.delete(key);
    };
    server.on("connection", (socket: Socket) => {
      const key = peer(socket);
      const timer = setTimeout(afterPendingInput(() => pending.get(key) === timer && (forget(key, timer), socket.destroy())), ms).unref();
      pending.set(key, timer);
      socket.once("close", () => forget(key, timer));
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      const key = peer(socket);
      const timer = pending.get(key);
      if (timer) forget(key, timer);
    });
  };
}

/**
 * The watcher that ends a session closed gracefully (its idle limit, its age, the shutdown) once no
 * call is left on it, `ms` after the close: Node counts a stream whose client began a header block
 * and never finished it as open, and the graceful close waited on it for good (the socket held, the
 * client gone or not). Calls are the streams grpc-js was handed; they finish first.
 */
export function destroyClosedSessions(ms: number): SessionWatcher {
  return (session) => {
    let calls = 0;
    session.on("stream", (stream) => {
      calls++;
      stream.once("close", () => calls--);
    });
    const close = session.close.bind(session);
    session.close = ((callback?: () => void) => {
      const timer = setTimeout(() => (calls === 0 ? session.destroy() : timer.refresh()), ms).unref();
      session.once("close", () => clearTimeout(timer));
      return close(callback);
    }) as typeof session.close;
  };
}
