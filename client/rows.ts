/**
 * JacobianRows on the client: the stream's messages as typed events, and their assembly into the
 * same nested Jacobian the unary call returns.
 *
 * Contract (proto/tesseract/v1/tesseract.proto, JacobianRows): a header first (input and output
 * paths with shapes, total rows, planned evaluations); then rows, in any order, each `J[..., j]` for
 * one input element j (flat row-major `input_index` of `input_path`), possibly split over several
 * messages whose slices carry a flat `offset` into each output; stats last.
 */
import { elementCount } from "../common/tensor-codec";
import ndarray from "ndarray";
import { status } from "@grpc/grpc-js";
import { TesseractClientError } from "./errors";
import { clip, quote } from "../common/errors";
import type { EvaluationStats, JacobianHeader, JacobianRowsResponse } from "../generated/tesseract/v1/tesseract";
import { fp64Values } from "./tree";
import { JacobianResult, lookupBlock, noErrorEstimates, type NestedJacobian } from "./results";
import { plural } from "../common/plural";
import { emptyRecord, recordFrom } from "../common/records";
import { argumentError, checkEvents, isObject } from "./arguments";

export { JacobianResult, type NestedJacobian };

/**
 * Part of one output's values in a row. Dense (no `indices`): `values[p]` is d output[offset + p] /
 * d input[input_index]. Sparse: `values[k]` is d output[indices[k]] / d input[input_index], every
 * other entry of the row being structurally zero (the header's `nonzeros` is then above 0).
 */
export interface RowSliceValues {
  output_path: string;
  offset: number;
  /** A view of the message's bytes (not a copy): copy it if you keep it beyond the loop. */
  values: Float64Array;
  /** Estimated absolute error of each value, for Richardson and adaptive. */
  error_estimate?: Float64Array;
  /** Flat output indices of a sparse slice, one per value; absent for a dense slice. */
  indices?: number[];
}

export interface RowValues {
  input_path: string;
  input_index: number;
  slices: RowSliceValues[];
}

/** One message of the stream; exactly one field is set. */
export type JacobianRowsEvent =
  | { header: JacobianHeader; row?: undefined; stats?: undefined }
  | { header?: undefined; row: RowValues; stats?: undefined }
  | { header?: undefined; row?: undefined; stats: EvaluationStats };

function dataLoss(message: string): TesseractClientError {
  return new TesseractClientError(status.DATA_LOSS, `JacobianRows: ${message}`);
}

/**
 * Which values of the row in progress have arrived, so that a value sent twice is caught where it
 * lands: counting alone let a repeated slice (or a sparse index twice) stand in for a missing one,
 * and the hole was assembled as 0. Dense slices are runs [from, to) of the row's positions (outputs
 * in header order), kept as disjoint sorted runs: a row's few slices, whatever its length. Sparse
 * slices are single positions. Only one row is open at a time (a row's messages are consecutive),
 * so this costs one row's slices, never the Jacobian's size.
 */
class RowCoverage {
  /** Disjoint runs, sorted: starts[k] .. ends[k]. */
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly single = new Set<number>();

  /** The first run ending after `position` (the number of runs when none does). */
  private runAfter(position: number): number {
    let lo = 0;
    for (let hi = this.ends.length; lo < hi; ) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid] <= position) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Positions [from, from + count); false when one of them arrived already. */
  addRun(from: number, count: number): boolean {
    if (count === 0) return true;
    const to = from + count;
    const lo = this.runAfter(from);
    if (lo < this.starts.length && this.starts[lo] < to) return false;
    for (const p of this.single) if (p >= from && p < to) return false;
    if (lo > 0 && this.ends[lo - 1] === from) {
      this.ends[lo - 1] = to;
      if (lo < this.starts.length && this.starts[lo] === to) {
        this.ends[lo - 1] = this.ends[lo];
        this.starts.splice(lo, 1);
        this.ends.splice(lo, 1);
      }
    } else if (lo < this.starts.length && this.starts[lo] === to) this.starts[lo] = from;
    else {
      this.starts.splice(lo, 0, from);
      this.ends.splice(lo, 0, to);
    }
    return true;
  }

  /** One position of a sparse slice; false when it arrived already. */
  addOne(position: number): boolean {
    if (this.single.has(position)) return false;
    const lo = this.runAfter(position);
    if (lo < this.starts.length && this.starts[lo] <= position) return false;
    this.single.add(position);
    return true;
  }
}

