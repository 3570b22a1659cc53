/**
 * Chooses how a request's evaluations run, from the server's settings:
 * - `replicas`: Apply calls to other servers (latency-bound or distributed apply);
 * - `workers: N` (N >= 1): a pool of N worker threads, evaluations sent in batches;
 * - `workers: "auto"`: inline for a request's first evaluations, then the pool if the measured costs
 *   say it finishes the rest sooner (auto.ts);
 * - `workers: 0`: inline.
 * A Tesseract whose apply runs elsewhere (`remoteApply`, a tesseract-core runtime) ignores `workers`:
 * its evaluations run up to `concurrency` at once in the event loop (concurrent.ts).
 * Apply calls (the RPC) run in the pool when `workers` is a count, else inline. Pools and channels
 * live as long as the runtime and are closed with it.
 *
 * Evaluations at the unperturbed inputs are reused across requests on the same inputs
 * (evaluation-cache.ts), unless the Tesseract says it is not deterministic or `cacheBytes` is 0.
 */
import type * as grpc from "@grpc/grpc-js";
import { setMaxListeners } from "node:events";
import { createHash } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { OutputSelector } from "./outputs";
import { omittedOutputError, type AnyMessage, type TesseractSchema } from "../schema/schema";
import type { InputLeaf } from "./input-leaf";
import { DEFAULT_MAX_MESSAGE_BYTES, MAX_TIMER_MS } from "../../common/transport-defaults";
import { isNdArray, type DecodeLimits } from "../../common/tensor-codec";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";
import { RoutePaces } from "./route-paces";
import { AutoEvaluator, BLOCKING_APPLY_MS, LONG_APPLY_MS, PoolCorrection, REMEASURE_EVERY, threadsForJob, type InlineCosts } from "./auto";
import { CachedBaseEvaluator } from "./cached-base";
import { derive } from "./deadlines";
import { usableCpus } from "./cpu-limit";
import { pairCount } from "./element-pairs";
import { ConcurrentEvaluator, DEFAULT_REPLICA_CONCURRENCY, type RemoteApply } from "./concurrent";
import { DEFAULT_CACHE_BYTES, EvaluationCache } from "./evaluation-cache";
import { InlineEvaluator } from "./inline";
import { inputsKey } from "./input-key";
import { DEFAULT_TASK_OVERHEAD_MS, WorkerPool } from "./pool";
import { PoolEvaluator } from "./pool-evaluator";
import type { PoolReadiness } from "./pool-readiness";
import type { ReplicaPool } from "./replicas";

/**
 * Threads an "auto" pool keeps while idle (all of them on up to four cores); the others start when
 * jobs need them. Four, not two: a thread started for a job is ready 0.2-0.3 s later (it loads the
 * Tesseract and warms itself), after a short job (meshstats' dense Jacobian, 10-25 ms) has run on
 * the threads kept; on a stand-in for 16 cores the dense heat stream peaked no higher with four kept
 * (273-292 MB against 292-301: threads started mid-stream load and warm up beside it).
 */
const AUTO_KEPT_THREADS = 4;

/** The longest an Apply, or a gradient request's next evaluation, waits for an "auto" pool to start after a long apply (LONG_APPLY_MS), should its threads not load. */
const POOL_START_WAIT_MS = 5_000;

/** Quick applies in a row that bring Apply back to the event loop after one held it. */
const QUICK_STREAK = 8;

export interface EvaluationSettings {
  /** Worker threads: a count (0 = inline) or "auto" (threads: defaultAutoThreads()). */
  workers?: number | "auto";
  /** Threads for "auto". */
  autoThreads?: number;
  /** Cores "auto" and stream pacing count on (default: usableCpus(), the cgroup's quota included). */
  autoCores?: number;
  /** A gRPC target of apply replicas, e.g. `dns:///apply:50051` or `ipv4:127.0.0.1:5001,127.0.0.1:5002`. */
  replicas?: string;
  /** Apply calls in flight per request when using replicas. */
  concurrency?: number;
  maxMessageBytes?: number;
  /** Per-evaluation timeout in ms (0: none); see timeout.ts for what it can stop where. */
  evalTimeoutMs?: number;
  /** TLS credentials and bearer token for replicas that require them. */
  replicaCredentials?: grpc.ChannelCredentials;
  replicaToken?: string;
  /** Bound of the evaluation cache in bytes (0: no cache); default DEFAULT_CACHE_BYTES. */
  cacheBytes?: number;
}

