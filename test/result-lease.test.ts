/**
 * Result buffers released by their last reader (server/eval/result-lease.ts): a buffer is detached
 * once every item is released and not before; only a row that is exactly one item gets a release
 * (and the worker's word on its finiteness);
 * and a pooled JacobianRows stream encodes every row before its memory goes (values equal inline's,
 * every buffer detached by the end).
 */
import { FramedMessage } from "../server/grpc/framed-messages";
import { strict as assert } from "node:assert";
import { assertHeatOneStep } from "./helpers";
import * as fs from "node:fs";
import * as path from "node:path";
import { leasedItem, leaseResults } from "../server/eval/result-lease";
import { jacobianRowsMessages } from "../server/grpc/rows-stream";
import { Algorithm, loadTesseract, SparsityMode } from "../index";
import type { GradientRequest, JacobianRow, TesseractRuntime } from "../server/runtime";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import { JacobianRowsResponse } from "../generated/tesseract/v1/tesseract";
import { assembleJacobian, TesseractClient } from "../client";
import { Inputs as HeatInputs, Outputs as HeatOutputs } from "../generated/tesseract/examples/heat/v1/heat";
import { startServer } from "../index";
import { silentLogger } from "../server/log";

/** Item k's outputs (sizes 1 and 3, stride 4) as views of a batch's values. */
const item = (values: Float64Array, k: number) => [values.subarray(4 * k, 4 * k + 1), values.subarray(4 * k + 1, 4 * k + 4)];

