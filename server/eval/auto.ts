/**
 * `--workers auto`: a request's evaluations run inline and are timed — their pace (i, the mean time
 * per evaluation after the first call, pauses left out: what the rest would cost inline; the first
 * carries the request's own start, 0.28 ms of a grouped meshstats Jacobian's first pair where later
 * ones took 5 µs an evaluation, and a pause of half a millisecond among 30 evaluations made them
 * look six times dearer too), apply
 * (a, the fastest so far, so a GC pause does not count) and the engine's own work per evaluation
 * (e, the mean of the gaps between evaluations: its work per row falls between some evaluations and
 * not others; a gap longer than PAUSE_MS is a turn given to I/O or a collection, and is left out) —
 * until the worker pool is predicted to finish the rest sooner, counting the pool's measured costs
 * (pool.ts, pool-evaluator.ts):
 *
 *   inline, per evaluation:  i
 *   pool, per evaluation:    max(e + d,  (a + w) / min(T, C),  (e + d + a + w) / C) × correction
 *                            (the main thread's share; the workers'; all of it over the cores)
 *   pool, once:              what starting a job costs: its first batches' round trips while
 *                            it learns its batch size, about JOB_START_TASKS task round trips
 *
 * with d the main thread's cost of pooling one evaluation (its share of a task's round trip in a
 * full batch, handing the values over, and the engine's own extra work with many evaluations in
 * flight), w a worker's cost per evaluation beyond apply, T the threads and C the cores. The pool is
 * taken (started, the first time) when it saves, over the evaluations left and after what it costs
 * to start, at least MIN_GAIN of their inline time: a marginal gain is not worth its threads.
 *
 * Timings of code V8 has not optimised yet are several times too slow, and would make a cheap apply
 * look costly: until this process has evaluated WARM_EVALUATIONS times inline, only an apply so
 * costly (COSTLY_MS) that compilation cannot account for it decides for the pool. The decision is
 * taken after AUTO_SAMPLES evaluations where apply is that costly (each one inline is dear), else
 * after CHEAP_SAMPLES (the engine's mean needs a few rows to be measured), and again every
 * DECIDE_EVERY while the request goes on.
 *
 * The model is checked against what the pool then does: the pool's measured time per evaluation over
 * the prediction is kept (`PoolCorrection`: the least of the last few) and multiplies later
 * predictions, so a machine where the pool does worse than modelled (a loaded one, say) stops
 * choosing it. It is measured from a job's first DECIDE_EVERY pooled evaluations on, over at least
 * twice as many, once the pool has run POOL_WARM_EVALUATIONS (cold code says nothing of its pace);
 * a request too short for that (meshstats' grouped Jacobian: 2 000 evaluations) tells instead the
 * wall time of its whole pooled part, start included, over what the model predicted for it.
 * A request that declines the pool only because of the correction moves it a twentieth of the way
 * back towards 1, so the pool is tried again now and then.
 *
 * A request of the same shapes as a recent one (planned evaluations, input sizes, outputs) decides
 * before its first evaluation from that one's measurements, and so takes a pool at once instead of
 * after its samples (measured: 0.57 ms of a 7 ms grouped meshstats Jacobian went by before the
 * switch); every REMEASURE_EVERY-th measures again.
 *
 * What the model does not see (a consumer that streams every row on the main thread, a client on
 * the same cores, a loaded machine) is checked within the request: when its pooled pace (wall time
 * per evaluation, over those windows) is more than PROBE_SLOWER times the corrected prediction,
 * its next evaluations run inline for a while and are timed the same way, and the pool takes the
 * rest only if it saved MIN_GAIN of inline's time, as when it was taken. (On two cores a dense heat
 * row stream ran slower pooled than inline: 0.26-0.32 against 0.34-0.41 GB/s.) The inline pace of a request's
 * first evaluations will not do for this: it includes the request's start (the first rows of a
 * stream took four times as long as the rest). Requests of the same shapes that recall a request's
 * measurements recall too whether its comparison kept the pool, and then do not compare again.
 *
 * Across requests, what whole requests took checks the model: requests of a shape whose pooled paces
 * trail inline's run inline throughout (route-paces.ts).
 */
import { FailedPair, flatDifferences, outputStride, type ElementPairs, type Evaluator, type OutputInfo, type Perturbation } from "./evaluator";
import { pairCount, sideOf, slicePairs } from "./element-pairs";
import type { InlineEvaluator } from "./inline";
import { MAX_BATCH } from "./pool-evaluator";
import { checkSameOutputs } from "./outputs";
import { Code } from "../../common/errors";
import type { NextRoute, Route } from "./route-paces";

