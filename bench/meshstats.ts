/**
 * `npm run bench` (first part): meshstats end to end over gRPC on loopback (server and SDK client in
 * this process), N = 10 … 10000: central, forward and stochastic Jacobians, JVP and VJP. For each:
 * wall time, apply calls, calls/s, and the overhead ratio wall / (calls × bare apply), the bare
 * apply timed in the same run. Configurations estimated over BENCH_TIME_CAP_S are skipped.
 */
import ndarray from "ndarray";
import { TesseractClient } from "../client";
import { Inputs, Outputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { startServer } from "../index";
import { silentLogger } from "../server/log";
import { Algorithm, SparsityMode } from "../index";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { report } from "./report";

const TIME_CAP_S = Number(process.env.BENCH_TIME_CAP_S ?? 20);
const SIZES = (process.env.BENCH_SIZES ?? "10,100,1000,10000").split(",").map(Number);
const OUTPUTS = ["statistics.first_point_coordinates", "statistics.barycenter"];
const DENSE = SparsityMode.SPARSITY_MODE_DENSE;

/** Median seconds per call of bare apply, over rounds of ~40 ms. */
function bareApplySeconds(apply: (i: unknown) => unknown, inputs: unknown): number {
  const samples: number[] = [];
  for (let round = 0; round < 5; round++) {
    let calls = 0;
    const start = performance.now();
    while (performance.now() - start < 40) {
      apply(inputs);
      calls++;
    }
    samples.push((performance.now() - start) / 1000 / calls);
  }
  return samples.sort((a, b) => a - b)[2];
}

async function main() {
  const server = await startServer({ tesseract: "meshstats", port: 0, logger: silentLogger });
  const client = new TesseractClient<Inputs, Outputs>(server.address, { inputs: Inputs, outputs: Outputs, inputType: "tesseract.examples.meshstats.v1.Inputs", outputType: "tesseract.examples.meshstats.v1.Outputs" });
  const results: Record<string, unknown>[] = [];
  for (const N of SIZES) {
    const inputs = sampleMeshInputs(N);
    const n = 3 * N;
    const bare = bareApplySeconds(server.runtime.definition.apply, inputs);
    const cotangent = { [OUTPUTS[0]]: ndarray(Float64Array.of(1, 2, 3), [3]), [OUTPUTS[1]]: ndarray(Float64Array.of(1, 1, 1), [3]) };
    const tangent = { "mesh.points": ndarray(new Float64Array(n).fill(1), [N, 3]) };
    const runs: [string, number, () => Promise<{ stats: { apply_calls: number } }>][] = [
      ["jacobian central", 2 * n, () => client.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode: DENSE } })],
      ["jacobian forward", n + 1, () => client.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: DENSE } })],
      ["jacobian stochastic", 2 * Math.max(10, Math.floor(Math.sqrt(n))), () => client.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm: Algorithm.ALGORITHM_STOCHASTIC, seed: 1 } })],
      ["jvp central", 2, () => client.jvp({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, tangent })],
      ["vjp central", 2 * n, () => client.vjp({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, cotangent, options: { sparsity_mode: DENSE } })],
    ];
    for (const [endpoint, planned, run] of runs) {
      const estimate = planned * bare * 3;
      if (estimate > TIME_CAP_S) {
        results.push({ N, endpoint, skipped: `estimated ${estimate.toFixed(0)} s > cap ${TIME_CAP_S} s` });
        continue;
      }
      // Warm-up: the engine's async paths take thousands of evaluations to be fully optimised.
      for (let spent = 0, t = performance.now(); spent < Math.min(2, TIME_CAP_S / 4); spent = (performance.now() - t) / 1000) await run();
      const walls: number[] = [];
      let calls = 0;
      for (let r = 0; r < 5; r++) {
        const started = performance.now();
        calls = (await run()).stats.apply_calls;
        walls.push((performance.now() - started) / 1000);
      }
      const wall = walls.sort((a, b) => a - b)[2];
      results.push({
        N,
        endpoint,
        wall_ms: +(wall * 1000).toFixed(2),
        apply_calls: calls,
        calls_per_s: Math.round(calls / wall),
        bare_apply_us: +(bare * 1e6).toFixed(2),
        overhead: +(wall / (calls * bare)).toFixed(2),
      });
    }
  }
  client.close();
  await server.close();
  report("meshstats", results);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
