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
  constructor(
    readonly frame: Buffer,
    /** Where the frame goes back once written (`written`), to carry a later message. */
    private readonly pool?: FramePool,
  ) {}

  /**
   * A frame of `messageBytes` bytes of message, its prefix written: the caller writes the message
   * from FRAME_PREFIX_BYTES on. From `pool` when it has a written frame of that size.
   */
  static allocate(messageBytes: number, pool?: FramePool): FramedMessage {
    // Uninitialised: the caller writes every byte of the message.
    const frame = pool?.take(FRAME_PREFIX_BYTES + messageBytes) ?? Buffer.allocUnsafe(FRAME_PREFIX_BYTES + messageBytes);
    frame[0] = 0; // not compressed: grpc-js does not compress responses
    frame.writeUInt32BE(messageBytes, 1);
    return new FramedMessage(frame, pool);
  }

  /** The transport has written the frame (its write's callback, without error): the pool may use it again. */
  written(): void {
    this.pool?.give(this.frame);
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

/**
 * One stream's written frames, used again for its later messages of the same size. A buffer per
 * row (185 KB, by the thousand) is memory outside V8's heap whose pace made the main thread collect
 * its young generation every few rows and its old one now and then (heat n = 23 200 under one
 * worker: about 500 young and 30 full collections for 23 200 rows, 6 with the frames used again). A frame
 * comes back only once the transport's write of it has completed (the bytes are in the socket):
 * until then HTTP/2 reads from it. Frames under MIN_POOLED_BYTES come from Node's own buffer pool
 * anyway; at most MAX_FREE_BYTES wait here, and they go with the stream.
 */
export class FramePool {
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;

  take(bytes: number): Buffer | undefined {
    const frames = this.free.get(bytes);
    const frame = frames?.pop();
    if (frame) this.freeBytes -= bytes;
    return frame;
  }

  give(frame: Buffer): void {
    if (frame.length < MIN_POOLED_BYTES || this.freeBytes + frame.length > MAX_FREE_BYTES) return;
    const frames = this.free.get(frame.length);
    if (frames) frames.push(frame);
    else this.free.set(frame.length, [frame]);
    this.freeBytes += frame.length;
  }
}
const MIN_POOLED_BYTES = 16 << 10;
const MAX_FREE_BYTES = 8 << 20;
