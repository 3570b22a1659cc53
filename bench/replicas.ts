/**
 * `npm run bench:replicas`: Jacobians evaluated on 1, 2 and 4 apply replicas (child processes on
 * loopback, one engine reaching them with round_robin over an `ipv4:` target), against inline
 * evaluation in the same run, for
 * - a latency-bound apply: bench/fixtures/solver, a timer standing in for an external solver that
 *   serves one apply at a time per replica — replicas should scale it almost linearly;
 * - a compute-bound apply: heat — bounded by the cores of this machine, whatever the replica count.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import ndarray from "ndarray";
import { loadTesseract } from "../index";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import { listeningAddress } from "./listening";
import { report } from "./report";

const CLI = path.join(__dirname, "../cli/cli.js");
const SOLVER = path.join(__dirname, "../../bench/fixtures/solver/solver.js");
const LATENCY_MS = Number(process.env.BENCH_SOLVER_LATENCY_MS ?? 10);
const SOLVER_N = Number(process.env.BENCH_SOLVER_N ?? 40);

async function startReplica(tesseract: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [CLI, "serve", tesseract, "--port", "0", "--workers", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  return { child, address: await listeningAddress(child) };
}

async function main() {
  const cases = [
    { name: `latency-bound (solver, ${LATENCY_MS} ms per apply, one at a time per replica)`, tesseract: SOLVER, inputs: { x: ndarray(new Float64Array(SOLVER_N).map((_, i) => i / 10), [SOLVER_N]), latency_ms: LATENCY_MS }, paths: [["x"], ["y"]] },
    { name: "compute-bound (heat n = 200, 1000 steps)", tesseract: "heat", inputs: sampleHeatInputs(200, 1000), paths: [["initial_temperature"], ["final_temperature"]] },
  ];
  const rows: Record<string, unknown>[] = [];
  for (const c of cases) {
    const runtime = loadTesseract(c.tesseract);
    const request = { inputs: c.inputs as Record<string, unknown>, inputPaths: c.paths[0], outputPaths: c.paths[1] };
    await runtime.jacobian(request); // warm-up
    const inline = (await runtime.jacobian(request)).stats.wall_seconds;
    rows.push({ case: c.name, replicas: 0, mode: "inline", wall_s: +inline.toFixed(3), speedup: 1 });
    for (const count of [1, 2, 4]) {
      const replicas = await Promise.all(Array.from({ length: count }, () => startReplica(c.tesseract)));
      await runtime.useEvaluation({ replicas: `ipv4:${replicas.map((r) => r.address).join(",")}`, concurrency: 2 * count });
      await runtime.jacobian(request); // warm-up: connections, replica JIT
      const { stats } = await runtime.jacobian(request);
      rows.push({ case: c.name, replicas: count, mode: `replicas, ${2 * count} in flight`, wall_s: +stats.wall_seconds.toFixed(3), evaluations: stats.apply_calls, speedup: +(inline / stats.wall_seconds).toFixed(2) });
      await runtime.useEvaluation({ workers: 0 });
      for (const r of replicas) r.child.kill("SIGTERM");
      await Promise.all(replicas.map((r) => once(r.child, "exit")));
    }
    await runtime.close();
  }
  report("replicas", rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