/** A pooled pace this many times the prediction is compared with inline's, once per request. */
const PROBE_SLOWER = 1.5;
/**
 * Inline evaluations of the comparison, timed once the pool's work in flight is back (until then the
 * main thread shares its time with it): at least PROBE_MIN_EVALUATIONS, until PROBE_MS have passed or
 * PROBE_EVALUATIONS are done. (A fixed 1 280 took 0.6 s of a 5 s heat stream on 16 cores, where
 * inline was three times slower after a few; 10 ms was short enough for a busy machine's
 * preemption to decide a comparison now and then.)
 */
const PROBE_MIN_EVALUATIONS = 64;
const PROBE_MS = 20;
const PROBE_EVALUATIONS = 1024;
/** Inline evaluations timed before the first decision, where apply is costly; where it is cheap. */
export const AUTO_SAMPLES = 4;
const CHEAP_SAMPLES = 32;
const DECIDE_EVERY = 1024;
/** Inline evaluations in this process after which its timings are of optimised code. */
export const WARM_EVALUATIONS = 5000;
/** An apply this slow decides for the pool even in a cold process. */
const COSTLY_MS = 0.1;
/**
 * Inline evaluations in this process before an inline-first request's timings say apply is costly:
 * cold code makes a 2 µs apply take 0.1 ms and more (a fresh server without its warm-up then took
 * the pool for meshstats, and its first call 14 times a warm one instead of 7).
 */
const COLD_EVALUATIONS = 1024;
/**
 * An apply this long holds the event loop too long to run there when threads could take it (health
 * checks, deadlines and every other call wait on it): once two in a row have taken this long (one
 * may be the thread preempted), later requests take the pool from their first evaluation, and a
 * request decides after its second (or its second inline batch of pairs).
 */
export const BLOCKING_APPLY_MS = 20;
/**
 * An apply this long holds the event loop beyond doubt on its own: no preemption or container CPU
 * quota stretches a quick one this far (the longest such seen, 37 ms; a quota's period is 100 ms).
 * One such apply decides as two in a row of BLOCKING_APPLY_MS do (a heat of 1.5 million steps held
 * an "auto" server's health checks 10-18 s a call, for two calls before the pool took the third).
 */
export const LONG_APPLY_MS = 500;
/**
 * Main-thread milliseconds per pooled evaluation beyond its share of the task: packing it and
 * handing its values over. Central pairs go to the pool a chunk at a time with one promise
 * (pool-evaluator.ts), so this is small (measured: the main thread spends about 1.3 µs per pooled
 * evaluation where inline it spends 1.6 µs outside apply); other rules cost more, which the
 * correction learns.
 */
const DISPATCH_MS = 0.0003;
/** Worker milliseconds per evaluation beyond apply (perturb and restore, copying outputs out). */
const WORKER_MS = 0.001;

/**
 * A job's share of the pool's threads: one per EVALUATIONS_PER_THREAD evaluations it plans (at least
 * two), up to the pool's. It bounds the job's batches in flight (two per thread of its share,
 * pool-evaluator.ts), and since the pool hands a batch to an idle worker first, up to twice its share
 * of workers run them. Every worker a job adds costs the main thread more per evaluation (meshstats
 * on 16 cores: 1.2 µs with a share of 6, 2.1 with all 15 threads), and a short job does not amortise
 * it: central Jacobians of 6 000 evaluations took 11.5 ms with a share of 6 and 14.5 on all 15
 * (medians of 11, alternated in one run); those of 18 000 gain from all of them.
 */
export function threadsForJob(planned: number | undefined, threads: number): number {
  return planned === undefined ? threads : Math.min(threads, Math.max(2, Math.ceil(planned / EVALUATIONS_PER_THREAD)));
}
const EVALUATIONS_PER_THREAD = 1000;

/** Inline evaluations timed in this process, by every request (see WARM_EVALUATIONS). */
let inlineEvaluations = 0;
/** Evaluations sent to the pool by "auto" in this process (its correction waits for warm code). */
let pooledEvaluations = 0;
/** Pooled evaluations after which the pool's pace is of optimised code on both sides. */
const POOL_WARM_EVALUATIONS = 4 * WARM_EVALUATIONS;

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

/**
 * The pool's measured pace over the modelled one (`PoolCosts.correction`), from recent jobs: the
 * least of the last RECENT_OBSERVATIONS, so that a slow stretch (a collection, a machine busy for a
 * moment, code still being optimised) does not keep the pool from being taken, while a pool slower
 * than modelled every time is not.
 */
