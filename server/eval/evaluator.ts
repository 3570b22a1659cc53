/**
 * An evaluator runs `apply` at the base inputs with a small perturbation applied and returns the
 * requested outputs as flat FP64 arrays. The engine only ever talks to this interface, so apply can
 * run inline, in worker threads or on other servers.
 */

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
  /** The output's own DataType (values reach the engine as FP64 whatever it is). */
  datatype: number;
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
   * The rounding in each value of `outputs` (an evaluate() result), for evaluators whose values are
   * not plain outputs (a contraction of them); otherwise the engine takes half an ulp of each value.
   */
  rounding?(outputs: Float64Array[]): Float64Array[];
}
