/**
 * apply's outputs in the datatypes their Tensor fields declare (`(tesseract.v1.datatype)`), as
 * tesseract-core validates a Tesseract's outputs with the schema that validates its inputs: an array
 * of another dtype is cast where numpy's `same_kind` casting allows it (float64 -> float32, int32 ->
 * int64, int -> float, bool -> anything) and every value survives the cast (in range, whole, finite
 * in float32); otherwise it is refused, naming the output, what was declared and what apply returned.
 * The refusal is the Tesseract's fault (INTERNAL here, UNKNOWN for a runtime elsewhere), not the
 * caller's. An ndarray over a plain Array has no dtype: its values are cast one by one.
 */
import ndarray, { type NdArray } from "ndarray";
import * as protobuf from "protobufjs";
import { Code, TesseractError } from "../../common/errors";
import { castsSameKind, elementIn, numpyDtype } from "../../common/numpy-arrays";
import { setProperty } from "../../common/records";
import { formatPath } from "../../common/paths";
import { arrayClass, DataType, dataTypeOfArray, elementCount, isFloatingPoint, isNdArray, ndarrayExtentProblem, type TypedArray } from "../../common/tensor-codec";
import { declaredDatatype } from "./output-casting";

const TENSOR_TYPE = ".tesseract.v1.Tensor";

/** How an array's datatype reads in messages: numpy's name, as tesseract-core, the REST API and the CLI write dtypes. */
export function dtypeName(datatype: DataType): string {
  return numpyDtype(datatype) ?? String(datatype);
}

/**
 * Why an array of `returned` is refused for an output declared `declared`, or undefined where numpy
 * casts it (`same_kind`). A Uint8Array is no bool array (JavaScript has none): BoolArray is.
 */
function castRefusal(returned: DataType, declared: DataType): string | undefined {
  if (castsSameKind(returned, declared)) return undefined;
  const hint = declared === DataType.DATA_TYPE_BOOL ? "; return a BoolArray (exported by tesseract-grpc) of 0 and 1" : "";
  return `numpy's same_kind casting, which tesseract-core applies to outputs, does not cast ${dtypeName(returned)} to ${dtypeName(declared)}${hint}`;
}

/** An ndarray's values in row-major order (any strides), as they are: typed-array elements, or a plain Array's items. */
function rowMajorValues(a: NdArray): ArrayLike<unknown> {
  const n = elementCount(a.shape);
  const data = a.data as ArrayLike<unknown> & { get?: (i: number) => unknown };
  const read = !ArrayBuffer.isView(data) && !Array.isArray(data) && typeof data.get === "function" ? (i: number) => data.get!(i) : (i: number) => data[i];
  const out = new Array<unknown>(n);
  const rank = a.shape.length;
  const index = new Array<number>(rank).fill(0);
  for (let k = 0, at = a.offset; k < n; k++) {
    out[k] = read(at);
    // Odometer over the dimensions, last fastest.
    for (let d = rank - 1; d >= 0; d--) {
      at += a.stride[d];
      if (++index[d] < a.shape[d]) break;
      at -= a.stride[d] * a.shape[d];
      index[d] = 0;
    }
  }
  return out;
}

/** One returned value as an element of `declared`, or why it cannot be one (`plain`: an item of a plain Array). */
function castElement(v: unknown, declared: DataType, plain: boolean): { element: number | bigint } | { why: string } {
  const integer = !isFloatingPoint(declared) && declared !== DataType.DATA_TYPE_BOOL;
  // A number past 2^53 already stands for several integers: which one apply meant cannot be told.
  if (plain && integer && typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v) && elementIn(BigInt(v), declared) !== undefined) {
    const array = declared === DataType.DATA_TYPE_INT64 ? "BigInt64Array" : "BigUint64Array";
    return { why: `past ±(2^53 − 1), where a JavaScript number is inexact: return ${dtypeName(declared)} values in a ${array}` };
  }
  const element = typeof v === "number" || typeof v === "bigint" ? elementIn(v, declared) : typeof v === "boolean" ? elementIn(Number(v), declared) : undefined;
  if (element !== undefined) return { element };
  return { why: `which its declared dtype ${dtypeName(declared)} cannot hold` };
}

/** `v` as a message shows it. */
const shownValue = (v: unknown): string => (typeof v === "bigint" ? String(v) : typeof v === "number" ? String(v) : (JSON.stringify(v) ?? String(v)).slice(0, 40));

/**
 * One output array in its declared datatype: as it is where it already has it, else cast, or refused
 * (`code`) naming `where`, the declared dtype and what apply returned.
 */
export function castReturnedArray(array: NdArray, declared: DataType, where: string, code: Code, by = "apply"): NdArray {
  const data = array.data as unknown;
  const typed = ArrayBuffer.isView(data);
  const returned = typed ? dataTypeOfArray(data as TypedArray) : undefined;
  if (returned === declared) return array;
  const fault = (message: string) => new TesseractError(code, `${by} returned output ${where} ${message}`);
  if (returned !== undefined) {
    const refusal = castRefusal(returned, declared);
    if (refusal) throw fault(`as ${dtypeName(returned)}, declared ${dtypeName(declared)}: ${refusal}`);
  }
  // Read past its data, the values were undefined: the encoder's message says why.
  const extent = ndarrayExtentProblem(array);
  if (extent) throw fault(extent);
  const values = rowMajorValues(array);
  const out = new (arrayClass(declared))(values.length) as TypedArray;
  const from = returned === undefined ? "a plain Array" : dtypeName(returned);
  for (let i = 0; i < values.length; i++) {
    const cast = castElement(values[i], declared, returned === undefined);
    if ("why" in cast) throw fault(`with ${shownValue(values[i])} at flat index ${i} (${from}), ${cast.why}`);
    (out as unknown as (number | bigint)[])[i] = cast.element;
  }
  return ndarray(out as never, array.shape.slice()) as NdArray;
}

