/**
 * One JacobianRowsResponse row message, encoded straight into a buffer of its exact size: the sizes
 * first (every field's is known from the row), then one pass that copies the values once. The
 * generated encoder's BinaryWriter copies a row's values five times — into its buffer, again for
 * each of the three nested messages whose length prefix outgrows the byte it reserved (row, slice,
 * tensor), and out of it (`finish`): a dense heat row of 185 KB took 28-47 µs that way, 22-23 here
 * (most of it allocating the message), a row of 6 values 1.6-2.5 µs against 0.8-1.8. The bytes are
 * exactly the generated encoder's (test/row-encoding.test.ts): fields in number order, defaults left out.
 *
 * A message of one slice without estimates or indices ends with its values: asked to, the encoder
 * leaves them where they are, as the rest of the message (framed-messages.ts), and copies nothing. A
 * worker's row (185 KB of memory another core wrote) cost the main thread its copy and the page
 * faults of a fresh buffer, a quarter of its time streaming dense heat rows.
 */
import { DataType } from "../../common/tensor-codec";
import { FramedMessage } from "./framed-messages";
import { fieldSize, MessageWriter, TAG_DATA, TAG_DATATYPE, TAG_SHAPE, varintSize } from "./message-writer";

/** Values `from` to `from + count` of one output, as one RowSlice. */
export interface SliceSpec {
  outputPath: string;
  offset: number;
  /** The output's values in this row (all of them: the slice takes `from` to `from + count`). */
  values: Float64Array;
  errors?: Float64Array;
  /** A sparse row's flat indices of the output's values (the slice takes the same range). */
  indices?: ArrayLike<number>;
  from: number;
  count: number;
}

/** Wire types and field numbers, as tags. */
const TAG_ROW = (2 << 3) | 2; // JacobianRowsResponse.row
const TAG_PATH = (1 << 3) | 2; // JacobianRow.input_path, RowSlice.output_path
const TAG_INDEX = (2 << 3) | 0; // JacobianRow.input_index, RowSlice.offset
const TAG_SLICE = (3 << 3) | 2; // JacobianRow.slices, RowSlice.values
const TAG_ERRORS = (4 << 3) | 2; // RowSlice.error_estimate
const TAG_INDICES = (5 << 3) | 2; // RowSlice.indices (packed)

/** An FP64 Tensor of `count` values, shape [count] (its datatype, 11, takes one byte). */
function tensorSize(count: number): number {
  return 2 + fieldSize(varintSize(count)) + (count > 0 ? fieldSize(8 * count) : 0);
}

function sliceSize(slice: SliceSpec, pathBytes: number): number {
  let size = (pathBytes > 0 ? fieldSize(pathBytes) : 0) + (slice.offset !== 0 ? 1 + varintSize(slice.offset) : 0) + fieldSize(tensorSize(slice.count));
  if (slice.errors) size += fieldSize(tensorSize(slice.count));
  if (slice.indices && slice.count > 0) size += fieldSize(indicesSize(slice));
  return size;
}

function indicesSize({ indices, from, count }: SliceSpec): number {
  let size = 0;
  for (let k = from; k < from + count; k++) size += varintSize(indices![k]);
  return size;
}

/**
 * The message `{ row: { input_path, input_index, slices } }`, in its gRPC frame of exactly its size
 * (framed-messages.ts); with `valuesAsTail`, a message of one slice without estimates or indices
 * keeps that slice's values as the rest of the message, a view (its values must then stay as they are until it is written).
 */
export function encodeRowMessage(inputPath: string, inputIndex: number, slices: readonly SliceSpec[], valuesAsTail = false): FramedMessage {
  const pathBytes = Buffer.byteLength(inputPath);
  const outputBytes = slices.map((s) => Buffer.byteLength(s.outputPath));
  const sliceSizes = slices.map((s, k) => sliceSize(s, outputBytes[k]));
  let rowSize = (pathBytes > 0 ? fieldSize(pathBytes) : 0) + (inputIndex !== 0 ? 1 + varintSize(inputIndex) : 0);
  for (const size of sliceSizes) rowSize += fieldSize(size);
  const only = slices.length === 1 ? slices[0] : undefined;
  const tail = valuesAsTail && only && !only.errors && !only.indices && only.count > 0 ? only : undefined;
  const out = new Writer(FramedMessage.allocate(fieldSize(rowSize), tail ? 8 * tail.count : 0), tail);
  out.varintField(TAG_ROW, rowSize);
  if (pathBytes > 0) out.string(TAG_PATH, inputPath, pathBytes);
  if (inputIndex !== 0) out.varintField(TAG_INDEX, inputIndex);
  slices.forEach((slice, k) => {
    out.varintField(TAG_SLICE, sliceSizes[k]);
    if (outputBytes[k] > 0) out.string(TAG_PATH, slice.outputPath, outputBytes[k]);
    if (slice.offset !== 0) out.varintField(TAG_INDEX, slice.offset);
    out.tensor(TAG_SLICE, slice.values, slice.from, slice.count);
    if (slice.errors) out.tensor(TAG_ERRORS, slice.errors, slice.from, slice.count);
    if (slice.indices && slice.count > 0) {
      out.varintField(TAG_INDICES, indicesSize(slice));
      for (let i = slice.from; i < slice.from + slice.count; i++) out.varint(slice.indices[i]);
    }
  });
  return out.done();
}

/** The bytes of `count` values from `from` on, as a view. */
const bytesOf = (values: Float64Array, from: number, count: number) => Buffer.from(values.buffer, values.byteOffset + 8 * from, 8 * count);

/** The row's writer: an FP64 tensor's values copied once, or left to the message's last part. */
class Writer extends MessageWriter {
  /** `tail`: the slice whose values are the message's last part, not written here. */
  constructor(
    buffer: Buffer,
    private readonly tail?: SliceSpec,
  ) {
    super(buffer);
  }

  /** An FP64 Tensor of values `from` to `from + count`. */
  tensor(tag: number, values: Float64Array, from: number, count: number): void {
    this.varintField(tag, tensorSize(count));
    this.varintField(TAG_DATATYPE, DataType.DATA_TYPE_FP64);
    this.varintField(TAG_SHAPE, varintSize(count));
    this.varint(count);
    if (count === 0) return;
    this.varintField(TAG_DATA, 8 * count);
    if (this.tail?.values !== values) this.raw(bytesOf(values, from, count));
  }

  done(): FramedMessage {
    this.checkWritten("row message");
    return new FramedMessage(this.buffer, this.tail ? [bytesOf(this.tail.values, this.tail.from, this.tail.count)] : []);
  }
}
