/**
 * `serve`'s own messages: grpc-js's log lines go into the JSON log (at debug level) instead of onto
 * stderr ahead of the real error, and a port in use says what to do about it.
 */
import * as grpc from "@grpc/grpc-js";
import { format } from "node:util";
import type { Logger } from "pino";

/** grpc-js logs through console.error by default; its messages become debug records of `logger`. */
export function routeGrpcLogs(logger: Logger): void {
  const log = (...args: unknown[]) => logger.debug({ grpc: format(...args) }, "grpc-js");
  grpc.setLogger({ error: log, info: log, debug: log });
}

/** The ports serve listens on, by flag. */
export interface ServePorts {
  port: number;
  httpPort?: number;
  metricsPort?: number;
}

/**
 * A failed start, with the next step when it is a port in use: gRPC's, the REST API's or metrics'
 * (by the message's start, server.ts), and when another of these flags gave the same port, that.
 */
export function explainServeError(e: Error, host: string, ports: ServePorts): Error {
  if (!/EADDRINUSE/.test(e.message)) return e;
  const flags = { "--port": ports.port, "--http-port": ports.httpPort, "--metrics-port": ports.metricsPort };
  const flag = /^the REST API /.test(e.message) ? "--http-port" : /^metrics /.test(e.message) ? "--metrics-port" : "--port";
  const taken = flags[flag];
  // Listening on one of the server's own ports is no other server's doing.
  const twin = Object.entries(flags).find(([other, value]) => other !== flag && value === taken && taken !== 0)?.[0];
  if (twin !== undefined) return new Error(`${flag} and ${twin} both name ${host}:${taken}: gRPC, the REST API and metrics each need a port of their own (0 picks a free one)`, { cause: e });
  return new Error(`${host}:${taken} is already in use (another server?) — stop it, or choose another port with ${flag} (0 picks a free one)`, { cause: e });
}
