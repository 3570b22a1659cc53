/**
 * `npm run bench:load -- [--clients 32] [--seconds 30]`: load and soak on loopback. A vectoradd server
 * (child process, 127.0.0.1:0, small --max-jobs/--max-queue so overload is refused, not queued forever)
 * is driven by C virtual clients over ceil(C / 4) channels, each looping over a weighted mix of Apply,
 * Jacobian, JacobianRows (read fully, or broken off after one row), JVP, VJP and calls cut short by an
 * AbortSignal or a deadline. Every answer is checked against vectoradd's own apply and analytic Jacobian
 * run in this process (random inputs per call, so answers crossed between calls show up as wrong).
 * Reports per kind: calls, outcome counts, req/s, p50/p99/max latency; errors by code; server RSS each
 * second; then health, SIGTERM and the exit code. Exits 1 if anything was wrong, lost or unexpected.
 * Note: Node's HTTP/2 server (nghttp2's rapid-reset guard: 1000 RST_STREAMs, then 33/s) tears down a
 * connection whose client cancels faster than that, failing its calls in flight with INTERNAL;
 * `--per-channel 32` (one connection) shows it within a minute.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { Command } from "commander";
import ndarray, { type NdArray } from "ndarray";
import { TesseractClient, assembleJacobian, isTesseractClientError } from "../client";
import { Inputs, Outputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import type { Arrays } from "../index";
import vectoradd from "../server/tesseracts/vectoradd";
import { report } from "./report";

const opts = new Command()
  .option("--clients <n>", "concurrent virtual clients", "32")
  .option("--seconds <s>", "how long new calls are started", "30")
  .option("--per-channel <n>", "virtual clients sharing one SDK client (channel)", "4")
  .option("--max-jobs <n>", "server --max-jobs", "4")
  .option("--max-queue <n>", "server --max-queue", "16")
  .option("--workers <n>", "server --workers (a count runs Apply and every evaluation in worker threads)", "auto")
  .parse()
  .opts();
const CLIENTS = Number(opts.clients);
const SECONDS = Number(opts.seconds);
const PER_CHANNEL = Number(opts.perChannel);
const SETTLE_MS = 20_000; // calls still open this long after the load stops count as never settled
const HARD_CAP_MS = (SECONDS + 90) * 1000; // the whole run, whatever happens
const CLI = path.join(__dirname, "../cli/cli.js");

// Kinds and their weights; "expected" errors are correct answers to what the call asked for.
const MIX = { apply: 40, jacobian: 12, rows: 10, jvp: 10, vjp: 10, "rows-cancel": 6, abort: 6, deadline: 6 } as const;
type Kind = keyof typeof MIX;
const KINDS = Object.keys(MIX) as Kind[];
const CANCEL_CODES = new Set(["CANCELLED", "DEADLINE_EXCEEDED"]);
const OVERLOAD = "RESOURCE_EXHAUSTED"; // the server's admission control saying no: counted, not lost

type In = Arrays<Inputs>;
type Paths = ("a" | "b" | "s")[];
const hard = setTimeout(() => fail(`hard cap of ${HARD_CAP_MS / 1000} s reached`), HARD_CAP_MS);

// ---------------------------------------------------------------------------------------------------
// random inputs and the answers vectoradd gives in-process

const rand = (lo: number, hi: number) => lo + Math.random() * (hi - lo);
const vec = (n: number) => ndarray(Float64Array.from({ length: n }, () => rand(-5, 5)), [n]);
const scalar = (x: number) => ndarray(Float64Array.of(x), []);

/** Gradients use n up to 150 (rows of > 115 values split over messages at the 1 KiB budget). */
function randomInputs(gradient: boolean): In {
  const n = gradient ? 2 + Math.floor(Math.random() ** 2 * 149) : 1 + Math.floor(Math.random() * 512);
  const inputs: In = { a: vec(n), b: vec(n), s: gradient || Math.random() < 0.7 ? scalar(rand(0.5, 2)) : undefined, normalize: Math.random() < 0.25 };
  // Keep |s·a + b| away from 0: normalising there is ill-conditioned, not a server bug.
  if (inputs.normalize) (inputs.b!.data as Float64Array)[0] += 20;
  return inputs;
}

function randomPaths(): Paths {
  const picked = (["a", "b", "s"] as const).filter(() => Math.random() < 0.6);
  return picked.length ? picked : ["a"];
}

