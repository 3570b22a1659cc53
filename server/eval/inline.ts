/**
 * Runs apply in the calling thread. Perturb-and-restore: the changed elements of the base inputs are
 * set in place, apply runs, the outputs are copied out, and the elements are put back; nothing else
 * is copied, so an evaluation costs what apply costs. One evaluation at a time: overlapping calls
 * wait their turn, since two perturbations of the same inputs cannot coexist. A synchronous apply
 * is evaluated synchronously (no promise hop per evaluation); an asynchronous one is given up on
 * after `timeoutMs` (its inputs stay perturbed, but the request that owns them has failed). In the
 * server's event loop (not a worker thread's) a batch gives I/O a turn between evaluations once they
 * have held it YIELD_EVERY_MS, and stops at the request's cancel: a batch of 500 ms applies answered
 * health checks once every six evaluations, and went on for two more after a cancel.
 */
import type { OutputSelector } from "./outputs";
import type { InputLeaf } from "./input-leaf";
import { FailedPair, outputStride, type ElementPairs, type Evaluator, type OutputInfo, type Perturbation } from "./evaluator";
import { pairCount, sideOf } from "./element-pairs";
import { divideByWidths } from "./finite-values";
import { withTimeout } from "./timeout";
import { isThenable, settledOutputs } from "./settled-outputs";

/** What `batch` returns: item k's values at k × stride (all outputs, one after the other), and the items that failed. */
export interface BatchValues {
  values: Float64Array;
  /** Failed items by index (of a pair, the side that failed: 0 or 1), with what apply threw. */
  failed: { index: number; side?: 0 | 1; error: unknown }[];
  /** Every value was checked finite as it was made (pairs divided by their widths). */
  finite?: boolean;
  /** Items evaluated (fewer than asked for where `handOver` stopped the batch). */
  done: number;
}

export interface BatchOptions {
  /** Stop at the first failure (else it is recorded and the rest still run). */
  stopAtFailure?: boolean;
  /** Told as evaluation e of the batch starts. */
  onStart?: (e: number) => void;
  /**
   * Asked after each turn given to I/O before an item, with the milliseconds the evaluations since
   * the last turn held the event loop: true stops the batch there (BatchValues.done), for the rest
   * to be evaluated elsewhere.
   */
  handOver?: (heldMs: number) => boolean;
}

/** How long evaluations may hold the event loop before I/O gets a turn (as the engine's between calls: fd/problem.ts). */
const YIELD_EVERY_MS = 1;
const CLOCK_RUN_MS = 0.05;
const MAX_CLOCK_RUN = 16;

/**
 * How `batch` evaluates side `side` of item k: at once, its selected outputs written into `target`
 * from `at` (a pair's second side subtracted there from the first); or as a Perturbation.
 */
interface BatchSides {
  into(k: number, side: number, target: Float64Array, at: number): number | Promise<number>;
  perturbation(k: number, side: number): Perturbation;
}

const ignore = () => undefined;

export class InlineEvaluator implements Evaluator {
  calls = 0;
  readonly concurrency = 1;
  /** Settles when the asynchronous evaluation in progress does; undefined when none is. */
  private busy: Promise<unknown> | undefined;

  constructor(
    private readonly apply: (inputs: unknown) => unknown,
    private readonly inputs: unknown,
    private readonly leaves: readonly InputLeaf[],
    private readonly selector: OutputSelector,
    private readonly timeoutMs = 0,
    /** In the server's event loop: evaluations give I/O turns, and stop at `signal` (see the module comment). */
    private readonly eventLoop?: { signal?: AbortSignal },
  ) {}

  /** When I/O last had a turn between this evaluator's evaluations. */
  private lastTurn = performance.now();
  /**
   * Evaluations between readings of the clock, those left until the next, and when it was last read:
   * a reading costs about what a cheap apply does (0.1 µs against meshstats' 1.4 on a busy machine:
   * a batch took 10-14 % longer read every evaluation), so quick ones are read in runs of about
   * CLOCK_RUN_MS, up to MAX_CLOCK_RUN evaluations.
   */
  private clockRun = 1;
  private untilClock = 1;
  private clockAt = this.lastTurn;

