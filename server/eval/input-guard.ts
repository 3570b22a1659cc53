/**
 * Whether apply wrote to its inputs. Perturb-and-restore evaluates every point on one input tree and
 * puts back only the elements it changed, so an apply that writes elsewhere in its inputs moves every
 * later evaluation's point, and the quotients answer for other inputs than the caller's
 * (tesseract-core copies the inputs for each evaluation). A snapshot of every tensor's storage,
 * compared when the work is done (and by a worker after each batch): the answer is then refused,
 * naming the element, rather than wrong.
 */
import { TesseractError, Code } from "../../common/errors";
import { isNdArray, type TypedArray } from "../../common/tensor-codec";
import { plural } from "../../common/plural";

interface Guarded {
  path: string;
  data: TypedArray;
  /** A copy of `data` as the request came. */
  before: TypedArray;
}

/** An object, list or ndarray of the tree and what it held: its keys with their values (other objects by identity). */
interface Node {
  path: string;
  node: object;
  entries: [string, unknown][];
}

/** What of an ndarray besides its values apply could change: which array it views, and how. */
const ndarrayView = (a: { data: unknown; shape: unknown; stride: unknown; offset: unknown }): [string, unknown][] => [
  ["data", a.data],
  ["shape", String(a.shape)],
  ["stride", String(a.stride)],
  ["offset", a.offset],
];

const bytesOf = (data: TypedArray) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

const isObject = (value: unknown) => value !== null && typeof value === "object";

/** How a value of the tree changed: replaced (an object), or from one value to another. */
function change(where: string, before: unknown, after: unknown): string {
  if (isObject(before) || isObject(after)) return `${where} was ${after === undefined ? "removed" : "replaced"}`;
  return `${where} went from ${String(before)} to ${String(after)}`;
}

export class InputGuard {
  private readonly leaves: Guarded[] = [];
  private readonly nodes: Node[] = [];

  constructor(inputs: unknown) {
    this.collect(inputs, "");
  }

  /** Bytes of the snapshot: those of every tensor of the inputs. */
  get bytes(): number {
    return this.leaves.reduce((sum, leaf) => sum + leaf.before.byteLength, 0);
  }

  private collect(value: unknown, path: string): void {
    if (typeof value !== "object" || value === null) return;
    if (isNdArray(value)) {
      const data = value.data as TypedArray;
      this.nodes.push({ path, node: value, entries: ndarrayView(value) });
      if (ArrayBuffer.isView(data)) this.leaves.push({ path, data, before: data.slice() });
      return;
    }
    if (ArrayBuffer.isView(value)) {
      // A bytes field (or any other view): its bytes, not an entry per element.
      const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      this.leaves.push({ path, data: bytes, before: bytes.slice() });
      return;
    }
    this.nodes.push({ path, node: value, entries: Object.entries(value) });
    if (Array.isArray(value)) value.forEach((v, i) => this.collect(v, `${path}.[${i}]`));
    else for (const [key, v] of Object.entries(value)) this.collect(v, path ? `${path}.${key}` : key);
  }

  /** INTERNAL naming the first thing apply changed, if any: a value, an element, an object replaced, an entry added or removed. */
  check(): void {
    for (const { path, node, entries } of this.nodes) {
      const now = isNdArray(node) ? ndarrayView(node) : Object.entries(node);
      const where = (key: string) => (isNdArray(node) ? `${path}'s ${key}` : path ? `${path}.${key}` : key);
      const changed = entries.find(([key, value], i) => now[i]?.[0] !== key || !Object.is(now[i][1], value));
      if (changed) throw wrote(change(where(changed[0]), changed[1], (node as Record<string, unknown>)[changed[0]]));
      if (now.length !== entries.length) throw wrote(`${path || "the inputs"} had ${plural(entries.length, "entry", "entries")} and came to ${now.length}`);
    }
    for (const { path, data, before } of this.leaves) {
      // Bytes, not values: NaN equals itself, and -0 differs from 0.
      const [now, then] = [bytesOf(data), bytesOf(before)];
      if (now.equals(then)) continue;
      let byte = 0;
      while (now[byte] === then[byte]) byte++;
      const element = Math.floor(byte / data.BYTES_PER_ELEMENT);
      // Read again, it may be back (another thread's apply wrote and restored it meanwhile).
      const [was, is] = [before[element], data[element]];
      throw wrote(Object.is(was, is) ? `${path} element ${element} was written` : `${path} element ${element} went from ${was} to ${is}`);
    }
  }
}

function wrote(what: string): TesseractError {
  return new TesseractError(Code.INTERNAL, `apply wrote to its inputs: ${what} during the request, so later evaluations were not at the caller's inputs; an apply must not change its inputs (copy what it modifies)`);
}