/**
 * d result / d path as an n × m row-major matrix (m = 1 for s), in O(n²): with u = s·a + b and
 * D = du→result (I, or (I − r rᵀ)/|u| when normalised), J_a = s·D, J_b = D, J_s = D·a. (vectoradd's
 * shipped Jacobian is O(n³) and would make this process the bottleneck; main() checks the two agree.)
 */
function analytic(inputs: In, paths: Paths): Record<string, Float64Array> {
  const a = inputs.a!.data as Float64Array;
  const n = a.length;
  const s = inputs.s ? Number(inputs.s.get()) : 1;
  const u = a.map((x, i) => s * x + Number(inputs.b!.data[i]));
  const norm = Math.hypot(...u);
  const D = (i: number, k: number) => (inputs.normalize ? ((i === k ? 1 : 0) - (u[i] * u[k]) / (norm * norm)) / norm : i === k ? 1 : 0);
  const J: Record<string, Float64Array> = {};
  for (const p of paths) {
    const m = p === "s" ? 1 : n;
    const out = (J[p] = new Float64Array(n * m));
    for (let i = 0; i < n; i++) {
      if (p === "s") for (let k = 0; k < n; k++) out[i] += D(i, k) * a[k];
      else for (let j = 0; j < n; j++) out[i * n + j] = (p === "a" ? s : 1) * D(i, j);
    }
  }
  return J;
}

/** Largest |got − want| / (1 + |want|); Infinity when the lengths differ. */
function relErr(got: ArrayLike<number> | undefined, want: ArrayLike<number>): number {
  if (!got || got.length !== want.length) return Infinity;
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i])));
  return Number.isNaN(e) ? Infinity : e;
}

// Apply is the same code here and there (bit-identical); gradients are central differences.
const TOL = { apply: 1e-12, gradient: 1e-6 };

// ---------------------------------------------------------------------------------------------------
// one call of each kind: resolves with its verification error and tolerance, or "cancelled"

type Client = TesseractClient<Inputs, Outputs>;
type Result = { err: number; tol: number } | "cancelled";
const checked = (err: number): Result => ({ err, tol: TOL.gradient });

/** `go()` is called just before the RPC, so latency leaves out making inputs and local answers. */
async function call(kind: Kind, client: Client, go: () => void): Promise<Result> {
  if (kind === "apply") {
    const inputs = randomInputs(false);
    if (Math.random() < 0.2) inputs.a = ndarray(Float32Array.from(inputs.a!.data as Float64Array), inputs.a!.shape); // FP32 in, FP64 out
    const want = (await vectoradd.apply(inputs)).result!.data as Float64Array;
    go();
    return { err: relErr((await client.apply(inputs)).result?.data as Float64Array, want), tol: TOL.apply };
  }
  const inputs = randomInputs(true);
  const n = inputs.a!.shape[0];
  const paths = randomPaths();
  const J = analytic(inputs, paths);
  const m = (p: string) => (p === "s" ? 1 : n);
  const tangent = Object.fromEntries(paths.map((p) => [p, p === "s" ? scalar(rand(-1, 1)) : vec(n)])) as Record<string, NdArray<Float64Array>>;
  const cotangent = vec(n);
  go();
  if (kind === "jacobian" || kind === "abort" || kind === "deadline") {
    // abort: the SDK's AbortSignal fires after 0–4 ms; deadline: 1–4 ms. Either may still succeed.
    const controller = new AbortController();
    if (kind === "abort") setTimeout(() => controller.abort(), Math.random() * 4);
    const options = kind === "abort" ? { signal: controller.signal } : kind === "deadline" ? { deadline: 1 + Math.random() * 3 } : undefined;
    const { jacobian } = await client.jacobian({ inputs, inputPaths: paths, outputPaths: ["result"] }, options);
    return checked(Math.max(...paths.map((p) => relErr(jacobian.result?.[p]?.data, J[p]))));
  }
  if (kind === "rows") {
    const { jacobian } = await assembleJacobian(client.jacobianRows({ inputs, inputPaths: paths, outputPaths: ["result"] })); // DATA_LOSS if incomplete
    return checked(Math.max(...paths.map((p) => relErr(jacobian.result?.[p]?.data, J[p]))));
  }
  if (kind === "rows-cancel") {
    // The header, then one row checked value by value; leaving the loop cancels the stream.
    for await (const event of client.jacobianRows({ inputs, inputPaths: paths, outputPaths: ["result"] })) {
      if (!event.row) continue;
      const { input_path, input_index, slices } = event.row;
      const Jp = J[input_path];
      if (!Jp || slices.length === 0) return checked(Infinity);
      let e = 0;
      for (const { offset, values } of slices) {
        const want = Float64Array.from(values, (_, k) => Jp[(offset + k) * m(input_path) + input_index]);
        e = Math.max(e, relErr(values, want));
      }
      return e > TOL.gradient ? checked(e) : "cancelled";
    }
    return checked(Infinity); // ended without a row: lost
  }
  if (kind === "jvp") {
    const { result } = await client.jvp({ inputs, inputPaths: paths, outputPaths: ["result"], tangent });
    const want = new Float64Array(n);
    for (const p of paths) for (let i = 0; i < n; i++) for (let j = 0; j < m(p); j++) want[i] += J[p][i * m(p) + j] * tangent[p].data[j];
    return checked(relErr(result.result?.data, want));
  }
  // vjp
  const { result } = await client.vjp({ inputs, inputPaths: paths, outputPaths: ["result"], cotangent: { result: cotangent } });
  return checked(Math.max(
    ...paths.map((p) => {
      const want = new Float64Array(m(p));
      for (let i = 0; i < n; i++) for (let j = 0; j < m(p); j++) want[j] += cotangent.data[i] * J[p][i * m(p) + j];
      return relErr(result[p]?.data, want);
    }),
  ));
}

