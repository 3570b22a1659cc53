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
 * - requests that do not end: a call that takes one request message (every method but a client or
 *   bidi stream's) waits for the request's end (END_STREAM), and a stream opened and left there, with
 *   its message or without, was held for good: ~9 kB each, for a HEADERS frame of a few bytes (20 000
 *   took 180 MB). Such a stream ends once its client has sent nothing for `stallMs`, and past
 *   the budget's worth of them (STREAM_BYTES each, at least MIN_WAITING) the one that has waited
 *   longest since its last byte ends at once.
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

/** What an open stream keeps on the server, Node's stream and grpc-js's call (about 9 kB measured), as streams waiting for their request's end count against the budget. */
const STREAM_BYTES = 8 << 10;

/** Streams waiting for their request's end that are held whatever the budget: a connection's worth (MAX_CONCURRENT_STREAMS). */
const MIN_WAITING = 1000;

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
  /** When the client last sent a byte on the stream (or opened it). */
  receivedAt = this.movedAt;

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
    this.movedAt = this.receivedAt = performance.now();
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

/** Whether the client has ended its side of the stream (END_STREAM, or a reset): read from HTTP/2's state, as grpc-js pauses a stream between messages and its "end" then waits. */
function requestEnded(stream: http2.ServerHttp2Stream): boolean {
  try {
    return stream.readableEnded || stream.destroyed || stream.state.remoteClose === 1;
  } catch {
    return true; // a session being destroyed
  }
}

/**
 * The watcher: `maxHeldBytes` each way and `stallMs` without progress (0: no time limit), `onEnded`
 * told of every stream it ends; `takesRequestStream` says which methods (by path) take a stream of
 * requests, whose streams may wait between them for good.
 */
export function endStalledStreams(maxHeldBytes: number, stallMs: number, onEnded: (why: string) => void = () => {}, takesRequestStream: (path: string) => boolean = () => false): SessionWatcher {
  const watched = new Set<Watched>();
  const kept = new KeptBuffers();
  /** Streams of calls that take one request, whose request has not ended (as far as seen), the one whose client sent its last byte longest ago first. */
  const waiting = new Set<Watched>();
  const maxWaiting = Math.max(MIN_WAITING, Math.floor(maxHeldBytes / STREAM_BYTES));
  let timer: NodeJS.Timeout | undefined;
  const forget = (w: Watched) => {
    if (!watched.delete(w)) return;
    waiting.delete(w);
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
      // Asked of HTTP/2 (a native call) once the client has been quiet a while: a request ended
      // since goes from the list before its quiet could count against it.
      if (waiting.has(w) && now - w.receivedAt >= Math.min(STUCK_MS, stallMs || STUCK_MS) && requestEnded(w.stream)) waiting.delete(w);
      if (w.held && stallMs > 0 && idle >= stallMs) ending(w, `its request message stopped arriving: no bytes for ${stallMs} ms, the most this server waits (--stream-stall-ms)`);
      else if (waiting.has(w) && stallMs > 0 && now - w.receivedAt >= stallMs) ending(w, `its request did not end: no bytes for ${stallMs} ms, the most this server waits (--stream-stall-ms)`);
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
  /** Past `maxWaiting`, ends the stream waiting longest since its client's last byte (those whose request has ended go from the list). */
  const boundWaiting = () => {
    for (const w of waiting) {
      if (waiting.size <= maxWaiting) return;
      if (requestEnded(w.stream)) waiting.delete(w);
      else ending(w, `more than ${maxWaiting} streams wait for their requests to end, the most this server holds; this one's client has sent nothing for ${Math.round(performance.now() - w.receivedAt)} ms`);
    }
  };
  return (session) => {
    session.on("stream", (stream, headers) => {
      const w = new Watched(stream, kept);
      watched.add(w);
      timer ??= setInterval(look, Math.max(10, Math.min(stallMs / 4 || STUCK_MS, STUCK_MS))).unref();
      if (!requestEnded(stream) && !takesRequestStream(String(headers[":path"]))) {
        waiting.add(w);
        boundWaiting();
      }
      stream.on("data", (chunk: Buffer) => {
        if (!watched.has(w)) return;
        w.received(chunk);
        // Kept in the order of the clients' last bytes.
        if (waiting.delete(w)) waiting.add(w);
        if (kept.bytes > maxHeldBytes && w.held) {
          ending(w, `request messages still arriving hold more than ${maxHeldBytes} bytes, the most this server holds (${HELD_MESSAGES_PER_LIMIT} × the message limit): try again later`);
        }
      });
      stream.once("end", () => waiting.delete(w));
      stream.once("close", () => forget(w));
    });
  };
}
