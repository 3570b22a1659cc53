/**
 * Clients that cancel many calls on one connection (each cancel is a RST_STREAM) against HTTP/2's
 * rapid-reset guard, which ends such a connection with GOAWAY INTERNAL_ERROR after ~1000 resets,
 * failing every call on it (server/grpc/stream-resets.ts): the server closes it gracefully first.
 */
import { strict as assert } from "node:assert";
import { Algorithm, assembleJacobian, TesseractClient, type JacobianRowsEvent } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { assertClose, meshJacobian } from "./helpers";

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