// ---------------------------------------------------------------------------------------------------
// bookkeeping

interface Tally { calls: number; ok: number; cancelled: number; refused: number; errors: number; wrong: number; maxErr: number; ms: number[] }
const tally = Object.fromEntries(KINDS.map((k) => [k, { calls: 0, ok: 0, cancelled: 0, refused: 0, errors: 0, wrong: 0, maxErr: 0, ms: [] as number[] }])) as Record<Kind, Tally>;
const codes: Record<string, number> = {}; // every error by code name, expected ones included
const unexpected: Record<string, number> = {}; // unexpected errors and mismatches, by message, channel and second
const note = (what: string) => (unexpected[what] = (unexpected[what] ?? 0) + 1);
const open = new Map<symbol, Kind>();
const T0 = Date.now();

function pick(): Kind {
  let r = Math.random() * KINDS.reduce((s, k) => s + MIX[k], 0);
  for (const k of KINDS) if ((r -= MIX[k]) < 0) return k;
  return "apply";
}

async function timed(kind: Kind, client: Client, channel: number): Promise<void> {
  const t = tally[kind];
  const id = Symbol(kind);
  open.set(id, kind);
  t.calls++;
  let start = performance.now();
  try {
    const r = await call(kind, client, () => (start = performance.now()));
    const ms = performance.now() - start;
    if (r === "cancelled") (t.cancelled++, t.ms.push(ms));
    else if (r.err <= r.tol) (t.ok++, t.ms.push(ms), (t.maxErr = Math.max(t.maxErr, r.err)));
    else (t.wrong++, note(`${kind}: answer off by ${r.err.toExponential(1)} (relative; tolerance ${r.tol})`));
  } catch (e) {
    const code = isTesseractClientError(e) ? e.codeName : "NOT_A_GRPC_ERROR";
    codes[code] = (codes[code] ?? 0) + 1;
    const cancelKind = kind === "abort" || kind === "deadline";
    if (code === OVERLOAD && kind !== "apply") t.refused++;
    else if (cancelKind && CANCEL_CODES.has(code)) (t.cancelled++, t.ms.push(performance.now() - start));
    else (t.errors++, note(`${kind}, channel ${channel}, t ${Math.round((Date.now() - T0) / 1000)} s: ${e instanceof Error ? e.message : String(e)}`));
  } finally {
    open.delete(id);
  }
}

const pct = (xs: number[], q: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)] : NaN);
const r2 = (x: number) => (Number.isFinite(x) ? +x.toFixed(2) : x);

// ---------------------------------------------------------------------------------------------------
// the server: a child process, its RSS and CPU from /proc, its JSON log lines counted

function proc(pid: number): { rssMb: number; hwmMb: number; cpuS: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields[0] is field 3 (state)
    return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024, cpuS: (Number(fields[11]) + Number(fields[12])) / 100 }; // utime + stime, 100 ticks/s
  } catch {
    return undefined;
  }
}

