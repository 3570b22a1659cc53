/**
 * Output datatypes the client can be told, so that its results are typed by them: with
 * `outputDatatypes: { statistics: { barycenter: "float64" } }` the client's `apply` returns
 * `statistics.barycenter` as a (required) `NdArray<Float64Array>`, and checks at run time that the
 * server sent exactly that. Without it, a tensor may be any typed array, bigint ones included.
 *
 * The spec mirrors the generated Outputs type: a datatype name (numpy's, as in the CLI's JSON) for a
 * Tensor field, a map of Tensors or a list of Tensors; a nested spec for a message field or a list of
 * messages. A key the Outputs type lacks, or a name that is no datatype, does not compile.
 */
import type { NdArray } from "ndarray";
import { status } from "@grpc/grpc-js";
import { NUMPY_DTYPES } from "../common/numpy-arrays";
import { arrayClass, isNdArray, type TypedArray } from "../common/tensor-codec";
import type { Arrays, TensorLike } from "../common/tree-types";
import { isPlainObject } from "../common/records";
import { clip } from "../common/errors";
import { TesseractClientError } from "./errors";

/** The typed array each datatype name decodes to (BOOL: one byte per element). */
export interface ArrayOfDatatype {
  bool: Uint8Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
  uint32: Uint32Array;
  uint64: BigUint64Array<ArrayBuffer>;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array<ArrayBuffer>;
  float32: Float32Array;
  float64: Float64Array;
}

export type DatatypeName = keyof ArrayOfDatatype;

/** A datatype name for a Tensor, a map of Tensors or a list of Tensors; a nested spec for messages. */
type FieldSpec<V> = V extends TensorLike
  ? DatatypeName
  : V extends Uint8Array
    ? never
    : V extends readonly (infer U)[]
      ? FieldSpec<U>
      : V extends object
        ? string extends keyof V
          ? V[string] extends TensorLike
            ? DatatypeName
            : never
          : DatatypeSpec<V>
        : never;

/** For some Tensor fields of message `T`, the datatype they must have. */
export type DatatypeSpec<T> = { [K in keyof T]?: FieldSpec<NonNullable<T[K]>> };

/**
 * A spec `D` with every key its schema's spec `S` lacks typed `never`, at any depth. A spec is
 * inferred from the literal, and an inferred type only has to fit its constraint, which extra keys
 * do: `{ statistics: { barycentre: "float64", first_point_coordinates: "float64" } }` compiled.
 */
export type ExactSpec<D, S> = D extends string ? D : { [K in keyof D]: K extends keyof S ? ExactSpec<D[K], NonNullable<S[K]>> : never };

/** A field of `V` decoded as spec `S` says: ndarrays of that datatype, required. */
type Typed<V, S> = S extends DatatypeName
  ? V extends TensorLike
    ? NdArray<ArrayOfDatatype[S]>
    : V extends readonly (infer U)[]
      ? Typed<U, S>[]
      : Record<string, NdArray<ArrayOfDatatype[S]>>
  : V extends readonly (infer U)[]
    ? Typed<NonNullable<U>, S>[]
    : TypedArrays<V, S>;

/**
 * `Arrays<T>` (every Tensor an ndarray of any datatype), except that the fields `D` names are
 * required and hold ndarrays of the named datatype.
 */
export type TypedArrays<T, D> = Omit<Arrays<T>, keyof D & keyof T> & { -readonly [K in keyof D & keyof T]-?: Typed<NonNullable<T[K]>, D[K]> };

function mismatch(message: string): TesseractClientError {
  return new TesseractClientError(status.FAILED_PRECONDITION, `${message} (the client's outputDatatypes); the server's Tesseract does not produce what this client was declared for`);
}

function checkArray(value: unknown, name: DatatypeName, where: string): void {
  if (!isNdArray(value)) throw mismatch(`${where} is ${value === undefined ? "missing" : "not a tensor"}, expected ${name}`);
  const expected = arrayClass(NUMPY_DTYPES[name]);
  const data = value.data as TypedArray;
  if (!(data instanceof expected)) throw mismatch(`${where} has ${data.constructor.name} values, expected ${name}`);
}

/** Checks a decoded tree against a spec; every mismatch is FAILED_PRECONDITION naming the field. */
export function checkDatatypes(tree: unknown, spec: object, where: string): void {
  for (const [key, fieldSpec] of Object.entries(spec)) {
    if (fieldSpec === undefined) continue;
    const at = `${where}.${key}`;
    const value = isPlainObject(tree) ? tree[key] : undefined;
    if (value === undefined) throw mismatch(`${at} is missing, expected ${typeof fieldSpec === "string" ? fieldSpec : "a message"}`);
    checkField(value, fieldSpec as string | object, at);
  }
}

function checkField(value: unknown, spec: string | object, where: string): void {
  if (Array.isArray(value)) return value.forEach((v, i) => checkField(v, spec, `${where}.[${i}]`));
  if (typeof spec === "object") return checkDatatypes(value, spec, where);
  const name = spec as DatatypeName;
  if (!Object.hasOwn(NUMPY_DTYPES, name)) throw new TypeError(`outputDatatypes: ${where}: "${name}" is not a datatype; expected one of ${Object.keys(NUMPY_DTYPES).join(", ")}`);
  if (isPlainObject(value)) {
    for (const [key, v] of Object.entries(value)) checkArray(v, name, `${where}.{${clip(key)}}`);
    return;
  }
  checkArray(value, name, where);
}
