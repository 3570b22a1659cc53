/**
 * JacobianRows uses each row's frame again once the transport has written it (framed-messages.ts's
 * FramePool): every row the client reads must still be the row it was encoded as. vectoradd's
 * rows d result / d a[i] are s e_i (result = s a + b), 3 000 values (24 KB frames, pooled), read
 * with pauses so that frames wait in the transport while later rows are encoded.
 */
import { strict as assert } from "node:assert";
import ndarray from "ndarray";
import { Algorithm, SparsityMode, TesseractClient } from "../client";
import { Inputs, Outputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { startServer } from "../index";
import { FramePool } from "../server/grpc/framed-messages";
import { silentLogger } from "../server/log";

describe("JacobianRows: frames used again once written", function () {
  this.timeout(60_000);

  it("3 000 rows of 24 KB, read with pauses: each is the row it was encoded as", async () => {
    const L = 3000;
    const server = await startServer({ tesseract: "vectoradd", host: "127.0.0.1", port: 0, evalCacheBytes: 0, warmUpMs: 0, logger: silentLogger });
    // A small window keeps most frames waiting in the transport while the next rows are encoded.
    const client = new TesseractClient<Inputs, Outputs>(server.address, { inputs: Inputs, outputs: Outputs }, { channelOptions: { "grpc-node.flow_control_window": 64 * 1024 } });
    try {
      const inputs = {
        a: ndarray(Float64Array.from({ length: L }, (_, i) => Math.sin(i)), [L]),
        b: ndarray(Float64Array.from({ length: L }, (_, i) => Math.cos(i)), [L]),
        s: ndarray(Float64Array.of(2), []),
        normalize: false,
      };
      const request = { inputs, inputPaths: ["a"], outputPaths: ["result"], options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
      let rows = 0;
      for await (const event of client.jacobianRows(request)) {
        if (!event.row) continue;
        const { input_index, slices } = event.row;
        assert.equal(slices.length, 1);
        const values = slices[0].values;
        assert.equal(values.length, L);
        for (let j = 0; j < L; j++) {
          const expected = j === input_index ? 2 : 0;
          if (Math.abs(values[j] - expected) > 1e-6) assert.fail(`row a[${input_index}]: value ${j} is ${values[j]}, expected ${expected} (row ${rows} read)`);
        }
        if (++rows % 64 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      assert.equal(rows, L);
    } finally {
      client.close();
      await server.close();
    }
  });

  it("the pool gives a frame back only at its size, holds at most 8 MB, and keeps no frame under 16 KB", () => {
    const pool = new FramePool();
    const big = Buffer.alloc(32 << 10);
    pool.give(big);
    assert.equal(pool.take(16 << 10), undefined, "another size");
    assert.equal(pool.take(32 << 10), big);
    assert.equal(pool.take(32 << 10), undefined, "taken once");
    pool.give(Buffer.alloc(8 << 10));
    assert.equal(pool.take(8 << 10), undefined, "small frames are not kept");
    for (let k = 0; k < 300; k++) pool.give(Buffer.alloc(32 << 10));
    let kept = 0;
    while (pool.take(32 << 10)) kept++;
    assert.equal(kept, 256, "8 MB of 32 KB frames");
  });
});