export interface Job {
  inputs: Record<string, unknown>;
  leaves: InputLeaf[];
  selector: OutputSelector;
  outputPaths: readonly string[];
  outputsField: string;
  /** Evaluations the request plans (for "auto"); undefined when unknown. */
  plannedEvaluations?: number;
  /** The RPC it serves ("auto" remembers costs per RPC too: a stream's reader paces it, a unary answer does not). */
  rpc?: string;
  signal?: AbortSignal;
}

/** Counts evaluations into the runtime's total (metrics) on their way to the evaluator. */
class Counted implements Evaluator {
  readonly differences?: Evaluator["differences"];

  constructor(
    private readonly inner: Evaluator,
    private readonly count: () => void,
  ) {
    if (inner.differences) {
      this.differences = (pairs) => {
        for (let k = 0; k < 2 * pairCount(pairs); k++) count();
        return inner.differences!(pairs);
      };
    }
  }

  get calls(): number {
    return this.inner.calls;
  }

  get outputs(): OutputInfo[] | undefined {
    return this.inner.outputs;
  }

  get concurrency(): number {
    return this.inner.concurrency;
  }

  get taskEvaluations(): number | undefined {
    return this.inner.taskEvaluations;
  }

  evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    this.count();
    return this.inner.evaluate(perturbation);
  }

  replanned(evaluations: number): void {
    this.inner.replanned?.(evaluations);
  }
}

/** Request shapes whose inline costs "auto" remembers. */
const REMEMBERED_SHAPES = 64;

/** A key longer than this is kept as its hash. */
const LONGEST_SHAPES_KEY = 1024;
/** Lists and strings longer than this count by their lengths (data, not settings: the key stays cheap to make). */
const LONGEST_SCALAR = 64;

/**
 * What "auto" remembers a request's inline costs by: its planned evaluations, the sizes of the
 * leaves it differentiates, its outputs, and its inputs' scalars (a heat request of 3 000 steps
 * costs what one of 1 step does not); tensors, long lists and long strings count by their shapes.
 */
export function requestShapes(job: Pick<Job, "inputs" | "leaves" | "outputPaths" | "plannedEvaluations" | "rpc">): string {
  let scalars: string;
  try {
    scalars = JSON.stringify(job.inputs, (_, value: unknown) => {
      if (isNdArray(value)) return `ndarray ${value.shape.join("x")}`;
      if (ArrayBuffer.isView(value)) return `array ${value.byteLength}`;
      if (Array.isArray(value) && value.length > LONGEST_SCALAR) return `list ${value.length}`;
      if (typeof value === "string" && value.length > LONGEST_SCALAR) return `string ${value.length}`;
      return typeof value === "bigint" ? `${value}n` : value;
    });
  } catch {
    scalars = "?"; // a tree JSON cannot hold (a cycle, from the library API): shapes only
  }
  const key = `${job.rpc} ${job.plannedEvaluations} ${job.leaves.map((l) => l.size).join(",")} ${job.outputPaths.join(",")} ${scalars}`;
  return key.length > LONGEST_SHAPES_KEY ? createHash("sha256").update(key).digest("base64") : key;
}

/**
 * Threads of "auto": a core each but one, which the main thread needs for serving, sending work and
 * assembling results (with cheap applies it is the busiest thread); on one or two cores, a thread
 * each.
 */
export function defaultAutoThreads(cores = usableCpus()): number {
  return cores > 2 ? cores - 1 : cores;
}

/**
 * What evaluations need of a loaded Tesseract (the runtime is one): its apply, its schema, and where
 * worker threads can load it from.
 */
export interface EvaluationTarget {
  /** A bundled name or module path, for worker threads; undefined: the Tesseract lives in this thread only. */
  readonly source?: string;
  readonly definition: { name: string; version: string; deterministic?: boolean; apply(inputs: never): unknown };
  readonly schema: TesseractSchema;
  readonly decodeLimits: DecodeLimits;
  /** Apply calls made so far, for metrics. */
  evaluations: number;
  /**
   * Set when apply runs elsewhere (a tesseract-core runtime): evaluations run up to `concurrency` at
   * once, copy-on-write, and never in worker threads.
   */
  readonly remoteApply?: RemoteApply;
  /** Told when a pool that runs every evaluation (a count of workers) cannot run the Tesseract. */
  readonly poolReadiness?: PoolReadiness;
  decodeInputs(any: AnyMessage | null | undefined): Record<string, unknown>;
  apply(inputs: Record<string, unknown>, timeoutMs?: number, signal?: AbortSignal): Promise<unknown>;
  encodeOutputs(outputs: unknown): AnyMessage;
}

