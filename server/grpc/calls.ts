/**
 * Every call in flight, in one place: a request id and an AbortSignal per call (driven by the
 * client's cancel, the server's deadlines and shutdown), admission of gradient jobs (at most
 * `maxJobs` at once, `maxQueue` waiting, RESOURCE_EXHAUSTED with a retry hint beyond), refusal of
 * new calls while draining, and the one log line per call.
 */
import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { Code, TesseractError } from "../../common/errors";
import type { Logger } from "../log";
import { asServiceError, internalError, toStatus } from "./status";
import { MAX_TIMER_MS } from "../../common/transport-defaults";
import { setDeadline } from "../eval/deadlines";
import { progressOf } from "../eval/progress";

export interface CallLimits {
  /** Gradient jobs (Jacobian, JacobianRows, JVP, VJP, CheckGradients) running at once. */
  maxJobs: number;
  /** Gradient jobs waiting for a slot; more are refused with RESOURCE_EXHAUSTED. */
  maxQueue: number;
  /** Applied when the client sets no deadline (0: none). */
  defaultDeadlineMs: number;
  /** No call runs longer, whatever the client asks (0: no cap). */
  maxDeadlineMs: number;
  /** How often a gradient call still running logs how far along it is (0: never). */
  progressLogMs: number;
}

/** The caller's x-request-id when it is a sane token (up to 128 visible ASCII characters), else a new one. */
function requestIdOf(metadata: grpc.Metadata): string {
  const given = metadata.get("x-request-id")[0];
  return typeof given === "string" && /^[\x21-\x7e]{1,128}$/.test(given) ? given : randomUUID();
}

/** The client's deadline (ms since the epoch; Infinity when it set none). */
function clientDeadline(call: Call): number {
  const requested = call.getDeadline();
  return requested instanceof Date ? requested.getTime() : Number(requested);
}

/** How long before grpc-js's own deadline timer the server stops a call whose client deadline passes (see deadlineTimer). */
const CLIENT_DEADLINE_LEAD_MS = 2;

export const DEFAULT_LIMITS: CallLimits = { maxJobs: 8, maxQueue: 32, defaultDeadlineMs: 0, maxDeadlineMs: 0, progressLogMs: 60_000 };

type Call = {
  metadata: grpc.Metadata;
  on(event: "cancelled", listener: () => void): unknown;
  getDeadline(): grpc.Deadline;
};

export interface TrackedCall {
  signal: AbortSignal;
  /** Set when the server is shutting down: answer with it at once. */
  refusal?: TesseractError;
  /** Waits for a gradient-job slot (or refuses); the slot is freed by `finish`. */
  admit(): Promise<void>;
  /**
   * `work`, or the abort reason as soon as the call is aborted: the caller is answered at once, and
   * the engine stops at its next evaluation boundary.
   */
  race<T>(work: Promise<T>): Promise<T>;
  /**
   * Throws DEADLINE_EXCEEDED (and aborts the call's work) once the client's deadline has passed:
   * checked before each message is written (see deadlineTimer: grpc-js has ended the stream by then).
   */
  checkDeadline(): void;
  /** Logs the call's end; with an error, the status to answer. */
  finish(error?: unknown): Partial<grpc.ServiceError> | undefined;
  /**
   * The last resort when answering the call failed (a bug): logged with the request id, and the
   * INTERNAL status to answer instead, so that no call is left without a status.
   */
  lastResort(error: unknown): Partial<grpc.ServiceError>;
}

export class CallRegistry {
  private readonly inFlight = new Set<AbortController>();
  private draining = false;
  private jobs = 0;
  private readonly waiting: { admit: () => void; signal: AbortSignal }[] = [];
  private idle?: () => void;
  /** Told of every call's end (metrics): RPC, status code and seconds taken. */
  onCallEnd?: (rpc: string, code: number, seconds: number) => void;

  constructor(
    private readonly log: Logger,
    readonly limits: CallLimits,
  ) {}