describe("result leases", () => {
  it("detach a buffer once every item is released, each counted once", () => {
    const values = new Float64Array(12).map((_, i) => i);
    leaseResults(values, 4, true);
    const releases = [0, 1, 2].map((k) => leasedItem(item(values, k))?.release);
    assert.ok(releases.every((r) => r !== undefined));
    releases[0]!();
    releases[1]!();
    releases[1]!(); // twice: still one item
    assert.equal(values.buffer.byteLength, 96, "two of three released: still readable");
    assert.deepEqual([...item(values, 2)[1]], [9, 10, 11]);
    releases[2]!();
    assert.equal(values.buffer.byteLength, 0, "detached");
  });

  it("give no release to a row that is not exactly one item of a leased buffer", () => {
    const values = new Float64Array(12);
    leaseResults(values, 4, false);
    assert.equal(leasedItem(item(values, 1))?.checked, false, "not checked in the worker");
    assert.equal(leasedItem([new Float64Array(4)]), undefined, "its own memory");
    assert.equal(leasedItem([values.subarray(0, 1)]), undefined, "a part of an item");
    assert.equal(leasedItem([values.subarray(2, 6)]), undefined, "across two items");
    assert.equal(leasedItem([values.subarray(4, 5), values.subarray(6, 9)]), undefined, "outputs not one after the other");
    assert.equal(leasedItem([values.subarray(4, 8), values.subarray(8, 9)]), undefined, "more than an item");
    assert.equal(leasedItem([]), undefined);
    const view = new Float64Array(new ArrayBuffer(8 * 9), 8, 8);
    leaseResults(view, 4, true); // a part of its buffer: not leased (detaching would take the rest)
    assert.equal(leasedItem([view.subarray(0, 4)]), undefined);
    const partial = new Float64Array(10);
    leaseResults(partial, 4, true); // not whole items: not leased
    assert.equal(leasedItem([partial.subarray(0, 4)]), undefined);
    const whole = new Float64Array(8);
    leaseResults(whole, 4, true);
    assert.equal(leasedItem([whole.subarray(4, 8)])?.checked, true);
  });

  describe("a pooled JacobianRows stream", function () {
    this.timeout(60000);
    const runtimes: TesseractRuntime[] = [];
    after(() => Promise.all(runtimes.map((r) => r.close())));
    const load = async (workers: number) => {
      const runtime = loadTesseract("heat");
      await runtime.useEvaluation({ workers });
      runtimes.push(runtime);
      return runtime;
    };
    const n = 300;
    const request = (algorithm: Algorithm): GradientRequest => ({
      inputs: sampleHeatInputs(n, 2),
      inputPaths: ["initial_temperature"],
      outputPaths: ["final_temperature"],
      options: { algorithm, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE },
    });

    /** The stream's messages decoded into rows (index → values), and the rows the engine gave the encoder. */
    async function streamed(runtime: TesseractRuntime, algorithm: Algorithm) {
      const given: JacobianRow[] = [];
      const tapped = {
        jacobianRows(req: GradientRequest) {
          const stream = runtime.jacobianRows(req);
          const batches = (async function* () {
            for await (const batch of stream.batches) {
              given.push(...batch);
              yield batch;
            }
          })();
          return { ...stream, batches };
        },
      } as unknown as TesseractRuntime;
      const rows = new Map<number, number[]>();
      let tails = 0;
      for await (const item of jacobianRowsMessages(tapped, request(algorithm), 1 << 16)) {
        for (const message of Array.isArray(item) ? item : [item]) {
          if (!(message instanceof FramedMessage)) continue;
          const row = JacobianRowsResponse.decode(message.message).row!;
          const values = rows.get(row.input_index) ?? [];
          for (const slice of row.slices) values.push(...new Float64Array(new Uint8Array(slice.values!.data).buffer));
          rows.set(row.input_index, values);
          if (message.rest.length > 0) {
            // Sent from the worker's buffer: still there until the writer says the message is written.
            tails++;
            assert.ok(message.rest[0].buffer.byteLength > 0, `row ${row.input_index}: its values were let go before they were written`);
            assert.ok(message.written, "a tail's row is released once written");
          }
          message.written?.(); // what writeAll's write callback does
        }
      }
      return { rows, given, tails };
    }

    for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD]) {
      it(`sends every row before releasing it (${Algorithm[algorithm]}): the rows inline gives, from the workers' buffers, and every buffer detached`, async () => {
        const inline = await streamed(await load(0), algorithm);
        assert.ok(inline.given.every((row) => row.release === undefined), "inline rows are the engine's own");
        assert.equal(inline.tails, 0, "inline rows are copied into their messages");
        const pooled = await streamed(await load(2), algorithm);
        assert.equal(pooled.rows.size, n);
        for (const [index, values] of inline.rows) {
          assert.equal(values.length, n, `row ${index}`);
          assert.deepEqual(pooled.rows.get(index), values, `row ${index}`);
        }
        assert.equal(pooled.given.filter((row) => row.release).length, n, "every pooled row leased");
        assert.equal(pooled.tails, n, "every pooled row sent from where its worker put it (one message each)");
        const buffers = new Set(pooled.given.map((row) => row.values[0].buffer));
        assert.ok(buffers.size > 1, `${buffers.size} batches`);
        for (const buffer of buffers) assert.equal(buffer.byteLength, 0, "detached once written");
      });
    }
  });

  // Rows split over messages of 1 KB, whole (the default budget), and whole over TLS: each message a worker's values as its tail.
  const tlsFile = (name: string) => fs.readFileSync(path.join(__dirname, "../../test/fixtures/tls", name));
  for (const { streamChunkBytes, tls } of [{ streamChunkBytes: 1024 }, {}, { tls: true }] as { streamChunkBytes?: number; tls?: boolean }[]) describe(`served streams under two workers, ${streamChunkBytes ? `${streamChunkBytes}-byte messages` : "whole rows"}${tls ? " over TLS" : ""}`, function () {
    this.timeout(60000);
    // One step of heat with the default dt: J = I + r L, r = 0.45 (diagonal 1 - 2r, neighbours r).
    // Whole rows of 12 KB, 18 MB a stream: three at once outgrow the client's 16 MiB window, more than that window holds.
    const n = streamChunkBytes ? 200 : 1500;
    const request = { inputs: sampleHeatInputs(n, 1), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"], options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
    let server: Awaited<ReturnType<typeof startServer>>;
    let client: TesseractClient<HeatInputs, HeatOutputs>;
    before(async () => {
      const serverTls = tls ? { cert: tlsFile("server.crt"), key: tlsFile("server.key") } : undefined;
      server = await startServer({ tesseract: "heat", host: "127.0.0.1", port: 0, workers: 2, streamChunkBytes, tls: serverTls, logger: silentLogger });
      // The certificate names localhost; grpc-js would check the IP address.
      const secure = tls ? { tls: { ca: tlsFile("ca.crt") }, channelOptions: { "grpc.ssl_target_name_override": "localhost" } } : {};
      client = new TesseractClient<HeatInputs, HeatOutputs>(server.address, { inputs: HeatInputs, outputs: HeatOutputs }, secure);
    });
    after(async () => {
      client.close();
      await server.close(1000);
    });

    /** The assembled stream against heat's analytic Jacobian: band values to rounding, exact zeros off it. */
    async function assertHeatJacobian(stream: ReturnType<typeof client.jacobianRows>) {
      const { jacobian, stats } = await assembleJacobian(stream);
      assert.equal(stats?.apply_calls, 2 * n);
      const J = jacobian["final_temperature"]["initial_temperature"];
      assertHeatOneStep(J, n);
    }

    it("heat's analytic Jacobian, exact zeros off its band", async () => {
      await assertHeatJacobian(client.jacobianRows(request));
    });

    it("three at once, a fourth cancelled after its first rows: each complete one exact", async () => {
      const controller = new AbortController();
      // Its rejection is awaited from the start: it may come before the others end.
      const cancelled = assert.rejects(
        (async () => {
          for await (const event of client.jacobianRows(request, { signal: controller.signal })) if ("row" in event) controller.abort();
        })(),
        /CANCELLED/,
      );
      await Promise.all([assertHeatJacobian(client.jacobianRows(request)), assertHeatJacobian(client.jacobianRows(request)), assertHeatJacobian(client.jacobianRows(request))]);
      await cancelled;
      await assertHeatJacobian(client.jacobianRows(request));
    });
  });
});
