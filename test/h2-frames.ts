/**
 * HTTP/2 frames written by hand on a plain TCP socket, for byte sequences node:http2's client never
 * sends: thousands of streams opened and reset in one write (rapid reset), requests never ended,
 * frames no client should send. Used by test/stream-resets.test.ts and bench/rapid-reset.ts.
 *
 *   const conn = await H2Connection.open(port);
 *   conn.write(Buffer.concat(describeCalls(1, 500, { reset: true })));
 *   const { goaways } = await conn.closed;
 */
import * as net from "node:net";

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 1, ACK: 1, END_HEADERS: 4, PADDED: 8, PRIORITY: 0x20 } as const;
export const ErrorCode = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** One frame: the 9-byte header (length, type, flags, stream id) and its payload. */
export function h2frame(type: number, flags: number, streamId: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** RST_STREAM's payload: the error code. */
export function errorCode(code: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(code);
  return b;
}

/** The client's preface, SETTINGS and a WINDOW_UPDATE: windows of 1 GiB, so that no answer waits on flow control. */
export function clientPreface(): Buffer {
  const initialWindowSize = Buffer.alloc(6);
  initialWindowSize.writeUInt16BE(0x4);
  initialWindowSize.writeUInt32BE(1 << 30, 2);
  const increment = Buffer.alloc(4);
  increment.writeUInt32BE((1 << 30) - 65535);
  return Buffer.concat([PREFACE, h2frame(FrameType.SETTINGS, 0, 0, initialWindowSize), h2frame(FrameType.WINDOW_UPDATE, 0, 0, increment)]);
}

/** An HPACK string literal (no Huffman, length < 127). */
const hpackString = (value: string) => Buffer.concat([Buffer.from([value.length]), Buffer.from(value)]);

/**
 * The header block of a gRPC POST to `path`. The first block of a connection (`first`) adds
 * :authority, :path, content-type and te to HPACK's dynamic table; each later block names them by
 * index, six bytes in all: the densest request a client can send.
 */
export function grpcHeaderBlock(path: string, first: boolean): Buffer {
  if (!first) return Buffer.from([0x83, 0x86, 0x80 | 65, 0x80 | 64, 0x80 | 63, 0x80 | 62]);
  const indexed = (name: string, value: string) => Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]);
  // :method POST (3), :scheme http (6); :authority (1) and :path (4) by their static names, indexed.
  return Buffer.concat([Buffer.from([0x83, 0x86, 0x41]), hpackString("localhost"), Buffer.from([0x44]), hpackString(path), indexed("content-type", "application/grpc"), indexed("te", "trailers")]);
}

const DESCRIBE = "/tesseract.v1.Tesseract/Describe";

/**
 * `count` Describe calls on streams 1, 3, 5, … (the connection's first header block included):
 * HEADERS, then (unless `headersOnly`) the empty request in a DATA frame that ends the stream, then
 * (with `reset`) RST_STREAM CANCEL. One frame array per call.
 */
export function describeCalls(count: number, opts: { reset?: boolean; headersOnly?: boolean; path?: string } = {}): Buffer[] {
  const emptyRequest = Buffer.alloc(5);
  return Array.from({ length: count }, (_, i) => {
    const id = 2 * i + 1;
    const frames = [h2frame(FrameType.HEADERS, Flag.END_HEADERS, id, grpcHeaderBlock(opts.path ?? DESCRIBE, i === 0))];
    if (!opts.headersOnly) frames.push(h2frame(FrameType.DATA, Flag.END_STREAM, id, emptyRequest));
    if (opts.reset) frames.push(h2frame(FrameType.RST_STREAM, 0, id, errorCode(ErrorCode.CANCEL)));
    return Buffer.concat(frames);
  });
}

export interface ReceivedFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export interface Goaway {
  lastStreamId: number;
  code: number;
  debug: string;
}

/** Splits bytes from the server into frames; a partial frame at the end is left out. */
export function parseFrames(bytes: Buffer): ReceivedFrame[] {
  const frames: ReceivedFrame[] = [];
  for (let at = 0; at + 9 <= bytes.length; ) {
    const length = bytes.readUIntBE(at, 3);
    if (at + 9 + length > bytes.length) break;
    frames.push({ type: bytes[at + 3], flags: bytes[at + 4], streamId: bytes.readUInt32BE(at + 5) & 0x7fffffff, payload: bytes.subarray(at + 9, at + 9 + length) });
    at += 9 + length;
  }
  return frames;
}

export function goawaysOf(frames: ReceivedFrame[]): Goaway[] {
  return frames
    .filter((f) => f.type === FrameType.GOAWAY)
    .map((f) => ({ lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString() }));
}

/** A raw HTTP/2 connection to 127.0.0.1:`port` that has sent its preface; it reads everything the server sends. */
export class H2Connection {
  private readonly received: Buffer[] = [];
  /** Resolves when the server closes the connection (or `destroy` is called), with all it sent. */
  readonly closed: Promise<{ frames: ReceivedFrame[]; goaways: Goaway[] }>;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => this.received.push(chunk));
    socket.on("error", () => {}); // a reset by the server ends it like a close
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        const frames = this.frames();
        resolve({ frames, goaways: goawaysOf(frames) });
      }),
    );
  }

  static async open(port: number): Promise<H2Connection> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const connection = new H2Connection(socket);
    socket.write(clientPreface());
    return connection;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The frames received, once `done` accepts them (or the connection closes). */
  until(done: (frames: ReceivedFrame[]) => boolean): Promise<ReceivedFrame[]> {
    return new Promise((resolve) => {
      const check = () => {
        const frames = this.frames();
        if (!done(frames) && !this.socket.destroyed) return;
        this.socket.off("data", check).off("close", check);
        resolve(frames);
      };
      this.socket.on("data", check).on("close", check);
      check();
    });
  }

  /** The frames received so far. */
  frames(): ReceivedFrame[] {
    return parseFrames(Buffer.concat(this.received));
  }

  destroy(): void {
    this.socket.destroy();
  }
}
