/**
 * Per-call options (deadline, metadata, AbortSignal) and the one way a unary call is made: the
 * signal cancels the call, the callback's error becomes a TesseractClientError.
 */
import * as grpc from "@grpc/grpc-js";
import { setMaxListeners } from "node:events";
import { MAX_TIMER_MS } from "../common/transport-defaults";
import { TesseractClientError, toClientError, type CallPlace } from "./errors";

export interface CallOptions {
  /** A Date, or milliseconds from now. A deadline in the past fails with DEADLINE_EXCEEDED. */
  deadline?: Date | number;
  /** Request metadata (headers), e.g. `{ "x-request-id": "..." }`. */
  metadata?: Record<string, string> | grpc.Metadata;
  /** Aborting cancels the call; it then rejects with CANCELLED. */
  signal?: AbortSignal;
  /**
   * Wait for the server to be reachable (until the deadline) instead of failing at once with
   * UNAVAILABLE: for a first call while the server starts.
   */
  waitForReady?: boolean;
}

/**
 * The call's metadata. A key or value grpc-js refuses (a space or capital in a key, a newline in a
 * value) is the caller's mistake, INVALID_ARGUMENT: it was UNKNOWN in grpc-js's words.
 */
export function toMetadata(metadata: CallOptions["metadata"], waitForReady = false): grpc.Metadata {
  let md = metadata instanceof grpc.Metadata ? metadata : new grpc.Metadata();
  if (!(metadata instanceof grpc.Metadata)) {
    for (const [key, value] of Object.entries(metadata ?? {})) {
      try {
        md.set(key, value);
      } catch (e) {
        throw new TesseractClientError(grpc.status.INVALID_ARGUMENT, `metadata: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
      }
    }
  }
  if (waitForReady) {
    // The caller's own Metadata object is not changed.
    if (md === metadata) md = md.clone();
    md.setOptions({ waitForReady: true });
  }
  return md;
}

/**
 * The call's grpc-js options. A deadline that is no time (NaN, an invalid Date, not a Date or a
 * number) is INVALID_ARGUMENT; Infinity, or one further than grpc-js can time, is none (grpc-js threw
 * "Deadline is too far in the future" on a later tick, ending the caller's process).
 */
export function toGrpcOptions(options: CallOptions | undefined): Partial<grpc.CallOptions> {
  const deadline = options?.deadline;
  if (deadline === undefined) return {};
  const at = typeof deadline === "number" ? Date.now() + deadline : deadline instanceof Date ? deadline.getTime() : NaN;
  if (Number.isNaN(at)) throw new TesseractClientError(grpc.status.INVALID_ARGUMENT, `deadline is ${String(deadline).slice(0, 40)}: expected a Date or milliseconds from now`);
  if (at - Date.now() > MAX_TIMER_MS) return {};
  return { deadline: new Date(at) };
}

/**
 * `options` with a deadline in milliseconds turned into the time it names, once, as a method starts:
 * each of its gRPC calls (the Describe the SDK makes first, then the call) counted the milliseconds
 * anew, and a call that waited for its server (waitForReady) could run twice as long as asked.
 */
export function fixedDeadline(options: CallOptions | undefined): CallOptions | undefined {
  const deadline = options?.deadline;
  // Only times a Date can hold: NaN and Infinity stay as they are for toGrpcOptions to judge.
  if (typeof deadline !== "number" || !(Math.abs(deadline) <= MAX_TIMER_MS)) return options;
  return { ...options, deadline: new Date(Date.now() + deadline) };
}

const callSignals = new WeakMap<AbortSignal, AbortSignal>();

/**
 * What calls listen to for the caller's signal: one signal following it (a single listener on the
 * caller's), which takes any number of listeners. Many calls at once under one signal, to cancel
 * them all, are no leak; Node 20 would warn of one past ten listeners on the caller's signal.
 */
export function callSignal(signal: AbortSignal | undefined): AbortSignal | undefined {
  if (!signal) return undefined;
  let follower = callSignals.get(signal);
  if (!follower) {
    follower = AbortSignal.any([signal]);
    setMaxListeners(0, follower);
    callSignals.set(signal, follower);
  }
  return follower;
}

/** The reason of the signal `TesseractClient.close()` aborts: its calls say the client was closed, not that a signal of theirs fired. */
export class ClientClosed extends Error {}

/** The error an already aborted signal gives, without starting a call. */
export function cancelledError(signal: AbortSignal): TesseractClientError {
  if (signal.reason instanceof ClientClosed) return new TesseractClientError(grpc.status.CANCELLED, signal.reason.message);
  const reason = signal.reason instanceof Error ? signal.reason.message : signal.reason === undefined ? "" : String(signal.reason);
  return new TesseractClientError(grpc.status.CANCELLED, `the call was cancelled by its AbortSignal${reason ? ` (${reason})` : ""}`);
}

/**
 * A call's error: one its signal cancelled says so, with the signal's reason (not grpc-js's "Cancelled
 * on client"); any other says where the call stood (`call`: a connection lost mid-call names both).
 */
export function callError(error: unknown, signal: AbortSignal | undefined, call?: CallPlace): TesseractClientError {
  return signal?.aborted && (error as grpc.ServiceError)?.code === grpc.status.CANCELLED ? cancelledError(signal) : toClientError(error, grpc.status.UNKNOWN, call);
}

/**
 * Cancels a grpc-js call, and once more a turn later. grpc-js (1.14) sends a call cancelled in the
 * microtasks before it has made its transport call (its ResolvingCall makes that child without
 * looking whether it was cancelled meanwhile), and never cancels it: the server then worked on for
 * nobody (a Jacobian to its end; an apply that never returns held its call for good, a JacobianRows
 * stream its job slot until --stream-stall-ms). By the next turn the child exists, and the second
 * cancel reaches it (on a call that has ended it does nothing).
 */
export function cancelCall(call: { cancel(): void }): void {
  call.cancel();
  setImmediate(() => call.cancel());
}

/** A generated unary method, bound to its client. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

/** Calls `method` on the server at `address` (which its errors name). */
export function unaryCall<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, options: CallOptions | undefined, address: string): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const signal = callSignal(options?.signal);
    if (signal?.aborted) return reject(cancelledError(signal));
    let call: grpc.ClientUnaryCall | undefined;
    const onAbort = () => call && cancelCall(call);
    try {
      call = method(request, toMetadata(options?.metadata, options?.waitForReady), toGrpcOptions(options), (error, response) => {
        signal?.removeEventListener("abort", onAbort);
        if (error) reject(callError(error, signal, { address }));
        else resolve(response as Res);
      });
    } catch (e) {
      // grpc-js throws synchronously for a closed channel or unserialisable arguments.
      return reject(toClientError(e));
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * `promise` as one caller waits for it: rejected with CANCELLED when the caller's signal aborts,
 * or DEADLINE_EXCEEDED at its deadline, without touching the work itself (which others may share).
 */
export function waitUnder<T>(promise: Promise<T>, options: CallOptions | undefined, what: string): Promise<T> {
  const signal = callSignal(options?.signal);
  const deadline = toGrpcOptions(options).deadline as Date | undefined;
  if (!signal && !deadline) return promise;
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(cancelledError(signal));
    const onAbort = () => finish(() => reject(cancelledError(signal!)));
    const timer = deadline && setTimeout(() => finish(() => reject(new TesseractClientError(grpc.status.DEADLINE_EXCEEDED, `the deadline passed while waiting for ${what}`))), Math.max(0, deadline.getTime() - Date.now()));
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      settle();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => finish(() => resolve(value)),
      (error) => finish(() => reject(error)),
    );
  });
}
