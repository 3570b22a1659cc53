/**
 * Rows held until their structure is verified (columns.ts), packed into a few growable typed
 * arrays: a Row costs about 200 bytes per typed array on top of its values, and a diagonal of
 * 300 000 held that way ran out of memory under a 160 MB heap. Rows are kept in pages of
 * ROWS_PER_BATCH; reading a page rebuilds its rows as views of its arrays, bit for bit and in order,
 * and a page given back as a batch leaves the store, so its memory goes once its rows are read.
 */
import { ROWS_PER_BATCH, type Row } from "./rows";

type Packed = Float64Array | Uint32Array | Uint8Array;

/** A typed array grown by doubling as values are appended. */
class Growing<A extends Packed> {
  private data: A;
  private length = 0;

  constructor(private readonly make: (capacity: number) => A) {
    this.data = make(64);
  }

  /** Makes room for `more` values; where they go. */
  private reserve(more: number): number {
    const at = this.length;
    if (at + more > this.data.length) {
      const grown = this.make(Math.max(at + more, 2 * this.data.length));
      grown.set(this.data.subarray(0, at));
      this.data = grown;
    }
    this.length += more;
    return at;
  }

  // reserve() may replace `data`: it is called before `data` is read.
  push(value: number): void {
    const at = this.reserve(1);
    this.data[at] = value;
  }

  append(values: ArrayLike<number>): void {
    const at = this.reserve(values.length);
    this.data.set(values, at);
  }

  at(k: number): number {
    return this.data[k];
  }

  view(from: number, count: number): A {
    return this.data.subarray(from, from + count) as A;
  }
}

const float64 = (n: number) => new Float64Array(n);
const uint32 = (n: number) => new Uint32Array(n);
const uint8 = (n: number) => new Uint8Array(n);

/** Per row: which optional parts it has. */
const ERRORS = 1;
const ROUNDING = 2;
const INDICES = 4;
const CHECKED = 8;

/** Up to ROWS_PER_BATCH rows: per row its leaf, index and flags; per row and output its count and whether it has indices; the arrays' contents one after the other. */
class Page {
  size = 0;
  private readonly leaves = new Growing(uint32);
  private readonly indexes = new Growing(uint32);
  private readonly flags = new Growing(uint8);
  private readonly counts = new Growing(uint32);
  private readonly sparse = new Growing(uint8);
  private readonly values = new Growing(float64);
  private readonly errors = new Growing(float64);
  private readonly rounding = new Growing(float64);
  private readonly indices = new Growing(uint32);
  /** `unstructured` by row of the page (lone columns' only). */
  private readonly notes = new Map<number, string>();

  constructor(private readonly outputs: number) {}

  add(row: Row): void {
    this.leaves.push(row.leaf);
    this.indexes.push(row.index);
    this.flags.push((row.errors ? ERRORS : 0) | (row.rounding ? ROUNDING : 0) | (row.indices ? INDICES : 0) | (row.checked ? CHECKED : 0));
    for (let o = 0; o < this.outputs; o++) {
      this.counts.push(row.values[o].length);
      this.values.append(row.values[o]);
      if (row.errors) this.errors.append(row.errors[o]);
      if (row.rounding) this.rounding.append(row.rounding[o]);
      const at = row.indices?.[o];
      this.sparse.push(at ? 1 : 0);
      if (at) this.indices.append(at);
    }
    if (row.unstructured !== undefined) this.notes.set(this.size, row.unstructured);
    this.size++;
  }

  /** The rows as added, their arrays views of the page's. */
  *rows(): Generator<Row> {
    // Where the next row's part starts in each array: rows are read in order.
    const next = { values: 0, errors: 0, rounding: 0, indices: 0 };
    const view = <A extends Packed>(part: keyof typeof next, from: Growing<A>, count: number): A => from.view((next[part] += count) - count, count);
    for (let k = 0; k < this.size; k++) {
      const flags = this.flags.at(k);
      const row: Row = { leaf: this.leaves.at(k), index: this.indexes.at(k), values: [] };
      if (flags & ERRORS) row.errors = [];
      if (flags & ROUNDING) row.rounding = [];
      const indices: (Uint32Array | undefined)[] | undefined = flags & INDICES ? [] : undefined;
      for (let o = 0; o < this.outputs; o++) {
        const count = this.counts.at(k * this.outputs + o);
        row.values.push(view("values", this.values, count));
        row.errors?.push(view("errors", this.errors, count));
        row.rounding?.push(view("rounding", this.rounding, count));
        indices?.push(this.sparse.at(k * this.outputs + o) ? view("indices", this.indices, count) : undefined);
      }
      if (indices) row.indices = indices;
      if (flags & CHECKED) row.checked = true;
      const note = this.notes.get(k);
      if (note !== undefined) row.unstructured = note;
      yield row;
    }
  }
}

/** Rows held packed (above): read as often as needed, then given back in batches. */
export class HeldRows implements Iterable<Row> {
  private readonly pages: Page[] = [];

  /** Copies `row` in; the row itself is read no more, so its memory may go (result-lease.ts). */
  add(row: Row): void {
    let page = this.pages[this.pages.length - 1];
    if (!page || page.size === ROWS_PER_BATCH) this.pages.push((page = new Page(row.values.length)));
    page.add(row);
    row.release?.();
  }

  *[Symbol.iterator](): Iterator<Row> {
    for (const page of this.pages) yield* page.rows();
  }

  /** The rows in batches of at most ROWS_PER_BATCH, each page leaving the store as it is given. */
  *batches(): Generator<Row[]> {
    for (let page = this.pages.shift(); page; page = this.pages.shift()) yield [...page.rows()];
  }
}
