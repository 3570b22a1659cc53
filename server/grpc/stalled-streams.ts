/**
 * Bytes a stream holds for a peer that does not move them. grpc-js keeps a request message's bytes
 * until the whole message has come (one connection held 20 streams × 60 MiB of never-finished
 * messages, 1.2 GB, for good), and an answer queues until the client's window takes it (ten heat
 * Jacobians of 61 MB each stayed queued for good under a window of 0; under a memory limit the
 * server died). A session watcher (http2-sessions.ts) bounds both, server-wide:
 * - unfinished request messages hold at most the budget: the stream whose bytes would pass it ends
 *   with RESOURCE_EXHAUSTED (the client may try again), and so does one whose message stops
 *   arriving for `stallMs`. What counts is the memory the bytes keep: grpc-js keeps slices of the
 *   transport's read buffers, each slice the whole buffer (1-byte DATA frames padded with 255 kept
 *   400 times what they held). (Holding such streams back instead, unread, let one slow stream
 *   hold every other up for good.)
 * - answers not taken: where the answer bytes of streams that moved none for STUCK_MS
 *   pass the budget, the longest stuck are reset; any stuck for 2 × `stallMs` is reset too. An
 *   answer moves while its queue changes or its connection's send window does (data sent, or
 *   taken by the client): one large write stays whole in a stream's queue until it has all gone,
 *   however steadily its client reads it, and bytes the server writes otherwise (PING answers,
 *   resets) are no progress. (JacobianRows ends its own call after `stallMs` with
 *   RESOURCE_EXHAUSTED, queued behind its rows: a client that reads again within as long again
 *   still gets that status.)
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

/**
 * The transport's read buffers that unfinished messages keep, each counted once however many
 * messages have bytes in it (streams' chunks share the buffers they were read into).
 */
export class KeptBuffers {
  private readonly keepers = new Map<ArrayBufferLike, number>();
  /** Bytes of the buffers kept now. */
  bytes = 0;

  keep(buffer: ArrayBufferLike): void {
    const count = this.keepers.get(buffer) ?? 0;
    if (count === 0) this.bytes += buffer.byteLength;
    this.keepers.set(buffer, count + 1);
  }

  letGo(buffer: ArrayBufferLike): void {
    const count = (this.keepers.get(buffer) ?? 1) - 1;
    if (count > 0) return void this.keepers.set(buffer, count);
    this.keepers.delete(buffer);
    this.bytes -= buffer.byteLength;
  }
}

/** One stream's unfinished request message, its queued answer bytes, and when either last moved. */
export class Watched {
  private readonly prefix = Buffer.alloc(PREFIX_BYTES);
  private prefixRead = 0;
  /** Body bytes of the message being read still to come. */
  private remaining = 0;
  /** The read buffers the unfinished message's bytes lie in (none when no message is unfinished). */
  private readonly buffers = new Set<ArrayBufferLike>();
  /** The answer bytes queued at the last look, and its connection's send window then. */
  queued = 0;
  private window = 0;
  movedAt = performance.now();

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    private readonly kept: KeptBuffers,
  ) {}

  /** Whether a message is unfinished. */
  get held(): boolean {
    return this.buffers.size > 0;
  }

  /** Reads a chunk's frames, keeping its buffer while a message in it is unfinished. */
  received(chunk: Buffer): void {
    this.movedAt = performance.now();
    for (let i = 0; i < chunk.length; ) {
      const take = Math.min(this.prefixRead < PREFIX_BYTES ? PREFIX_BYTES - this.prefixRead : this.remaining, chunk.length - i);
      if (this.prefixRead < PREFIX_BYTES) {
        chunk.copy(this.prefix, this.prefixRead, i, i + take);
        this.prefixRead += take;
        if (this.prefixRead === PREFIX_BYTES) this.remaining = this.prefix.readUInt32BE(1);
      } else this.remaining -= take;
      i += take;
      if (this.prefixRead === PREFIX_BYTES && this.remaining === 0) {
        // Whole: grpc-js decodes it and lets its bytes go (a next message in this chunk keeps it).
        this.letGo();
        this.prefixRead = 0;
      } else if (!this.buffers.has(chunk.buffer)) {
        this.buffers.add(chunk.buffer);
        this.kept.keep(chunk.buffer);
      }
    }
  }

  /** Lets go of every buffer kept (the message is whole, or the stream ended). */
  letGo(): void {
    for (const buffer of this.buffers) this.kept.letGo(buffer);
    this.buffers.clear();
  }

  /**
   * Looks at the answer's queue: a change in it, or bytes its connection wrote, is progress; with
   * nothing held either way the clock starts again.
   */
  look(now: number): void {
    const queued = this.stream.writableLength;
    const window = queued > 0 ? sendWindow(this.stream) : 0;
    if (queued !== this.queued || (queued > 0 && window !== this.window) || (!this.held && queued === 0)) this.movedAt = now;
    this.queued = queued;
    this.window = window;
  }
}

/** The connection's send window (what its peer lets the server send), which data sent and taken move. */
function sendWindow(stream: http2.ServerHttp2Stream): number {
  try {
    return stream.session?.state.remoteWindowSize ?? 0;
  } catch {
    return 0; // a session being destroyed
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
  const kept = new KeptBuffers();
  let timer: NodeJS.Timeout | undefined;
  const forget = (w: Watched) => {
    if (!watched.delete(w)) return;
    w.letGo();
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
      if (w.held && stallMs > 0 && idle >= stallMs) ending(w, `its request message stopped arriving: no bytes for ${stallMs} ms, the most this server waits (--stream-stall-ms)`);
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
      const w = new Watched(stream, kept);
      watched.add(w);
      timer ??= setInterval(look, Math.max(10, Math.min(stallMs / 4 || STUCK_MS, STUCK_MS))).unref();
      stream.on("data", (chunk: Buffer) => {
        if (!watched.has(w)) return;
        w.received(chunk);
        if (kept.bytes > maxHeldBytes && w.held) {
          ending(w, `request messages still arriving hold more than ${maxHeldBytes} bytes, the most this server holds (${HELD_MESSAGES_PER_LIMIT} × the message limit): try again later`);
        }
      });
      stream.once("close", () => forget(w));
    });
  };
}
