/**
 * Message trees <-> trees with ndarray leaves, through the one tensor codec (server/tensor/codec).
 *
 * Outgoing: every ndarray becomes a `tesseract.v1.Tensor` message (encodeTensor: row-major, any
 * strides, datatype from the typed array); plain objects and arrays are walked; everything else
 * (numbers, strings, enums, Buffers, Tensor messages already built) is kept as is. With `abstract`,
 * a `{ shape, datatype }` leaf becomes an abstract tensor (shape and type, no data) for AbstractEval.
 *
 * Incoming: every Tensor message (an object with `datatype`, `shape` and `data` bytes) becomes an
 * ndarray (decodeTensor: validated, copied into its own buffer).
 */
import ndarray, { type NdArray } from "ndarray";
import { DataType, decodeTensor, encodeTensor, isNdArray, ndarrayExtentProblem, normalizeShape, toFloat64, type TypedArray } from "../common/tensor-codec";
import type { AbstractTensor, WithTensorsAs } from "../common/tree-types";
import { isPlainObject, recordFrom } from "../common/records";
import { keySegment } from "../common/paths";
import type { Tensor } from "../generated/tesseract/v1/tensor";

/** Like `Arrays<T>`, but a tensor may also be abstract: `{ shape, datatype }` without data (AbstractEval). */
export type AbstractArrays<T> = WithTensorsAs<T, NdArray<TypedArray> | AbstractTensor>;

/** `{ shape: number[], datatype: number }` and no data: an abstract tensor written by hand. */
function isAbstractLeaf(x: unknown): x is AbstractTensor {
  if (!isPlainObject(x) || x.data !== undefined) return false;
  return Array.isArray(x.shape) && x.shape.every((d) => typeof d === "number") && typeof x.datatype === "number";
}

export function isTensorMessage(x: unknown): x is Tensor {
  return isPlainObject(x) && typeof x.datatype === "number" && Array.isArray(x.shape) && x.data instanceof Uint8Array;
}

/** Wire bytes as a Buffer view (ts-proto's `bytes` type under env=node), without copying. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** One ndarray as a Tensor message (a fresh copy of its elements, row-major). */
export function tensorMessage(array: NdArray<any>, datatype?: DataType): Tensor {
  const wire = encodeTensor(array, datatype);
  return { datatype: wire.datatype, shape: wire.shape, data: asBuffer(wire.data) };
}

/**
 * One ndarray as a Tensor message; one whose shape reaches past its data is refused naming `path`
 * (where it is in the caller's tree): ndarray reads undefined there, NaN in a float tensor, and a
 * short row-major one failed with V8's "Invalid typed array length: 24".
 */
function tensorAt(array: NdArray<any>, path: string): Tensor {
  const problem = ndarrayExtentProblem(array);
  if (problem) throw new TypeError(`${path} ${problem}`);
  return tensorMessage(array);
}

/** A typed array other than bytes' Uint8Array where an ndarray was meant: a tensor needs its shape too. */
function refuseBareTypedArray(x: unknown, path: string): void {
  if (ArrayBuffer.isView(x) && !(x instanceof Uint8Array) && !(x instanceof DataView)) {
    throw new TypeError(`${path} is a bare ${x.constructor.name}: a tensor is an ndarray, ndarray(data, shape)`);
  }
}

/**
 * ndarray leaves -> Tensor messages (and, with `abstract`, `{ shape, datatype }` leaves -> abstract
 * tensors). `path` is the subtree's, for messages: "mesh.points", "layers[0].weights".
 */
