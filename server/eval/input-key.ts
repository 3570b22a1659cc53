/**
 * A key for an input tree's content, for reusing evaluations (evaluation-cache.ts): SHA-256 over a
 * serialization of everything apply can read in the tree — every value with its type, map and
 * object keys in their order (apply may iterate them), each ndarray's datatype, shape, stride,
 * offset and the whole of its storage. Equal keys mean trees apply cannot tell apart; a tree with
 * anything else in it (a class instance, a function) has no key and is never reused.
 */
import { createHash, type Hash } from "node:crypto";
import { isNdArray } from "../../common/tensor-codec";

const TAG = { null: 0, undefined: 1, false: 2, true: 3, number: 4, bigint: 5, string: 6, array: 7, ndarray: 8, typedArray: 9, object: 10 } as const;

/** Scalars gather in a scratch buffer; typed arrays go to the hash as they are (no copy). */
class Serializer {
  private scratch = Buffer.allocUnsafe(4096);
  private used = 0;

  constructor(private readonly hash: Hash) {}

  private room(bytes: number): void {
    if (this.used + bytes <= this.scratch.length) return;
    this.flush();
    if (bytes > this.scratch.length) this.scratch = Buffer.allocUnsafe(bytes);
  }

  flush(): void {
    if (this.used > 0) this.hash.update(this.scratch.subarray(0, this.used));
    this.used = 0;
  }

  tag(tag: number): void {
    this.room(1);
    this.scratch[this.used++] = tag;
  }

  number(value: number): void {
    this.room(8);
    this.used = this.scratch.writeDoubleLE(value, this.used);
  }

  string(value: string): void {
    const bytes = Buffer.byteLength(value);
    this.number(bytes);
    this.room(bytes);
    this.used += this.scratch.write(value, this.used);
  }

  bytes(view: ArrayBufferView): void {
    this.number(view.byteLength);
    this.flush();
    this.hash.update(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  }
}

/** Serializes a scalar; false when `value` is not one. */
function scalar(out: Serializer, value: unknown): boolean {
  if (value === null) out.tag(TAG.null);
  else if (value === undefined) out.tag(TAG.undefined);
  else if (typeof value === "boolean") out.tag(value ? TAG.true : TAG.false);
  else if (typeof value === "number") {
    out.tag(TAG.number);
    out.number(value); // its bits: -0 and 0 differ, as they may for apply
  } else if (typeof value === "bigint") {
    out.tag(TAG.bigint);
    out.string(value.toString());
  } else if (typeof value === "string") {
    out.tag(TAG.string);
    out.string(value);
  } else return false;
  return true;
}

/** Serializes `value`; false when it holds something without a faithful serialization. */
function serialize(out: Serializer, value: unknown, depth: number): boolean {
  if (scalar(out, value)) return true;
  if (typeof value !== "object" || value === null || depth > 200) return false;
  if (isNdArray(value)) {
    const { data, shape, stride, offset } = value as { data: unknown; shape: number[]; stride: number[]; offset: number };
    if (!ArrayBuffer.isView(data)) return false;
    out.tag(TAG.ndarray);
    out.string(data.constructor.name);
    for (const list of [shape, stride]) {
      out.number(list.length);
      list.forEach((n) => out.number(n));
    }
    out.number(offset);
    out.bytes(data);
    return true;
  }
  if (ArrayBuffer.isView(value)) {
    out.tag(TAG.typedArray);
    out.string(value.constructor.name);
    out.bytes(value);
    return true;
  }
  if (Array.isArray(value)) {
    out.tag(TAG.array);
    out.number(value.length);
    return value.every((item) => serialize(out, item, depth + 1));
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  const keys = Object.keys(value);
  out.tag(TAG.object);
  out.number(keys.length);
  for (const key of keys) {
    out.string(key);
    if (!serialize(out, (value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

/** The key of `tree` for `identity` (the Tesseract's), or undefined when the tree cannot have one. */
export function inputsKey(identity: string, tree: unknown): string | undefined {
  const hash = createHash("sha256");
  const out = new Serializer(hash);
  out.string(identity);
  if (!serialize(out, tree, 0)) return undefined;
  out.flush();
  return hash.digest("base64");
}
