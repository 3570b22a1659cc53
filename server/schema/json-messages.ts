/**
 * tesseract-core's JSON inputs and outputs, guided by the Tesseract's protobuf message types. JSON
 * becomes the very bytes a gRPC client would send (an Any of the type), so the runtime decodes,
 * checks limits and validates them exactly as on the gRPC path; trees with ndarray leaves become
 * JSON with array objects, enums by name. Used by the REST transport (its requests and answers) and
 * by the tesseract-core bridge (the other way round: its apply requests and the answers to them),
 * where `enumLiterals` gives enum values as tesseract-core's own Literal values. Fields are keyed by
 * their keys (json-keys.ts), trees by field names.
 */
import { refuseTwoOfOneof } from "../../common/oneofs";
import type { NdArray } from "ndarray";
import * as protobuf from "protobufjs";
import { invalidArgument, keyAt, refusedAs, shown } from "../../common/errors";
import { jsonScalar } from "../../common/json-scalars";
import { enumNumber, type LiteralEnum } from "../../common/enum-names";
import { arrayObject, castsSameKind, datatypeOfDtype, dtypesCastTo, numpyDtype, refuseExtraArrayKeys, tensorFromArrayObject, type ArrayEncoding } from "../../common/numpy-arrays";
import { emptyRecord, isPlainObject, ownValue } from "../../common/records";
import { boolKeysForEncoding } from "../../common/bool-keys";
import { DataType, dataTypeOfArray, isNdArray, tooManyMessages } from "../../common/tensor-codec";
import { jsonFloat, jsonInteger } from "../../common/exact-json";
import { bracedKey, keySegment } from "../../common/paths";
import type { AnyMessage, MessageSchema } from "./schema";
import { castArray, declaredDatatype, protoName } from "./output-casting";
import { fieldOfKey, jsonKey, jsonKeys } from "./json-keys";

const TENSOR_TYPE = ".tesseract.v1.Tensor";

export const isTensorField = (field: protobuf.Field): boolean => field.resolvedType?.fullName === TENSOR_TYPE;


/** Per enum (full name, no leading dot), the Literal it stands for. */
export type EnumLiterals = Readonly<Record<string, LiteralEnum>>;

/** Whether a field (not a list or map: their null is unset) is a bridged Literal with None among its values. */
function holdsNull(field: protobuf.Field, enumLiterals: EnumLiterals): boolean {
  return !field.repeated && !field.map && field.resolvedType instanceof protobuf.Enum && (enumLiterals[protoName(field.resolvedType)]?.values.includes(null) ?? false);
}

/** An enum's Literal values for messages: `"central", "forward"`, `3, 2, 1`. */
const literalList = (literals: LiteralEnum) => literals.values.map((l) => JSON.stringify(l)).join(", ");

/** The value number of a JSON value among an enum's literals (0: none). */
function literalNumber(literals: LiteralEnum, v: unknown): number {
  const at = literals.values.indexOf(v);
  return at < 0 ? 0 : literals.numbers[at];
}

/** One scalar field value, checked against its protobuf type. */
function scalar(field: protobuf.Field, v: unknown, where: string, enumLiterals: EnumLiterals): unknown {
  const type = field.type;
  if (field.resolvedType instanceof protobuf.Enum) {
    const values = field.resolvedType.values;
    const literals = enumLiterals[protoName(field.resolvedType)];
    // A bridged Literal's values are themselves: 1 of Literal[3, 2, 1] is the literal 1, not value number 1.
    if (literals && literalNumber(literals, v)) return literalNumber(literals, v);
    const byName = typeof v === "string" ? enumNumber(field.resolvedType.name, values, v) : undefined;
    if (byName !== undefined) return byName;
    // A value number stays one where every literal is a string (as it was read before literals were
    // values), if it is one of the enum's (another went on to protobufjs, "enum value expected",
    // located at the whole inputs: 99 for meshstats' fd_algorithm); of Literal[False, True], 1 went as false.
    const numbered = literals ? literals.values.every((l) => typeof l === "string") && literals.numbers.includes(v as number) : Object.values(values).includes(v as number);
    if (numbered) return v;
    if (literals) throw invalidArgument(`${where} is ${shown(v)}, expected one of ${literalList(literals)} (or their enum value names)`);
    throw invalidArgument(`${where} is ${shown(v)}, expected one of ${Object.keys(values).join(", ")} (or its number)`);
  }
  return jsonScalar(type, v, where);
}

