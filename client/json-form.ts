/**
 * tesseract-core's JSON form, for the CLI: arrays are nested lists (FP64; booleans BOOL), the compact
 * `{"dtype": "int32", "data": [0, 1, 2], "shape"?: [3]}`, or tesseract-core's `{"object_type": "array",
 * "shape": [...], "dtype": "float32", "data": {"buffer": ..., "encoding": "base64" | "json"}}`, with
 * numpy dtype names. Converted to and from trees with ndarray leaves,
 * guided by the message type so that only Tensor fields become arrays.
 */
import { refuseTwoOfOneof } from "../common/oneofs";
import ndarray, { type NdArray } from "ndarray";
import type * as protobuf from "protobufjs";
import { clip, invalidArgument, shown } from "../common/errors";
import { enumNumber, literalName, namesNumbers, shortNames } from "../common/enum-names";
import { recordFrom } from "../common/records";
import { arrayObject, flattenLists, tensorFromArrayObject } from "../common/numpy-arrays";
import { BoolArray, dataTypeOfArray, decodeTensor, isNdArray } from "../common/tensor-codec";
import { INT_RANGES, jsonScalar } from "../common/json-scalars";
import { jsonFloat, jsonInteger } from "../common/exact-json";

const TENSOR_TYPE = ".tesseract.v1.Tensor";

export type Format = "json" | "json+base64";

const COMPACT_KEYS = ["dtype", "data", "shape"];

/**
 * The compact form of an array of any dtype, `{"dtype": "int32", "data": [0, 1, 2]}`: data a
 * (nested) list or a scalar, its nesting the shape unless "shape" is given. As the array object.
 */
function compactToArrayObject(value: Record<string, unknown>, where: string): Record<string, unknown> {
  const extra = Object.keys(value).filter((k) => !COMPACT_KEYS.includes(k));
  if (extra.length) throw invalidArgument(`${where}.${clip(extra[0])}: not a key of the compact array form {"dtype", "data", "shape"?}`);
  const { shape, values } = flattenLists(value.data, `${where}.data`);
  return { object_type: "array", dtype: value.dtype, shape: value.shape ?? shape, data: { buffer: values, encoding: "json" } };
}

/** The keys of tesseract-core's array object. */
const ARRAY_OBJECT_KEYS = ["object_type", "shape", "dtype", "data"];

/** Whether an object is no array form at all (none of the array object's keys, or one no form has), not one with a mistake inside. */
const isNoArrayForm = (object: Record<string, unknown>) => {
  const keys = Object.keys(object);
  return keys.length === 0 || keys.some((k) => !ARRAY_OBJECT_KEYS.includes(k));
};

/**
 * An object given where a tensor is expected that is none of its forms, e.g. `{"b": [1]}`: says the
 * field is a tensor and lists the forms (it read `….shape must be a list…`, of a key never written).
 */
function notATensor(value: unknown, where: string, abstract: boolean): Error {
  const forms = [
    "a nested list ([1, 2, 3])",
    '{"dtype": "int32", "data": [0, 1, 2]} ("shape"? when the nesting does not give it)',
    'tesseract-core\'s array object {"object_type"?: "array", "shape", "dtype", "data": {"buffer", "encoding"}}',
    ...(abstract ? ['{"shape", "dtype"} (its shape and dtype alone)'] : []),
  ];
  return invalidArgument(`${where}: a tensor field, and ${shown(value)} is none of its forms: ${forms.slice(0, -1).join(", ")} or ${forms.at(-1)}`);
}

/** One JSON array value (a nested list, the compact form or tesseract-core's array object) as an ndarray. */
export function arrayFromJson(value: unknown, where: string): NdArray<any> {
  return arrayOf(value, where, false);
}

function arrayOf(value: unknown, where: string, abstract: boolean): NdArray<any> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    const compact = object.object_type === undefined && (Array.isArray(object.data) || typeof object.data === "number" || typeof object.data === "boolean");
    if (!compact && isNoArrayForm(object)) throw notATensor(value, where, abstract);
    return decodeTensor(tensorFromArrayObject(compact ? compactToArrayObject(object, where) : object, where), where);
  }
  const { shape, values } = flattenLists(value, where);
  // An empty list is float64 like any nested list (every() of nothing is true: it became BOOL).
  if (values.length > 0 && values.every((v) => typeof v === "boolean")) return ndarray(BoolArray.from(values as boolean[], Number), shape);
  if (!values.every((v) => typeof v === "number")) throw invalidArgument(`${where}: expected numbers in the nested list`);
  // JSON's numbers are finite: an infinite one was a literal beyond FP64's range (1e999 went in as Infinity).
  const infinite = (values as number[]).findIndex((v) => !Number.isFinite(v));
  if (infinite >= 0) throw invalidArgument(`${where}: element ${infinite} is ${shown(values[infinite])}, expected a finite number`);
  return ndarray(Float64Array.from(values as number[]), shape);
}

/** JSON for one ndarray: nested lists (`json`) or the base64 object form (`json+base64`). */
export function arrayToJson(array: NdArray<any>, format: Format): unknown {
  return format === "json+base64" ? arrayObject(array, "base64") : arrayObject(array, "json").data.buffer;
}

function mapField(field: protobuf.Field, value: unknown, where: string, convert: (v: unknown, w: string) => unknown): unknown {
  if (field.map) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw invalidArgument(`${where}: expected an object (a map)`);
    return recordFrom(Object.entries(value).map(([k, v]) => [k, convert(v, `${where}.{${clip(k)}}`)]));
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw invalidArgument(`${where}: expected a list`);
    return value.map((v, i) => convert(v, `${where}.[${i}]`));
  }
  return convert(value, where);
}

