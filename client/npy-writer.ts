/**
 * A streamed Jacobian written into a NumPy `.npy` file as its rows arrive, so that neither the
 * Jacobian nor more than one message of it is ever held: the header (from the stream's header)
 * first, then each slice of each row written at its place, before the next message is read.
 *
 * Layout: one FP64 matrix J of shape (O, I), O the outputs' elements and I the inputs' (the stream's
 * rows), outputs and inputs concatenated in the header's order, each flattened row-major. It is
 * stored in Fortran order, so that a row of the stream (the column J[:, j]) is contiguous on disk:
 * `np.load(path)` gives J itself; for one output and one input,
 * `J.reshape(*output_shape, *input_shape)` is the unary Jacobian's layout.
 *
 * The stream must be complete (every value of every row once, stats last); otherwise the file is
 * removed and the error is DATA_LOSS naming what is missing, as for assembleJacobian. A dense slice
 * is one run of values at its offset; a sparse one (`indices`, when the header announces nonzeros)
 * is written run by run of consecutive indices, and the file's other bytes read as zeros.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { invalidArgument, quote } from "../common/errors";
import { status } from "@grpc/grpc-js";
import { elementCount } from "../common/tensor-codec";
import type { EvaluationStats, JacobianHeader } from "../generated/tesseract/v1/tesseract";
import { TesseractClientError } from "./errors";
import { RowCoverage, type JacobianRowsEvent, type RowValues } from "./rows";

/** Where one path's elements sit along its axis of J. */
export interface BlockPlace {
  path: string;
  shape: number[];
  /** First row (outputs) or column (inputs) of J that holds this path. */
  offset: number;
}

export interface NpyJacobian {
  path: string;
  /** [O, I]. */
  shape: [number, number];
  outputs: BlockPlace[];
  inputs: BlockPlace[];
  stats: EvaluationStats;
}

