/**
 * A raw gRPC-over-HTTP/2 client (node:http2, no grpc-js) and a hand protobuf writer, for sending
 * bytes the SDK never would: malformed protobuf, lying frame lengths, compressed flags, several
 * messages on a unary call. Used by the wire-level fuzzer (test/wire-fuzz.test.ts, bench/wire-fuzz.ts)
 * and by single-case tests.
 *
 *   const session = new RawGrpcSession(server.address);
 *   const r = await session.call("/tesseract.v1.Tesseract/Apply", frame(new ProtoWriter().fieldZero().finish()));
 *   // r.grpcStatus, r.grpcMessage, r.messages, r.timedOut, r.streamError
 *   await session.close();
 */
import * as http2 from "node:http2";

// ---- framing ------------------------------------------------------------------------------------

/** The 5-byte gRPC prefix (compressed flag, big-endian length) and the message; the length may lie. */
export function frame(message: Uint8Array, opts: { compressed?: boolean; declaredLength?: number } = {}): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = opts.compressed ? 1 : 0;
  prefix.writeUInt32BE(opts.declaredLength ?? message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Splits a response body into its messages; a trailing partial frame is returned as `rest`. */
export function deframe(body: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let at = 0;
  while (body.length - at >= 5) {
    const length = body.readUInt32BE(at + 1);
    if (body.length - at - 5 < length) break;
    messages.push(body.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return { messages, rest: body.subarray(at) };
}

// ---- the client ---------------------------------------------------------------------------------

export interface RawResponse {
  /** :status of the response headers (absent when none came). */
  httpStatus?: number;
  /** grpc-status, from the trailers (or from the headers of a trailers-only response). */
  grpcStatus?: number;
  /** grpc-message, percent-decoded. */
  grpcMessage?: string;
  /** grpc-message as sent. */
  rawGrpcMessage?: string;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  /** Response messages, de-framed. */
  messages: Buffer[];
  /** Response bytes after the last whole message (a server bug if non-empty). */
  trailingBytes: number;
  /** The stream was reset (RST_STREAM code) or failed, or the session failed. */
  streamError?: string;
  /** `timeoutMs` passed before the stream closed: the call was left without a status. */
  timedOut?: boolean;
  /** Milliseconds from the request to the end. */
  ms: number;
}

export interface CallOptions {
  /** Extra request headers (they override the defaults below, e.g. content-type). */
  headers?: Record<string, string>;
  /** Resolve with `timedOut: true` (and cancel the stream) after this long; default 10 000. */
  timeoutMs?: number;
  /** Half-close after the body (default true). */
  endStream?: boolean;
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec); malformed escapes are kept as sent. */
function percentDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const firstHeader = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** One HTTP/2 connection; `call` opens a stream on it per call. */
export class RawGrpcSession {
  readonly session: http2.ClientHttp2Session;
  /** Set when the session itself failed or was closed by the server (GOAWAY). */
  sessionError?: string;
  private closedFlag = false;

  constructor(readonly address: string) {
    this.session = http2.connect(`http://${address}`);
    this.session.on("error", (e) => (this.sessionError ??= `session error: ${e.message}`));
    this.session.on("goaway", (code) => (this.sessionError ??= `GOAWAY ${code}`));
    this.session.on("close", () => (this.closedFlag = true));
  }

  /** Whether new calls can still be made on this session. */
  get usable(): boolean {
    return !this.closedFlag && !this.session.closed && !this.session.destroyed && this.sessionError === undefined;
  }

  call(path: string, body: Buffer | Buffer[], opts: CallOptions = {}): Promise<RawResponse> {
    const started = performance.now();
    const response: RawResponse = { headers: {}, trailers: {}, messages: [], trailingBytes: 0, ms: 0 };
    const finish = () => {
      response.ms = performance.now() - started;
      const status = firstHeader(response.trailers["grpc-status"]) ?? firstHeader(response.headers["grpc-status"]);
      if (status !== undefined) response.grpcStatus = Number(status);
      const message = firstHeader(response.trailers["grpc-message"]) ?? firstHeader(response.headers["grpc-message"]);
      if (message !== undefined) {
        response.rawGrpcMessage = message;
        response.grpcMessage = percentDecode(message);
      }
      return response;
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.session.request(
        { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...opts.headers },
        { endStream: false },
      );
    } catch (e) {
      response.streamError = `request failed: ${(e as Error).message}`;
      return Promise.resolve(finish());
    }
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let done = false;
      const end = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const { messages, rest } = deframe(Buffer.concat(chunks));
        response.messages = messages;
        response.trailingBytes = rest.length;
        resolve(finish());
      };
      const timer = setTimeout(() => {
        response.timedOut = true;
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        end();
      }, opts.timeoutMs ?? 10_000);
      stream.on("response", (headers) => {
        response.headers = headers;
        response.httpStatus = Number(headers[":status"]);
      });
      stream.on("trailers", (trailers) => (response.trailers = trailers));
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", (e) => (response.streamError ??= e.message));
      stream.on("close", () => {
        if (stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) response.streamError ??= `RST_STREAM ${stream.rstCode}`;
        if (this.sessionError && response.grpcStatus === undefined) response.streamError ??= this.sessionError;
        end();
      });
      for (const part of Array.isArray(body) ? body : [body]) stream.write(part);
      if (opts.endStream !== false) stream.end();
    });
  }

  close(): Promise<void> {
    if (this.session.closed || this.session.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => this.session.destroy(), 1000);
      this.session.close(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}

// ---- protobuf by hand ---------------------------------------------------------------------------

export const WireType = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

/** The varint encoding of a non-negative or (as int64, ten bytes) negative integer. */
export function varintBytes(n: number | bigint): Buffer {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  const out: number[] = [];
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

/**
 * Appends protobuf wire bytes, valid or not; every method returns `this`. The malformed helpers
 * (from `truncatedVarint` on) each write one kind of defect at the current position.
 */
export class ProtoWriter {
  private readonly chunks: Buffer[] = [];

  raw(bytes: Uint8Array): this {
    this.chunks.push(Buffer.from(bytes));
    return this;
  }
  tag(field: number, wireType: number): this {
    return this.varint(BigInt(field) * 8n + BigInt(wireType));
  }
  varint(n: number | bigint): this {
    return this.raw(varintBytes(n));
  }
  fixed32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0);
    return this.raw(b);
  }
  fixed64(n: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(n)));
    return this.raw(b);
  }
  double(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(x);
    return this.raw(b);
  }
  float(x: number): this {
    const b = Buffer.alloc(4);
    b.writeFloatLE(x);
    return this.raw(b);
  }
  /** Length-prefixed bytes (no tag). */
  bytes(b: Uint8Array): this {
    return this.varint(b.length).raw(b);
  }
  /** Length-prefixed UTF-8 (no tag). */
  string(s: string): this {
    return this.bytes(Buffer.from(s, "utf8"));
  }
  /** Tagged scalar fields, for brevity. */
  varintField(field: number, n: number | bigint): this {
    return this.tag(field, WireType.VARINT).varint(n);
  }
  bytesField(field: number, b: Uint8Array): this {
    return this.tag(field, WireType.LEN).bytes(b);
  }
  stringField(field: number, s: string): this {
    return this.tag(field, WireType.LEN).string(s);
  }
  /** A length-delimited sub-message written by `write`. */
  message(field: number, write: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    write(inner);
    return this.bytesField(field, inner.finish());
  }
  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }
  get length(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  // ---- malformed ----

  /** A varint whose last byte still has the continuation bit: the input ends mid-varint. */
  truncatedVarint(): this {
    return this.raw(Buffer.from([0x80, 0x80, 0x80]));
  }
  /** An 11-byte varint (10 is the most protobuf allows). */
  overlongVarint(): this {
    return this.raw(Buffer.from([0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]));
  }
  /** A length-delimited field declaring `declared` bytes but holding only `actual`. */
  lengthOverrun(field: number, declared: number | bigint = 1000, actual: Uint8Array = Buffer.from("short")): this {
    return this.tag(field, WireType.LEN).varint(declared).raw(actual);
  }
  /** A length-delimited field declaring a huge length (default 2^32 - 1), with nothing after it. */
  hugeLength(field: number, declared: number | bigint = 0xffffffff): this {
    return this.tag(field, WireType.LEN).varint(declared);
  }
  /** Field number 0 (reserved, never valid) with a value of the given wire type. */
  fieldZero(wireType: number = WireType.VARINT): this {
    return this.value(0, wireType);
  }
  /** A field with a well-formed value of `wireType`, whatever the schema says (a wrong wire type for a known field). */
  wrongWireType(field: number, wireType: number): this {
    return this.value(field, wireType);
  }
  /** An END_GROUP with no matching START_GROUP. */
  unmatchedEndGroup(field: number): this {
    return this.tag(field, WireType.EGROUP);
  }
  /** A START_GROUP of `open` closed by the END_GROUP of another field `close`. */
  mismatchedGroup(open: number, close: number): this {
    return this.tag(open, WireType.SGROUP).varintField(1, 1).tag(close, WireType.EGROUP);
  }
  /** A START_GROUP never closed. */
  unclosedGroup(field: number): this {
    return this.tag(field, WireType.SGROUP).varintField(1, 1);
  }
  /** `depth` groups of `field` nested in each other, properly closed. */
  nestedGroups(field: number, depth: number): this {
    const open = Buffer.concat([varintBytes(field * 8 + WireType.SGROUP)]);
    const close = Buffer.concat([varintBytes(field * 8 + WireType.EGROUP)]);
    return this.raw(Buffer.concat([repeat(open, depth), repeat(close, depth)]));
  }
  /** `depth` length-delimited fields of `field` nested in each other around `inner`. */
  nestedMessages(field: number, depth: number, inner: Uint8Array = Buffer.alloc(0)): this {
    return this.raw(nestLengthDelimited(field, depth, inner));
  }
  /** A string field holding invalid UTF-8 (default: an encoded surrogate, ED A0 80). */
  invalidUtf8(field: number, bad: Uint8Array = INVALID_UTF8.surrogate, prefix = "", suffix = ""): this {
    return this.bytesField(field, Buffer.concat([Buffer.from(prefix), bad, Buffer.from(suffix)]));
  }

  private value(field: number, wireType: number): this {
    this.tag(field, wireType);
    switch (wireType) {
      case WireType.VARINT:
        return this.varint(1);
      case WireType.I64:
        return this.fixed64(1);
      case WireType.LEN:
        return this.bytes(Buffer.from([1]));
      case WireType.SGROUP:
        return this.tag(field, WireType.EGROUP);
      case WireType.EGROUP:
        return this;
      case WireType.I32:
        return this.fixed32(1);
      default:
        return this; // wire types 6 and 7 do not exist: the tag alone
    }
  }
}

