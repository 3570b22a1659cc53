/**
 * The one codec between the wire `tesseract.v1.Tensor` (proto/tesseract/v1/tensor.proto) and ndarray, shared by the
 * server and the SDK. Wire form: dense, row-major (C order), little-endian, no padding; `data` is
 * exactly prod(shape) × itemsize bytes; BOOL is one byte, 0 or 1; `shape = []` is a scalar.
 *
 * Ownership: decoding always COPIES the bytes into a fresh, exactly sized ArrayBuffer, and encoding
 * always returns fresh bytes. Callers perturb decoded arrays in place (finite differences), may
 * decode the same message more than once, and may hand `array.data.buffer` to a worker; a view into
 * the request buffer (which protobufjs slices out of a larger, possibly pooled Buffer at any byte
 * offset) would make all three unsafe. The price is one memcpy per tensor, small next to the
 * protobuf parse that produced the bytes.
 */
import { endianness } from "node:os";
import ndarray, { type NdArray } from "ndarray";
import { Code, invalidArgument, TesseractError } from "./errors";
import { plural } from "./plural";

// Typed arrays use the host's byte order; the wire is little-endian. Every supported platform is
// little-endian, so instead of byte-swapping everywhere we refuse to run anywhere else.
if (endianness() !== "LE") {
  throw new Error("tesseract-grpc's tensor codec needs a little-endian host; this one is big-endian");
}

/** Same numbers and names as the proto's `tesseract.v1.DataType`. */
export enum DataType {
  DATA_TYPE_UNSPECIFIED = 0,
  DATA_TYPE_BOOL = 1,
  DATA_TYPE_UINT8 = 2,
  DATA_TYPE_UINT16 = 3,
  DATA_TYPE_UINT32 = 4,
  DATA_TYPE_UINT64 = 5,
  DATA_TYPE_INT8 = 6,
  DATA_TYPE_INT16 = 7,
  DATA_TYPE_INT32 = 8,
  DATA_TYPE_INT64 = 9,
  DATA_TYPE_FP32 = 10,
  DATA_TYPE_FP64 = 11,
}

export type TypedArray =
  | Float64Array
  | Float32Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  // ArrayBuffer-backed, because that is what @types/ndarray accepts for its bigint data.
  | BigInt64Array<ArrayBuffer>
  | BigUint64Array<ArrayBuffer>;

/** What protobufjs/ts-proto hand us for a Tensor message (shape entries may be number, bigint, string or a Long-like {low, high, unsigned}). */
export interface TensorMessage {
  datatype: number;
  shape: Array<number | bigint | string | { low: number; high: number; unsigned?: boolean }>;
  data: Uint8Array;
}

/** Plain wire form we produce. */
export interface TensorWire {
  datatype: DataType;
  shape: number[];
  data: Uint8Array;
}

export interface DecodeLimits {
  /** Most elements one tensor may claim, checked before anything is allocated. */
  maxElements: number;
  /** Most dimensions; ndarray generates code per rank, so a huge rank is itself an attack. Default 64 (NumPy 2's limit). */
  maxRank?: number;
  /** Most bytes one tensor's data may take (unset or 0: only the element limit). */
  maxBytes?: number;
  /**
   * Most messages one request may hold — every tensor, map entry, nested message and listed string counts — so that
   * a message of a million tiny tensors (64 MiB hold two million) does not hold the event loop for
   * tens of seconds (unset: no limit; a server sets --max-request-messages, DEFAULT_MAX_MESSAGES unless told).
   */
  maxMessages?: number;
}

/** 2^28 elements: 2 GiB of FP64, far above gRPC's default 4 MiB message cap, far below what breaks V8. */
export const DEFAULT_MAX_ELEMENTS = 2 ** 28;
export const DEFAULT_MAX_RANK = 64;
/** 100 000 messages: decoded in about a second (10 µs each with their tensors); bulk data belongs in tensors. */
export const DEFAULT_MAX_MESSAGES = 100_000;

/** The refusal of a request holding more than `limit` messages (DecodeLimits.maxMessages), found at `where`. */
export function tooManyMessages(limit: number, where: string): TesseractError {
  return new TesseractError(Code.RESOURCE_EXHAUSTED, `more than ${limit} messages (every tensor, map entry, nested message and listed string counts; the server's --max-request-messages) at ${where}`);
}
export const DEFAULT_LIMITS: DecodeLimits = Object.freeze({ maxElements: DEFAULT_MAX_ELEMENTS, maxRank: DEFAULT_MAX_RANK });