/**
 * An enum given by name (as in proto JSON), by its short name (`forward` for METHOD_VALUE_FORWARD:
 * a tesseract-core Tesseract's own Literal string; see common/enum-names.ts) or by number.
 */
function enumValue(type: protobuf.Enum, value: unknown, where: string): number {
  // A bridged Literal's number, boolean or None by its value's name (literalName), as tesseract-core
  // reads the value itself: 1 of Literal[3, 2, 1] is ORDER_VALUE_1 (number 3); it went as value number 1, the literal 3.
  if (value === null || typeof value === "boolean" || typeof value === "number") {
    const literal = enumNumber(type.name, type.values, literalName(value));
    if (literal !== undefined) return literal;
  }
  const [lo, hi] = INT_RANGES.int32;
  if (Number.isInteger(value) && (value as number) >= lo && (value as number) <= hi && !namesNumbers(type.name, type.values)) return value as number;
  const number = typeof value === "string" ? enumNumber(type.name, type.values, value) : undefined;
  if (number === undefined) throw invalidArgument(`${where}: unknown ${type.name} value ${JSON.stringify(value)}; expected one of ${shortNames(type.name, type.values).join(", ")} (or ${Object.keys(type.values).join(", ")})`);
  return number;
}

/**
 * An abstract array's JSON, `{"shape": [...], "dtype": "float64"}` (tesseract-core's abstract_eval
 * form), as {shape, datatype}; a concrete array in any form `apply` takes gives its own (as REST's
 * /abstract_eval and gRPC's AbstractEval take either).
 */
export function abstractArrayFromJson(value: unknown, where: string): { shape: number[]; datatype: number } {
  const object = value as { shape?: unknown; dtype?: unknown; data?: unknown } | null;
  if (object === null || typeof object !== "object" || Array.isArray(object) || object.data !== undefined) {
    const array = arrayOf(value, where, true);
    return { shape: array.shape.slice(), datatype: dataTypeOfArray(array.data as never) };
  }
  if (isNoArrayForm(object as Record<string, unknown>)) throw notATensor(value, where, true);
  // Checked as an array object without data, as REST's /abstract_eval checks it.
  const { shape, datatype } = tensorFromArrayObject(object as Record<string, unknown>, where, { abstract: true });
  return { shape, datatype };
}

/** A JSON message of `type` as a tree with ndarray leaves (or what `tensor` makes of each array); unknown fields are errors. */
export function jsonToTree(type: protobuf.Type, json: unknown, where = "", tensor: (value: unknown, where: string) => unknown = arrayFromJson): Record<string, unknown> {
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw invalidArgument(`${where || "inputs"}: expected a JSON object for ${type.name}`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const at = where ? `${where}.${key}` : key;
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    if (!field) throw invalidArgument(`${clip(at)}: ${type.name} has no such field; fields: ${Object.keys(type.fields).join(", ")}`);
    // Unset, as in tesseract-core's JSON, unless a Literal holds None (its value named NULL).
    const sub = field.resolvedType;
    const nullValue = sub && "values" in sub && !field.repeated && !field.map && enumNumber(sub.name, (sub as protobuf.Enum).values, literalName(null)) !== undefined;
    if (value === null && !nullValue) continue;
    if (sub?.fullName === TENSOR_TYPE) out[key] = mapField(field, value, at, tensor);
    else if (sub && "fields" in sub) out[key] = mapField(field, value, at, (v, w) => jsonToTree(sub as protobuf.Type, v, w, tensor));
    else if (sub && "values" in sub) out[key] = mapField(field, value, at, (v, w) => enumValue(sub as protobuf.Enum, v, w));
    else out[key] = mapField(field, value, at, (v, w) => jsonScalar(field.type, v, w));
  }
  refuseTwoOfOneof(type, out, where || "inputs");
  return out;
}

/** A decoded tree of `type` with its enum fields by name (`"ALGORITHM_CENTRAL"`; numbers the enum lacks stay numbers). */
export function enumsByName(type: protobuf.Type, tree: unknown): unknown {
  if (tree === null || typeof tree !== "object" || isNdArray(tree)) return tree;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(tree)) {
    const sub = Object.hasOwn(type.fields, key) ? type.fields[key].resolvedType : null;
    const field = type.fields[key];
    if (sub && "values" in sub) out[key] = mapField(field, value, key, (v) => (sub as protobuf.Enum).valuesById[v as number] ?? v);
    else if (sub && "fields" in sub && sub.fullName !== TENSOR_TYPE) out[key] = mapField(field, value, key, (v) => enumsByName(sub as protobuf.Type, v));
    else out[key] = value;
  }
  return out;
}

/** Any tree (ndarray leaves anywhere) as JSON. */
export function treeToJson(tree: unknown, format: Format): unknown {
  if (isNdArray(tree)) return arrayToJson(tree, format);
  if (Array.isArray(tree)) return tree.map((v) => treeToJson(v, format));
  // A bytes field: base64, as protobuf's JSON writes it (not a Buffer's {"type", "data"}).
  if (tree instanceof Uint8Array) return Buffer.from(tree.buffer, tree.byteOffset, tree.byteLength).toString("base64");
  if (tree !== null && typeof tree === "object" && !ArrayBuffer.isView(tree)) {
    return Object.fromEntries(Object.entries(tree).filter(([, v]) => v !== undefined).map(([k, v]) => [k, treeToJson(v, format)]));
  }
  return typeof tree === "bigint" ? jsonInteger(tree) : typeof tree === "number" ? jsonFloat(tree) : tree;
}
