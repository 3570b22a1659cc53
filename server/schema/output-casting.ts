/**
 * Arrays in the datatypes their Tensor fields declare (`(tesseract.v1.datatype)`, written from a
 * runtime's schema or a .proto): the inputs of the JSON forms and of gRPC (castNdArray), and a
 * tesseract-core runtime's outputs. numpy code often answers another dtype than it declares (float64
 * for a float32 output) or a bare JSON list: the values are cast to the declared datatype when every
 * value survives the cast (an integer in range for an integer type, 0 or 1 for bool, a finite number
 * that stays finite in float32), and refused otherwise, naming the path, element and value: never a
 * silently different number. Arrays already in their declared dtype pass untouched (no decoding on
 * the evaluation path).
 */
import ndarray, { type NdArray } from "ndarray";
import * as protobuf from "protobufjs";
import { invalidArgument, refusedAs } from "../../common/errors";
import { elementIn, flattenLists, numpyDtype, tensorFromArrayObject } from "../../common/numpy-arrays";
import { emptyRecord, isPlainObject } from "../../common/records";
import { bracedKey } from "../../common/paths";
import type { RequiredFields } from "./openapi-proto";
import { fieldNamed, fieldOfKey, jsonKey } from "./json-keys";
import { arrayClass, DataType, decodeTensor, type TypedArray } from "../../common/tensor-codec";

const DATATYPE_OPTION = "(tesseract.v1.datatype)";
const DIFFERENTIABLE_OPTION = "(tesseract.v1.differentiable)";
const TENSOR_TYPE = ".tesseract.v1.Tensor";

/** A protobuf type's full name without its leading dot: how RequiredFields and EnumLiterals key it. */
export const protoName = (type: { fullName: string }): string => type.fullName.replace(/^\./, "");

/** Whether a field carries `(tesseract.v1.differentiable) = true`. */
export function isDifferentiableField(field: protobuf.Field): boolean {
  return field.options?.[DIFFERENTIABLE_OPTION] === true;
}

/** A Tensor field's declared datatype, or undefined (any). */
export function declaredDatatype(field: protobuf.Field): DataType | undefined {
  const value = field.options?.[DATATYPE_OPTION] as string | number | undefined;
  const datatype = typeof value === "string" ? DataType[value as keyof typeof DataType] : value;
  return datatype ? datatype : undefined;
}

/** Flat values in an array of `to`, each value cast or refused naming it (`from` says what they were). */
function castElements(values: ArrayLike<unknown>, to: DataType, where: string, from: string): TypedArray {
  const out = new (arrayClass(to))(values.length) as TypedArray;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const element = typeof v === "number" || typeof v === "bigint" ? elementIn(v, to) : typeof v === "boolean" ? elementIn(Number(v), to) : undefined;
    if (element === undefined) throw invalidArgument(`${where} has ${JSON.stringify(typeof v === "bigint" ? String(v) : v)?.slice(0, 40)} at flat index ${i} (${from}), which the declared dtype ${numpyDtype(to)} cannot hold`);
    out[i] = element as never;
  }
  return out;
}

/** Flat values as an array object of `to`, each value cast or refused. */
function castValues(values: ArrayLike<unknown>, shape: number[], to: DataType, where: string, from: string): Record<string, unknown> {
  const out = castElements(values, to, where, from);
  const buffer = Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString("base64");
  return { object_type: "array", shape, dtype: numpyDtype(to), data: { buffer, encoding: "base64" } };
}

/**
 * A decoded array (of datatype `from`) of a Tensor field declared `to`, in that datatype: as it is when it has it, else
 * cast element by element, each value surviving the cast or refused (castElements). A
 * tesseract-core runtime casts an input to its declared dtype itself: a float64 point sent to a
 * float32 input moved by another step than the one the quotient divides by (8-22 % off through the
 * bridge), where the engine's own FP32 leaf rounds each point and divides by the step taken.
 */
export function castNdArray(array: NdArray<TypedArray>, from: DataType, to: DataType, where: string): NdArray<TypedArray> {
  if (from === to) return array;
  return ndarray(castElements(array.data, to, where, `dtype ${numpyDtype(from)}`) as never, array.shape.slice()) as unknown as NdArray<TypedArray>;
}

/**
 * One array value of a Tensor field declared `to`: as it is when it already has that dtype, else cast.
 * A `differentiable` one answered in integers, or in a narrower float than declared, is refused: cast,
 * its differences were rounding jumps, or steps below its precision (a Jacobian of 0.5 answered OK
 * as −2 249.75 where a runtime's later answers came as int64).
 */
export function castArray(value: unknown, to: DataType, where: string, differentiable = false): unknown {
  if (Array.isArray(value) || typeof value === "number" || typeof value === "boolean") {
    const { shape, values } = flattenLists(value, where);
    return castValues(values, shape, to, where, "a JSON list");
  }
  if (!isPlainObject(value) || value.dtype === numpyDtype(to)) return value;
  const tensor = tensorFromArrayObject(value, where);
  const fp32 = tensor.datatype === DataType.DATA_TYPE_FP32 && value.dtype !== "float16"; // float16 is read as FP32
  if (differentiable && !(tensor.datatype === DataType.DATA_TYPE_FP64 || (fp32 && to === DataType.DATA_TYPE_FP32))) {
    // Named as answered: a float16 one is read as float32.
    const answered = typeof value.dtype === "string" ? value.dtype : numpyDtype(tensor.datatype);
    throw invalidArgument(`${where} is ${answered}, a differentiable output declared ${numpyDtype(to)}: finite differences need its declared precision (of integers they are rounding jumps)`);
  }
  const decoded = decodeTensor(tensor, where);
  return castValues(decoded.data as ArrayLike<number | bigint>, tensor.shape, to, where, `dtype ${numpyDtype(tensor.datatype)}`);
}