  /**
   * Before an evaluation in the event loop: a turn for I/O (a promise to wait for) once evaluations
   * have held it YIELD_EVERY_MS, and a stop (the abort reason thrown) if the request was cancelled.
   * Synchronous otherwise, so that cheap evaluations wait for nothing. The promise tells how long
   * the evaluations since the last turn held the event loop (ms).
   */
  turn(): Promise<number> | undefined {
    if (!this.eventLoop) return undefined;
    const { signal } = this.eventLoop;
    if (--this.untilClock > 0) {
      signal?.throwIfAborted();
      return undefined;
    }
    const now = performance.now();
    this.clockRun = this.untilClock = Math.min(MAX_CLOCK_RUN, Math.max(1, Math.floor((CLOCK_RUN_MS * this.clockRun) / (now - this.clockAt))));
    this.clockAt = now;
    const heldMs = now - this.lastTurn;
    if (heldMs <= YIELD_EVERY_MS) {
      signal?.throwIfAborted();
      return undefined;
    }
    return new Promise<void>(setImmediate).then(() => {
      this.lastTurn = this.clockAt = performance.now();
      signal?.throwIfAborted();
      return heldMs;
    });
  }

  /**
   * A batch starts: its own hold is timed from here (the engine gave I/O a turn before the call,
   * fd/problem.ts), and its first evaluation alone (what came before was not an evaluation).
   */
  private startTurns(): void {
    this.lastTurn = this.clockAt = performance.now();
    this.clockRun = 1;
    this.untilClock = 2;
  }

  get outputs(): OutputInfo[] | undefined {
    return this.selector.outputs;
  }

  evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    if (!this.busy) return this.run(perturbation);
    const result = this.busy.then(() => this.run(perturbation));
    this.track(result);
    return result;
  }

  /** Makes later evaluations wait for `result` (only an asynchronous apply leaves one pending). */
  private track(result: Promise<unknown>): void {
    const settled = result.then(ignore, ignore);
    this.busy = settled;
    void settled.then(() => {
      if (this.busy === settled) this.busy = undefined;
    });
  }

  /** What the changed elements held before (one slot per change of the evaluation in progress). */
  private saved: (number | Float64Array | Float32Array)[] = [];

  /** Sets the changed elements, keeping what they held. */
  private perturb(perturbation: Perturbation): void {
    for (let c = 0; c < perturbation.length; c++) {
      const change = perturbation[c];
      const data = this.leaves[change.leaf].data;
      if ("indices" in change) {
        const { indices, points } = change;
        const before = new Float64Array(indices.length);
        for (let k = 0; k < indices.length; k++) {
          before[k] = data[indices[k]];
          data[indices[k]] = points[k];
        }
        this.saved[c] = before;
        continue;
      }
      if ("values" in change) {
        this.saved[c] = data.slice();
        data.set(change.values);
      } else {
        this.saved[c] = data[change.index];
        data[change.index] = change.value;
      }
    }
  }

  /** Puts the changed elements back, last change first. */
  private restore(perturbation: Perturbation): void {
    for (let c = perturbation.length - 1; c >= 0; c--) {
      const change = perturbation[c];
      const data = this.leaves[change.leaf].data;
      const before = this.saved[c];
      if ("indices" in change) {
        const { indices } = change;
        for (let k = indices.length - 1; k >= 0; k--) data[indices[k]] = (before as Float64Array)[k];
      } else if ("values" in change) data.set(before as Float64Array);
      else data[change.index] = before as number;
    }
  }

  private run(perturbation: Perturbation): Promise<Float64Array[]> {
    try {
      return Promise.resolve(this.evaluateNow(perturbation));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * One evaluation, its result returned at once when apply is synchronous (a promise when it is
   * not); it throws what apply throws. `collect` takes what is wanted out of apply's outputs (the
   * selected values, by default) before the inputs are restored. Only when no asynchronous
   * evaluation is in progress (`idle`).
   */
  evaluateNow(perturbation: Perturbation): Float64Array[] | Promise<Float64Array[]>;
  evaluateNow<T>(perturbation: Perturbation, collect: (outputs: unknown) => T): T | Promise<T>;
  evaluateNow<T>(perturbation: Perturbation, collect?: (outputs: unknown) => T): T | Promise<T> {
    this.perturb(perturbation);
    return this.applyPerturbed(() => this.restore(perturbation), collect ?? ((outputs: unknown) => this.selector.select(outputs) as T));
  }

  /** What the elements of a pair held while it is evaluated (one pair at a time: see `applyPerturbed`). */
  private held = new Float64Array(16);

  /**
   * One side of pair k (0: plus, 1: minus) evaluated as evaluateNow evaluates, its elements set
   * straight from the pack and its selected outputs written into `target` from `at`. A synchronous
   * apply takes no closure or array per evaluation (this runs millions of times per second).
   */
  private pairSideInto(pairs: ElementPairs, k: number, side: number, target: Float64Array, at: number): number | Promise<number> {
    const [from, to] = [pairs.starts[k], pairs.starts[k + 1]];
    const points = side === 0 ? pairs.plus : pairs.minus;
    if (this.held.length < to - from) this.held = new Float64Array(2 * (to - from));
    const held = this.held;
    for (let e = from; e < to; e++) {
      const data = this.leaves[pairs.leaves[e]].data;
      held[e - from] = data[pairs.indices[e]];
      data[pairs.indices[e]] = points[e];
    }
    this.calls++;
    let outputs: unknown;
    let thenable: boolean;
    try {
      outputs = this.apply(this.inputs);
      thenable = isThenable(outputs); // looks at the outputs: a Proxy's trap may throw
    } catch (e) {
      this.restorePair(pairs, from, to, held);
      throw e;
    }
    if (thenable) return this.settle(outputs as PromiseLike<unknown>, () => this.restorePair(pairs, from, to, held), (o) => this.writeSide(o, side, target, at));
    try {
      return this.writeSide(outputs, side, target, at);
    } finally {
      this.restorePair(pairs, from, to, held);
    }
  }

  /** A pair's first side written into `target` from `at`; its second subtracted from the first there. */
  private writeSide(outputs: unknown, side: number, target: Float64Array, at: number): number {
    return side === 0 ? this.selector.selectInto(outputs, target, at) : this.selector.subtractFrom(outputs, target, at);
  }

  /** Puts back what pair elements [from, to) held (in `held`), last first. */
  private restorePair(pairs: ElementPairs, from: number, to: number, held: Float64Array): void {
    for (let e = to - 1; e >= from; e--) this.leaves[pairs.leaves[e]].data[pairs.indices[e]] = held[e - from];
  }

  /**
   * apply at the inputs as perturbed, `take` its outputs, then `restore` the inputs. An
   * asynchronous apply keeps the evaluator busy until it has settled and the inputs are restored,
   * so no other evaluation perturbs them (or overwrites what `restore` puts back) meanwhile.
   */
  private applyPerturbed<T>(restore: () => void, take: (outputs: unknown) => T): T | Promise<T> {
    this.calls++;
    let outputs: unknown;
    let thenable: boolean;
    try {
      outputs = this.apply(this.inputs);
      thenable = isThenable(outputs); // looks at the outputs: a Proxy's trap may throw, and the inputs stayed perturbed
    } catch (e) {
      restore();
      throw e;
    }
    if (thenable) return this.settle(outputs as PromiseLike<unknown>, restore, take);
    // Outputs are copied out before restoring: apply may return views of its inputs.
    try {
      return take(outputs);
    } finally {
      restore();
    }
  }

  /** An asynchronous apply's outputs: taken, then the inputs restored; the evaluator stays busy until then. */
  private settle<T>(outputs: PromiseLike<unknown>, restore: () => void, take: (outputs: unknown) => T): Promise<T> {
    const settled = settledOutputs(outputs).then(take).finally(restore);
    this.track(settled); // the next evaluation waits for the inputs to be restored, timeout or not
    return withTimeout(settled, this.timeoutMs);
  }

  /** Pairs evaluated one after the other, each answered by f(x + plus) - f(x + minus) alone, flat; the first failure stops them. */
  async differences(pairs: ElementPairs): Promise<Float64Array> {
    return (await this.differencesUntil(pairs)).values;
  }

  /** The same, stopped at a turn where `handOver` says so (BatchOptions): the values of the pairs done, flat, and how many. */
  async differencesUntil(pairs: ElementPairs, handOver?: BatchOptions["handOver"]): Promise<{ values: Float64Array; done: number }> {
    const { values, failed, done } = await this.pairs(pairs, { stopAtFailure: true, handOver });
    if (failed.length > 0) throw new FailedPair(failed[0].index, failed[0].side ?? 0, failed[0].error);
    return { values: done < pairCount(pairs) ? values.subarray(0, (values.length / pairCount(pairs)) * done) : values, done };
  }

  /** Evaluations one after the other into one buffer (`batch`). */
  evaluations(perturbations: readonly Perturbation[], options: BatchOptions = {}): Promise<BatchValues> {
    const into = (k: number, _: number, target: Float64Array, at: number) => this.evaluateNow(perturbations[k], (outputs) => this.selector.selectInto(outputs, target, at));
    return this.batch(perturbations.length, 1, { into, perturbation: (k) => perturbations[k] }, options);
  }

  /** Pairs one after the other, f(x + plus) - f(x + minus) each (over its width, where pairs have widths), into one buffer (`batch`). */
  pairs(pairs: ElementPairs, options: BatchOptions = {}): Promise<BatchValues> {
    const values = this.batch(pairCount(pairs), 2, { into: (k, side, target, at) => this.pairSideInto(pairs, k, side, target, at), perturbation: (k, side) => sideOf(pairs, k, side) }, options);
    // Only pairs with widths wait for one more turn (a grouped Jacobian inline makes a call per group).
    if (!pairs.widths) return values;
    return values.then((result) => {
      if (result.values.length > 0) result.finite = divideByWidths(pairs.widths, result.values, result.values.length / pairCount(pairs));
      return result;
    });
  }

  /**
   * Items evaluated one after the other, each one's outputs written straight into one buffer (no
   * promise or array per evaluation while apply is synchronous); of a pair, the second side's
   * outputs are subtracted from the first's there. A worker thread's batches and the engine's
   * pairs inline both run here. A failure is recorded and the rest still run, unless
   * `stopAtFailure`; `onStart(e)` is told as evaluation e starts (a worker's timeout watch). In the
   * event loop, I/O gets a turn between evaluations that held it (`turn`), and `handOver` may stop
   * the batch after one.
   */
  private async batch(items: number, perItem: 1 | 2, sides: BatchSides, options: BatchOptions): Promise<BatchValues> {
    const { selector } = this;
    const failed: BatchValues["failed"] = [];
    /** Values per item, once the outputs are known (from the first evaluation). */
    let stride = selector.outputs ? outputStride(selector.outputs) : 0;
    let values = selector.outputs ? new Float64Array(stride * items) : undefined;
    if (this.eventLoop) this.startTurns();
    let k = 0;
    items: for (; k < items; k++) {
      for (let side = 0; side < perItem; side++) {
        // A cancel stops the batch here (it is no failure of the item); at an item's start, the rest may go elsewhere.
        const turn = this.turn();
        if (turn) {
          const heldMs = await turn;
          if (side === 0 && options.handOver?.(heldMs)) break items;
        }
        try {
          options.onStart?.(k * perItem + side);
          if (values && !this.busy) {
            const written = sides.into(k, side, values, k * stride);
            if (written instanceof Promise) await written;
            continue;
          }
          // The first evaluation (it tells the outputs' sizes), or one after an unfinished asynchronous apply.
          const outputs = await this.evaluate(sides.perturbation(k, side));
          stride ||= outputStride(selector.outputs!);
          values ??= new Float64Array(stride * items);
          let at = k * stride;
          for (const o of outputs) {
            if (side === 0) values.set(o, at);
            else for (let i = 0; i < o.length; i++) values[at + i] -= o[i];
            at += o.length;
          }
        } catch (error) {
          failed.push(perItem === 2 ? { index: k, side: side as 0 | 1, error } : { index: k, error });
          if (options.stopAtFailure) break items;
          break; // its other side is not evaluated
        }
      }
    }
    return { values: values ?? new Float64Array(0), failed, done: k };
  }

  /** Whether an asynchronous evaluation is still in progress (evaluateNow must wait for it). */
  get idle(): boolean {
    return !this.busy;
  }
}