export class PoolCorrection {
  private recent: number[] = [];

  get value(): number {
    return this.recent.length > 0 ? Math.min(...this.recent) : 1;
  }

  observed(ratio: number): void {
    this.recent.push(ratio);
    if (this.recent.length > RECENT_OBSERVATIONS) this.recent.shift();
  }

  /** Every remembered pace a twentieth of the way back towards 1 (a request declined the pool for the correction alone). */
  relax(): void {
    this.recent = this.recent.map((r) => 0.95 * r + 0.05);
  }
}
const RECENT_OBSERVATIONS = 5;

/** Predicted milliseconds per evaluation in the pool (the model above, before any correction). */
export function pooledMs(applyMs: number, engineMs: number, pool: PoolCosts): number {
  const d = pool.taskOverheadMs / MAX_BATCH + DISPATCH_MS;
  const parallel = Math.max(1, Math.min(pool.threads, pool.cores));
  return Math.max(engineMs + d, (applyMs + WORKER_MS) / parallel, (engineMs + d + applyMs + WORKER_MS) / Math.max(1, pool.cores));
}

/**
 * Milliseconds the pool is predicted to save over `remaining` evaluations (negative: it would cost),
 * against inline evaluations at `inlineMs` each (measured; by default the model's a + e).
 */
export function poolSavingMs(applyMs: number, engineMs: number, remaining: number, pool: PoolCosts, inlineMs = applyMs + engineMs): number {
  const pooled = pooledMs(applyMs, engineMs, pool) * (pool.correction ?? 1);
  return remaining * (inlineMs - pooled) - JOB_START_TASKS * pool.taskOverheadMs;
}

/** The least share of the rest's inline time the pool must save to be taken (or started). */
const MIN_GAIN = 0.15;
/** Task round trips a job's start costs (measured: a 120-evaluation job lost about six to the pool). */
const JOB_START_TASKS = 6;
/** A gap between two inline evaluations longer than this is not the engine's work (see the module comment). */
const PAUSE_MS = 0.05;

/** What a request measured inline (ms per evaluation): its apply's, the engine's own, and its pace. */
export interface InlineCosts {
  applyMs: number;
  engineMs: number;
  inlineMs: number;
}

/** Requests of the same shapes that decide from one request's measurements before one measures again. */
export const REMEASURE_EVERY = 8;

/** What the auto evaluator needs of the server's worker pool. */
export interface AutoPool {
  costs(): PoolCosts;
  /** Starts the pool in the background (once); `costs().ready` tells when it can take evaluations. */
  startPool(): void;
  /** Settles once the pool started is ready, or after the most an evaluation waits for it. */
  poolStart?(): Promise<void>;
  /** An evaluator for the rest of this request, in the pool. */
  makePool(): Evaluator;
  /** Measured over predicted time per pooled evaluation, for `PoolCosts.correction`. */
  observed(ratio: number): void;
  /** A request declined the pool because of the correction alone: move it a little towards 1. */
  relax(): void;
  /** What a recent request of these shapes measured, unless REMEASURE_EVERY have decided from it already. */
  recalled?(): InlineCosts | undefined;
  /** This request's measurements, for the next ones of its shapes. */
  remember?(costs: InlineCosts): void;
  /**
   * Whether a recent request of these shapes, comparing a warm pool with inline, kept the pool: the
   * requests that recall its measurements do not compare again (a comparison runs part of a request
   * inline: meshstats of 18 000 evaluations on 16 cores took 61 ms instead of 35 when every request
   * compared anew). An outcome for inline is not kept: one comparison is short and may be noisy, and
   * a request that drops the pool finds out again within itself.
   */
  keptPool?(): boolean;
  /** This request's comparison, on a warm pool, kept it. */
  poolKept?(): void;
  /** The last apply timed in the event loop, where it took BLOCKING_APPLY_MS or more. */
  blockingApplyMs?(): number | undefined;
  /** An apply (or the mean of a batch's) just timed in the event loop, in ms. */
  applied?(ms: number): void;
  /**
   * What recent requests of these shapes took, by route (route-paces.ts): "inline" to run this one
   * inline throughout, "inline first" the same unless its evaluations prove costly, undefined to
   * decide by the model.
   */
  route?(): NextRoute;
  /** This request's evaluations are all back: it took `route` at `msPerEvaluation` (first to last). */
  paced?(route: Route, msPerEvaluation: number): void;
  /** Inline's pace in recent requests of these shapes that ran inline throughout, while the pool's is unknown (route-paces.ts). */
  routeInlineMs?(): number | undefined;
}

