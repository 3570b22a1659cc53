/**
 * Clients that cancel many calls on one connection (each cancel is a RST_STREAM) against HTTP/2's
 * rapid-reset guard, which ends such a connection with GOAWAY INTERNAL_ERROR after ~1000 resets,
 * failing every call on it (server/grpc/stream-resets.ts): the server closes it gracefully first.
 * And clients that open many streams in one write (test/h2-frames.ts), reset or not: what one
 * connection may make the server handle before its next read is bounded (100 streams at once).
 */
import { strict as assert } from "node:assert";
import { Algorithm, assembleJacobian, TesseractClient, type JacobianRowsEvent } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { Inputs as VectorInputs, Outputs as VectorOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import ndarray from "ndarray";
import { assertClose, meshJacobian } from "./helpers";
import { describeCalls, ErrorCode, errorCode, Flag, FrameType, goawaysOf, H2Connection, h2frame, type ReceivedFrame } from "./h2-frames";

describe("many cancelled calls on one connection", function () {
  this.timeout(120_000);
  let server: RunningServer;
  let client: TesseractClient<MeshInputs, MeshOutputs>;
  before(async () => {
    server = await startServer({ tesseract: "meshstats", host: "127.0.0.1", port: 0, warmUpMs: 0, logger: silentLogger });
    client = new TesseractClient<MeshInputs, MeshOutputs>(server.address, { inputs: MeshInputs, outputs: MeshOutputs });
  });
  after(async () => {
    client?.close();
    await server?.close(0);
  });

  it("1500 JacobianRows loops broken off after their first row: every one answered, and a stream read meanwhile completes", async () => {
    // Without the graceful close, the 1000-odd-th cancel ended the connection: a loop and the slow stream failed INTERNAL.
    const N = 100;
    const request = { inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"], options: { algorithm: Algorithm.ALGORITHM_CENTRAL } };
    const slow = client.jacobianRows(request)[Symbol.asyncIterator]();
    const slowEvents: JacobianRowsEvent[] = [];
    const readSlow = async () => {
      const next = await slow.next();
      if (!next.done) slowEvents.push(next.value);
      return !next.done;
    };
    for (let i = 0; i < 1500; i++) {
      let rows = 0;
      for await (const event of client.jacobianRows(request)) {
        if (event.row && ++rows === 1) break;
      }
      assert.equal(rows, 1, `loop ${i}`);
      // From the 600th loop on, the slow stream takes a row per loop: in flight when the connection is closed.
      if (i >= 600) await readSlow();
    }
    while (await readSlow());
    const { jacobian } = await assembleJacobian(slowEvents);
    assertClose(jacobian["statistics.barycenter"]["mesh.points"].data as Float64Array, meshJacobian(N, "barycenter"), 1e-9);
  });
});

describe("streams opened by hand, many in one write", function () {
  this.timeout(60_000);
  let server: RunningServer;
  let client: TesseractClient<VectorInputs, VectorOutputs>;
  before(async () => {
    server = await startServer({ tesseract: "vectoradd", host: "127.0.0.1", port: 0, warmUpMs: 0, logger: silentLogger });
    client = new TesseractClient<VectorInputs, VectorOutputs>(server.address, { inputs: VectorInputs, outputs: VectorOutputs });
    await client.describe(); // connected before the abusive connections come
  });
  after(async () => {
    client?.close();
    await server?.close(0);
  });

  /** A Jacobian and a health check on the SDK's own connection, started while `abuse` runs: both answered right. */
  async function answeredDuring<T>(abuse: () => Promise<T>): Promise<T> {
    const a = ndarray(Float64Array.of(1, 2, 3), [3]);
    const b = ndarray(Float64Array.of(4, 5, 6), [3]);
    const jacobian = client.jacobian({ inputs: { a, b } as never, inputPaths: ["a"], outputPaths: ["result"] });
    const health = client.health();
    const [result] = await Promise.all([abuse(), jacobian.then(({ jacobian: j }) => assertClose(j.result.a.data as Float64Array, [1, 0, 0, 0, 1, 0, 0, 0, 1], 1e-6)), health.then((s) => assert.equal(s, "SERVING"))]);
    return result;
  }

  it("1000 Describe calls opened and reset in one write (rapid reset): closed with GOAWAY NO_ERROR after at most two connections' worth of streams; other connections answered meanwhile", async () => {
    // Before, the connection was closed after ~760 streams (~1530), each handled in full: ~0.5 s of event loop.
    const connection = await H2Connection.open(server.port);
    const { goaways } = await answeredDuring(async () => {
      connection.write(Buffer.concat(describeCalls(1000, { reset: true })));
      return connection.closed;
    });
    assert.ok(goaways.length >= 1, "a GOAWAY");
    assert.deepEqual(
      goaways.map((g) => g.code),
      goaways.map(() => ErrorCode.NO_ERROR),
    );
    assert.equal(goaways[0].debug, "many cancelled calls: reconnect");
    const last = goaways[goaways.length - 1].lastStreamId;
    // 100 resets at once close it; the streams opened meanwhile are taken too, those after are refused.
    assert.ok(last >= 2 * 100 - 1 && last <= 2 * 200 - 1, `the last stream taken is ${last}`);
    assert.equal(await client.health(), "SERVING");
  });

  it("a client that cancels every call it has at once (100, a connection's worth) keeps its connection", async () => {
    const connection = await H2Connection.open(server.port);
    try {
      connection.write(Buffer.concat(describeCalls(100, { headersOnly: true })));
      connection.write(Buffer.concat(Array.from({ length: 100 }, (_, i) => h2frame(FrameType.RST_STREAM, 0, 2 * i + 1, errorCode(ErrorCode.CANCEL)))));
      // A PING after the resets: its answer comes once they have been read.
      connection.write(h2frame(FrameType.PING, 0, 0, Buffer.alloc(8)));
      const frames = await connection.until((received) => received.some((f) => f.type === FrameType.PING && f.flags & Flag.ACK));
      assert.deepEqual(goawaysOf(frames), []);
      assert.ok(!connection.socket.destroyed, "the connection is open");
    } finally {
      connection.destroy();
    }
  });

  it("1000 Describe calls in one write, none reset: a connection's worth (100) answered, the rest refused with REFUSED_STREAM (safe to retry), the connection kept", async () => {
    // Before, all 1000 were taken at once: ~0.5 s of event loop for one write.
    const connection = await H2Connection.open(server.port);
    try {
      await answeredDuring(async () => connection.write(Buffer.concat(describeCalls(1000))));
      const endedStreams = (frames: ReceivedFrame[]) => frames.filter((f) => (f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM) || f.type === FrameType.RST_STREAM);
      const frames = await connection.until((received) => endedStreams(received).length >= 1000);
      const ended = frames.filter((f) => f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM).map((f) => f.streamId);
      const refused = frames.filter((f) => f.type === FrameType.RST_STREAM).map((f) => [f.streamId, f.payload.readUInt32BE(0)]);
      assert.deepEqual(ended, Array.from({ length: 100 }, (_, i) => 2 * i + 1));
      assert.deepEqual(refused, Array.from({ length: 900 }, (_, i) => [2 * (i + 100) + 1, ErrorCode.REFUSED_STREAM]));
      assert.deepEqual(goawaysOf(frames), []);
    } finally {
      connection.destroy();
    }
  });

  it("250 calls at once on one SDK connection, a JacobianRows stream and a health check among them: every one answered (the client queues what is over the limit)", async () => {
    const a = ndarray(Float64Array.of(1, 2, 3), [3]);
    const b = ndarray(Float64Array.of(4, 5, 6), [3]);
    const rows = (async () => {
      const events: JacobianRowsEvent[] = [];
      for await (const event of client.jacobianRows({ inputs: { a, b } as never, inputPaths: ["b"], outputPaths: ["result"] })) events.push(event);
      return (await assembleJacobian(events)).jacobian.result.b.data as Float64Array;
    })();
    const applies = Array.from({ length: 250 }, (_, i) => client.apply({ a: ndarray(Float64Array.of(i), [1]), b: ndarray(Float64Array.of(1), [1]) } as never));
    assert.equal(await client.health(), "SERVING");
    const sums = (await Promise.all(applies)).map((outputs) => (outputs as unknown as { result: { data: Float64Array } }).result.data[0]);
    assert.deepEqual(sums, Array.from({ length: 250 }, (_, i) => i + 1));
    assertClose(await rows, [1, 0, 0, 0, 1, 0, 0, 0, 1], 1e-6);
  });
});
