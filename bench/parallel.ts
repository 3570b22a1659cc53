/**
 * `npm run bench:parallel [-- MAX_WORKERS]`: speed-up of a heat Jacobian with 1, 2, 4 … worker threads
 * over the inline engine, next to the ceiling bare worker threads reach on the same machine in the
 * same run (N threads each doing the same fixed CPU work, versus one thread doing it alone).
 * Efficiency = speed-up / ceiling. On a bigger machine: `npm run bench:parallel -- 16`.
 */
import { once } from "node:events";
import { availableParallelism } from "node:os";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { loadTesseract } from "../index";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import { report } from "./report";

const MAX_WORKERS = Number(process.argv[2] ?? process.env.BENCH_MAX_WORKERS ?? availableParallelism());
const N = Number(process.env.BENCH_HEAT_N ?? 300);
const STEPS = Number(process.env.BENCH_HEAT_STEPS ?? 1000);
const REPEATS = 3;

function workerCounts(max: number): number[] {
  const counts = new Set<number>();
  for (let w = 1; w < max; w *= 2) counts.add(w);
  counts.add(max);
  return [...counts].sort((a, b) => a - b);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Seconds for `threads` bare workers, started together, each applying heat `iterations` times. */
async function bareThreads(threads: number, iterations: number): Promise<number> {
  const workers = Array.from({ length: threads }, () => new Worker(path.join(__dirname, "cpu-work.js"), { workerData: { n: N, steps: STEPS, iterations } }));
  await Promise.all(workers.map((w) => once(w, "message")));
  const started = performance.now();
  workers.forEach((w) => w.postMessage("go"));
  await Promise.all(workers.map((w) => once(w, "message")));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(workers.map((w) => w.terminate()));
  return seconds;
}

async function main() {
  const runtime = loadTesseract("heat");
  const inputs = sampleHeatInputs(N, STEPS);
  const request = { inputs, inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] };
  const jacobianSeconds = async () => {
    await runtime.jacobian(request); // warm-up: thread start, module load, JIT
    const walls: number[] = [];
    for (let r = 0; r < REPEATS; r++) walls.push((await runtime.jacobian(request)).stats.wall_seconds);
    return median(walls);
  };
  await runtime.useEvaluation({ workers: 0 });
  const inline = await jacobianSeconds();
  const iterations = Math.max(50, Math.round((2 * N) / 2));
  const alone = median([await bareThreads(1, iterations), await bareThreads(1, iterations), await bareThreads(1, iterations)]);
  const rows: Record<string, unknown>[] = [{ workers: 0, mode: "inline", wall_s: +inline.toFixed(3), evaluations: 2 * N, speedup: 1 }];
  for (const threads of workerCounts(MAX_WORKERS)) {
    await runtime.useEvaluation({ workers: threads });
    const wall = await jacobianSeconds();
    const together = median([await bareThreads(threads, iterations), await bareThreads(threads, iterations), await bareThreads(threads, iterations)]);
    const ceiling = (threads * alone) / together;
    const speedup = inline / wall;
    rows.push({ workers: threads, mode: "pool", wall_s: +wall.toFixed(3), evaluations: 2 * N, speedup: +speedup.toFixed(2), bare_threads_ceiling: +ceiling.toFixed(2), efficiency_vs_ceiling: +(speedup / ceiling).toFixed(2) });
  }
  await runtime.close();
  console.log(`heat 1-D n = ${N}, steps = ${STEPS}: central Jacobian (${2 * N} evaluations, apply ≈ ${((inline / (2 * N)) * 1000).toFixed(2)} ms inline); ${availableParallelism()} cores`);
  report("parallel", rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
