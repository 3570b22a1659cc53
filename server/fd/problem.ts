/**
 * What the finite-difference rules work on: the differentiated input leaves (flat, perturbable
 * storage) and an evaluator, plus the bookkeeping every rule shares: cancellation between
 * evaluations and error messages that say which evaluation failed.
 */
import { Code, isTesseractError, TesseractError, thrownCause, thrownMessage } from "../../common/errors";
import { packPairs, pairCount, sideOf } from "../eval/element-pairs";
import { eachInTurn, FailedPair, flatDifferences, outputPrecision, outputSizes, outputStride, splitFlat, type ElementPairs, type Change, type Evaluator, type OutputInfo, type PerturbationPair, type Perturbation } from "../eval/evaluator";
import type { InputLeaf } from "../eval/input-leaf";
import type { DomainBounds } from "../tesseract";
import type { ResolvedOptions } from "./options";
import { noiseLevels, PROBE_POINTS } from "./noise";
import { StepRule } from "./steps";
import { DataType } from "../../common/tensor-codec";
import { omittedOutputError } from "../schema/schema";
import { divideAllFinite } from "../eval/finite-values";

/** The unit roundoff of an output's datatype: half an ulp of 1, 2^-24 for FP32 and 2^-53 for FP64. */
export function unitRoundoff(datatype: number): number {
  return datatype === DataType.DATA_TYPE_FP32 ? 2 ** -24 : 2 ** -53;
}

/** How long evaluations may run back to back before the event loop gets a turn. */
const YIELD_EVERY_MS = 1;

export class Problem {
  constructor(
    readonly leaves: readonly InputLeaf[],
    private readonly evaluator: Evaluator,
    private readonly signal?: AbortSignal,
    /** Per leaf, the open domain the Tesseract declares for it (steps stay inside). */
    readonly bounds: readonly (DomainBounds | undefined)[] = [],
  ) {}

  /**
   * Whether the rows go to a reader that sets the pace (a stream): evaluations in flight are then as
   * many as keep a row ready for it (window.ts, ConsumerPace), not all the evaluator could take.
   */
  paced = false;

  /** Evaluations the request plans, once its plan is known (replanned). */
  plannedEvaluations?: number;

  /** The request's plan is known: about `evaluations` in all (Evaluator.replanned). */
  replanned(evaluations: number): void {
    this.plannedEvaluations = evaluations;
    this.evaluator.replanned?.(evaluations);
  }

  private baseOutputs?: Promise<Float64Array[]>;

  /** f(x) at the unperturbed inputs, evaluated once and shared (never to be written to). */
  base(): Promise<Float64Array[]> {
    this.baseOutputs ??= this.evaluate([], () => UNPERTURBED);
    return this.baseOutputs;
  }

  private noiseLevels?: Promise<Float64Array[]>;

  /** Whether f(x) has been asked for (evaluated, or answered by the evaluation cache): later rows reuse it. */
  get madeBase(): boolean {
    return this.baseOutputs !== undefined;
  }

  /** Whether the noise probe's points have been evaluated: later rows reuse them. */
  get madeProbe(): boolean {
    return this.noiseLevels !== undefined;
  }

  /**
   * σ, the noise level of each output value near x (noise.ts): from f(x) and f at x + i p,
   * i = 1..PROBE_POINTS, with p[leaf][j] the increment of each element (0: it stays), each point
   * rounded to its leaf's precision; 0 where no noise shows. Evaluated on the first call; later
   * calls (the other rows of the request) share it.
   */
  noise(increment: () => Float64Array[]): Promise<Float64Array[]> {
    this.noiseLevels ??= (async () => {
      const base = await this.base();
      const p = increment();
      const point = (i: number): Change[] =>
        this.leaves.map((leaf, l) => ({ leaf: l, values: Float64Array.from(leaf.data, (x, j) => (leaf.fp32 ? Math.fround(x + i * p[l][j]) : x + i * p[l][j])) }));
      const probe = await this.evaluateAll(Array.from({ length: PROBE_POINTS }, (_, k) => [point(k + 1), () => `the noise probe x + ${k + 1}p`] as const));
      return noiseLevels([base, ...probe]);
    })();
    return this.noiseLevels;
  }