export class EvaluationBackends {
  private workerPool?: WorkerPool;
  private replicaPool?: ReplicaPool;
  private evaluationCache?: EvaluationCache | null;
  /** "auto": the pool's measured pace over the modelled one (auto.ts). */
  private poolCorrection = new PoolCorrection();
  /**
   * "auto", by request shapes: what a recent request measured inline and how many decided from it
   * since (with whether its comparison kept the pool), and the paces of recent requests by route.
   */
  private readonly shapes = new Map<string, { costs?: InlineCosts; uses: number; keptPool?: boolean; paces: RoutePaces }>();

  /** The entry of these shapes, made if new, the newest last (the oldest goes first, past REMEMBERED_SHAPES). */
  private shapeEntry(shapes: string) {
    const entry = this.shapes.get(shapes) ?? { uses: 0, paces: new RoutePaces() };
    this.shapes.delete(shapes);
    this.shapes.set(shapes, entry);
    if (this.shapes.size > REMEMBERED_SHAPES) this.shapes.delete(this.shapes.keys().next().value!);
    return entry;
  }

  /**
   * Forgets what "auto" measured so far (the warm-up's requests): their code was not optimised yet and
   * the pool's threads were starting on the same cores, so their paces misled the first requests
   * served (meshstats on two cores: recalled at 50 µs an inline evaluation, 20 times too slow, every
   * early request took the pool and then compared it with inline; a fresh server's first Jacobian
   * took 2.1 times a warm one).
   */
  forgetMeasurements(): void {
    this.shapes.clear();
    this.poolCorrection = new PoolCorrection();
  }

  /**
   * The warm-up's requests are under way. Where inline goes first (route-paces.ts) they run inline
   * throughout and ask no model, whatever apply costs (only one that holds the event loop starts the
   * pool): their timings are of cold code, which makes a 2 µs apply look costly, and a pool started
   * from them was not taken by the requests served while the engine's rounds waited for it instead
   * of warming the code (a fresh server's first Jacobian under `auto` took 1.3-1.6 times one served
   * inline).
   */
  warmingUp = false;

  /** What "auto" goes by now: request shapes whose inline costs it recalls, and the pool's correction. */
  get autoMeasurements(): { shapes: number; correction: number } {
    return { shapes: this.shapes.size, correction: this.poolCorrection.value };
  }
  /**
   * "auto": the apply time that decides whether apply holds the event loop (BLOCKING_APPLY_MS): the
   * last two in a row that did (the lesser), or one of LONG_APPLY_MS, until QUICK_STREAK quick ones in a row (one quick Apply
   * sent the next costly one back to the event loop, 2.3 s). One alone may be this thread preempted
   * (a loaded machine, a container's CPU quota): a univariate apply of microseconds was timed at
   * 37 ms on a busy machine, and started a pool that every later Jacobian then took.
   */
  private lastApplyMs = 0;
  private quickInARow = 0;
  private previousApplyMs = 0;

  private applied(ms: number): void {
    const previous = this.previousApplyMs;
    this.previousApplyMs = ms;
    if (ms >= BLOCKING_APPLY_MS) {
      this.quickInARow = 0;
      if (previous >= BLOCKING_APPLY_MS) this.lastApplyMs = Math.min(ms, previous);
      else if (ms >= LONG_APPLY_MS) this.lastApplyMs = ms;
      return;
    }
    if (this.lastApplyMs >= BLOCKING_APPLY_MS && ++this.quickInARow < QUICK_STREAK) return;
    this.lastApplyMs = ms;
  }

  private readonly settings: EvaluationSettings;

  constructor(
    private readonly runtime: EvaluationTarget,
    settings: EvaluationSettings = { workers: 0 },
  ) {
    // A remote apply is an HTTP request: worker threads would add a hop and nothing else.
    this.settings = runtime.remoteApply ? { ...settings, workers: 0 } : settings;
    const workers = this.settings.workers ?? 0;
    if (typeof workers === "number" && workers > 0 && !runtime.source) {
      throw new Error("worker threads need a Tesseract loaded by name or module path (they load it themselves)");
    }
  }

