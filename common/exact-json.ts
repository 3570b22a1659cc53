/**
 * JSON text in which a bigint is written as its exact digits. A 64-bit integer beyond ±(2^53 − 1)
 * made a JS number loses digits (2^53 + 1 was answered as …992, silently), where numpy writes it
 * exactly and Python's json reads it exactly. Values hold bigints only where a number would not do
 * (`jsonInteger`), so the common case is one plain JSON.stringify.
 */
import { randomUUID } from "node:crypto";

// A marker no caller's or runtime's string can hold: it carries a random id of this process.
const id = randomUUID();
const MARK = `\u0000exact-integer:${id}:`;
const MARKED = new RegExp(`"\\\\u0000exact-integer:${id}:(-?\\d+)"`, "g");

/** A 64-bit integer for JSON: a number where it is one exactly, else the bigint for `exactJson`. */
export function jsonInteger(v: bigint): number | bigint {
  return v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** JSON.stringify, bigints written exactly. */
export function exactJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e; // a bigint: "Do not know how to serialize a BigInt"
  }
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? `${MARK}${v}` : v)).replace(MARKED, "$1");
}