  /**
   * Every `progressLogMs`, from a gradient job's admission to its call's end, a line saying how far
   * it is (nothing while its engine has not begun): a Jacobian of a slow solver, bridged, runs for
   * hours, and its log said nothing until it ended.
   */
  private progressLog(signal: AbortSignal, rpc: string, requestId: string, started: number): NodeJS.Timeout | undefined {
    const every = this.limits.progressLogMs;
    if (!(every > 0)) return undefined;
    const timer = setInterval(() => {
      const progress = progressOf(signal);
      if (!progress) return;
      const ms = Math.round(performance.now() - started);
      this.log.info({ rpc, request_id: requestId, ms, evaluations: progress.evaluations, planned_evaluations: progress.planned }, "call in progress");
    }, Math.min(every, MAX_TIMER_MS));
    timer.unref();
    return timer;
  }

  /** A call refused before it reached a handler (no valid token, undecodable bytes): logged and counted like the others. */
  refused(rpc: string, code: number, details: string, metadata?: grpc.Metadata): void {
    this.log.info({ rpc, request_id: metadata ? requestIdOf(metadata) : undefined, code, ms: 0, details }, "call");
    this.onCallEnd?.(rpc, code, 0);
  }

  /** Starts the bookkeeping of one call. `refusal` is set when the server is shutting down. */
  track(call: Call, rpc: string): TrackedCall {
    const requestId = requestIdOf(call.metadata);
    const controller = new AbortController();
    // Every evaluation in flight (worker task, replica call) listens for the abort: as many as the
    // request's window, more than Node's default warning threshold of 10 and not a leak.
    setMaxListeners(0, controller.signal);
    const started = performance.now();
    let finished = false;
    let releaseJob: (() => void) | undefined;
    // grpc-js also emits 'cancelled' after a normal end: only a call still running is aborted.
    call.on("cancelled", () => {
      if (!finished) controller.abort(new TesseractError(Code.CANCELLED, "the call was cancelled or its deadline passed"));
    });
    const deadline = clientDeadline(call);
    const expire = () => controller.abort(new TesseractError(Code.DEADLINE_EXCEEDED, "the call's deadline passed"));
    const timer = this.deadlineTimer(controller, deadline, expire);
    this.inFlight.add(controller);
    let progress: NodeJS.Timeout | undefined;
    const refusal = this.draining ? new TesseractError(Code.UNAVAILABLE, "the server is shutting down; retry on another instance") : undefined;
    const tracked: TrackedCall = {
      signal: controller.signal,
      refusal,
      admit: async () => {
        releaseJob = await this.admit(controller.signal);
        // Gradient jobs (the calls admitted) are the ones that say how far along they are.
        if (!finished) progress = this.progressLog(controller.signal, rpc, requestId, started);
      },
      race: <T>(work: Promise<T>) => {
        if (controller.signal.aborted) {
          work.catch(() => {}); // its own failure says nothing more than the abort does
          return Promise.reject(controller.signal.reason);
        }
        return new Promise<T>((resolve, reject) => {
          const onAbort = () => reject(controller.signal.reason);
          controller.signal.addEventListener("abort", onAbort, { once: true });
          work.then(resolve, reject).finally(() => controller.signal.removeEventListener("abort", onAbort));
        });
      },
      checkDeadline: () => {
        if (Date.now() >= deadline - CLIENT_DEADLINE_LEAD_MS) expire();
        controller.signal.throwIfAborted();
      },
      finish: (error?: unknown): Partial<grpc.ServiceError> | undefined => {
        finished = true;
        clearTimeout(timer);
        clearInterval(progress);
        releaseJob?.();
        this.inFlight.delete(controller);
        if (this.inFlight.size === 0) this.idle?.();
        const ms = +(performance.now() - started).toFixed(2);
        const status = error === undefined ? undefined : toStatus(error, controller.signal, this.log, requestId);
        // Work still under way for a call that has ended (the other evaluations of a failed
        // request, say) is of no use to anyone: stop it.
        if (!controller.signal.aborted) controller.abort(new TesseractError(Code.CANCELLED, "the call has ended"));
        this.log.info({ rpc, request_id: requestId, code: status?.code ?? 0, ms, details: status?.details }, "call");
        this.onCallEnd?.(rpc, status?.code ?? 0, ms / 1000);
        return status && asServiceError(status);
      },
      lastResort: (error: unknown) => {
        try {
          if (!finished) return tracked.finish(error)!;
          this.log.error({ err: error, rpc, request_id: requestId }, "error while answering a call");
        } catch {
          // Nothing more can be told: the caller still gets its status.
        }
        return asServiceError(internalError(requestId));
      },
    };
    return tracked;
  }

