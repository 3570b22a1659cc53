/**
 * `npm run bench:sparsity`: column grouping (issue 14), all in one run.
 *
 * 1. Dense against grouped Jacobians (and one VJP) end to end over gRPC on loopback, server and SDK
 *    client in this process: meshstats (N = 1000, its declared structure: 2 000 evaluations instead
 *    of 6 000), vectoradd (n = 1000, a and b diagonal: 6 instead of 4 002) and heat (n = 2000, one
 *    step, tridiagonal: 6 instead of 4 000; and 40 × 40 in 2-D, the 5-point stencil: 10 instead of
 *    3 200). Per case: apply calls, column groups, the median wall
 *    time after a warm-up, and dense / grouped.
 * 2. heat's banded Jacobian streamed as sparse rows: n = BENCH_SPARSITY_N (23 200: 4.3 GB dense),
 *    `tesseract-grpc serve heat` in a child process and an SDK client in another
 *    (bench/sparsity-client.ts), so that each RSS is its own. The client streams the Jacobian
 *    BENCH_SPARSITY_REPEATS times (the first is also the server's first: cold), then once through a
 *    raw grpc-js client that counts the bytes on the wire (each message plus its 5-byte gRPC prefix;
 *    HTTP/2 frame headers aside). Throughput: dense-equivalent (8 n² bytes) and wire bytes per second
 *    of the best warm stream; peak RSS of server and client (VmHWM: bench/peak-rss.ts).
 *
 * Environment: BENCH_SPARSITY_N (23 200), BENCH_SPARSITY_REPEATS (4), BENCH_SPARSITY_RUNS (median
 * over this many warm runs per case in part 1, 5). Prints tables and writes bench/results/sparsity.json.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import ndarray from "ndarray";
import { TesseractClient } from "../client";
import { Inputs as HeatInputs, Outputs as HeatOutputs } from "../generated/tesseract/examples/heat/v1/heat";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { Inputs as VectorInputs, Outputs as VectorOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { Algorithm, SparsityMode, startServer } from "../index";
import { silentLogger } from "../server/log";
import { sampleHeatInputs, sampleMeshInputs } from "../server/tesseracts/samples";
import { listeningAddress } from "./listening";
import { report } from "./report";
import type { ClientResult } from "./sparsity-client";

const N = Number(process.env.BENCH_SPARSITY_N ?? 23_200);
const REPEATS = Number(process.env.BENCH_SPARSITY_REPEATS ?? 4);
const RUNS = Number(process.env.BENCH_SPARSITY_RUNS ?? 5);
const HEAT = { inputType: "tesseract.examples.heat.v1.Inputs", outputType: "tesseract.examples.heat.v1.Outputs" };
const MAX_MESSAGE_BYTES = 64 << 20;
const round = (x: number, digits: number) => (Number.isFinite(x) ? +x.toFixed(digits) : x);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---------------------------------------------------------------------------------------------------
// 1. dense against grouped

type Stats = { apply_calls: number; column_groups: number; sparsity_source: string };

async function denseAgainstGrouped(): Promise<Record<string, unknown>[]> {
  const servers = await Promise.all(["meshstats", "vectoradd", "heat"].map((tesseract) => startServer({ tesseract, host: "127.0.0.1", port: 0, workers: 0, logger: silentLogger })));
  const [meshServer, vectorServer, heatServer] = servers;
  const options = { maxMessageBytes: MAX_MESSAGE_BYTES };
  const mesh = new TesseractClient<MeshInputs, MeshOutputs>(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs }, options);
  const vector = new TesseractClient<VectorInputs, VectorOutputs>(vectorServer.address, { inputs: VectorInputs, outputs: VectorOutputs }, options);
  const heat = new TesseractClient<HeatInputs, HeatOutputs>(heatServer.address, { inputs: HeatInputs, outputs: HeatOutputs, ...HEAT }, options);
  const meshRequest = { inputs: sampleMeshInputs(1000), inputPaths: ["mesh.points"], outputPaths: ["statistics.first_point_coordinates", "statistics.barycenter"] };
  const L = 1000;
  const vectorRequest = {
    inputs: { a: ndarray(Float64Array.from({ length: L }, (_, i) => Math.sin(i)), [L]), b: ndarray(Float64Array.from({ length: L }, (_, i) => Math.cos(i)), [L]), s: ndarray(Float64Array.of(2), []), normalize: false },
    inputPaths: ["a", "b", "s"],
    outputPaths: ["result"],
  };
  const heatRequest = { inputs: sampleHeatInputs(2000, 1) as never, inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] };
  const heat2dRequest = { ...heatRequest, inputs: sampleHeatInputs(40, 1, 2) as never };
  const cotangent = { "statistics.first_point_coordinates": ndarray(Float64Array.of(1, 2, 3), [3]), "statistics.barycenter": ndarray(Float64Array.of(1, 1, 1), [3]) };
  const cases: [string, (sparsity_mode: number) => Promise<{ stats: Stats }>][] = [
    ["meshstats N=1000 jacobian central", (sparsity_mode) => mesh.jacobian({ ...meshRequest, options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode } })],
    ["meshstats N=1000 jacobian forward", (sparsity_mode) => mesh.jacobian({ ...meshRequest, options: { algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode } })],
    ["meshstats N=1000 vjp central", (sparsity_mode) => mesh.vjp({ ...meshRequest, cotangent, options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode } })],
    ["vectoradd n=1000 jacobian central", (sparsity_mode) => vector.jacobian({ ...vectorRequest, options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode } })],
    ["heat n=2000 steps=1 jacobian central", (sparsity_mode) => heat.jacobian({ ...heatRequest, options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode } })],
    ["heat 40x40 steps=1 jacobian central", (sparsity_mode) => heat.jacobian({ ...heat2dRequest, options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode } })],
  ];
  const rows: Record<string, unknown>[] = [];
  try {
    for (const [name, run] of cases) {
      // Wall and CPU time (this process runs server and client): on a shared machine the CPU time is the steadier.
      const measured: Record<string, { wall: number; cpu: number; stats: Stats }> = {};
      for (const [label, mode] of [["dense", SparsityMode.SPARSITY_MODE_DENSE], ["grouped", SparsityMode.SPARSITY_MODE_UNSPECIFIED]] as const) {
        // Warm-up (the engine's paths are optimised over the first few thousand evaluations), then the median.
        for (let spent = 0, t = performance.now(); spent < 1000; spent = performance.now() - t) await run(mode);
        const walls: number[] = [];
        const cpus: number[] = [];
        let stats: Stats | undefined;
        for (let k = 0; k < RUNS; k++) {
          const [t, c] = [performance.now(), process.cpuUsage()];
          stats = (await run(mode)).stats;
          walls.push(performance.now() - t);
          const used = process.cpuUsage(c);
          cpus.push((used.user + used.system) / 1000);
        }
        measured[label] = { wall: median(walls), cpu: median(cpus), stats: stats! };
      }
      const { dense, grouped } = measured;
      rows.push({
        case: name,
        dense_evaluations: Number(dense.stats.apply_calls),
        grouped_evaluations: Number(grouped.stats.apply_calls),
        column_groups: Number(grouped.stats.column_groups),
        source: grouped.stats.sparsity_source,
        dense_ms: round(dense.wall, 2),
        grouped_ms: round(grouped.wall, 2),
        dense_cpu_ms: round(dense.cpu, 2),
        grouped_cpu_ms: round(grouped.cpu, 2),
        evaluations_ratio: round(Number(dense.stats.apply_calls) / Number(grouped.stats.apply_calls), 1),
        wall_ratio: round(dense.wall / grouped.wall, 2),
        cpu_ratio: round(dense.cpu / grouped.cpu, 2),
      });
      console.log(`  ${name}: dense ${round(dense.wall, 1)} ms, grouped ${round(grouped.wall, 1)} ms`);
    }
  } finally {
    for (const c of [mesh, vector, heat]) c.close();
    await Promise.all(servers.map((s) => s.close()));
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------
// 2. heat's sparse stream, server and client in their own processes

/** VmHWM (peak RSS) of a live process, in MB. */
function peakRssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
}

