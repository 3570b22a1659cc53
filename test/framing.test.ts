/**
 * gRPC framing that no client sends wrong, over raw HTTP/2: the compressed flag
 * (server/grpc/compressed-flag.ts: 1 only under a grpc-encoding that names a compression) and the
 * number of request messages of a unary call (server/grpc/guard.ts: exactly one).
 */
import { strict as assert } from "node:assert";
import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { gzipSync } from "node:zlib";
import { Code } from "../index";
import { COMPRESSED_FLAG_DETAILS } from "../server/grpc/compressed-flag";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { frame, RawGrpcSession } from "./raw-grpc";

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

  it("a flag byte other than 0 or 1: refused the same way", async () => {
    const framed = frame(EMPTY);
    framed[0] = 2;
    const r = await session.call(DESCRIBE, framed);
    assert.equal(r.grpcStatus, Code.INVALID_ARGUMENT, r.grpcMessage);
  });

  it("0 without an encoding, and 1 with gzip, are served", async () => {
    const plain = await session.call(DESCRIBE, frame(EMPTY));
    assert.equal(plain.grpcStatus, 0, plain.grpcMessage);
    const gzipped = await session.call(DESCRIBE, frame(gzipSync(EMPTY), { compressed: true }), { headers: { "grpc-encoding": "gzip" } });
    assert.equal(gzipped.grpcStatus, 0, gzipped.grpcMessage);
    assert.deepEqual(gzipped.messages.map((m) => m.length > 0), plain.messages.map((m) => m.length > 0));
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
});
