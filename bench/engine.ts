/**
 * `npm run bench`: the finite-difference engine on meshstats, in-process (no gRPC yet).
 * For each N and endpoint: wall time, apply calls, calls/s, and the overhead ratio
 * wall / (calls × bare apply), with the bare apply timed in the same run. Prints a table and
 * writes bench/results/engine.json. Configurations whose estimate exceeds TIME_CAP_S are skipped.
 */
import ndarray from "ndarray";
import { report } from "./report";
import { loadTesseract } from "../server/loader";
import { Algorithm } from "../server/tesseract";
import { sampleMeshInputs } from "../server/tesseracts/samples";

const TIME_CAP_S = Number(process.env.BENCH_TIME_CAP_S ?? 20);
const SIZES = (process.env.BENCH_SIZES ?? "10,100,1000,10000").split(",").map(Number);
const OUTPUTS = ["statistics.first_point_coordinates", "statistics.barycenter"];

/** Median seconds per call of bare apply, over enough calls to take ~0.2 s. */
async function bareApplySeconds(apply: (i: unknown) => unknown, inputs: unknown): Promise<number> {
  const samples: number[] = [];
  for (let round = 0; round < 5; round++) {
    let calls = 0;
    const start = performance.now();
    while (performance.now() - start < 40) {
      await apply(inputs);
      calls++;
    }
    samples.push((performance.now() - start) / 1000 / calls);
  }
  return samples.sort((a, b) => a - b)[2];
}

async function main() {
  const runtime = loadTesseract("meshstats");
  const results: Record<string, unknown>[] = [];
  for (const N of SIZES) {
    const inputs = sampleMeshInputs(N);
    const n = 3 * N;
    const bare = await bareApplySeconds(runtime.definition.apply, inputs);
    const base = { inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS };
    const cot = { "statistics.first_point_coordinates": ndarray(Float64Array.of(1, 2, 3), [3]), "statistics.barycenter": ndarray(Float64Array.of(1, 1, 1), [3]) };
    const tangent = { "mesh.points": ndarray(new Float64Array(n).fill(1), [N, 3]) };
    const runs: [string, number, () => Promise<{ stats: { apply_calls: number; wall_seconds: number } }>][] = [
      ["jacobian central", 2 * n, () => runtime.jacobian({ ...base, options: { algorithm: Algorithm.CENTRAL } })],
      ["jacobian forward", n + 1, () => runtime.jacobian({ ...base, options: { algorithm: Algorithm.FORWARD } })],
      ["jacobian stochastic", 2 * Math.max(10, Math.floor(Math.sqrt(n))), () => runtime.jacobian({ ...base, options: { algorithm: Algorithm.STOCHASTIC, seed: 1 } })],
      ["jvp central", 2, () => runtime.jvp({ ...base, tangent })],
      ["vjp central", 2 * n, () => runtime.vjp({ ...base, cotangent: cot })],
    ];
    for (const [endpoint, planned, run] of runs) {
      const estimate = planned * bare * 3;
      if (estimate > TIME_CAP_S) {
        results.push({ N, endpoint, skipped: `estimated ${estimate.toFixed(0)} s > cap ${TIME_CAP_S} s` });
        continue;
      }
      await run(); // warm-up
      const { stats } = await run();
      results.push({
        N,
        endpoint,
        wall_ms: +(stats.wall_seconds * 1000).toFixed(2),
        apply_calls: stats.apply_calls,
        calls_per_s: Math.round(stats.apply_calls / stats.wall_seconds),
        bare_apply_us: +(bare * 1e6).toFixed(2),
        overhead: +(stats.wall_seconds / (stats.apply_calls * bare)).toFixed(2),
      });
    }
  }
  report("engine", results);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
