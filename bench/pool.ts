/**
 * `npm run bench:pool`: the worker pool on cheap applies, and a fresh server's first call, in one run.
 * Servers are `tesseract-grpc serve` child processes (launched as the image launches them:
 * server/launch-flags.ts); the client is the SDK in this process (warmed
 * on a server of its own first, so that only the server's warmth is measured).
 *
 * 1. Pool on cheap applies: meshstats central Jacobians (dense, N = 1000 and 3000 points: 6 000 and
 *    18 000 evaluations of a few microseconds each; and N = 1000 grouped by meshstats' declared
 *    structure, 2 000 evaluations) end to end over gRPC, on an inline server
 *    (`--workers 0`), a batched pool (`--workers 2`, or each size in BENCH_POOL_WORKERS, e.g.
 *    "2,4,8" on a many-core machine) and the default (`--workers auto`). Warm:
 *    calls alternate between the servers (so load on the machine falls on all alike); the median
 *    of BENCH_POOL_ROUNDS each. Ratio: inline wall / wall. Also the server's CPU time per
 *    evaluation, all threads and its main thread (from /proc, Linux): what the pool costs in CPU,
 *    which decides what it can gain on C cores (wall ≥ CPU / C) whatever else runs on the machine.
 * 2. Cold first call: fresh server processes (BENCH_POOL_COLD_STARTS per row; inline and auto,
 *    with the warm-up and with `--warm-up-ms 0`): time to the "listening" line, the client's
 *    connection with its one Describe (timed apart: the client's, not the server's), the first
 *    meshstats N = 1000 central Jacobian, the second, then the median of warm ones; medians over
 *    the starts. Target: first ≤ 2 × warm.
 * 3. tesseract-core's finite-difference helper on the same Jacobian (12 001 apply calls, in-process),
 *    timed in this run by its Python reproduction (bench/tesseract-core-helper.ts; the recorded
 *    2.5 s where python3 with numpy and pydantic is missing), against the warm end-to-end walls
 *    above, and against the recorded time too. Targets: ≥ 100× dense, ≥ 250× grouped.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { once } from "node:events";
import { availableParallelism } from "node:os";
import * as path from "node:path";
import { TesseractClient } from "../client";
import { Inputs, Outputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { Algorithm, SparsityMode } from "../index";
import { SERVER_NODE_FLAGS } from "../server/launch-flags";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { listeningAddress } from "./listening";
import { report } from "./report";
import { helperSeconds, RECORDED_HELPER_S, type HelperTiming } from "./tesseract-core-helper";

const CLI = path.join(__dirname, "../cli/cli.js");
const ROUNDS = Number(process.env.BENCH_POOL_ROUNDS ?? 15);
/** Pool sizes compared with inline and auto (comma-separated; more than 2 only pays on more cores). */
const POOL_SIZES = (process.env.BENCH_POOL_WORKERS ?? "2").split(",").map((n) => n.trim()).filter(Boolean);
const OUTPUTS = ["statistics.first_point_coordinates", "statistics.barycenter"];
/** Jacobians of tesseract-core's helper (about 2 s each). */
const HELPER_ROUNDS = Number(process.env.BENCH_POOL_HELPER_ROUNDS ?? 3);

interface Served {
  child: ChildProcess;
  client: TesseractClient<Inputs, Outputs>;
  /** ms from spawning to the "listening" line. */
  startMs: number;
}

async function serve(args: string[]): Promise<Served> {
  const started = performance.now();
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, CLI, "serve", "meshstats", "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const address = await listeningAddress(child);
  const startMs = performance.now() - started;
  const client = new TesseractClient<Inputs, Outputs>(address, { inputs: Inputs, outputs: Outputs, inputType: "tesseract.examples.meshstats.v1.Inputs", outputType: "tesseract.examples.meshstats.v1.Outputs" });
  return { child, client, startMs };
}

