/**
 * The authoring API: what a Tesseract module default-exports.
 *
 * `I` and `O` are the ts-proto types of the input and output messages; `apply` sees them with every
 * `Tensor` replaced by an ndarray (see `Arrays`).
 */
import { Algorithm, SparsityMode, StepMode, StochasticEstimator } from "../generated/tesseract/v1/algorithm";
import type { NdArray } from "ndarray";
import type { AbstractTensor, Arrays, WithTensorsAs } from "../common/tree-types";

export type { AbstractTensor, Arrays, TensorLike, WithTensorsAs } from "../common/tree-types";

/** Output structure without values, for AbstractEval. */
export interface AbstractOutput {
  path: string;
  shape: number[];
  /** A DataType number. */
  datatype: number;
}

/** AbstractEval's outputs; `answered`, where a runtime elsewhere answered its output model as JSON (arrays as {shape, dtype}). */
export interface AbstractEvalAnswer {
  outputs: AbstractOutput[];
  answered?: Record<string, unknown>;
}

/** tesseract.v1's option enums, as generated from the contract (ALGORITHM_CENTRAL, ...). */
export { Algorithm, SparsityMode, StepMode, StochasticEstimator };

/** An open interval (lower, upper); either end may be left out. */
export interface DomainBounds {
  lower?: number;
  upper?: number;
}

/** A value fixed by the author, or computed from the inputs of the request. */
export type PerInputs<I, V> = V | ((inputs: I) => V | undefined);

export interface FiniteDifferenceDefaults<I> {
  algorithm?: PerInputs<I, Algorithm>;
  eps?: PerInputs<I, number>;
  numSamples?: PerInputs<I, number>;
}

/**
 * The structurally nonzero entries of one (output, input) block of the Jacobian, as pairs of flat
 * row-major indices (COO): entry k is d output[output_index[k]] / d input[input_index[k]]. The same
 * fields as the contract's tesseract.v1.SparsityPattern. A block with no pattern is dense; a pattern
 * with no pairs says the block is zero.
 */
export interface SparsityPattern {
  output_path: string;
  input_path: string;
  output_index: ArrayLike<number | string>;
  input_index: ArrayLike<number | string>;
}

/** Author-supplied analytic Jacobian: result[outputPath][inputPath], shape (*out, *in). */
export type AnalyticJacobian<I> = (
  inputs: I,
  jacInputs: string[],
  jacOutputs: string[],
) => Record<string, Record<string, NdArray<Float64Array>>>;

/** `I` (inputs, `A` as abstractEval sees them), `O` outputs. */
export interface TesseractDefinition<I, O, A = unknown> {
  name: string;
  version: string;
  description: string;
  /** Full protobuf names of the input and output messages. */
  inputType: string;
  outputType: string;
  /** .proto files declaring those messages: absolute, or relative to the module's folder. */
  protoFiles: string[];
  /** Extra import folders (same resolution). The contract's proto/ folder is always included. */
  protoIncludeDirs?: string[];
  /** Checks beyond the schema; throw `invalidArgument(...)` naming the field. */
  validate?(inputs: I): void;
  apply(inputs: I): O | Promise<O>;
  /**
   * Output shapes from input shapes alone, without evaluating: the inputs with every tensor as its
   * `{ shape, datatype }` (AbstractTensor); one `{ path, shape, datatype }` per output tensor.
   */
  abstractEval?(inputs: A, signal?: AbortSignal): AbstractOutput[] | Promise<AbstractOutput[]>;
  finiteDifferences?: FiniteDifferenceDefaults<I>;
  /**
   * The open domain of differentiable inputs, per path or pattern (e.g. `{ diffusivity: { lower: 0 } }`):
   * finite-difference steps stay strictly inside it, with a one-sided stencil near a bound.
   */
  bounds?: Record<string, DomainBounds>;
  /**
   * The Jacobian's structure at these inputs, per (output path, input path) of concrete differentiable
   * paths (blocks a request does not ask for are ignored, blocks left out are dense). The engine then
   * perturbs input elements whose columns touch disjoint outputs together (column grouping): a
   * banded or block-diagonal Jacobian costs a few evaluations instead of one pair per element. It
   * must be a superset of the true structure: an entry left out is taken to be exactly zero.
   */
  sparsity?(inputs: I): SparsityPattern[];
  /** Optional analytic gradients, used for gradient checking against finite differences. */
  gradients?: { jacobian?: AnalyticJacobian<I> };
  /**
   * Inputs typical of the Tesseract's use, small enough that a Jacobian of them takes milliseconds:
   * the server warms its engine up on them before it reports SERVING, so that the first request is
   * about as fast as later ones. Without them there is no warm-up.
   */
  exampleInputs?: () => I;
  /**
   * false when apply may give different outputs for equal inputs (random, time-dependent, reading
   * outside state): its evaluations are then never reused. Default true: the outputs at a request's
   * unperturbed inputs are kept a while and reused by later requests on the same inputs.
   */
  deterministic?: boolean;
}

/** Identity with types: `export default defineTesseract<Inputs, Outputs>({ ... })`. */
export function defineTesseract<I, O>(
  definition: TesseractDefinition<Arrays<I>, Arrays<O>, WithTensorsAs<I, AbstractTensor>>,
): TesseractDefinition<Arrays<I>, Arrays<O>, WithTensorsAs<I, AbstractTensor>> {
  return definition;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTesseract = TesseractDefinition<any, any, any>;
