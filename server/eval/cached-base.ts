/**
 * An evaluator whose evaluation at the unperturbed inputs (the empty perturbation, f(x)) comes from
 * the evaluation cache when an earlier request on the same inputs evaluated it: a request's own
 * f(x), for the same output paths, or an Apply's outputs, from which the requested ones are picked.
 * Every other evaluation goes to the evaluator it wraps; `calls` counts only those that ran. The two
 * resolved the output paths each on its own tree: they are held to the same outputs (a map key
 * f(x) had and x + h did not shifted every value after it: its differences were answered OK).
 */
import type { Code } from "../../common/errors";
import type { AnyMessage } from "../schema/schema";
import type { EvaluationCache, SelectedOutputs } from "./evaluation-cache";
import type { ElementPairs, Evaluator, OutputInfo, Perturbation } from "./evaluator";
import { checkSameOutputs } from "./outputs";

export class CachedBaseEvaluator implements Evaluator {
  /** The outputs a cached f(x) told, until the evaluator it wraps knows them itself. */
  private cachedOutputs?: OutputInfo[];
  /**
   * Whether the cached f(x)'s outputs were found the same as the wrapped evaluator's (once: each then
   * keeps to its own), or f(x) was not cached: nothing is left to compare.
   */
  private sameOutputs = false;
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
    /** The code of outputs that differ (OutputSelector's). */
    private readonly faultCode: Code,
  ) {
    if (inner.differences) this.differences = (pairs) => this.innerDifferences(pairs);
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
    if (perturbation.length === 0) return this.base();
    const values = this.inner.evaluate(perturbation);
    return this.sameOutputs ? values : values.then((v) => this.heldToCached(v));
  }

  private innerDifferences(pairs: ElementPairs): Promise<Float64Array> {
    const values = this.inner.differences!(pairs);
    return this.sameOutputs ? values : values.then((v) => this.heldToCached(v));
  }

  /** An inner evaluation's values, once its outputs are found those of the cached f(x), where there is one. */
  private heldToCached<T>(values: T): T {
    if (!this.sameOutputs && this.cachedOutputs) this.checkOutputs(this.inner.outputs!, this.cachedOutputs);
    return values;
  }

  /** `outputs` (the evaluation's at hand) held to `earlier` (the other's); the same from then on. */
  private checkOutputs(outputs: readonly OutputInfo[], earlier: readonly OutputInfo[]): void {
    checkSameOutputs(outputs, earlier, this.faultCode);
    this.sameOutputs = true;
  }

  replanned(evaluations: number): void {
    this.inner.replanned?.(evaluations);
  }

  /** A cached f(x), taken now and kept for this request (so a plan counting on it holds). */
  private pinned?: SelectedOutputs;

  /** Whether f(x) will come from the cache: it is taken from there now, for this request. */
  baseKnown(): boolean {
    try {
      this.pinned ??= this.cache.getSelected(this.key, this.outputPaths, this.fromApply);
    } catch {
      // An Apply's outputs that f(x) cannot be (NaN there) are refused when f(x) is needed, in the
      // request's order: here, before anything else, they answered a NaN input by the output it made.
      return false;
    }
    return this.pinned !== undefined;
  }

  private async base(): Promise<Float64Array[]> {
    const { cache, key, outputPaths } = this;
    const hit = this.pinned ?? cache.getSelected(key, outputPaths, this.fromApply);
    this.pinned = undefined;
    if (hit) {
      this.cachedOutputs ??= hit.outputs;
      if (this.inner.outputs) this.checkOutputs(hit.outputs, this.inner.outputs);
      return hit.values;
    }
    this.sameOutputs = true; // f(x) is the inner evaluator's own
    const since = cache.now;
    const values = await this.inner.evaluate([]);
    cache.setSelected(key, outputPaths, { outputs: this.inner.outputs!, values }, since);
    return values;
  }
}
