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

/**
 * A message already in its frame: the bytes grpc-js would have written for it. A row of a worker's
 * results may leave its values where the worker put them: the frame then holds the message's first
 * bytes, and `tail` (a view of those values) its last; the two are written one after the other.
 */
export class FramedMessage {
  /** Called once the message has been written (its tail is then no longer read): the writer calls it. */
  written?: () => void;

  constructor(
    readonly frame: Buffer,
    readonly tail?: Buffer,
  ) {}

  /** A frame of `messageBytes` bytes of message, its prefix written: the caller writes the message from FRAME_PREFIX_BYTES on, all of it or all but a tail of `tailBytes`. */
  static allocate(messageBytes: number, tailBytes = 0): Buffer {
    // Uninitialised: the caller writes every byte of the message.
    const frame = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + messageBytes - tailBytes);
    frame[0] = 0; // not compressed: grpc-js does not compress responses
    frame.writeUInt32BE(messageBytes, 1);
    return frame;
  }

  /** The message's size in bytes, tail included. */
  get messageBytes(): number {
    return this.frame.length - FRAME_PREFIX_BYTES + (this.tail?.length ?? 0);
  }

  /** The message alone (a view; a copy where it has a tail). */
  get message(): Buffer {
    const head = this.frame.subarray(FRAME_PREFIX_BYTES);
    return this.tail ? Buffer.concat([head, this.tail]) : head;
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
      if (!value.tail) return value.frame;
      // Over the call's limit, the whole message goes to grpc-js, which refuses it before writing anything.
      if (this.maxSendMessageSize !== -1 && value.messageBytes > this.maxSendMessageSize) return Buffer.concat([value.frame, value.tail]);
      // The frame here, then the tail by grpc-js (its callback once both are written): one message on
      // the stream, after the call's headers (sent with its first message, which is never a row).
      this.maybeSendMetadata();
      this.stream.write(value.frame);
      return value.tail;
    },
  );
}
