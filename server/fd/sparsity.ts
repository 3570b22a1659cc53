/**
 * The structure of a Jacobian: which entries of each (output, input) block are structurally nonzero,
 * built from COO patterns (the request's, the Tesseract's declaration, or a detected one) and kept
 * per column (input element) as compressed sparse columns, since the engine works column by column.
 * Blocks without a pattern are dense.
 */
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { Code, invalidArgument, quote, listed, TesseractError } from "../../common/errors";
import type { SparsityPattern } from "../tesseract";
import { plural } from "../../common/plural";

export type { SparsityPattern };

/** An input leaf or an output, as the structure sees it: a path and a flat size. */
export interface Extent {
  path: string;
  size: number;
  /** Set when the size is a prediction (an output's, by abstractEval): a refusal naming it says so, since the prediction may be the Tesseract's mistake rather than the caller's. */
  predicted?: true;
}

/** What a refusal naming a predicted output's size adds. */
export const AS_PREDICTED = " (the output's shape as the Tesseract's abstractEval predicts it)";

/** Refusals of a request made against abstractEval's prediction of the outputs (see SparsityPlan.checkAgainstOutputs). */
const byPrediction = new WeakSet<object>();

/** `refusal`, marked as made against abstractEval's prediction of the outputs. */
export function refusedByPrediction<E extends object>(refusal: E): E {
  byPrediction.add(refusal);
  return refusal;
}

export const isRefusedByPrediction = (e: unknown): boolean => typeof e === "object" && e !== null && byPrediction.has(e);

/**
 * Most structural nonzeros a structure may hold (over all its sparse blocks): about 12 bytes each
 * while it is built, so the patterns of one request stay within some 50 MB.
 */
export const MAX_PATTERN_NONZEROS = 4_000_000;

/**
 * Most column pointers the sparse blocks of one structure may hold: a block with pairs keeps one per
 * element of its input (4 bytes each, and as many again while it is built), so some 128 MB while
 * built. A block without pairs (a zero block) shares one array of zeros per input and counts none.
 * Uncounted, 300 patterns over a 1 000 000-element input took a server past 5 GB.
 */
export const MAX_PATTERN_COLUMNS = 16_000_000;

/** One sparse block: for input element j, its output indices are rows[starts[j] .. starts[j + 1]), ascending. */
export interface SparseBlock {
  starts: Uint32Array;
  rows: Uint32Array;
}

export class Structure {
  constructor(
    readonly leaves: readonly Extent[],
    readonly outputs: readonly Extent[],
    /** [output][leaf]: undefined for a dense block. */
    private readonly blocks: readonly (readonly (SparseBlock | undefined)[])[],
  ) {}

  /** Block (output o, leaf l) in compressed sparse columns; undefined when dense. */
  block(o: number, leaf: number): SparseBlock | undefined {
    return this.blocks[o][leaf];
  }

  /** The flat indices of output `o` that column `index` of leaf `leaf` touches; undefined: all of them. */
  cells(o: number, leaf: number, index: number): Uint32Array | undefined {
    const block = this.blocks[o][leaf];
    return block?.rows.subarray(block.starts[index], block.starts[index + 1]);
  }

  /** How many output values column `index` of leaf `leaf` touches, over all outputs. */
  degree(leaf: number, index: number): number {
    return this.outputs.reduce((n, out, o) => {
      const block = this.blocks[o][leaf];
      return n + (block ? block.starts[index + 1] - block.starts[index] : out.size);
    }, 0);
  }

  /** Structural nonzeros over all blocks (a dense block counts every entry). */
  get nonzeros(): number {
    let n = 0;
    this.outputs.forEach((out, o) => this.leaves.forEach((leaf, l) => (n += this.blocks[o][l]?.rows.length ?? out.size * leaf.size)));
    return n;
  }

  /** Entries the sparse blocks hold (4 bytes each). */
  get storedEntries(): number {
    return this.blocks.reduce((n, row) => row.reduce((m, b) => m + (b?.rows.length ?? 0), n), 0);
  }

