/**
 * Bytes held for peers that do not move them (server/grpc/stalled-streams.ts), with raw HTTP/2
 * clients: request messages that never finish, and answers a client never takes (a window of 0).
 * Each case checks every stream ends (a status or a reset, no hang) and the server still answers.
 */
import { strict as assert } from "node:assert";
import { once } from "node:events";
import * as http2 from "node:http2";
import { startServer, type RunningServer, loadTesseract } from "../index";
import { JacobianRequest, FiniteDifferenceOptions } from "../generated/tesseract/v1/tesseract";
import { SparsityMode } from "../index";
import { silentLogger } from "../server/log";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import { TesseractClient } from "../client";
import { Inputs as HeatInputs, Outputs as HeatOutputs } from "../generated/tesseract/examples/heat/v1/heat";
import { frame } from "./raw-grpc";
import { KeptBuffers, Watched } from "../server/grpc/stalled-streams";
import { ServerReflectionRequest } from "../generated/grpc/reflection/v1/reflection";

const JACOBIAN = "/tesseract.v1.Tesseract/Jacobian";
const heat = loadTesseract("heat");

/** A dense heat Jacobian request of n × n FP64 values (8 n² bytes of answer). */
function jacobianRequest(n: number): Buffer {
  const { type_url, value } = heat.schema.inputs.encodeAny(sampleHeatInputs(n, 1, 1), "inputs");
  const request = JacobianRequest.fromPartial({
    inputs: { type_url, value: Buffer.from(value) },
    jac_inputs: ["initial_temperature"],
    jac_outputs: ["final_temperature"],
    options: FiniteDifferenceOptions.fromPartial({ sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE }),
  });
  return frame(JacobianRequest.encode(request).finish());
}

interface Ended {
  grpcStatus?: string;
  grpcMessage?: string;
  rstCode?: number;
}

/** How a stream ended: its status (headers or trailers), and its reset code. */
function ended(stream: http2.ClientHttp2Stream): Promise<Ended> {
  const result: Ended = {};
  const status = (h: http2.IncomingHttpHeaders) => {
    if (h["grpc-status"] === undefined) return;
    result.grpcStatus = String(h["grpc-status"]);
    result.grpcMessage = decodeURIComponent(String(h["grpc-message"] ?? ""));
  };
  stream.on("response", status);
  stream.on("trailers", status);
  stream.on("error", () => {});
  return once(stream, "close").then(() => ({ ...result, rstCode: stream.rstCode }));
}

const post = (session: http2.ClientHttp2Session, path = JACOBIAN) => session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });

describe("streams that hold bytes without moving them", function () {
  this.timeout(30000);
  let server: RunningServer | undefined;
  let session: http2.ClientHttp2Session | undefined;

  afterEach(async () => {
    session?.destroy();
    await server?.close(0);
    server = session = undefined;
  });

  /** A normal Jacobian on a fresh connection: the server still answers. */
  async function stillAnswers(): Promise<void> {
    const fresh = http2.connect(`http://${server!.address}`);
    try {
      const stream = post(fresh);
      stream.end(jacobianRequest(4));
      stream.resume();
      assert.equal((await ended(stream)).grpcStatus, "0");
    } finally {
      fresh.destroy();
    }
  }

  it("unfinished request messages: past 8 × the message limit in all, the stream whose bytes pass it is RESOURCE_EXHAUSTED; one that stops arriving ends after --stream-stall-ms (they were held for good)", async () => {
    const limit = 1 << 20;
    server = await startServer({ tesseract: heat, port: 0, workers: 0, maxMessageBytes: limit, streamStallMs: 300, warmUpMs: 0, logger: silentLogger });
    session = http2.connect(`http://${server.address}`);
    const streams = Array.from({ length: 12 }, () => post(session!));
    const endings = streams.map(ended);
    // Each declares a message just under the limit and sends 90 % of it: 10.8 MiB in all, never finished.
    for (const stream of streams) {
      stream.write(frame(new Uint8Array(0), { declaredLength: limit - 16 }));
      stream.write(Buffer.alloc(Math.floor(0.9 * limit)));
    }
    const results = await Promise.all(endings);
    assert.ok(results.every((r) => r.grpcStatus === "8"), JSON.stringify(results));
    const budget = results.filter((r) => r.grpcMessage === "request messages still arriving hold more than 8388608 bytes, the most this server holds (8 × the message limit): try again later");
    const stalled = results.filter((r) => r.grpcMessage === "its request message stopped arriving: no bytes for 300 ms, the most this server waits (--stream-stall-ms)");
    assert.equal(budget.length + stalled.length, 12, JSON.stringify(results.map((r) => r.grpcMessage)));
    // What the stalled ones held fits the budget: at most 9 of 0.9 MiB.
    assert.ok(budget.length >= 3 && stalled.length >= 1, `${budget.length} over the budget, ${stalled.length} stalled`);
    await stillAnswers();
  });

  it("PINGs answered on the connection are no progress of an unfinished message: it still ends after --stream-stall-ms (they kept every stall clock at zero)", async () => {
    server = await startServer({ tesseract: heat, port: 0, workers: 0, streamStallMs: 300, warmUpMs: 0, logger: silentLogger });
    session = http2.connect(`http://${server.address}`);
    const stream = post(session);
    const end = ended(stream);
    stream.write(frame(new Uint8Array(0), { declaredLength: 1000 }));
    const pings = setInterval(() => session!.ping(() => {}), 50);
    try {
      assert.equal((await end).grpcMessage, "its request message stopped arriving: no bytes for 300 ms, the most this server waits (--stream-stall-ms)");
    } finally {
      clearInterval(pings);
    }
  });

  it("eight concurrent requests of 0.9 × the message limit on one connection are all answered (their bytes interleave, all unfinished at once)", async () => {
    const n = 110_000; // 880 kB of FP64 temperatures
    server = await startServer({ tesseract: heat, port: 0, workers: 0, maxMessageBytes: 1 << 20, warmUpMs: 0, logger: silentLogger });
    const client = new TesseractClient(server.address, { inputs: HeatInputs, outputs: HeatOutputs });
    try {
      const answers = await Promise.all(Array.from({ length: 8 }, (_, k) => client.apply(sampleHeatInputs(n, 1, 1)).then((out) => [k, out.final_temperature!.size])));
      assert.deepEqual(answers, Array.from({ length: 8 }, (_, k) => [k, n]));
    } finally {
      client.close();
    }
  });

  it("an answer its client takes none of is reset after twice --stream-stall-ms (it stayed queued for good)", async () => {
    server = await startServer({ tesseract: heat, port: 0, workers: 0, streamStallMs: 200, warmUpMs: 0, logger: silentLogger });
    session = http2.connect(`http://${server.address}`, { settings: { initialWindowSize: 0 } });
    const stream = post(session);
    const end = ended(stream);
    stream.end(jacobianRequest(100));
    const result = await end;
    assert.equal(result.rstCode, http2.constants.NGHTTP2_CANCEL, JSON.stringify(result));
    await stillAnswers();
  });

  it("answers not taken past 8 × the message limit in all: the longest stuck are reset, without a time limit too", async () => {
    const limit = 1 << 20;
    server = await startServer({ tesseract: heat, port: 0, workers: 0, maxMessageBytes: limit, streamStallMs: 0, warmUpMs: 0, logger: silentLogger });
    session = http2.connect(`http://${server.address}`, { settings: { initialWindowSize: 0 } });
    // Twenty-six answers of 8 × 200² = 320 000 bytes: 8.3 MB, under the 8 MiB budget; four more pass it.
    const streams = Array.from({ length: 30 }, () => post(session!));
    const endings = streams.map(ended);
    for (const stream of streams) stream.end(jacobianRequest(200));
    // Reset until under the budget: four (26 × 320 kB fit in 8 MiB), the longest stuck. Which four
    // is the server's to tell: it dates an answer by the look that first saw it queued, and under
    // load answers of streams opened later may come first.
    const answered = streams.map((stream) => once(stream, "response").then(() => true, () => false));
    const reset: number[] = [];
    let fourth: () => void;
    const fourReset = new Promise<void>((resolve) => (fourth = resolve));
    endings.forEach((e, k) => void e.then((r) => r.rstCode === http2.constants.NGHTTP2_CANCEL && reset.push(k) === 4 && fourth()));
    await fourReset;
    await stillAnswers(); // a look or more later: no more are reset
    assert.equal(reset.length, 4, `reset: ${reset}`);
    assert.deepEqual(await Promise.all(reset.map((k) => answered[k])), [true, true, true, true], "each reset stream had its answer begun (stuck, not refused)");
  });

  it("a request that does not end (headers alone, a whole message without END_STREAM, a call refused at once) ends after --stream-stall-ms, unary or server-streaming (each was held for good, ~9 kB each for a few bytes); a reflection stream idle between its requests stays", async () => {
    server = await startServer({ tesseract: heat, port: 0, workers: 0, streamStallMs: 300, warmUpMs: 0, logger: silentLogger });
    session = http2.connect(`http://${server.address}`);
    // Reflection first: its client's last byte is older than any other's, and it is kept all the same.
    const reflection = post(session, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
    const answers: Buffer[] = [];
    reflection.on("data", (chunk: Buffer) => answers.push(chunk));
    const reflectionEnded = ended(reflection);
    const listServices = frame(ServerReflectionRequest.encode(ServerReflectionRequest.fromPartial({ list_services: "" })).finish());
    reflection.write(listServices);
    await once(reflection, "data");
    const headersOnly = post(session);
    const wholeMessage = post(session);
    wholeMessage.write(jacobianRequest(4));
    const rows = post(session, "/tesseract.v1.Tesseract/JacobianRows");
    const unknown = ended(post(session, "/tesseract.v1.Nope/Nothing"));
    const results = await Promise.all([headersOnly, wholeMessage, rows].map(ended));
    const why = "its request did not end: no bytes for 300 ms, the most this server waits (--stream-stall-ms)";
    assert.deepEqual(results, new Array(3).fill({ grpcStatus: "8", grpcMessage: why, rstCode: http2.constants.NGHTTP2_CANCEL }));
    // Answered UNIMPLEMENTED at once, its stream waited for the client's end too: reset.
    assert.deepEqual(await unknown, { grpcStatus: "12", grpcMessage: 'this server has no method "/tesseract.v1.Nope/Nothing"', rstCode: http2.constants.NGHTTP2_CANCEL });
    assert.ok(!reflection.closed, "the reflection stream is open");
    reflection.write(listServices);
    await once(reflection, "data");
    reflection.end();
    assert.equal((await reflectionEnded).grpcStatus, "0");
    await stillAnswers();
  });

  it("streams waiting for their request's end count against the budget (8 KiB each, at least 1000): past it, the one whose client sent its last byte longest ago ends, without a time limit too", async () => {
    // 8 × 1 MiB of budget: 1024 streams.
    server = await startServer({ tesseract: heat, port: 0, workers: 0, maxMessageBytes: 1 << 20, streamStallMs: 0, warmUpMs: 0, logger: silentLogger });
    // A connection holds 100 streams at once (MAX_CONCURRENT_STREAMS): 1000 take ten, opened one after the other.
    const connections: http2.ClientHttp2Session[] = [];
    const first: http2.ClientHttp2Stream[] = [];
    for (let c = 0; c < 10; c++) {
      connections.push(http2.connect(`http://${server.address}`));
      first.push(...Array.from({ length: 100 }, () => post(connections[c])));
      await once(first[first.length - 1], "ready");
    }
    const endings = first.map(ended);
    const other = http2.connect(`http://${server.address}`);
    try {
      const more = Array.from({ length: 27 }, () => post(other));
      more.forEach((stream) => stream.on("error", () => {}));
      // 1027 waiting: the three whose clients sent nothing for longest (the first opened) end.
      const results = await Promise.all([0, 1, 2].map((k) => endings[k]));
      for (const r of results) {
        assert.equal(r.grpcStatus, "8");
        assert.match(r.grpcMessage!, /^more than 1024 streams wait for their requests to end, the most this server holds; this one's client has sent nothing for \d+ ms$/);
      }
      assert.ok(!first[3].closed && !more[26].closed, "the others are kept");
      await stillAnswers();
    } finally {
      other.destroy();
      for (const connection of connections) connection.destroy();
    }
  });

  it("an answer its client reads steadily is moving, though one large write stays whole in its queue (such a reader's stream was reset as stuck); bytes the server writes otherwise (PING answers) are not", () => {
    const state = { remoteWindowSize: 65_535 };
    const stream = { writableLength: 1 << 20, session: { state } } as unknown as http2.ServerHttp2Stream;
    const watched = new Watched(stream, new KeptBuffers());
    watched.look(0);
    for (let t = 500; t <= 5000; t += 500) {
      // Data sent, then taken by the client: the connection's send window moves; the write is not done, its length stays.
      state.remoteWindowSize += t % 1000 === 0 ? 40_000 : -40_000;
      watched.look(t);
      assert.equal(watched.movedAt, t);
    }
    watched.look(7000); // nothing sent or taken since (a PING answered meanwhile changes neither): the clock runs
    assert.equal(watched.movedAt, 5000);
  });

  it("unfinished messages count the read buffers their bytes keep, each once, not their bytes (padded 1-byte frames kept 400 times what they held)", () => {
    const kept = new KeptBuffers();
    const stream = { writableLength: 0 } as unknown as http2.ServerHttp2Stream;
    const [a, b] = [new Watched(stream, kept), new Watched(stream, kept)];
    const read = Buffer.alloc(64 * 1024); // one transport read, of which each chunk is a slice
    frame(new Uint8Array(0), { declaredLength: 1000 }).copy(read, 0);
    frame(new Uint8Array(0), { declaredLength: 1000 }).copy(read, 10);
    a.received(read.subarray(0, 6));
    assert.equal(kept.bytes, 64 * 1024);
    b.received(read.subarray(10, 16));
    assert.equal(kept.bytes, 64 * 1024, "two messages in one buffer: kept once");
    a.received(Buffer.alloc(100));
    assert.equal(kept.bytes, 64 * 1024 + 100, "another buffer: Buffer.alloc's own");
    a.received(Buffer.alloc(899));
    assert.equal(kept.bytes, 64 * 1024, "a is whole: what only it kept goes");
    b.letGo();
    assert.equal(kept.bytes, 0);
  });
});
