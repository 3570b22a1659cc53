/**
 * grpc-js answers a call to a method no service has with UNIMPLEMENTED, "The server does not
 * implement the method <path>": the caller's path whole (a 60 000-character path came back in a
 * 60 KB grpc-message, and ~120 KB ones ended the connection instead) and not percent-encoded, so
 * `/tesseract.v1.Tesseract/%41pply` read back as a method that exists. Here the path is quoted and
 * clipped as this server quotes all caller text, and the message percent-encoded as grpc-js
 * encodes every other status. The Server's _respondWithError is wrapped per server (tested with raw
 * frames in test/hostile-requests.test.ts, so a grpc-js upgrade that moves it fails the tests).
 */
import type * as grpc from "@grpc/grpc-js";
import { quote } from "../../common/errors";

const UNIMPLEMENTED_PREFIX = "The server does not implement the method ";

type RespondWithError = (this: unknown, err: { code?: number; details?: string }, ...rest: unknown[]) => unknown;

/** Installs the quoting on `server`; false when this grpc-js has no _respondWithError to wrap. */
export function quoteUnknownMethods(server: grpc.Server): boolean {
  const internals = server as unknown as { _respondWithError?: RespondWithError };
  const original = internals._respondWithError;
  if (typeof original !== "function") return false;
  internals._respondWithError = function (err, ...rest) {
    const details = err?.details;
    if (typeof details !== "string" || !details.startsWith(UNIMPLEMENTED_PREFIX)) return original.call(this, err, ...rest);
    const path = details.slice(UNIMPLEMENTED_PREFIX.length);
    return original.call(this, { ...err, details: encodeURI(`this server has no method ${quote(path)}`) }, ...rest);
  };
  return true;
}