  /** What the structure costs in memory, in 4-byte values: its entries and the column pointers of its blocks with pairs (zero blocks share theirs). */
  get heldValues(): number {
    return this.blocks.reduce((n, row) => row.reduce((m, b) => m + (b ? b.rows.length + (b.rows.length ? b.starts.length : 0) : 0), n), 0);
  }

  /** Whether every block is dense (no pattern applies). */
  get dense(): boolean {
    return this.blocks.every((row) => row.every((b) => b === undefined));
  }

  private digest?: string;

  /** A digest of everything the structure says (extents and blocks): equal for equal structures. */
  get fingerprint(): string {
    if (this.digest === undefined) {
      const hash = createHash("sha256").update(JSON.stringify([this.leaves, this.outputs]));
      for (const row of this.blocks) {
        for (const block of row) {
          hash.update(block ? `|${block.starts.length},${block.rows.length}|` : "|dense|");
          // A zero block's pointers are all 0: its sizes say everything.
          if (block?.rows.length) hash.update(block.starts).update(block.rows);
        }
      }
      this.digest = hash.digest("base64");
    }
    return this.digest;
  }

  /** The last alignment, by the paths and sizes it was made for (structures are shared by requests and runtimes: structureOf). */
  private aligned?: { outputs: string; structure: Structure };

  /**
   * The same structure with its outputs in `outputs`' order (apply's, which may differ from the
   * order the outputs were predicted in). Apply's outputs must be the predicted ones: same paths,
   * same sizes.
   */
  alignedTo(outputs: readonly { path: string; shape: readonly number[] }[]): Structure {
    // Sizes too: a runtime whose apply disagrees with its abstractEval met the alignment another had made, unchecked.
    const key = JSON.stringify(outputs.map((o) => [o.path, o.shape.reduce((a, b) => a * b, 1)]));
    if (this.aligned?.outputs === key) return this.aligned.structure;
    const order = outputs.map((out) => {
      const o = this.outputs.findIndex((x) => x.path === out.path);
      const size = out.shape.reduce((a, b) => a * b, 1);
      if (o < 0 || this.outputs[o].size !== size || outputs.length !== this.outputs.length) throw predictionMissed(outputs, this.outputs);
      return o;
    });
    const structure = order.every((o, k) => o === k) ? this : new Structure(this.leaves, order.map((o) => this.outputs[o]), order.map((o) => this.blocks[o]));
    this.aligned = { outputs: key, structure };
    return structure;
  }
}

/** Apply's outputs are not those abstractEval predicted (the Tesseract's mistake, INTERNAL): predicted by shape, or by size where only that is known. */
export function predictionMissed(actual: readonly { path: string; shape: readonly number[] }[], predicted: readonly (Extent | { path: string; shape: readonly number[] })[]): TesseractError {
  const elements = (n: number) => `${n} element${n === 1 ? "" : "s"}`;
  const shown = (x: Extent | { path: string; shape: readonly number[] }) => ("shape" in x ? `${x.path} [${x.shape.join(", ")}]` : `${x.path}: ${elements(x.size)}`);
  return new TesseractError(Code.INTERNAL, `apply's outputs (${actual.map(shown).join(", ")}) differ from those abstractEval predicted (${predicted.map(shown).join(", ")})`);
}

/** Who gave the patterns, for refusals: the request (INVALID_ARGUMENT) or the Tesseract (its author's mistake, INTERNAL). */
export interface PatternSource {
  /** "sparsity" (the request's field) or "the Tesseract's sparsity declaration". */
  field: string;
  fromRequest: boolean;
}

/**
 * The structure the patterns describe for these leaves and outputs. Refused: a pattern for a pair
 * that is not requested (the request's; a declaration's are skipped), the same pair twice, index
 * lists of different lengths, an index out of range, more than MAX_PATTERN_NONZEROS pairs, more
 * than MAX_PATTERN_COLUMNS column pointers.
 */