/**
 * One flag per row, in pages allocated as rows arrive: what a header announces costs nothing until
 * its rows come (a header of 2^45 rows was a RangeError from a typed array of that length; a
 * believable 10^9, gigabytes before the first row).
 */
class RowFlags {
  private static readonly PAGE = 1 << 16;
  private readonly pages = new Map<number, Uint8Array>();

  has(row: number): boolean {
    return this.pages.get(Math.floor(row / RowFlags.PAGE))?.[row % RowFlags.PAGE] === 1;
  }

  set(row: number): void {
    const key = Math.floor(row / RowFlags.PAGE);
    let page = this.pages.get(key);
    if (!page) this.pages.set(key, (page = new Uint8Array(RowFlags.PAGE)));
    page[row % RowFlags.PAGE] = 1;
  }

  /** The first row below `total` not set: -1 when none. Looks at the pages there are, and one more. */
  firstUnset(total: number): number {
    for (let key = 0; key * RowFlags.PAGE < total; key++) {
      const page = this.pages.get(key);
      if (!page) return key * RowFlags.PAGE;
      const at = page.indexOf(0);
      if (at >= 0 && key * RowFlags.PAGE + at < total) return key * RowFlags.PAGE + at;
    }
    return -1;
  }
}

/**
 * `make()`, or RESOURCE_EXHAUSTED when this process cannot allocate it (V8's RangeError: an array
 * longer than it allows, or memory it has not got), naming what it was for and its size.
 */
function allocated<T>(make: () => T, what: string, values: number, instead: string): T {
  try {
    return make();
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new TesseractClientError(status.RESOURCE_EXHAUSTED, `JacobianRows: ${what} would hold ${values} FP64 values (${(values * 8) / 2 ** 30 >= 1 ? `${Number(((values * 8) / 2 ** 30).toPrecision(3))} GiB` : `${values * 8} bytes`}), more than this process can allocate (${e.message}): ${instead}`, undefined, { cause: e });
  }
}

/** A header's shape as an element count: whole dimensions ≥ 0 (a -1 or a count past 2^53 was a bare RangeError). */
function checkedSize(shape: readonly number[], what: string): number {
  const size = elementCount(shape);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || !Number.isSafeInteger(size)) throw dataLoss(`the header gives ${what} the shape [${shape.join(", ")}]`);
  return size;
}