  /** f(x) of recent requests; undefined when not cached (made on first use: the runtime makes its backends before its definition is set). */
  get cache(): EvaluationCache | undefined {
    if (this.evaluationCache === undefined) {
      const bytes = this.settings.cacheBytes ?? DEFAULT_CACHE_BYTES;
      const remote = this.runtime.remoteApply;
      this.evaluationCache = bytes > 0 && this.runtime.definition.deterministic !== false ? new EvaluationCache(bytes, undefined, remote?.witnessed && (() => remote.witnessed!())) : null;
    }
    return this.evaluationCache ?? undefined;
  }

  /**
   * The worker pool, started at its first use. A count of workers keeps them all; "auto" keeps four
   * and starts the others as jobs queue batches for them (pool.ts, IDLE_RETIRE_MS).
   */
  private pool(threads: number): WorkerPool {
    if (!this.workerPool) {
      const counted = typeof this.settings.workers === "number";
      const keepThreads = counted ? threads : AUTO_KEPT_THREADS;
      // The warm-up's requests warm the threads kept and this thread's side; threads they started stayed a minute.
      const growthHeld = () => this.warmingUp;
      // A count of workers runs every evaluation in the pool: one that cannot run the Tesseract leaves the server unready ("auto" goes on inline).
      const onCannotStart = counted ? (why: string) => this.runtime.poolReadiness?.cannotRun(why) : undefined;
      this.workerPool = new WorkerPool(this.runtime.source!, threads, { evalTimeoutMs: this.timeoutMs, keepThreads, growthHeld, onCannotStart });
      void this.workerPool.calibrate();
    }
    return this.workerPool;
  }

  /**
   * Settles once the worker pool, if one was started, has loaded the Tesseract, warmed up and
   * measured its costs: with whether there is one.
   */
  async poolStarted(): Promise<boolean> {
    await this.workerPool?.calibrate();
    return this.workerPool !== undefined;
  }

  /**
   * Whether a stream's evaluations in flight follow the pace of the thread writing it
   * (window.ts, ConsumerPace): where the pool's threads leave that thread a core of its own. Where
   * they do not (two threads on two cores), the workers and the writer share the cores, and a
   * two-thread pool paced streamed dense heat rows a quarter slower (0.21 against 0.28 GB/s).
   */
  get pacesStreams(): boolean {
    const { workers = 0 } = this.settings;
    const threads = typeof workers === "number" ? workers : this.autoThreads();
    return threads > 0 && threads < (this.settings.autoCores ?? usableCpus());
  }

  /** Whether a worker pool has started and is ready now. */
  get poolReady(): boolean {
    return this.workerPool?.ready ?? false;
  }

  /** The per-evaluation timeout; one longer than a timer can wait (2^31 ms, ~24.8 days) is none, not one that fires at once. */
  get timeoutMs(): number {
    const ms = this.settings.evalTimeoutMs ?? 0;
    return ms > MAX_TIMER_MS ? 0 : ms;
  }

  /** The key of these inputs in the evaluation cache; undefined when they are not cached. */
  private keyOf(inputs: Record<string, unknown>): string | undefined {
    const { name, version } = this.runtime.definition;
    return this.cache && inputsKey(`${name} ${version}`, inputs);
  }

  /**
   * The Apply RPC: decode, validate, apply, encode — apply in a worker thread when there is a fixed
   * pool, or under "auto" when apply holds the event loop long (applyThreads). Inputs are decoded
   * here first even then, so bad input is answered at once and never reaches a worker (the worker
   * decodes its own copy from the bytes). Outputs for inputs seen recently come from the
   * evaluation cache.
   */
  async applyMessage(any: AnyMessage | null | undefined, signal?: AbortSignal): Promise<AnyMessage> {
    const { runtime } = this;
    const inputs = runtime.decodeInputs(any);
    const key = this.keyOf(inputs);
    const cached = key && this.cache!.getApply(key);
    if (cached) return cached;
    const since = this.cache?.now;
    let outputs: AnyMessage;
    const threads = await this.applyThreads();
    if (threads > 0) {
      runtime.evaluations++;
      const pooled = await this.pool(threads).applyMessage(any, runtime.decodeLimits, signal);
      outputs = pooled.outputs;
      // Measured there too: once applies are quick again, Apply runs in this thread again.
      this.applied(pooled.applyMs);
    } else {
      const started = performance.now();
      const tree = await runtime.apply(inputs, this.timeoutMs, signal);
      this.applied(performance.now() - started);
      outputs = runtime.encodeOutputs(tree);
    }
    if (key) this.cache!.setApply(key, outputs, since);
    return outputs;
  }

