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
import type { EvaluationStats, JacobianHeader, JacobianRowsResponse } from "../generated/tesseract/v1/tesseract";
import { fp64Values } from "./tree";
import { JacobianResult, type NestedJacobian } from "./results";

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
 * Which values of the dense slices in progress have arrived, so that a value sent twice is caught
 * where it lands: counting alone let a repeated slice stand in for a missing one, and the hole was
 * assembled as 0. Kept per row and output (a dense slice's block carries every value of its output
 * in that row, whatever the other blocks): per row, a sparse stream's rows that mix dense and sparse
 * slices never filled their maps, and each stayed, one of the row's length per row (538 MB for
 * 23 200 rows of 23 201 values). Slices may come in any order; a map goes once its output is whole,
 * and rows come one after another, so few are open at once.
 */
export class RowCoverage {
  private readonly open = new Map<string | number, { seen: Uint8Array; count: number }>();
  /** A finished map, cleared for the next of the same length (a 23 200-value output's is 23 KB, every row). */
  private spare?: Uint8Array;

  /** Values [from, from + count) of the `length` values under `key` (one output of one row); its map goes once all have arrived. */
  mark(key: string | number, length: number, from: number, count: number, where: () => string): void {
    let entry = this.open.get(key);
    if (!entry) {
      const seen = this.spare?.length === length ? this.spare.fill(0) : new Uint8Array(length);
      if (seen === this.spare) this.spare = undefined;
      this.open.set(key, (entry = { seen, count: 0 }));
    }
    const { seen } = entry;
    for (let i = from; i < from + count; i++) {
      if (seen[i]) throw dataLoss(`${where()}: a value arrived twice (value ${i} of that output)`);
      seen[i] = 1;
    }
    entry.count += count;
    if (entry.count === length) {
      this.open.delete(key);
      this.spare = seen;
    }
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
  if (message.header) return { header: message.header };
  if (message.stats) return { stats: message.stats };
  if (message.row) {
    const row = message.row;
    try {
      const slices = row.slices.map((s, k) => ({
        output_path: s.output_path,
        offset: s.offset,
        values: fp64Values(s.values, `row ${row.input_path}[${row.input_index}] slice ${k} (${s.output_path}) values`),
        error_estimate: s.error_estimate && fp64Values(s.error_estimate, `row ${row.input_path}[${row.input_index}] slice ${k} (${s.output_path}) error_estimate`),
        ...(s.indices?.length ? { indices: s.indices } : {}),
      }));
      return { row: { input_path: row.input_path, input_index: row.input_index, slices } };
    } catch (e) {
      throw new TesseractClientError(status.INTERNAL, `JacobianRows: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
    }
  }
  throw new TesseractClientError(status.INTERNAL, "JacobianRows: a message with no event set (expected header, row or stats)");
}


interface InputInfo {
  shape: number[];
  size: number;
  /** Values received so far, per row (element) of this input. */
  received: Float64Array;
  /** Whether any message of each row arrived. */
  seen: Uint8Array;
}

interface OutputInfo {
  shape: number[];
  size: number;
}

/** Where one slice value lands: output element `outputIndex` of row `inputIndex` of an (output, input) block. */
export interface PlacedValue {
  outputPath: string;
  inputPath: string;
  outputIndex: number;
  inputIndex: number;
}

/**
 * The contract's checks over a stream, shared by the assemblers: a header first, rows of listed
 * inputs with slices of listed outputs in range, every row complete and no value twice (dense: each
 * row holds the outputs' total size; sparse, `header.nonzeros` > 0: every row arrives and the values
 * add up to `nonzeros`), stats last. Violations are DATA_LOSS naming what is wrong.
 */
class StreamCheck {
  header?: JacobianHeader;
  stats?: EvaluationStats;
  readonly inputs = new Map<string, InputInfo>();
  readonly outputs = new Map<string, OutputInfo>();
  /** Values one complete dense row holds: the sum of the output sizes. */
  private rowLength = 0;
  private total = 0;
  private coverage?: RowCoverage;

  get sparse(): boolean {
    return Number(this.header?.nonzeros ?? 0) > 0;
  }

  /**
   * Checks one event; for a row, calls `place(slice, k, target)` for each value k of each slice,
   * target being where it lands.
   */
  event(event: JacobianRowsEvent, place: (slice: RowSliceValues, at: (k: number) => number, output: OutputInfo, input: InputInfo) => void): void {
    if (this.stats) throw dataLoss("a message arrived after the stats, which must come last");
    if (event.header) this.onHeader(event.header);
    else if (event.row) this.onRow(event.row, place);
    else if (event.stats) {
      if (!this.header) throw dataLoss("the stats arrived before the header");
      this.stats = event.stats;
    }
  }

  private onHeader(header: JacobianHeader): void {
    if (this.header) throw dataLoss("a second header");
    this.header = header;
    for (const o of header.outputs) {
      if (this.outputs.has(o.path)) throw dataLoss(`output "${o.path}" appears twice in the header`);
      this.outputs.set(o.path, { shape: o.shape.slice(), size: checkedSize(o.shape, `output "${o.path}"`) });
      this.rowLength += elementCount(o.shape);
    }
    let rows = 0;
    for (const i of header.inputs) {
      if (this.inputs.has(i.path)) throw dataLoss(`input "${i.path}" appears twice in the header`);
      const size = checkedSize(i.shape, `input "${i.path}"`);
      this.inputs.set(i.path, { shape: i.shape.slice(), size, received: new Float64Array(size), seen: new Uint8Array(size) });
      rows += size;
    }
    if (rows !== header.total_rows) throw dataLoss(`the header announces ${header.total_rows} rows but its inputs have ${rows} elements`);
  }

  private onRow(row: RowValues, place: (slice: RowSliceValues, at: (k: number) => number, output: OutputInfo, input: InputInfo) => void): void {
    if (!this.header) throw dataLoss("a row arrived before the header");
    const { input_path, input_index, slices } = row;
    const input = this.inputs.get(input_path);
    if (!input) throw dataLoss(`row for input "${input_path}", which the header does not list`);
    if (!Number.isInteger(input_index) || input_index < 0 || input_index >= input.size) {
      throw dataLoss(`row index ${input_index} is out of range for input "${input_path}" (${input.size} elements)`);
    }
    input.seen[input_index] = 1;
    for (const slice of slices) {
      const output = this.outputs.get(slice.output_path);
      if (!output) throw dataLoss(`slice for output "${slice.output_path}", which the header does not list`);
      const { offset, values, indices } = slice;
      if (indices) {
        if (indices.length !== values.length) throw dataLoss(`sparse slice of "${slice.output_path}" has ${indices.length} indices for ${values.length} values`);
        const bad = indices.findIndex((i) => !Number.isInteger(i) || i < 0 || i >= output.size);
        if (bad >= 0) throw dataLoss(`sparse slice index ${indices[bad]} is out of range for output "${slice.output_path}" (${output.size} elements)`);
        place(slice, (k) => indices[k], output, input);
      } else {
        if (offset + values.length > output.size) {
          throw dataLoss(`slice of ${values.length} values at offset ${offset} overruns output "${slice.output_path}" (${output.size} elements)`);
        }
        this.coverage ??= new RowCoverage();
        this.coverage.mark(`${input_path}\u0000${input_index}\u0000${slice.output_path}`, output.size, offset, values.length, () => `row ${input_index} of "${input_path}", output "${slice.output_path}" at offset ${offset}`);
        place(slice, (k) => offset + k, output, input);
      }
      input.received[input_index] += values.length;
      this.total += values.length;
    }
    if (this.sparse && this.total > Number(this.header.nonzeros)) {
      throw dataLoss(`the rows carry more than the ${this.header.nonzeros} structural nonzeros the header announces (a row or slice twice?)`);
    }
    if (input.received[input_index] > this.rowLength) {
      throw dataLoss(`row ${input_index} of "${input_path}" received ${input.received[input_index]} values, more than its ${this.rowLength}`);
    }
  }

  /** The checks once the stream has ended. */
  end(): { header: JacobianHeader; stats: EvaluationStats } {
    const { header, stats } = this;
    if (!header) throw dataLoss("the stream ended without a header");
    if (!stats) throw dataLoss("the stream ended before its stats (incomplete)");
    for (const [path, input] of this.inputs) {
      const missing = this.sparse ? input.seen.findIndex((s) => s === 0) : input.received.findIndex((n) => n !== this.rowLength);
      if (missing >= 0) {
        const incomplete = this.sparse ? input.seen.reduce((n, s) => n + (s ? 0 : 1), 0) : input.received.reduce((n, r) => n + (r !== this.rowLength ? 1 : 0), 0);
        const detail = this.sparse ? "" : ` (${input.received[missing]} of ${this.rowLength} values)`;
        throw dataLoss(`incomplete: ${incomplete} row(s) of input "${path}" missing or partial, the first at flat index ${missing}${detail}`);
      }
    }
    if (this.sparse && this.total !== Number(header.nonzeros)) {
      throw dataLoss(`incomplete: the rows carry ${this.total} values, the header announces ${header.nonzeros} structural nonzeros`);
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
  const check = new StreamCheck();
  const jacobian: NestedJacobian = {};
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
        jacobian[outPath] = {};
        for (const [inPath, i] of check.inputs) jacobian[outPath][inPath] = ndarray(new Float64Array(o.size * i.size), [...o.shape, ...i.shape]);
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

export interface SparseJacobianResult {
  /** jacobian[outputPath][inputPath] */
  jacobian: Record<string, Record<string, SparseBlock>>;
  stats: EvaluationStats;
  header: JacobianHeader;
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

/**
 * Assembles a JacobianRows stream into sparse blocks (SparseBlock) holding only what the rows carry,
 * for Jacobians too big to hold densely: memory O(nonzeros). Sparse slices keep every structural
 * entry; dense slices keep their nonzero values. The same checks as assembleJacobian.
 */
export async function assembleSparseJacobian(events: AsyncIterable<JacobianRowsEvent> | Iterable<JacobianRowsEvent>): Promise<SparseJacobianResult> {
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
  }
  const { header, stats } = check.end();
  const jacobian: Record<string, Record<string, SparseBlock>> = {};
  for (const [outPath, o] of check.outputs) {
    jacobian[outPath] = {};
    for (const [inPath, i] of check.inputs) jacobian[outPath][inPath] = (blocks.get(JSON.stringify([outPath, inPath])) ?? new Triplets()).toBlock([...o.shape, ...i.shape], o.size, i.size);
  }
  return { jacobian, stats, header };
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
 * slices spread into zeros. Rows come in the stream's order; the same checks as assembleJacobian,
 * so a broken stream ends in DATA_LOSS (after the rows before the break).
 */
export async function* densifyRows(events: AsyncIterable<JacobianRowsEvent> | Iterable<JacobianRowsEvent>): AsyncGenerator<DenseRowsEvent> {
  const check = new StreamCheck();
  let outputs: { path: string; size: number }[] = [];
  let current: DenseRow | undefined;
  const fresh = (row: RowValues): DenseRow => ({ input_path: row.input_path, input_index: row.input_index, values: outputs.map((o) => new Float64Array(o.size)) });
  for await (const event of events) {
    const row = event.row;
    if (row && current && (current.input_path !== row.input_path || current.input_index !== row.input_index)) {
      yield { row: current };
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
    if (event.header) {
      outputs = event.header.outputs.map((o) => ({ path: o.path, size: elementCount(o.shape) }));
      yield { header: event.header };
    }
    if (event.stats) {
      if (current) yield { row: current };
      current = undefined;
      check.end();
      yield { stats: event.stats };
    }
  }
  check.end();
}

/** A nested Jacobian of zeros with the same paths and shapes. */
function zerosLike(jacobian: NestedJacobian): NestedJacobian {
  return Object.fromEntries(
    Object.entries(jacobian).map(([out, byInput]) => [out, Object.fromEntries(Object.entries(byInput).map(([inp, a]) => [inp, ndarray(new Float64Array(a.size), a.shape.slice())]))]),
  );
}
