/**
 * A strict protobuf decoder over protobufjs' reflection, for every message a caller sends (the
 * requests themselves and the Tesseract's inputs inside their Any).
 *
 * protobufjs' own decoder is lenient where conformant parsers are not, and builds maps on plain
 * objects, where a key "__proto__" goes through JavaScript's setter and vanishes. This one refuses,
 * with INVALID_ARGUMENT naming the field:
 * - a known field sent with another wire type (packed and unpacked repeated scalars both accepted);
 * - field number 0 or above 2^29 - 1, wire types 6 and 7, an end-group without its start-group
 *   or closing another field's group;
 * - a truncated or over-long (more than 10 bytes) varint, a length running past its message;
 * - a string that is not valid UTF-8 (decoded strictly: nothing is replaced);
 * - nesting deeper than 100 messages or groups (protobuf's own default recursion limit);
 * - a missing proto2 `required` field;
 * - more values in a capped repeated field than its cap (`DecodeCaps`: a tensor's shape, the caller's
 *   own), counted at a packed list's length prefix before any value is read: 30 M packed zeros in
 *   a shape took 3.5 s and 1.3 GB to decode before its 64 dimensions were checked.
 * Unknown fields are skipped (after checking their structure). Maps become null-prototype objects.
 * Bytes fields are views into the request buffer (the tensor codec copies what it keeps).
 */
import * as protobuf from "protobufjs";
import { clip, Code, invalidArgument, TesseractError } from "../../common/errors";
import { emptyRecord, ownValue, setProperty } from "../../common/records";
import { MAX_DEPTH } from "../../common/nesting";
import { DEFAULT_MAX_RANK, tooManyMessages } from "../../common/tensor-codec";
import { plural } from "../../common/plural";

export interface DecodeStyle {
  /** 64-bit integers as JS numbers (the Tesseract's trees) or as exact decimal strings (requests). */
  longs: "number" | "string";
  /**
   * Unset singular scalars as their defaults (the Tesseract's trees) or left out (requests, so
   * that unset and zero differ). proto3 `optional` fields and messages are left out when unset,
   * repeated fields are [] and maps {} either way.
   */
  defaults: boolean;
}

// Read once: each access through the namespace import is a getter call, and these are hot.
const MessageType = protobuf.Type;
const EnumType = protobuf.Enum;


const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;
const WIRE_TYPE_NAMES = ["varint", "64-bit", "length-delimited", "start-group", "end-group", "32-bit"];
const MAX_FIELD_NUMBER = 2 ** 29 - 1;

/** The wire type each scalar type is written with (packed repeated fields aside). */
const SCALAR_WIRE_TYPES: Record<string, number> = {
  double: FIXED64, fixed64: FIXED64, sfixed64: FIXED64,
  float: FIXED32, fixed32: FIXED32, sfixed32: FIXED32,
  int32: VARINT, uint32: VARINT, sint32: VARINT, int64: VARINT, uint64: VARINT, sint64: VARINT, bool: VARINT,
  string: LENGTH_DELIMITED, bytes: LENGTH_DELIMITED,
};

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The most values a repeated scalar field may hold, and what a refusal says and is. */
export interface RepeatedCap {
  max: number;
  code: Code;
  /** What the values are, after "expected at most N": "dimensions". */
  what: string;
  /** Counted over every occurrence of the field in the message decoded (a request's patterns together), not per list. */
  perMessage?: boolean;
}

export interface DecodeCaps {
  /** Most messages (DecodeLimits.maxMessages). */
  maxMessages?: number;
  /** Most dimensions of a tesseract.v1.Tensor (DecodeLimits.maxRank; default 64). */
  maxRank?: number;
  /** Caps on other repeated scalar fields, by full name ("tesseract.v1.SparsityPattern.output_index"). */
  repeated?: ReadonlyMap<string, RepeatedCap>;
  /** Most values of repeated scalar fields in all (default MAX_REPEATED_VALUES). */
  maxRepeatedValues?: number;
}