const server = spawn(process.execPath, [CLI, "serve", "vectoradd", "--host", "127.0.0.1", "--port", "0", "--max-jobs", opts.maxJobs, "--max-queue", opts.maxQueue, "--workers", opts.workers, "--stream-chunk-bytes", "1024"], { stdio: ["ignore", "pipe", "pipe"] });
let serverExit: { code: number | null; signal: string | null; expected: boolean } | undefined;
let stopping = false;
server.once("exit", (code, signal) => (serverExit = { code, signal, expected: stopping }));
const serverCalls: Record<string, number> = {}; // "rpc code" → count, from the server's own log
const serverWarnings: string[] = [];
createInterface({ input: server.stderr! }).on("line", (line) => {
  try {
    const j = JSON.parse(line);
    if (j.msg === "call") serverCalls[`${j.rpc} ${j.code}`] = (serverCalls[`${j.rpc} ${j.code}`] ?? 0) + 1;
    if (j.level >= 40 && serverWarnings.length < 10) serverWarnings.push(line.slice(0, 400)); // warn and above
  } catch {
    if (serverWarnings.length < 10) serverWarnings.push(line.slice(0, 400)); // not JSON: a crash trace?
  }
});

function fail(why: string): never {
  console.error(`bench:load: ${why}`);
  server.kill("SIGKILL");
  process.exit(2);
}

