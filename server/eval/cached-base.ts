/**
 * An evaluator whose evaluation at the unperturbed inputs (the empty perturbation, f(x)) comes from
 * the evaluation cache when an earlier request on the same inputs evaluated it: a request's own
 * f(x), for the same output paths, or an Apply's outputs, from which the requested ones are picked.
 * Every other evaluation goes to the evaluator it wraps; `calls` counts only those that ran.
 */
import type { AnyMessage } from "../schema/schema";
import type { EvaluationCache, SelectedOutputs } from "./evaluation-cache";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";

export class CachedBaseEvaluator implements Evaluator {
  /** The outputs a cached f(x) told, until the evaluator it wraps knows them itself. */
  private cachedOutputs?: OutputInfo[];
  /** The inner evaluator's, when it has one (the engine asks for f(x) alone, never as half of a pair). */
  readonly differences?: Evaluator["differences"];

  constructor(
    private readonly inner: Evaluator,
    private readonly cache: EvaluationCache,
    /** The inputs' key (input-key.ts). */
    private readonly key: string,
    private readonly outputPaths: readonly string[],
    /** The requested outputs out of an Apply's outputs message. */
    private readonly fromApply: (outputs: AnyMessage) => SelectedOutputs,
  ) {
    if (inner.differences) this.differences = (pairs) => inner.differences!(pairs);
  }

  get outputs(): OutputInfo[] | undefined {
    return this.inner.outputs ?? this.cachedOutputs;
  }

  get calls(): number {
    return this.inner.calls;
  }

  get concurrency(): number {
    return this.inner.concurrency;
  }

  get taskEvaluations(): number | undefined {
    return this.inner.taskEvaluations;
  }

  evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    return perturbation.length > 0 ? this.inner.evaluate(perturbation) : this.base();
  }

  replanned(evaluations: number): void {
    this.inner.replanned?.(evaluations);
  }

  /** A cached f(x), taken now and kept for this request (so a plan counting on it holds). */
  private pinned?: SelectedOutputs;

  /** Whether f(x) will come from the cache: it is taken from there now, for this request. */
  baseKnown(): boolean {
    this.pinned ??= this.cache.getSelected(this.key, this.outputPaths, this.fromApply);
    return this.pinned !== undefined;
  }

  private async base(): Promise<Float64Array[]> {
    const { cache, key, outputPaths } = this;
    const hit = this.pinned ?? cache.getSelected(key, outputPaths, this.fromApply);
    this.pinned = undefined;
    if (hit) {
      this.cachedOutputs ??= hit.outputs;
      return hit.values;
    }
    const values = await this.inner.evaluate([]);
    cache.setSelected(key, outputPaths, { outputs: this.inner.outputs!, values });
    return values;
  }
}