/**
 * Values of repeated scalar fields one message may hold in all: a value takes a byte on the wire and
 * 8 to 16 in memory, and one at a time to decode (64 MiB of packed zeros took 6 s and 1.5 GB).
 * Arrays of numbers belong in tensors, whose bytes are copied whole.
 */
export const MAX_REPEATED_VALUES = 1 << 24;

const TENSOR_SHAPE = "tesseract.v1.Tensor.shape";

/** A field's full name without the leading dot, computed once per field (protobufjs builds it on every read). */
const fullNames = new WeakMap<protobuf.FieldBase, string>();
function fullNameOf(field: protobuf.FieldBase): string {
  let name = fullNames.get(field);
  if (name === undefined) fullNames.set(field, (name = field.fullName.slice(1)));
  return name;
}

/**
 * Decodes `bytes` as `type`; `label` names the message in errors ("inputs", "request"), which read
 * `inputs: cannot decode tesseract.examples.meshstats.v1.Inputs: mesh.points.datatype: wire type 2 ...`.
 */
export function decodeStrict(type: protobuf.Type, bytes: Uint8Array, label: string, style: DecodeStyle, caps: DecodeCaps = {}): Record<string, unknown> {
  const maxRank = caps.maxRank ?? DEFAULT_MAX_RANK;
  const repeated = new Map(caps.repeated);
  repeated.set(TENSOR_SHAPE, { max: maxRank, code: Code.INVALID_ARGUMENT, what: "dimensions" });
  return new Reader(bytes, `${label}: cannot decode ${type.fullName.slice(1)}`, caps.maxMessages ?? Infinity, repeated, caps.maxRepeatedValues ?? MAX_REPEATED_VALUES).message(type, bytes.length, "", style, 0);
}

/** The path of a field below `parent` ("" for the message itself). */
const below = (parent: string, name: string) => (parent ? `${parent}.${name}` : name);

function wireTypeName(wireType: number): string {
  return `${wireType} (${WIRE_TYPE_NAMES[wireType] ?? "invalid"})`;
}

/** The wire type a field's values come with (groups: start-group; packed repeated scalars aside). */
function expectedWireType(field: protobuf.FieldBase): number {
  if (field.resolvedType instanceof MessageType) return (field as protobuf.Field).delimited ? START_GROUP : LENGTH_DELIMITED;
  if (field.resolvedType instanceof EnumType) return VARINT;
  return SCALAR_WIRE_TYPES[field.type];
}

/** The scalar kind `Reader.scalar` reads for a field ("enum" for enums); undefined for messages. */
function scalarKind(field: protobuf.FieldBase): string | undefined {
  if (field.resolvedType instanceof EnumType) return "enum";
  return field.resolvedType ? undefined : field.type;
}

class Reader {
  private pos = 0;
  private readonly view: DataView;
  /** Messages read so far (DecodeLimits.maxMessages). */
  private messages = 0;
  /** Values of repeated scalar fields read so far, in all and per capped field counted per message. */
  private repeatedValues = 0;
  private readonly perMessage = new Map<string, number>();

