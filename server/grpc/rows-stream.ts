/**
 * JacobianRows: the engine's rows turned into stream messages — header first, each row split so that
 * no message exceeds the budget, stats last — and written with backpressure: when the transport's
 * buffer is full, the producer (and so the engine) waits for 'drain' or cancellation.
 */
import { once } from "node:events";
import type { ServerWritableStream } from "@grpc/grpc-js";
import { Code, TesseractError } from "../../common/errors";
import { MAX_TIMER_MS } from "../../common/transport-defaults";
import type { GradientRequest, JacobianRow, TesseractRuntime } from "../runtime";
import { FramedMessage } from "./framed-messages";
import { encodeRowMessage, type SliceSpec } from "./row-encoding";

/** Upper bounds of the protobuf framing around a row and around each slice (tags, lengths, varints). */
const ROW_OVERHEAD = 32;
const SLICE_OVERHEAD = 64;
/** A packed uint64 index below 2^32 takes at most 5 bytes; the field's own tag and length at most 16. */
const INDEX_BYTES = 5;
const INDICES_OVERHEAD = 16;
/** The smallest budget that still fits a slice of one value next to long paths. */
export const MIN_CHUNK_BYTES = 1024;

/** A message to write: an object for the service's serializer, or a row message already encoded in its frame. */
export type RowsMessage = Record<string, unknown> | FramedMessage;

/**
 * Splits one row into messages of at most `budget` bytes, slices in output order, offsets increasing.
 * A sparse row's slices carry `indices` (and offset 0); an output the row does not touch has no slice.
 * Each message is encoded here (row-encoding.ts): a row is the one message of the stream that comes
 * by the thousand, and encoding it directly copies its values once. A row the stream releases (a
 * worker's results, result-lease.ts) is not copied: each message of one slice sends its values from
 * where they are, and the row is released once its messages are written (jacobianRowsMessages).
 */
export function* rowMessages(row: JacobianRow, outputs: readonly { path: string }[], budget: number): Generator<FramedMessage> {
  const capacity = budget - ROW_OVERHEAD - Buffer.byteLength(row.inputPath);
  let slices: SliceSpec[] = [];
  let used = 0;
  let sent = false;
  const flush = () => {
    sent = true;
    const message = encodeRowMessage(row.inputPath, row.inputIndex, slices, row.release !== undefined);
    slices = [];
    used = 0;
    return message;
  };
  // With error estimates each value travels with its estimate: 16 bytes and a second tensor.
  const bytesPerValue = row.errors ? 16 : 8;
  for (let o = 0; o < row.values.length; o++) {
    const values = row.values[o];
    const path = outputs[o].path;
    const errors = row.errors?.[o];
    const indices = row.indices?.[o];
    const sliceOverhead = SLICE_OVERHEAD * (errors ? 2 : 1) + path.length * 3 + (indices ? INDICES_OVERHEAD : 0);
    const perValue = bytesPerValue + (indices ? INDEX_BYTES : 0);
    for (let offset = 0; offset < values.length; ) {
      const room = Math.floor((capacity - used - sliceOverhead) / perValue);
      if (room < 1) {
        yield flush();
        continue;
      }
      const count = Math.min(room, values.length - offset);
      slices.push({ outputPath: path, offset: indices ? 0 : offset, values, errors, indices, from: offset, count });
      used += sliceOverhead + perValue * count;
      offset += count;
    }
  }
  // Every row is sent, even one with no values (empty outputs), so clients can count rows.
  if (slices.length > 0 || !sent) yield flush();
}

/**
 * Every message of one JacobianRows call, produced lazily, the rows' in the batches the engine
 * computes them in; more than `maxRows` rows (0: any) are refused before any evaluation.
 */
export async function* jacobianRowsMessages(runtime: TesseractRuntime, req: GradientRequest, budget: number, maxRows = 0): AsyncGenerator<RowsMessage | RowsMessage[]> {
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
  for await (const batch of stream.batches) {
    // The first row has told the outputs: the header costs no evaluation of its own.
    if (!outputs && batch.length > 0) yield await header();
    const messages: RowsMessage[] = [];
    for (const row of batch) {
      let last: FramedMessage | undefined;
      for (const message of rowMessages(row, outputs!, budget)) {
        messages.push(message);
        if (message.rest.length > 0) last = message;
      }
      // Its values copied into its messages, or sent from where they are: released once written (in order, so the last).
      if (last) last.written = row.release;
      else row.release?.();
    }
    yield messages;
  }
  if (!outputs) yield await header();
  yield { stats: stream.stats() };
}

/**
 * Writes messages, or batches of them, honouring backpressure: after a write the transport's buffer
 * is full, wait for 'drain'; after a cancel 'drain' never fires, so the signal ends the wait. A
 * reader that takes nothing for `stallMs` (0: no limit) ends the call: it would hold its job slot
 * for as long as it does not read.
 */
export async function writeAll(
  call: ServerWritableStream<unknown, unknown>,
  messages: AsyncIterable<RowsMessage | RowsMessage[]>,
  signal: AbortSignal,
  checkDeadline: () => void,
  stallMs = 0,
): Promise<void> {
  for await (const item of messages) {
    for (const message of Array.isArray(item) ? item : [item]) {
      checkDeadline(); // throws once the call is aborted, or its deadline has passed (calls.ts)
      if (!call.write(message, written(message))) await drained(call, signal, stallMs);
    }
  }
}

/**
 * A message's callback for once it is written. grpc-js calls it only then; the stream, with an error,
 * for a message still in its own buffer when the call ends (one that never reached the transport);
 * a message the transport holds when the call ends is never called back, and its row is left to the
 * collector. (A release takes no arguments: the error, where there is one, changes nothing.)
 */
function written(message: RowsMessage): (() => void) | undefined {
  return message instanceof FramedMessage ? message.written : undefined;
}

async function drained(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal, stallMs: number): Promise<void> {
  if (!(stallMs > 0 && stallMs <= MAX_TIMER_MS)) return void (await once(call, "drain", { signal })); // a longer timer would fire at once
  const waiting = new AbortController();
  // Made when the timer fires, not per wait: an error's stack costs more than the rest of a wait.
  let stalled: TesseractError | undefined;
  const cancelled = () => waiting.abort(signal.reason);
  if (signal.aborted) cancelled();
  signal.addEventListener("abort", cancelled, { once: true });
  const timer = setTimeout(() => {
    stalled = new TesseractError(
      Code.RESOURCE_EXHAUSTED,
      `the reader took no message for ${stallMs} ms, the most this server waits (--stream-stall-ms); the stream ended to free its job slot: read rows as they come, or ask for fewer per call`,
    );
    waiting.abort(stalled);
  }, stallMs);
  try {
    await once(call, "drain", { signal: waiting.signal });
  } catch (e) {
    throw stalled !== undefined && waiting.signal.reason === stalled ? stalled : e;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", cancelled);
  }
}
