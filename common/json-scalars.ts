/**
 * A JSON value for a protobuf scalar field, checked against the field's type: integers within their
 * type's range (64-bit ones within ±2^53, written as numbers or decimal strings: beyond, a JSON
 * number is already rounded, and protobufjs wrapped a longer string modulo 2^64 without a word).
 * Shared by the REST API's and the bridge's JSON (server/schema/json-messages.ts) and the CLI's
 * payloads (client/json-form.ts).
 */
import { invalidArgument, shown } from "./errors";

export const INT_RANGES: Readonly<Record<string, [number, number]>> = {
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

/** A decimal number written as a string: digits, maybe a point and an exponent (no hex, no "Infinity"). */
const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const TRUE_WORDS: readonly unknown[] = [1, "1", "true", "t", "yes", "y", "on"];
const FALSE_WORDS: readonly unknown[] = [0, "0", "false", "f", "no", "n", "off"];

/** `v` as the value of a scalar field of protobuf type `type` ("int32", "double", "bytes", ...); INVALID_ARGUMENT naming `where` otherwise. */
export function jsonScalar(type: string, v: unknown, where: string): unknown {
  if (type === "double" || type === "float") {
    // A decimal string too, as protobuf's JSON and pydantic take one ("0.5"; integer fields took "4").
    const n = typeof v === "string" && DECIMAL.test(v) ? Number(v) : v;
    // JSON's numbers are finite: an infinite one was a literal beyond FP64's range.
    if (typeof n === "number" && Number.isFinite(n)) {
      // A float field holds FP32: beyond its range the value would become infinite on the wire, unsaid.
      if (type === "float" && !Number.isFinite(Math.fround(n))) throw invalidArgument(`${where} is ${shown(v)}, beyond the range of a float field (FP32, ±3.4028235e38)`);
      return n;
    }
    throw invalidArgument(`${where} is ${shown(v)}, expected ${typeof n === "number" ? "a finite number" : "a number"}`);
  }
  if (Object.hasOwn(INT_RANGES, type)) {
    const [lo, hi] = INT_RANGES[type];
    const n = typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : v;
    if (Number.isInteger(n) && (n as number) >= lo && (n as number) <= hi) return n;
    // 64-bit types: the range JSON numbers hold exactly, which is narrower than the type's (a larger number arrives rounded, as `v` shows).
    const range = hi === Number.MAX_SAFE_INTEGER ? `${type}, within ±(2^53 - 1), the integers a JSON number holds exactly` : type;
    throw invalidArgument(`${where} is ${shown(v)}, expected an integer from ${lo} to ${hi} (${range})`);
  }
  if (type === "bool") {
    if (typeof v === "boolean") return v;
    // What pydantic takes for a bool besides true and false (a tesseract-core client's 1 was refused).
    const word = typeof v === "string" ? v.toLowerCase() : v;
    if (TRUE_WORDS.includes(word)) return true;
    if (FALSE_WORDS.includes(word)) return false;
    throw invalidArgument(`${where} is ${shown(v)}, expected true or false`);
  }
  if (type === "string") {
    if (typeof v === "string") return v;
    throw invalidArgument(`${where} is ${shown(v)}, expected a string`);
  }
  if (type === "bytes") {
    if (typeof v === "string") return Buffer.from(v, "base64");
    throw invalidArgument(`${where} is ${shown(v)}, expected a base64 string`);
  }
  throw invalidArgument(`${where} has type ${type}, which JSON inputs cannot set`);
}
