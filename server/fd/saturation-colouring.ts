/**
 * A second, slower colouring for structures where the greedy largest-first one is above the obvious
 * lower bound: DSATUR (Brélaz, 1979), which colours next the column whose neighbours already use
 * the most distinct colours. On the 5-point stencil of a 2-D grid, the commonest structure of
 * simulations, largest-first takes 7 groups where DSATUR finds the optimum, 5 (each group saves
 * an evaluation pair under central differences); on banded and block structures both are optimal.
 *
 * It needs every column's neighbours (columns sharing an output value), so it runs only where that
 * is cheap: the sum over output values of (columns there)^2 within a bound.
 */
import { COLUMNS_PER_TURN, type Column, type Turn } from "./column";
import { MAX_PATTERN_NONZEROS, type Structure } from "./sparsity";

/** Neighbour visits allowed (some 10 ns each), at least; more for more columns. */
const MAX_NEIGHBOUR_WORK = 10_000_000;
const NEIGHBOUR_WORK_PER_COLUMN = 400;

/** Entries the incidence may hold (4 bytes each, twice): a pattern's most nonzeros, and as many again of dense blocks. */
const MAX_INCIDENCE = 2 * MAX_PATTERN_NONZEROS;

/** Saturation bits allowed over all columns (a bit per column and colour below the count to beat). */
const MAX_SATURATION_BITS = 256_000_000;

/** Entries the column queue may hold (8 bytes each): a column is queued again each time its saturation grows. */
const MAX_QUEUED = 1 << 24;

/** The columns' output values, and the values' columns, as compressed rows over one numbering of all outputs' values. */
interface Incidence {
  colStarts: Uint32Array;
  colValues: Uint32Array;
  valueStarts: Uint32Array;
  valueCols: Uint32Array;
}

/**
 * Incidence of `columns`, a column dense in an output touching each of its values (a scalar
 * parameter beside a field is common); undefined where it would hold more than MAX_INCIDENCE entries.
 */
function incidence(structure: Structure, columns: readonly Column[]): Incidence | undefined {
  const offsets: number[] = [];
  let values = 0;
  for (const out of structure.outputs) offsets.push(values), (values += out.size);
  const colStarts = new Uint32Array(columns.length + 1);
  for (let k = 0; k < columns.length; k++) {
    let n = 0;
    for (let o = 0; o < structure.outputs.length; o++) {
      const block = structure.block(o, columns[k].leaf);
      n += block ? block.starts[columns[k].index + 1] - block.starts[columns[k].index] : structure.outputs[o].size;
    }
    if (colStarts[k] + n > MAX_INCIDENCE) return undefined;
    colStarts[k + 1] = colStarts[k] + n;
  }
  const colValues = new Uint32Array(colStarts[columns.length]);
  const valueStarts = new Uint32Array(values + 1);
  columns.forEach(({ leaf, index }, k) => {
    let p = colStarts[k];
    structure.outputs.forEach((_, o) => {
      const cells = structure.cells(o, leaf, index);
      const touched = cells?.length ?? structure.outputs[o].size;
      for (let i = 0; i < touched; i++, p++) valueStarts[(colValues[p] = offsets[o] + (cells ? cells[i] : i)) + 1]++;
    });
  });
  for (let v = 0; v < values; v++) valueStarts[v + 1] += valueStarts[v];
  const valueCols = new Uint32Array(colValues.length);
  const next = valueStarts.slice(0, values);
  for (let k = 0; k < columns.length; k++) for (let p = colStarts[k]; p < colStarts[k + 1]; p++) valueCols[next[colValues[p]]++] = k;
  return { colStarts, colValues, valueStarts, valueCols };
}

/**
 * A colouring of `columns` with fewer than `toBeat` colours, or undefined where none was found or
 * the structure is outside the bounds. colours[k] is column k's colour.
 */
export async function colourBySaturation(structure: Structure, columns: readonly Column[], toBeat: number, turn?: Turn): Promise<{ colours: Int32Array; count: number } | undefined> {
  const words = Math.ceil(toBeat / 32);
  if (columns.length * words * 32 > MAX_SATURATION_BITS) return undefined;
  const found = incidence(structure, columns);
  if (!found) return undefined;
  const { valueStarts } = found;
  // The columns at one value are all mutually neighbours: the most of them is a lower bound.
  let largest = 0;
  let work = 0;
  for (let v = 0; v + 1 < valueStarts.length; v++) {
    const n = valueStarts[v + 1] - valueStarts[v];
    largest = Math.max(largest, n);
    work += n * n;
  }
  if (largest >= toBeat || work > Math.max(MAX_NEIGHBOUR_WORK, NEIGHBOUR_WORK_PER_COLUMN * columns.length)) return undefined;
  // Ties broken by degree suit some structures (the 5-point stencil), by the columns' order others (wider diamonds).
  let best: { colours: Int32Array; count: number } | undefined;
  for (const byDegree of [true, false]) {
    const colouring = await saturationOrder(found, columns.length, best?.count ?? toBeat, words, byDegree, turn);
    if (colouring) best = colouring;
    if (best?.count === largest) break;
  }
  return best;
}

