/**
 * assembleSparseJacobian's result reads one (output, input) block by path, as assembleJacobian's
 * does: `block()` and `errorBlock()`, checked against analytic derivatives (heat's tridiagonal step,
 * meshstats' barycenter and first point) and against the dense assembly of the same stream.
 */
import { strict as assert } from "node:assert";
import { Algorithm, assembleJacobian, assembleSparseJacobian, SparsityMode, TesseractClient, type SparseBlock } from "../client";
import { Inputs as HeatInputs, Outputs as HeatOutputs } from "../generated/tesseract/examples/heat/v1/heat";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { sampleHeatInputs, sampleMeshInputs } from "../server/tesseracts/samples";
import { assertHeatOneStep, clientRejects, meshJacobian } from "./helpers";

/** A block's CSC entries as the dense (outputSize × inputSize) matrix, row-major. */
function dense(block: SparseBlock): Float64Array {
  const out = new Float64Array(block.outputSize * block.inputSize);
  for (let j = 0; j < block.inputSize; j++) {
    for (let p = block.indptr[j]; p < block.indptr[j + 1]; p++) out[block.indices[p] * block.inputSize + j] = block.values[p];
  }
  return out;
}

describe("SDK: assembleSparseJacobian's block()", () => {
  let heatServer: RunningServer;
  let meshServer: RunningServer;
  let heat: TesseractClient<HeatInputs, HeatOutputs>;
  let mesh: TesseractClient<MeshInputs, MeshOutputs>;

  before(async () => {
    [heatServer, meshServer] = await Promise.all([
      startServer({ tesseract: "heat", host: "127.0.0.1", port: 0, logger: silentLogger }),
      startServer({ tesseract: "meshstats", host: "127.0.0.1", port: 0, logger: silentLogger }),
    ]);
    heat = new TesseractClient(heatServer.address, { inputs: HeatInputs, outputs: HeatOutputs });
    mesh = new TesseractClient(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs });
  });

  after(async () => {
    heat?.close();
    mesh?.close();
    await Promise.all([heatServer?.close(), meshServer?.close()]);
  });

  it("heat, one step: block() is the tridiagonal I + rL (3n - 2 entries, 0.1 and 0.45), equal to the dense block", async () => {
    const n = 12;
    const request = { inputs: sampleHeatInputs(n, 1), inputPaths: ["initial_temperature", "diffusivity"], outputPaths: ["final_temperature"] };
    const sparse = await assembleSparseJacobian(heat.jacobianRows(request));
    const J = sparse.block("final_temperature", "initial_temperature");
    assert.deepEqual([J.shape, J.outputSize, J.inputSize, J.values.length], [[n, n], n, n, 3 * n - 2]);
    for (let j = 0; j < n; j++) assert.deepEqual(Array.from(J.indices.subarray(J.indptr[j], J.indptr[j + 1])), [j - 1, j, j + 1].filter((i) => i >= 0 && i < n));
    const values = dense(J);
    assertHeatOneStep({ get: (i, j) => values[i * n + j] }, n);
    const assembled = await assembleJacobian(heat.jacobianRows(request));
    assert.deepEqual(Array.from(values), Array.from(assembled.block("final_temperature", "initial_temperature").data));
    const kappa = sparse.block("final_temperature", "diffusivity");
    assert.deepEqual([kappa.shape, kappa.inputSize], [[n], 1]);
    assert.deepEqual(Array.from(dense(kappa)), Array.from(assembled.block("final_temperature", "diffusivity").data));
  });

  it("meshstats: block() of each output is its analytic Jacobian (barycenter 1/N on the diagonal of each coordinate, the first point's identity)", async () => {
    const N = 5;
    const sparse = await assembleSparseJacobian(mesh.jacobianRows({ inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter", "statistics.first_point_coordinates"] }));
    const bary = sparse.block("statistics.barycenter", "mesh.points");
    assert.deepEqual([bary.shape, bary.values.length], [[3, N, 3], 3 * N]);
    const expected = meshJacobian(N, "barycenter");
    dense(bary).forEach((v, k) => assert.ok(Math.abs(v - expected[k]) < 1e-9, `barycenter entry ${k}: ${v}, expected ${expected[k]}`));
    const first = sparse.block("statistics.first_point_coordinates", "mesh.points");
    const expectedFirst = meshJacobian(N, "first_point_coordinates");
    dense(first).forEach((v, k) => assert.ok(Math.abs(v - expectedFirst[k]) < 1e-9, `first point entry ${k}: ${v}, expected ${expectedFirst[k]}`));
    // As assembleJacobian's result: NOT_FOUND naming the pairs there are; no estimates from central differences.
    await clientRejects(Promise.resolve().then(() => sparse.block("statistics.barycenter", "mesh.point")), "NOT_FOUND", /^the result has no Jacobian block d output \/ d input "statistics\.barycenter \/ mesh\.point"; it has: statistics\.barycenter \/ mesh\.points, statistics\.first_point_coordinates \/ mesh\.points$/);
    await clientRejects(Promise.resolve().then(() => sparse.errorBlock("statistics.barycenter", "mesh.points")), "NOT_FOUND", /^the result has no error estimates/);
  });

  it("richardson: errorBlock() has the block's structure and its estimates, as the dense errorBlock()", async () => {
    const request = {
      inputs: sampleMeshInputs(4),
      inputPaths: ["mesh.points"],
      outputPaths: ["statistics.barycenter"],
      options: { algorithm: Algorithm.ALGORITHM_RICHARDSON, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE },
    };
    const sparse = await assembleSparseJacobian(mesh.jacobianRows(request));
    const assembled = await assembleJacobian(mesh.jacobianRows(request));
    const block = sparse.block("statistics.barycenter", "mesh.points");
    const errors = sparse.errorBlock("statistics.barycenter", "mesh.points");
    assert.deepEqual([Array.from(errors.indptr), Array.from(errors.indices)], [Array.from(block.indptr), Array.from(block.indices)]);
    assert.deepEqual(Array.from(dense(errors)), Array.from(assembled.errorBlock("statistics.barycenter", "mesh.points").data));
  });
});
