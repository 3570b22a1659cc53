/**
 * JacobianRows: the engine's rows turned into stream messages — header first, each row split so that
 * no message exceeds the budget, stats last — and written with backpressure: when the transport's
 * buffer is full, the producer (and so the engine) waits for 'drain' or cancellation.
 */
import { once } from "node:events";
import type { ServerWritableStream } from "@grpc/grpc-js";
import { Code, TesseractError } from "../../common/errors";
import type { GradientRequest, JacobianRow, TesseractRuntime } from "../runtime";
import { fp64Tensor } from "../../common/tensor-codec";

/** Upper bounds of the protobuf framing around a row and around each slice (tags, lengths, varints). */
const ROW_OVERHEAD = 32;
const SLICE_OVERHEAD = 64;
/** A packed uint64 index below 2^32 takes at most 5 bytes; the field's own tag and length at most 16. */
const INDEX_BYTES = 5;
const INDICES_OVERHEAD = 16;
/** The smallest budget that still fits a slice of one value next to long paths. */
export const MIN_CHUNK_BYTES = 1024;

type RowsMessage = Record<string, unknown>;

/**
 * Splits one row into messages of at most `budget` bytes, slices in output order, offsets increasing.
 * A sparse row's slices carry `indices` (and offset 0); an output the row does not touch has no slice.
 */
export function* rowMessages(row: JacobianRow, outputs: readonly { path: string }[], budget: number): Generator<RowsMessage> {
  const capacity = budget - ROW_OVERHEAD - Buffer.byteLength(row.inputPath);
  let slices: Record<string, unknown>[] = [];
  let used = 0;
  let sent = false;
  const flush = () => {
    sent = true;
    const message = { row: { input_path: row.inputPath, input_index: row.inputIndex, slices } };
    slices = [];
    used = 0;
    return message;
  };
  // With error estimates each value travels with its estimate: 16 bytes and a second tensor.
  const bytesPerValue = row.errors ? 16 : 8;
  for (const [o, values] of row.values.entries()) {
    const path = outputs[o].path;
    const errors = row.errors?.[o];
    const indices = row.indices?.[o];
    const sliceOverhead = SLICE_OVERHEAD * (errors ? 2 : 1) + Buffer.byteLength(path) + (indices ? INDICES_OVERHEAD : 0);
    const perValue = bytesPerValue + (indices ? INDEX_BYTES : 0);
    for (let offset = 0; offset < values.length; ) {
      const room = Math.floor((capacity - used - sliceOverhead) / perValue);
      if (room < 1) {
        yield flush();
        continue;
      }
      const take = Math.min(room, values.length - offset);
      const part = (a: Float64Array) => fp64Tensor(a.subarray(offset, offset + take), [take]);
      const slice = { output_path: path, offset: indices ? 0 : offset, values: part(values), error_estimate: errors && part(errors) };
      slices.push(indices ? { ...slice, indices: Array.from(indices.subarray(offset, offset + take)) } : slice);
      used += sliceOverhead + perValue * take;
      offset += take;
    }
  }
  // Every row is sent, even one with no values (empty outputs), so clients can count rows.
  if (slices.length > 0 || !sent) yield flush();
}

/** Every message of one JacobianRows call, produced lazily; more than `maxRows` rows (0: any) are refused before any evaluation. */
export async function* jacobianRowsMessages(runtime: TesseractRuntime, req: GradientRequest, budget: number, maxRows = 0): AsyncGenerator<RowsMessage> {
  const stream = runtime.jacobianRows(req);
  if (maxRows > 0 && stream.totalRows > maxRows) {
    throw new TesseractError(
      Code.RESOURCE_EXHAUSTED,
      `jac_inputs (${stream.inputs.map((l) => l.path).join(", ")}) have ${stream.totalRows} elements: the stream would send ${stream.totalRows} rows, more than this server's limit of ${maxRows} (--max-rows-per-stream); ask for fewer inputs per call`,
    );
  }
  let outputs: { path: string }[] | undefined;
  const header = async () => {
    outputs = await stream.outputs();
    return { header: { inputs: stream.inputs, outputs, total_rows: stream.totalRows, planned_evaluations: stream.plannedEvaluations(), nonzeros: stream.nonzeros() } };
  };
  for await (const row of stream.rows) {
    // The first row has told the outputs: the header costs no evaluation of its own.
    if (!outputs) yield await header();
    yield* rowMessages(row, outputs!, budget);
  }
  if (!outputs) yield await header();
  yield { stats: stream.stats() };
}

/** Writes messages honouring backpressure; after a cancel 'drain' never fires, so the signal ends the wait. */
export async function writeAll(call: ServerWritableStream<unknown, unknown>, messages: AsyncIterable<RowsMessage>, signal: AbortSignal): Promise<void> {
  for await (const message of messages) {
    signal.throwIfAborted();
    if (!call.write(message)) await once(call, "drain", { signal });
  }
}
