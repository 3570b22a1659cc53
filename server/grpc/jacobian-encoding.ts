/**
 * The unary Jacobian's answer (JacobianResponse) in its gRPC frame, its blocks' values sent from where
 * the engine computed them: the frame holds the fields up to the first block's values, then come that
 * block's values (a view), the fields up to the next block's, and so on (framed-messages.ts). The
 * service's serializer copied a 62.7 MB answer into a buffer of its own and the frame copied it again,
 * 200-270 ms each on this project's 2-core machines (the page faults of a fresh 63 MB buffer, most of
 * it), two more buffers of its size held while it was sent. Its size is known before anything is
 * written, so an answer over the message limit is refused without being encoded.
 *
 * Fields in number order, defaults left out, as proto3 encoders write them: what any decoder reads
 * (test/jacobian-encoding.test.ts decodes it with the generated code).
 */
import { EvaluationStats } from "../../generated/tesseract/v1/tesseract";
import type { TensorWire } from "../../common/tensor-codec";
import { FramedMessage } from "./framed-messages";
import { fieldSize, MessageWriter, TAG_DATA, TAG_DATATYPE, TAG_SHAPE, varintSize } from "./message-writer";

/** The answer as the Jacobian handler makes it: entries whose tensors view the engine's results, and the stats. */
export interface JacobianAnswer {
  entries: readonly { output_path: string; input_path: string; value?: TensorWire; error_estimate?: TensorWire }[];
  stats?: Partial<EvaluationStats>;
}

/** Wire types and field numbers, as tags. */
const TAG_ENTRY = (1 << 3) | 2; // JacobianResponse.entries
const TAG_STATS = (2 << 3) | 2; // JacobianResponse.stats
const TAG_OUTPUT_PATH = (1 << 3) | 2; // JacobianEntry.output_path
const TAG_INPUT_PATH = (2 << 3) | 2; // JacobianEntry.input_path
const TAG_VALUE = (3 << 3) | 2; // JacobianEntry.value
const TAG_ERROR_ESTIMATE = (4 << 3) | 2; // JacobianEntry.error_estimate

/** An answer's size, and its encoding into a frame of exactly that size. */
export interface SizedAnswer {
  bytes: number;
  encode(): FramedMessage;
}

/** `answer` sized; its encoding, on demand, sends each tensor's values as they are: they must stay so until it is written. */
export function sizedJacobianAnswer(answer: JacobianAnswer): SizedAnswer {
  const stats = answer.stats && EvaluationStats.encode(EvaluationStats.fromPartial(answer.stats)).finish();
  const entries = answer.entries.map((entry) => {
    const paths = [entry.output_path, entry.input_path].map((path) => Buffer.byteLength(path));
    const tensors = [entry.value, entry.error_estimate].map((tensor) => tensor && { tensor, shapeBytes: shapeSize(tensor.shape) });
    let bytes = 0;
    for (const pathBytes of paths) if (pathBytes > 0) bytes += fieldSize(pathBytes);
    for (const t of tensors) if (t) bytes += fieldSize(tensorSize(t.tensor, t.shapeBytes));
    return { entry, paths, tensors, bytes };
  });
  let bytes = stats ? fieldSize(stats.length) : 0;
  let valueBytes = 0;
  for (const e of entries) {
    bytes += fieldSize(e.bytes);
    for (const t of e.tensors) valueBytes += t?.tensor.data.length ?? 0;
  }
  const encode = () => {
    const out = new MessageWriter(FramedMessage.allocate(bytes, valueBytes));
    // The frame, then each tensor's values and the fields between them.
    const parts: Buffer[] = [];
    let cut = 0;
    for (const { entry, paths, tensors, bytes: entryBytes } of entries) {
      out.varintField(TAG_ENTRY, entryBytes);
      if (paths[0] > 0) out.string(TAG_OUTPUT_PATH, entry.output_path, paths[0]);
      if (paths[1] > 0) out.string(TAG_INPUT_PATH, entry.input_path, paths[1]);
      tensors.forEach((t, k) => {
        if (!t) return;
        const { datatype, shape, data } = t.tensor;
        out.varintField(k === 0 ? TAG_VALUE : TAG_ERROR_ESTIMATE, tensorSize(t.tensor, t.shapeBytes));
        if (datatype !== 0) out.varintField(TAG_DATATYPE, datatype);
        if (shape.length > 0) {
          out.varintField(TAG_SHAPE, t.shapeBytes);
          for (const extent of shape) out.varint(extent);
        }
        if (data.length === 0) return;
        out.varintField(TAG_DATA, data.length);
        parts.push(out.buffer.subarray(cut, out.at), Buffer.from(data.buffer, data.byteOffset, data.length));
        cut = out.at;
      });
    }
    if (stats) {
      out.varintField(TAG_STATS, stats.length);
      out.raw(stats);
    }
    out.checkWritten("Jacobian answer");
    if (out.at > cut || parts.length === 0) parts.push(out.buffer.subarray(cut, out.at));
    return new FramedMessage(parts[0], parts.slice(1));
  };
  return { bytes, encode };
}

/** A Tensor message's bytes, its data included. */
function tensorSize({ datatype, shape, data }: TensorWire, shapeBytes: number): number {
  return (datatype !== 0 ? 1 + varintSize(datatype) : 0) + (shape.length > 0 ? fieldSize(shapeBytes) : 0) + (data.length > 0 ? fieldSize(data.length) : 0);
}

/** A shape's packed extents; the engine's are whole numbers from 0 to 2^53. */
function shapeSize(shape: readonly number[]): number {
  let bytes = 0;
  for (const extent of shape) {
    if (!(Number.isSafeInteger(extent) && extent >= 0)) throw new Error(`a Jacobian block's shape has the extent ${extent}`);
    bytes += varintSize(extent);
  }
  return bytes;
}
