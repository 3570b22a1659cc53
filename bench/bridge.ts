/**
 * `npm run bench:bridge`: the tesseract-core bridge against the fake tesseract-core runtime of the
 * test tree (test/fixtures/tesseract-core/), in one run:
 *
 * overhead  central Jacobian of Mesh Stats w.r.t. mesh.points (N points: 2·3N evaluations) with
 *           --concurrency 1, against the same number of bare POST /apply round trips made one after
 *           the other with fetch (keep-alive), and with an undici Pool (keep-alive: the client the
 *           bridge uses), same inputs, a prebuilt body and no decoding of the answer: ratio = bridge
 *           wall / bare wall, for each; medians of 9 rounds of ~600 evaluations each, taken
 *           in turn after warm-up rounds of 6000 evaluations (the JIT's tiers).
 * scaling   the same Jacobian with a latency-bound apply (the fake waits DELAY_MS per call, one
 *           call at a time per replica, as a solver would), on 1, 2 and 4 replicas with
 *           --concurrency equal to the replica count: speed-up over 1 replica; and on the 4
 *           addresses of one host name (fakes on 127.0.0.1-4 at one port, the name resolved by an
 *           injected lookup), as a headless Service's pods would be.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import * as readline from "node:readline";
import ndarray from "ndarray";
import { Pool } from "undici";
import { loadTesseractCore, type TesseractCoreOptions } from "../server/bridge/tesseract-core";
import type { TesseractRuntime } from "../server/runtime";
import { startFakeTesseractCore, type RunningFake } from "../test/fixtures/tesseract-core/fake-tesseract-core";
import { meshStats } from "../test/fixtures/tesseract-core/mesh-stats";
import { report } from "./report";

const N = Number(process.env.BRIDGE_N ?? 20);
const DELAY_MS = Number(process.env.BRIDGE_DELAY_MS ?? 50);
const CENTRAL = 1;
/** Overhead: warm-up until this many evaluations (V8 tiers up after thousands), then rounds of about ROUND_EVALUATIONS each. */
const WARM_EVALUATIONS = 6000;
const ROUND_EVALUATIONS = 600;
const ROUNDS = 9;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function inputs(): Record<string, unknown> {
  const points = Float64Array.from({ length: 3 * N }, (_, i) => 1 + i / 7);
  return { mesh: { n_points: N, points: ndarray(points, [N, 3]), cell_data: {}, tags: [] }, layers: [], scale: 1.5 };
}

/** The same body as one evaluation's, in tesseract-core's form (base64 arrays). */
function applyBody(): string {
  const points = Float64Array.from({ length: 3 * N }, (_, i) => 1 + i / 7);
  const array = { object_type: "array", shape: [N, 3], dtype: "float64", data: { buffer: Buffer.from(points.buffer).toString("base64"), encoding: "base64" } };
  return JSON.stringify({ inputs: { mesh: { n_points: N, points: array, cell_data: {}, tags: [] }, layers: [], scale: 1.5 } });
}

async function jacobianSeconds(runtime: TesseractRuntime): Promise<{ seconds: number; calls: number }> {
  const started = performance.now();
  const { stats } = await runtime.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: { algorithm: CENTRAL } });
  return { seconds: (performance.now() - started) / 1000, calls: stats.apply_calls };
}

async function bridged(fakes: Pick<RunningFake, "url" | "host" | "port">[], concurrency: number, byName = false): Promise<TesseractRuntime> {
  const options: TesseractCoreOptions = { lookup: async () => fakes.map((f) => ({ address: f.host, family: 4 })) };
  const runtime = await (byName ? loadTesseractCore(`http://tesseract.bench:${fakes[0].port}`, options) : loadTesseractCore(fakes.map((f) => f.url).join(",")));
  await runtime.useEvaluation({ workers: 0, concurrency });
  return runtime;
}

/** Fakes on 127.0.0.1 … 127.0.0.<count> at one port. */
async function fakesOnOnePort(count: number): Promise<RunningFake[]> {
  const first = await startFakeTesseractCore(meshStats(DELAY_MS));
  const fakes = [first];
  for (let i = 2; i <= count; i++) fakes.push(await startFakeTesseractCore(meshStats(DELAY_MS), { host: `127.0.0.${i}`, port: first.port }));
  return fakes;
}

