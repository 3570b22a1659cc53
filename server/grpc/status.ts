/**
 * The one mapping from errors to gRPC statuses. A TesseractError carries its code and a message meant
 * for the caller; anything else is a bug: logged with its stack, answered INTERNAL with the request id.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { Code, isTesseractError } from "../errors";
import type { Logger } from "../log";

export interface CallError {
  code: number;
  details: string;
}

export function toStatus(error: unknown, signal: AbortSignal, log: Logger, requestId: string): CallError {
  if (isTesseractError(error)) return { code: error.code, details: error.message };
  if (signal.aborted) {
    const reason = signal.reason;
    if (isTesseractError(reason)) return { code: reason.code, details: reason.message };
    return { code: Code.CANCELLED, details: "the call was cancelled" };
  }
  log.error({ err: error, request_id: requestId }, "unexpected error");
  return { code: status.INTERNAL, details: `internal error (request id ${requestId}); see the server log` };
}

export function asServiceError(e: CallError): Partial<ServiceError> {
  return { code: e.code, details: e.details, message: e.details };
}