  /**
   * The pool's threads an Apply runs in (0: this thread): a fixed pool's; under "auto", its threads
   * once the last apply timed here held this thread for BLOCKING_APPLY_MS or more (health checks and
   * deadlines wait on it; a heat of 2 million steps held it 12 s a call), started now and taken once ready.
   */
  private async applyThreads(): Promise<number> {
    const { workers } = this.settings;
    if (typeof workers === "number") return workers;
    const threads = this.autoThreads();
    if (threads === 0 || this.lastApplyMs < BLOCKING_APPLY_MS) return 0;
    const pool = this.pool(threads);
    // After an apply of LONG_APPLY_MS, waiting for the pool to start (about a second on two cores)
    // beats holding this thread for another: every other call waits on it.
    if (!pool.ready && this.lastApplyMs >= LONG_APPLY_MS) await poolStart(pool);
    return pool.ready ? threads : 0;
  }

  /** The threads an "auto" pool has; 0 where it can have none (one core, no module to load in them). */
  private autoThreads(): number {
    const threads = this.settings.autoThreads ?? defaultAutoThreads();
    return this.runtime.source && threads >= 2 ? threads : 0;
  }

  /**
   * apply at decoded inputs (CheckGradients' f(x)), or its outputs from the cache: the outputs tree
   * and the apply calls made (0 or 1). Where the Apply RPC's apply would run in the pool, so does
   * this one: in this thread, an apply that never returns held the event loop for good, whatever
   * --eval-timeout-ms said, and the server answered no one.
   */
  async applyTree(inputs: Record<string, unknown>, signal?: AbortSignal): Promise<{ outputs: unknown; applyCalls: number }> {
    const { runtime } = this;
    const key = this.keyOf(inputs);
    const cached = key && this.cache!.getApply(key);
    if (cached) return { outputs: runtime.schema.outputs.decodeAny(cached, "cached outputs"), applyCalls: 0 };
    const since = this.cache?.now;
    const threads = await this.applyThreads();
    if (threads > 0) {
      runtime.evaluations++;
      const pooled = await this.pool(threads).applyMessage(runtime.schema.inputs.encodeAny(inputs, "inputs"), runtime.decodeLimits, signal);
      this.applied(pooled.applyMs);
      if (key) this.cache!.setApply(key, pooled.outputs, since);
      return { outputs: runtime.schema.outputs.decodeAny(pooled.outputs, "outputs"), applyCalls: 1 };
    }
    const started = performance.now();
    const outputs = await runtime.apply(inputs, this.timeoutMs, signal);
    this.applied(performance.now() - started);
    if (key) this.cache!.setApply(key, runtime.encodeOutputs(outputs), since);
    return { outputs, applyCalls: 1 };
  }

  evaluatorFor(job: Job): Evaluator {
    const counted = new Counted(this.uncountedEvaluatorFor(job), () => this.runtime.evaluations++);
    const key = this.keyOf(job.inputs);
    if (!key) return counted;
    const outputs = this.runtime.schema.outputs;
    const fromApply = (message: AnyMessage) => {
      const selector = job.selector.copy();
      try {
        const values = selector.select(outputs.decodeAny(message, "cached outputs"));
        return { outputs: selector.outputs!, values };
      } catch (e) {
        // These are f(x)'s outputs: a requested one they leave out, as the schema allows, is the request's error.
        throw omittedOutputError(e) ?? e;
      }
    };
    return new CachedBaseEvaluator(counted, this.cache!, key, job.outputPaths, fromApply, job.selector.faultCode);
  }

