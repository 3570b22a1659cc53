/**
 * `npm run demo`: differentiates the meshstats Tesseract in-process with every algorithm and prints
 * the apply calls and the max error against the analytic Jacobian, for N = 7 and N = 1000 points.
 */
import { loadTesseract } from "./loader";
import { Algorithm } from "./tesseract";
import { sampleMeshInputs } from "./tesseracts/samples";

/** d first/d p[i, c'] = δ(i, 0) δ(c, c');  d barycenter/d p[i, c'] = δ(c, c') / N. */
function exact(output: string, N: number, c: number, i: number, k: number): number {
  if (c !== k) return 0;
  return output.endsWith("barycenter") ? 1 / N : i === 0 ? 1 : 0;
}

const ALGORITHMS = [
  ["central", Algorithm.ALGORITHM_CENTRAL],
  ["forward", Algorithm.ALGORITHM_FORWARD],
  ["stochastic", Algorithm.ALGORITHM_STOCHASTIC],
  ["richardson", Algorithm.ALGORITHM_RICHARDSON],
  ["adaptive", Algorithm.ALGORITHM_ADAPTIVE],
] as const;

async function main() {
  const runtime = loadTesseract("meshstats");
  const outputs = ["statistics.first_point_coordinates", "statistics.barycenter"];
  const rows: Record<string, string | number>[] = [];
  for (const N of [7, 1000]) {
    const inputs = sampleMeshInputs(N);
    runtime.definition.validate?.(inputs);
    for (const [name, algorithm] of ALGORITHMS) {
      const { entries, stats } = await runtime.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: outputs, options: { algorithm, seed: 1 } });
      let maxError = 0;
      for (const e of entries) {
        e.values.forEach((v, flat) => {
          const c = Math.floor(flat / (3 * N));
          const rest = flat % (3 * N);
          maxError = Math.max(maxError, Math.abs(v - exact(e.outputPath, N, c, Math.floor(rest / 3), rest % 3)));
        });
      }
      rows.push({ N, algorithm: name, apply_calls: stats.apply_calls, max_abs_error: maxError.toExponential(2), wall_ms: (stats.wall_seconds * 1000).toFixed(1) });
    }
  }
  console.log("meshstats Jacobian of both outputs w.r.t. mesh.points (eps 1e-6), in-process:");
  console.table(rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
