/**
 * `--workers auto`: a request's evaluations run inline and are timed — apply (a, the fastest so far,
 * so a GC pause does not count) and the engine's own work per evaluation (e, the mean of the time
 * outside apply: its work per row falls between some evaluations and not others) — until the
 * worker pool is predicted to finish the rest sooner, counting the pool's measured costs (pool.ts,
 * pool-evaluator.ts):
 *
 *   inline, per evaluation:  a + e
 *   pool, per evaluation:    max(e + d,  (a + w) / min(T, C),  (e + d + a + w) / C)
 *                            (the main thread's share; the workers'; all of it over the cores)
 *   pool, once:              what starting a job costs, about two task round trips
 *
 * with d the main thread's cost of pooling one evaluation (its share of a task's round trip in a
 * full batch, handing the values over, and the engine's own extra work with many evaluations in
 * flight), w a worker's cost per evaluation beyond apply, T the threads and C the cores. The pool is
 * taken when it saves more over the evaluations left than it costs to start.
 *
 * Timings of code V8 has not optimised yet are several times too slow, and would make a cheap apply
 * look costly: until this process has evaluated WARM_EVALUATIONS times inline, only an apply so
 * costly (COSTLY_MS) that compilation cannot account for it decides for the pool. The decision is
 * taken after AUTO_SAMPLES evaluations and again every DECIDE_EVERY while the request goes on.
 *
 * The model is checked against what the pool then does: the pool's measured time per evaluation over
 * the prediction is kept (`PoolCosts.correction`, an average over requests) and multiplies later
 * predictions, so a machine where the pool does worse than modelled (a loaded one, say) stops
 * choosing it; it is measured once the pool has run WARM_EVALUATIONS (cold threads say nothing of
 * its pace). A request that declines the pool only because of the correction moves it a twentieth
 * of the way back towards 1, so the pool is tried again now and then.
 */
import { FailedPair, subtractInto, type Evaluator, type OutputInfo, type Perturbation, type PerturbationPair } from "./evaluator";
import type { InlineEvaluator } from "./inline";
import { MAX_BATCH } from "./pool-evaluator";

/** Inline evaluations timed before the first decision. */
export const AUTO_SAMPLES = 4;
const DECIDE_EVERY = 1024;
/** Inline evaluations in this process after which its timings are of optimised code. */
export const WARM_EVALUATIONS = 5000;
/** An apply this slow decides for the pool even in a cold process. */
const COSTLY_MS = 0.1;
/**
 * Main-thread milliseconds per pooled evaluation beyond its share of the task: the values handed
 * over, a promise, and the engine's extra work with hundreds of evaluations in flight (measured with
 * an instant pool: about 1.5 µs per evaluation more than one at a time).
 */
const DISPATCH_MS = 0.0015;
/** Worker milliseconds per evaluation beyond apply (perturb and restore, copying outputs out). */
const WORKER_MS = 0.001;

/** Inline evaluations timed in this process, by every request (see WARM_EVALUATIONS). */
let inlineEvaluations = 0;
/** Evaluations sent to the pool by "auto" in this process (its correction waits for warm threads). */
let pooledEvaluations = 0;

export interface PoolCosts {
  threads: number;
  cores: number;
  /** Measured round trip of an empty task. */
  taskOverheadMs: number;
  /** Whether the pool has started (its workers loaded the Tesseract, its costs are measured). */
  ready: boolean;
  /** Measured over predicted time per pooled evaluation, from earlier requests (1: none yet). */
  correction?: number;
}

/** Predicted milliseconds per evaluation in the pool (the model above, before any correction). */
export function pooledMs(applyMs: number, engineMs: number, pool: PoolCosts): number {
  const d = pool.taskOverheadMs / MAX_BATCH + DISPATCH_MS;
  const parallel = Math.max(1, Math.min(pool.threads, pool.cores));
  return Math.max(engineMs + d, (applyMs + WORKER_MS) / parallel, (engineMs + d + applyMs + WORKER_MS) / Math.max(1, pool.cores));
}

/** Milliseconds the pool is predicted to save over `remaining` evaluations (negative: it would cost). */
export function poolSavingMs(applyMs: number, engineMs: number, remaining: number, pool: PoolCosts): number {
  const pooled = pooledMs(applyMs, engineMs, pool) * (pool.correction ?? 1);
  return remaining * (applyMs + engineMs - pooled) - 2 * pool.taskOverheadMs;
}

