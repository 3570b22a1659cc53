/**
 * The one mapping from errors to gRPC statuses. A TesseractError carries its code and a message for
 * the caller; anything else is a bug: logged with its stack, answered INTERNAL with the request id.
 * Every status message leaves through `boundedDetails`: well-formed (grpc-js percent-encodes it with
 * encodeURI, which throws on a lone surrogate) and short (HTTP/2 stacks drop a connection over a
 * long header; gRPC C-core refuses more than 16 KiB).
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { Code, isTesseractError } from "../../common/errors";
import type { Logger } from "../log";

export interface CallError {
  code: number;
  details: string;
}

/** Most UTF-8 bytes of a status message: percent-encoded, at most three times as many. */
export const MAX_DETAILS_BYTES = 1024;
const CUT_MARK = "… (message cut)";

/** `details` with lone surrogates replaced and cut to MAX_DETAILS_BYTES of UTF-8. */
export function boundedDetails(details: string): string {
  let text = String(details).replace(/\p{Cs}/gu, "\uFFFD");
  if (Buffer.byteLength(text) <= MAX_DETAILS_BYTES) return text;
  // Cut by characters until the bytes fit; the cut may split a surrogate pair, so clean again.
  let keep = MAX_DETAILS_BYTES - Buffer.byteLength(CUT_MARK);
  do text = text.slice(0, keep).replace(/\p{Cs}/gu, "");
  while (Buffer.byteLength(text) + Buffer.byteLength(CUT_MARK) > MAX_DETAILS_BYTES && (keep = Math.floor(keep * 0.9)) > 0);
  return text + CUT_MARK;
}

export function internalError(requestId: string): CallError {
  return { code: status.INTERNAL, details: `internal error (request id ${requestId}); see the server log` };
}

export function toStatus(error: unknown, signal: AbortSignal, log: Logger, requestId: string): CallError {
  if (isTesseractError(error)) return { code: error.code, details: boundedDetails(error.message) };
  if (signal.aborted) {
    const reason = signal.reason;
    if (isTesseractError(reason)) return { code: reason.code, details: boundedDetails(reason.message) };
    return { code: Code.CANCELLED, details: "the call was cancelled" };
  }
  log.error({ err: error, request_id: requestId }, "unexpected error");
  return internalError(requestId);
}

export function asServiceError(e: CallError): Partial<ServiceError> {
  return { code: e.code, details: e.details, message: e.details };
}