/** How one JSON message is read: abstract arrays allowed (abstract_eval), enum literals, and the messages it may still hold. */
interface Reading {
  abstract: boolean;
  enumLiterals: EnumLiterals;
  /** DecodeLimits.maxMessages, and the messages (tensors, map entries, nested messages) read so far. */
  maxMessages: number;
  messages: number;
  /**
   * A request's arrays, read as tesseract-core's array model reads them: keys it lacks are refused,
   * and a dtype numpy would not cast `same_kind` to the declared one (a runtime's answers are read as they come).
   */
  strictArrays: boolean;
  /** Whether null may stand for this field (unset); none: any may (a runtime's answers, read as they come). */
  takesNull?: (field: protobuf.Field) => boolean;
}

/** One more message or map entry (as the gRPC decoder counts them), refused past the limit before it is converted. */
function counted(reading: Reading, where: string): void {
  if (++reading.messages > reading.maxMessages) throw tooManyMessages(reading.maxMessages, where);
}

/**
 * Refuses a request's array whose dtype numpy would not cast to the declared one under
 * `same_kind` (float to an integer type, signed to unsigned, a number to bool), naming both.
 */
function refuseOtherKind(x: Record<string, unknown>, declared: DataType, where: string): void {
  const dtype = datatypeOfDtype(x.dtype);
  if (dtype === undefined || castsSameKind(dtype, declared)) return;
  throw invalidArgument(`${where}.dtype is ${shown(x.dtype)}, which is not cast to the declared dtype ${numpyDtype(declared)} (numpy's same_kind casting, as tesseract-core casts inputs); dtypes taken: ${dtypesCastTo(declared).join(", ")}`);
}

/** One JSON value of a field (element-wise for maps and lists). */
function fieldValue(field: protobuf.Field, v: unknown, where: string, reading: Reading): unknown {
  const element = (x: unknown, w: string) => {
    if (isTensorField(field)) {
      counted(reading, w);
      if (!isPlainObject(x)) throw invalidArgument(`${w} is ${shown(x)}, expected an array object {"shape", "dtype", "data"}`);
      if (reading.strictArrays) refuseExtraArrayKeys(x, w);
      // Another dtype than the field declares is cast to it when every value survives, as
      // tesseract-core accepts a castable dtype (numpy's integer points for FP64 ones); a request's
      // only when numpy casts it `same_kind`, as tesseract-core's model takes it (float64 values
      // for an int32 field were taken when whole, where tesseract-core answers 422).
      const declared = reading.abstract ? undefined : declaredDatatype(field);
      if (declared !== undefined && reading.strictArrays) refuseOtherKind(x, declared, w);
      return tensorFromArrayObject((declared === undefined ? x : castArray(x, declared, w)) as Record<string, unknown>, w, { abstract: reading.abstract });
    }
    if (field.resolvedType instanceof protobuf.Type) return plainMessage(field.resolvedType, x, w, reading);
    return scalar(field, x, w, reading.enumLiterals);
  };
  if (field.map) {
    if (!isPlainObject(v)) throw invalidArgument(`${where} is ${shown(v)}, expected an object (a map)`);
    return Object.fromEntries(
      Object.entries(v).map(([key, x]) => {
        const at = `${where}.${bracedKey(key)}`;
        counted(reading, at);
        return [key, element(x, at)];
      }),
    );
  }
  if (field.repeated) {
    if (!Array.isArray(v)) throw invalidArgument(`${where} is ${shown(v)}, expected a list`);
    return v.map((x, i) => element(x, `${where}.[${i}]`));
  }
  return element(v, where);
}

/** JSON of a message type -> protobufjs plain object; unknown fields are refused, null means unset where the field takes it. */
function plainMessage(type: protobuf.Type, json: unknown, where: string, reading: Reading): Record<string, unknown> {
  counted(reading, where);
  if (!isPlainObject(json)) throw invalidArgument(`${where} is ${shown(json)}, expected an object (${type.name})`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(json)) {
    // A key that is no plain name (a bridged runtime's `größe`, `a.b`) braced, as paths write map keys:
    // written bare, the 422's loc read from the message stopped before it, or split it at the dot.
    const at = `${where}.${keySegment(key)}`;
    // By the field's key (json-keys.ts): a bridged runtime's `fooBar` is field foo_bar_2 here.
    const field = fieldOfKey(type, key);
    if (!field) throw refusedAs("extra_forbidden", `${keyAt(where, key)} is not a field of ${type.name}; fields: ${jsonKeys(type).join(", ")}`);
    // null is a value of a Literal holding None (sent as null), else unset where the field may be
    // null; elsewhere it is refused as the field's type refuses any other value, naming the field.
    if (v === null && !holdsNull(field, reading.enumLiterals) && (reading.takesNull?.(field) ?? true)) continue;
    out[field.name] = fieldValue(field, v, at, reading);
  }
  refuseTwoOfOneof(type, out, where);
  return out;
}