  constructor(
    private readonly bytes: Uint8Array,
    /** How every error message starts. */
    private readonly context: string,
    private readonly maxMessages: number,
    private readonly caps: ReadonlyMap<string, RepeatedCap>,
    private readonly maxRepeatedValues: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private fail(where: string, what: string): never {
    throw invalidArgument(`${this.context}: ${where ? `${where}: ` : ""}${what} (at byte ${this.pos})`);
  }

  /** A varint as two unsigned 32-bit halves. */
  private varintParts(where: string): [number, number] {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.bytes.length) this.fail(where, "truncated varint");
      const b = this.bytes[this.pos++];
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (i === 9 && b > 1) this.fail(where, "varint overflows 64 bits");
      if ((b & 0x80) === 0) return [lo >>> 0, hi >>> 0];
    }
    this.fail(where, "varint longer than 10 bytes");
  }

  private uint32(where: string): number {
    return this.varintParts(where)[0];
  }

  private length(where: string, end: number): number {
    const [lo, hi] = this.varintParts(where);
    if (hi !== 0 || lo > end - this.pos) this.fail(where, `length ${hi ? "beyond 2^32" : lo} runs past the end of its message (${plural(end - this.pos, "byte")} left)`);
    return lo;
  }

  /** Reads a length and returns where the value it prefixes ends. */
  private valueEnd(where: string, end: number): number {
    const n = this.length(where, end);
    return this.pos + n;
  }

  private need(n: number, end: number, where: string): void {
    if (end - this.pos < n) this.fail(where, `truncated ${n * 8}-bit value`);
  }

  /** Steps over an n-byte little-endian value and returns where it starts. */
  private fixed(n: number, end: number, where: string): number {
    this.need(n, end, where);
    this.pos += n;
    return this.pos - n;
  }

  /**
   * A 64-bit integer as an exact decimal string, or as a number where it is one exactly: a number
   * beyond ±(2^53 - 1) would be another integer (9007199254740993 read as ...992), so it is refused.
   */
  private long(parts: [number, number], kind: "signed" | "unsigned" | "zigzag", style: DecodeStyle, where: string): number | string {
    let value = (BigInt(parts[1]) << 32n) | BigInt(parts[0]);
    if (kind === "signed") value = BigInt.asIntN(64, value);
    if (kind === "zigzag") value = (value >> 1n) ^ -(value & 1n);
    if (style.longs === "string") return value.toString();
    const n = Number(value);
    if (!Number.isSafeInteger(n)) this.fail(where, `${value} is beyond ±9007199254740991, the integers a JavaScript number holds exactly`);
    return n;
  }

  /** One value of scalar type `kind` ("enum" for enums), its tag already read with the right wire type. */
  private scalar(kind: string, end: number, where: string, style: DecodeStyle): unknown {
    switch (kind) {
      case "double":
        return this.view.getFloat64(this.fixed(8, end, where), true);
      case "float":
        return this.view.getFloat32(this.fixed(4, end, where), true);
      case "fixed32":
        return this.view.getUint32(this.fixed(4, end, where), true);
      case "sfixed32":
        return this.view.getInt32(this.fixed(4, end, where), true);
      case "fixed64":
      case "sfixed64": {
        const at = this.fixed(8, end, where);
        return this.long([this.view.getUint32(at, true), this.view.getUint32(at + 4, true)], kind === "sfixed64" ? "signed" : "unsigned", style, where);
      }
      case "int32":
      case "enum":
        return this.uint32(where) | 0;
      case "uint32":
        return this.uint32(where);
      case "sint32": {
        const n = this.uint32(where);
        return (n >>> 1) ^ -(n & 1);
      }
      case "int64":
        return this.long(this.varintParts(where), "signed", style, where);
      case "uint64":
        return this.long(this.varintParts(where), "unsigned", style, where);
      case "sint64":
        return this.long(this.varintParts(where), "zigzag", style, where);
      case "bool": {
        const [lo, hi] = this.varintParts(where);
        return lo !== 0 || hi !== 0;
      }
      case "string": {
        const n = this.length(where, end);
        const raw = this.bytes.subarray(this.pos, (this.pos += n));
        try {
          return utf8.decode(raw);
        } catch {
          this.pos -= n;
          return this.fail(where, "string is not valid UTF-8");
        }
      }
      case "bytes": {
        const n = this.length(where, end);
        return this.bytes.subarray(this.pos, (this.pos += n));
      }
    }
    return this.fail(where, `unsupported field type ${kind}`);
  }

  /** A message of `type` from here to `end` (or, for a group, to its end-group tag). */
  message(type: protobuf.Type, end: number, where: string, style: DecodeStyle, depth: number, into?: Record<string, unknown>, groupField?: number): Record<string, unknown> {
    if (depth > MAX_DEPTH) this.fail(where, `nested more than ${MAX_DEPTH} messages deep`);
    this.count(where);
    const out = into ?? emptyMessage(type, style);
    const seen = hasRequiredFields(type) ? new Set<number>() : undefined;
    while (this.pos < end) {
      const tag = this.uint32(where);
      const number = tag >>> 3;
      const wireType = tag & 7;
      if (wireType === END_GROUP) {
        if (groupField === number) return out;
        this.fail(where, groupField === undefined ? `end-group tag for field ${number} without its start-group` : `end-group tag for field ${number} closes the group of field ${groupField}`);
      }
      if (number === 0) this.fail(where, "field number 0");
      if (number > MAX_FIELD_NUMBER) this.fail(where, `field number ${number} above ${MAX_FIELD_NUMBER}`);
      const field = type.fieldsById[number];
      if (field) {
        this.field(out, field, wireType, end, below(where, field.name), style, depth);
        seen?.add(number);
      } else {
        this.skip(wireType, number, end, where, depth);
      }
    }
    if (groupField !== undefined) this.fail(where, `group of field ${groupField} has no end-group tag`);
    if (this.pos > end) this.fail(where, "the last field runs past the end of its message");
    if (seen && !into) {
      for (const field of type.fieldsArray) if (field.required && !seen.has(field.id)) this.fail(below(where, field.name), "required field is missing");
    }
    return out;
  }

  private field(out: Record<string, unknown>, field: protobuf.Field, wireType: number, end: number, where: string, style: DecodeStyle, depth: number): void {
    if (field.map) {
      if (wireType !== LENGTH_DELIMITED) this.wrongWireType(field, wireType, LENGTH_DELIMITED, where);
      const [key, value] = this.mapEntry(field as unknown as protobuf.MapField, this.valueEnd(where, end), where, style, depth);
      (out[field.name] as Record<string, unknown>)[key] = value;
      return;
    }
    const expected = expectedWireType(field);
    const kind = scalarKind(field);
    const name = field.repeated && kind ? fullNameOf(field) : undefined;
    const cap = name === undefined ? undefined : this.caps.get(name);
    // A tensor's dimensions exactly, whatever their size: the tensor codec names one past its limit.
    if (style.longs === "number" && name === TENSOR_SHAPE) style = { ...style, longs: "string" };
    if (field.repeated && wireType === LENGTH_DELIMITED && expected !== LENGTH_DELIMITED && kind) {
      // Packed: values back to back, exactly filling the length.
      const stop = this.valueEnd(where, end);
      const list = out[field.name] as unknown[];
      this.counted(name!, cap, list.length, this.packedCount(expected, stop), where, true);
      while (this.pos < stop) list.push(this.scalar(kind, stop, `${where}.[${list.length}]`, style));
      if (this.pos > stop) this.fail(where, "packed values run past their length");
      return;
    }
    if (wireType !== expected) this.wrongWireType(field, wireType, expected, where);
    if (name !== undefined) this.counted(name, cap, (out[field.name] as unknown[]).length, 1, where, false);
    if (field.partOf) for (const member of field.partOf.fieldsArray) if (member !== field) delete out[member.name];
    const sub = field.resolvedType;
    const list = field.repeated ? (out[field.name] as unknown[]) : undefined;
    const at = list ? `${where}.[${list.length}]` : where;
    let value: unknown;
    if (sub instanceof MessageType) {
      // A singular message sent twice is merged, as protobuf specifies.
      const existing = list ? undefined : (ownValue(out, field.name) as Record<string, unknown> | undefined);
      value =
        wireType === START_GROUP
          ? this.message(sub, end, at, style, depth + 1, existing, field.id)
          : this.message(sub, this.valueEnd(at, end), at, style, depth + 1, existing);
    } else {
      // A string in a list is a path or a name that someone parses later: counted like a message.
      if (list && (kind === "string" || kind === "bytes")) this.count(at);
      value = this.scalar(kind!, end, at, style);
    }
    if (list) list.push(value);
    else setProperty(out, field.name, value);
  }

  /** Values of a packed list from here to `stop`, counted without reading them: varints by their last bytes. */
  private packedCount(wireType: number, stop: number): number {
    if (wireType === FIXED32) return Math.floor((stop - this.pos) / 4);
    if (wireType === FIXED64) return Math.floor((stop - this.pos) / 8);
    let count = 0;
    for (let i = this.pos; i < stop; i++) if (this.bytes[i] < 0x80) count++;
    return count;
  }

  /**
   * Counts `adding` more values of repeated scalar field `name` (its list holds `inList` so far)
   * before they are read: refused beyond its cap (`exact`: the count is all of them, else those so
   * far) or beyond maxRepeatedValues in all.
   */
  private counted(name: string, cap: RepeatedCap | undefined, inList: number, adding: number, where: string, exact: boolean): void {
    this.repeatedValues += adding;
    if (this.repeatedValues > this.maxRepeatedValues) {
      throw new TesseractError(Code.RESOURCE_EXHAUSTED, `${this.context}: ${where}: more than ${this.maxRepeatedValues} values of repeated number fields in all; send arrays of numbers as tensors (at byte ${this.pos})`);
    }
    if (!cap) return;
    const count = cap.perMessage ? (this.perMessage.get(name) ?? 0) + adding : inList + adding;
    if (cap.perMessage) this.perMessage.set(name, count);
    if (count <= cap.max) return;
    const values = cap.perMessage ? `${plural(count, "value")} in all` : exact ? plural(count, "value") : "more values";
    throw new TesseractError(cap.code, `${this.context}: ${where}: ${values}, expected at most ${cap.max} ${cap.what} (at byte ${this.pos})`);
  }

  private wrongWireType(field: protobuf.FieldBase, got: number, expected: number, where: string): never {
    const sub = field.resolvedType;
    const kind = field.map ? "a map entry" : sub ? `${sub instanceof MessageType ? "message" : "enum"} ${sub.fullName.slice(1)}` : field.type;
    return this.fail(where, `wire type ${wireTypeName(got)}, expected ${wireTypeName(expected)} for ${kind}`);
  }

  /** One more message (or map entry) read; RESOURCE_EXHAUSTED past maxMessages. */
  private count(where: string): void {
    if (++this.messages <= this.maxMessages) return;
    const refusal = tooManyMessages(this.maxMessages, `${where || "the top"} (at byte ${this.pos})`);
    throw new TesseractError(refusal.code, `${this.context}: ${refusal.message}`);
  }

  /** One map entry: key = 1, value = 2, each defaulted when absent. */
  private mapEntry(field: protobuf.MapField, end: number, where: string, style: DecodeStyle, depth: number): [string, unknown] {
    this.count(where);
    if (depth + 1 > MAX_DEPTH) this.fail(where, `nested more than ${MAX_DEPTH} messages deep`);
    const keyStyle: DecodeStyle = { longs: "string", defaults: true };
    const valueType = field.resolvedType;
    let key: unknown;
    let value: unknown;
    while (this.pos < end) {
      const tag = this.uint32(where);
      const number = tag >>> 3;
      const wireType = tag & 7;
      if (number === 1) {
        const expected = SCALAR_WIRE_TYPES[field.keyType];
        if (wireType !== expected) this.fail(`${where} (a key)`, `wire type ${wireTypeName(wireType)}, expected ${wireTypeName(expected)} for a ${field.keyType} key`);
        key = this.scalar(field.keyType, end, `${where} (a key)`, keyStyle);
      } else if (number === 2) {
        const at = key === undefined ? `${where} (a value)` : `${where}.{${clip(String(key))}}`;
        const expected = expectedWireType(field);
        if (wireType !== expected) this.wrongWireType(field, wireType, expected, at);
        value =
          valueType instanceof MessageType
            ? this.message(valueType, this.valueEnd(at, end), at, style, depth + 1, value as Record<string, unknown> | undefined)
            : this.scalar(scalarKind(field)!, end, at, style);
      } else {
        if (number === 0) this.fail(where, "field number 0 in a map entry");
        if (wireType === END_GROUP) this.fail(where, `end-group tag for field ${number} without its start-group`);
        this.skip(wireType, number, end, where, depth);
      }
    }
    if (this.pos !== end) this.fail(where, "map entry runs past its length");
    key ??= defaultScalar(field.keyType, keyStyle);
    value ??= valueType instanceof MessageType ? emptyMessage(valueType, style) : valueType instanceof EnumType ? firstEnumValue(valueType) : defaultScalar(scalarKind(field)!, style);
    return [String(key), value];
  }

  /** Skips an unknown field, checking its structure (lengths, nested groups). */
  private skip(wireType: number, number: number, end: number, where: string, depth: number): void {
    switch (wireType) {
      case VARINT:
        this.varintParts(where);
        return;
      case FIXED64:
        this.need(8, end, where);
        this.pos += 8;
        return;
      case FIXED32:
        this.need(4, end, where);
        this.pos += 4;
        return;
      case LENGTH_DELIMITED:
        this.pos = this.valueEnd(where, end);
        return;
      case START_GROUP: {
        if (depth + 1 > MAX_DEPTH) this.fail(where, `nested more than ${MAX_DEPTH} groups deep`);
        for (;;) {
          if (this.pos >= end) this.fail(where, `group of field ${number} has no end-group tag`);
          const tag = this.uint32(where);
          if ((tag & 7) === END_GROUP) {
            if (tag >>> 3 === number) return;
            this.fail(where, `end-group tag for field ${tag >>> 3} closes the group of field ${number}`);
          }
          if (tag >>> 3 === 0) this.fail(where, "field number 0");
          this.skip(tag & 7, tag >>> 3, end, where, depth + 1);
        }
      }
      default:
        this.fail(where, `invalid wire type ${wireType} for field ${number}`);
    }
  }
}

