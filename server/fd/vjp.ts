/**
 * Vector-Jacobian product: the gradient of the scalar phi(x) = sum_o <c_o, f_o(x)>. Each evaluation's
 * outputs are contracted with the cotangent as soon as they arrive, so rows are scalars and no
 * Jacobian is ever held: memory is O(n + m). With the stochastic rule this is SPSA on phi. What is
 * contracted is a difference wherever the rule allows (a central pair's, or f less f(x) for the
 * rules that evaluate f(x)): contracted first, large outputs' rounding swallowed small ones' share.
 *
 * The contraction uses c / 2^e, 2^e ≈ max |c_i| (finite.ts: exact), so that phi neither overflows
 * nor underflows whatever the cotangent's scale; the gradient is multiplied back by 2^e at the end
 * (a true result beyond FP64 is refused there, not answered as Inf). phi's rounding is not u |phi|
 * (its terms may cancel) but sum_o u_o sum_i |c_i f_i|, u_o the unit roundoff of output o's datatype
 * (2^-24 for FP32): the floor under the noise level the error estimates use (noise.ts).
 *
 * With a known structure (sparsity-plan.ts) columns are grouped instead: a group's evaluation moves
 * every output its columns touch, so it cannot be contracted before the split; each column's sparse
 * row is split out and contracted, (c^T J)_j = sum_i c_i J_ij over its structural nonzeros, and its
 * error estimate, where the rule gives one, is sum_i |c_i| e_ij (each entry's bound, summed).
 */
import { Code, invalidArgument, isTesseractError, quote, TesseractError, thrownMessage } from "../../common/errors";
import { DataType } from "../../common/tensor-codec";
import { eachInTurn, FailedPair, flatDifferences, outputPrecision, outputStride, type ElementPairs, type Evaluator, type OutputInfo, type Perturbation } from "../eval/evaluator";
import { pairCount, sideOf } from "../eval/element-pairs";
import { binaryScale, checkFinite } from "./finite";
import type { ResolvedOptions } from "./options";
import { elementName } from "../eval/input-leaf";
import { ofTheRequest, Problem, unitRoundoff } from "./problem";
import { extrapolates, rows, usesBase } from "./rows";
import { planRows } from "./columns";
import type { SparsityPlan } from "./sparsity-plan";
import { AS_PREDICTED, refusedByPrediction } from "./sparsity";
import { omittedOutputError } from "../schema/schema";

export interface Cotangent {
  path: string;
  shape: number[];
  values: Float64Array;
}

/** Wraps an evaluator so that each evaluation returns [phi], phi = sum <c / scale, f>. */
class ContractedEvaluator implements Evaluator {
  private ordered: Float64Array[] | undefined;
  /** Each returned phi's rounding, sum_o u_o sum_i |c_i f_i| / scale, for `rounding`. */
  private readonly roundings = new WeakMap<Float64Array, number>();

  constructor(
    private readonly inner: Evaluator,
    private readonly cotangent: readonly Cotangent[],
    private readonly field: string,
    private readonly scale: number,
    /** Whether the rule estimates errors (and so asks for `rounding`): else none is kept. */
    private readonly keepRounding: boolean,
    /**
     * Forward, Richardson and adaptive: every evaluation's outputs less f(x), element by element,
     * are contracted (f(x) is evaluated once, as these rules evaluate it anyway), so that phi's
     * differences keep the small outputs' share (see `differences`).
     */
    private readonly fromBase: boolean,
  ) {}

  private base?: Promise<Float64Array[]>;

  /** f(x) as the request has it already (planning evaluated it to learn the output shapes): not evaluated again. */
  reuseBase(base: Promise<Float64Array[]>): void {
    this.base ??= base;
  }

  /** f(x), evaluated once, whichever evaluation asks first: every phi is then taken from it. */
  private unperturbed(): Promise<Float64Array[]> {
    return (this.base ??= this.inner.evaluate([]));
  }

  get outputs(): OutputInfo[] | undefined {
    return this.inner.outputs && [{ path: `<${this.field}, outputs>`, shape: [], datatype: DataType.DATA_TYPE_FP64 }];
  }

  get calls(): number {
    return this.inner.calls;
  }