  /**
   * The rounding in each output value: the evaluator's own account when it has one (a contraction of
   * outputs), else half an ulp of the value in its output's datatype, u |f|.
   */
  rounding(outputs: Float64Array[]): Float64Array[] {
    return this.evaluator.rounding?.(outputs) ?? outputs.map((values, o) => values.map((v) => unitRoundoff(outputPrecision(this.outputs![o])) * Math.abs(v)));
  }

  private steps?: StepRule;

  /** Whether a requested output is FP32 (output-precision.ts): default relative steps are then sized for FP32. Set before the step rule is made. */
  outputsFp32 = false;

  /** The request's step rule, made once (it also collects the steps that had to be adjusted). */
  stepRule(options: ResolvedOptions): StepRule {
    this.steps ??= new StepRule(options, this.leaves, this.bounds, this.outputsFp32);
    return this.steps;
  }

  /** Elements whose step was moved off the rule, for EvaluationStats.adjusted_steps. */
  adjustedSteps(): string[] {
    return this.steps?.adjusted() ?? [];
  }

  /** Total number of differentiated elements (a scalar counts one). */
  get size(): number {
    return this.leaves.reduce((n, leaf) => n + leaf.size, 0);
  }

  get outputs(): OutputInfo[] | undefined {
    return this.evaluator.outputs;
  }

  get calls(): number {
    return this.evaluator.calls;
  }

  /** How many evaluations the evaluator can usefully run at once. */
  get concurrency(): number {
    return this.evaluator.concurrency;
  }

  /** Evaluations one worker task takes together, where the evaluator has tasks (Evaluator.taskEvaluations). */
  get taskEvaluations(): number | undefined {
    return this.evaluator.taskEvaluations;
  }

  private lastYield = performance.now();

  /**
   * Several evaluations: at once when the evaluator runs them in parallel, else one after the other
   * (so that a failure or a cancel stops the rest).
   */
  async evaluateAll(jobs: readonly (readonly [Perturbation, () => string])[]): Promise<Float64Array[][]> {
    return eachInTurn(jobs, this.concurrency, ([perturbation, what]) => this.evaluate(perturbation, what));
  }

  /** One evaluation; `what` describes the perturbation for error messages ("x[2] + h"). */
  async evaluate(perturbation: Perturbation, what: () => string): Promise<Float64Array[]> {
    const turn = this.turn();
    if (turn) await turn;
    try {
      return await this.evaluator.evaluate(perturbation);
    } catch (e) {
      throw await this.failure(e, what);
    }
  }

  /** Whether the evaluator takes many pairs in one call (`differences`), so that rules should send them so. */
  get takesPairs(): boolean {
    return this.evaluator.differences !== undefined;
  }

  /**
   * f(x + a) - f(x + b) output by output for each pair, as fresh arrays of the engine's own (two
   * evaluations each), over widths[k] where given (divided where the pairs are evaluated: in a
   * worker thread, off the main thread); `what` describes each side for error messages.
   */
  async differences(pairs: readonly PerturbationPair[], what: (pair: number, side: number) => string, widths?: Float64Array): Promise<Float64Array[][]> {
    if (pairs.length === 0) return [];
    // Packed for an evaluator that takes pairs, unless they set whole leaves (stochastic
    // directions): those are set as they are, not element by element.
    const pack = this.evaluator.differences !== undefined && !pairs.some(([a]) => a.some((change) => "values" in change));
    if (pack) return splitFlat(await this.flatDifferences({ ...packPairs(pairs), widths }, what), outputSizes(this.outputs!), pairs.length);
    const results = await this.evaluateAll(pairs.flatMap((pair, k) => pair.map((p, side) => [p, () => what(k, side)] as const)));
    // Each pair's first outputs (the engine's own copies) become its differences.
    return pairs.map((_, k) => {
      const [a, b] = [results[2 * k], results[2 * k + 1]];
      for (let o = 0; o < a.length; o++) for (let i = 0; i < a[o].length; i++) a[o][i] -= b[o][i];
      if (widths) for (const d of a) divideAllFinite(d, 0, d.length, widths[k]);
      return a;
    });
  }

