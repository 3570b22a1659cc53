/**
 * The types of decoded trees, shared by the authoring API and the SDK: a message type with every
 * Tensor replaced by an ndarray (or, for AbstractEval, a shape and datatype).
 */
import type { NdArray } from "ndarray";
import type { TypedArray } from "./tensor-codec";

/** A Tensor message's shape, as ts-proto generates it. */
export interface TensorLike {
  datatype: number;
  shape: number[];
  data: Uint8Array;
}

/** `T` with every Tensor replaced by `Leaf`. */
export type WithTensorsAs<T, Leaf> = T extends TensorLike
  ? Leaf
  : T extends Uint8Array
    ? T
    : T extends readonly (infer U)[]
      ? WithTensorsAs<U, Leaf>[]
      : T extends object
        ? { [K in keyof T]: WithTensorsAs<T[K], Leaf> }
        : T;

/** `T` with every Tensor replaced by an ndarray over the matching typed array. */
export type Arrays<T> = WithTensorsAs<T, NdArray<TypedArray>>;

/** Inputs seen by abstractEval: tensors may carry only a shape and datatype. */
export interface AbstractTensor {
  shape: number[];
  datatype: number;
}
