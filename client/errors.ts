/**
 * The SDK's one error type. Every failed call rejects with a TesseractClientError carrying the gRPC
 * status code (a number, gRPC's own), its name and the server's details — like connect-es'
 * ConnectError. Problems found on the client side get the code the server would have used:
 * INVALID_ARGUMENT for inputs the SDK cannot encode, INTERNAL for a response it cannot decode,
 * DATA_LOSS for a row stream that is incomplete or inconsistent, CANCELLED for an aborted signal.
 */
import { Metadata, status } from "@grpc/grpc-js";
import { isTesseractError } from "../common/errors";
import { urlAddressHint } from "./address";

/** "INVALID_ARGUMENT" for 3, and so on; unknown numbers read "CODE_<n>". */
export function codeName(code: number): string {
  // grpc-js' status is a TypeScript enum: status["INVALID_ARGUMENT"] is 3, and only integers name codes.
  const name = Number.isInteger(code) ? status[code] : undefined;
  return typeof name === "string" ? name : `CODE_${String(code)}`;
}

export class TesseractClientError extends Error {
  override name = "TesseractClientError";
  /** "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", ... */
  readonly codeName: string;
  /** Where the call stood when it failed: set on the failures of the SDK's calls. */
  readonly call?: CallPlace;
  /** The message from the server (or from the SDK), without the code. */
  readonly details: string;

  constructor(
    /** gRPC status code (grpc.status). */
    readonly code: number,
    details: string,
    /** Trailing metadata of the failed call, when there was a call. */
    readonly metadata: Metadata = new Metadata(),
    options?: { cause?: unknown; call?: CallPlace },
  ) {
    const hint = code === status.DEADLINE_EXCEEDED ? deadlineHint(details) : (sizeHint(code, details) ?? connectionHint(code, details, options?.call));
    // grpc-js's own deadline text goes on with its internals (",name resolution: 0.039s,LB pick: …"): the time is kept.
    const shown = code === status.DEADLINE_EXCEEDED ? (/^Deadline exceeded after [\d.]+s/.exec(details)?.[0] ?? details) : details;
    super(`${codeName(code)}: ${shown}${hint ? ` — ${hint}` : ""}`, options && "cause" in options ? { cause: options.cause } : undefined);
    this.details = shown;
    this.codeName = codeName(code);
    this.call = options?.call;
  }
}

/** Where a call stood when it failed: the server's address, and for a stream what had arrived. */
export interface CallPlace {
  address: string;
  /** "before any message", "after the header and 5 of the 900 rows" (a JacobianRows stream). */
  progress?: string;
}

/** grpc-js's own words for a connection that could not be made, as opposed to an UNAVAILABLE the server answered (a runtime it bridges is down, say). */
export const CONNECTION_FAILURE = /^(No connection established|Failed to connect)/;

/**
 * grpc-js's words (1.14) for a connection lost while a call was on it, UNAVAILABLE: "Connection
 * dropped" when the server's process is killed or its socket closed, "read ECONNRESET" when the
 * socket is reset (ETIMEDOUT and "socket hang up" alike). The server may have read the request.
 */
const CONNECTION_LOST = /^(Connection dropped|read (ECONNRESET|ETIMEDOUT)|socket hang up)$/;

/** The same, INTERNAL: the server closed the connection with an HTTP/2 error code (GOAWAY INTERNAL_ERROR, as Node's guard against rapid resets sends). */
const SESSION_CLOSED = /^Received RST_STREAM with code \d+ triggered by internal client error: Session closed with error code \d+$/;