/** Applies `convert` to a field's JSON value, element-wise for maps and lists; other shapes pass (the decoder refuses them). */
function eachElement(field: protobuf.Field, value: unknown, where: string, convert: (v: unknown, w: string) => unknown): unknown {
  if (field.map) return isPlainObject(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convert(v, `${where}.${bracedKey(k)}`)])) : value;
  if (field.repeated) return Array.isArray(value) ? value.map((v, i) => convert(v, `${where}.[${i}]`)) : value;
  return value === null ? value : convert(value, where);
}

/** The fields of `type` named in `names` (RequiredFields lists field names), in that order. */
const fieldsNamed = (type: protobuf.Type, names: readonly string[] = []): protobuf.Field[] => names.flatMap((name) => fieldNamed(type, name) ?? []);

/**
 * Refuses a field of this message (not below) that the runtime's schema requires and `json` (keyed by
 * the fields' keys) leaves out or null, naming its key, and its field where that is named otherwise.
 */
function refuseMissing(type: protobuf.Type, json: Record<string, unknown>, where: string, required: RequiredFields): void {
  // Per answer (castToDeclared): a loop over the names, not fieldsNamed's array of them.
  let missing: protobuf.Field | undefined;
  for (const name of required[protoName(type)] ?? []) {
    const field = fieldNamed(type, name);
    const key = field && jsonKey(field);
    if (key !== undefined && (!Object.hasOwn(json, key) || json[key] === null)) {
      missing = field;
      break;
    }
  }
  if (missing !== undefined) {
    const key = jsonKey(missing);
    const absent = !Object.hasOwn(json, key);
    const field = key === missing.name ? "" : ` (field ${missing.name})`;
    // pydantic writes a float that is NaN or infinite as null: the runtime's apply computed one.
    const float = !absent && !missing.repeated && !missing.map && (missing.type === "double" || missing.type === "float");
    const message = `${where}.${key}${field} is ${absent ? "missing" : `null${float ? " (pydantic writes a NaN or infinite float as null)" : ""}`}; the runtime's schema requires it`;
    throw absent ? refusedAs("missing", message) : invalidArgument(message);
  }
}

/**
 * Inputs JSON of `type` (messageJson's: unset fields left out) completed and checked against what
 * the runtime's schema requires, at any depth: a required field that may be null (`nullable`:
 * Optional[X] without a default, a Literal holding None) left unset is sent as null, which gRPC
 * cannot say; any other required field left unset is refused — its scalars have presence
 * (openapi-proto.ts), and one the caller did not set went to the runtime as a zero, computed with
 * and answered OK.
 */
export function requireFields(type: protobuf.Type, json: unknown, where: string, required: RequiredFields, nullable: RequiredFields = {}): void {
  if (!isPlainObject(json)) return;
  const unset = fieldsNamed(type, nullable[protoName(type)]).filter((f) => !Object.hasOwn(json, jsonKey(f)));
  if (unset.length) putNulls(type, json, unset);
  refuseMissing(type, json, where, required);
  for (const [key, value] of Object.entries(json)) {
    const field = fieldOfKey(type, key);
    const sub = field?.resolvedType;
    if (sub instanceof protobuf.Type && sub.fullName !== TENSOR_TYPE) eachElement(field!, value, `${where}.${key}`, (v, w) => requireFields(sub, v, w, required, nullable));
  }
}

/** `json` with null at each of `fields`, every key in the message's field order (the model's): appended, they came last. */
function putNulls(type: protobuf.Type, json: Record<string, unknown>, fields: readonly protobuf.Field[]): void {
  const given = { ...json };
  for (const key of Object.keys(json)) delete json[key];
  for (const field of type.fieldsArray) {
    const key = jsonKey(field);
    if (Object.hasOwn(given, key)) json[key] = given[key];
    else if (fields.includes(field)) json[key] = null;
  }
  for (const [key, value] of Object.entries(given)) if (!Object.hasOwn(json, key)) json[key] = value;
}

/**
 * The outputs JSON of `type` with every array of a declared datatype in that datatype (see the
 * module comment); messages name paths from `where` (e.g. `outputs.barycenter`). A field the
 * runtime's schema requires (`required`, per message, and not nullable) must be there and not null:
 * left out or null, it would decode as an empty tensor or a zero, and an Apply answer OK.
 */
export function castToDeclared(type: protobuf.Type, json: unknown, where: string, required: RequiredFields = {}): unknown {
  if (!isPlainObject(json)) return json;
  refuseMissing(type, json, where, required);
  const out = emptyRecord<unknown>();
  for (const [key, value] of Object.entries(json)) {
    const field = fieldOfKey(type, key);
    const at = `${where}.${key}`;
    const declared = field && field.resolvedType?.fullName === TENSOR_TYPE ? declaredDatatype(field) : undefined;
    if (declared !== undefined) out[key] = eachElement(field!, value, at, (v, w) => castArray(v, declared, w, isDifferentiableField(field!)));
    else if (field?.resolvedType instanceof protobuf.Type) {
      const sub = field.resolvedType;
      out[key] = eachElement(field, value, at, (v, w) => castToDeclared(sub, v, w, required));
    } else out[key] = value;
  }
  return out;
}