  private uncountedEvaluatorFor(job: Job): Evaluator {
    const { settings, runtime } = this;
    // Evaluators with many calls in flight listen through a signal of the job's own (inline only looks at the request's between evaluations).
    const signal = () => job.signal && jobSignal(job.signal);
    const apply = (inputs: unknown) => runtime.definition.apply(inputs as never);
    if (settings.replicas) {
      const { ReplicaPool, ReplicaEvaluator, replicaClient } = replicasModule();
      this.replicaPool ??= new ReplicaPool(settings.replicas, replicaClient(), {
        concurrency: settings.concurrency ?? DEFAULT_REPLICA_CONCURRENCY,
        maxMessageBytes: settings.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
        evalTimeoutMs: this.timeoutMs,
        credentials: settings.replicaCredentials,
        token: settings.replicaToken,
      });
      return new ReplicaEvaluator(this.replicaPool, runtime.schema, job.inputs, job.leaves, job.selector, signal());
    }
    if (runtime.remoteApply) {
      const concurrency = settings.concurrency ?? DEFAULT_REPLICA_CONCURRENCY;
      return new ConcurrentEvaluator(runtime.remoteApply, job.inputs, job.leaves, job.selector, concurrency, signal(), this.timeoutMs);
    }
    const inline = new InlineEvaluator(apply, job.inputs, job.leaves, job.selector, this.timeoutMs, { signal: job.signal });
    const workers = settings.workers ?? 0;
    const poolJob = () => ({ inputs: job.inputs, inputPaths: job.leaves.map((l) => l.path), outputPaths: job.outputPaths, outputsField: job.outputsField, signal: signal() });
    if (typeof workers === "number") return workers > 0 ? new PoolEvaluator(this.pool(workers), poolJob()) : inline;
    const threads = this.autoThreads();
    if (threads === 0) return inline;
    const cores = settings.autoCores ?? usableCpus();
    const shapes = requestShapes(job);
    // The job's share of the threads, by the evaluations it plans once its plan is known (replanned).
    const jobThreads = () => threadsForJob(auto.planned, threads);
    const auto: AutoEvaluator = new AutoEvaluator(inline, job.plannedEvaluations, {
      costs: () => ({ threads: jobThreads(), cores, taskOverheadMs: this.workerPool?.taskOverheadMs ?? DEFAULT_TASK_OVERHEAD_MS, ready: this.workerPool?.ready ?? false, correction: this.poolCorrection.value }),
      startPool: () => void this.pool(threads),
      poolStart: () => poolStart(this.pool(threads), job.signal),
      makePool: () => new PoolEvaluator(this.pool(threads), { ...poolJob(), threads: jobThreads() }),
      observed: (ratio) => this.poolCorrection.observed(ratio),
      relax: () => this.poolCorrection.relax(),
      recalled: () => {
        const entry = this.shapes.get(shapes);
        if (!entry?.costs || entry.uses >= REMEASURE_EVERY) return undefined;
        entry.uses++;
        return entry.costs;
      },
      blockingApplyMs: () => (this.lastApplyMs >= BLOCKING_APPLY_MS ? this.lastApplyMs : undefined),
      applied: (ms) => this.applied(ms),
      remember: (costs) => Object.assign(this.shapeEntry(shapes), { costs, uses: 0, keptPool: undefined }),
      keptPool: () => this.shapes.get(shapes)?.keptPool === true,
      poolKept: () => {
        const entry = this.shapes.get(shapes);
        if (entry) entry.keptPool = true;
      },
      route: () => {
        // Where the threads leave the main thread no core of its own, inline goes first (route-paces.ts).
        const inlineFirst = threads >= cores;
        if (inlineFirst && this.warmingUp) return "inline";
        const entry = this.shapeEntry(shapes);
        return entry.paces.next(entry.costs?.inlineMs, inlineFirst);
      },
      paced: (route, ms) => this.shapeEntry(shapes).paces.record(route, ms),
      routeInlineMs: () => this.shapes.get(shapes)?.paces.inlineMsForModel,
    });
    return auto;
  }

  async close(): Promise<void> {
    this.replicaPool?.close();
    await this.workerPool?.close();
  }
}

/** Settles once `pool` has started, or after POOL_START_WAIT_MS should its threads not load, or at `signal`'s cancel (the request stops then). */
async function poolStart(pool: WorkerPool, signal?: AbortSignal): Promise<void> {
  await Promise.race([pool.calibrate(), delay(POOL_START_WAIT_MS, undefined, { ref: false, signal }).catch(() => undefined)]);
}

/**
 * A job's own signal, following the request's: each evaluation in flight (a worker batch, a replica
 * or runtime call) listens for a cancel, more than Node's default of 10 listeners with many in flight,
 * and AbortSignal.any leaves no listener on the request's signal, which may outlive many jobs.
 */
function jobSignal(signal: AbortSignal): AbortSignal {
  const own = AbortSignal.any([signal]);
  setMaxListeners(0, own);
  derive(own, signal);
  return own;
}

/**
 * replicas.ts, and with it grpc-js and the contract's loader, required on first use: worker threads
 * (which load this module to evaluate) and servers without replicas never load them.
 */
function replicasModule(): typeof import("./replicas") {
  return require("./replicas") as typeof import("./replicas");
}
