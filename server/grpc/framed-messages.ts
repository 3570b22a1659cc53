/**
 * Response messages encoded with their gRPC frame (a zero compressed flag and a 4-byte big-endian
 * length, then the message): grpc-js's BaseServerInterceptingCall.serializeMessage frames every
 * message by allocating a buffer 5 bytes longer and copying the message into it. For JacobianRows'
 * rows (185 KB each, by the thousand) that copy was an eighth of the main thread's time while
 * streaming; a row encoded into its frame from the start is sent as it is. Where this grpc-js has
 * no serializeMessage to wrap, the service's serializer hands grpc-js the message part (a view, or
 * its parts joined), and grpc-js frames it as usual. test/framing.test.ts calls the wrapped method, so a grpc-js upgrade
 * that moves it fails the tests.
 */
import { wrapServerCallMethod } from "./call-internals";

export const FRAME_PREFIX_BYTES = 5;

/**
 * A message already in its frame: the bytes grpc-js would have written for it. Big values may stay
 * where they are (a worker's row, a Jacobian's blocks): the frame then holds the message's first
 * bytes, and `rest` the others in order, views of those values among them; all are written one
 * after the other.
 */
export class FramedMessage {
  /** Called once the message has been written (its `rest` is then no longer read): the writer calls it. */
  written?: () => void;

  constructor(
    readonly frame: Buffer,
    readonly rest: readonly Buffer[] = [],
  ) {}

  /** A frame of `messageBytes` bytes of message, its prefix written: the caller writes the message from FRAME_PREFIX_BYTES on, all of it or all but `restBytes` at its end. */
  static allocate(messageBytes: number, restBytes = 0): Buffer {
    // Uninitialised: the caller writes every byte of the message.
    const frame = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + messageBytes - restBytes);
    frame[0] = 0; // not compressed: grpc-js does not compress responses
    frame.writeUInt32BE(messageBytes, 1);
    return frame;
  }

  /** The message's size in bytes, `rest` included. */
  get messageBytes(): number {
    return this.rest.reduce((bytes, part) => bytes + part.length, this.frame.length - FRAME_PREFIX_BYTES);
  }

  /** The message alone (a view; a copy where it has a `rest`). */
  get message(): Buffer {
    const head = this.frame.subarray(FRAME_PREFIX_BYTES);
    return this.rest.length > 0 ? Buffer.concat([head, ...this.rest]) : head;
  }
}

type SerializeMessage = (this: ServerCall, value: unknown) => Buffer;

/** What the pass-through reads of grpc-js's BaseServerInterceptingCall. */
interface ServerCall {
  stream: { write(chunk: Buffer): boolean };
  maxSendMessageSize: number;
  maybeSendMetadata(): void;
}

/** Installs the pass-through once per process; false when this grpc-js has no such method to wrap. */
export function sendFramedMessagesAsTheyAre(): boolean {
  return wrapServerCallMethod<SerializeMessage>("serializeMessage", (original) =>
    function (value) {
      if (!(value instanceof FramedMessage)) return original.call(this, value);
      const { rest } = value;
      if (rest.length === 0) return value.frame;
      // Over the call's limit, the whole message goes to grpc-js, which refuses it before writing anything.
      if (this.maxSendMessageSize !== -1 && value.messageBytes > this.maxSendMessageSize) return Buffer.concat([value.frame, ...rest]);
      // The frame and all but the last part here, the last by grpc-js (its callback once all are
      // written): one message on the stream, after the call's headers (sent with its first message).
      this.maybeSendMetadata();
      this.stream.write(value.frame);
      for (let k = 0; k < rest.length - 1; k++) this.stream.write(rest[k]);
      return rest[rest.length - 1];
    },
  );
}