  /**
   * The same for packed pairs, flat (pair k's values at k × stride, the outputs one after the
   * other): by the evaluator's own `differences` where it has one, else each evaluated here,
   * subtracted and divided by the pairs' widths.
   */
  async flatDifferences(pairs: ElementPairs, what: (pair: number, side: number) => string): Promise<Float64Array> {
    const count = pairCount(pairs);
    if (count === 0) return new Float64Array(0);
    if (!this.evaluator.differences) {
      const sides = Array.from({ length: 2 * count }, (_, e) => [sideOf(pairs, e >> 1, e & 1), () => what(e >> 1, e & 1)] as const);
      return flatDifferences(await this.evaluateAll(sides), outputStride(this.outputs!), pairs.widths);
    }
    const turn = this.turn();
    if (turn) await turn;
    try {
      return await this.evaluator.differences(pairs);
    } catch (e) {
      throw await (e instanceof FailedPair ? this.failure(e.error, () => what(e.pair, e.side)) : this.failure(e, () => what(0, 0)));
    }
  }

  /**
   * Before an evaluation (or a step of long planning: colouring.ts): now and then a turn for I/O (a
   * promise to wait for), and a stop if the request was cancelled. Synchronous otherwise, so that
   * most evaluations wait for nothing.
   */
  turn(): Promise<void> | undefined {
    // A synchronous apply never gives I/O a turn: let cancellations and health checks through.
    if (performance.now() - this.lastYield > YIELD_EVERY_MS) {
      // Set first: of the evaluations started in this turn, one yields (not each of them).
      this.lastYield = performance.now();
      return new Promise<void>(setImmediate).then(() => this.signal?.throwIfAborted());
    }
    this.signal?.throwIfAborted();
  }

  /**
   * An evaluation's failure as the request reports it: naming the evaluation, with its code. Inputs
   * refused at a point (INVALID_ARGUMENT) are the request's when the unperturbed inputs are refused
   * too (f(x) is evaluated to tell, and shared as `base` always is); when those are accepted, the
   * step took them where the Tesseract refuses them (a tesseract-core runtime validates every
   * evaluation): FAILED_PRECONDITION naming the point, as a step out of a declared domain is.
   */
  private async failure(e: unknown, what: () => string): Promise<unknown> {
    if (requestRefusals.has(e as object)) return e;
    const omitted = omittedOutputError(e);
    if (omitted && !this.signal?.aborted) {
      // An output the schema lets the Tesseract leave out: the request's, if f(x) leaves it out too.
      if (what() === UNPERTURBED) return omitted;
      const absentAtBase = await this.base().then(() => undefined, (r: unknown) => omittedOutputError(r));
      if (absentAtBase) return absentAtBase;
    }
    if (isTesseractError(e) && e.code === Code.INVALID_ARGUMENT) {
      const point = what();
      if (point === UNPERTURBED || this.signal?.aborted) return e;
      // The unperturbed inputs' own refusal, when they have one, says what is wrong with the request.
      const refusal = await this.base().then(() => undefined, (r: unknown) => r);
      if (refusal !== undefined) return isTesseractError(refusal) && refusal.code === Code.INVALID_ARGUMENT ? refusal : e;
      return new TesseractError(Code.FAILED_PRECONDITION, `evaluation at ${point} failed: ${e.message}; the unperturbed inputs are accepted: the step left what the Tesseract accepts (use a smaller eps, or declare the domain in bounds)`, { cause: e });
    }
    if (this.signal?.aborted) return this.signal.reason;
    const code = isTesseractError(e) ? e.code : Code.UNKNOWN;
    const message = thrownMessage(e);
    return new TesseractError(code, `evaluation at ${what()} failed: ${message}`, { cause: isTesseractError(e) ? e : thrownCause(e) });
  }
}

/**
 * Failures found while evaluating one point that are not that point's, reported as they are: the
 * engine's refusals of the request (a cotangent that does not fit the outputs), and faults another
 * evaluation showed (f(x)'s, evaluated to tell whose fault a misfit is).
 */
const requestRefusals = new WeakSet<object>();

/** Marks `e` as no failure of the point being evaluated (Problem's `failure`). */
export function ofTheRequest<E>(e: E): E {
  if (typeof e === "object" && e !== null) requestRefusals.add(e);
  return e;
}

/** How f(x)'s evaluation is named in messages. */
const UNPERTURBED = "the unperturbed inputs";
