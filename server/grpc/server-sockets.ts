/**
 * Every socket of a server's ports, from its TCP connection on, so that closing the server ends them
 * all. grpc-js's shutdown ends the HTTP/2 sessions it knows of, and the REST server's closing the
 * HTTP connections; a socket that never became one outlived them: a TLS one whose handshake never
 * finished stayed open for Node's 2-minute handshake timeout, a plaintext gRPC one that sent no
 * preface (its session's end waits on the client) for the silent-connection time or, with a client
 * that keeps sending, for good.
 */
import type { Server, Socket } from "node:net";
import type * as grpc from "@grpc/grpc-js";
import { watchHttp2Servers } from "./http2-sessions";

export class ServerSockets {
  private readonly sockets = new Set<Socket>();

  /** Tracks the sockets of a grpc-js server's ports; false when this grpc-js has no createHttp2Server to wrap. */
  watch(server: grpc.Server): boolean {
    return watchHttp2Servers(server, (http2Server) => this.track(http2Server));
  }

  /** Tracks the sockets `server` accepts from now on. */
  track(server: Server): void {
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
  }

  /** Ends every socket at once (after the server's own shutdown had its chance to end them politely). */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}