export function buildStructure(patterns: readonly SparsityPattern[], leaves: readonly Extent[], outputs: readonly Extent[], source: PatternSource): Structure {
  const refuse = (message: string) => (source.fromRequest ? invalidArgument(message) : new TesseractError(Code.INTERNAL, message));
  const blocks: (SparseBlock | undefined)[][] = outputs.map(() => leaves.map(() => undefined));
  const seen = new Map<string, number>();
  /** Per leaf, the column pointers every zero block of it shares; and the pointers the other blocks hold. */
  const zeroBlocks = new Map<number, SparseBlock>();
  let pointers = 0;
  const total = patterns.reduce((n, p) => n + (p.output_index?.length ?? 0), 0);
  if (total > MAX_PATTERN_NONZEROS) {
    throw new TesseractError(Code.RESOURCE_EXHAUSTED, `${source.field} has ${total} index pairs, more than the ${MAX_PATTERN_NONZEROS} a request may carry; leave dense blocks out rather than listing every entry`);
  }
  patterns.forEach((pattern, k) => {
    const path = (p: unknown) => (typeof p === "string" ? quote(p) : "unset");
    const where = `${source.field}[${k}] (output_path ${path(pattern.output_path)}, input_path ${path(pattern.input_path)})`;
    const o = outputs.findIndex((out) => out.path === pattern.output_path);
    const l = leaves.findIndex((leaf) => leaf.path === pattern.input_path);
    if (o < 0 || l < 0) {
      if (!source.fromRequest) return;
      const which = o < 0 ? `output_path is not a requested output (${listed(outputs.map((x) => x.path))})` : `input_path is not a differentiated input (${listed(leaves.map((x) => x.path))})`;
      throw refuse(`${where}: ${which}`);
    }
    const pair = `${o} ${l}`;
    if (seen.has(pair)) throw refuse(`${where}: the pair already has a pattern, ${source.field}[${seen.get(pair)}]; give each pair one`);
    seen.set(pair, k);
    const [rows, columns] = [pattern.output_index ?? [], pattern.input_index ?? []];
    if (rows.length !== columns.length) throw refuse(`${where}: output_index has ${plural(rows.length, "entry", "entries")} and input_index ${columns.length}; expected pairs (the same number of each)`);
    if (rows.length === 0) {
      let zero = zeroBlocks.get(l);
      if (!zero) zeroBlocks.set(l, (zero = { starts: new Uint32Array(leaves[l].size + 1), rows: new Uint32Array(0) }));
      blocks[o][l] = zero;
      return;
    }
    pointers += leaves[l].size + 1;
    if (pointers > MAX_PATTERN_COLUMNS) {
      throw new TesseractError(
        Code.RESOURCE_EXHAUSTED,
        `${where}: ${source.field}'s patterns with index pairs span ${pointers} input elements so far, more than the ${MAX_PATTERN_COLUMNS} a request may carry (each counts every element of its input_path); give fewer (output, input) blocks a pattern, or ask for fewer outputs per request`,
      );
    }
    blocks[o][l] = sparseBlock(rows, columns, outputs[o], leaves[l], (message) => refuse(`${where}: ${message}`));
  });
  return new Structure(leaves, outputs, blocks);
}

/**
 * buildStructure, for patterns met recently taken from a cache by their content: a Tesseract's
 * declaration gives the same patterns request after request, and building checks and sorts every
 * index pair. Only what built without a refusal is kept; bounded in stored entries.
 */
export function structureOf(patterns: readonly SparsityPattern[], leaves: readonly Extent[], outputs: readonly Extent[], source: PatternSource): Structure {
  const key = patternsKey(patterns, leaves, outputs, source);
  let structure = recentStructures.get(key);
  if (!structure) recentStructures.set(key, (structure = buildStructure(patterns, leaves, outputs, source)));
  return structure;
}

const recentStructures = new LRUCache<string, Structure>({ max: 16, maxSize: 2 * MAX_PATTERN_NONZEROS, sizeCalculation: (s) => Math.max(1, s.heldValues) });