async function stop(served: Served): Promise<void> {
  served.client.close();
  served.child.kill("SIGTERM");
  await once(served.child, "exit");
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * CPU time of a server process so far, in ms: its main thread and all its threads (Linux /proc;
 * undefined elsewhere). Unlike wall times, CPU per evaluation hardly moves with the machine's load.
 */
function cpuMs(pid: number): { main: number; total: number } | undefined {
  const ticks = (file: string) => {
    const fields = fs.readFileSync(file, "utf8").split(") ")[1].split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  };
  try {
    return { main: ticks(`/proc/${pid}/task/${pid}/stat`), total: ticks(`/proc/${pid}/stat`) };
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = 100;

/**
 * One central Jacobian of N points, dense (the issue's benchmark: 6N evaluations) or grouped by
 * meshstats' declared structure (2N): wall ms and apply calls.
 */
async function jacobianMs(client: TesseractClient<Inputs, Outputs>, N: number, grouped = false): Promise<{ ms: number; calls: number }> {
  const inputs = sampleMeshInputs(N);
  const sparsity_mode = grouped ? SparsityMode.SPARSITY_MODE_UNSPECIFIED : SparsityMode.SPARSITY_MODE_DENSE;
  const started = performance.now();
  const { stats } = await client.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode } });
  return { ms: performance.now() - started, calls: Number(stats.apply_calls) };
}

/** Runs `fn` for `seconds` (JIT, connections, pools), then ROUNDS times interleaved across servers. */
async function warmMedians(servers: Served[], N: number, seconds: number, grouped = false): Promise<{ ms: number; calls: number; cpuUsPerEval?: { main: number; total: number } }[]> {
  for (const s of servers) for (const until = performance.now() + seconds * 1000; performance.now() < until; ) await jacobianMs(s.client, N, grouped);
  const walls = servers.map(() => [] as number[]);
  const cpuBefore = servers.map((s) => cpuMs(s.child.pid!));
  let calls: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const results = [];
    for (const s of servers) results.push(await jacobianMs(s.client, N, grouped));
    results.forEach((x, i) => walls[i].push(x.ms));
    calls = results.map((x) => x.calls);
  }
  return walls.map((w, i) => {
    const [before, after] = [cpuBefore[i], cpuMs(servers[i].child.pid!)];
    const perEval = (key: "main" | "total") => +(((after![key] - before![key]) * 1000) / (ROUNDS * calls[i])).toFixed(2);
    return { ms: median(w), calls: calls[i], cpuUsPerEval: before && after ? { main: perEval("main"), total: perEval("total") } : undefined };
  });
}

async function poolRows(helper: () => Promise<HelperTiming>): Promise<Record<string, unknown>[]> {
  const modes: [string, string[]][] = [
    ["inline (--workers 0)", ["--workers", "0"]],
    ...POOL_SIZES.map((n): [string, string[]] => [`pool, batched (--workers ${n})`, ["--workers", String(n)]]),
    ["auto (default)", []],
  ];
  const servers = await Promise.all(modes.map(([, args]) => serve(args)));
  const rows: Record<string, unknown>[] = [];
  let timing: HelperTiming | undefined;
  for (const [N, grouped] of [[1000, false], [3000, false], [1000, true]] as const) {
    const medians = await warmMedians(servers, N, 2, grouped);
    const name = `meshstats N = ${N} central${grouped ? ", grouped" : ""}`;
    medians.forEach(({ ms, calls, cpuUsPerEval }, i) => {
      rows.push({
        section: "pool",
        case: name,
        mode: modes[i][0],
        warm_ms: +ms.toFixed(2),
        apply_calls: calls,
        us_per_eval: +((1000 * ms) / calls).toFixed(2),
        speedup_vs_inline: +(medians[0].ms / ms).toFixed(2),
        server_cpu_us_per_eval: cpuUsPerEval?.total,
        main_thread_cpu_us_per_eval: cpuUsPerEval?.main,
      });
    });
    if (N === 1000) {
      // Timed once, between the servers' runs, while they idle.
      const helperTiming = (timing ??= await helper());
      const best = Math.min(...medians.map((m) => m.ms));
      medians.forEach(({ ms }, i) => {
        rows.push({
          section: "vs tesseract-core",
          case: name,
          mode: modes[i][0],
          warm_ms: +ms.toFixed(2),
          helper_ms: Math.round(helperTiming.seconds * 1000),
          helper_source: helperTiming.source,
          ratio: +((helperTiming.seconds * 1000) / ms).toFixed(0),
          ratio_to_recorded_helper: +((RECORDED_HELPER_S * 1000) / ms).toFixed(0),
          best: ms === best,
        });
      });
    }
  }
  await Promise.all(servers.map(stop));
  return rows;
}