/** A wire message as an event; malformed messages are INTERNAL errors, like an undecodable response. */
export function toRowsEvent(message: JacobianRowsResponse): JacobianRowsEvent {
  isObject(message, "toRowsEvent's message");
  if (message.header) return { header: message.header };
  if (message.stats) return { stats: message.stats };
  if (message.row) {
    const row = message.row;
    try {
      const slices = row.slices.map((s, k) => ({
        output_path: s.output_path,
        offset: s.offset,
        values: fp64Values(s.values, `row ${clip(row.input_path)}[${row.input_index}] slice ${k} (${clip(s.output_path)}) values`),
        error_estimate: s.error_estimate && fp64Values(s.error_estimate, `row ${clip(row.input_path)}[${row.input_index}] slice ${k} (${clip(s.output_path)}) error_estimate`),
        ...(s.indices?.length ? { indices: s.indices } : {}),
      }));
      return { row: { input_path: row.input_path, input_index: row.input_index, slices } };
    } catch (e) {
      throw new TesseractClientError(status.INTERNAL, `JacobianRows: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
    }
  }
  throw new TesseractClientError(status.INTERNAL, "JacobianRows: a message with no event set (expected header, row or stats)");
}

/**
 * How far a stream got, for a call that fails on the way ("after the header and 5 of the 900 rows")
 * and for a progress bar. A row counts once however many messages it is split over (they are
 * consecutive).
 */
export class RowsProgress {
  /** Rows begun. */
  rows = 0;
  private header?: JacobianHeader;
  private stats = false;
  /** The row begun last (not the event: its values are views of its message). */
  private lastPath?: string;
  private lastIndex = -1;

  count(event: JacobianRowsEvent): void {
    if (event.header) this.header = event.header;
    else if (event.stats) this.stats = true;
    else if (event.row.input_path !== this.lastPath || event.row.input_index !== this.lastIndex) {
      this.lastPath = event.row.input_path;
      this.lastIndex = event.row.input_index;
      this.rows++;
    }
  }

  /** "before any message", "after the header", "after the header and 5 of the 900 rows", … */
  text(): string {
    const rows = this.header ? `${this.rows} of the ${plural(this.header.total_rows, "row")}` : plural(this.rows, "row");
    const parts = [...(this.header ? ["the header"] : []), ...(this.rows ? [rows] : []), ...(this.stats ? ["the stats"] : [])];
    if (!parts.length) return "before any message";
    return `after ${parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}` : parts[0]}`;
  }
}

export interface InputInfo {
  path: string;
  shape: number[];
  size: number;
  /** Its first row among all the stream's rows (inputs in header order). */
  offset: number;
}

export interface OutputInfo {
  path: string;
  shape: number[];
  size: number;
  /** Where its values start within a dense row (outputs in header order). */
  start: number;
}

/** The row being received: its messages are consecutive. */
interface OpenRow {
  input: InputInfo;
  index: number;
  /** Position among all rows: input.offset + index. */
  row: number;
  values: number;
  coverage: RowCoverage;
}

/**
 * The contract's checks over a stream, shared by the assemblers and the .npy writer: a header
 * first; rows of listed inputs, each row's messages consecutive (a row that comes back after
 * another began is DATA_LOSS: sent twice, or split in a way no reader can check in bounded memory);
 * slices of listed outputs in range, no value twice within its row; every row arrives, whole when
 * dense (each holds the outputs' total size); sparse (`header.nonzeros` > 0): the values add up to
 * `nonzeros`; stats last. Violations are DATA_LOSS naming what is wrong.
 */
export class StreamCheck {
  header?: JacobianHeader;
  stats?: EvaluationStats;
  readonly inputs = new Map<string, InputInfo>();
  readonly outputs = new Map<string, OutputInfo>();
  /** Values one complete dense row holds: the sum of the output sizes. */
  rowLength = 0;
  /** Rows the inputs have: the header's total_rows, checked. */
  totalRows = 0;
  private total = 0;
  private open?: OpenRow;
  /** Rows finished, by position. */
  private readonly finished = new RowFlags();
  private rowsDone = 0;

  get sparse(): boolean {
    return Number(this.header?.nonzeros ?? 0) > 0;
  }

  /**
   * Checks one event; for a row, calls `place(slice, at, output, input)` for each slice once it is
   * checked, `at(k)` being the flat output index of value k.
   */
  event(event: JacobianRowsEvent, place: (slice: RowSliceValues, at: (k: number) => number, output: OutputInfo, input: InputInfo) => void): void {
    // Events from the caller's own iterable: one that is no event was skipped, or a TypeError from inside.
    if (typeof event !== "object" || event === null || !(event.header || event.row || event.stats)) throw argumentError("an event", event, "{ header }, { row } or { stats }, as client.jacobianRows yields them");
    if (this.stats) throw dataLoss("a message arrived after the stats, which must come last");
    if (event.header) this.onHeader(event.header);
    else if (event.row) this.onRow(event.row, place);
    else {
      if (!this.header) throw dataLoss("the stats arrived before the header");
      this.close();
      this.stats = event.stats;
    }
  }

  private onHeader(header: JacobianHeader): void {
    if (this.header) throw dataLoss("a second header");
    this.header = header;
    for (const o of header.outputs) {
      if (this.outputs.has(o.path)) throw dataLoss(`output ${quote(o.path)} appears twice in the header`);
      const size = checkedSize(o.shape, `output ${quote(o.path)}`);
      this.outputs.set(o.path, { path: o.path, shape: o.shape.slice(), size, start: this.rowLength });
      this.rowLength += size;
    }
    for (const i of header.inputs) {
      if (this.inputs.has(i.path)) throw dataLoss(`input ${quote(i.path)} appears twice in the header`);
      const size = checkedSize(i.shape, `input ${quote(i.path)}`);
      this.inputs.set(i.path, { path: i.path, shape: i.shape.slice(), size, offset: this.totalRows });
      this.totalRows += size;
    }
    if (!Number.isSafeInteger(this.rowLength) || !Number.isSafeInteger(this.totalRows)) throw dataLoss(`the header's shapes add up to more than 2^53 elements`);
    if (this.totalRows !== header.total_rows) throw dataLoss(`the header announces ${plural(header.total_rows, "row")} but its inputs have ${plural(this.totalRows, "element")}`);
  }

  /** The open row is finished: a dense one must be whole. */
  private close(): void {
    const open = this.open;
    if (!open) return;
    this.open = undefined;
    this.finished.set(open.row);
    this.rowsDone++;
    if (!this.sparse && open.values !== this.rowLength) {
      throw dataLoss(`incomplete: row ${open.index} of input ${quote(open.input.path)} has ${open.values} of its ${plural(this.rowLength, "value")}`);
    }
  }

  private onRow(row: RowValues, place: (slice: RowSliceValues, at: (k: number) => number, output: OutputInfo, input: InputInfo) => void): void {
    if (!this.header) throw dataLoss("a row arrived before the header");
    const { input_path, input_index, slices } = row;
    const input = this.inputs.get(input_path);
    if (!input) throw dataLoss(`row for input ${quote(input_path)}, which the header does not list`);
    if (!Number.isInteger(input_index) || input_index < 0 || input_index >= input.size) {
      throw dataLoss(`row index ${input_index} is out of range for input ${quote(input_path)} (${plural(input.size, "element")})`);
    }
    const position = input.offset + input_index;
    if (this.open?.row !== position) {
      this.close();
      if (this.finished.has(position)) throw dataLoss(`row ${input_index} of input ${quote(input_path)} arrived again after other rows (a row's messages are consecutive: a row sent twice?)`);
      this.open = { input, index: input_index, row: position, values: 0, coverage: new RowCoverage() };
    }
    const open = this.open;
    const where = (output: string) => `row ${input_index} of ${quote(input_path)}, output ${quote(output)}`;
    for (const slice of slices) {
      const output = this.outputs.get(slice.output_path);
      if (!output) throw dataLoss(`slice for output ${quote(slice.output_path)}, which the header does not list`);
      const { offset, values, indices } = slice;
      if (indices) {
        if (indices.length !== values.length) throw dataLoss(`sparse slice of ${quote(slice.output_path)} has ${plural(indices.length, "index", "indices")} for ${plural(values.length, "value")}`);
        for (let k = 0; k < indices.length; k++) {
          const i = indices[k];
          if (!Number.isInteger(i) || i < 0 || i >= output.size) throw dataLoss(`sparse slice index ${i} is out of range for output ${quote(slice.output_path)} (${plural(output.size, "element")})`);
          if (!open.coverage.addOne(output.start + i)) throw dataLoss(`${where(slice.output_path)}: a value arrived twice (output index ${i})`);
        }
        this.count(open, values.length);
        place(slice, (k) => indices[k], output, input);
      } else {
        if (!Number.isInteger(offset) || offset < 0 || offset + values.length > output.size) {
          throw dataLoss(`slice of ${plural(values.length, "value")} at offset ${offset} overruns output ${quote(slice.output_path)} (${plural(output.size, "element")})`);
        }
        if (!open.coverage.addRun(output.start + offset, values.length)) throw dataLoss(`${where(slice.output_path)} at offset ${offset}: a value arrived twice`);
        this.count(open, values.length);
        place(slice, (k) => offset + k, output, input);
      }
    }
  }

  private count(open: OpenRow, values: number): void {
    open.values += values;
    this.total += values;
    if (this.sparse && this.total > Number(this.header!.nonzeros)) {
      throw dataLoss(`the rows carry more than the ${this.header!.nonzeros} structural nonzeros the header announces (a row or slice twice?)`);
    }
  }

  /** The checks once the stream has ended. */
  end(): { header: JacobianHeader; stats: EvaluationStats } {
    const { header, stats } = this;
    if (!header) throw dataLoss("the stream ended without a header");
    if (!stats) throw dataLoss("the stream ended before its stats (incomplete)");
    if (this.rowsDone !== this.totalRows) {
      const missing = this.finished.firstUnset(this.totalRows);
      const input = [...this.inputs.values()].find((i) => missing < i.offset + i.size)!;
      throw dataLoss(`incomplete: ${plural(this.totalRows - this.rowsDone, "row")} missing, the first of input ${quote(input.path)} at flat index ${missing - input.offset}`);
    }
    if (this.sparse && this.total !== Number(header.nonzeros)) {
      throw dataLoss(`incomplete: the rows carry ${plural(this.total, "value")}, the header announces ${plural(header.nonzeros, "structural nonzero")}`);
    }
    return { header, stats };
  }
}

/**
 * Assembles a JacobianRows stream into `{ jacobian, stats }`, the result of the unary `jacobian()`:
 * dense arrays, zeros where sparse rows carry nothing. Each value of a row lands at flat position
 * (output index) * inputSize + input_index of the (*out, *in) array. The stream must be complete
 * (StreamCheck); anything else rejects with DATA_LOSS naming what is wrong.
 */
export async function assembleJacobian(events: AsyncIterable<JacobianRowsEvent> | Iterable<JacobianRowsEvent>): Promise<JacobianResult> {
  checkEvents(events, "assembleJacobian's events");
  const check = new StreamCheck();
  const jacobian: NestedJacobian = emptyRecord();
  let errorEstimate: NestedJacobian | undefined;
  for await (const event of events) {
    check.event(event, (slice, at, _output, input) => {
      const { input_path, input_index } = event.row!;
      const place = (into: NestedJacobian, from: Float64Array) => {
        const target = into[slice.output_path][input_path].data;
        for (let k = 0; k < from.length; k++) target[at(k) * input.size + input_index] = from[k];
      };
      place(jacobian, slice.values);
      if (slice.error_estimate) place((errorEstimate ??= zerosLike(jacobian)), slice.error_estimate);
    });
    if (event.header) {
      for (const [outPath, o] of check.outputs) {
        jacobian[outPath] = emptyRecord();
        for (const [inPath, i] of check.inputs) {
          const size = o.size * i.size;
          const data = allocated(() => new Float64Array(size), `the dense block d ${quote(outPath)} / d ${quote(inPath)}`, size, "assembleSparseJacobian keeps only the values the rows carry, densifyRows one row at a time");
          jacobian[outPath][inPath] = ndarray(data, [...o.shape, ...i.shape]);
        }
      }
    }
  }
  const { stats } = check.end();
  return new JacobianResult(jacobian, errorEstimate, stats);
}

/**
 * One (output, input) block of a Jacobian in compressed sparse columns, columns being input elements:
 * column j's entries are values[indptr[j] .. indptr[j + 1]), at the output elements `indices` (flat,
 * ascending). In scipy: csc_matrix((values, indices, indptr), shape=(outputSize, inputSize)); the
 * dense entry is that matrix reshaped to `shape`.
 */
export interface SparseBlock {
  /** (*output_shape, *input_shape), as the dense Jacobian's entry. */
  shape: number[];
  outputSize: number;
  inputSize: number;
  indptr: Uint32Array;
  indices: Uint32Array;
  values: Float64Array;
  /** Estimated absolute error of each value, for Richardson and adaptive. */
  errorEstimate?: Float64Array;
}

/** `assembleSparseJacobian()`'s result: the blocks by path, with `block()` as `assembleJacobian()`'s result has. */
export class SparseJacobianResult {
  constructor(
    /** jacobian[outputPath][inputPath] */
    readonly jacobian: Record<string, Record<string, SparseBlock>>,
    readonly stats: EvaluationStats,
    readonly header: JacobianHeader,
  ) {}

  /** d outputPath / d inputPath in compressed sparse columns; NOT_FOUND naming the pairs there are. */
  block(outputPath: string, inputPath: string): SparseBlock {
    return lookupBlock(this.jacobian, outputPath, inputPath);
  }

  /**
   * The estimated errors of `block(outputPath, inputPath)`, as a block of the same structure (its
   * `values` the errors); NOT_FOUND when the algorithm gives none.
   */
  errorBlock(outputPath: string, inputPath: string): SparseBlock {
    const block = this.block(outputPath, inputPath);
    const hasErrors = Object.values(this.jacobian).some((byInput) => Object.values(byInput).some((b) => b.errorEstimate));
    if (!hasErrors) throw noErrorEstimates();
    return { ...block, values: block.errorEstimate ?? new Float64Array(block.values.length), errorEstimate: undefined };
  }
}

/** A growable COO list for one block. */
class Triplets {
  length = 0;
  rows = new Uint32Array(16);
  columns = new Uint32Array(16);
  values = new Float64Array(16);
  errors?: Float64Array;

  push(row: number, column: number, value: number, error?: number): void {
    if (this.length === this.rows.length) {
      const grow = <T extends Uint32Array | Float64Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(2 * a.length);
        b.set(a);
        return b;
      };
      [this.rows, this.columns, this.values] = [grow(this.rows), grow(this.columns), grow(this.values)];
      if (this.errors) this.errors = grow(this.errors);
    }
    if (error !== undefined) (this.errors ??= new Float64Array(this.rows.length))[this.length] = error;
    this.rows[this.length] = row;
    this.columns[this.length] = column;
    this.values[this.length++] = value;
  }

  /** Compressed sparse columns, rows ascending within each column (a counting sort by column). */
  toBlock(shape: number[], outputSize: number, inputSize: number): SparseBlock {
    const indptr = new Uint32Array(inputSize + 1);
    for (let k = 0; k < this.length; k++) indptr[this.columns[k] + 1]++;
    for (let j = 0; j < inputSize; j++) indptr[j + 1] += indptr[j];
    const order = new Uint32Array(this.length);
    const next = indptr.slice(0, inputSize);
    for (let k = 0; k < this.length; k++) order[next[this.columns[k]]++] = k;
    for (let j = 0; j < inputSize; j++) order.subarray(indptr[j], indptr[j + 1]).sort((a, b) => this.rows[a] - this.rows[b]);
    return {
      shape,
      outputSize,
      inputSize,
      indptr,
      indices: order.map((k) => this.rows[k]),
      values: Float64Array.from(order, (k) => this.values[k]),
      errorEstimate: this.errors && Float64Array.from(order, (k) => this.errors![k]),
    };
  }
}

/** SparseBlock's indices are 32-bit: an output or input with more elements cannot be held (they wrapped around, silently). */
function checkIndexRange(header: JacobianHeader): void {
  for (const [what, list] of [["output", header.outputs], ["input", header.inputs]] as const) {
    for (const p of list) {
      const size = elementCount(p.shape);
      if (size > 2 ** 32) {
        throw new TesseractClientError(status.RESOURCE_EXHAUSTED, `JacobianRows: ${what} ${quote(p.path)} has ${size} elements, more than a SparseBlock's 32-bit indices address (2^32): densifyRows passes rows on one at a time`);
      }
    }
  }
}

/**
 * Assembles a JacobianRows stream into sparse blocks (SparseBlock) holding only what the rows carry,
 * for Jacobians too big to hold densely: memory O(nonzeros). Sparse slices keep every structural
 * entry; dense slices keep their nonzero values. The same checks as assembleJacobian.
 */
export async function assembleSparseJacobian(events: AsyncIterable<JacobianRowsEvent> | Iterable<JacobianRowsEvent>): Promise<SparseJacobianResult> {
  checkEvents(events, "assembleSparseJacobian's events");
  const check = new StreamCheck();
  const blocks = new Map<string, Triplets>();
  const blockOf = (out: string, input: string) => {
    const key = JSON.stringify([out, input]);
    let block = blocks.get(key);
    if (!block) blocks.set(key, (block = new Triplets()));
    return block;
  };
  for await (const event of events) {
    check.event(event, (slice, at) => {
      const { input_path, input_index } = event.row!;
      const block = blockOf(slice.output_path, input_path);
      const { values, error_estimate: errors } = slice;
      for (let k = 0; k < values.length; k++) {
        if (!slice.indices && values[k] === 0 && !errors?.[k]) continue;
        block.push(at(k), input_index, values[k], errors?.[k]);
      }
    });
    if (event.header) checkIndexRange(event.header);
  }
  const { header, stats } = check.end();
  const jacobian: Record<string, Record<string, SparseBlock>> = emptyRecord();
  for (const [outPath, o] of check.outputs) {
    jacobian[outPath] = emptyRecord();
    for (const [inPath, i] of check.inputs) jacobian[outPath][inPath] = (blocks.get(JSON.stringify([outPath, inPath])) ?? new Triplets()).toBlock([...o.shape, ...i.shape], o.size, i.size);
  }
  return new SparseJacobianResult(jacobian, stats, header);
}

/** A whole row, dense: `values[o]` is d output o / d input[input_index], every element of output o. */
export interface DenseRow {
  input_path: string;
  input_index: number;
  /** One FP64 array per output, in the header's order, of that output's size. */
  values: Float64Array[];
  error_estimate?: Float64Array[];
}

/** The stream with each row whole and dense: what a writer of rows (NDJSON, .npy) wants, one row in memory at a time. */
export type DenseRowsEvent =
  | { header: JacobianHeader; row?: undefined; stats?: undefined }
  | { header?: undefined; row: DenseRow; stats?: undefined }
  | { header?: undefined; row?: undefined; stats: EvaluationStats };

/**
 * Rows as whole dense arrays: the messages of one row (consecutive, by contract) merged, sparse
 * slices spread into zeros. Rows come in the stream's order, each once the checks have closed it
 * (whole, when dense): a row that comes back after another began is DATA_LOSS rather than a second,
 * partial "whole" row. The same checks as assembleJacobian, so a broken stream ends in DATA_LOSS
 * (after the rows before the break).
 */
export async function* densifyRows(events: AsyncIterable<JacobianRowsEvent> | Iterable<JacobianRowsEvent>): AsyncGenerator<DenseRowsEvent> {
  checkEvents(events, "densifyRows' events");
  const check = new StreamCheck();
  let outputs: { path: string; size: number }[] = [];
  let current: DenseRow | undefined;
  const fresh = (row: RowValues): DenseRow => ({
    input_path: row.input_path,
    input_index: row.input_index,
    values: outputs.map((o) => allocated(() => new Float64Array(o.size), `a dense row of output ${quote(o.path)}`, o.size, "assembleSparseJacobian keeps only the values the rows carry")),
  });
  for await (const event of events) {
    const row = event.row;
    // The row before this one is done when this one is another, or the stats come; it is passed on
    // once check.event has closed it.
    let done: DenseRow | undefined;
    if ((row && current && (current.input_path !== row.input_path || current.input_index !== row.input_index)) || event.stats) {
      done = current;
      current = undefined;
    }
    check.event(event, (slice, at) => {
      const o = outputs.findIndex((x) => x.path === slice.output_path);
      const into = (current ??= fresh(row!));
      for (let k = 0; k < slice.values.length; k++) into.values[o][at(k)] = slice.values[k];
      if (slice.error_estimate) {
        const errors = (into.error_estimate ??= outputs.map((x) => new Float64Array(x.size)));
        for (let k = 0; k < slice.error_estimate.length; k++) errors[o][at(k)] = slice.error_estimate[k];
      }
    });
    if (row) current ??= fresh(row);
    if (done) yield { row: done };
    if (event.header) {
      outputs = [...check.outputs.values()].map((o) => ({ path: o.path, size: o.size }));
      yield { header: event.header };
    }
    if (event.stats) {
      check.end();
      yield { stats: event.stats };
    }
  }
  check.end();
}

/** A nested Jacobian of zeros with the same paths and shapes. */
function zerosLike(jacobian: NestedJacobian): NestedJacobian {
  return recordFrom(Object.entries(jacobian).map(([out, byInput]) => [out, recordFrom(Object.entries(byInput).map(([inp, a]) => [inp, ndarray(new Float64Array(a.size), a.shape.slice())]))]));
}