/** A digest of everything buildStructure reads: the extents, the source, and each pattern's paths and indices (as numbers, as flatIndex reads them). */
function patternsKey(patterns: readonly SparsityPattern[], leaves: readonly Extent[], outputs: readonly Extent[], source: PatternSource): string {
  const lists: ArrayLike<number | string>[] = patterns.flatMap((p) => [p.output_index ?? [], p.input_index ?? []]);
  const hash = createHash("sha256").update(JSON.stringify([source, leaves, outputs, patterns.map((p) => [p.output_path, p.input_path]), lists.map((l) => l.length)]));
  for (const list of lists) hash.update(asNumbers(list));
  return hash.digest("base64");
}

function asNumbers(list: ArrayLike<number | string>): Float64Array {
  if (list instanceof Uint32Array) return Float64Array.from(list);
  const numbers = new Float64Array(list.length);
  for (let k = 0; k < list.length; k++) numbers[k] = indexValue(list[k]);
  return numbers;
}

/**
 * An index as a number, NaN when it is no whole number. uint64s arrive as decimal strings, a
 * declaration's as numbers; Number() alone read "" and null as 0, true as 1, and 1.5 was then
 * refused as out of range.
 */
function indexValue(value: unknown): number {
  if (typeof value === "number") return Number.isInteger(value) ? value : NaN;
  if (typeof value === "string") return /^[0-9]+$/.test(value) ? Number(value) : NaN;
  return typeof value === "bigint" ? Number(value) : NaN;
}

/** A flat index as a number; refused unless a whole number in [0, size). */
function flatIndex(value: number | string, { path, size, predicted }: Extent, field: string, k: number, refuse: (m: string) => Error): number {
  const v = indexValue(value);
  if (Number.isNaN(v)) throw refuse(`${field}[${k}] = ${typeof value === "string" ? quote(value) : String(value).slice(0, 40)}: expected a whole number (a flat row-major index into ${path})`);
  if (v < 0 || v >= size) {
    const refusal = refuse(`${field}[${k}] = ${String(value).slice(0, 40)} is out of range for ${path}, which has ${size ? `${plural(size, "element")} (flat row-major indices 0 to ${size - 1})` : "no elements"}${predicted ? AS_PREDICTED : ""}`);
    throw predicted ? refusedByPrediction(refusal) : refusal;
  }
  return v;
}

/** COO pairs to compressed sparse columns, each column's rows ascending, duplicates merged. */
function sparseBlock(rowIndex: ArrayLike<number | string>, columnIndex: ArrayLike<number | string>, output: Extent, leaf: Extent, refuse: (m: string) => Error): SparseBlock {
  const count = rowIndex.length;
  const rows = new Uint32Array(count);
  const columns = new Uint32Array(count);
  const starts = new Uint32Array(leaf.size + 1);
  for (let k = 0; k < count; k++) {
    rows[k] = flatIndex(rowIndex[k], output, "output_index", k, refuse);
    columns[k] = flatIndex(columnIndex[k], leaf, "input_index", k, refuse);
    starts[columns[k] + 1]++;
  }
  for (let j = 0; j < leaf.size; j++) starts[j + 1] += starts[j];
  const sorted = new Uint32Array(count);
  const next = starts.slice(0, leaf.size);
  for (let k = 0; k < count; k++) sorted[next[columns[k]]++] = rows[k];
  // Sort each column and drop repeats, compacting in place.
  let at = 0;
  for (let j = 0; j < leaf.size; j++) {
    const column = sorted.subarray(starts[j], starts[j + 1]).sort();
    starts[j] = at;
    let previous = -1;
    for (let k = 0; k < column.length; k++) {
      const row = column[k]; // read before anything at or below `at` is written
      if (row !== previous) sorted[at++] = previous = row;
    }
  }
  starts[leaf.size] = at;
  return { starts, rows: at === count ? sorted : sorted.slice(0, at) };
}
