/**
 * The one mapping from errors to gRPC statuses. A TesseractError carries its code and a message for
 * the caller; anything else is a bug: logged with its stack, answered INTERNAL with the request id.
 * Every status message leaves through `boundedDetails` (common/errors.ts): well-formed and short.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { boundedDetails, Code, isTesseractError } from "../../common/errors";
import type { Logger } from "../log";

export interface CallError {
  code: number;
  details: string;
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
