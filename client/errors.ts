/**
 * The SDK's one error type. Every failed call rejects with a TesseractClientError carrying the gRPC
 * status code (a number, gRPC's own), its name and the server's details — like connect-es'
 * ConnectError. Problems found on the client side get the code the server would have used:
 * INVALID_ARGUMENT for inputs the SDK cannot encode, INTERNAL for a response it cannot decode,
 * DATA_LOSS for a row stream that is incomplete or inconsistent, CANCELLED for an aborted signal.
 */
import { Metadata, status } from "@grpc/grpc-js";
import { isTesseractError } from "../common/errors";

/** "INVALID_ARGUMENT" for 3, and so on; unknown numbers read "CODE_<n>". */
export function codeName(code: number): string {
  return status[code] ?? `CODE_${code}`;
}

export class TesseractClientError extends Error {
  override name = "TesseractClientError";
  /** "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", ... */
  readonly codeName: string;

  constructor(
    /** gRPC status code (grpc.status). */
    readonly code: number,
    /** The message from the server (or from the SDK), without the code. */
    readonly details: string,
    /** Trailing metadata of the failed call, when there was a call. */
    readonly metadata: Metadata = new Metadata(),
    options?: { cause?: unknown },
  ) {
    super(`${codeName(code)}: ${details}`, options);
    this.codeName = codeName(code);
  }
}

export function isTesseractClientError(e: unknown): e is TesseractClientError {
  return e instanceof TesseractClientError;
}

/** A grpc-js ServiceError (or anything carrying a numeric `code` and string `details`). */
function isStatusLike(e: unknown): e is { code: number; details: string; metadata?: unknown } {
  if (typeof e !== "object" || e === null) return false;
  const s = e as { code?: unknown; details?: unknown };
  return typeof s.code === "number" && Number.isInteger(s.code) && typeof s.details === "string";
}

/**
 * Anything thrown while making a call, as a TesseractClientError. A status from gRPC (or a server-side
 * TesseractError from the shared codec, whose `code` is also a gRPC number) keeps its code; any other
 * error gets `fallback`.
 */
export function toClientError(e: unknown, fallback: number = status.UNKNOWN): TesseractClientError {
  if (e instanceof TesseractClientError) return e;
  if (isStatusLike(e)) {
    const metadata = e.metadata instanceof Metadata ? e.metadata : undefined;
    // grpc-js ends a connection failure with an empty "Resolution note: ".
    return new TesseractClientError(e.code, e.details.replace(/\.?\s*Resolution note:\s*$/, ""), metadata, { cause: e });
  }
  // Thrown by the shared codec (e.g. a malformed tensor): its code is a gRPC number too.
  if (isTesseractError(e)) return new TesseractClientError(e.code, e.message, undefined, { cause: e });
  if (e instanceof Error && e.name === "AbortError") return new TesseractClientError(status.CANCELLED, e.message, undefined, { cause: e });
  return new TesseractClientError(fallback, e instanceof Error ? e.message : String(e), undefined, { cause: e });
}