/** Fresh server processes per configuration: the machine's load varies from one start to the next. */
const COLD_STARTS = Number(process.env.BENCH_POOL_COLD_STARTS ?? 3);

async function coldRows(): Promise<Record<string, unknown>[]> {
  const configs: [string, string[]][] = [
    ["inline, warm-up", ["--workers", "0"]],
    ["inline, no warm-up", ["--workers", "0", "--warm-up-ms", "0"]],
    ["auto, warm-up", []],
    ["auto, no warm-up", ["--warm-up-ms", "0"]],
  ];
  const rows: Record<string, unknown>[] = [];
  for (const [name, args] of configs) {
    const starts: { start: number; connect: number; first: number; second: number; slowestEarly: number; warm: number }[] = [];
    for (let i = 0; i < COLD_STARTS; i++) {
      const served = await serve(args);
      // The client's connection and its one Describe (the SDK checks the message types once) first:
      // what is timed next is the server's first Jacobian.
      const connecting = performance.now();
      await served.client.describe();
      const connect = performance.now() - connecting;
      const first = await jacobianMs(served.client, 1000);
      // Calls 2 to 10: where `auto` tries what it has not measured yet (the first call's ratio hides it).
      const early: number[] = [];
      for (let call = 2; call <= 10; call++) early.push((await jacobianMs(served.client, 1000)).ms);
      const [warm] = await warmMedians([served], 1000, 1);
      starts.push({ start: served.startMs, connect, first: first.ms, second: early[0], slowestEarly: Math.max(...early), warm: warm.ms });
      await stop(served);
    }
    const m = (key: keyof (typeof starts)[number]) => median(starts.map((s) => s[key]));
    rows.push({
      section: "cold first call",
      case: `meshstats N = 1000 central, ${COLD_STARTS} fresh servers (medians)`,
      mode: name,
      start_ms: Math.round(m("start")),
      connect_and_describe_ms: +m("connect").toFixed(1),
      first_ms: +m("first").toFixed(1),
      second_ms: +m("second").toFixed(1),
      slowest_of_calls_2_to_10_ms: +m("slowestEarly").toFixed(1),
      warm_ms: +m("warm").toFixed(2),
      first_over_warm: +(m("first") / m("warm")).toFixed(2),
      each_first_over_warm: starts.map((s) => +(s.first / s.warm).toFixed(2)).join(" "),
    });
  }
  return rows;
}

async function main() {
  // The client's own first calls (protobuf code generation, HTTP/2) on a server of its own.
  const clientWarmUp = await serve(["--workers", "0", "--warm-up-ms", "0"]);
  await warmMedians([clientWarmUp], 1000, 1);
  await stop(clientWarmUp);

  const rows = [...(await poolRows(() => helperSeconds(HELPER_ROUNDS))), ...(await coldRows())];
  console.log(`${availableParallelism()} cores; medians of ${ROUNDS} warm calls; tesseract-core's helper: median of ${HELPER_ROUNDS} Jacobians`);
  report("pool", rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
