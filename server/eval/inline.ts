/**
 * Runs apply in the calling thread. Perturb-and-restore: the changed elements of the base inputs are
 * set in place, apply runs, the outputs are copied out, and the elements are put back; nothing else
 * is copied, so an evaluation costs what apply costs. One evaluation at a time: overlapping calls
 * wait their turn, since two perturbations of the same inputs cannot coexist. A synchronous apply
 * is evaluated synchronously (no promise hop per evaluation); an asynchronous one is given up on
 * after `timeoutMs` (its inputs stay perturbed, but the request that owns them has failed).
 */
import type { OutputSelector } from "./outputs";
import type { InputLeaf } from "./input-leaf";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";
import { withTimeout } from "./timeout";

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
  ) {}

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
    const take = collect ?? ((outputs: unknown) => this.selector.select(outputs) as T);
    this.perturb(perturbation);
    this.calls++;
    let outputs: unknown;
    try {
      outputs = this.apply(this.inputs);
    } catch (e) {
      this.restore(perturbation);
      throw e;
    }
    if (outputs instanceof Promise || typeof (outputs as PromiseLike<unknown>)?.then === "function") {
      const settled = Promise.resolve(outputs)
        .then(take)
        .finally(() => this.restore(perturbation));
      this.track(settled); // the next evaluation waits for the inputs to be restored, timeout or not
      return withTimeout(settled, this.timeoutMs);
    }
    // Outputs are copied out before restoring: apply may return views of its inputs.
    try {
      return take(outputs);
    } finally {
      this.restore(perturbation);
    }
  }

  /** Whether an asynchronous evaluation is still in progress (evaluateNow must wait for it). */
  get idle(): boolean {
    return !this.busy;
  }
}
