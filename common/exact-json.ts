/**
 * JSON text in which a bigint is written as its exact digits, and −0 as -0.0. A 64-bit integer
 * beyond ±(2^53 − 1) made a JS number loses digits (2^53 + 1 was answered as …992, silently), where
 * numpy writes it exactly and Python's json reads it exactly; JSON.stringify writes −0 as 0, where
 * Python writes -0.0 and a sign-sensitive reader (1/x, copysign, atan2) tells them apart. Values hold
 * bigints only where a number would not do (`jsonInteger`) and marked −0s only where floats are
 * written (`jsonFloat`), so the common case is one plain JSON.stringify.
 */
import { randomUUID } from "node:crypto";

// A marker no caller's or runtime's string can hold: it carries a random id of this process.
const id = randomUUID();
const MARK = `\u0000exact-number:${id}:`;
const MARKED = new RegExp(`"\\\\u0000exact-number:${id}:(-?\\d+|-0\\.0)"`, "g");
// How a marker begins in JSON text (JSON.stringify escapes U+0000 as \u0000).
const MARK_IN_TEXT = `\\u0000exact-number:${id}:`;
const NEGATIVE_ZERO = `${MARK}-0.0`;

/** A 64-bit integer for JSON: a number where it is one exactly, else the bigint for `exactJson`. */
export function jsonInteger(v: bigint): number | bigint {
  return v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** A float for JSON: −0 marked, for `exactJson` to write -0.0; any other value as it is. */
export function jsonFloat(v: number): number | string {
  return v === 0 && 1 / v < 0 ? NEGATIVE_ZERO : v;
}

/** Whether a float array holds a −0 (its elements then go through `jsonFloat`). */
export function holdsNegativeZero(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (values[i] === 0 && 1 / values[i] < 0) return true;
  return false;
}

/** JSON.stringify, bigints written exactly and −0 as -0.0. */
export function exactJson(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e; // a bigint: "Do not know how to serialize a BigInt"
    text = JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? `${MARK}${v}` : v));
  }
  return text.includes(MARK_IN_TEXT) ? text.replace(MARKED, "$1") : text;
}