async function heatStream(): Promise<Record<string, unknown>[]> {
  const cli = path.join(__dirname, "../cli/cli.js");
  const server = spawn(process.execPath, [cli, "serve", "heat", "--host", "127.0.0.1", "--port", "0", "--workers", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  try {
    const address = await listeningAddress(server);
    const client = spawn(process.execPath, [path.join(__dirname, "sparsity-client.js"), address], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, BENCH_SPARSITY_N: String(N), BENCH_SPARSITY_SERVER_PID: String(server.pid) } });
    let text = "";
    client.stdout!.on("data", (d: Buffer) => (text += d.toString()));
    const [code] = (await once(client, "exit")) as [number];
    if (code !== 0) throw new Error(`the client exited ${code}`);
    const serverPeak = peakRssMb(server.pid!);
    const result = JSON.parse(text.trim().split("\n").pop()!) as ClientResult;
    const denseBytes = 8 * N * N;
    return result.streams.map((s, k) => ({
      stream: k === 0 ? "first (cold server and client)" : `warm ${k}`,
      rows: s.rows,
      nonzeros: s.nonzeros,
      values: s.values,
      evaluations: s.apply_calls,
      column_groups: s.column_groups,
      seconds: round(s.seconds, 3),
      server_cpu_s: round(s.server_cpu_s, 2),
      client_cpu_s: round(s.client_cpu_s, 2),
      dense_equivalent_GB_per_s: round(denseBytes / 1e9 / s.seconds, 2),
      wire_MB: round(result.wire_bytes / 1e6, 2),
      wire_MB_per_s: round(result.wire_bytes / 1e6 / s.seconds, 1),
      server_peak_rss_MB: round(serverPeak, 1),
      client_peak_rss_MB: round(result.sdk_max_rss_mb, 1),
      raw_client_peak_rss_MB: round(result.max_rss_mb, 1),
    }));
  } finally {
    server.kill("SIGTERM");
  }
}