/**
 * Inline, timed, until the pool is predicted to pay. A pool that has not started yet is started in
 * the background and taken once it is ready (this request's remaining evaluations permitting):
 * meanwhile evaluations go on inline, so no request waits for threads to start.
 */
export class AutoEvaluator implements Evaluator {
  private pool?: Evaluator;
  private fastestApply = Infinity;
  /** The engine's time between inline evaluations (gaps up to PAUSE_MS), and how many gaps. */
  private engineTotal = 0;
  private gaps = 0;
  /** When the first inline call ended, with the inline evaluations by then (the pace counts from there), and when the last one ended. */
  private paceFrom?: { at: number; calls: number };
  private lastEnd?: number;
  /** Gaps between inline calls longer than PAUSE_MS since `paceFrom`: left out of the pace. */
  private pausedMs = 0;
  /** The costs favoured the pool, which was not ready yet. */
  private waitingForPool = false;
  /**
   * Once pooled: the prediction, the evaluations sent to the pool, and when its first window ended
   * with how many back, over how many more the pace is measured (whether the pool was warm then:
   * only a warm pool's pace goes to the correction).
   */
  private predictedMs = 0;
  /** The prediction times the correction: the pace this machine's pool usually keeps against the model. */
  private expectedMs = 0;
  private pooledSent = 0;
  private window?: { started: number; back: number; span: number; warm: boolean };
  /**
   * When the first pooled evaluation was sent (and whether the pool was warm then), the evaluations
   * back since, and what the model predicted the start to cost.
   */
  private pooledFrom?: { at: number; warm: boolean };
  private pooledBack = 0;
  private startMs = 0;
  /** The windows have told the correction this request's pace. */
  private windowObserved = false;
  /**
   * The pool set against inline, once a request: under way (inline again, timed from `timed` on,
   * once the pool's evaluations are back, against the pooled pace), or its outcome.
   */
  private comparison?: { pooledMs: number; warm: boolean; timed?: { at: number; calls: number } } | "pool" | "inline";
  /** This request decided from a recent one's measurements (and so follows its comparison, if that kept the pool). */
  private recalled = false;
  /** Whether `start` has run (at the first evaluation). */
  private started = false;
  /** Timings in a row (an evaluation's, or an inline batch's mean) of BLOCKING_APPLY_MS or more. */
  private blockingInARow = 0;
  /** One took LONG_APPLY_MS or more; and whether this request has waited for the pool to start since (it waits once). */
  private longApply = false;
  private waitedForPool = false;
  /** Inline evaluations under way, how many were started, and the inline count when decision points were last looked for. */
  private inlineRunning = 0;
  private inlineStarts = 0;
  private lookedAt = 0;
  /** Recent requests of these shapes ran faster inline than pooled: this one runs inline, unless apply holds the event loop. */
  private inlineThroughout = false;
  /** Inline throughout as the first of its shape (NextRoute "inline first"), until its timings say apply is costly: how many, and the quickest. */
  private inlineFirst = false;
  private inlineFirstTimings = 0;
  private inlineFirstQuickestMs = Infinity;
  /** When the first evaluation started (this request's pace is told from there), and whether it has been told. */
  private firstAt = 0;
  private paceTold = false;

  constructor(
    private readonly inline: InlineEvaluator,
    /** Evaluations the request plans in all (undefined: unknown, the pool is not considered); its plan may change it (replanned). */
    private plannedEvaluations: number | undefined,
    private readonly workers: AutoPool,
  ) {}

  get planned(): number | undefined {
    return this.plannedEvaluations;
  }

  replanned(evaluations: number): void {
    if (this.plannedEvaluations !== undefined) this.plannedEvaluations = evaluations;
  }

  get calls(): number {
    return this.inline.calls + (this.pool?.calls ?? 0);
  }

  get outputs(): OutputInfo[] | undefined {
    return this.inline.outputs ?? this.pool?.outputs;
  }

  /** The pool while it takes this request's evaluations. */
  private get pooling(): Evaluator | undefined {
    return this.comparison === undefined || this.comparison === "pool" ? this.pool : undefined;
  }

  get concurrency(): number {
    return this.pooling?.concurrency ?? 1;
  }

  get taskEvaluations(): number | undefined {
    return this.pooling?.taskEvaluations;
  }

  evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    if (!this.started) this.start();
    if (this.mustWaitForPool()) return this.waitForPool().then(() => this.evaluate(perturbation));
    if (!this.pool && this.waitingForPool && this.workers.costs().ready) this.decide();
    const pool = this.pooling;
    const values = pool ? this.pooled(pool.evaluate(perturbation), 1) : this.timedInline(perturbation);
    return this.pool && !this.sameOutputs ? values.then((v) => this.checked(v)) : values;
  }

  /** Whether inline's outputs and the pool's were found the same (each resolved the paths on a tree of its own). */
  private sameOutputs = false;

  /** `values`, once inline's and the pool's outputs, where both are known, are the same: values of the two are combined by position. */
  private checked<T>(values: T): T {
    if (!this.sameOutputs && this.inline.outputs && this.pool?.outputs) {
      checkSameOutputs(this.pool.outputs, this.inline.outputs, Code.INTERNAL, "at one evaluation", "another");
      this.sameOutputs = true;
    }
    return values;
  }

  /**
   * After an apply of LONG_APPLY_MS decided for a pool still starting, the request's next evaluation
   * waits for it (once, up to the server's limit), as the next Apply does (backends.ts): inline, each
   * held the event loop again (a fresh server's first Jacobian of 1.5 s applies ran 10 of its 12
   * evaluations there, and its health checks missed their 5 s deadline three times in a row).
   */
  private mustWaitForPool(): boolean {
    return this.longApply && this.waitingForPool && !this.waitedForPool && !this.pool && !this.workers.costs().ready;
  }

  private async waitForPool(): Promise<void> {
    this.waitedForPool = true;
    await this.workers.poolStart?.();
    // A cancel meanwhile stops the request here.
    const turn = this.inline.turn();
    if (turn) await turn;
  }

  /**
   * Between inline evaluations of one call: a turn for I/O once they have held the event loop
   * (InlineEvaluator.turn; a cancel stops there), and the pool taken if it is ready (waited for, as
   * `mustWaitForPool` says).
   */
  private async betweenInline(): Promise<void> {
    const turn = this.inline.turn();
    if (turn) await turn;
    if (this.mustWaitForPool()) await this.waitForPool();
    if (!this.pool && this.waitingForPool && this.workers.costs().ready) this.decide();
  }

  async differences(pairs: ElementPairs): Promise<Float64Array> {
    if (!this.started) this.start();
    if (this.mustWaitForPool()) await this.waitForPool();
    if (!this.pool && this.waitingForPool && this.workers.costs().ready) this.decide();
    const count = pairCount(pairs);
    const pool = this.pooling;
    if (pool?.differences) return this.pooled(pool.differences(pairs), 2 * count).then((v) => this.checked(v));
    // Inline. Where no decision can fall within them, the pairs run in the inline batch loop (its
    // pace is measured all the same); otherwise each evaluation is timed, and once the pool is
    // taken, the rest of the pairs go there together.
    const done = this.inline.calls;
    const nextDecision = done < CHEAP_SAMPLES ? CHEAP_SAMPLES : (Math.floor(done / DECIDE_EVERY) + 1) * DECIDE_EVERY;
    if (this.waitingForPool || this.pool || this.inlineThroughout || done + 2 * count < nextDecision) {
      const started = performance.now();
      // The batch stops at a turn where the rest should go elsewhere: after an apply that held the
      // event loop LONG_APPLY_MS (the request decides on it now), or once a pool waited for is ready.
      let longMs = 0;
      const handOver = (heldMs: number) => {
        if (heldMs >= LONG_APPLY_MS && !this.pool && !this.waitingForPool) return (longMs = heldMs) > 0;
        return !this.pool && this.waitingForPool && this.workers.costs().ready;
      };
      const { value, alone } = await this.inlineCall(() => this.inline.differencesUntil(pairs, handOver), () => this.paused(started));
      const { values, done: evaluated } = value;
      this.lastEnd = performance.now();
      this.paceFrom ??= { at: this.lastEnd, calls: this.inline.calls };
      const meanMs = (this.lastEnd - started) / (2 * evaluated);
      if (alone) this.workers.applied?.(longMs || meanMs);
      inlineEvaluations += 2 * evaluated;
      this.probeStep();
      if (alone && this.blocking(longMs || meanMs) && !this.waitingForPool && !this.pool) {
        this.fastestApply = Math.min(this.fastestApply, meanMs);
        this.decide(true);
      } else if (alone) this.costly(meanMs);
      this.tellPace();
      if (evaluated === count) return this.checked(values);
      const rest = await this.differences(slicePairs(pairs, evaluated)).catch((e) => {
        throw e instanceof FailedPair ? new FailedPair(evaluated + e.pair, e.side, e.error) : e;
      });
      const all = new Float64Array(values.length + rest.length);
      all.set(values);
      all.set(rest, values.length);
      return all;
    }
    const results: Float64Array[][] = [];
    for (let k = 0; k < count; k++) {
      if (k > 0) await this.betweenInline();
      const taken = this.pooling;
      if (taken?.differences && k > 0) {
        const done = flatDifferences(results, outputStride(this.outputs!), pairs.widths);
        const rest = this.checked(
          await this.pooled(taken.differences(slicePairs(pairs, k)), 2 * (count - k)).catch((e) => {
            throw e instanceof FailedPair ? new FailedPair(k + e.pair, e.side, e.error) : e;
          }),
        );
        const all = new Float64Array(done.length + rest.length);
        all.set(done);
        all.set(rest, done.length);
        return all;
      }
      for (let side = 0; side < 2; side++) {
        if (side > 0) {
          const turn = this.inline.turn();
          if (turn) await turn;
        }
        try {
          results.push(await this.timedInline(sideOf(pairs, k, side)));
        } catch (e) {
          throw new FailedPair(k, side, e);
        }
      }
    }
    return flatDifferences(results, outputStride(this.outputs!), pairs.widths);
  }

  /**
   * Pooled evaluations. Their pace is measured by what comes back (sends run ahead of returns by
   * the pool's whole concurrency, and out of order: measured by sends, two windows ended a few
   * microseconds apart, 0.03 µs an evaluation against a real 1.5, and the correction, the least of
   * such paces, fell to 0.03): at every DECIDE_EVERY-th evaluation back, from the first window on,
   * a warm pool's pace is told to the correction, and the first time it is far off the prediction,
   * it is set against inline's.
   */
  private pooled<T>(values: Promise<T>, evaluations: number): Promise<T> {
    this.pooledFrom ??= { at: performance.now(), warm: pooledEvaluations >= POOL_WARM_EVALUATIONS };
    this.pooledSent += evaluations;
    pooledEvaluations += evaluations;
    // A pool whose code (the workers', and the main thread's side of it) V8 has not optimised yet
    // says nothing of its pace to later requests; this request's own comparison with inline takes it as it is.
    const warm = pooledEvaluations >= POOL_WARM_EVALUATIONS;
    const back = () => this.returned(evaluations, warm);
    void values.then(back, back); // a failure is back too: the comparison waits for all
    return values;
  }

  /**
   * `evaluations` came back from the pool. The pace from the first DECIDE_EVERY evaluations on (the
   * job's start is a cost the model counts apart), over two windows of them more than was in flight
   * when the first ended: a shorter span is as lumpy as the batches, and evaluations sent
   * together come back together.
   */
  private returned(evaluations: number, warm: boolean): void {
    const back = (this.pooledBack += evaluations);
    this.requestDone();
    this.tellPace();
    const window = this.window;
    if (!window) {
      if (back >= DECIDE_EVERY) this.window = { started: performance.now(), back, span: 2 * DECIDE_EVERY + (this.pooledSent - back), warm };
      return;
    }
    if (back - window.back < window.span) return;
    const paceMs = (performance.now() - window.started) / (back - window.back);
    window.span = back - window.back + DECIDE_EVERY; // the next look, DECIDE_EVERY later
    if (window.warm) {
      this.workers.observed(paceMs / this.predictedMs);
      this.windowObserved = true;
    }
    if (this.comparison === undefined && paceMs > PROBE_SLOWER * this.expectedMs) {
      // A recent request of these shapes compared them already, and kept the pool: so does this one.
      this.comparison = this.recalled && this.workers.keptPool?.() ? "pool" : { pooledMs: paceMs, warm: window.warm };
    }
  }

  /**
   * An inline call (`gap` run at its start if none was under way), and whether it was `alone`: no
   * other started before it was back. The engine may start several at once (a grouped forward
   * Jacobian's groups): each runs its apply before the others' awaits return, so only the first
   * follows a gap (counted for each, a pause exceeded the time that passed and the pace came out
   * negative), and only a call alone timed its own apply.
   */
  private async inlineCall<T>(call: () => Promise<T>, gap: () => void): Promise<{ value: T; alone: boolean }> {
    const start = ++this.inlineStarts;
    if (this.inlineRunning++ === 0) gap();
    try {
      const value = await call();
      return { value, alone: start === this.inlineStarts };
    } finally {
      this.inlineRunning--;
    }
  }

  private async timedInline(perturbation: Perturbation): Promise<Float64Array[]> {
    const started = performance.now();
    const { value: values, alone } = await this.inlineCall(
      () => this.inline.evaluate(perturbation),
      () => {
        const gap = this.lastEnd === undefined ? Infinity : started - this.lastEnd;
        if (gap <= PAUSE_MS) {
          this.engineTotal += gap;
          this.gaps++;
        } else this.paused(started);
      },
    );
    this.lastEnd = performance.now();
    this.paceFrom ??= { at: this.lastEnd, calls: this.inline.calls };
    this.probeStep();
    if (alone) {
      this.fastestApply = Math.min(this.fastestApply, this.lastEnd - started);
      this.workers.applied?.(this.lastEnd - started);
    }
    inlineEvaluations++;
    const blocking = alone && this.blocking(this.lastEnd - started);
    if (alone && !blocking) this.costly(this.lastEnd - started);
    if (!this.waitingForPool && (this.decisionDue(this.inline.calls) || blocking)) this.decide(blocking);
    this.tellPace();
    return values;
  }

  /**
   * Whether a decision point (AUTO_SAMPLES where apply is costly, CHEAP_SAMPLES, every DECIDE_EVERY)
   * was reached since the last look: evaluations started together advance the count by several at once.
   */
  private decisionDue(done: number): boolean {
    const from = this.lookedAt;
    if (done <= from) return false;
    this.lookedAt = done;
    const reached = (point: number) => from < point && point <= done;
    // (No apply timed alone yet: none is known to be costly.)
    return (reached(AUTO_SAMPLES) && Number.isFinite(this.fastestApply) && this.fastestApply >= COSTLY_MS) || reached(CHEAP_SAMPLES) || (done > CHEAP_SAMPLES && Math.floor(done / DECIDE_EVERY) > Math.floor(from / DECIDE_EVERY));
  }

  /**
   * An inline timing taken alone, in an inline-first request: once AUTO_SAMPLES have been taken and
   * the quickest is COSTLY_MS or more, it decides now, and as any other request from here on. (The
   * quickest, not the latest: a cheap apply's batches that met a collection or a preempted thread
   * do not make it costly.)
   */
  private costly(ms: number): void {
    if (!this.inlineFirst || this.pool || this.waitingForPool || inlineEvaluations < COLD_EVALUATIONS) return;
    this.inlineFirstQuickestMs = Math.min(this.inlineFirstQuickestMs, ms);
    if (++this.inlineFirstTimings < AUTO_SAMPLES || this.inlineFirstQuickestMs < COSTLY_MS) return;
    this.inlineFirst = this.inlineThroughout = false;
    this.fastestApply = Math.min(this.fastestApply, this.inlineFirstQuickestMs);
    this.decide();
  }

  /** Whether this timing makes two in a row of BLOCKING_APPLY_MS or more, or is LONG_APPLY_MS: apply holds the event loop (see there). */
  private blocking(ms: number): boolean {
    this.blockingInARow = ms >= BLOCKING_APPLY_MS ? this.blockingInARow + 1 : 0;
    if (ms >= LONG_APPLY_MS) this.longApply = true;
    return this.blockingInARow === 2 || ms >= LONG_APPLY_MS;
  }

  /**
   * Once every planned evaluation is sent and the pool's are back: a request that the windows did not
   * measure tells the correction its pooled part's wall time over the model's prediction for it.
   */
  private requestDone(): void {
    if (this.windowObserved || !this.pooledFrom?.warm || this.planned === undefined || this.calls < this.planned || this.pooledBack < this.pooledSent) return;
    this.windowObserved = true;
    this.workers.observed((performance.now() - this.pooledFrom.at) / (this.pooledSent * this.predictedMs + this.startMs));
  }

  /** Once every planned evaluation is back: this request's route and pace, for the next ones of its shapes (route-paces.ts). */
  private tellPace(): void {
    if (this.paceTold || this.planned === undefined || this.calls < this.planned || this.pooledBack < this.pooledSent) return;
    this.paceTold = true;
    this.workers.paced?.(this.pooledSent > 0 ? "pool" : "inline", (performance.now() - this.firstAt) / this.calls);
  }

  /** The comparison inline (see the module comment): after it, inline for good, or the pool again. */
  private probeStep(): void {
    const probe = this.comparison;
    if (typeof probe !== "object") return;
    const calls = this.inline.calls;
    if (!probe.timed) {
      if (this.pooledBack >= this.pooledSent) probe.timed = { at: this.lastEnd!, calls };
      return;
    }
    const timed = calls - probe.timed.calls;
    if (timed < PROBE_MIN_EVALUATIONS || (timed < PROBE_EVALUATIONS && this.lastEnd! - probe.timed.at < PROBE_MS)) return;
    const inlineMs = (this.lastEnd! - probe.timed.at) / (calls - probe.timed.calls);
    // As when taking it: the pool is kept only if it saves at least MIN_GAIN of inline's time.
    this.comparison = probe.pooledMs < (1 - MIN_GAIN) * inlineMs ? "pool" : "inline";
    // Only a warm pool's showing is kept for later requests (cold code says little of its pace).
    if (probe.warm && this.comparison === "pool") this.workers.poolKept?.();
    this.window = undefined; // the pool's pace from here on, not across the comparison
  }

  /** Inline's milliseconds per evaluation after the first call, pauses left out (see the module comment); the model's a + e before a second. */
  private inlinePace(): number {
    const paced = this.inline.calls - (this.paceFrom?.calls ?? this.inline.calls);
    return paced > 0 ? (this.lastEnd! - this.paceFrom!.at - this.pausedMs) / paced : this.fastestApply + this.engineMs();
  }

  /** An inline call starts at `started`: a gap since the last one longer than PAUSE_MS is a pause (a collection, a turn given to I/O). */
  private paused(started: number): void {
    if (this.paceFrom && this.lastEnd !== undefined && started - this.lastEnd > PAUSE_MS) this.pausedMs += started - this.lastEnd;
  }

  /** The engine's mean milliseconds per inline evaluation (see the module comment). */
  private engineMs(): number {
    return this.gaps > 0 ? this.engineTotal / this.gaps : 0;
  }

  /**
   * Before the first evaluation: unless an apply held the event loop lately, recent requests of these
   * shapes ran faster inline than pooled, or inline goes first: inline throughout (route-paces.ts);
   * else a recent request of these shapes measured its costs, and the pool is ready: decide from
   * those; else an apply that held the event loop lately: decide from its time (the pool started, if
   * it has not, and taken once ready).
   */
  private start(): void {
    this.started = true;
    this.firstAt = performance.now();
    if (this.planned === undefined) return;
    const blockingMs = this.workers.blockingApplyMs?.();
    const route = blockingMs === undefined ? this.workers.route?.() : undefined;
    if (route === "inline" || route === "inline first") {
      this.inlineThroughout = true;
      this.inlineFirst = route === "inline first";
      return;
    }
    const recalled = this.workers.costs().ready ? this.workers.recalled?.() : undefined;
    this.recalled = recalled !== undefined;
    if (recalled) this.decideFrom(recalled);
    else if (blockingMs !== undefined) this.decideFrom({ applyMs: blockingMs, engineMs: 0, inlineMs: blockingMs });
  }

  /** Takes the pool, starts it, or stays inline, from the costs measured so far (`blocking`: apply holds the event loop). */
  private decide(blocking = false): void {
    this.waitingForPool = false;
    // Apply holds the event loop: no longer inline throughout, so the pool is taken once ready (it was dropped then).
    if (blocking) this.inlineThroughout = this.inlineFirst = false;
    if (this.planned === undefined || this.pool || (this.inlineThroughout && !blocking)) return;
    if (inlineEvaluations < WARM_EVALUATIONS && this.fastestApply < COSTLY_MS) return; // cold timings
    const measured = { applyMs: this.fastestApply, engineMs: this.engineMs(), inlineMs: this.inlinePace() };
    this.workers.remember?.(measured);
    this.decideFrom(measured);
  }

  private decideFrom({ applyMs, engineMs, inlineMs: timedMs }: InlineCosts): void {
    const costs = this.workers.costs();
    // Whole inline requests, in the batch loop, paced faster than evaluations timed one by one.
    const inlineMs = this.workers.routeInlineMs?.() ?? timedMs;
    const remaining = this.planned! - this.calls;
    // Worth its threads and their memory: a pool that would save little is not started or taken.
    const worthwhile = MIN_GAIN * remaining * inlineMs;
    const saving = poolSavingMs(applyMs, engineMs, remaining, costs, inlineMs);
    if (!(saving > worthwhile)) {
      // Declined only because of the correction: move it back a little, to try the pool again some time.
      if (poolSavingMs(applyMs, engineMs, remaining, { ...costs, correction: 1 }, inlineMs) > worthwhile) this.workers.relax();
      return;
    }
    if (costs.ready) {
      this.pool = this.workers.makePool();
      this.predictedMs = pooledMs(applyMs, engineMs, costs);
      this.expectedMs = this.predictedMs * (costs.correction ?? 1);
      this.startMs = JOB_START_TASKS * costs.taskOverheadMs;
    } else {
      this.workers.startPool();
      this.waitingForPool = true;
    }
  }
}