/** proto2 `required` fields, per type (proto3 has none, so the bookkeeping is mostly skipped). */
const requiredFields = new WeakMap<protobuf.Type, boolean>();

function hasRequiredFields(type: protobuf.Type): boolean {
  let has = requiredFields.get(type);
  if (has === undefined) requiredFields.set(type, (has = type.fieldsArray.some((f) => f.required)));
  return has;
}

/** Shared: nothing can be written into zero bytes. */
const NO_BYTES = new Uint8Array(0);

function defaultScalar(type: string, style: DecodeStyle): unknown {
  switch (type) {
    case "string":
      return "";
    case "bytes":
      return NO_BYTES;
    case "bool":
      return false;
    case "int64":
    case "uint64":
    case "sint64":
    case "fixed64":
    case "sfixed64":
      return style.longs === "string" ? "0" : 0;
    default:
      return 0; // numbers and enums
  }
}

/** A message with nothing read yet: containers empty, and scalars at their defaults when asked. */
function emptyMessage(type: protobuf.Type, style: DecodeStyle): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    if (field.map) setProperty(out, field.name, emptyRecord());
    else if (field.repeated) setProperty(out, field.name, []);
    else if (style.defaults && !field.partOf && !(field.resolvedType instanceof MessageType)) setProperty(out, field.name, fieldDefault(field, style));
  }
  return out;
}

/**
 * An enum field's default: its first value, as protobuf defines it. A proto3 enum's is 0; a proto2
 * enum's may be another (`RED = 1`), and 0 is then no value of it: an input echoed as an output
 * failed to encode.
 */
function firstEnumValue(type: protobuf.Enum): number {
  return Object.values(type.values)[0] ?? 0;
}

/** The default of a singular scalar or enum field (proto2 `[default = ...]` included). */
function fieldDefault(field: protobuf.Field, style: DecodeStyle): unknown {
  const declared = field.options?.default as unknown;
  if (field.resolvedType instanceof EnumType) {
    if (typeof declared === "string" && Object.hasOwn(field.resolvedType.values, declared)) return field.resolvedType.values[declared];
    return firstEnumValue(field.resolvedType);
  }
  if (declared === undefined) return defaultScalar(field.type, style);
  if (field.type === "bytes") return typeof declared === "string" ? new TextEncoder().encode(declared) : new Uint8Array(0);
  if (/64$/.test(field.type)) return style.longs === "string" ? String(declared) : Number(declared);
  return declared;
}

