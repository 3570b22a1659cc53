/**
 * An evaluator runs `apply` at the base inputs with a small perturbation applied and returns the
 * requested outputs as flat FP64 arrays. The engine only ever talks to this interface, so apply can
 * run inline, in worker threads or on other servers.
 */
import { divideByWidths } from "./finite-values";
import { thrownMessage } from "../../common/errors";

/**
 * One change to the base inputs: one element of a leaf, several (element indices[k] set to
 * points[k]: a column group's, whose cost stays that of its elements, not of the leaf), or every
 * element of a leaf.
 */
export type Change =
  | { leaf: number; index: number; value: number }
  | { leaf: number; indices: Uint32Array; points: Float64Array }
  | { leaf: number; values: Float64Array };

/** The changes for one evaluation; each leaf appears at most once. */
export type Perturbation = readonly Change[];

export interface OutputInfo {
  path: string;
  shape: number[];
  /** The output's DataType: its field's declared one, else what apply returned (values reach the engine as FP64 whatever it is). */
  datatype: number;
  /** The DataType whose rounding the values carry, where coarser than `datatype` (an FP64 output apply returned as FP32). */
  precision?: number;
}

/** The DataType whose precision an output's values have: `precision` where set, else its datatype. */
export function outputPrecision(info: Pick<OutputInfo, "datatype" | "precision">): number {
  return info.precision ?? info.datatype;
}

export interface Evaluator {
  /** The requested outputs, flat row-major FP64, in the order of `outputs`. */
  evaluate(perturbation: Perturbation): Promise<Float64Array[]>;
  /** Concrete output paths and shapes; known once the first evaluation returned. */
  readonly outputs: OutputInfo[] | undefined;
  /** How many times apply ran. */
  readonly calls: number;
  /** How many evaluations may usefully be in flight at once (1: one after the other). */
  readonly concurrency: number;
  /**
   * Evaluations one worker task takes together (the pool's batch size), where there are tasks: the
   * engine then sends pairs in calls of about this many, one task each, so that every thread has
   * tasks of its own (undefined: no tasks).
   */
  readonly taskEvaluations?: number;
  /**
   * The rounding in each value of `outputs` (an evaluate() result), for evaluators whose values are
   * not plain outputs (a contraction of them); otherwise the engine takes half an ulp of each value.
   */
  rounding?(outputs: Float64Array[]): Float64Array[];
  /**
   * f(x + plus) - f(x + minus) for each pair of element changes (two evaluations each), over the
   * pair's width where the pairs have widths, what central differences need, flat: pair k's values
   * at k × stride, the outputs one after the other (stride: their sizes summed), with no array per
   * pair. In-thread evaluators run the pairs in one loop; those that run apply in other threads take
   * each pair there as one unit and send back half the values (divided there), with one promise for
   * all. Without it the engine evaluates each, subtracts and divides (the same numbers). A failure
   * of one evaluation is a FailedPair.
   */
  differences?(pairs: ElementPairs): Promise<Float64Array>;
  /**
   * The request's plan is known: it makes about `evaluations` in all (a grouped Jacobian a third of
   * the dense count the evaluator was made with), for evaluators that plan by it.
   */
  replanned?(evaluations: number): void;
}

/**
 * Pairs of perturbations of single elements, packed in typed arrays (helpers: element-pairs.ts):
 * pair k sets elements starts[k] .. starts[k + 1] - 1 — element e is flat index indices[e] of leaf
 * leaves[e] — to plus[e] on one side and to minus[e] on the other.
 */
export interface ElementPairs {
  /** count + 1 offsets into the element arrays. */
  starts: Uint32Array;
  leaves: Uint32Array;
  indices: Uint32Array;
  plus: Float64Array;
  minus: Float64Array;
  /**
   * Per pair, what its difference is divided by where the pair is evaluated (central differences'
   * widths: a worker thread divides, not the main thread); absent, 1 for every pair.
   */
  widths?: Float64Array;
}

/** Two perturbations whose outputs are subtracted: f(x + pair[0]) - f(x + pair[1]). */
export type PerturbationPair = readonly [Perturbation, Perturbation];

/** One evaluation of `differences` failed: which pair, which side of it (0: the first), and why. */
export class FailedPair extends Error {
  constructor(
    readonly pair: number,
    readonly side: number,
    readonly error: unknown,
  ) {
    super(thrownMessage(error), { cause: error });
  }
}

/** Values per evaluation: the outputs' sizes summed (the stride of `differences`' results). */
export function outputStride(outputs: readonly OutputInfo[]): number {
  return outputSizes(outputs).reduce((a, b) => a + b, 0);
}

/** `run` on each item: all at once where evaluations run concurrently (`concurrency` > 1), else one after the other. */
export async function eachInTurn<T, R>(items: readonly T[], concurrency: number, run: (item: T) => Promise<R>): Promise<R[]> {
  if (concurrency > 1) return Promise.all(items.map(run));
  const results: R[] = [];
  for (const item of items) results.push(await run(item));
  return results;
}

/** Pairs' outputs a - b (over widths[k], where given), flat as `differences` returns them (pair k at k × stride). */
export function flatDifferences(results: readonly (readonly Float64Array[])[], stride: number, widths?: Float64Array): Float64Array {
  const flat = new Float64Array((results.length / 2) * stride);
  for (let k = 0; 2 * k < results.length; k++) {
    let at = k * stride;
    const [a, b] = [results[2 * k], results[2 * k + 1]];
    for (let o = 0; o < a.length; o++) for (let i = 0; i < a[o].length; i++) flat[at++] = a[o][i] - b[o][i];
  }
  divideByWidths(widths, flat, stride);
  return flat;
}

/** Each output's number of values. */
export function outputSizes(outputs: readonly OutputInfo[]): number[] {
  return outputs.map((o) => o.shape.reduce((a, b) => a * b, 1));
}

/** Flat values (item k at k × stride) as views, one per output per item; `sizes` from outputSizes. */
export function splitFlat(values: Float64Array, sizes: readonly number[], items: number): Float64Array[][] {
  const split: Float64Array[][] = new Array(items);
  for (let k = 0, at = 0; k < items; k++) split[k] = sizes.map((n) => values.subarray(at, (at += n)));
  return split;
}
