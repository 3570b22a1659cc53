/**
 * Response messages encoded with their gRPC frame (a zero compressed flag and a 4-byte big-endian
 * length, then the message): grpc-js's BaseServerInterceptingCall.serializeMessage frames every
 * message by allocating a buffer 5 bytes longer and copying the message into it. For JacobianRows'
 * rows (185 KB each, by the thousand) that copy was an eighth of the main thread's time while
 * streaming; a row encoded into its frame from the start is sent as it is. Where this grpc-js has
 * no serializeMessage to wrap, the service's serializer hands grpc-js the message part (a view), and
 * grpc-js frames it as usual. test/framing.test.ts calls the wrapped method, so a grpc-js upgrade
 * that moves it fails the tests.
 */
import { wrapServerCallMethod } from "./call-internals";

export const FRAME_PREFIX_BYTES = 5;

/** A message already in its frame: the bytes grpc-js would have written for it. */
export class FramedMessage {
  constructor(readonly frame: Buffer) {}

  /** A frame of `messageBytes` bytes of message, its prefix written: the caller writes the message from FRAME_PREFIX_BYTES on. */
  static allocate(messageBytes: number): FramedMessage {
    // Uninitialised: the caller writes every byte of the message.
    const frame = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + messageBytes);
    frame[0] = 0; // not compressed: grpc-js does not compress responses
    frame.writeUInt32BE(messageBytes, 1);
    return new FramedMessage(frame);
  }

  /** The message alone (a view). */
  get message(): Buffer {
    return this.frame.subarray(FRAME_PREFIX_BYTES);
  }
}

type SerializeMessage = (this: unknown, value: unknown) => Buffer;

/** Installs the pass-through once per process; false when this grpc-js has no such method to wrap. */
export function sendFramedMessagesAsTheyAre(): boolean {
  return wrapServerCallMethod<SerializeMessage>("serializeMessage", (original) =>
    function (value) {
      return value instanceof FramedMessage ? value.frame : original.call(this, value);
    },
  );
}
