/**
 * `npm run bench:bridge`: the tesseract-core bridge against the fake tesseract-core runtime of the
 * test tree (test/fixtures/tesseract-core/), in one run:
 *
 * overhead  central Jacobian of Mesh Stats w.r.t. mesh.points (N points: 2·3N evaluations) with
 *           --concurrency 1, against the same number of bare POST /apply round trips made one after
 *           the other with fetch (keep-alive), and with an undici Pool (keep-alive: the client the
 *           bridge uses), same inputs: ratio = bridge wall / bare wall, for each.
 * scaling   the same Jacobian with a latency-bound apply (the fake waits DELAY_MS per call, one
 *           call at a time per replica, as a solver would), on 1, 2 and 4 replicas with
 *           --concurrency equal to the replica count: speed-up over 1 replica; and on the 4
 *           addresses of one host name (fakes on 127.0.0.1-4 at one port, the name resolved by an
 *           injected lookup), as a headless Service's pods would be.
 */
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

async function bridged(fakes: RunningFake[], concurrency: number, byName = false): Promise<TesseractRuntime> {
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

async function main(): Promise<void> {
  const results: Record<string, unknown>[] = [];

  // Overhead: no delay, one evaluation at a time, against bare round trips.
  const fast = await startFakeTesseractCore(meshStats(0));
  const runtime = await bridged([fast], 1);
  await jacobianSeconds(runtime); // warm-up: JIT, connections
  const bridge = await jacobianSeconds(runtime);
  const body = applyBody();
  const bareStarted = performance.now();
  for (let k = 0; k < bridge.calls; k++) {
    const res = await fetch(`${fast.url}/apply`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json+base64" }, body });
    await res.arrayBuffer();
  }
  const bare = (performance.now() - bareStarted) / 1000;
  const pool = new Pool(fast.url);
  const poolStarted = performance.now();
  for (let k = 0; k < bridge.calls; k++) {
    const res = await pool.request({ path: "/apply", method: "POST", headers: { "content-type": "application/json", accept: "application/json+base64" }, body });
    await res.body.arrayBuffer();
  }
  const barePool = (performance.now() - poolStarted) / 1000;
  await pool.close();
  results.push({ case: `overhead, N = ${N}, concurrency 1, vs fetch`, evaluations: bridge.calls, bridge_s: +bridge.seconds.toFixed(3), bare_apply_s: +bare.toFixed(3), ratio: +(bridge.seconds / bare).toFixed(2) });
  results.push({ case: `overhead, N = ${N}, concurrency 1, vs undici Pool`, evaluations: bridge.calls, bridge_s: +bridge.seconds.toFixed(3), bare_apply_s: +barePool.toFixed(3), ratio: +(bridge.seconds / barePool).toFixed(2) });
  await runtime.close();
  await fast.close();

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