  /**
   * A call's deadline: the client's, or the server's own (the default when the client set none,
   * capped at the maximum). The client's is enforced here too, CLIENT_DEADLINE_LEAD_MS before grpc-js
   * does, by this timer and by `checkDeadline` before every message: grpc-js ends a stream whose
   * deadline passed and sends its status once the stream is flushed, but a handler that learns of
   * it only from 'cancelled' (which comes after) went on writing into the ended stream — a
   * JacobianRows call then never got its status (805 of 2 000 with a deadline of 0 to 1 ms) — and a
   * unary call sent its answer before DEADLINE_EXCEEDED. (The timer alone is not enough: set after
   * grpc-js's, it may fire after it.)
   */
  private deadlineTimer(controller: AbortController, deadline: number, expire: () => void): NodeJS.Timeout | undefined {
    const { defaultDeadlineMs, maxDeadlineMs } = this.limits;
    const clientMs = deadline - Date.now();
    let ms = Number.isFinite(clientMs) ? Infinity : defaultDeadlineMs || Infinity;
    if (maxDeadlineMs) ms = Math.min(ms, maxDeadlineMs);
    // Known to the work too (eval/deadlines.ts): a wait that would end past it gives up at once.
    if (Number.isFinite(clientMs) && clientMs <= ms) {
      setDeadline(controller.signal, deadline - CLIENT_DEADLINE_LEAD_MS, "the call's deadline");
      return clientMs > MAX_TIMER_MS ? undefined : setTimeout(expire, Math.max(0, clientMs - CLIENT_DEADLINE_LEAD_MS));
    }
    if (!Number.isFinite(ms) || ms > MAX_TIMER_MS) return undefined; // --max-deadline-ms of a month: no timer, not one that fires at once
    const which = Number.isFinite(clientMs) || ms === maxDeadlineMs ? `maximum deadline of ${maxDeadlineMs} ms` : `default deadline of ${defaultDeadlineMs} ms`;
    setDeadline(controller.signal, Date.now() + ms, `the server's ${which}`);
    return setTimeout(() => controller.abort(new TesseractError(Code.DEADLINE_EXCEEDED, `the server's ${which} passed`)), ms);
  }

  private admit(signal: AbortSignal): Promise<() => void> {
    const release = () => {
      this.jobs--;
      const next = this.waiting.shift();
      if (next) next.admit();
    };
    if (this.jobs < this.limits.maxJobs) {
      this.jobs++;
      return Promise.resolve(release);
    }
    if (this.waiting.length >= this.limits.maxQueue) {
      return Promise.reject(
        new TesseractError(
          Code.RESOURCE_EXHAUSTED,
          `${this.jobs} gradient jobs are running and ${this.waiting.length} waiting, the most this server takes (--max-jobs ${this.limits.maxJobs}, --max-queue ${this.limits.maxQueue}); retry in a few seconds`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const entry = {
        signal,
        admit: () => {
          signal.removeEventListener("abort", onAbort);
          this.jobs++;
          resolve(release);
        },
      };
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(entry), 1);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  /** Whether the server is shutting down (new calls refused): health says so too. */
  get shuttingDown(): boolean {
    return this.draining;
  }

  /**
   * Shutdown: new calls are refused with UNAVAILABLE; calls in flight get `graceMs` to finish, then
   * are aborted with UNAVAILABLE (a stream ends with that status).
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    if (this.inFlight.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const controller of this.inFlight) controller.abort(new TesseractError(Code.UNAVAILABLE, "the server shut down before this call finished"));
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  get jobsRunning(): number {
    return this.jobs;
  }

  get jobsWaiting(): number {
    return this.waiting.length;
  }
}