/** What was wrong with the connection, read from grpc-js's words for it; undefined for anything else (the server's own UNAVAILABLE included). */
export function connectionProblem(code: number, details: string): "refused" | "unresolved" | "not TLS" | "untrusted" | "certificate required" | "certificate refused" | "closed" | "not gRPC" | "lost" | undefined {
  if (code === status.INTERNAL) return SESSION_CLOSED.test(details) ? "lost" : undefined;
  if (code !== status.UNAVAILABLE) return undefined;
  if (/^Name resolution failed for target /.test(details)) return "unresolved";
  if (CONNECTION_LOST.test(details)) return "lost";
  if (!CONNECTION_FAILURE.test(details)) return undefined;
  if (/connect ECONNREFUSED/.test(details)) return "refused";
  if (/wrong version number|WRONG_VERSION_NUMBER/.test(details)) return "not TLS";
  // Node's words for a certificate chain the client does not trust (grpc-js passes them on now and then).
  if (/unable to verify the first certificate|self[- ]signed certificate|unable to get (local )?issuer certificate|certificate has expired|Hostname\/IP does not match/.test(details)) return "untrusted";
  // OpenSSL's alerts from a server with mutual TLS: no client certificate sent (116), or one it does not trust.
  if (/alert certificate required|SSL alert number 116\b/.test(details)) return "certificate required";
  if (/alert (bad certificate|unknown ca|certificate unknown|certificate expired)|SSL alert number (42|45|46|48)\b/.test(details)) return "certificate refused";
  // Closed before HTTP/2 began: a TLS server to a plaintext client, a TLS client refusing the server's
  // certificate (grpc-js keeps the TLS error to itself), or a peer that closes what it accepts.
  if (/^No connection established\. Last error: Failed to connect\b/.test(details)) return "closed";
  // An HTTP/1 server answered: the REST port (--http-port), say.
  if (/^No connection established\. Last error: Protocol error\b/.test(details)) return "not gRPC";
  return undefined;
}

/**
 * What happened to a connection lost during a call, and what to do: the SDK's message and the CLI's
 * line say it alike. The server was there; it may have gone down, or come back, since.
 */
export function lostConnectionHint(address: string, progress: string | undefined): string {
  return `the connection to ${address} was lost during the call${progress ? `, ${progress}` : ""}: retry it (the server may have restarted or crashed: its log says which)`;
}

/** What to do about a connection that failed (the CLI says it with its flags: cli-messages.ts); the message gets it, `details` stays grpc-js's. */
function connectionHint(code: number, details: string, call: CallPlace | undefined): string | undefined {
  // grpc-js's "Last error: null" (a client of an address another client failed to reach just now:
  // they share the connection) and "Failed to connect" (something else listens there) said nothing.
  if (code === status.UNAVAILABLE && /^No connection established\. Last error: null|^Failed to connect\b/.test(details)) {
    return "is a tesseract-grpc server listening at the address, and up yet? Calls made while it starts fail at once unless they have { waitForReady: true }";
  }
  switch (connectionProblem(code, details)) {
    case "lost":
      return lostConnectionHint(call?.address ?? "the server", call?.progress);
    case "refused":
      return `no server is listening at ${/ECONNREFUSED (\S+?)\)?(?:\s|$)/.exec(details)?.[1] ?? "the address"}: start one (npx tesseract-grpc serve meshstats, or your own Tesseract), or connect to the address of a running one`;
    case "not TLS":
      return "the server does not answer TLS: connect without TLS credentials";
    case "untrusted":
      return "the client does not trust the server's certificate: give the client's `tls.ca` the CA that signed it (and the host name the certificate names)";
    case "certificate required":
      return "the server requires a client certificate (mutual TLS): give the client's `tls` a `cert` and `key` signed by a CA the server trusts";
    case "certificate refused":
      return "the server refused the client's certificate: give the client's `tls` a `cert` and `key` signed by a CA the server trusts";
    case "closed":
      return "the connection was closed before gRPC began: a TLS server needs the client's `tls` option, whose `ca` must trust the server's certificate (under mutual TLS, with a `cert` and `key` the server trusts); a plaintext server needs no `tls`";
    case "not gRPC":
      return "the server at the address is no gRPC server (it answered HTTP/1): connect to the gRPC port, not the REST API's (--http-port)";
    case "unresolved":
      return urlAddressHint(/^Name resolution failed for target (\S+)/.exec(details)?.[1] ?? "", "the client's tls option") ?? "the host name does not resolve: check the address (HOST:PORT)";
    default:
      return undefined;
  }
}

