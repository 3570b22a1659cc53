/**
 * `--workers auto`: a request's first evaluations run inline and are timed — apply (a, the fastest
 * of them, so a first call's compilation or a GC pause does not count) and the engine's own work
 * between two evaluations (e) — and the rest of the request goes to the worker pool when the pool
 * is predicted to finish it sooner, counting the pool's measured costs (pool.ts, pool-evaluator.ts):
 *
 *   inline, per evaluation:  a + e
 *   pool, per evaluation:    max(e + d,  (a + w) / min(T, C),  (e + d + a + w) / C)
 *                            (the main thread's share; the workers'; all of it over the cores)
 *   pool, once:              what starting a job costs, about two task round trips
 *
 * with d the main thread's cost of pooling one evaluation (its share of a task's round trip in a
 * full batch plus handing the values over), w a worker's cost per evaluation beyond apply, T the
 * threads and C the cores. The pool is taken when it saves more over the evaluations left than it
 * costs to start.
 */
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";
import type { InlineEvaluator } from "./inline";
import { MAX_BATCH } from "./pool-evaluator";

/** Inline evaluations timed before deciding. */
export const AUTO_SAMPLES = 4;
/** Main-thread milliseconds per pooled evaluation beyond its share of the task (the values handed over, a promise). */
const DISPATCH_MS = 0.0005;
/** Worker milliseconds per evaluation beyond apply (perturb and restore, copying outputs out). */
const WORKER_MS = 0.0005;

export interface PoolCosts {
  threads: number;
  cores: number;
  /** Measured round trip of an empty task. */
  taskOverheadMs: number;
  /** Whether the pool has started (its workers loaded the Tesseract, its costs are measured). */
  ready: boolean;
}

/** Milliseconds the pool is predicted to save over `remaining` evaluations (negative: it would cost). */
export function poolSavingMs(applyMs: number, engineMs: number, remaining: number, pool: PoolCosts): number {
  const d = pool.taskOverheadMs / MAX_BATCH + DISPATCH_MS;
  const parallel = Math.max(1, Math.min(pool.threads, pool.cores));
  const pooled = Math.max(engineMs + d, (applyMs + WORKER_MS) / parallel, (engineMs + d + applyMs + WORKER_MS) / Math.max(1, pool.cores));
  return remaining * (applyMs + engineMs - pooled) - 2 * pool.taskOverheadMs;
}

/** What the auto evaluator needs of the server's worker pool. */
export interface AutoPool {
  costs(): PoolCosts;
  /** Starts the pool in the background (once); `costs().ready` tells when it can take evaluations. */
  startPool(): void;
  /** An evaluator for the rest of this request, in the pool. */
  makePool(): Evaluator;
}

/**
 * Inline, timed, until the pool is predicted to pay. A pool that has not started yet is started in
 * the background and taken once it is ready (this request's remaining evaluations permitting):
 * meanwhile evaluations go on inline, so no request waits for threads to start.
 */
export class AutoEvaluator implements Evaluator {
  private pool?: Evaluator;
  private fastestApply = Infinity;
  private fastestEngine = Infinity;
  private timed = 0;
  private lastEnd?: number;
  /** The costs favoured the pool, which was not ready yet. */
  private waitingForPool = false;

  constructor(
    private readonly inline: InlineEvaluator,
    /** Evaluations the request plans in all (undefined: unknown, the pool is not considered). */
    private readonly planned: number | undefined,
    private readonly workers: AutoPool,
  ) {}

  get calls(): number {
    return this.inline.calls + (this.pool?.calls ?? 0);
  }

  get outputs(): OutputInfo[] | undefined {
    return this.inline.outputs ?? this.pool?.outputs;
  }

  get concurrency(): number {
    return this.pool?.concurrency ?? 1;
  }

  evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    if (!this.pool && this.waitingForPool && this.workers.costs().ready) this.decide();
    return this.pool ? this.pool.evaluate(perturbation) : this.timedInline(perturbation);
  }

  private async timedInline(perturbation: Perturbation): Promise<Float64Array[]> {
    const started = performance.now();
    if (this.lastEnd !== undefined) this.fastestEngine = Math.min(this.fastestEngine, started - this.lastEnd);
    const values = await this.inline.evaluate(perturbation);
    this.lastEnd = performance.now();
    this.fastestApply = Math.min(this.fastestApply, this.lastEnd - started);
    if (++this.timed === AUTO_SAMPLES) this.decide();
    return values;
  }

  /** Takes the pool, starts it, or stays inline, from the costs measured so far. */
  private decide(): void {
    this.waitingForPool = false;
    if (this.planned === undefined) return;
    const costs = this.workers.costs();
    const saving = poolSavingMs(this.fastestApply, this.fastestEngine, this.planned - this.calls, costs);
    if (!(saving > 0)) return;
    if (costs.ready) this.pool = this.workers.makePool();
    else {
      this.workers.startPool();
      this.waitingForPool = true;
    }
  }
}