/** The NumPy format 1.0 header of an FP64 Fortran-order array, padded to a multiple of 64 bytes. */
export function npyHeader(shape: readonly number[]): Buffer {
  const dict = `{'descr': '<f8', 'fortran_order': True, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const unpadded = 10 + dict.length + 1;
  const text = dict + " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const header = Buffer.alloc(10 + text.length);
  header.write("\x93NUMPY", 0, "latin1");
  header.writeUInt8(1, 6);
  header.writeUInt8(0, 7);
  header.writeUInt16LE(text.length, 8);
  header.write(text, 10, "latin1");
  return header;
}

function dataLoss(message: string): TesseractClientError {
  return new TesseractClientError(status.DATA_LOSS, `JacobianRows: ${message}`);
}

/** Paths along one axis of J, from the header; a path listed twice is DATA_LOSS. */
function places(shapes: JacobianHeader["inputs"], what: string): { list: BlockPlace[]; byPath: Map<string, BlockPlace & { size: number }>; total: number } {
  const byPath = new Map<string, BlockPlace & { size: number }>();
  let total = 0;
  for (const { path, shape } of shapes) {
    if (byPath.has(path)) throw dataLoss(`${what} "${path}" appears twice in the header`);
    const size = elementCount(shape);
    byPath.set(path, { path, shape: shape.slice(), offset: total, size });
    total += size;
  }
  return { list: [...byPath.values()].map(({ path, shape, offset }) => ({ path, shape, offset })), byPath, total };
}

/** The file's geometry and what has been written so far. */
class Layout {
  readonly outputs;
  readonly inputs;
  /** Values written per column (stream row), to check that every row arrived whole. */
  private readonly received: Uint32Array;
  /** Sparse rows: each carries only its structural nonzeros, `nonzeros` in all. */
  private readonly nonzeros: number;
  private total = 0;
  private readonly seen: Uint8Array;
  private readonly coverage: RowCoverage;

  constructor(
    header: JacobianHeader,
    readonly dataStart: number,
  ) {
    this.outputs = places(header.outputs, "output");
    this.inputs = places(header.inputs, "input");
    if (this.inputs.total !== Number(header.total_rows)) throw dataLoss(`the header announces ${header.total_rows} rows but its inputs have ${this.inputs.total} elements`);
    this.received = new Uint32Array(this.inputs.total);
    this.nonzeros = Number(header.nonzeros ?? 0);
    this.seen = new Uint8Array(this.inputs.total);
    this.coverage = new RowCoverage();
  }

  /** Bytes of the whole file: the header's, then O · I values. */
  get size(): number {
    return this.dataStart + this.outputs.total * this.inputs.total * Float64Array.BYTES_PER_ELEMENT;
  }

  /** The byte position and values of every slice of a row, checked against the header. */
  *writes(row: RowValues): Generator<{ position: number; values: Float64Array }> {
    const input = this.inputs.byPath.get(row.input_path);
    if (!input) throw dataLoss(`row for input "${row.input_path}", which the header does not list`);
    if (!Number.isInteger(row.input_index) || row.input_index < 0 || row.input_index >= input.size) {
      throw dataLoss(`row index ${row.input_index} is out of range for input "${row.input_path}" (${input.size} elements)`);
    }
    const column = input.offset + row.input_index;
    // A row with no structural nonzeros still arrives, with no slices.
    this.seen[column] = 1;
    for (const slice of row.slices) {
      const output = this.outputs.byPath.get(slice.output_path);
      if (!output) throw dataLoss(`slice for output "${slice.output_path}", which the header does not list`);
      const base = column * this.outputs.total + output.offset;
      if (slice.indices?.length) {
        yield* this.sparseWrites(slice.indices, slice.values, output, base);
        continue;
      }
      if (slice.offset + slice.values.length > output.size) {
        throw dataLoss(`slice of ${slice.values.length} values at offset ${slice.offset} overruns output "${slice.output_path}" (${output.size} elements)`);
      }
      this.coverage.mark(base, output.size, slice.offset, slice.values.length, () => `row ${row.input_index} of "${row.input_path}", output "${slice.output_path}" at offset ${slice.offset}`);
      this.received[column] += slice.values.length;
      this.total += slice.values.length;
      if (this.received[column] > this.outputs.total) throw dataLoss(`row ${row.input_index} of "${row.input_path}" received ${this.received[column]} values, more than its ${this.outputs.total}`);
      yield { position: this.dataStart + (base + slice.offset) * Float64Array.BYTES_PER_ELEMENT, values: slice.values };
    }
  }

  /** A sparse slice's values in runs of consecutive output indices. */
  private *sparseWrites(indices: readonly number[], values: Float64Array, output: BlockPlace & { size: number }, base: number): Generator<{ position: number; values: Float64Array }> {
    if (indices.length !== values.length) throw dataLoss(`a sparse slice of "${output.path}" has ${indices.length} indices for ${values.length} values`);
    this.total += values.length;
    if (this.total > this.nonzeros) throw dataLoss(`the rows carry more than the ${this.nonzeros} structural nonzeros the header announces (a row or slice twice?)`);
    for (let start = 0, end = 1; start < indices.length; start = end, end = start + 1) {
      if (!(indices[start] >= 0 && indices[start] < output.size)) throw dataLoss(`index ${indices[start]} is out of range for output "${output.path}" (${output.size} elements)`);
      while (end < indices.length && indices[end] === indices[end - 1] + 1 && indices[end] < output.size) end++;
      yield { position: this.dataStart + (base + indices[start]) * Float64Array.BYTES_PER_ELEMENT, values: values.subarray(start, end) };
    }
  }

  /** DATA_LOSS naming the first incomplete row, if any. */
  checkComplete(): void {
    if (this.nonzeros > 0) return this.checkSparseComplete();
    const missing = this.received.findIndex((n) => n !== this.outputs.total);
    if (missing < 0) return;
    const input = [...this.inputs.byPath.values()].find((i) => missing < i.offset + i.size)!;
    const incomplete = this.received.reduce((n, r) => n + (r !== this.outputs.total ? 1 : 0), 0);
    throw dataLoss(`incomplete: ${incomplete} row(s) missing or partial, the first input "${input.path}" at flat index ${missing - input.offset} (${this.received[missing]} of ${this.outputs.total} values)`);
  }

  private checkSparseComplete(): void {
    const missing = this.seen.indexOf(0);
    if (missing >= 0) {
      const input = [...this.inputs.byPath.values()].find((i) => missing < i.offset + i.size)!;
      throw dataLoss(`incomplete: row ${missing - input.offset} of input "${input.path}" is missing`);
    }
    if (this.total !== this.nonzeros) throw dataLoss(`incomplete: the rows carry ${this.total} values, the header announces ${this.nonzeros} structural nonzeros`);
  }
}

/** Why a file cannot be opened for writing, by its error code. */
const UNWRITABLE: Record<string, string> = {
  ENOENT: "its folder does not exist",
  ENOTDIR: "a part of the path is not a folder",
  ENAMETOOLONG: "the name is too long",
  EACCES: "permission denied",
  EISDIR: "it is a folder",
  EROFS: "the file system is read-only",
};

/**
 * Writes the stream into `path` and resolves with the layout and the stats. Each message is written
 * before the next is read, so the call's flow control holds the server back. A file (new, or one
 * there already, through a link too) is written beside it and renamed over it once complete: a call
 * that fails leaves it as it was (a failed call truncated it, then removed it, or the device
 * `--out` named). Anything else (a device, a pipe) is written in place and never removed.
 */
export async function writeJacobianNpy(events: AsyncIterable<JacobianRowsEvent>, path: string): Promise<NpyJacobian> {
  const target = await fs.realpath(path).catch(() => path);
  const existing = await fs.stat(target).catch(() => undefined);
  const inPlace = existing !== undefined && !existing.isFile();
  const writing = inPlace ? target : `${target}.${process.pid}.${randomBytes(4).toString("hex")}.partial`;
  const file = await fs.open(writing, "w").catch((e: NodeJS.ErrnoException) => {
    throw invalidArgument(`--out ${quote(path)} cannot be written: ${UNWRITABLE[e.code ?? ""] ?? e.message}`);
  });
  try {
    let layout: Layout | undefined;
    let stats: EvaluationStats | undefined;
    for await (const event of events) {
      if (stats) throw dataLoss("a message arrived after the stats, which must come last");
      if (event.header) {
        if (layout) throw dataLoss("a second header");
        const header = npyHeader([places(event.header.outputs, "output").total, Number(event.header.total_rows)]);
        layout = new Layout(event.header, header.length);
        await file.write(header, 0, header.length, 0);
      } else if (event.row) {
        if (!layout) throw dataLoss("a row arrived before the header");
        for (const { position, values } of layout.writes(event.row)) {
          await file.write(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 0, values.byteLength, position);
        }
      } else if (event.stats) {
        if (!layout) throw dataLoss("the stats arrived before the header");
        stats = event.stats;
      }
    }
    if (!layout) throw dataLoss("the stream ended without a header");
    if (!stats) throw dataLoss("the stream ended before its stats (incomplete)");
    layout.checkComplete();
    // Sparse rows leave the file's tail unwritten: its full length makes the rest zeros.
    if (!inPlace) await file.truncate(layout.size);
    await file.close();
    if (!inPlace) await fs.rename(writing, target);
    return { path, shape: [layout.outputs.total, layout.inputs.total], outputs: layout.outputs.list, inputs: layout.inputs.list, stats };
  } catch (e) {
    await file.close().catch(() => {});
    // The incomplete copy is removed; that removal failing does not hide why the call failed.
    if (!inPlace) await fs.rm(writing, { force: true }).catch(() => {});
    const code = (e as NodeJS.ErrnoException).code;
    // A write that failed (a full disk) names the file and why, with a status code.
    if (typeof code === "string" && (e as NodeJS.ErrnoException).syscall) {
      throw new TesseractClientError(code === "ENOSPC" || code === "EDQUOT" ? status.RESOURCE_EXHAUSTED : status.UNKNOWN, `--out ${quote(path)} could not be written: ${(e as Error).message}`);
    }
    throw e;
  }
}
