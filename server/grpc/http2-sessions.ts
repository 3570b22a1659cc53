/**
 * The http2 servers of a grpc-js server, for what this server watches on each connection
 * (stream-resets.ts, silent-connections.ts, server-sockets.ts). grpc-js has no hook for them: its
 * server's createHttp2Server is wrapped on the instance, before it binds, and each http2 server it
 * makes is handed to the watchers (the tests of each watcher fail without it, so a grpc-js upgrade
 * that moves the method fails them).
 */
import type * as http2 from "node:http2";
import type * as grpc from "@grpc/grpc-js";

export type SessionWatcher = (session: http2.ServerHttp2Session) => void;
export type Http2ServerWatcher = (http2Server: http2.Http2Server | http2.Http2SecureServer) => void;

/** Hands every http2 server `server` creates to `watchers`; false when this grpc-js has no createHttp2Server to wrap. */
export function watchHttp2Servers(server: grpc.Server, ...watchers: Http2ServerWatcher[]): boolean {
  const internals = server as unknown as { createHttp2Server?: (this: unknown, credentials: unknown) => http2.Http2Server };
  const create = internals.createHttp2Server;
  if (typeof create !== "function") return false;
  internals.createHttp2Server = function (credentials) {
    const http2Server = create.call(this, credentials);
    for (const watch of watchers) watch(http2Server);
    return http2Server;
  };
  return true;
}

/** Hands every session of `server` to `watchers`; false when this grpc-js has no createHttp2Server to wrap. */
export function watchHttp2Sessions(server: grpc.Server, ...watchers: SessionWatcher[]): boolean {
  return watchHttp2Servers(server, (http2Server) => {
    for (const watch of watchers) http2Server.on("session", watch);
  });
}