  get concurrency(): number {
    return this.inner.concurrency;
  }

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    const base = this.fromBase ? await this.unperturbed() : undefined;
    // With f(x) the outputs are known: a cotangent that does not fit them is refused before another evaluation.
    let ordered = base && this.cotangentInOrder();
    const outputs = base && perturbation.length === 0 ? base : await this.inner.evaluate(perturbation);
    ordered ??= await this.orderedCotangent();
    // Plain loops: sums a callback closed over would be boxed on every write (see jvp.ts `dot`).
    let phi = 0;
    let rounding = 0;
    for (let o = 0; o < outputs.length; o++) {
      const values = outputs[o];
      const c = ordered[o];
      const from = base?.[o];
      let magnitude = 0;
      for (let i = 0; i < values.length; i++) {
        // An output the cotangent leaves out adds nothing, even where its difference overflows (0·Inf).
        if (c[i] === 0) continue;
        const term = c[i] * values[i];
        phi += from ? c[i] * (values[i] - from[i]) : term;
        magnitude += Math.abs(term);
      }
      rounding += unitRoundoff(outputPrecision(this.inner.outputs![o])) * magnitude;
    }
    const result = Float64Array.of(phi);
    if (this.keepRounding) this.roundings.set(result, rounding);
    return [result];
  }

  rounding(outputs: Float64Array[]): Float64Array[] {
    return [Float64Array.of(this.roundings.get(outputs[0]) ?? 0)];
  }

  /**
   * Each pair's outputs differenced element by element, then contracted: phi(x+) - phi(x-) lost
   * the small outputs' share to the large ones' rounding (vectoradd at a = [1e12, 1, 3], cotangent
   * [1, 1, 1]: [1, 1.22, 1.22] for [1, 1, 1]; x³ at [100, -1.2] with cotangent [1e10, 1]: 0 for 4.32).
   */
  async differences(pairs: ElementPairs): Promise<Float64Array> {
    // Until the outputs are known, one by one: a cotangent that does not fit them is refused after one evaluation.
    const flat = this.inner.differences && this.inner.outputs ? await this.inner.differences(pairs) : await this.evaluatedDifferences(pairs);
    const ordered = await this.orderedCotangent();
    const contracted = new Float64Array(pairCount(pairs));
    let at = 0;
    for (let k = 0; k < contracted.length; k++) {
      let phi = 0;
      // Plain loops, as in evaluate.
      for (let o = 0; o < ordered.length; o++) {
        const c = ordered[o];
        for (let i = 0; i < c.length; i++, at++) if (c[i] !== 0) phi += c[i] * flat[at];
      }
      contracted[k] = phi;
    }
    return contracted;
  }

  /** The pairs' differences from their evaluations, for an inner evaluator that does not difference pairs itself. */
  private async evaluatedDifferences(pairs: ElementPairs): Promise<Float64Array> {
    const side = async (e: number) => {
      const outputs = await this.inner.evaluate(sideOf(pairs, e >> 1, e & 1)).catch((error: unknown) => Promise.reject(new FailedPair(e >> 1, e & 1, error)));
      await this.orderedCotangent(); // refused after the first evaluation, not the first pair
      return outputs;
    };
    const results = await eachInTurn(Array.from({ length: 2 * pairCount(pairs) }, (_, e) => e), this.inner.concurrency, side);
    return flatDifferences(results, outputStride(this.inner.outputs!), pairs.widths);
  }

  /**
   * cotangentInOrder, held to the outputs of whichever evaluation came back first. Where they do not
   * fit, f(x) tells whose fault it is: outputs whose shape changed between evaluations are the
   * Tesseract's (its shape fault, from f(x)'s evaluation), not a cotangent that fits f(x) (a runtime
   * answering another shape at x[1] + h had the caller's right cotangent refused).
   */
  private async orderedCotangent(): Promise<Float64Array[]> {
    try {
      return this.cotangentInOrder();
    } catch (e) {
      // Held to f(x) itself, the misfit is the cotangent's; else f(x) tells (every misfit waits for the one f(x)).
      if (this.fromBase || !isTesseractError(e) || e.code !== Code.INVALID_ARGUMENT) throw e;
      await this.unperturbed().catch((fault: unknown) => {
        const missing = omittedOutputError(fault); // a requested output f(x) has not: the request's
        if (missing) throw ofTheRequest(missing);
        const message = thrownMessage(fault);
        throw ofTheRequest(new TesseractError(isTesseractError(fault) ? fault.code : Code.UNKNOWN, `evaluation at the unperturbed inputs failed: ${message}`, { cause: fault }));
      });
      throw e;
    }
  }

  /** The cotangent in output order, over `scale`. */
  private cotangentInOrder(): Float64Array[] {
    return (this.ordered ??= matchCotangent(this.inner.outputs!, this.cotangent, this.field).map((c) => c.map((v) => v / this.scale)));
  }
}

/**
 * The cotangent for each output, in output order; every output needs one of its exact shape. Its
 * refusals are the request's wherever they are found (during an evaluation too: ofTheRequest).
 */
function matchCotangent(outputs: OutputInfo[], cotangent: readonly Cotangent[], field: string, predicted = false): Float64Array[] {
  try {
    return matchedCotangent(outputs, cotangent, field, predicted);
  } catch (e) {
    throw ofTheRequest(predicted && typeof e === "object" && e !== null ? refusedByPrediction(e) : e);
  }
}