/**
 * grpc-js's words (1.14) for a message over the client's own limit, received or sent, get what to do;
 * they said neither which limit nor how to raise it.
 */
function sizeHint(code: number, details: string): string | undefined {
  if (code !== status.RESOURCE_EXHAUSTED) return undefined;
  if (/^Received message larger than max \(\d+ vs \d+\)$/.test(details)) {
    return "the answer is over this client's message limit: raise the client's `maxMessageBytes` (default 64 MiB), or stream a big Jacobian with jacobianRows";
  }
  if (/^Attempted to send message with a size larger than \d+$/.test(details)) {
    return "the request is over this client's message limit: raise the client's `maxMessageBytes` (default 64 MiB; the server takes at most its --max-message-bytes)";
  }
  return undefined;
}

/** grpc-js's own deadline text ("Deadline exceeded after 0.300s,LB pick: …"), not a server's answer, gets what to do. */
function deadlineHint(details: string): string | undefined {
  return /^Deadline exceeded after /.test(details) ? "the call's deadline passed before the answer came: give a later `deadline` (big Jacobians: jacobianRows streams rows as they are computed)" : undefined;
}

/**
 * The SDK's names for the request field a server's message starts from: `jac_inputs` is
 * `inputPaths` to an SDK caller. The lists keep their wire name beside (`inputPaths (jac_inputs)`)
 * for a caller writing the wire's JSON (the CLI's payloads); `tangent_vector.{a}` is `tangent.{a}`.
 * Only the leading field: further on, the same words may be the Tesseract's (`inputs.input_paths`,
 * an apply's own message).
 */
const SDK_NAMES: [RegExp, (wire: string) => string][] = [
  [/^(?:(?:jac|jvp|vjp)_inputs|input_paths)\b/, (wire) => `inputPaths (${wire})`],
  [/^(?:(?:jac|jvp|vjp)_outputs|output_paths)\b/, (wire) => `outputPaths (${wire})`],
  [/^tangent_vector\b/, () => "tangent"],
  [/^cotangent_vector\b/, () => "cotangent"],
];

/** A gradient call's error with the request's leading field by its SDK name (SDK_NAMES). */
export function inSdkTerms(e: unknown): unknown {
  if (!(e instanceof TesseractClientError)) return e;
  let details = e.details;
  for (const [wire, sdk] of SDK_NAMES) details = details.replace(wire, sdk);
  // A tangent's or cotangent's key checked against the request's paths names them too.
  details = details.replace(/^((?:tangent|cotangent) has key .*?, which is not in )((?:jvp|vjp)_(inputs|outputs))\b/s, (_, before: string, wire: string, kind: string) => `${before}${kind === "inputs" ? "inputPaths" : "outputPaths"} (${wire})`);
  return details === e.details ? e : new TesseractClientError(e.code, details, e.metadata, { cause: e.cause ?? e, call: e.call });
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
 * TesseractError from the shared codec, whose `code` is also a gRPC number) keeps its code, and
 * `call` says where the call stood; any other error gets `fallback`.
 */
export function toClientError(e: unknown, fallback: number = status.UNKNOWN, call?: CallPlace): TesseractClientError {
  if (e instanceof TesseractClientError) return e;
  if (isStatusLike(e)) {
    const metadata = e.metadata instanceof Metadata ? e.metadata : undefined;
    // grpc-js ends a connection failure with an empty "Resolution note: ".
    return new TesseractClientError(e.code, e.details.replace(/\.?\s*Resolution note:\s*$/, ""), metadata, { cause: e, call });
  }
  // Thrown by the shared codec (e.g. a malformed tensor): its code is a gRPC number too.
  if (isTesseractError(e)) return new TesseractClientError(e.code, e.message, undefined, { cause: e });
  if (e instanceof Error && e.name === "AbortError") return new TesseractClientError(status.CANCELLED, e.message, undefined, { cause: e });
  return new TesseractClientError(fallback, e instanceof Error ? e.message : String(e), undefined, { cause: e });
}
