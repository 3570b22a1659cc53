/**
 * Bytes a stream holds for a peer that does not move them. grpc-js keeps a request message's bytes
 * until the whole message has come (one connection held 20 streams × 60 MiB of never-finished
 * messages, 1.2 GB, for good), and an answer queues until the client's window takes it (ten heat
 * Jacobians of 61 MB each stayed queued for good under a window of 0; under a memory limit the
 * server died). A session watcher (http2-sessions.ts) bounds both, server-wide:
 * - unfinished request messages hold at most the budget: the stream whose bytes would pass it ends
 *   with RESOURCE_EXHAUSTED (the client may try again), and so does one whose message stops
 *   arriving for `stallMs`. (Holding such streams back instead, unread, let one slow stream hold
 *   every other up for good.)
 * - answers not taken: where the answer bytes of streams whose connections moved none for STUCK_MS
 *   pass the budget, the longest stuck are reset; any stuck for 2 × `stallMs` is reset too. A
 *   connection that sends bytes moves its streams' answers: one large write stays whole in a
 *   stream's queue until it has all gone, however steadily its client reads it. (JacobianRows ends
 *   its own call after `stallMs` with RESOURCE_EXHAUSTED, queued behind its rows: a client that
 *   reads again within as long again still gets that status.)
 * A stream that has sent headers cannot be given a status before the bytes queued ahead of it, so
 * it is reset (CANCEL); one that has not gets RESOURCE_EXHAUSTED saying why.
 */
import * as http2 from "node:http2";
import type { SessionWatcher } from "./http2-sessions";

/** gRPC's frame: a compressed flag and a 4-byte big-endian length before each message. */
const PREFIX_BYTES = 5;

/** The bytes held each way, all streams together, per byte of the message limit. */
export const HELD_MESSAGES_PER_LIMIT = 8;

/** An answer whose connection has moved no bytes for this long is stuck (a reader's pause shorter than this is not). */
const STUCK_MS = 1000;

/** One stream's unfinished request message, its queued answer bytes, and when either last moved. */
export class Watched {
  private readonly prefix = Buffer.alloc(PREFIX_BYTES);
  private prefixRead = 0;
  /** Body bytes of the message being read still to come. */
  private remaining = 0;
  /** Bytes of the unfinished message held now (prefix and body so far). */
  held = 0;
  /** The answer bytes queued at the last look, and its connection's bytes written then. */
  queued = 0;
  private written = 0;
  movedAt = performance.now();

  constructor(readonly stream: http2.ServerHttp2Stream) {}

  /** Reads a chunk's frames; returns how `held` changed. */
  received(chunk: Buffer): number {
    const before = this.held;
    this.movedAt = performance.now();
    for (let i = 0; i < chunk.length; ) {
      const take = Math.min(this.prefixRead < PREFIX_BYTES ? PREFIX_BYTES - this.prefixRead : this.remaining, chunk.length - i);
      if (this.prefixRead < PREFIX_BYTES) {
        chunk.copy(this.prefix, this.prefixRead, i, i + take);
        this.prefixRead += take;
        if (this.prefixRead === PREFIX_BYTES) this.remaining = this.prefix.readUInt32BE(1);
      } else this.remaining -= take;
      this.held += take;
      i += take;
      if (this.prefixRead === PREFIX_BYTES && this.remaining === 0) {
        // Whole: grpc-js decodes it and lets its bytes go.
        this.held = 0;
        this.prefixRead = 0;
      }
    }
    return this.held - before;
  }

  /**
   * Looks at the answer's queue: a change in it, or bytes its connection wrote, is progress; with
   * nothing held either way the clock starts again.
   */
  look(now: number): void {
    const queued = this.stream.writableLength;
    const written = this.stream.session?.socket?.bytesWritten ?? 0;
    if (queued !== this.queued || written !== this.written || (this.held === 0 && queued === 0)) this.movedAt = now;
    this.queued = queued;
    this.written = written;
  }
}

/** Ends `stream` saying `why`: RESOURCE_EXHAUSTED where its answer has not begun, else a reset. */
function end(stream: http2.ServerHttp2Stream, why: string): void {
  if (stream.destroyed || stream.closed) return;
  try {
    if (stream.headersSent) return void stream.close(http2.constants.NGHTTP2_CANCEL);
    // grpc-message is percent-encoded where it is not printable ASCII (clients decode it with decodeURI).
    const message = why.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
    stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "8", "grpc-message": message }, { endStream: true });
    // The rest of its request is not wanted. (NO_ERROR would wait for the request to end first.)
    stream.close(http2.constants.NGHTTP2_CANCEL);
  } catch {
    stream.destroy();
  }
}

/**
 * The watcher: `maxHeldBytes` each way and `stallMs` without progress (0: no time limit), `onEnded`
 * told of every stream it ends.
 */
export function endStalledStreams(maxHeldBytes: number, stallMs: number, onEnded: (why: string) => void = () => {}): SessionWatcher {
  const watched = new Set<Watched>();
  let pending = 0;
  let timer: NodeJS.Timeout | undefined;
  const forget = (w: Watched) => {
    if (!watched.delete(w)) return;
    pending -= w.held;
    if (watched.size === 0) timer = (clearInterval(timer), undefined);
  };
  const ending = (w: Watched, why: string) => {
    forget(w);
    onEnded(why);
    end(w.stream, why);
  };
  const look = () => {
    const now = performance.now();
    const stuck: Watched[] = [];
    let stuckBytes = 0;
    for (const w of watched) {
      w.look(now);
      const idle = now - w.movedAt;
      if (w.held > 0 && stallMs > 0 && idle >= stallMs) ending(w, `its request message stopped arriving: no bytes for ${stallMs} ms, the most this server waits (--stream-stall-ms)`);
      else if (w.queued > 0 && stallMs > 0 && idle >= 2 * stallMs) ending(w, `its client took none of its answer for ${2 * stallMs} ms (twice --stream-stall-ms)`);
      else if (w.queued > 0 && idle >= STUCK_MS) (stuck.push(w), (stuckBytes += w.queued));
    }
    stuck.sort((a, b) => a.movedAt - b.movedAt);
    for (const w of stuck) {
      if (stuckBytes <= maxHeldBytes) break;
      stuckBytes -= w.queued;
      ending(w, `answers not taken by their clients hold more than ${maxHeldBytes} bytes (${HELD_MESSAGES_PER_LIMIT} × the message limit); this one's client took none for ${Math.round(now - w.movedAt)} ms`);
    }
  };
  return (session) => {
    session.on("stream", (stream) => {
      const w = new Watched(stream);
      watched.add(w);
      timer ??= setInterval(look, Math.max(10, Math.min(stallMs / 4 || STUCK_MS, STUCK_MS))).unref();
      stream.on("data", (chunk: Buffer) => {
        if (!watched.has(w)) return;
        pending += w.received(chunk);
        if (pending > maxHeldBytes && w.held > 0) {
          ending(w, `request messages still arriving hold more than ${maxHeldBytes} bytes, the most this server holds (${HELD_MESSAGES_PER_LIMIT} × the message limit): try again later`);
        }
      });
      stream.once("close", () => forget(w));
    });
  };
}
