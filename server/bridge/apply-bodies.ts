/**
 * One job's `POST /apply` bodies. Every evaluation of a job sends the same inputs but for the
 * differentiated leaves, so the base inputs are encoded to tesseract-core JSON once, with a marker
 * where each leaf's base64 goes; an evaluation only encodes what it changed and splices the text
 * together. A change of a few elements re-encodes only the base64 around them (every 3 bytes are 4
 * characters of their own), so a central difference over a large array costs no full re-encoding.
 * The body is byte for byte what encoding the perturbed tree would give.
 */
import { randomBytes } from "node:crypto";
import type * as protobuf from "protobufjs";
import { Code, TesseractError } from "../../common/errors";
import { exactJson } from "../../common/exact-json";
import { isPlainObject } from "../../common/records";
import { perturbedData, type LeafData } from "../eval/concurrent";
import type { Change, Perturbation } from "../eval/evaluator";
import type { InputLeaf } from "../eval/input-leaf";
import { getAtPath } from "../../common/paths";
import { keySegments } from "../schema/json-keys";

/** Raw bytes of a leaf's storage as base64: what an array object of that leaf carries. */
const base64Of = (data: LeafData): string => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");

/** Stands for a leaf's base64 in the encoded base inputs: random, so no input string can spell it. */
const MARKER = `tesseract-grpc-leaf-${randomBytes(12).toString("hex")}-`;
const MARKERS = new RegExp(`${MARKER}(\\d+)`);

/** Above this many changed elements a leaf is encoded whole rather than patched. */
const MAX_PATCHED_ELEMENTS = 64;

export class ApplyBodies {
  /** The body's text around the leaves: texts[0], leaf slots[0], texts[1], … */
  private readonly texts: string[] = [];
  /** Which leaf goes in each gap between two texts. */
  private readonly slots: number[] = [];
  /** The base64 of each leaf's unperturbed data. */
  private readonly base: string[];

  /** `json`: the job's inputs of `type` as tesseract-core's JSON (arrays base64), which this takes over. */
  constructor(
    type: protobuf.Type,
    json: Record<string, unknown>,
    private readonly leaves: readonly InputLeaf[],
  ) {
    leaves.forEach((leaf, i) => {
      // The leaf's fields by their keys, as the JSON holds them (a field named otherwise: json-keys.ts).
      const array = getAtPath(json, keySegments(type, leaf.segments));
      const data = isPlainObject(array) ? array.data : undefined;
      if (!isPlainObject(data)) throw new TesseractError(Code.INTERNAL, `input ${leaf.path} did not encode as an array object`);
      data.buffer = `${MARKER}${i}`;
    });
    const pieces = exactJson({ inputs: json }).split(MARKERS);
    pieces.forEach((piece, k) => (k % 2 === 0 ? this.texts.push(piece) : this.slots.push(Number(piece))));
    this.base = leaves.map((leaf) => base64Of(leaf.data));
  }

  /** The body of the evaluation at `perturbation`. */
  body(perturbation: Perturbation): string {
    const changes: (Change | undefined)[] = new Array(this.leaves.length);
    for (const change of perturbation) changes[change.leaf] = change;
    let text = this.texts[0];
    this.slots.forEach((leaf, k) => {
      text += this.leafBase64(leaf, changes[leaf]) + this.texts[k + 1];
    });
    return text;
  }

  /** Leaf `leaf`'s base64 with `change` made: patched around a few elements, else encoded whole. */
  private leafBase64(leaf: number, change: Change | undefined): string {
    if (!change) return this.base[leaf];
    if ("index" in change) return this.patched(leaf, [change.index], [change.value]);
    if ("indices" in change && change.indices.length <= MAX_PATCHED_ELEMENTS) return this.patched(leaf, change.indices, change.points);
    return base64Of(perturbedData(this.leaves, [change])[leaf]!);
  }

  /** The base base64 of `leaf` with elements `indices` set to `values`, re-encoding only their 3-byte groups. */
  private patched(leaf: number, indices: ArrayLike<number>, values: ArrayLike<number>): string {
    const data = this.leaves[leaf].data;
    const width = data.BYTES_PER_ELEMENT;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const order = Array.from(indices, (_, k) => k).sort((a, b) => indices[a] - indices[b]);
    const base = this.base[leaf];
    let text = "";
    let done = 0; // base64 characters of the base already taken
    for (let k = 0; k < order.length; ) {
      // A window of whole 3-byte groups around this element and any next ones it reaches.
      const start = Math.floor((indices[order[k]] * width) / 3) * 3;
      let end = Math.min(bytes.length, Math.ceil(((indices[order[k]] + 1) * width) / 3) * 3);
      let last = k + 1;
      while (last < order.length && indices[order[last]] * width < end) end = Math.min(bytes.length, Math.ceil(((indices[order[last++]] + 1) * width) / 3) * 3);
      const window = bytes.slice(start, end);
      const view = new DataView(window.buffer);
      for (let j = k; j < last; j++) {
        const at = indices[order[j]] * width - start;
        if (width === 8) view.setFloat64(at, values[order[j]], true);
        else view.setFloat32(at, values[order[j]], true);
      }
      const from = (start / 3) * 4;
      text += base.slice(done, from) + Buffer.from(window.buffer).toString("base64");
      done = end === bytes.length ? base.length : (end / 3) * 4;
      k = last;
    }
    return text + base.slice(done);
  }
}