/** The fake in a child process (bench/fake-runtime.ts), as a runtime is; closing it ends the process. */
async function fakeProcess(): Promise<Pick<RunningFake, "url" | "host" | "port" | "close">> {
  const child = spawn(process.execPath, [path.join(__dirname, "fake-runtime.js")], { stdio: ["pipe", "pipe", "inherit"] });
  const [line] = (await once(readline.createInterface({ input: child.stdout! }), "line")) as [string];
  const url = new URL(line.trim());
  const close = async () => {
    child.stdin!.end();
    await once(child, "exit");
  };
  return { url: url.origin, host: url.hostname, port: Number(url.port), close };
}

/**
 * No delay, one evaluation at a time, against bare round trips. Each is warmed up (JIT, connections;
 * the fake's own code too), then they take turns, a round being the same number of evaluations
 * each, and the medians are compared.
 */
async function overhead(where: "in this process" | "in its own process"): Promise<Record<string, unknown>[]> {
  const fast = where === "in this process" ? await startFakeTesseractCore(meshStats(0)) : await fakeProcess();
  const runtime = await bridged([fast], 1);
  const body = applyBody();
  const pool = new Pool(fast.url);
  const calls = (await jacobianSeconds(runtime)).calls;
  const jacobians = Math.ceil(ROUND_EVALUATIONS / calls);
  const bridgeRound = async () => {
    let seconds = 0;
    for (let j = 0; j < jacobians; j++) seconds += (await jacobianSeconds(runtime)).seconds;
    return seconds;
  };
  const bareRound = async (post: () => Promise<unknown>) => {
    const started = performance.now();
    for (let k = 0; k < jacobians * calls; k++) await post();
    return (performance.now() - started) / 1000;
  };
  const headers = { "content-type": "application/json", accept: "application/json+base64" };
  const viaFetch = () => bareRound(async () => (await fetch(`${fast.url}/apply`, { method: "POST", headers, body })).arrayBuffer());
  const viaPool = () => bareRound(async () => (await pool.request({ path: "/apply", method: "POST", headers, body })).body.arrayBuffer());
  const times = { bridge: [] as number[], fetch: [] as number[], pool: [] as number[] };
  const warmRounds = Math.ceil(WARM_EVALUATIONS / (jacobians * calls));
  for (let round = 0; round < warmRounds + ROUNDS; round++) {
    const bridge = await bridgeRound();
    const [f, p] = [await viaFetch(), await viaPool()];
    if (round < warmRounds) continue;
    times.bridge.push(bridge);
    times.fetch.push(f);
    times.pool.push(p);
  }
  await pool.close();
  await runtime.close();
  await fast.close();
  const bridgeS = median(times.bridge);
  const perEval = (s: number) => +((s / (jacobians * calls)) * 1e6).toFixed(1);
  return [["fetch", median(times.fetch)], ["undici Pool", median(times.pool)]].map(([name, bare]) => ({
    case: `overhead, N = ${N}, concurrency 1, vs ${name}, fake ${where}`,
    evaluations: calls,
    bridge_us_per_eval: perEval(bridgeS),
    bare_us_per_eval: perEval(bare as number),
    ratio: +(bridgeS / (bare as number)).toFixed(2),
  }));
}

async function main(): Promise<void> {
  const results: Record<string, unknown>[] = [];

  results.push(...(await overhead("in this process")), ...(await overhead("in its own process")));

  // Scaling: a latency-bound apply on 1, 2 and 4 replicas.
  let single = 0;
  for (const [replicas, byName] of [[1, false], [2, false], [4, false], [4, true]] as const) {
    const fakes = byName ? await fakesOnOnePort(replicas) : await Promise.all(Array.from({ length: replicas }, () => startFakeTesseractCore(meshStats(DELAY_MS))));
    const rt = await bridged(fakes, replicas, byName);
    const { seconds, calls } = await jacobianSeconds(rt);
    single ||= seconds;
    results.push({ case: `apply ${DELAY_MS} ms, ${replicas} ${byName ? "addresses of one host name" : "replica(s)"}`, evaluations: calls, bridge_s: +seconds.toFixed(3), speedup: +(single / seconds).toFixed(2), max_in_flight: fakes.map((f) => f.maxInFlight).join("/") });
    await rt.close();
    await Promise.all(fakes.map((f) => f.close()));
  }
  report("bridge", results);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
