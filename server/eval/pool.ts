/**
 * The worker threads (piscina). The pool lives as long as the server. Gradient jobs send it batches
 * of evaluations (pool-evaluator.ts), Apply calls one task each. Cancelling a request removes its
 * queued tasks; piscina stops a running one by ending its worker, which is then replaced. The same
 * happens to a task that overruns the per-evaluation timeout, and a worker that dies
 * (process.exit, an uncaught error, out of memory) fails only its own task: piscina starts a new
 * one in its place. A thread that dies while it starts (loading the Tesseract or warming up) is
 * another matter: the pool can run nothing, and every task fails at once naming that.
 */
import * as path from "node:path";
import type { Worker } from "node:worker_threads";
import { Piscina } from "piscina";
import { Code, TesseractError } from "../../common/errors";
import type { AnyMessage } from "../schema/schema";
import type { DecodeLimits } from "../../common/tensor-codec";
import { evalTimeoutError } from "./timeout";
import type { ApplyResult, ApplyTask, BatchResult, BatchTask, StartUpMessage } from "./worker-task";

/** Round trips of an empty task timed to measure the pool's cost per task. */
const CALIBRATION_PINGS = 8;

/**
 * Each worker's warm-up at its start (worker.ts, `warm`): evaluations of the example inputs, and the
 * most time it may take. Until the pool's first threads are done the pool is not ready, so "auto"
 * keeps evaluating inline; a thread started later takes tasks once it is done.
 */
const WARM_EVALUATIONS = 2000;
const WARM_BUDGET_MS = 100;

/**
 * Each worker's young generation, at most (V8's default grows to tens of MB a thread). Two workers
 * under meshstats Jacobians held 356 MB in all with the default, 306 with 8 MB (8 workers: 496 ->
 * 427), at the same speed (three alternating rounds, Python client, two cores); evaluations make
 * small objects that die young, and their big outputs live outside the heap (output-garbage.ts).
 */
const WORKER_YOUNG_GENERATION_MB = 8;

/**
 * How long a batch sent unstoppable (one measured to be short: pool-evaluator.ts) may still run once
 * its request is cancelled. Past it, its apply is not the quick one measured (it hangs on these
 * inputs, say) and, with no per-evaluation timeout, would hold its worker for good: the pool lost a
 * thread to each such cancel, and once every thread was held, every later call waited for its
 * deadline. Its worker is then ended and replaced, as a stoppable batch's is at once.
 */
export const UNSTOPPABLE_GRACE_MS = 1000;

/**
 * How long the pool stays without tasks before each worker is told to let go of what its jobs left
 * (worker.ts `tidy`): their inputs, kept for a job's next batches, and dead outputs. A worker waiting
 * for a task is blocked in piscina's Atomics.wait, its timers stopped, so it cannot notice by
 * itself: an idle pool held the shared inputs of its last eight jobs, and their outputs, for good
 * (16 Jacobians of 15 MB inputs left 122 MB).
 */
export const IDLE_TIDY_MS = 500;

/**
 * How long a thread beyond those a pool keeps (`WorkerPoolOptions.keepThreads`) may wait for a task
 * before it is ended. Threads start as jobs queue batches for them (each loads the Tesseract and
 * warms itself first, worker.ts), so the pool holds what its jobs use: a stream its consumer paces
 * keeps a few threads busy, not all of them (a 15-thread pool, every thread started, held
 * 250-290 MB idle and 600 MB under a dense heat stream).
 */
export const IDLE_RETIRE_MS = 60_000;

export interface WorkerPoolOptions {
  /** Per-evaluation timeout in ms (0: none). */
  evalTimeoutMs?: number;
  /** Threads started with the pool and kept while idle (default: all); more start as jobs need them. */
  keepThreads?: number;
  /** How long a thread beyond `keepThreads` waits for a task before it is ended. */
  retireAfterMs?: number;
  /** While this says so, batches wait at the threads there are and none is started for them (the warm-up's). */
  growthHeld?: () => boolean;
  /** Told once, why, when the pool finds it cannot run the Tesseract (cannotRun). */
  onCannotStart?: (why: string) => void;
}

/** Tasks a worker holds at once: one running, one waiting (see the constructor). */
const TASKS_PER_WORKER = 2;

type LoadBalancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>["loadBalancer"]>;