/** `predicted`: the outputs' shapes are abstractEval's prediction (a refusal of a shape says so). */
function matchedCotangent(outputs: OutputInfo[], cotangent: readonly Cotangent[], field: string, predicted: boolean): Float64Array[] {
  const byPath = new Map(cotangent.map((c) => [c.path, c]));
  for (const c of cotangent) {
    if (!outputs.some((o) => o.path === c.path)) {
      throw invalidArgument(`${field} has key ${quote(c.path)}, which is not a requested output; requested: ${outputs.map((o) => o.path).join(", ")}`);
    }
  }
  return outputs.map((out) => {
    const c = byPath.get(out.path);
    if (!c) throw invalidArgument(`${field} is missing output "${out.path}" (shape [${out.shape.join(", ")}])`);
    if (c.shape.length !== out.shape.length || c.shape.some((d, i) => d !== out.shape[i])) {
      throw invalidArgument(`${field}.{${out.path}} has shape [${c.shape.join(", ")}], expected [${out.shape.join(", ")}] like the output${predicted ? AS_PREDICTED : ""}`);
    }
    return c.values;
  });
}

/** One flat FP64 array per input leaf, shaped like that leaf; errors for Richardson and adaptive. */
export async function vjp(
  problem: Problem,
  inner: Evaluator,
  cotangent: readonly Cotangent[],
  options: ResolvedOptions,
  field: string,
  signal?: AbortSignal,
  plan?: SparsityPlan,
): Promise<{ values: Float64Array[]; errors?: Float64Array[]; adjustedSteps: string[] }> {
  if (plan?.structure) return groupedVjp(problem, cotangent, options, field, plan);
  const scale = binaryScale(cotangent.map((c) => c.values)) || 1;
  const estimates = extrapolates(options.algorithm);
  const evaluator = new ContractedEvaluator(inner, cotangent, field, scale, estimates, usesBase(problem.size, options));
  // A forward VJP made f(x) twice where planning had made it (a partial pattern under SPARSITY_MODE_DETECT: 8 calls, the Jacobian 7).
  if (problem.madeBase) evaluator.reuseBase(problem.base());
  const contracted = new Problem(problem.leaves, evaluator, signal, problem.bounds);
  // Its steps are the request's: sized for FP32 outputs where the outputs are (output-precision.ts).
  contracted.outputsFp32 = problem.outputsFp32;
  const values = problem.leaves.map((leaf) => new Float64Array(leaf.size));
  let errors: Float64Array[] | undefined;
  for await (const batch of rows(contracted, options)) {
    for (const row of batch) {
      values[row.leaf][row.index] = scale * row.values[0][0];
      if (row.errors) (errors ??= problem.leaves.map((leaf) => new Float64Array(leaf.size)))[row.leaf][row.index] = scale * row.errors[0][0];
    }
  }
  problem.leaves.forEach((leaf, l) => {
    checkFinite(values[l], (j) => `the VJP for ${elementName(leaf, j)}`);
    if (errors) checkFinite(errors[l], (j) => `the VJP's error estimate for ${elementName(leaf, j)}`);
  });
  return { values, errors, adjustedSteps: contracted.adjustedSteps() };
}

/** The VJP from grouped sparse rows, each contracted with the cotangent as it arrives. */
async function groupedVjp(problem: Problem, cotangent: readonly Cotangent[], options: ResolvedOptions, field: string, plan: SparsityPlan) {
  // Shapes known from planning (abstractEval) are checked before any evaluation (a refusal says where they came from).
  const planned = plan.outputs?.map((o) => ({ path: o.path, shape: [...o.shape], datatype: 0 }));
  if (planned) await plan.checkAgainstOutputs(problem, () => matchCotangent(planned, cotangent, field, plan.predicted));
  const scale = binaryScale(cotangent.map((c) => c.values)) || 1;
  const values = problem.leaves.map((leaf) => new Float64Array(leaf.size));
  let errors: Float64Array[] | undefined;
  let ordered: Float64Array[] | undefined;
  for await (const row of planRows(problem, options, plan)) {
    if (!ordered) plan.confirmPrediction(problem.outputs!);
    ordered ??= matchCotangent(problem.outputs!, cotangent, field).map((c) => c.map((v) => v / scale));
    let sum = 0;
    let bound = 0;
    for (let o = 0; o < row.values.length; o++) {
      const v = row.values[o];
      const at = row.indices?.[o];
      const c = ordered[o];
      const e = row.errors?.[o];
      for (let k = 0; k < v.length; k++) {
        const ci = c[at ? at[k] : k];
        sum += ci * v[k];
        if (e) bound += Math.abs(ci) * e[k];
      }
    }
    values[row.leaf][row.index] = scale * sum;
    if (row.errors) (errors ??= problem.leaves.map((leaf) => new Float64Array(leaf.size)))[row.leaf][row.index] = scale * bound;
  }
  problem.leaves.forEach((leaf, l) => {
    checkFinite(values[l], (j) => `the VJP for ${elementName(leaf, j)}`);
    if (errors) checkFinite(errors[l], (j) => `the VJP's error estimate for ${elementName(leaf, j)}`);
  });
  return { values, errors, adjustedSteps: problem.adjustedSteps() };
}
