/**
 * gRPC framing that no client sends wrong, over raw HTTP/2: the compressed flag
 * (server/grpc/compressed-flag.ts: 1 only under a grpc-encoding that names a compression) and the
 * number of request messages of a unary call (server/grpc/guard.ts: exactly one).
 */
import { strict as assert } from "node:assert";
import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { gzipSync } from "node:zlib";
import { Code } from "../index";
import { COMPRESSED_FLAG_DETAILS } from "../server/grpc/compressed-flag";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { LogLines } from "./helpers";
import { quote } from "../common/errors";
import { deframe, frame, RawGrpcSession } from "./raw-grpc";
import ndarray from "ndarray";
import { packAny } from "../client";
import { Inputs as VectorInputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { ApplyRequest, JacobianRequest, JacobianRowsResponse } from "../generated/tesseract/v1/tesseract";
import { heldDecompressedBytes, inflateWithinBudget } from "../server/grpc/decompressed-bytes";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { loadTesseract } from "../server/loader";
import { TesseractRuntime } from "../server/runtime";
import { encodeRowMessage } from "../server/grpc/row-encoding";
import { loadDefinition } from "../server/grpc/definition";
import { mergeLastPiece, STASH_BYTES } from "../server/grpc/small-frames";
import { StreamDecoder } from "@grpc/grpc-js/build/src/stream-decoder";
import { ApplyResponse } from "../generated/tesseract/v1/tesseract";
import { Outputs as VectorOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { unpackAny } from "../client";

const DESCRIBE = "/tesseract.v1.Tesseract/Describe";
const EMPTY = new Uint8Array(0);

describe("gRPC framing", () => {
  let server: RunningServer;
  let session: RawGrpcSession;
  before(async () => {
    server = await startServer({ tesseract: "vectoradd", port: 0, logger: silentLogger });
    session = new RawGrpcSession(server.address);
  });
  after(async () => {
    await session.close();
    await server.close();
  });

  it("set without grpc-encoding (or with identity): INVALID_ARGUMENT saying so", async () => {
    for (const headers of [{}, { "grpc-encoding": "identity" }] as Record<string, string>[]) {
      const r = await session.call(DESCRIBE, frame(EMPTY, { compressed: true }), { headers });
      assert.equal(r.grpcStatus, Code.INVALID_ARGUMENT, r.grpcMessage);
      assert.equal(r.grpcMessage, COMPRESSED_FLAG_DETAILS);
    }
  });

  it("a flag byte other than 0 or 1: refused the same way; under an encoding, saying the flag is wrong", async () => {
    const framed = frame(EMPTY);
    framed[0] = 2;
    const r = await session.call(DESCRIBE, framed);
    assert.equal(r.grpcStatus, Code.INVALID_ARGUMENT, r.grpcMessage);
    const gzip = await session.call(DESCRIBE, framed, { headers: { "grpc-encoding": "gzip" } });
    assert.deepEqual([gzip.grpcStatus, gzip.grpcMessage], [Code.INVALID_ARGUMENT, "a message has the compressed flag 2; expected 0 or 1"]);
  });

  it("bytes that do not decompress as grpc-encoding says (corrupt, cut short, empty): INVALID_ARGUMENT, not grpc-js's INTERNAL", async () => {
    const gz = gzipSync(Buffer.from("not a message at all, but valid gzip of something long enough"));
    for (const [encoding, bytes] of [["gzip", Buffer.from("garbage")], ["gzip", gz.subarray(0, gz.length - 6)], ["deflate", Buffer.from([1, 2, 3])], ["gzip", Buffer.alloc(0)]] as const) {
      const r = await session.call(DESCRIBE, frame(bytes, { compressed: true }), { headers: { "grpc-encoding": encoding } });
      assert.deepEqual([r.grpcStatus, r.grpcMessage], [Code.INVALID_ARGUMENT, `a message does not decompress as its grpc-encoding "${encoding}" says`]);
    }
  });

  it("a message compressed with an encoding the server does not decode: UNIMPLEMENTED naming it quoted and clipped (grpc-js echoed a 50 000-character one whole in grpc-message)", async () => {
    for (const encoding of ["br", "GZIP", "x".repeat(50_000)]) {
      const r = await session.call(DESCRIBE, frame(Buffer.from([1, 2, 3]), { compressed: true }), { headers: { "grpc-encoding": encoding } });
      assert.equal(r.grpcStatus, Code.UNIMPLEMENTED, r.grpcMessage?.slice(0, 200));
      assert.equal(r.grpcMessage, `a message is compressed with grpc-encoding ${quote(encoding)}, which this server does not decode: send it uncompressed, gzip or deflate`);
      assert.ok(r.rawGrpcMessage!.length < 400, `${r.rawGrpcMessage!.length} characters`);
    }
    assert.equal(quote("br"), '"br"');
  });

  it("a grpc-timeout that is not one: INVALID_ARGUMENT saying what it must be; a valid one still works", async () => {
    // Characters past printable ASCII too ("¹00m": grpc-js dropped the value as no legal header, and the call ran without a deadline); the mark that carries them, sent as such and not decodable, is quoted as sent.
    for (const value of ["abcZ", "", "S5", "5x", "1e3m", "x1m", "-5S", "5Sjunk", "1.5S", "100000000S", "¹00m", "100m\u00a0", "1²m", "not-ascii:%E0%A4%A"]) {
      const r = await session.call(DESCRIBE, frame(EMPTY), { headers: { "grpc-timeout": value } });
      assert.equal(r.grpcStatus, Code.INVALID_ARGUMENT, `${JSON.stringify(value)}: ${r.grpcMessage}`);
      assert.equal(r.grpcMessage, `grpc-timeout is ${JSON.stringify(value)}: expected 1 to 8 digits and a unit (H, M, S, m, u or n), e.g. 100m`);
    }
    const ok = await session.call(DESCRIBE, frame(EMPTY), { headers: { "grpc-timeout": "5S" } });
    assert.equal(ok.grpcStatus, 0, ok.grpcMessage);
    // Longer than a Node timer runs (2^31 ms, about 24.8 days): no deadline, not one passed at once (it was DEADLINE_EXCEEDED in ms).
    for (const value of ["2147484S", "1000H", "35792M", "99999999H"]) {
      const far = await session.call(DESCRIBE, frame(EMPTY), { headers: { "grpc-timeout": value } });
      assert.equal(far.grpcStatus, 0, `${value}: ${far.grpcMessage}`);
    }
  });

  it("a deadline that passes while a call runs: every call gets its status (DEADLINE_EXCEEDED, or OK if it finished), none is left open", async () => {
    // grpc-js ends the stream at the deadline and sends its status once the stream is flushed; the
    // handler went on writing into it and the status never came (all 40 rows streams hung here).
    const request = JacobianRequest.encode({
      inputs: packAny("tesseract.examples.vectoradd.v1.Inputs", VectorInputs, { a: ndarray(Float64Array.of(1, 2, 3), [3]), b: ndarray(Float64Array.of(4, 5, 6), [3]) }),
      jac_inputs: ["a", "b"],
      jac_outputs: ["result"],
      sparsity: [],
    }).finish();
    for (const rpc of ["JacobianRows", "Jacobian"]) {
      const calls = Array.from({ length: 20 }, (_, i) => session.call(`/tesseract.v1.Tesseract/${rpc}`, frame(request), { headers: { "grpc-timeout": i % 2 ? "1m" : "0n" }, timeoutMs: 5000 }));
      for (const [i, r] of (await Promise.all(calls)).entries()) {
        assert.ok(!r.timedOut, `${rpc}: no status within 5 s (${r.messages.length} messages)`);
        assert.ok(r.grpcStatus === Code.DEADLINE_EXCEEDED || r.grpcStatus === 0, `${rpc}: ${r.grpcStatus} ${r.grpcMessage}`);
        // A deadline of 0 ns has passed before any work: nothing can finish OK within it.
        if (i % 2 === 0) assert.equal(r.grpcStatus, Code.DEADLINE_EXCEEDED, `${rpc} at 0n: ${r.grpcMessage}`);
        // A unary call past its deadline answers no message, only the status.
        if (rpc === "Jacobian" && r.grpcStatus === Code.DEADLINE_EXCEEDED) assert.equal(r.messages.length, 0);
      }
    }
  });

  it("a message for a stream grpc-js has already ended (its deadline passed) is dropped, so the trailers still go out", () => {
    // The race is a busy event loop's (1 to 3 streams in 64 under a pool); here the wrapped method itself.
    const internals = require("@grpc/grpc-js/build/src/server-interceptors") as { BaseServerInterceptingCall: { prototype: { sendMessage(this: unknown, m: unknown, cb: () => void): void } } };
    const sendMessage = internals.BaseServerInterceptingCall.prototype.sendMessage;
    let called = 0;
    sendMessage.call({ stream: { writableEnded: true } }, Buffer.alloc(0), () => called++);
    assert.equal(called, 1, "dropped, and its callback called");
    // A live stream goes on to grpc-js's own code (which this stand-in lacks).
    assert.throws(() => sendMessage.call({ stream: { writableEnded: false } }, Buffer.alloc(0), () => called++), TypeError);
  });

  it("a message in 1-byte DATA frames keeps one Buffer per 4 KiB of them, not one per frame (a 16 MiB message held 1.8 GB of heap); 16 KiB frames are kept as they are", () => {
    const internals = require("@grpc/grpc-js/build/src/server-interceptors") as { BaseServerInterceptingCall: { prototype: { handleDataFrame(this: unknown, data: Buffer): void } } };
    const handleDataFrame = internals.BaseServerInterceptingCall.prototype.handleDataFrame;
    const decoder = new StreamDecoder(-1);
    const pieces = () => (decoder as unknown as { readPartialMessage: Buffer[] }).readPartialMessage;
    const call = { checkCancelled: () => false, handler: { path: "/x" }, decoder };
    const body = Buffer.from(Array.from({ length: 50_000 }, (_, i) => i % 251));
    handleDataFrame.call(call, frame(EMPTY, { declaredLength: body.length }));
    for (let i = 0; i < body.length - 1; i++) handleDataFrame.call(call, body.subarray(i, i + 1));
    assert.equal(pieces().length, Math.ceil((body.length - 1) / STASH_BYTES));
    const [whole] = decoder.write(body.subarray(body.length - 1));
    assert.deepEqual(whole, frame(body));
    // A client's frames (up to 16 KiB): the pieces stay the slices grpc-js took, uncopied.
    const big = randomBytes(40_000);
    decoder.write(frame(EMPTY, { declaredLength: big.length + 4 })); // one byte more than sent: unfinished
    const chunks = [big.subarray(0, 16_384), big.subarray(16_384, 32_768), big.subarray(32_768)];
    for (const chunk of chunks) handleDataFrame.call(call, chunk);
    assert.equal(pieces().length, 3);
    pieces().forEach((piece, i) => assert.equal(piece.buffer, chunks[i].buffer, `piece ${i} is the frame's own bytes`));
    // Small pieces after a large one are stashed apart from it, and the message is whole.
    for (const b of [1, 2, 3]) handleDataFrame.call(call, Buffer.from([b]));
    assert.equal(pieces().length, 4);
    mergeLastPiece(decoder); // a second look changes nothing
    assert.equal(pieces().length, 4);
    assert.deepEqual(Buffer.concat(pieces()), Buffer.concat([big, Buffer.from([1, 2, 3])]));
  });

  it("an Apply whose request comes in 1-byte DATA frames is answered with its sum", async () => {
    const request = Buffer.from(ApplyRequest.encode({ inputs: packAny("tesseract.examples.vectoradd.v1.Inputs", VectorInputs, { a: ndarray(Float64Array.of(1, 2, 3), [3]), b: ndarray(Float64Array.of(4, 5, 6), [3]) }) }).finish());
    const framed = frame(request);
    const h2frame = (type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)) => {
      const head = Buffer.alloc(9);
      head.writeUIntBE(payload.length, 0, 3);
      [head[3], head[4]] = [type, flags];
      head.writeUInt32BE(id, 5);
      return Buffer.concat([head, payload]);
    };
    // HPACK: POST and http from the static table, the rest literals (:authority and :path by their static names).
    const text = (value: string) => Buffer.concat([Buffer.from([value.length]), Buffer.from(value)]);
    const literal = (name: string, value: string) => Buffer.concat([Buffer.from([0]), text(name), text(value)]);
    const headerBlock = Buffer.concat([Buffer.from([0x83, 0x86, 0x01]), text("localhost"), Buffer.from([0x04]), text("/tesseract.v1.Tesseract/Apply"), literal("content-type", "application/grpc"), literal("te", "trailers")]);
    const port = Number(server.address.slice(server.address.lastIndexOf(":") + 1));
    const socket = net.connect(port, "127.0.0.1");
    const received: Buffer[] = [];
    // Frames of the answer on stream 1 (type, flags, payload), until its trailers (HEADERS with END_STREAM).
    const frames: { type: number; flags: number; payload: Buffer }[] = [];
    const answered = new Promise<void>((resolve) =>
      socket.on("data", (d: Buffer) => {
        received.push(d);
        const bytes = Buffer.concat(received);
        frames.length = 0;
        for (let at = 0; at + 9 <= bytes.length && at + 9 + bytes.readUIntBE(at, 3) <= bytes.length; at += 9 + bytes.readUIntBE(at, 3)) {
          if (bytes.readUInt32BE(at + 5) === 1) frames.push({ type: bytes[at + 3], flags: bytes[at + 4], payload: bytes.subarray(at + 9, at + 9 + bytes.readUIntBE(at, 3)) });
        }
        if (frames.some((f) => f.type === 1 && f.flags & 1)) resolve();
      }),
    );
    socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), h2frame(4, 0, 0), h2frame(1, 4, 1, headerBlock)]));
    socket.write(Buffer.concat([...framed].map((byte) => h2frame(0, 0, 1, Buffer.from([byte])))));
    socket.write(h2frame(0, 1, 1)); // END_STREAM
    await answered;
    socket.destroy();
    const messages = deframe(Buffer.concat(frames.filter((f) => f.type === 0).map((f) => f.payload))).messages;
    assert.equal(messages.length, 1);
    const outputs = unpackAny(ApplyResponse.decode(messages[0]).outputs, VectorOutputs, "outputs") as { result: { data: Float64Array } };
    assert.deepEqual([...outputs.result.data], [5, 7, 9]);
  });

  it("a row message encoded in its frame goes out as it is; any other message is framed by grpc-js", () => {
    const internals = require("@grpc/grpc-js/build/src/server-interceptors") as { BaseServerInterceptingCall: { prototype: { serializeMessage(this: unknown, m: unknown): Buffer } } };
    const serializeMessage = internals.BaseServerInterceptingCall.prototype.serializeMessage;
    const row = encodeRowMessage("x", 3, [{ outputPath: "y", offset: 0, values: Float64Array.of(1.5, -2), from: 0, count: 2 }]);
    assert.equal(serializeMessage.call({}, row), row.frame, "the frame itself, not a copy");
    const framed = serializeMessage.call({ handler: { serialize: () => Buffer.from([7, 8]) } }, { anything: 1 });
    assert.deepEqual(framed, Buffer.from([0, 0, 0, 0, 2, 7, 8]));
    // Where the wrap is missing, the service's serializer gives grpc-js the message part to frame.
    const { service } = loadDefinition();
    assert.deepEqual(service.JacobianRows.responseSerialize(row), row.message);
    assert.deepEqual(JacobianRowsResponse.decode(row.message).row?.slices[0].output_path, "y");
  });

  it("a row message whose values are its last part: the frame written first, the values handed to grpc-js; over the call's limit, all of it to grpc-js", () => {
    const internals = require("@grpc/grpc-js/build/src/server-interceptors") as { BaseServerInterceptingCall: { prototype: { serializeMessage(this: unknown, m: unknown): Buffer } } };
    const serializeMessage = internals.BaseServerInterceptingCall.prototype.serializeMessage;
    const values = Float64Array.of(1.5, -2, 4);
    const row = encodeRowMessage("x", 3, [{ outputPath: "y", offset: 0, values, from: 0, count: 3 }], true);
    assert.deepEqual(row.rest.map((part) => part.length), [24]);
    const writes: Buffer[] = [];
    const call = (maxSendMessageSize: number) => ({ maxSendMessageSize, stream: { write: (b: Buffer) => writes.push(b) }, maybeSendMetadata: () => writes.push(Buffer.from("headers")) });
    assert.equal(serializeMessage.call(call(-1), row), row.rest[0], "the values themselves, not a copy");
    assert.deepEqual(writes, [Buffer.from("headers"), row.frame]);
    const whole = Buffer.concat([row.frame, ...row.rest]);
    assert.deepEqual(JacobianRowsResponse.decode(whole.subarray(5)).row?.slices[0].values?.data, Buffer.from(values.buffer));
    writes.length = 0;
    assert.deepEqual(serializeMessage.call(call(row.messageBytes - 1), row), whole, "grpc-js refuses it whole, nothing written before");
    assert.deepEqual(writes, []);
    assert.deepEqual(serializeMessage.call(call(row.messageBytes), row), row.rest[0]);
    // Where the wrap is missing, the service's serializer gives grpc-js the whole message to frame.
    assert.deepEqual(loadDefinition().service.JacobianRows.responseSerialize(row), whole.subarray(5));
  });

  it("a connection holds at most 100 streams at once (SETTINGS_MAX_CONCURRENT_STREAMS): unended ones cannot pile up, and one write of streams costs the event loop little", async () => {
    const h2 = http2.connect(`http://${server.address}`);
    try {
      const [settings] = (await once(h2, "remoteSettings")) as [http2.Settings];
      assert.equal(settings.maxConcurrentStreams, 100);
    } finally {
      h2.close();
    }
  });

  it("0 without an encoding, and 1 with gzip, are served", async () => {
    const plain = await session.call(DESCRIBE, frame(EMPTY));
    assert.equal(plain.grpcStatus, 0, plain.grpcMessage);
    const gzipped = await session.call(DESCRIBE, frame(gzipSync(EMPTY), { compressed: true }), { headers: { "grpc-encoding": "gzip" } });
    assert.equal(gzipped.grpcStatus, 0, gzipped.grpcMessage);
    assert.deepEqual(gzipped.messages.map((m) => m.length > 0), plain.messages.map((m) => m.length > 0));
  });

  it("gzip requests that inflate past the server's budget for them (8 × --max-message-bytes, all calls together) are RESOURCE_EXHAUSTED; the rest are served, and their bytes are let go with their calls (61 KB of gzip held 60 MiB each, without bound)", async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const base = loadTesseract("vectoradd").definition;
    const gated = new TesseractRuntime({ ...base, apply: async (inputs: never) => (await gate, base.apply(inputs)) }, "");
    const limit = 1 << 20;
    const small = await startServer({ tesseract: gated, port: 0, workers: 0, maxMessageBytes: limit, logger: silentLogger, warmUpMs: 0 });
    const raw = new RawGrpcSession(small.address);
    try {
      // 0.9 MiB of zeros each, a few KB gzipped: ten of them are more than the 8 MiB the server holds.
      const zeros = ndarray(new Float64Array(59_000), [59_000]);
      const request = ApplyRequest.encode({ inputs: packAny("tesseract.examples.vectoradd.v1.Inputs", VectorInputs, { a: zeros, b: zeros }) }).finish();
      const body = frame(gzipSync(request), { compressed: true });
      assert.ok(body.length < 8192 && request.length > 0.9 * limit, `${body.length} bytes for ${request.length}`);
      // The calls served wait at the gate, holding their bytes; those past the budget are answered meanwhile.
      let refusedSoFar = 0;
      let threeRefused!: () => void;
      const refusals = new Promise<void>((resolve) => (threeRefused = resolve));
      const calls = Array.from({ length: 12 }, () =>
        raw.call("/tesseract.v1.Tesseract/Apply", body, { headers: { "grpc-encoding": "gzip" } }).then((r) => {
          if (r.grpcStatus === Code.RESOURCE_EXHAUSTED && ++refusedSoFar === 3) threeRefused();
          return r;
        }),
      );
      await Promise.race([refusals, Promise.all(calls)]);
      assert.ok(heldDecompressedBytes() >= 7 * request.length && heldDecompressedBytes() <= 8 * limit, `${heldDecompressedBytes()} bytes held`);
      open();
      const results = await Promise.all(calls);
      const refused = results.filter((r) => r.grpcStatus === Code.RESOURCE_EXHAUSTED);
      const served = results.filter((r) => r.grpcStatus === 0);
      assert.equal(refused.length + served.length, 12, results.map((r) => `${r.grpcStatus} ${r.grpcMessage}`).join("; "));
      assert.ok(served.length >= 7 && refused.length >= 3, `${served.length} served, ${refused.length} refused`);
      assert.equal(refused[0].grpcMessage, `compressed requests in flight decompress to more than the server holds for them (${8 * limit} bytes: 8 × --max-message-bytes); try again later`);
      // Let go with their calls, the budget serves again.
      assert.equal((await raw.call("/tesseract.v1.Tesseract/Apply", body, { headers: { "grpc-encoding": "gzip" } })).grpcStatus, 0);
    } finally {
      open();
      await raw.close();
      await small.close();
    }
    assert.equal(heldDecompressedBytes(), 0);
  });

  it("a gzip message inflates into one buffer of the size its trailer states, and whole where the trailer is the last of several members' (it states that member's size alone)", async () => {
    const message = randomBytes(300_000);
    const gz = gzipSync(message);
    const stream = new EventEmitter();
    for (const [name, body, expected] of [
      ["one member", gz, message],
      ["a small member last", Buffer.concat([gz, gzipSync(message.subarray(0, 1000))]), Buffer.concat([message, message.subarray(0, 1000)])],
      ["a big member last", Buffer.concat([gzipSync(message.subarray(0, 1000)), gz]), Buffer.concat([message.subarray(0, 1000), message])],
    ] as const) {
      const inflated = await inflateWithinBudget(body, "gzip", 1 << 20, stream);
      assert.ok(inflated.equals(expected), name);
    }
    assert.equal(heldDecompressedBytes(), 3 * message.length + 2000, "held while their calls are open");
    // A trailer that states another size than the member's is no gzip: refused, and nothing held.
    const lying = Buffer.concat([gz.subarray(0, gz.length - 4), Buffer.from(Uint32Array.of(10).buffer)]);
    await assert.rejects(inflateWithinBudget(lying, "gzip", 1 << 20, stream), (e: { details?: string }) => e.details === "Failed to decompress message");
    stream.emit("close");
    assert.equal(heldDecompressedBytes(), 0);
  });

  it("a unary call with no message, a frame cut short, or two messages: INVALID_ARGUMENT saying so", async () => {
    for (const body of [Buffer.alloc(0), frame(EMPTY, { declaredLength: 10 }), Buffer.from([0, 0])]) {
      const r = await session.call(DESCRIBE, body);
      assert.equal(r.grpcStatus, Code.INVALID_ARGUMENT, r.grpcMessage);
      assert.equal(r.grpcMessage, `${DESCRIBE} takes exactly one request message; the call ended without a complete one`);
    }
    const r = await session.call(DESCRIBE, [frame(EMPTY), frame(EMPTY)]);
    assert.equal(r.grpcStatus, Code.INVALID_ARGUMENT, r.grpcMessage);
    assert.equal(r.grpcMessage, `${DESCRIBE} takes exactly one request message; the call sent a second`);
    // A whole message, then part of another frame: its bytes were dropped, and the call answered OK.
    const flagged = frame(EMPTY);
    flagged[0] = 7;
    for (const rpc of [DESCRIBE, "/tesseract.v1.Tesseract/JacobianRows"]) {
      const request = rpc === DESCRIBE ? EMPTY : JacobianRequest.encode({ inputs: packAny("tesseract.examples.vectoradd.v1.Inputs", VectorInputs, { a: ndarray(Float64Array.of(1, 2), [2]), b: ndarray(Float64Array.of(3, 4), [2]) }), jac_inputs: ["a"], jac_outputs: ["result"], sparsity: [] }).finish();
      for (const tail of [Buffer.from([0, 0]), frame(EMPTY, { declaredLength: 1000 }), Buffer.concat([frame(EMPTY, { declaredLength: 1000 }), Buffer.alloc(10)]), flagged.subarray(0, 3)]) {
        const cut = await session.call(rpc, [frame(request), tail]);
        assert.deepEqual([cut.grpcStatus, cut.grpcMessage, cut.messages.length], [Code.INVALID_ARGUMENT, `${rpc} takes exactly one request message; the call ended inside a second one's frame`, 0]);
      }
    }
  });

  it("a call its client resets before the request is complete is logged and counted CANCELLED (it was INVALID_ARGUMENT: a request cut short)", async () => {
    const log = new LogLines();
    const logged = await startServer({ tesseract: "vectoradd", port: 0, logger: log.logger, warmUpMs: 0 });
    const h2 = http2.connect(`http://${logged.address}`).on("error", () => undefined);
    try {
      for (const part of [Buffer.alloc(0), frame(EMPTY, { declaredLength: 1000 }).subarray(0, 3)]) {
        const call = log.nextCall("Describe");
        const stream = h2.request({ ":method": "POST", ":path": DESCRIBE, "content-type": "application/grpc", te: "trailers" }, { endStream: false }).on("error", () => undefined);
        // Written, then cancelled once the write is out (as a client whose deadline passes mid-request).
        await new Promise<void>((resolve) => stream.write(part, () => resolve()));
        stream.close(http2.constants.NGHTTP2_CANCEL);
        const line = await call;
        assert.deepEqual([line.code, line.details], [Code.CANCELLED, "the client cancelled the call before its request was complete"]);
      }
    } finally {
      h2.close();
      await logged.close();
    }
  });

  it("--max-connection-age-ms: GOAWAY after the age, and calls go on over a new connection (which re-resolves DNS)", async () => {
    const aged = await startServer({ tesseract: "vectoradd", port: 0, logger: silentLogger, maxConnectionAgeMs: 100 });
    const raw = new RawGrpcSession(aged.address);
    const client = new grpc.Client(aged.address, grpc.credentials.createInsecure());
    const describe = () =>
      new Promise<number>((resolve) => client.makeUnaryRequest(DESCRIBE, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e) => resolve(e?.code ?? 0)));
    try {
      assert.equal(await describe(), 0);
      await once(raw.session, "goaway");
      assert.equal(await describe(), 0);
    } finally {
      client.close();
      await raw.close();
      await aged.close();
    }
  });

  it("a connection that sends no HTTP/2 preface is closed after silentConnectionMs; one that spoke stays (it held its socket for good)", async () => {
    const quiet = await startServer({ tesseract: "vectoradd", port: 0, logger: silentLogger, silentConnectionMs: 200 });
    const raw = new RawGrpcSession(quiet.address); // connected first: open longer than the silent one when that closes
    const [host, port] = [quiet.address.slice(0, quiet.address.lastIndexOf(":")), Number(quiet.address.slice(quiet.address.lastIndexOf(":") + 1))];
    const silent = net.connect(port, host).resume(); // reads what the server sends, so its close is seen
    try {
      await once(silent, "connect");
      await once(silent, "close");
      const r = await raw.call(DESCRIBE, frame(Buffer.alloc(0)));
      assert.equal(r.grpcStatus, 0, r.grpcMessage);
    } finally {
      silent.destroy();
      await raw.close();
      await quiet.close();
    }
  });

  it("a connection with no call for maxConnectionIdleMs is closed: one that went quiet after its preface, one Node answered GOAWAY for breaking an HTTP/2 rule (its socket was never closed: 20 000 took every file descriptor), and one whose header block never ended (the close waited on it)", async () => {
    const idle = await startServer({ tesseract: "vectoradd", port: 0, logger: silentLogger, maxConnectionIdleMs: 300, silentConnectionMs: 300, warmUpMs: 0 });
    const port = Number(idle.address.slice(idle.address.lastIndexOf(":") + 1));
    const preface = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
    const badSettings = Buffer.from([0, 0, 5, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // a SETTINGS frame 5 bytes long: not a multiple of 6
    // HEADERS on stream 1 without END_HEADERS, never continued: the idle close waited on that stream for good.
    const unfinishedHeaders = Buffer.from([0, 0, 2, 1, 0, 0, 0, 0, 1, 0x83, 0x86]);
    const sockets = [preface, Buffer.concat([preface, badSettings]), Buffer.concat([preface, unfinishedHeaders])].map((bytes) => net.connect(port, "127.0.0.1", function (this: net.Socket) {
      this.write(bytes);
    }).resume());
    try {
      await Promise.all(sockets.map((socket) => once(socket, "close")));
      const raw = new RawGrpcSession(idle.address);
      const r = await raw.call(DESCRIBE, frame(Buffer.alloc(0)));
      assert.equal(r.grpcStatus, 0, r.grpcMessage);
      await raw.close();
    } finally {
      sockets.forEach((socket) => socket.destroy());
      await idle.close();
    }
  });

  it("a client that spoke while the event loop was held past silentConnectionMs (a long apply inline) is served, not dropped as silent", async () => {
    const quiet = await startServer({ tesseract: "vectoradd", port: 0, logger: silentLogger, silentConnectionMs: 200 });
    const port = Number(quiet.address.slice(quiet.address.lastIndexOf(":") + 1));
    const client = net.connect(port, "127.0.0.1");
    try {
      await once(client, "data"); // the server's SETTINGS: its session, and the silence timer, have started
      let received = Buffer.alloc(0);
      const settingsAcked = new Promise<boolean>((resolve) => {
        client.on("data", (chunk: Buffer) => {
          received = Buffer.concat([received, chunk]);
          for (let at = 0; at + 9 <= received.length; at += 9 + received.readUIntBE(at, 3)) if (received[at + 3] === 4 && received[at + 4] === 1) resolve(true);
        });
        client.once("close", () => resolve(false));
      });
      // The client's preface and SETTINGS, then this thread held 400 ms: the timer is due before the bytes are read.
      client.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
      for (const end = performance.now() + 400; performance.now() < end; );
      assert.equal(await settingsAcked, true, "the server acknowledged the client's SETTINGS; it did not close the connection");
    } finally {
      client.destroy();
      await quiet.close();
    }
  });
});