async function main() {
  console.log(`bench:sparsity: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`);
  console.log("1. dense against grouped, end to end over gRPC (median of warm runs)");
  const grouping = await denseAgainstGrouped();
  console.table(grouping);
  console.log(`2. heat n = ${N}, one step, as sparse rows (${REPEATS} streams, then one raw for the wire bytes)`);
  const stream = await heatStream();
  console.table(stream);
  const warm = stream.slice(1).reduce<Record<string, any> | undefined>((best, s) => (!best || (s.seconds as number) < best.seconds ? s : best), undefined) ?? stream[0];
  const mesh = grouping[0];
  const targets = [
    { target: "heat: evaluations = 2 × groups = 6", measured: `${warm.evaluations} (${warm.column_groups} groups)`, met: warm.evaluations === 6 },
    { target: "heat: dense-equivalent ≥ 5 GB/s (best warm stream)", measured: `${warm.dense_equivalent_GB_per_s} GB/s`, met: (warm.dense_equivalent_GB_per_s as number) >= 5 },
    { target: "heat: RSS ≤ 300 MB, server and client", measured: `${warm.server_peak_rss_MB} / ${warm.client_peak_rss_MB} MB`, met: (warm.server_peak_rss_MB as number) <= 300 && (warm.client_peak_rss_MB as number) <= 300 },
    { target: "meshstats N=1000 central: 2 000 evaluations instead of 6 000", measured: `${mesh.grouped_evaluations} instead of ${mesh.dense_evaluations}`, met: mesh.grouped_evaluations === 2000 },
  ];
  report("sparsity", targets.map((t) => ({ ...t, load_1m: round(os.loadavg()[0], 2) })));
  // report() keeps the targets; the measurements go beside them in the same file.
  const file = path.join(__dirname, "../../bench/results/sparsity.json");
  const written = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  fs.writeFileSync(file, JSON.stringify({ ...written, dense_vs_grouped: grouping, heat_stream: { n: N, streams: stream } }, null, 2));
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench:sparsity: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