async function main(): Promise<void> {
  const stdout = createInterface({ input: server.stdout! });
  const line = await new Promise<string>((resolve) => (stdout.once("line", resolve), stdout.once("close", () => resolve("(exited)"))));
  const address = /listening on (\S+)/.exec(line)?.[1] ?? fail(`the server did not start: ${line}\n${serverWarnings.join("\n")}`);
  const pid = server.pid!;
  const t0 = Date.now();
  const cpu0 = { load: process.cpuUsage(), server: proc(pid)?.cpuS ?? 0 }; // who was busy: this process or the server?
  const rss: { t_s: number; rss_mb: number }[] = [];
  const sample = () => {
    const p = proc(pid);
    if (p) rss.push({ t_s: r2((Date.now() - t0) / 1000), rss_mb: r2(p.rssMb) });
  };
  sample();
  const sampler = setInterval(sample, 1000);

  // The local answers must be vectoradd's own: compare with its shipped Jacobian on a few inputs.
  for (let k = 0; k < 20; k++) {
    const inputs = randomInputs(true);
    const mine = analytic(inputs, ["a", "b", "s"]);
    const theirs = vectoradd.gradients!.jacobian!(inputs, ["a", "b", "s"], ["result"]).result;
    for (const p of ["a", "b", "s"]) if (relErr(mine[p], theirs[p].data) > 1e-12) fail(`local Jacobian of ${p} disagrees with vectoradd's`);
  }

  const types = { inputs: Inputs, outputs: Outputs, inputType: vectoradd.inputType, outputType: vectoradd.outputType };
  // A local subchannel pool per client: grpc-js otherwise shares one TCP connection among all clients
  // of the same target, and so would every call here.
  const channelOptions = { "grpc.use_local_subchannel_pool": 1 };
  const clients = Array.from({ length: Math.ceil(CLIENTS / PER_CHANNEL) }, () => new TesseractClient<Inputs, Outputs>(address, types, { channelOptions }));
  console.log(`bench:load: ${CLIENTS} clients on ${clients.length} channels for ${SECONDS} s against vectoradd at ${address} (--max-jobs ${opts.maxJobs} --max-queue ${opts.maxQueue} --workers ${opts.workers})`);

  // The load: each virtual client loops until the deadline; then calls still open get SETTLE_MS.
  const stopAt = Date.now() + SECONDS * 1000;
  const loops = Array.from({ length: CLIENTS }, async (_, i) => {
    while (Date.now() < stopAt && !serverExit) await timed(pick(), clients[Math.floor(i / PER_CHANNEL)], Math.floor(i / PER_CHANNEL));
  });
  const all = Promise.all(loops);
  const settled = await Promise.race([all.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), SECONDS * 1000 + SETTLE_MS))]);
  const seconds = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0.load);
  const cpuS = { load_generator: r2((cpu.user + cpu.system) / 1e6), server: r2((proc(pid)?.cpuS ?? NaN) - cpu0.server) };
  const unsettled = settled ? 0 : open.size;

  // Idle: the server's CPU time stops moving (cancelled jobs finish their last evaluation), then "end".
  for (let i = 0, last = proc(pid)?.cpuS ?? 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const now = proc(pid)?.cpuS ?? 0;
    if (now - last <= 0.01) break;
    last = now;
  }
  clearInterval(sampler);
  sample();
  const end = proc(pid);
  const health = await clients[0].health("", { deadline: 5000 }).catch((e) => `error: ${e instanceof Error ? e.message : e}`);
  for (const c of clients) c.close();
  const diedUnderLoad = serverExit !== undefined;
  stopping = true;
  server.kill("SIGTERM");
  const killer = setTimeout(() => server.kill("SIGKILL"), 15_000);
  if (!serverExit) await once(server, "exit");
  clearTimeout(killer);
  clearTimeout(hard);

  // Tables: one row per kind, then all kinds together.
  const row = (kind: string, ts: Tally[]) => {
    const ms = ts.flatMap((t) => t.ms).sort((a, b) => a - b);
    const sum = (k: keyof Omit<Tally, "ms">) => ts.reduce((s, t) => (k === "maxErr" ? Math.max(s, t[k]) : s + t[k]), 0);
    return { kind, calls: sum("calls"), ok: sum("ok"), cancelled: sum("cancelled"), refused: sum("refused"), errors: sum("errors"), wrong: sum("wrong"), req_per_s: r2(sum("calls") / seconds), p50_ms: r2(pct(ms, 0.5)), p99_ms: r2(pct(ms, 0.99)), max_ms: r2(ms[ms.length - 1] ?? NaN), max_rel_err: sum("maxErr") ? +sum("maxErr").toExponential(1) : 0 };
  };
  const rows = [...KINDS.map((k) => row(k, [tally[k]])), row("all", Object.values(tally))];
  const total = rows[rows.length - 1];
  const peak = Math.max(...rss.map((s) => s.rss_mb), end?.hwmMb ?? 0);
  const summary = {
    clients: CLIENTS, channels: clients.length, seconds: r2(seconds), load_seconds: SECONDS,
    server_flags: { max_jobs: Number(opts.maxJobs), max_queue: Number(opts.maxQueue), stream_chunk_bytes: 1024 },
    cpu_seconds: cpuS, errors_by_code: codes, unsettled, server_calls_by_rpc_and_code: serverCalls,
    rss_mb: { start: rss[0]?.rss_mb, peak: r2(peak), end: r2(end?.rssMb ?? NaN) },
    health, server_exit: serverExit, server_died_under_load: diedUnderLoad, server_warnings: serverWarnings, unexpected,
  };
  report("load", rows);
  const file = path.join(__dirname, "../../bench/results/load.json");
  const json = JSON.parse(fs.readFileSync(file, "utf8"));
  fs.writeFileSync(file, JSON.stringify({ ...json, summary, rss_series: rss }, null, 2));

  console.log(`errors by code (expected and not): ${JSON.stringify(codes)}`);
  console.log(`CPU seconds over ${r2(seconds)} s: load generator ${cpuS.load_generator}, server ${cpuS.server}`);
  console.log(`server RSS MB: start ${summary.rss_mb.start}, peak ${summary.rss_mb.peak}, end (idle) ${summary.rss_mb.end}; ${rss.length} samples`);
  console.log(`health after load: ${health}; SIGTERM → exit ${serverExit?.code ?? serverExit?.signal}`);
  if (serverWarnings.length) console.log(`server warnings/errors:\n  ${serverWarnings.join("\n  ")}`);
  const problems = [
    total.wrong && `${total.wrong} wrong answers`,
    total.errors && `${total.errors} unexpected errors`,
    unsettled && `${unsettled} calls never settled`,
    diedUnderLoad && `the server died under load (${JSON.stringify(serverExit)})`,
    health !== "SERVING" && `health was ${health}`,
    !diedUnderLoad && serverExit?.code !== 0 && `the server exited ${serverExit?.code ?? serverExit?.signal} on SIGTERM`,
  ].filter(Boolean);
  for (const [u, count] of Object.entries(unexpected).slice(0, 10)) console.log(`  ${count} × ${u}`);
  console.log(problems.length ? `bench:load: FAILED: ${problems.join("; ")}` : `bench:load: ok: ${total.calls} calls, ${total.ok} verified, ${total.cancelled} cancelled as asked, ${total.refused} refused (${OVERLOAD}), 0 wrong, 0 lost`);
  process.exit(problems.length ? 1 : 0);
}

main().catch((e) => fail(e instanceof Error ? (e.stack ?? e.message) : String(e)));