/**
 * The request's `inputs` as an Any of the input type. `abstract` (abstract_eval) lets arrays leave
 * out `data`. Messages start with `inputs.` and the JSON path of the value they refuse.
 */
export function inputsAny(
  schema: MessageSchema,
  json: unknown,
  abstract = false,
  opts: { field?: string; enumLiterals?: EnumLiterals; maxMessages?: number; strictArrays?: boolean; takesNull?: Reading["takesNull"] } = {},
): AnyMessage {
  const field = opts.field ?? "inputs";
  // Unbounded unless a request's limit is given (a runtime's outputs are not a request).
  const reading = { abstract, enumLiterals: opts.enumLiterals ?? {}, maxMessages: opts.maxMessages ?? Infinity, messages: 0, strictArrays: opts.strictArrays ?? false, takesNull: opts.takesNull };
  const plain = plainMessage(schema.type, json, field, reading);
  const problem = schema.type.verify(plain);
  if (problem) throw invalidArgument(`${field} ${problem}`);
  return { type_url: schema.typeUrl, value: schema.type.encode(boolKeysForEncoding(schema.type, plain)).finish() };
}

/** How arrays are written: array objects with base64 or JSON-list data, or `{"shape", "dtype"}` only (abstract_eval). */
export type JsonArrays = ArrayEncoding | "abstract";

/** A tensor leaf (an ndarray, or an abstract `{ shape, datatype }`) as `{"shape", "dtype"}`. */
function shapeAndDtype(x: unknown): { shape: number[]; dtype: string } {
  if (isNdArray(x)) return { shape: [...x.shape], dtype: numpyDtype(dataTypeOfArray(x.data as never)) };
  const { shape, datatype } = x as { shape: number[]; datatype: DataType };
  return { shape: [...shape], dtype: numpyDtype(datatype) };
}

/**
 * A tree of `type` (ndarray leaves, as the runtime decodes outputs) as JSON; unset fields are left
 * out. With `enumLiterals` (a bridged Tesseract's Literal values), enums are written as those
 * values, and value 0 (`*_UNSPECIFIED`, which has no string) means unset: left out of a message,
 * refused in a list or map, naming the path from `where`.
 */
export function messageJson(type: protobuf.Type, tree: Record<string, unknown>, encoding: JsonArrays, enumLiterals: EnumLiterals = {}, where = "inputs"): Record<string, unknown> {
  const out = emptyRecord<unknown>();
  for (const field of type.fieldsArray) {
    const v = ownValue(tree, field.name);
    if (v === undefined || v === null) continue;
    const key = jsonKey(field);
    const at = `${where}.${key}`;
    const literals = field.resolvedType instanceof protobuf.Enum ? enumLiterals[protoName(field.resolvedType)] : undefined;
    const element = (x: unknown, w: string): unknown => {
      if (isTensorField(field)) return encoding === "abstract" ? shapeAndDtype(x) : arrayObject(x as NdArray<any>, encoding);
      if (field.resolvedType instanceof protobuf.Type) return messageJson(field.resolvedType, x as Record<string, unknown>, encoding, enumLiterals, w);
      if (field.resolvedType instanceof protobuf.Enum) {
        const literal = literals ? literals.numbers.indexOf(x as number) : -1;
        if (literals && literal < 0) {
          if (x === 0 && w === at) return undefined;
          throw invalidArgument(`${w} is ${field.resolvedType.valuesById[x as number] ?? x}, which has no value in the Tesseract's schema; expected one of ${literalList(literals)}`);
        }
        return literals ? literals.values[literal] : (field.resolvedType.valuesById[x as number] ?? x);
      }
      if (x instanceof Uint8Array) return Buffer.from(x).toString("base64");
      return typeof x === "bigint" ? jsonInteger(x) : typeof x === "number" ? jsonFloat(x) : x;
    };
    let value: unknown;
    if (field.map) value = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, element(x, `${at}.${bracedKey(k)}`)]));
    else if (field.repeated) value = (v as unknown[]).map((x, i) => element(x, `${at}.[${i}]`));
    else value = element(v, at);
    if (value !== undefined) out[key] = value;
  }
  return out;
}