interface TypedArrayCtor {
  new (length: number): TypedArray;
  new (buffer: ArrayBuffer): TypedArray;
  readonly BYTES_PER_ELEMENT: number;
}

/**
 * BOOL's values, 0 or 1: a Uint8Array to every reader, and a class of its own so that the datatype
 * survives decoding (a bool array answered or sent on as uint8 was another dtype to numpy: `~mask`
 * gave 254, and tesseract-core's same_kind casting refuses uint8 for bool).
 */
export class BoolArray extends Uint8Array {}

/** The one table: which typed array holds each wire type. */
const TYPES: ReadonlyMap<DataType, TypedArrayCtor> = new Map<DataType, TypedArrayCtor>([
  [DataType.DATA_TYPE_BOOL, BoolArray],
  [DataType.DATA_TYPE_UINT8, Uint8Array],
  [DataType.DATA_TYPE_UINT16, Uint16Array],
  [DataType.DATA_TYPE_UINT32, Uint32Array],
  [DataType.DATA_TYPE_UINT64, BigUint64Array],
  [DataType.DATA_TYPE_INT8, Int8Array],
  [DataType.DATA_TYPE_INT16, Int16Array],
  [DataType.DATA_TYPE_INT32, Int32Array],
  [DataType.DATA_TYPE_INT64, BigInt64Array],
  [DataType.DATA_TYPE_FP32, Float32Array],
  [DataType.DATA_TYPE_FP64, Float64Array],
]);

const SUPPORTED = "one of DATA_TYPE_BOOL (1) to DATA_TYPE_FP64 (11)";

export function dataTypeName(dt: number): string {
  return Number.isInteger(dt) && DataType[dt] !== undefined ? DataType[dt] : `${dt} (not a tesseract.v1.DataType)`;
}

export function itemSize(dt: DataType): number {
  const ctor = TYPES.get(dt);
  if (!ctor) throw new TypeError(`itemSize: unsupported datatype ${dataTypeName(dt)}, expected ${SUPPORTED}`);
  return ctor.BYTES_PER_ELEMENT;
}

/** The wire type an array's elements naturally encode as; plain (and generic) arrays are FP64. */
export function dataTypeOfArray(a: TypedArray | unknown[]): DataType {
  if (!ArrayBuffer.isView(a)) return DataType.DATA_TYPE_FP64;
  if (a instanceof Uint8ClampedArray) return DataType.DATA_TYPE_UINT8;
  // BoolArray comes first in TYPES, before the Uint8Array it also is.
  for (const [dt, ctor] of TYPES) if (a instanceof ctor) return dt;
  throw new TypeError(`dataTypeOfArray: ${a.constructor.name} has no tensor datatype`);
}

function formatShape(shape: ReadonlyArray<unknown>): string {
  const shown = shape.slice(0, 16).map(String);
  if (shape.length > 16) shown.push(`… ${shape.length - 16} more`);
  return `[${shown.join(", ")}]`;
}

/** An int64 shape entry as an exact bigint, or undefined if it is not an integer at all. */
function dimToBigInt(d: TensorMessage["shape"][number]): bigint | undefined {
  switch (typeof d) {
    case "bigint":
      return d;
    case "number":
      return Number.isInteger(d) ? BigInt(d) : undefined;
    case "string":
      return /^[+-]?\d+$/.test(d.trim()) ? BigInt(d.trim()) : undefined;
    case "object": {
      if (d === null || typeof d.low !== "number" || typeof d.high !== "number") return undefined;
      const u = (BigInt(d.high >>> 0) << 32n) | BigInt(d.low >>> 0);
      return d.unsigned ? u : BigInt.asIntN(64, u);
    }
    default:
      return undefined;
  }
}

/**
 * Validates a wire shape and returns it as plain numbers. All arithmetic is on bigints and the
 * element count stops growing once it passes the limit, so no claimed shape, however absurd, costs
 * more than a pass over its entries, and nothing is allocated for it.
 */