/**
 * piscina's own balancer (the least busy worker; a task that can be stopped only to an idle one, and
 * nothing beside it), over the workers that are ready (their thread ids in `ready`). piscina (5.3)
 * hands a waiting task to a worker that is still starting when another becomes free; a cancel of
 * that task then ends the worker before it is ready, and piscina takes that for workers that cannot
 * start: it replaced no dead worker from then on. The pool lost a thread to each later crash,
 * cancel or timeout, and with none left, requests waited on their queued batches for good.
 *
 * A pool that may still start threads (`growth`) does so only as far as the tasks waiting at its
 * busy workers call for, counting the threads already starting: piscina starts one for every task
 * no worker is given, and once a worker is free again, one after the other up to its most for the
 * same task (a paced stream of three tasks started all 15). A batch that need not be stopped then
 * waits at the least busy worker instead. One that must be stoppable (a costly apply's, or any under
 * a per-evaluation timeout) needs an idle worker, and piscina starts threads for it as before.
 */
function readyWorkersBalancer(ready: ReadonlySet<number>, growth: () => { canStart: boolean; held: boolean; starting: number }): LoadBalancer {
  return (task, workers) => {
    let candidate: (typeof workers)[number] | null = null;
    let least = Infinity;
    let waiting = 1; // this task, and those behind a running one
    for (const worker of workers) {
      if (!ready.has(worker.id)) continue;
      if (worker.currentUsage === 0) return worker;
      if (worker.isRunningAbortableTask || task.isAbortable) continue;
      waiting += worker.currentUsage - 1;
      if (worker.currentUsage < least) [candidate, least] = [worker, worker.currentUsage];
    }
    if (candidate === null || least < TASKS_PER_WORKER) return candidate;
    const { canStart, held, starting } = growth();
    if (!canStart) return null; // waits in piscina's queue for the first worker free
    return !held && starting < Math.ceil(waiting / TASKS_PER_WORKER) ? null : candidate;
  };
}

/** Until calibrated: a typical cost of one task's round trip (messages both ways, piscina's queue). */
export const DEFAULT_TASK_OVERHEAD_MS = 0.05;

export class WorkerPool {
  readonly piscina: Piscina;
  private lastTaskId = 0;
  /** Apply calls under the timeout, by id: what to do when a worker says it started one. */
  private readonly onStart = new Map<number, () => void>();
  /** Measured wall time of one task's round trip with no work in it (calibrate). */
  taskOverheadMs = DEFAULT_TASK_OVERHEAD_MS;
  /** Whether the workers have loaded the Tesseract and the costs are measured. */
  ready = false;
  /** The batch size the latest job measured its way to (pool-evaluator.ts starts the next one from it). */
  lastBatchSize?: number;
  /** The bytes of one evaluation's outputs in the latest job (bounds the next one's results in flight until it knows its own). */
  lastOutputBytes?: number;
  private calibrated?: Promise<void>;
  /** Tasks sent and not yet settled; whether any ran since the workers were last tidied; the idle timer. */
  private tasksInFlight = 0;
  private untidy = false;
  private idleTimer?: NodeJS.Timeout;

  /** Per-evaluation timeout in ms (0: none). */
  readonly evalTimeoutMs: number;
  /** Threads started with the pool and kept while it is idle. */
  readonly keepThreads: number;
  /** Threads piscina has told ready, by thread id (the balancer's; see readyWorkersBalancer). */
  private readonly readyThreads = new Set<number>();
  private readonly growthHeld?: () => boolean;
  private readonly onCannotStart?: (why: string) => void;
  /** Threads loading the Tesseract or warming up (worker.ts, startUp), by thread id: the thread, and its stage. */
  private readonly startingThreads = new Map<number, { worker: Worker; stage: StartUpMessage["startUp"] }>();
  /** Why no evaluation can run in the pool, once none can run the Tesseract (cannotRun), and the end of its threads then. */
  private cannotStart?: string;
  private destroyed?: Promise<void>;

