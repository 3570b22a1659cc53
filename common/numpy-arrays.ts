/**
 * tesseract-core's array vocabulary, shared by the CLI's JSON form and the REST transport: numpy
 * dtype names for each datatype, and nested JSON lists to and from flat, row-major values.
 */
import type { NdArray } from "ndarray";
import { invalidArgument, keyAt, refusedAs, shown } from "./errors";
import { arrayClass, DataType, decodeTensor, elementCount, encodeTensor } from "./tensor-codec";
import { holdsNegativeZero, jsonFloat, jsonInteger } from "./exact-json";
import { plural } from "./plural";
import { halfValue, roundToHalf } from "./float16";

/** numpy dtype names, as tesseract-core writes them. */
export const NUMPY_DTYPES: Readonly<Record<string, DataType>> = Object.freeze({
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
});

/**
 * The datatype an array of numpy dtype `name` is read into: its own, or for float16, which has none,
 * float32 (every float16 value exactly: tesseract-core casts float16 to float32 and float64 too).
 */
export function datatypeOfDtype(name: unknown): DataType | undefined {
  if (name === "float16") return DataType.DATA_TYPE_FP32;
  return typeof name === "string" && Object.hasOwn(NUMPY_DTYPES, name) ? NUMPY_DTYPES[name] : undefined;
}

const NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(NUMPY_DTYPES).map(([name, dt]) => [dt, name]));

/** The numpy name of a datatype (`float64` for DATA_TYPE_FP64). */
export function numpyDtype(datatype: DataType): string {
  return NAMES[datatype];
}

/**
 * A message with its protobuf datatype names as numpy's (`DATA_TYPE_FP32` as `float32`), for the
 * JSON forms (REST, CLI), whose callers write dtypes that way. The caller's own text, quoted or a
 * map key in braces, stays as it was written (a dtype sent as "DATA_TYPE_FP32" read "float32").
 */
export function withNumpyDtypes(message: string): string {
  const out: string[] = [];
  let plain = 0;
  for (let at = 0; at < message.length; ) {
    const end = message[at] === '"' || message[at] === "{" ? closingOf(message, at) : undefined;
    if (end === undefined) {
      at++;
      continue;
    }
    out.push(numpyNames(message.slice(plain, at)), message.slice(at, end));
    plain = at = end;
  }
  out.push(numpyNames(message.slice(plain)));
  return out.join("");
}

const numpyNames = (text: string) => text.replace(/\bDATA_TYPE_[A-Z0-9]+\b/g, (name) => NAMES[DataType[name as keyof typeof DataType]] ?? name);

/**
 * Where the quoted string or braced key opening at `at` ends (after its `"` or `}`; backslash
 * escapes, but not of a line break), or undefined when it does not close. Found in one pass, not by
 * a regular expression: a message may quote a caller's key of megabytes, whose alternation per
 * character overflowed a regular expression's backtracking stack (a 500 for a body's mistake).
 */
function closingOf(message: string, at: number): number | undefined {
  const close = message[at] === '"' ? '"' : "}";
  for (let i = at + 1; i < message.length; i++) {
    const c = message[i];
    if (c === close) return i + 1;
    if (close === "}" && c === "{") return undefined;
    if (c === "\\" && (i + 1 === message.length || /[\n\r\u2028\u2029]/.test(message[++i]))) return undefined;
  }
  return undefined;
}

/** Nested lists -> shape and flat values; the lists must be rectangular. A non-list is a scalar. */
export function flattenLists(value: unknown, where: string): { shape: number[]; values: unknown[] } {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  const values: unknown[] = [];
  const walk = (v: unknown, depth: number, at: string) => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw invalidArgument(`${where}: ragged nested list at ${at}`);
      values.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) throw invalidArgument(`${where}: ragged nested list at ${at}, expected ${plural(shape[depth], "element")}`);
    v.forEach((x, i) => walk(x, depth + 1, `${at}[${i}]`));
  };
  walk(value, 0, "");
  return { shape, values };
}

/** Flat, row-major values -> nested lists of `shape` (a scalar for shape []); the innermost lists are slices of `flat`. */
export function nestValues<T>(flat: readonly T[], shape: readonly number[]): unknown {
  if (shape.length === 0) return flat[0];
  const last = shape.length - 1;
  const nest = (offset: number, depth: number): unknown => {
    if (depth === last) return flat.slice(offset, offset + shape[last]);
    const stride = elementCount(shape.slice(depth + 1));
    return Array.from({ length: shape[depth] }, (_, i) => nest(offset + i * stride, depth + 1));
  };
  return nest(0, 0);
}

