/**
 * The differentiated inputs as the evaluators and the engine see them: each leaf's flat, perturbable
 * storage inside the base inputs, with its path and shape.
 */
import type { NdArray } from "ndarray";
import { Code, invalidArgument, quote, TesseractError } from "../../common/errors";
import type { Segment } from "../../common/paths";
import type { ResolvedLeaf } from "../schema/schema";
import { DataType, dataTypeName, dataTypeOfArray, elementCount, isFloatingPoint, isRowMajor, type TypedArray } from "../../common/tensor-codec";

export interface InputLeaf {
  path: string;
  segments: Segment[];
  shape: number[];
  size: number;
  /** Row-major storage of the leaf inside the base inputs. */
  data: Float64Array | Float32Array;
  fp32: boolean;
}

/** Checks that a resolved input leaf can be perturbed: floating point, dense row-major. */
export function inputLeaf(leaf: ResolvedLeaf, field: string): InputLeaf {
  const array = leaf.array as NdArray<TypedArray>;
  const dtype = dataTypeOfArray(array.data);
  if (!isFloatingPoint(dtype)) {
    throw invalidArgument(`${field}: input path ${quote(leaf.path)} has datatype ${dataTypeName(dtype)}; only DATA_TYPE_FP32 and DATA_TYPE_FP64 inputs can be differentiated`);
  }
  const shape = [...array.shape];
  const size = elementCount(shape);
  if (array.offset !== 0 || array.data.length !== size || !isRowMajor(shape, array.stride)) {
    throw new TesseractError(Code.INTERNAL, `input ${leaf.path} is not a dense row-major array`);
  }
  return { path: leaf.path, segments: leaf.segments, shape, size, data: array.data as Float64Array | Float32Array, fp32: dtype === DataType.DATA_TYPE_FP32 };
}

/** "mesh.points[3, 1]": a leaf element by its multi-index, for messages. */
export function elementName(leaf: { path: string; shape: readonly number[] }, flatIndex: number): string {
  if (leaf.shape.length === 0) return leaf.path;
  const index: number[] = [];
  for (let i = leaf.shape.length - 1, rest = flatIndex; i >= 0; i--) {
    index.unshift(rest % leaf.shape[i]);
    rest = Math.floor(rest / leaf.shape[i]);
  }
  return `${leaf.path}[${index.join(", ")}]`;
}
