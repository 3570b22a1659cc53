/**
 * Unary answers that carry big arrays, written into their gRPC frame with those arrays sent as they
 * are: the Jacobian's blocks (JacobianResponse) and Apply's outputs message (ApplyResponse). The
 * frame holds the fields up to the first big array, then come that array (a view), the fields up to
 * the next, and so on (framed-messages.ts); arrays under SEND_AS_IS_BYTES are copied into the frame,
 * which spares a write each. The service's serializer copied a 62.7 MB Jacobian into a buffer of its
 * own and the frame copied it again, 200-270 ms each on this project's 2-core machines (the page
 * faults of a fresh 63 MB buffer, most of it), two more buffers of its size held while it was sent.
 * An answer's size is known before anything is written, so one over the message limit is refused
 * without being encoded.
 *
 * Fields in number order, defaults left out, as proto3 encoders write them: what any decoder reads
 * (test/answer-encoding.test.ts decodes both with the generated code, against the serializer's).
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

/** Arrays of at least this many bytes are sent as they are; smaller ones are copied into the frame. */
export const SEND_AS_IS_BYTES = 64 << 10;

/** Apply's answer as the handler makes it: the outputs message, packed in an Any. */
export interface ApplyAnswer {
  outputs?: { type_url: string; value: Uint8Array };
}

const TAG_OUTPUTS = (1 << 3) | 2; // ApplyResponse.outputs
const TAG_TYPE_URL = (1 << 3) | 2; // google.protobuf.Any.type_url
const TAG_ANY_VALUE = (2 << 3) | 2; // google.protobuf.Any.value

/** `answer` sized; its encoding, on demand, sends a big outputs message as it is: it must stay so until written. */
export function sizedApplyAnswer({ outputs }: ApplyAnswer): SizedAnswer {
  if (!outputs) return { bytes: 0, encode: () => new FramedMessage(FramedMessage.allocate(0)) };
  const urlBytes = Buffer.byteLength(outputs.type_url);
  const { value } = outputs;
  const anyBytes = (urlBytes > 0 ? fieldSize(urlBytes) : 0) + (value.length > 0 ? fieldSize(value.length) : 0);
  const bytes = fieldSize(anyBytes);
  const encode = () => {
    const parts = new Parts(bytes, value.length >= SEND_AS_IS_BYTES ? value.length : 0);
    parts.out.varintField(TAG_OUTPUTS, anyBytes);
    if (urlBytes > 0) parts.out.string(TAG_TYPE_URL, outputs.type_url, urlBytes);
    if (value.length > 0) {
      parts.out.varintField(TAG_ANY_VALUE, value.length);
      parts.array(value);
    }
    return parts.done("Apply answer");
  };
  return { bytes, encode };
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
  let sentAsIs = 0;
  for (const e of entries) {
    bytes += fieldSize(e.bytes);
    for (const t of e.tensors) if (t && t.tensor.data.length >= SEND_AS_IS_BYTES) sentAsIs += t.tensor.data.length;
  }
  const encode = () => {
    const parts = new Parts(bytes, sentAsIs);
    const { out } = parts;
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
        parts.array(data);
      });
    }
    if (stats) {
      out.varintField(TAG_STATS, stats.length);
      out.raw(stats);
    }
    return parts.done("Jacobian answer");
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

/** A message's frame and the arrays sent as they are, in order, with the fields between them. */
class Parts {
  readonly out: MessageWriter;
  private readonly parts: Buffer[] = [];
  /** Where the fields written since the last array sent as it is begin. */
  private cut = 0;

  /** `sentAsIs`: the bytes of the arrays `array` will not copy. */
  constructor(messageBytes: number, sentAsIs: number) {
    this.out = new MessageWriter(FramedMessage.allocate(messageBytes, sentAsIs));
  }

  /** An array's bytes: copied in when small, else sent as they are after the fields before them. */
  array(data: Uint8Array): void {
    if (data.length < SEND_AS_IS_BYTES) return this.out.raw(data);
    this.parts.push(this.out.buffer.subarray(this.cut, this.out.at), Buffer.from(data.buffer, data.byteOffset, data.length));
    this.cut = this.out.at;
  }

  done(what: string): FramedMessage {
    this.out.checkWritten(what);
    if (this.out.at > this.cut || this.parts.length === 0) this.parts.push(this.out.buffer.subarray(this.cut, this.out.at));
    return new FramedMessage(this.parts[0], this.parts.slice(1));
  }
}
