/**
 * tesseract-core's JSON inputs and outputs, guided by the Tesseract's protobuf message types. JSON
 * becomes the very bytes a gRPC client would send (an Any of the type), so the runtime decodes,
 * checks limits and validates them exactly as on the gRPC path; trees with ndarray leaves become
 * JSON with array objects, enums by name. Used by the REST transport (its requests and answers) and
 * by the tesseract-core bridge (the other way round: its apply requests and the answers to them),
 * where `enumStrings` names enum values by tesseract-core's own strings.
 */
import type { NdArray } from "ndarray";
import * as protobuf from "protobufjs";
import { invalidArgument } from "../../common/errors";
import { arrayObject, tensorFromArrayObject, type ArrayEncoding } from "../../common/numpy-arrays";
import { isPlainObject } from "../../common/records";
import { isNdArray } from "../../common/tensor-codec";
import type { AnyMessage, MessageSchema } from "./schema";

const TENSOR_TYPE = ".tesseract.v1.Tensor";

export const isTensorField = (field: protobuf.Field): boolean => field.resolvedType?.fullName === TENSOR_TYPE;

const short = (v: unknown) => JSON.stringify(v)?.slice(0, 40);

const INT_RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  sint32: [-(2 ** 31), 2 ** 31 - 1],
  sfixed32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  fixed32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  sint64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  sfixed64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
  fixed64: [0, Number.MAX_SAFE_INTEGER],
};

/** Per enum (full name, no leading dot), the string of each value number: tesseract-core's Literal values. */
export type EnumStrings = Readonly<Record<string, readonly string[]>>;

const enumKey = (e: protobuf.Enum) => e.fullName.replace(/^\./, "");

/** One scalar field value, checked against its protobuf type. */
function scalar(field: protobuf.Field, v: unknown, where: string, enumStrings: EnumStrings): unknown {
  const type = field.type;
  if (field.resolvedType instanceof protobuf.Enum) {
    const values = field.resolvedType.values;
    const strings = enumStrings[enumKey(field.resolvedType)];
    if (strings && typeof v === "string" && v !== "" && strings.includes(v)) return strings.indexOf(v);
    if (typeof v === "string" && Object.hasOwn(values, v)) return values[v];
    if (Number.isInteger(v) && (v as number) >= INT_RANGES.int32[0] && (v as number) <= INT_RANGES.int32[1]) return v;
    throw invalidArgument(`${where} is ${short(v)}, expected one of ${Object.keys(values).join(", ")} (or its number)`);
  }
  if (type === "double" || type === "float") {
    if (typeof v === "number") return v;
    throw invalidArgument(`${where} is ${short(v)}, expected a number`);
  }
  if (Object.hasOwn(INT_RANGES, type)) {
    const [lo, hi] = INT_RANGES[type];
    const n = typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : v;
    if (Number.isInteger(n) && (n as number) >= lo && (n as number) <= hi) return n;
    throw invalidArgument(`${where} is ${short(v)}, expected an integer from ${lo} to ${hi} (${type})`);
  }
  if (type === "bool") {
    if (typeof v === "boolean") return v;
    throw invalidArgument(`${where} is ${short(v)}, expected true or false`);
  }
  if (type === "string") {
    if (typeof v === "string") return v;
    throw invalidArgument(`${where} is ${short(v)}, expected a string`);
  }
  if (type === "bytes") {
    if (typeof v === "string") return Buffer.from(v, "base64");
    throw invalidArgument(`${where} is ${short(v)}, expected a base64 string`);
  }
  throw invalidArgument(`${where} has type ${type}, which the REST API does not read`);
}

/** One JSON value of a field (element-wise for maps and lists). */
function fieldValue(field: protobuf.Field, v: unknown, where: string, abstract: boolean, enumStrings: EnumStrings): unknown {
  const element = (x: unknown, w: string) => {
    if (isTensorField(field)) {
      if (!isPlainObject(x)) throw invalidArgument(`${w} is ${short(x)}, expected an array object {"shape", "dtype", "data"}`);
      return tensorFromArrayObject(x, w, { abstract });
    }
    if (field.resolvedType instanceof protobuf.Type) return plainMessage(field.resolvedType, x, w, abstract, enumStrings);
    return scalar(field, x, w, enumStrings);
  };
  if (field.map) {
    if (!isPlainObject(v)) throw invalidArgument(`${where} is ${short(v)}, expected an object (a map)`);
    return Object.fromEntries(Object.entries(v).map(([key, x]) => [key, element(x, `${where}.{${key.replace(/[\\}]/g, "\\$&")}}`)]));
  }
  if (field.repeated) {
    if (!Array.isArray(v)) throw invalidArgument(`${where} is ${short(v)}, expected a list`);
    return v.map((x, i) => element(x, `${where}.[${i}]`));
  }
  return element(v, where);
}

/** JSON of a message type -> protobufjs plain object; unknown fields are refused, null means unset. */
function plainMessage(type: protobuf.Type, json: unknown, where: string, abstract: boolean, enumStrings: EnumStrings = {}): Record<string, unknown> {
  if (!isPlainObject(json)) throw invalidArgument(`${where} is ${short(json)}, expected an object (${type.name})`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(json)) {
    const at = `${where}.${key}`;
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    if (!field) throw invalidArgument(`${at} is not a field of ${type.name}; fields: ${Object.keys(type.fields).join(", ")}`);
    if (v !== null) out[key] = fieldValue(field, v, at, abstract, enumStrings);
  }
  return out;
}

/**
 * The request's `inputs` as an Any of the input type. `abstract` (abstract_eval) lets arrays leave
 * out `data`. Messages start with `inputs.` and the JSON path of the value they refuse.
 */
export function inputsAny(schema: MessageSchema, json: unknown, abstract = false, opts: { field?: string; enumStrings?: EnumStrings } = {}): AnyMessage {
  const field = opts.field ?? "inputs";
  const plain = plainMessage(schema.type, json, field, abstract, opts.enumStrings);
  const problem = schema.type.verify(plain);
  if (problem) throw invalidArgument(`${field} ${problem}`);
  return { type_url: schema.typeUrl, value: schema.type.encode(plain).finish() };
}

/** A tree of `type` (ndarray leaves, as the runtime decodes outputs) as JSON; unset fields are left out. */
export function messageJson(type: protobuf.Type, tree: Record<string, unknown>, encoding: ArrayEncoding, enumStrings: EnumStrings = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const v = tree[field.name];
    if (v === undefined || v === null) continue;
    const element = (x: unknown): unknown => {
      if (isNdArray(x)) return arrayObject(x as NdArray<any>, encoding);
      if (field.resolvedType instanceof protobuf.Type) return messageJson(field.resolvedType, x as Record<string, unknown>, encoding, enumStrings);
      if (field.resolvedType instanceof protobuf.Enum) return enumStrings[enumKey(field.resolvedType)]?.[x as number] || (field.resolvedType.valuesById[x as number] ?? x);
      if (x instanceof Uint8Array) return Buffer.from(x).toString("base64");
      return typeof x === "bigint" ? Number(x) : x;
    };
    if (field.map) out[field.name] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, element(x)]));
    else if (field.repeated) out[field.name] = (v as unknown[]).map(element);
    else out[field.name] = element(v);
  }
  return out;
}
