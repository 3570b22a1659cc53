/**
 * tesseract-core's JSON form, for the CLI: arrays are nested lists (FP64; booleans BOOL), or
 * `{"object_type": "array", "shape": [...], "dtype": "float32", "data": {"buffer": ..., "encoding":
 * "base64" | "json"}}` with a numpy dtype name. Converted to and from trees with ndarray leaves,
 * guided by the message type so that only Tensor fields become arrays.
 */
import ndarray, { type NdArray } from "ndarray";
import type * as protobuf from "protobufjs";
import { clip, invalidArgument } from "../common/errors";
import { recordFrom } from "../common/records";
import { DataType, decodeTensor, elementCount, encodeTensor, isNdArray } from "../common/tensor-codec";

const TENSOR_TYPE = ".tesseract.v1.Tensor";

/** numpy dtype names, as tesseract-core writes them. */
const DTYPES: Record<string, DataType> = {
  bool: DataType.DATA_TYPE_BOOL,
  uint8: DataType.DATA_TYPE_UINT8,
  uint16: DataType.DATA_TYPE_UINT16,
  uint32: DataType.DATA_TYPE_UINT32,
  uint64: DataType.DATA_TYPE_UINT64,
  int8: DataType.DATA_TYPE_INT8,
  int16: DataType.DATA_TYPE_INT16,
  int32: DataType.DATA_TYPE_INT32,
  int64: DataType.DATA_TYPE_INT64,
  float32: DataType.DATA_TYPE_FP32,
  float64: DataType.DATA_TYPE_FP64,
};
const DTYPE_NAMES = Object.fromEntries(Object.entries(DTYPES).map(([name, dt]) => [dt, name]));

export type Format = "json" | "json+base64";

/** Nested lists -> shape and flat values; the lists must be rectangular. */
function flattenLists(value: unknown, where: string): { shape: number[]; values: unknown[] } {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  const values: unknown[] = [];
  const walk = (v: unknown, depth: number, at: string) => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw invalidArgument(`${where}: ragged nested list at ${at}`);
      values.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) throw invalidArgument(`${where}: ragged nested list at ${at}, expected ${shape[depth]} elements`);
    v.forEach((x, i) => walk(x, depth + 1, `${at}[${i}]`));
  };
  walk(value, 0, "");
  return { shape, values };
}

/** One JSON array value (either form) as an ndarray. */
export function arrayFromJson(value: unknown, where: string): NdArray<any> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const o = value as { object_type?: string; shape?: number[]; dtype?: string; data?: { buffer?: unknown; encoding?: string } };
    if (o.object_type !== "array") throw invalidArgument(`${where}: expected a nested list or {"object_type": "array", ...}`);
    const datatype = DTYPES[o.dtype ?? ""];
    if (datatype === undefined) throw invalidArgument(`${where}: unknown dtype "${o.dtype}"; expected one of ${Object.keys(DTYPES).join(", ")}`);
    const shape = o.shape ?? [];
    if (o.data?.encoding === "base64") {
      if (typeof o.data.buffer !== "string") throw invalidArgument(`${where}.data.buffer: expected a base64 string`);
      return decodeTensor({ datatype, shape, data: Buffer.from(o.data.buffer, "base64") }, where);
    }
    if (o.data?.encoding === "json" || o.data?.encoding === undefined) {
      const { values } = flattenLists(o.data?.buffer, where);
      const count = elementCount(shape);
      if (values.length !== count) throw invalidArgument(`${where}: ${values.length} values for shape [${shape.join(", ")}]`);
      const fp64 = ndarray(Float64Array.from(values as number[]), shape);
      return decodeTensor(encodeTensor(fp64, datatype), where);
    }
    throw invalidArgument(`${where}.data.encoding: expected "base64" or "json", got "${o.data?.encoding}"`);
  }
  const { shape, values } = flattenLists(value, where);
  if (values.every((v) => typeof v === "boolean")) return ndarray(Uint8Array.from(values as boolean[], Number), shape);
  if (!values.every((v) => typeof v === "number")) throw invalidArgument(`${where}: expected numbers in the nested list`);
  return ndarray(Float64Array.from(values as number[]), shape);
}

/** JSON for one ndarray: nested lists (`json`) or the base64 object form (`json+base64`). */
export function arrayToJson(array: NdArray<any>, format: Format): unknown {
  const wire = encodeTensor(array);
  if (format === "json+base64") {
    return { object_type: "array", shape: wire.shape, dtype: DTYPE_NAMES[wire.datatype], data: { buffer: Buffer.from(wire.data).toString("base64"), encoding: "base64" } };
  }
  const isBool = wire.datatype === DataType.DATA_TYPE_BOOL;
  const flat = Array.from(decodeTensor(wire, "").data as ArrayLike<number | bigint>, (v) => (typeof v === "bigint" ? Number(v) : isBool ? v === 1 : v));
  const nest = (offset: number, depth: number): unknown => {
    if (depth === wire.shape.length) return flat[offset];
    const stride = elementCount(wire.shape.slice(depth + 1));
    return Array.from({ length: wire.shape[depth] }, (_, i) => nest(offset + i * stride, depth + 1));
  };
  return nest(0, 0);
}

function mapField(field: protobuf.Field, value: unknown, where: string, convert: (v: unknown, w: string) => unknown): unknown {
  if (field.map) return recordFrom(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, convert(v, `${where}.{${clip(k)}}`)]));
  if (field.repeated) return (value as unknown[]).map((v, i) => convert(v, `${where}.[${i}]`));
  return convert(value, where);
}

/** An enum given by name (as in proto JSON) or number. */
function enumValue(type: protobuf.Enum, value: unknown, where: string): number {
  if (typeof value === "number") return value;
  const number = typeof value === "string" ? type.values[value] : undefined;
  if (number === undefined) throw invalidArgument(`${where}: unknown ${type.name} value ${JSON.stringify(value)}; expected one of ${Object.keys(type.values).join(", ")}`);
  return number;
}

/** A JSON message of `type` as a tree with ndarray leaves; unknown fields are errors. */
export function jsonToTree(type: protobuf.Type, json: unknown, where = ""): Record<string, unknown> {
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw invalidArgument(`${where || "inputs"}: expected a JSON object for ${type.name}`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const at = where ? `${where}.${key}` : key;
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    if (!field) throw invalidArgument(`${clip(at)}: ${type.name} has no such field; fields: ${Object.keys(type.fields).join(", ")}`);
    const sub = field.resolvedType;
    if (sub?.fullName === TENSOR_TYPE) out[key] = mapField(field, value, at, arrayFromJson);
    else if (sub && "fields" in sub) out[key] = mapField(field, value, at, (v, w) => jsonToTree(sub as protobuf.Type, v, w));
    else if (sub && "values" in sub) out[key] = mapField(field, value, at, (v, w) => enumValue(sub as protobuf.Enum, v, w));
    else out[key] = value;
  }
  return out;
}

/** Any tree (ndarray leaves anywhere) as JSON. */
export function treeToJson(tree: unknown, format: Format): unknown {
  if (isNdArray(tree)) return arrayToJson(tree, format);
  if (Array.isArray(tree)) return tree.map((v) => treeToJson(v, format));
  if (tree !== null && typeof tree === "object" && !ArrayBuffer.isView(tree)) {
    return Object.fromEntries(Object.entries(tree).filter(([, v]) => v !== undefined).map(([k, v]) => [k, treeToJson(v, format)]));
  }
  return typeof tree === "bigint" ? Number(tree) : tree;
}
