/**
 * Protobuf messages written straight into their gRPC frame (framed-messages.ts), their size known
 * first: the writers of the messages that carry big arrays (row-encoding.ts, answer-encoding.ts).
 * Tags of one byte (field numbers up to 15), as those messages have.
 */
import { FRAME_PREFIX_BYTES } from "./framed-messages";

/** Bytes of a non-negative integer (at most 2^53) as a varint. */
export function varintSize(value: number): number {
  let size = 1;
  for (; value >= 128; size++) value = Math.floor(value / 128);
  return size;
}

/** A length-delimited field of `length` bytes, with its one-byte tag and its length prefix. */
export const fieldSize = (length: number) => 1 + varintSize(length) + length;

/** Tensor's fields (tesseract.v1.Tensor), as tags. */
export const TAG_DATATYPE = (1 << 3) | 0;
export const TAG_SHAPE = (2 << 3) | 2; // packed
export const TAG_DATA = (3 << 3) | 2;

/** Writes fields into a frame sized for them beforehand (uninitialised: `checkWritten` checks that every byte was). */
export class MessageWriter {
  /** Where the next byte goes. */
  at = FRAME_PREFIX_BYTES;

  constructor(readonly buffer: Buffer) {}

  varint(value: number): void {
    for (; value >= 128; value = Math.floor(value / 128)) this.buffer[this.at++] = (value % 128) | 128;
    this.buffer[this.at++] = value;
  }

  /** A varint field, or a length-delimited field's tag and length. */
  varintField(tag: number, value: number): void {
    this.buffer[this.at++] = tag;
    this.varint(value);
  }

  string(tag: number, value: string, bytes: number): void {
    this.varintField(tag, bytes);
    this.at += this.buffer.write(value, this.at);
  }

  /** Bytes copied in as they are. */
  raw(bytes: Uint8Array): void {
    this.buffer.set(bytes, this.at);
    this.at += bytes.length;
  }

  checkWritten(what: string): void {
    if (this.at !== this.buffer.length) throw new Error(`${what}: ${this.at} bytes written, ${this.buffer.length} sized`);
  }
}
