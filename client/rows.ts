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

/** Part of one output's values in a row; `values[p]` is d output[offset + p] / d input[input_index]. */
export interface RowSliceValues {
  output_path: string;
  offset: number;
  /** A view of the message's bytes (not a copy): copy it if you keep it beyond the loop. */
  values: Float64Array;
  /** Estimated absolute error of each value, for Richardson and adaptive. */
  error_estimate?: Float64Array;
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
}

interface OutputInfo {
  shape: number[];
  size: number;
}

/**
 * Assembles a JacobianRows stream into `{ jacobian, stats }`, the result of the unary `jacobian()`.
 * Each slice value lands at flat position (offset + p) * inputSize + input_index of the (*out, *in)
 * array. The stream must be complete: a header first, every value of every row exactly once, stats
 * last; anything else rejects with DATA_LOSS naming what is wrong.
 */
export async function assembleJacobian(events: AsyncIterable<JacobianRowsEvent> | Iterable<JacobianRowsEvent>): Promise<JacobianResult> {
  let header: JacobianHeader | undefined;
  let stats: EvaluationStats | undefined;
  const inputs = new Map<string, InputInfo>();
  const outputs = new Map<string, OutputInfo>();
  const jacobian: NestedJacobian = {};
  let errorEstimate: NestedJacobian | undefined;
  /** Values one complete row holds: the sum of the output sizes. */
  let rowLength = 0;

  for await (const event of events) {
    if (stats) throw dataLoss("a message arrived after the stats, which must come last");
    if (event.header) {
      if (header) throw dataLoss("a second header");
      header = event.header;
      for (const o of header.outputs) {
        if (outputs.has(o.path)) throw dataLoss(`output "${o.path}" appears twice in the header`);
        outputs.set(o.path, { shape: o.shape.slice(), size: elementCount(o.shape) });
        rowLength += elementCount(o.shape);
      }
      let rows = 0;
      for (const i of header.inputs) {
        if (inputs.has(i.path)) throw dataLoss(`input "${i.path}" appears twice in the header`);
        const size = elementCount(i.shape);
        inputs.set(i.path, { shape: i.shape.slice(), size, received: new Float64Array(size) });
        rows += size;
      }
      if (rows !== header.total_rows) throw dataLoss(`the header announces ${header.total_rows} rows but its inputs have ${rows} elements`);
      for (const [outPath, o] of outputs) {
        jacobian[outPath] = {};
        for (const [inPath, i] of inputs) {
          jacobian[outPath][inPath] = ndarray(new Float64Array(o.size * i.size), [...o.shape, ...i.shape]);
        }
      }
    } else if (event.row) {
      if (!header) throw dataLoss("a row arrived before the header");
      const { input_path, input_index, slices } = event.row;
      const input = inputs.get(input_path);
      if (!input) throw dataLoss(`row for input "${input_path}", which the header does not list`);
      if (!Number.isInteger(input_index) || input_index < 0 || input_index >= input.size) {
        throw dataLoss(`row index ${input_index} is out of range for input "${input_path}" (${input.size} elements)`);
      }
      for (const slice of slices) {
        const output = outputs.get(slice.output_path);
        if (!output) throw dataLoss(`slice for output "${slice.output_path}", which the header does not list`);
        const { offset, values } = slice;
        if (offset + values.length > output.size) {
          throw dataLoss(`slice of ${values.length} values at offset ${offset} overruns output "${slice.output_path}" (${output.size} elements)`);
        }
        const place = (into: NestedJacobian, from: Float64Array) => {
          const target = into[slice.output_path][input_path].data;
          for (let p = 0, k = offset * input.size + input_index; p < from.length; p++, k += input.size) target[k] = from[p];
        };
        place(jacobian, values);
        if (slice.error_estimate) place((errorEstimate ??= zerosLike(jacobian)), slice.error_estimate);
        input.received[input_index] += values.length;
      }
      if (input.received[input_index] > rowLength) {
        throw dataLoss(`row ${input_index} of "${input_path}" received ${input.received[input_index]} values, more than its ${rowLength}`);
      }
    } else if (event.stats) {
      if (!header) throw dataLoss("the stats arrived before the header");
      stats = event.stats;
    }
  }

  if (!header) throw dataLoss("the stream ended without a header");
  if (!stats) throw dataLoss("the stream ended before its stats (incomplete)");
  for (const [path, input] of inputs) {
    const missing = input.received.findIndex((n) => n !== rowLength);
    if (missing >= 0) {
      const incomplete = input.received.reduce((n, r) => n + (r !== rowLength ? 1 : 0), 0);
      throw dataLoss(`incomplete: ${incomplete} row(s) of input "${path}" missing or partial, the first at flat index ${missing} (${input.received[missing]} of ${rowLength} values)`);
    }
  }
  return new JacobianResult(jacobian, errorEstimate, stats);
}

/** A nested Jacobian of zeros with the same paths and shapes. */
function zerosLike(jacobian: NestedJacobian): NestedJacobian {
  return Object.fromEntries(
    Object.entries(jacobian).map(([out, byInput]) => [out, Object.fromEntries(Object.entries(byInput).map(([inp, a]) => [inp, ndarray(new Float64Array(a.size), a.shape.slice())]))]),
  );
}