/** DSATUR over the incidence; gives up (undefined) when a column needs colour toBeat - 1. */
async function saturationOrder(found: Incidence, n: number, toBeat: number, words: number, byDegree: boolean, turn?: Turn): Promise<{ colours: Int32Array; count: number } | undefined> {
  const { colStarts, colValues, valueStarts, valueCols } = found;
  const degree = new Uint32Array(n);
  if (byDegree) for (let k = 0; k < n; k++) for (let p = colStarts[k]; p < colStarts[k + 1]; p++) degree[k] += valueStarts[colValues[p] + 1] - valueStarts[colValues[p]] - 1;
  const colours = new Int32Array(n).fill(-1);
  const saturation = new Uint32Array(n);
  const seen = new Uint32Array(n * words);
  const queue = new ColumnQueue(saturation, degree);
  for (let k = 0; k < n; k++) queue.push(k);
  let count = 0;
  for (let coloured = 0; coloured < n; ) {
    const k = queue.pop();
    if (colours[k] >= 0 || queue.poppedSaturation !== saturation[k]) continue;
    if (turn && coloured % COLUMNS_PER_TURN === 0) {
      const turning = turn();
      if (turning) await turning;
    }
    coloured++;
    let colour = 0;
    while (seen[k * words + (colour >>> 5)] & (1 << (colour & 31))) colour++;
    if (colour + 1 >= toBeat) return undefined;
    colours[k] = colour;
    count = Math.max(count, colour + 1);
    const [word, bit] = [colour >>> 5, 1 << (colour & 31)];
    for (let p = colStarts[k]; p < colStarts[k + 1]; p++) {
      const v = colValues[p];
      for (let q = valueStarts[v]; q < valueStarts[v + 1]; q++) {
        const e = valueCols[q];
        if (colours[e] >= 0 || seen[e * words + word] & bit) continue;
        seen[e * words + word] |= bit;
        saturation[e]++;
        if (!queue.push(e)) return undefined;
      }
    }
  }
  return { colours, count };
}

/**
 * Columns by saturation, then degree, then order (first first): a binary heap holding a column
 * again each time its saturation grows, the older entries left stale and skipped when popped.
 */
class ColumnQueue {
  private columns: Uint32Array<ArrayBuffer> = new Uint32Array(1024);
  private keys: Uint32Array<ArrayBuffer> = new Uint32Array(1024);
  private size = 0;
  /** The saturation the last popped entry was pushed with: older than the column's own, the entry is stale. */
  poppedSaturation = 0;

  constructor(
    private readonly saturation: Uint32Array,
    private readonly degree: Uint32Array,
  ) {}

  /** Queues column k at its saturation; false where the queue is full. */
  push(k: number): boolean {
    if (this.size === MAX_QUEUED) return false;
    if (this.size === this.columns.length) {
      this.columns = grow(this.columns);
      this.keys = grow(this.keys);
    }
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(k, this.saturation[k], this.columns[parent], this.keys[parent])) break;
      this.columns[i] = this.columns[parent];
      this.keys[i] = this.keys[parent];
      i = parent;
    }
    this.columns[i] = k;
    this.keys[i] = this.saturation[k];
    return true;
  }

  pop(): number {
    const [column, key] = [this.columns[0], this.keys[0]];
    const last = --this.size;
    const [k, kKey] = [this.columns[last], this.keys[last]];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && this.before(this.columns[child + 1], this.keys[child + 1], this.columns[child], this.keys[child])) child++;
      if (!this.before(this.columns[child], this.keys[child], k, kKey)) break;
      this.columns[i] = this.columns[child];
      this.keys[i] = this.keys[child];
      i = child;
    }
    this.columns[i] = k;
    this.keys[i] = kKey;
    this.poppedSaturation = key;
    return column;
  }

  private before(a: number, aKey: number, b: number, bKey: number): boolean {
    return aKey !== bKey ? aKey > bKey : this.degree[a] !== this.degree[b] ? this.degree[a] > this.degree[b] : a < b;
  }
}

function grow(a: Uint32Array<ArrayBuffer>): Uint32Array<ArrayBuffer> {
  const bigger = new Uint32Array(a.length * 2);
  bigger.set(a);
  return bigger;
}
