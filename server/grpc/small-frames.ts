/**
 * A request message sent in many small DATA frames. grpc-js keeps one Buffer per DATA frame of a
 * message still arriving (a slice of the frame, in its StreamDecoder's readPartialMessage) until the
 * message is whole: about 115 bytes of heap per frame, whatever the frame holds. A 16 MiB message
 * in 1-byte frames held 1.8 GB of heap (2.9 GB RSS, the event loop stopped 6.8 s by the collector),
 * and one of the default 64 MiB limit would take the server past its heap: a crash.
 *
 * Wrapped in BaseServerInterceptingCall's handleDataFrame, once the decoder has taken a frame: a
 * small piece that follows another small one is copied into a stash of STASH_BYTES that stands for
 * both in the list, so that a message keeps one Buffer per STASH_BYTES of small frames and each
 * byte is copied once. Frames of SMALL_BYTES or more (every client's, which frame a message in up
 * to 16 KiB) are left as they are. test/framing.test.ts calls the wrapped method, so a grpc-js
 * upgrade that moves it fails the tests.
 */
import { wrapServerCallMethod } from "./call-internals";

/** A piece under this is copied into its message's stash. */
export const SMALL_BYTES = 1024;
/** The bytes one stash holds (a message in 1-byte frames keeps one Buffer per this many). */
export const STASH_BYTES = 4096;
/** grpc-js's StreamDecoder state while a message's bytes arrive. */
const READING_MESSAGE = 2;

type Decoder = { readState?: number; readPartialMessage?: Buffer[] };
type Call = { decoder?: Decoder };
type HandleDataFrame = (this: Call, data: Buffer) => void;

/** A message's stash: the list it stands in, its bytes, and the view the list holds of them. */
interface Stash {
  list: Buffer[];
  bytes: Buffer;
  filled: number;
  view: Buffer;
}
const stashes = new WeakMap<Decoder, Stash>();

/** Merges the last piece of the message `decoder` (grpc-js's StreamDecoder) is reading into its stash where both are small. */
export function mergeLastPiece(streamDecoder: object): void {
  const decoder = streamDecoder as Decoder;
  const list = decoder.readPartialMessage;
  if (decoder.readState !== READING_MESSAGE || !Array.isArray(list) || list.length < 2) return;
  const last = list[list.length - 1];
  if (last.length >= SMALL_BYTES) return;
  const stash = stashes.get(decoder);
  if (stash && stash.list === list && stash.view === list[list.length - 2] && stash.filled + last.length <= STASH_BYTES) {
    last.copy(stash.bytes, stash.filled);
    stash.filled += last.length;
    list.pop();
    list[list.length - 1] = stash.view = stash.bytes.subarray(0, stash.filled);
    return;
  }
  const previous = list[list.length - 2];
  if (previous.length >= SMALL_BYTES) return;
  // A new stash for the two: the list holds the view of it from now on.
  const bytes = Buffer.allocUnsafe(STASH_BYTES);
  previous.copy(bytes, 0);
  last.copy(bytes, previous.length);
  const filled = previous.length + last.length;
  const view = bytes.subarray(0, filled);
  list.splice(list.length - 2, 2, view);
  stashes.set(decoder, { list, bytes, filled, view });
}

/** Installs the merge once per process; false when this grpc-js has no such method to wrap. */
export function mergeSmallFrames(): boolean {
  return wrapServerCallMethod<HandleDataFrame>("handleDataFrame", (original) =>
    function (data) {
      original.call(this, data);
      if (this.decoder) mergeLastPiece(this.decoder);
    },
  );
}