  constructor(
    /** Bundled name or module path, loaded by each worker. */
    readonly tesseract: string,
    /** The most threads the pool runs. */
    readonly threads: number,
    options: WorkerPoolOptions = {},
  ) {
    this.evalTimeoutMs = options.evalTimeoutMs ?? 0;
    this.keepThreads = Math.max(1, Math.min(threads, options.keepThreads ?? threads));
    this.growthHeld = options.growthHeld;
    this.onCannotStart = options.onCannotStart;
    // Two tasks per worker: a short batch that need not be stoppable waits at its worker behind the
    // running one, so the worker goes on without waiting for the main thread to hand it the next.
    const ready = this.readyThreads;
    this.piscina = new Piscina({
      filename: path.join(__dirname, "worker.js"),
      minThreads: this.keepThreads,
      maxThreads: threads,
      idleTimeout: options.retireAfterMs ?? IDLE_RETIRE_MS,
      concurrentTasksPerWorker: TASKS_PER_WORKER,
      loadBalancer: readyWorkersBalancer(ready, () => this.growth()),
      workerData: { threads, tesseract, warm: { evaluations: WARM_EVALUATIONS, budgetMs: WARM_BUDGET_MS } },
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    // piscina tells each worker as it is ready (those it starts with at once): its thread id is
    // added; ids of workers gone (-1 once exited) are dropped then.
    this.piscina.on("workerCreate", (worker: { id: number }) => {
      const alive = new Set(this.piscina.threads.map((w) => w.threadId));
      for (const id of ready) if (!alive.has(id)) ready.delete(id);
      ready.add(worker.id);
    });
    // A worker that dies between tasks (an error thrown from a timer apply left behind) is replaced
    // like any other; piscina reports it as an 'error' event, which must not end the server.
    this.piscina.on("error", () => undefined);
    this.piscina.on("message", (message: { started?: number } & Partial<StartUpMessage>) => {
      if (message?.started) this.onStart.get(message.started)?.();
      else if (message?.startUp) this.startUpStage(message.thread!, message.startUp, message.why);
    });
    // piscina ends a thread itself (a cancel, a timeout, an idle one retired, close) while it is
    // alive, its id still set; one that exits by itself is gone (-1) by then.
    this.piscina.on("workerDestroy", (worker: { id: number }) => {
      if (worker.id !== -1) this.startingThreads.delete(worker.id);
    });
  }

  /**
   * A thread's start-up stage (worker.ts): a thread that exits by itself before it is done died
   * while starting. Its exit is heard after its messages (Node delivers them first).
   */
  private startUpStage(thread: number, stage: StartUpMessage["startUp"], why?: string): void {
    if (stage === "done") return void this.startingThreads.delete(thread);
    if (stage === "unloadable") {
      this.startingThreads.delete(thread);
      return this.cannotRun(`loading it in a worker thread failed: ${why}`);
    }
    const starting = this.startingThreads.get(thread);
    if (starting) return void (starting.stage = stage);
    const worker = this.piscina.threads.find((w) => w.threadId === thread);
    if (!worker) return;
    this.startingThreads.set(thread, { worker, stage });
    worker.once("exit", (code: number) => {
      const died = this.startingThreads.get(thread);
      if (died?.worker !== worker) return;
      this.startingThreads.delete(thread);
      this.diedStarting(died.stage, code);
    });
  }

  /**
   * A thread died while it started: every thread would (the same module, the same example inputs),
   * and piscina starts no thread after one that died before it was ready, so tasks queued for one
   * waited for good (every Apply and Jacobian after the first, health still SERVING). The pool ends
   * its threads, which fails the tasks waiting, and fails every later one at once; it is not ready
   * ("auto" stays inline).
   */
  private diedStarting(stage: StartUpMessage["startUp"], code: number): void {
    const doing = stage === "warming" ? "warming up on its example inputs" : "loading it";
    this.cannotRun(`one died while ${doing} (worker exited with code: ${code})`);
  }

  /**
   * No thread can run the Tesseract (diedStarting; or it does not load in a worker thread, where the
   * main thread loaded it): every task would fail, or wait for good.
   */
  private cannotRun(why: string): void {
    if (this.cannotStart !== undefined) return;
    this.cannotStart = `the worker threads cannot run the Tesseract: ${why}`;
    this.ready = false;
    this.destroyed = this.piscina.destroy();
    this.onCannotStart?.(this.cannotStart);
  }

  /** Throws why no evaluation can run in the pool, if none can. */
  private refuseIfCannotStart(): void {
    if (this.cannotStart !== undefined) throw new TesseractError(Code.UNKNOWN, this.cannotStart);
  }

  /** What a task that failed in piscina (its worker died, or the pool ended it) is told. */
  private failedError(e: unknown): TesseractError {
    return this.cannotStart !== undefined ? new TesseractError(Code.UNKNOWN, this.cannotStart, { cause: e }) : diedError(e);
  }

  /** Whether the pool may start another thread and whether it is to, and how many it is starting (started, not yet ready). */
  private growth(): { canStart: boolean; held: boolean; starting: number } {
    const alive = this.piscina.threads.length;
    return { canStart: alive < this.threads, held: this.growthHeld?.() ?? false, starting: alive - this.readyAlive() };
  }

  /** Threads alive that piscina has told ready. */
  private readyAlive(): number {
    return this.piscina.threads.filter((w) => this.readyThreads.has(w.threadId)).length;
  }

  /** Worker threads alive now (a dead one is gone at once; its replacement counts once started). */
  get liveThreads(): number {
    return this.piscina.threads.length;
  }

  /**
   * Waits for the threads the pool starts with to load the Tesseract and warm themselves (worker.ts,
   * at their start), and measures the cost of a task's round trip (the fastest of the pings, once
   * they are up: what a task costs, not what a busy machine adds). Once per pool; later calls wait
   * for the first.
   */
  calibrate(): Promise<void> {
    this.calibrated ??= (async () => {
      // A stoppable task goes to an idle worker only: one each, answered once that worker is warm. A
      // signal each (one shared by more than ten tasks would be reported as a listener leak).
      const stoppable = () => new AbortController().signal;
      // A ping once no thread can start would wait for good (cannotRun).
      const ping = (signal?: AbortSignal) => (this.refuseIfCannotStart(), this.piscina.run(null, { name: "ping", signal }));
      await new Promise(setImmediate); // piscina tells the first threads ready on a later tick: a ping before would start one more
      await Promise.all(Array.from({ length: this.keepThreads }, () => ping(stoppable())));
      const times: number[] = [];
      for (let i = 0; i < CALIBRATION_PINGS; i++) {
        const started = performance.now();
        await ping();
        times.push(performance.now() - started);
      }
      this.taskOverheadMs = Math.min(...times);
      // Pings need no Tesseract: threads that cannot load it answer them too.
      this.ready = this.cannotStart === undefined;
    })().catch(() => undefined); // a pool that cannot run the Tesseract fails its tasks, saying why (cannotRun)
    return this.calibrated;
  }

  /**
   * A batch of evaluations of a gradient job; the timeout applies to each evaluation in it. A batch
   * known to be short (`stoppable` false, and no timeout) cannot be stopped once sent, and may wait
   * at a busy worker: a cancel stops the job before its next batch, and ends the worker of one still
   * running UNSTOPPABLE_GRACE_MS later.
   */
  evaluateBatch(task: Omit<BatchTask, "progress" | "progressEpoch" | "startedOn">, signal?: AbortSignal, stoppable = true): Promise<BatchResult> {
    if (!(this.evalTimeoutMs > 0)) return stoppable && signal ? this.run("default", task, signal) : this.unstoppable(task, signal);
    const progress = new Int32Array(new SharedArrayBuffer(8)).fill(-1);
    const progressEpoch = Date.now();
    return this.run("default", { ...task, progress, progressEpoch }, signal, (stop) => watchBatch(progress, progressEpoch, this.evalTimeoutMs, stop));
  }

  /**
   * A batch piscina cannot stop (it may wait at a busy worker, behind another task). Once `signal`
   * aborts, it has UNSTOPPABLE_GRACE_MS from the cancel, or from when it began if later, to finish;
   * then the worker running it is ended. A worker that dies under it may have died of the other task
   * it held (piscina gives a worker two at once), whose request alone is to fail: the batch is sent
   * once more, stoppable, which piscina runs on a worker of its own, so a second death is its own.
   */
  private async unstoppable(task: Omit<BatchTask, "progress" | "progressEpoch" | "startedOn">, signal?: AbortSignal): Promise<BatchResult> {
    signal?.throwIfAborted();
    this.refuseIfCannotStart();
    const startedOn = new Int32Array(new SharedArrayBuffer(4));
    let timer: NodeJS.Timeout | undefined;
    // Ended at a look that finds it on the thread the previous look (or the cancel) saw it begun on.
    let seen = 0;
    const look = () => {
      const thread = Atomics.load(startedOn, 0);
      if (thread !== 0 && thread === seen) return void this.piscina.threads.find((w) => w.threadId === thread)?.terminate();
      seen = thread;
      timer = setTimeout(look, UNSTOPPABLE_GRACE_MS);
    };
    const cancelled = () => {
      seen = Atomics.load(startedOn, 0);
      timer = setTimeout(look, UNSTOPPABLE_GRACE_MS);
    };
    signal?.addEventListener("abort", cancelled, { once: true });
    this.began();
    try {
      return await this.piscina.run(Object.assign(task, { startedOn }), { name: "default" });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      return await this.run("default", task, signal ?? new AbortController().signal);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", cancelled);
      this.ended();
    }
  }

  /** A whole Apply call, wire to wire: the worker decodes, validates, applies and encodes. */
  /** An Apply in a worker: its outputs, and how long apply took there (ms). */
  async applyMessage(inputs: AnyMessage | null | undefined, limits: DecodeLimits, signal?: AbortSignal): Promise<{ outputs: AnyMessage; applyMs: number }> {
    const startedId = this.evalTimeoutMs > 0 ? ++this.lastTaskId : 0;
    const watch = (stop: () => void) => {
      let timer: NodeJS.Timeout | undefined;
      this.onStart.set(startedId, () => (timer = setTimeout(stop, this.evalTimeoutMs)));
      return () => {
        clearTimeout(timer);
        this.onStart.delete(startedId);
      };
    };
    const task: ApplyTask = { tesseract: this.tesseract, inputs, limits, startedId };
    const result: ApplyResult = await this.run("applyMessage", task, signal, startedId ? watch : undefined);
    if ("error" in result) throw new TesseractError(result.error.code, result.error.message);
    return { outputs: result.outputs, applyMs: result.applyMs };
  }

  /**
   * Runs a task; a timeout, a dead worker or a cancel becomes a status naming what happened.
   * `watch(stop)` starts the task's timeout clock (calling `stop` when it expires) and returns
   * what clears it.
   */
  private async run<T>(name: string, task: BatchTask | ApplyTask, signal?: AbortSignal, watch?: (stop: () => void) => () => void): Promise<T> {
    this.refuseIfCannotStart();
    if (!signal && !watch) {
      this.began();
      return this.piscina.run(task, { name }).then(this.endedWith, this.endedDied);
    }
    const stop = new AbortController();
    const cancel = () => stop.abort();
    signal?.addEventListener("abort", cancel, { once: true });
    let timedOut = false;
    const unwatch = watch?.(() => {
      timedOut = true;
      stop.abort();
    });
    try {
      this.began();
      return await this.piscina.run(task, { name, signal: stop.signal });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if (timedOut) throw evalTimeoutError(this.evalTimeoutMs, "; its worker thread was stopped and replaced");
      throw this.failedError(e);
    } finally {
      this.ended();
      unwatch?.();
      signal?.removeEventListener("abort", cancel);
    }
  }

  /** A job's task sent (no allocation: this runs per batch). */
  private began(): void {
    this.tasksInFlight++;
    this.untidy = true;
  }

  /** A job's task settled: once none is left for IDLE_TIDY_MS, the workers are tidied. */
  private ended(): void {
    if (--this.tasksInFlight > 0) return;
    if (this.idleTimer) this.idleTimer.refresh();
    else this.idleTimer = setTimeout(() => this.tidy(), IDLE_TIDY_MS).unref();
  }

  /** What a task without a signal or a watch settles to (made once, not per task). */
  private readonly endedWith = <T>(result: T): T => {
    this.ended();
    return result;
  };
  private readonly endedDied = (e: unknown): never => {
    this.ended();
    throw this.failedError(e);
  };

  /**
   * One tidy task per ready worker, sent together while none has a task: the balancer hands each to
   * a worker that has none (one more would start a thread). Not counted as tasks, so the pool then
   * stays quiet.
   */
  private tidy(): void {
    if (this.tasksInFlight > 0 || !this.untidy) return;
    this.untidy = false;
    for (let k = this.readyAlive(); k > 0; k--) this.piscina.run(null, { name: "tidy" }).catch(() => undefined);
  }

  close(): Promise<void> {
    clearTimeout(this.idleTimer);
    // A second destroy while the first waits for its threads to exit would let piscina replace them.
    return this.destroyed ?? this.piscina.destroy();
  }
}

/** A task's worker died under it (piscina's error): what the caller is told. */
function diedError(e: unknown): TesseractError {
  const reason = e instanceof Error ? e.message : String(e);
  return new TesseractError(Code.UNKNOWN, `the worker thread running apply died (${reason}); it was replaced`, { cause: e });
}

/**
 * The timeout of a batch's evaluations without a message per evaluation: the worker writes which
 * evaluation it runs and since when (`progress`); a timer looks when the running one would expire,
 * and stops the batch if the same one is still running then.
 */
function watchBatch(progress: Int32Array, epoch: number, timeoutMs: number, stop: () => void): () => void {
  let timer: NodeJS.Timeout;
  const check = () => {
    const index = Atomics.load(progress, 0);
    const started = epoch + Atomics.load(progress, 1);
    if (index < 0) return (timer = setTimeout(check, timeoutMs)); // still queued
    const left = started + timeoutMs - Date.now();
    if (left <= 0 && Atomics.load(progress, 0) === index) return stop();
    timer = setTimeout(check, Math.max(1, left));
  };
  timer = setTimeout(check, timeoutMs);
  return () => clearTimeout(timer);
}