/** tesseract-core's array object: `{"object_type": "array", "shape", "dtype", "data": {"buffer", "encoding"}}`. */
export interface ArrayObject {
  object_type: "array";
  shape: number[];
  dtype: string;
  data: { buffer: unknown; encoding: "json" | "base64" };
}

export type ArrayEncoding = "json" | "base64";

const fail = (where: string, message: string) => invalidArgument(`${where} ${message}`);

/**
 * numpy's kind order (bool, unsigned, signed, floating): a cast is `same_kind` when it does not go
 * to an earlier kind, so float64 → float32 and uint8 → int64 are, float → int, int → uint and
 * anything but bool → bool are not. tesseract-core accepts an input array of another dtype than its
 * field declares only so (`np.can_cast(dtype, declared, "same_kind")`), and then checks the values.
 */
const KIND_ORDER: Readonly<Record<number, number>> = {
  [DataType.DATA_TYPE_BOOL]: 0,
  [DataType.DATA_TYPE_UINT8]: 1,
  [DataType.DATA_TYPE_UINT16]: 1,
  [DataType.DATA_TYPE_UINT32]: 1,
  [DataType.DATA_TYPE_UINT64]: 1,
  [DataType.DATA_TYPE_INT8]: 2,
  [DataType.DATA_TYPE_INT16]: 2,
  [DataType.DATA_TYPE_INT32]: 2,
  [DataType.DATA_TYPE_INT64]: 2,
  [DataType.DATA_TYPE_FP32]: 4,
  [DataType.DATA_TYPE_FP64]: 4,
};

/** Whether numpy casts `from` to `to` under `same_kind` casting (KIND_ORDER). */
export function castsSameKind(from: DataType, to: DataType): boolean {
  return KIND_ORDER[from] <= KIND_ORDER[to];
}

/** The numpy dtype names cast to `declared` under `same_kind` (castsSameKind), as tesseract-core lists what it takes. */
export function dtypesCastTo(declared: DataType): string[] {
  const taken = Object.keys(NUMPY_DTYPES).filter((name) => castsSameKind(NUMPY_DTYPES[name], declared));
  // float16, read as float32 (datatypeOfDtype), is taken where float32 is.
  return taken.includes("float32") ? [...taken, "float16"] : taken;
}

