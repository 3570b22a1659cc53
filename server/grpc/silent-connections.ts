/**
 * A connection that opens TCP and never sends HTTP/2's preface held its socket for good (grpc-js
 * turns the http2 server's timeout off): an open file descriptor each, for as long as the peer
 * likes, and enough of them refuse every new client. A connection whose client has not sent its
 * SETTINGS (the preface's frame) within SILENT_CONNECTION_MS (ServeOptions.silentConnectionMs) is
 * closed. A session watcher (http2-sessions.ts); over TLS the session starts after the handshake,
 * which Node times itself.
 */
import type { SessionWatcher } from "./http2-sessions";

/** How long a connection may stay silent before its first frame, by default. */
export const SILENT_CONNECTION_MS = 10_000;

/** The watcher that closes a session silent for `ms`. */
export function closeSilentConnections(ms: number): SessionWatcher {
  return (session) => {
    const timer = setTimeout(() => session.destroy(), ms).unref();
    session.once("remoteSettings", () => clearTimeout(timer));
    session.once("close", () => clearTimeout(timer));
  };
}