export function normalizeShape(shape: TensorMessage["shape"], field: string, limits: DecodeLimits = DEFAULT_LIMITS): number[] {
  shape = shape ?? []; // protobufjs objects built without defaults may omit repeated fields
  const maxRank = limits.maxRank ?? DEFAULT_MAX_RANK;
  if (shape.length > maxRank) {
    throw invalidArgument(`${field}: shape has ${shape.length} dimensions, expected at most ${maxRank}`);
  }
  const maxNumber = Math.max(0, Math.floor(Math.min(limits.maxElements, Number.MAX_SAFE_INTEGER)));
  if (shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0 && d <= maxNumber)) {
    // The usual shape, plain numbers: no bigints needed. A product past the limit stays past it in
    // floating point (rounding is monotonic), and one within it is exact.
    let count = 1;
    for (const d of shape as number[]) count *= d;
    if (count <= maxNumber) return (shape as number[]).slice();
  }
  // Clamped so that every accepted dimension converts to a number exactly.
  const max = BigInt(maxNumber);
  const dims: bigint[] = shape.map((d, i) => {
    const b = dimToBigInt(d);
    if (b === undefined || b < 0n) {
      const shown = b ?? (typeof d === "string" ? JSON.stringify(d) : String(d));
      throw invalidArgument(`${field}: shape[${i}] is ${shown}, expected a non-negative integer (shape ${formatShape(shape)})`);
    }
    if (b > max) {
      throw invalidArgument(`${field}: shape[${i}] is ${b}, more than the limit of ${max} elements (shape ${formatShape(shape)})`);
    }
    return b;
  });
  if (!dims.includes(0n)) {
    let count = 1n;
    for (const d of dims) {
      count *= d;
      if (count > max) {
        throw invalidArgument(`${field}: shape ${formatShape(dims)} has more than ${max} elements, the limit`);
      }
    }
  }
  return dims.map(Number);
}

/** prod(shape): 1 for a scalar. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** FP32 or FP64: the datatypes that can be differentiated, and tangents and cotangents be. */
export function isFloatingPoint(dt: DataType): boolean {
  return dt === DataType.DATA_TYPE_FP32 || dt === DataType.DATA_TYPE_FP64;
}

function checkDataType(datatype: number | undefined, field: string): TypedArrayCtor {
  // Unset (a map entry without its value, a tensor never given one) reads as protobuf's default.
  const ctor = TYPES.get(datatype ?? DataType.DATA_TYPE_UNSPECIFIED);
  // The SDK sends a plain list where a tensor goes as a tensor of nothing: say what a tensor is.
  if (!ctor && !datatype) throw invalidArgument(`${field}: no datatype (DATA_TYPE_UNSPECIFIED): expected ${SUPPORTED} (a tensor is datatype, shape and data; from the TypeScript SDK, ndarray(data, shape), not a plain list)`);
  if (!ctor) throw invalidArgument(`${field}: unsupported datatype ${dataTypeName(datatype!)}, expected ${SUPPORTED}`);
  return ctor;
}

function decodeData(datatype: DataType, ctor: TypedArrayCtor, shape: number[], data: Uint8Array, field: string, limits: DecodeLimits): NdArray<TypedArray> {
  const size = ctor.BYTES_PER_ELEMENT;
  const expected = elementCount(shape) * size;
  if (limits.maxBytes && expected > limits.maxBytes) {
    throw invalidArgument(`${field}: shape ${formatShape(shape)} of ${dataTypeName(datatype)} takes ${expected} bytes, more than the limit of ${limits.maxBytes} bytes per tensor`);
  }
  if (data.byteLength !== expected) {
    throw invalidArgument(
      `${field}: data has ${plural(data.byteLength, "byte")}, expected ${expected} ` +
        `(shape ${formatShape(shape)} of ${dataTypeName(datatype)}, ${plural(size, "byte")} each)`,
    );
  }
  if (datatype === DataType.DATA_TYPE_BOOL) {
    const bad = data.findIndex((b) => b > 1);
    if (bad >= 0) {
      throw invalidArgument(`${field}: DATA_TYPE_BOOL element ${bad} (flat index) is ${data[bad]}, expected 0 or 1`);
    }
  }
  // The copy (see the header) also realigns data that sits at an odd byte offset.
  const buffer = new ArrayBuffer(expected);
  new Uint8Array(buffer).set(data);
  return ndarray(new ctor(buffer), shape);
}