/** Each integer dtype's least and greatest element. */
const INTEGER_RANGES: Partial<Record<DataType, [bigint, bigint]>> = {
  [DataType.DATA_TYPE_INT8]: [-(2n ** 7n), 2n ** 7n - 1n],
  [DataType.DATA_TYPE_UINT8]: [0n, 2n ** 8n - 1n],
  [DataType.DATA_TYPE_INT16]: [-(2n ** 15n), 2n ** 15n - 1n],
  [DataType.DATA_TYPE_UINT16]: [0n, 2n ** 16n - 1n],
  [DataType.DATA_TYPE_INT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [DataType.DATA_TYPE_UINT32]: [0n, 2n ** 32n - 1n],
  [DataType.DATA_TYPE_INT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [DataType.DATA_TYPE_UINT64]: [0n, 2n ** 64n - 1n],
};

/** One value as an element of `to`, or undefined when `to` cannot hold it (out of range, not whole, beyond float32). */
export function elementIn(v: number | bigint, to: DataType): number | bigint | undefined {
  if (to === DataType.DATA_TYPE_FP64) return Number(v);
  if (to === DataType.DATA_TYPE_FP32) {
    const rounded = Math.fround(Number(v));
    return Number.isFinite(rounded) || !Number.isFinite(Number(v)) ? rounded : undefined;
  }
  if (to === DataType.DATA_TYPE_BOOL) return Number(v) === 0 || Number(v) === 1 ? Number(v) : undefined;
  const range = INTEGER_RANGES[to]!;
  if (typeof v === "number" && !Number.isInteger(v)) return undefined;
  const n = BigInt(v);
  if (n < range[0] || n > range[1]) return undefined;
  return to === DataType.DATA_TYPE_INT64 || to === DataType.DATA_TYPE_UINT64 ? n : Number(n);
}

/** A JSON value as one element of `datatype`: numbers (integers for integer types), booleans for bool. */
function elementOf(datatype: DataType, v: unknown, where: string, i: number): number | bigint {
  if (datatype === DataType.DATA_TYPE_BOOL) {
    if (typeof v === "boolean") return v ? 1 : 0;
    if (v === 0 || v === 1) return v;
    throw fail(where, `element ${i} is ${shown(v)}, expected true, false, 0 or 1 (dtype bool)`);
  }
  if (typeof v !== "number" && typeof v !== "boolean") throw fail(where, `element ${i} is ${shown(v)}, expected a number`);
  const n = Number(v);
  // JSON's numbers are finite: an infinite one was a literal beyond FP64's range, which went into float64 arrays as ±Infinity.
  if (!Number.isFinite(n)) throw fail(where, `element ${i} is ${shown(n)}, expected a finite number`);
  if (datatype !== DataType.DATA_TYPE_FP32 && datatype !== DataType.DATA_TYPE_FP64 && !Number.isSafeInteger(n)) {
    // Read as a JS number, 2^53 + 1 is already 2^53: which integer was sent cannot be told.
    const wide = datatype === DataType.DATA_TYPE_INT64 || datatype === DataType.DATA_TYPE_UINT64;
    if (Number.isInteger(n) && wide && elementIn(BigInt(n), datatype) !== undefined) {
      throw fail(where, `element ${i} is beyond ±(2^53 − 1), where JSON numbers are read inexactly (it read as ${n}); send such ${numpyDtype(datatype)} values base64-encoded`);
    }
    if (Number.isInteger(n)) throw fail(where, `element ${i} is ${n}, which dtype ${numpyDtype(datatype)} cannot hold`);
    throw fail(where, `element ${i} is ${n}, expected an integer (dtype ${numpyDtype(datatype)})`);
  }
  // Written into the dtype's array as it is, 1e300 became Infinity in float32 and 300 became 44 in uint8.
  const element = elementIn(n, datatype);
  if (element === undefined) throw fail(where, `element ${i} is ${n}, which dtype ${numpyDtype(datatype)} cannot hold`);
  return element;
}

/**
 * An array object as wire bytes of its own dtype, as tesseract-core's clients send it: `object_type`
 * optional; `encoding` "base64" (raw little-endian C-order bytes) or "json" (flat or nested list).
 * With `abstract`, an object without `data` is shape and dtype only (empty bytes). `where` prefixes
 * every message (e.g. `inputs.mesh.points`); byte counts and limits are the tensor codec's to check.
 */
export function tensorFromArrayObject(value: Record<string, unknown>, where: string, opts: { abstract?: boolean } = {}): { datatype: DataType; shape: number[]; data: Uint8Array } {
  if (value.object_type !== undefined && value.object_type !== "array") throw fail(`${where}.object_type`, `is ${shown(value.object_type)}, expected "array"`);
  const { shape, dtype, data } = value as { shape?: unknown; dtype?: unknown; data?: unknown };
  refuseMissing(value, where, "shape");
  refuseMissing(value, where, "dtype");
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw fail(`${where}.shape`, "must be a list of non-negative integers");
  const datatype = datatypeOfDtype(dtype);
  if (datatype === undefined) throw fail(`${where}.dtype`, `is ${shown(dtype)}; expected one of ${Object.keys(NUMPY_DTYPES).join(", ")} (or float16, read as float32)`);
  const half = dtype === "float16";
  if (data === undefined && opts.abstract) return { datatype, shape, data: new Uint8Array(0) };
  refuseMissing(value, where, "data");
  if (data === null || typeof data !== "object" || Array.isArray(data)) throw fail(`${where}.data`, 'must be {"buffer": ..., "encoding": "base64" | "json"}');
  const { buffer, encoding, compression } = data as { buffer?: unknown; encoding?: unknown; compression?: unknown };
  refuseMissing(data as Record<string, unknown>, `${where}.data`, "buffer");
  refuseMissing(data as Record<string, unknown>, `${where}.data`, "encoding");
  if (compression !== undefined && compression !== null) throw fail(`${where}.data.compression`, `${shown(compression)} is not supported; send uncompressed data`);
  if (encoding === "base64") {
    const bytes = base64Bytes(buffer, `${where}.data.buffer`);
    return { datatype, shape, data: half ? halfBytesAsFloat32(bytes, shape, `${where}.data.buffer`) : bytes };
  }
  if (encoding === "json") {
    const { values } = flattenLists(buffer, `${where}.data.buffer`);
    const count = shape.reduce((n: number, d: number) => n * d, 1);
    if (values.length !== count) throw fail(`${where}.data.buffer`, `has ${plural(values.length, "value")}, expected ${count} for shape [${shape.join(", ")}]`);
    const array = new (arrayClass(datatype))(count);
    values.forEach((v, i) => (array[i] = (half ? halfElement(v, `${where}.data.buffer`, i) : elementOf(datatype, v, `${where}.data.buffer`, i)) as never));
    return { datatype, shape, data: new Uint8Array(array.buffer, array.byteOffset, array.byteLength) };
  }
  if (encoding === "binref") throw fail(`${where}.data.encoding`, '"binref" is not supported: it names a file on the server\'s disk; send "base64" or "json"');
  throw fail(`${where}.data.encoding`, `is ${shown(encoding)}, expected "base64" or "json"`);
}

/** float16's raw little-endian bytes as float32's, each value exactly; refused unless they are 2 bytes per element. */
function halfBytesAsFloat32(bytes: Uint8Array, shape: readonly number[], where: string): Uint8Array {
  const count = elementCount(shape);
  if (bytes.length !== 2 * count) throw fail(where, `has ${plural(bytes.length, "byte")}, expected ${2 * count} (${count} float16 values of 2 bytes, shape [${shape.join(", ")}])`);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = halfValue(bytes[2 * i] | (bytes[2 * i + 1] << 8));
  return new Uint8Array(out.buffer);
}

/** A JSON element of a float16 array: rounded to float16 as numpy reads it, refused where float16 cannot hold it (past ±65504). */
function halfElement(v: unknown, where: string, i: number): number {
  const n = elementOf(DataType.DATA_TYPE_FP64, v, where, i) as number;
  const half = roundToHalf(n);
  if (!Number.isFinite(half)) throw fail(where, `element ${i} is ${n}, which dtype float16 cannot hold`);
  return half;
}

/**
 * Refuses an array object (or its `data`) without `key`, as pydantic refuses a model without a
 * required field (422 `missing`, not a value error about the absent value's type).
 */
function refuseMissing(value: Record<string, unknown>, where: string, key: "shape" | "dtype" | "data" | "buffer" | "encoding"): void {
  if (Object.hasOwn(value, key)) return;
  const needs = key === "buffer" || key === "encoding" ? 'an array\'s data needs "buffer" and "encoding"' : 'an array object needs "shape", "dtype" and "data"';
  throw refusedAs("missing", `${where}.${key} is missing; ${needs}`);
}

/** The keys of tesseract-core's array object and of its `data`; its models forbid any other. */
const ARRAY_KEYS = ["object_type", "shape", "dtype", "data"];
const DATA_KEYS = ["buffer", "encoding", "compression"];

/**
 * Refuses a request's array object with a key tesseract-core's array model does not have (it
 * forbids extra keys, 422 extra_forbidden): one misspelt, such as "compresion": "lz4" or "dtpye",
 * was ignored and the rest read as if it were absent.
 */
export function refuseExtraArrayKeys(value: Record<string, unknown>, where: string): void {
  const extra = Object.keys(value).find((k) => !ARRAY_KEYS.includes(k));
  if (extra !== undefined) throw refusedAs("extra_forbidden", `${keyAt(where, extra)} is not a key of an array object; keys: ${ARRAY_KEYS.join(", ")}`);
  const data = value.data;
  if (data === null || typeof data !== "object" || Array.isArray(data)) return;
  const extraData = Object.keys(data).find((k) => !DATA_KEYS.includes(k));
  if (extraData !== undefined) throw refusedAs("extra_forbidden", `${keyAt(`${where}.data`, extraData)} is not a key of an array's data; keys: ${DATA_KEYS.join(", ")}`);
}

/**
 * Standard base64 (line breaks allowed), decoded as Python's base64 module decodes it: Node's own
 * decoder dropped a last character that makes no byte (65 characters answered 200 with 48 bytes,
 * where tesseract-core's 422 says the length cannot be 1 more than a multiple of 4).
 */
function base64Bytes(buffer: unknown, where: string): Buffer {
  if (typeof buffer !== "string" || !/^[A-Za-z0-9+/\r\n]*={0,2}\s*$/.test(buffer)) throw fail(where, "must be a base64 string");
  const characters = buffer.replace(/[\s=]/g, "").length;
  if (characters % 4 === 1) throw fail(where, `is not valid base64: its ${plural(characters, "character")} ${characters === 1 ? "is" : "are"} 1 more than a multiple of 4`);
  return Buffer.from(buffer, "base64");
}

/** An ndarray as an array object: data as nested lists (`json`) or base64 of the raw bytes. */
export function arrayObject(array: NdArray<any>, encoding: ArrayEncoding): ArrayObject {
  const wire = encodeTensor(array);
  const head = { object_type: "array" as const, shape: wire.shape, dtype: numpyDtype(wire.datatype) };
  if (encoding === "base64") return { ...head, data: { buffer: Buffer.from(wire.data).toString("base64"), encoding } };
  const values = decodeTensor(wire, "").data;
  // Array.from without a mapping where none is needed: a callback per element took most of the time.
  const flat: unknown[] =
    wire.datatype === DataType.DATA_TYPE_BOOL
      ? Array.from(values as Uint8Array, (v) => v === 1)
      : values instanceof BigInt64Array || values instanceof BigUint64Array
        ? Array.from(values, jsonInteger)
        : holdsNegativeZero(values as ArrayLike<number>)
          ? Array.from(values as ArrayLike<number>, jsonFloat)
          : Array.from(values as ArrayLike<number>);
  return { ...head, data: { buffer: nestValues(flat, wire.shape), encoding } };
}