export function toTensors(tree: unknown, options: { abstract?: boolean } = {}, path = "", ancestors = new Map<object, string>()): unknown {
  // A key that is no field name (a map's: "temp.x") is written as paths write map keys, {temp.x}.
  const below = (key: string | number) => (typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${keySegment(key)}` : keySegment(key));
  if (isNdArray(tree)) return tensorAt(tree, path);
  // A cycle ran until V8's "Maximum call stack size exceeded", naming nothing.
  if (typeof tree === "object" && tree !== null && ancestors.has(tree)) throw new TypeError(`${path} refers back to ${ancestors.get(tree) || "the inputs"} (a cyclic object): expected a tree of fields`);
  return withAncestor(tree, path, ancestors, () => walkTensors(tree, options, path, ancestors, below));
}

/** `walk()` with `tree` among the ancestors of what it visits. */
function withAncestor<T>(tree: unknown, path: string, ancestors: Map<object, string>, walk: () => T): T {
  if (typeof tree !== "object" || tree === null) return walk();
  ancestors.set(tree, path);
  try {
    return walk();
  } finally {
    ancestors.delete(tree);
  }
}

function walkTensors(tree: unknown, options: { abstract?: boolean }, path: string, ancestors: Map<object, string>, below: (key: string | number) => string): unknown {
  if (options.abstract && isAbstractLeaf(tree)) {
    // A fractional or negative dimension failed in the encoder, naming no field ("The number 1.5 cannot be converted to a BigInt").
    if (!tree.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new TypeError(`${path} has shape [${tree.shape.join(", ")}]: expected whole numbers ≥ 0`);
    return { datatype: tree.datatype, shape: [...tree.shape], data: Buffer.alloc(0) } satisfies Tensor;
  }
  refuseBareTypedArray(tree, path);
  if (Array.isArray(tree)) return tree.map((v, i) => toTensors(v, options, below(i), ancestors));
  // ts-proto types a map<bool, V> as a Map.
  if (tree instanceof Map) return new Map([...tree].map(([key, value]) => [key, toTensors(value, options, below(String(key)), ancestors)]));
  if (isPlainObject(tree)) return recordFrom(Object.keys(tree).map((key) => [key, toTensors(fieldOf(tree, key, below(key)), options, below(key), ancestors)]));
  return tree;
}

/** `tree[key]`; a getter that throws is named (its error alone named no field). */
function fieldOf(tree: Record<string, unknown>, key: string, path: string): unknown {
  try {
    return tree[key];
  } catch (e) {
    throw new TypeError(`${path} could not be read: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** Tensor messages -> ndarrays; `field` names the subtree in error messages ("outputs.statistics.barycenter"). */
export function toArrays(tree: unknown, field: string): unknown {
  if (isTensorMessage(tree)) return decodeTensor(tree, field);
  if (Array.isArray(tree)) return tree.map((v, i) => toArrays(v, `${field}[${i}]`));
  if (tree instanceof Map) return new Map([...tree].map(([key, value]) => [key, toArrays(value, `${field}.${String(key)}`)]));
  if (isPlainObject(tree)) return recordFrom(Object.entries(tree).map(([key, value]) => [key, toArrays(value, `${field}.${key}`)]));
  return tree;
}

/** A map of ndarrays (tangents, cotangents: `field`) as a map of Tensor messages. */
export function tensorMap(vectors: Record<string, NdArray<any>>, field = ""): Record<string, Tensor> {
  return recordFrom(
    Object.entries(vectors).map(([key, array]) => {
      const path = `${field}.{${key}}`;
      refuseBareTypedArray(array, path);
      if (!isNdArray(array)) throw new TypeError(`${path} is ${Array.isArray(array) ? "a plain array" : array === null ? "null" : typeof array}: expected an ndarray, ndarray(data, shape)`);
      return [key, tensorAt(array, path)];
    }),
  );
}

/** A result tensor as an FP64 ndarray: decoded by the codec, converted if the server sent another float type. */
export function fp64Array(t: Tensor | undefined, field: string): NdArray<Float64Array> {
  if (!t) throw new TypeError(`${field} is missing from the response`);
  const a = decodeTensor(t, field);
  return a.data instanceof Float64Array ? (a as NdArray<Float64Array>) : ndarray(toFloat64(a), a.shape.slice());
}

/** A map of result tensors as FP64 ndarrays. */
export function fp64Map(tensors: Record<string, Tensor>, field: string): Record<string, NdArray<Float64Array>> {
  return recordFrom(Object.entries(tensors).map(([key, t]) => [key, fp64Array(t, `${field}.{${key}}`)]));
}

/**
 * A 1-D FP64 tensor's values as a Float64Array VIEW of the message's bytes (no copy) when they are
 * 8-byte aligned, which Node's Buffer allocation makes the rule; otherwise the codec's decoded copy.
 * Used for streamed row slices, where a copy per message would be pure overhead.
 */
export function fp64Values(t: Tensor | undefined, field: string): Float64Array {
  if (!t) throw new TypeError(`${field} is missing`);
  if (t.datatype !== DataType.DATA_TYPE_FP64) throw new TypeError(`${field} has datatype ${t.datatype}, expected DATA_TYPE_FP64`);
  const shape = normalizeShape(t.shape, field);
  if (shape.length !== 1) throw new TypeError(`${field} has shape [${shape.join(", ")}], expected 1-D`);
  const data = t.data;
  if (data.byteOffset % Float64Array.BYTES_PER_ELEMENT === 0 && data.byteLength === shape[0] * Float64Array.BYTES_PER_ELEMENT) {
    return new Float64Array(data.buffer, data.byteOffset, shape[0]);
  }
  return decodeTensor(t, field).data as Float64Array; // validates the length, realigns
}