/**
 * Refuses what apply returned at a differentiable output `where` that finite differences cannot take:
 * a dtype that is no output declared `declared` (castReturnedArray's refusal), an integer or bool
 * array (its differences are rounding jumps, whatever it is cast to), or an output declared an
 * integer type (the schema's own mistake, told when it is differentiated).
 */
export function checkDifferentiableOutput(array: NdArray, declared: DataType | undefined, where: string, code: Code, by = "apply"): void {
  const returned = dataTypeOfArray(array.data as TypedArray);
  const fault = (message: string) => new TesseractError(code, `${by} returned output ${where} ${message}`);
  const jumps = "finite differences of integers are rounding jumps";
  if (declared !== undefined && !isFloatingPoint(declared)) {
    throw new TesseractError(code, `output ${where} is declared ${dtypeName(declared)} at a differentiable path: expected float32 or float64 (${jumps})`);
  }
  const refusal = declared === undefined ? undefined : castRefusal(returned, declared);
  if (refusal) throw fault(`as ${dtypeName(returned)}, declared ${dtypeName(declared!)}: ${refusal}`);
  if (!isFloatingPoint(returned)) throw fault(`as ${dtypeName(returned)}, at a differentiable path: expected float32 or float64 (${jumps})`);
}

/** Whether a message type holds a Tensor field that declares its datatype, at any depth (memoised). */
const declaring = new WeakMap<protobuf.Type, boolean>();

function declaresDatatypes(type: protobuf.Type, visiting = new Set<protobuf.Type>()): boolean {
  const known = declaring.get(type);
  if (known !== undefined) return known;
  if (visiting.has(type)) return false;
  visiting.add(type);
  const found = type.fieldsArray.some((field) => fieldDeclares(field, visiting));
  visiting.delete(type);
  declaring.set(type, found);
  return found;
}

function fieldDeclares(field: protobuf.Field, visiting = new Set<protobuf.Type>()): boolean {
  const sub = field.resolvedType;
  if (sub?.fullName === TENSOR_TYPE) return declaredDatatype(field) !== undefined;
  return sub instanceof protobuf.Type && declaresDatatypes(sub, visiting);
}

/** A copy of a map (keyed as apply keyed it: "__proto__" is a key like any) or a list, or the object itself. */
function shallowCopy(value: object): Record<string, unknown> | unknown[] {
  if (Array.isArray(value)) return value.slice();
  const out = Object.create(Object.getPrototypeOf(value) as object | null) as Record<string, unknown>;
  for (const key of Object.keys(value)) setProperty(out, key, (value as Record<string, unknown>)[key]);
  return out;
}

/** `convert` applied to a field's value, element-wise for maps and lists, copying only what changes. */
function eachChanged(field: protobuf.Field, value: unknown, where: string, convert: (v: unknown, w: string) => unknown): unknown {
  if (!field.map && !field.repeated) return convert(value, where);
  if (value === null || typeof value !== "object" || Array.isArray(value) !== !field.map) return value; // the encoder says what it expected
  let out: Record<string, unknown> | unknown[] | undefined;
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    const at = field.map ? `${where}.${formatPath([{ kind: "key", key }])}` : `${where}.[${key}]`;
    const cast = convert(item, at);
    if (cast !== item) setProperty((out ??= shallowCopy(value)) as Record<string, unknown>, key, cast);
  }
  return out ?? value;
}

/**
 * apply's outputs (a tree of message type `type`) with every array of a Tensor field that declares
 * its datatype in that datatype (castReturnedArray). Copy-on-write: apply's own objects are never
 * written to, and a tree whose arrays all have their declared datatypes is returned as it is.
 * Anything else at a Tensor field (no ndarray) is left for the encoder to refuse.
 */
export function castReturnedOutputs(type: protobuf.Type, tree: unknown, code: Code = Code.INTERNAL, prefix = ""): unknown {
  if (!declaresDatatypes(type) || tree === null || typeof tree !== "object" || Array.isArray(tree)) return tree;
  let out: Record<string, unknown> | undefined;
  for (const field of type.fieldsArray) {
    if (!fieldDeclares(field) || !Object.hasOwn(tree, field.name)) continue;
    const value = (tree as Record<string, unknown>)[field.name];
    if (value === undefined || value === null) continue;
    const where = prefix ? `${prefix}.${field.name}` : field.name;
    const sub = field.resolvedType as protobuf.Type;
    const declared = declaredDatatype(field);
    const convert =
      sub.fullName === TENSOR_TYPE ? (v: unknown, w: string) => (isNdArray(v) ? castReturnedArray(v, declared!, w, code) : v) : (v: unknown, w: string) => castReturnedOutputs(sub, v, code, w);
    const cast = eachChanged(field, value, where, convert);
    if (cast !== value) setProperty((out ??= shallowCopy(tree) as Record<string, unknown>), field.name, cast);
  }
  return out ?? tree;
}