/** Decodes a concrete tensor into a freshly allocated, row-major ndarray (never a view into `t.data`). */
export function decodeTensor(t: TensorMessage, field: string, limits: DecodeLimits = DEFAULT_LIMITS): NdArray<TypedArray> {
  if (typeof t !== "object" || t === null) throw new TypeError(`decodeTensor: ${field ?? "the tensor"} is ${t === null ? "null" : typeof t}: expected a Tensor message { datatype, shape, data }`);
  const ctor = checkDataType(t.datatype, field);
  const shape = normalizeShape(t.shape, field, limits);
  return decodeData(t.datatype, ctor, shape, t.data ?? new Uint8Array(0), field, limits);
}

/** Like decodeTensor, but a tensor with elements and no data is abstract: shape and type only, no array. */
export function decodeAbstractTensor(
  t: TensorMessage,
  field: string,
  limits: DecodeLimits = DEFAULT_LIMITS,
): { shape: number[]; datatype: DataType; array?: NdArray<TypedArray> } {
  const ctor = checkDataType(t.datatype, field);
  const shape = normalizeShape(t.shape, field, limits);
  const data = t.data ?? new Uint8Array(0);
  if (data.byteLength === 0 && elementCount(shape) > 0) return { shape, datatype: t.datatype };
  return { shape, datatype: t.datatype, array: decodeData(t.datatype, ctor, shape, data, field, limits) };
}

export function isNdArray(x: unknown): x is NdArray<any> {
  if (typeof x !== "object" || x === null) return false;
  const a = x as Partial<NdArray<any>>;
  return Array.isArray(a.shape) && Array.isArray(a.stride) && typeof a.offset === "number" && a.data != null && typeof a.get === "function";
}

/** Copies `a`'s elements, in row-major order, into `out`, converting each with `convert`. Works for any strides and offset. */
function gather(a: NdArray<any>, out: TypedArray, convert: (v: any) => number | bigint): void {
  const n = out.length;
  if (n === 0) return;
  const { shape, stride, data } = a;
  const dst = out as unknown as { [i: number]: number | bigint };
  // ndarray also accepts "generic" data objects that only offer get/set.
  const read: (i: number) => unknown =
    !ArrayBuffer.isView(data) && !Array.isArray(data) && typeof data.get === "function" ? (i) => data.get(i) : (i) => data[i];
  const last = shape.length - 1;
  if (last < 0) {
    dst[0] = convert(read(a.offset));
    return;
  }
  const len = shape[last];
  const step = stride[last];
  const idx = new Array<number>(last).fill(0);
  let ptr = a.offset;
  for (let k = 0; k < n; ) {
    for (let i = 0, p = ptr; i < len; i++, p += step) dst[k++] = convert(read(p));
    // Odometer over the outer dimensions.
    for (let j = last - 1; j >= 0; j--) {
      ptr += stride[j];
      if (++idx[j] < shape[j]) break;
      ptr -= stride[j] * shape[j];
      idx[j] = 0;
    }
  }
}

/**
 * What is wrong with an ndarray a Tesseract returned or a client sends, if anything: a shape that is no list of whole
 * numbers ≥ 0, or a shape, strides and offset that reach outside its data (read there, the values
 * were undefined, or the copy failed with V8's text).
 */
export function ndarrayExtentProblem(a: NdArray<any>): string | undefined {
  const { shape, stride, offset } = a;
  const data = a.data as { length?: unknown };
  const show = () => `shape [${shape.join(", ")}], strides [${stride.join(", ")}] and offset ${offset}`;
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `has shape [${shape.join(", ")}]: expected whole numbers ≥ 0`;
  if (elementCount(shape) === 0) return undefined;
  let [low, high] = [offset, offset];
  shape.forEach((d, i) => {
    const reach = (d - 1) * stride[i];
    if (reach < 0) low += reach;
    else high += reach;
  });
  const length = typeof data.length === "number" ? data.length : 0;
  if (Number.isSafeInteger(low) && Number.isSafeInteger(high) && low >= 0 && high < length) return undefined;
  if (offset === 0 && isRowMajor(shape, stride)) return `has shape [${shape.join(", ")}], which needs ${plural(elementCount(shape), "element")}, but its data holds ${length}`;
  return `has ${show()}, which reach elements ${low} to ${high} of data holding ${length}`;
}

