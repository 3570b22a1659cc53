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

/** A failed start, with the next step when it is a port in use (gRPC's, or the REST API's). */
export function explainServeError(e: Error, host: string, port: number, httpPort?: number): Error {
  if (!/EADDRINUSE/.test(e.message)) return e;
  const [taken, flag] = /REST API/.test(e.message) ? [httpPort, "--http-port"] : [port, "--port"];
  return new Error(`${host}:${taken} is already in use (another server?) — stop it, or choose another port with ${flag} (0 picks a free one)`, { cause: e });
}
