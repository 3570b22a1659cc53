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
import { dirname } from "node:path";
import { getSystemErrorMap } from "node:util";
import { invalidArgument, quote } from "../common/errors";
import { status } from "@grpc/grpc-js";
import type { EvaluationStats } from "../generated/tesseract/v1/tesseract";
import { TesseractClientError } from "./errors";
import { StreamCheck, type JacobianRowsEvent, type RowValues } from "./rows";

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

/**
 * Where each value of a checked row goes in the file: runs of consecutive output indices (a dense
 * slice is one), at byte `position`, J being stored in Fortran order (column j = row j of the stream).
 */
function rowWrites(check: StreamCheck, row: RowValues, dataStart: number): { position: number; values: Float64Array }[] {
  const writes: { position: number; values: Float64Array }[] = [];
  check.event({ row }, (slice, at, output, input) => {
    const base = (input.offset + row.input_index) * check.rowLength + output.start;
    const n = slice.values.length;
    for (let start = 0, end = 1; start < n; start = end, end = start + 1) {
      while (end < n && at(end) === at(end - 1) + 1) end++;
      writes.push({ position: dataStart + (base + at(start)) * Float64Array.BYTES_PER_ELEMENT, values: slice.values.subarray(start, end) });
    }
  });
  return writes;
}

/** Why a file cannot be opened for writing, by its error code, where the errno's own words say less. */
const UNWRITABLE: Record<string, string> = {
  ENOTDIR: "a part of the path is not a folder",
  ENAMETOOLONG: "the name is too long",
  EISDIR: "it is a folder",
};

/**
 * Why `target` (or the file written beside it, when not `inPlace`) could not be opened: the
 * error's meaning and code, its folder named where the file is created in it. ENOENT is "its folder
 * does not exist" only where it does not: procfs, for one, refuses a new file with ENOENT.
 */
async function whyUnwritable(e: NodeJS.ErrnoException, target: string, inPlace: boolean): Promise<string> {
  const code = e.code ?? "";
  const meaning = typeof e.errno === "number" ? getSystemErrorMap().get(e.errno)?.[1] : undefined;
  if (!code || !meaning) return e.message;
  const folder = dirname(target);
  if (code === "ENOENT" && !inPlace) {
    const exists = await fs.stat(folder).then((s) => s.isDirectory(), () => false);
    if (!exists) return "its folder does not exist";
    return `no file can be created in its folder ${quote(folder)} (${code}: ${meaning})`;
  }
  if (UNWRITABLE[code]) return `${UNWRITABLE[code]} (${code}: ${meaning})`;
  return `${meaning}${inPlace ? "" : ` creating a file in its folder ${quote(folder)}`} (${code})`;
}

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
  const file = await fs.open(writing, "w").catch(async (e: NodeJS.ErrnoException) => {
    throw invalidArgument(`--out ${quote(path)} cannot be written: ${await whyUnwritable(e, target, inPlace)}`);
  });
  try {
    // The stream's checks are assembleJacobian's (rows.ts): every row once and whole, no value twice, stats last.
    const check = new StreamCheck();
    let dataStart = 0;
    for await (const event of events) {
      if (event.row && check.header && !check.stats) {
        for (const { position, values } of rowWrites(check, event.row, dataStart)) {
          await file.write(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 0, values.byteLength, position);
        }
        continue;
      }
      check.event(event, () => {});
      if (event.header) {
        const header = npyHeader([check.rowLength, check.totalRows]);
        dataStart = header.length;
        await file.write(header, 0, header.length, 0);
      }
    }
    const { stats } = check.end();
    const size = dataStart + check.rowLength * check.totalRows * Float64Array.BYTES_PER_ELEMENT;
    // Sparse rows leave the file's tail unwritten: its full length makes the rest zeros.
    if (!inPlace) await file.truncate(size);
    await file.close();
    if (!inPlace) await fs.rename(writing, target);
    return {
      path,
      shape: [check.rowLength, check.totalRows],
      outputs: [...check.outputs.values()].map((o) => ({ path: o.path, shape: o.shape, offset: o.start })),
      inputs: [...check.inputs.values()].map((i) => ({ path: i.path, shape: i.shape, offset: i.offset })),
      stats,
    };
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