/** Whether strides are dense row-major (C order) for this shape; size-1 dimensions may have any stride. */
export function isRowMajor(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/** How to turn one source element into something the target typed array accepts without throwing. */
function converter(target: DataType): (v: any) => number | bigint {
  if (target === DataType.DATA_TYPE_BOOL) return (v) => (v === 0 || v === 0n || v === false ? 0 : 1); // NaN is true, as in NumPy
  if (target === DataType.DATA_TYPE_INT64 || target === DataType.DATA_TYPE_UINT64) {
    // BigInt64Array throws on numbers; apply the rules other typed arrays use: truncate, wrap, NaN and ±Inf -> 0.
    const fromNumber = (x: number) => (Number.isFinite(x) ? BigInt(Math.trunc(x)) : 0n);
    return (v) => (typeof v === "bigint" ? v : fromNumber(Number(v)));
  }
  // Number typed arrays throw on bigints.
  return (v) => (typeof v === "number" ? v : Number(v));
}

/** A caller's argument that is no ndarray (from plain JavaScript): named, rather than a TypeError from inside. */
function notNdArray(a: unknown, method: string): void {
  if (!isNdArray(a)) throw new TypeError(`${method} takes an ndarray, ndarray(data, shape); it was given ${a === null ? "null" : Array.isArray(a) ? "a plain array" : ArrayBuffer.isView(a) ? `a bare ${a.constructor.name}` : typeof a}`);
}

/**
 * Encodes any ndarray (views with arbitrary strides included) as row-major wire bytes. `datatype`
 * defaults from the array (plain arrays: FP64); asking for another converts the way typed-array
 * assignment does (FP64 -> FP32 rounds, floats -> ints truncate and wrap), and BOOL maps non-zero to 1.
 * The returned bytes are a fresh copy.
 */
export function encodeTensor(a: NdArray<any>, datatype?: DataType): TensorWire {
  notNdArray(a, "encodeTensor");
  const dt = datatype ?? dataTypeOfArray(a.data);
  const ctor = TYPES.get(dt);
  if (!ctor) throw new TypeError(`encodeTensor: unsupported datatype ${dataTypeName(dt)}, expected ${SUPPORTED}`);
  const shape = a.shape.slice();
  const n = elementCount(shape);
  const size = ctor.BYTES_PER_ELEMENT;
  if (n === 0) return { datatype: dt, shape, data: new Uint8Array(0) };
  const data = a.data as unknown;
  if (dt !== DataType.DATA_TYPE_BOOL && data instanceof ctor && isRowMajor(a.shape, a.stride)) {
    const src = data as TypedArray;
    return { datatype: dt, shape, data: new Uint8Array(src.buffer, src.byteOffset + a.offset * size, n * size).slice() };
  }
  const out = new ctor(n);
  gather(a, out, converter(dt));
  return { datatype: dt, shape, data: new Uint8Array(out.buffer, 0, n * size) };
}

/** A row-major flat FP64 copy of any ndarray; 64-bit integers go through Number() and may round. */
export function toFloat64(a: NdArray<any>): Float64Array {
  notNdArray(a, "toFloat64");
  const n = elementCount(a.shape);
  // The common cases in one native copy: this runs once per evaluation, on outputs of any size.
  if (isRowMajor(a.shape, a.stride)) {
    if (a.data instanceof Float64Array) return a.data.slice(a.offset, a.offset + n);
    if (ArrayBuffer.isView(a.data) && !(a.data instanceof BigInt64Array || a.data instanceof BigUint64Array)) {
      return Float64Array.from((a.data as Exclude<TypedArray, BigInt64Array | BigUint64Array>).subarray(a.offset, a.offset + n));
    }
  }
  const out = new Float64Array(n);
  gather(a, out, converter(DataType.DATA_TYPE_FP64));
  return out;
}

/** Wire form of flat row-major FP64 values without copying them (results of the engine). */
export function fp64Tensor(values: Float64Array, shape: number[]): TensorWire {
  return { datatype: DataType.DATA_TYPE_FP64, shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/** The typed-array class that holds `datatype`. */
export function arrayClass(datatype: DataType): TypedArrayCtor {
  const ctor = TYPES.get(datatype);
  if (!ctor) throw new TypeError(`unsupported datatype ${dataTypeName(datatype)}`);
  return ctor;
}