/** What the auto evaluator needs of the server's worker pool. */
export interface AutoPool {
  costs(): PoolCosts;
  /** Starts the pool in the background (once); `costs().ready` tells when it can take evaluations. */
  startPool(): void;
  /** An evaluator for the rest of this request, in the pool. */
  makePool(): Evaluator;
  /** Measured over predicted time per pooled evaluation, for `PoolCosts.correction`. */
  observed(ratio: number): void;
  /** A request declined the pool because of the correction alone: move it a little towards 1. */
  relax(): void;
}

/**
 * Inline, timed, until the pool is predicted to pay. A pool that has not started yet is started in
 * the background and taken once it is ready (this request's remaining evaluations permitting):
 * meanwhile evaluations go on inline, so no request waits for threads to start.
 */
export class AutoEvaluator implements Evaluator {
  private pool?: Evaluator;
  private fastestApply = Infinity;
  /** When this request's first inline evaluation started, and the time its applies took since. */
  private inlineStart?: number;
  private applyTotal = 0;
  private lastEnd = 0;
  /** The costs favoured the pool, which was not ready yet. */
  private waitingForPool = false;
  /** Once pooled: the prediction, and the evaluations sent to the pool since the switch (for the correction). */
  private predictedMs = 0;
  private switchedAt = 0;
  private pooledSent = 0;

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
    return this.pool ? this.pooled(this.pool.evaluate(perturbation), 1) : this.timedInline(perturbation);
  }

  async differences(pairs: readonly PerturbationPair[]): Promise<Float64Array[][]> {
    if (!this.pool && this.waitingForPool && this.workers.costs().ready) this.decide();
    if (this.pool?.differences) return this.pooled(this.pool.differences(pairs), 2 * pairs.length);
    const results: Float64Array[][] = [];
    for (const [k, pair] of pairs.entries()) {
      const sides: Float64Array[][] = [];
      for (const [side, perturbation] of pair.entries()) {
        try {
          sides.push(await this.evaluate(perturbation));
        } catch (e) {
          throw new FailedPair(k, side, e);
        }
      }
      results.push(subtractInto(sides[0], sides[1]));
    }
    return results;
  }

  /** Pooled evaluations; every DECIDE_EVERY-th tells the pool's measured pace to the correction. */
  private pooled<T>(values: Promise<T>, evaluations: number): Promise<T> {
    const before = this.pooledSent;
    const count = (this.pooledSent += evaluations);
    pooledEvaluations += evaluations;
    // A pool whose threads run code V8 has not optimised yet says nothing of its pace.
    const warm = pooledEvaluations >= WARM_EVALUATIONS;
    if (warm && Math.floor(count / DECIDE_EVERY) > Math.floor(before / DECIDE_EVERY)) void values.then(() => this.workers.observed((performance.now() - this.switchedAt) / count / this.predictedMs), () => undefined);
    return values;
  }

  private async timedInline(perturbation: Perturbation): Promise<Float64Array[]> {
    const started = performance.now();
    this.inlineStart ??= started;
    const values = await this.inline.evaluate(perturbation);
    this.lastEnd = performance.now();
    this.fastestApply = Math.min(this.fastestApply, this.lastEnd - started);
    this.applyTotal += this.lastEnd - started;
    inlineEvaluations++;
    const done = this.inline.calls;
    if (!this.waitingForPool && (done === AUTO_SAMPLES || (done > AUTO_SAMPLES && done % DECIDE_EVERY === 0))) this.decide();
    return values;
  }

  /**
   * The engine's own milliseconds per inline evaluation: the mean of this request's time outside
   * apply (row bookkeeping between pairs, garbage collection and all), not the shortest gap, which
   * would miss what happens once per row.
   */
  private engineMs(): number {
    const calls = this.inline.calls;
    return calls > 0 && this.inlineStart !== undefined ? Math.max(0, this.lastEnd - this.inlineStart - this.applyTotal) / calls : 0;
  }

  /** Takes the pool, starts it, or stays inline, from the costs measured so far. */
  private decide(): void {
    this.waitingForPool = false;
    if (this.planned === undefined) return;
    if (inlineEvaluations < WARM_EVALUATIONS && this.fastestApply < COSTLY_MS) return; // cold timings
    const costs = this.workers.costs();
    const remaining = this.planned - this.calls;
    const engine = this.engineMs();
    const saving = poolSavingMs(this.fastestApply, engine, remaining, costs);
    if (!(saving > 0)) {
      // Declined only because of the correction: move it back a little, to try the pool again some time.
      if (poolSavingMs(this.fastestApply, engine, remaining, { ...costs, correction: 1 }) > 0) this.workers.relax();
      return;
    }
    if (costs.ready) {
      this.pool = this.workers.makePool();
      this.predictedMs = pooledMs(this.fastestApply, engine, costs);
      this.switchedAt = performance.now();
    } else {
      this.workers.startPool();
      this.waitingForPool = true;
    }
  }
}