/** Byte sequences that are not UTF-8. */
export const INVALID_UTF8 = {
  /** An encoded UTF-16 surrogate (U+D800). */
  surrogate: Buffer.from([0xed, 0xa0, 0x80]),
  /** An overlong encoding of "/". */
  overlong: Buffer.from([0xc0, 0xaf]),
  /** A byte that never occurs in UTF-8. */
  ff: Buffer.from([0xff]),
  /** A lone continuation byte. */
  continuation: Buffer.from([0x80]),
  /** A 3-byte sequence cut short. */
  truncated: Buffer.from([0xe2, 0x82]),
} as const;

function repeat(b: Buffer, n: number): Buffer {
  const out = Buffer.alloc(b.length * n);
  for (let i = 0; i < n; i++) b.copy(out, i * b.length);
  return out;
}

/** `depth` levels of `tag(field, LEN) length` around `inner`, built inside out in one pass. */
export function nestLengthDelimited(field: number, depth: number, inner: Uint8Array = Buffer.alloc(0)): Buffer {
  const tag = varintBytes(field * 8 + WireType.LEN);
  const prefixes: Buffer[] = new Array(depth);
  let size = inner.length;
  for (let level = depth - 1; level >= 0; level--) {
    const length = varintBytes(size);
    prefixes[level] = Buffer.concat([tag, length]);
    size += tag.length + length.length;
  }
  return Buffer.concat([...prefixes, inner]);
}
