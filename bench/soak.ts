/**
 * `npm run bench:soak -- [--seconds 300] [--warm-up 60] [--concurrency 6] [--bad-connections 40]`: a
 * long mixed run against real `serve` processes on 127.0.0.1, to show that nothing crashes, hangs,
 * leaks or loses work over time. Servers (child processes): meshstats inline (4 MiB message limit),
 * vectoradd and the polynomial fixture with --workers 2 (its apply ends its worker thread, or throws,
 * on some inputs), heat inline, and a bridge to a fake tesseract-core runtime; each also serves REST
 * and metrics. The mix: every RPC with valid inputs (answers checked), JacobianRows read fully or
 * cancelled midway, deadlines that expire mid-call, malformed protobuf, bad paths, oversized
 * messages, REST calls (valid, malformed, clients gone mid-body or mid-answer), crashing and throwing
 * worker threads, reflection, health, and connections that stay silent, stay idle after the preface,
 * or break HTTP/2's rules and hold their socket open. Every call must end with its expected outcome
 * within CALL_CAP_MS. Each server's RSS, heap used, active handles, threads, file descriptors, sockets
 * and event-loop delay are sampled; figures at start, after the warm-up and at the end (after the
 * idle settle) go into the table and bench/results/soak.json. Exits 1 on any unexpected outcome, a
 * call that never ended, a server that died, or growth after the warm-up beyond LEAK_*.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { Command } from "commander";
import ndarray from "ndarray";
import { TesseractClient, isTesseractClientError } from "../client";
import { Inputs as HeatInputs, Outputs as HeatOutputs } from "../generated/tesseract/examples/heat/v1/heat";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { DataType } from "../generated/tesseract/v1/tensor";
import { Inputs as VaddInputs, Outputs as VaddOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { sampleHeatInputs, sampleMeshInputs } from "../server/tesseracts/samples";
import { clientPreface, FrameType, h2frame } from "../test/h2-frames";
import { frame, RawGrpcSession } from "../test/raw-grpc";
import { report } from "./report";

const opts = new Command()
  .option("--seconds <s>", "how long new calls are started", "300")
  .option("--warm-up <s>", "seconds after which growth counts as a leak", "60")
  .option("--concurrency <n>", "call loops running at once", "6")
  .option("--bad-connections <n>", "connections per second that break HTTP/2's rules and stay open", "40")
  .option("--sample-ms <ms>", "sampling period", "2000")
  .parse()
  .opts();
const SECONDS = Number(opts.seconds);
const WARM_UP_S = Math.min(Number(opts.warmUp), SECONDS / 2);
const CONCURRENCY = Number(opts.concurrency);
const BAD_PER_S = Number(opts.badConnections);
const CALL_CAP_MS = 60_000; // a call not ended by then never ends
const SETTLE_MS = 25_000; // after the load: the silent-connection time and more, for sockets to close
const LEAK = { rssMb: 40, heapMb: 20, fds: 30, handles: 30 }; // end (settled) over after-warm-up
const ROOT = path.join(__dirname, "../..");
const CLI = path.join(__dirname, "../cli/cli.js");
const MAX_MESSAGE = 4 * 2 ** 20;
const hard = setTimeout(() => fail("hard cap reached"), (SECONDS + 300) * 1000);

// ---- servers ------------------------------------------------------------------------------------

interface Server { name: string; child: ChildProcess; address: string; httpPort: number; metricsPort: number; exit?: string; stopping: boolean; errors: string[] }

async function serve(name: string, args: string[]): Promise<Server> {
  const child = spawn(process.execPath, [CLI, "serve", ...args, "--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--metrics-port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  const server: Server = { name, child, address: "", httpPort: 0, metricsPort: 0, stopping: false, errors: [] };
  child.once("exit", (code, signal) => (server.exit = `${code ?? signal}`));
  let logged = () => {};
  const ports = new Promise<void>((resolve) => (logged = resolve));
  createInterface({ input: child.stderr! }).on("line", (line) => {
    try {
      const j = JSON.parse(line);
      if (j.httpPort) server.httpPort = j.httpPort;
      if (j.metricsPort) server.metricsPort = j.metricsPort;
      if (j.msg === "serving") logged();
      if (j.level >= 50 && server.errors.length < 10) server.errors.push(line.slice(0, 300)); // error and fatal
    } catch {
      if (server.errors.length < 10) server.errors.push(line.slice(0, 300)); // a crash trace?
    }
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
  server.address = /listening on (\S+)/.exec(line)?.[1] ?? fail(`${name} did not start: ${line}`);
  await Promise.race([ports, new Promise((r) => setTimeout(r, 10_000))]);
  if (!server.httpPort || !server.metricsPort) fail(`${name}: no httpPort/metricsPort logged`);
  return server;
}

async function fakeRuntime(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [path.join(__dirname, "fake-runtime.js")], { stdio: ["pipe", "pipe", "inherit"] });
  const [url] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
  return { url, child };
}

// ---- sampling -----------------------------------------------------------------------------------

interface Sample { t_s: number; rss_mb: number; heap_mb: number; handles: number; threads: number; fds: number; sockets: number; loop_p99_ms: number; loop_max_ms: number }

function procStats(pid: number): { rss_mb: number; threads: number; fds: number; sockets: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const num = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
    const fds = fs.readdirSync(`/proc/${pid}/fd`);
    let sockets = 0;
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) sockets++;
      } catch {
        // closed meanwhile
      }
    }
    return { rss_mb: r1(num("VmRSS") / 1024), threads: num("Threads"), fds: fds.length, sockets };
  } catch {
    return undefined;
  }
}

function get(port: number, urlPath: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, timeout: timeoutMs, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c) => (body += c)).on("end", () => resolve({ status: res.statusCode!, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

async function sample(server: Server, t0: number): Promise<Sample | undefined> {
  const p = procStats(server.child.pid!);
  if (!p) return undefined;
  const metrics = await get(server.metricsPort, "/metrics").then((r) => r.body, () => "");
  const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(metrics)?.[1] ?? NaN);
  return { t_s: r1((Date.now() - t0) / 1000), ...p, heap_mb: r1(metric("nodejs_heap_size_used_bytes") / 2 ** 20), handles: metric("nodejs_active_handles_total"), loop_p99_ms: r1(metric("nodejs_eventloop_lag_p99_seconds") * 1000), loop_max_ms: r1(metric("nodejs_eventloop_lag_max_seconds") * 1000) };
}

// ---- the calls ----------------------------------------------------------------------------------

type Outcome = string; // a gRPC code name, an HTTP status, or a word ("cancelled", "gone", "closed-by-server")
interface Kind { weight: number; expected: Outcome[]; run(): Promise<Outcome> }

const r1 = (x: number) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : x);
const f64 = (values: number[], shape = [values.length]) => ndarray(Float64Array.from(values), shape);
const rand = (n: number) => Array.from({ length: n }, () => Math.random() * 4 - 2);
const codeOf = (e: unknown): Outcome => (isTesseractClientError(e) ? e.codeName : `not a gRPC error: ${e instanceof Error ? e.message : String(e)}`);
const wrong: string[] = [];
function check(ok: boolean, what: string): void {
  if (!ok && wrong.length < 20) wrong.push(what);
  if (!ok) throw new Error(`WRONG ANSWER: ${what}`);
}
const closeTo = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol * (1 + Math.abs(b));
const arrayJson = (values: number[], shape = [values.length]) => ({ object_type: "array", shape, dtype: "float64", data: { buffer: values, encoding: "json" } });

/** One HTTP request; resolves with the status (and body), or "gone" when `abort` cut it. */
function rest(port: number, urlPath: string, body: string, abort?: "mid-body" | "mid-answer"): Promise<{ status: Outcome; body: string }> {
  return new Promise((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, path: urlPath, method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      if (abort === "mid-answer") {
        res.once("data", () => (req.destroy(), resolve({ status: "gone", body: "" })));
        res.once("end", () => resolve({ status: String(res.statusCode), body: "" }));
        return;
      }
      let text = "";
      res.setEncoding("utf8").on("data", (c) => (text += c)).on("end", () => resolve({ status: String(res.statusCode), body: text }));
    });
    req.on("error", (e) => resolve({ status: abort ? "gone" : `error: ${e.message}`, body: "" }));
    if (abort === "mid-body") {
      req.write(body.slice(0, body.length >> 1), () => (req.destroy(), resolve({ status: "gone", body: "" })));
    } else req.end(body);
  });
}

function kinds(s: Record<string, Server>): Record<string, Kind> {
  const options = { channelOptions: { "grpc.max_send_message_length": 64 * 2 ** 20, "grpc.max_receive_message_length": 64 * 2 ** 20 } };
  const mesh = new TesseractClient<MeshInputs, MeshOutputs>(s.mesh.address, { inputs: MeshInputs, outputs: MeshOutputs }, options);
  const vadd = new TesseractClient<VaddInputs, VaddOutputs>(s.vadd.address, { inputs: VaddInputs, outputs: VaddOutputs }, options);
  const heat = new TesseractClient<HeatInputs, HeatOutputs>(s.heat.address, { inputs: HeatInputs, outputs: HeatOutputs }, options);
  const grpcCode = async (p: Promise<unknown>) => p.then(() => "OK", codeOf);
  const vaddInputs = (n: number) => ({ a: f64(rand(n)), b: f64(rand(n)), s: f64([1.5], []), normalize: false });
  const raw = (server: Server, rpc: string, body: Buffer) =>
    withRaw(server, (session) => session.call(rpc, frame(body), { timeoutMs: CALL_CAP_MS })).then((r) => (r.grpcStatus === undefined ? `no status: ${r.streamError ?? (r.timedOut ? "timed out" : "?")}` : CODE_NAMES[r.grpcStatus]));
  const polyBody = (mode: string, y: number) => JSON.stringify({ inputs: { x: arrayJson([0.5, 1, 1.5]), y: arrayJson([y], []), params: {}, blocks: [], mode } });
  const meshRest = (n: number) => ({ mesh: { n_points: n, points: arrayJson(rand(3 * n), [n, 3]), cell_data: {} }, layers: [] });
  return {
    "apply (vectoradd)": { weight: 8, expected: ["OK"], async run() {
      const x = vaddInputs(50);
      const out = await vadd.apply(x);
      check(closeTo(Number(out.result!.data[7]), 1.5 * x.a.data[7] + x.b.data[7], 1e-12), "vectoradd apply");
      return "OK";
    } },
    "apply (meshstats, heat)": { weight: 4, expected: ["OK"], run: () => grpcCode(Promise.all([mesh.apply(sampleMeshInputs(100)), heat.apply(sampleHeatInputs(20, 5))])) },
    "jacobian (vectoradd)": { weight: 6, expected: ["OK"], async run() {
      const x = vaddInputs(20);
      const { jacobian } = await vadd.jacobian({ inputs: x, inputPaths: ["a", "s"], outputPaths: ["result"] });
      check(closeTo(jacobian.result!.a!.get(3, 3), 1.5, 1e-6) && closeTo(jacobian.result!.a!.get(3, 4), 0, 1e-6), "vectoradd d result/d a");
      check(closeTo(jacobian.result!.s!.get(5), x.a.data[5], 1e-6), "vectoradd d result/d s");
      return "OK";
    } },
    "jvp + vjp (vectoradd)": { weight: 5, expected: ["OK"], async run() {
      const x = vaddInputs(30);
      const v = f64(rand(30));
      const jvp = await vadd.jvp({ inputs: x, inputPaths: ["a"], outputPaths: ["result"], tangent: { a: v } });
      const vjp = await vadd.vjp({ inputs: x, inputPaths: ["b"], outputPaths: ["result"], cotangent: { result: v } });
      check(closeTo(jvp.result.result!.data[9], 1.5 * v.data[9], 1e-6) && closeTo(vjp.result.b!.data[9], v.data[9], 1e-6), "vectoradd jvp/vjp");
      return "OK";
    } },
    "describe, abstractEval, checkGradients, health": { weight: 3, expected: ["OK"], async run() {
      check((await mesh.describe()).name === "meshstats", "describe name");
      check((await vadd.abstractEval({ a: { shape: [7], datatype: DataType.DATA_TYPE_FP64 }, b: { shape: [7], datatype: DataType.DATA_TYPE_FP64 } } as never)).length === 1, "abstractEval outputs");
      check((await vadd.checkGradients({ inputs: vaddInputs(5) } as never)).passed, "checkGradients passed");
      check((await heat.health()) === "SERVING", "health");
      return "OK";
    } },
    "rows read fully (meshstats)": { weight: 4, expected: ["OK"], async run() {
      let rows = 0;
      for await (const event of mesh.jacobianRows({ inputs: sampleMeshInputs(60), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"] })) if (event.row) rows++;
      check(rows === 180, `meshstats rows ${rows}, not 180`);
      return "OK";
    } },
    "rows cancelled midway (heat)": { weight: 4, expected: ["cancelled"], async run() {
      let rows = 0;
      for await (const event of heat.jacobianRows({ inputs: sampleHeatInputs(200, 40), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] })) if (event.row && ++rows === 3) return "cancelled";
      return "ended before the third row";
    } },
    "deadline mid-call (heat jacobian)": { weight: 4, expected: ["DEADLINE_EXCEEDED"], run: () => grpcCode(heat.jacobian({ inputs: sampleHeatInputs(400, 200), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] }, { deadline: 30 + Math.random() * 50 })) },
    "bad path": { weight: 3, expected: ["INVALID_ARGUMENT"], run: () => grpcCode(vadd.jacobian({ inputs: vaddInputs(4), inputPaths: ["a.nope"], outputPaths: ["result"] })) },
    "oversized message (meshstats, 4 MiB limit)": { weight: 1, expected: ["RESOURCE_EXHAUSTED"], run: () => grpcCode(mesh.apply(sampleMeshInputs(200_000))) },
    "malformed protobuf (raw)": { weight: 3, expected: ["INVALID_ARGUMENT"], run: () => raw([s.mesh, s.vadd, s.poly][Math.floor(Math.random() * 3)], "/tesseract.v1.Tesseract/Apply", Buffer.from([0x0a, 0x05, 0x0a, 0xff, 0xff, 0xff])) },
    "describe (bridge, raw)": { weight: 2, expected: ["OK"], run: () => raw(s.bridge, "/tesseract.v1.Tesseract/Describe", Buffer.alloc(0)) },
    "reflection list (raw)": { weight: 1, expected: ["OK"], run: () => raw(s.heat, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Buffer.from([0x3a, 0x01, 0x2a])) },
    "worker thread exits (polynomial --workers 2)": { weight: 2, expected: ["500"], async run() {
      const r = await rest(s.poly.httpPort, "/apply", polyBody("crash", 0.9));
      if (r.status === "500") check(/worker thread running apply died/.test(r.body), `crash message: ${r.body.slice(0, 200)}`);
      return r.status;
    } },
    "apply throws in a worker": { weight: 2, expected: ["500"], run: async () => (await rest(s.poly.httpPort, "/apply", polyBody("throw", 0.9))).status },
    "polynomial ok after crashes": { weight: 2, expected: ["200"], async run() {
      const r = await rest(s.poly.httpPort, "/jacobian", JSON.stringify({ inputs: JSON.parse(polyBody("", 0.2)).inputs, jac_inputs: ["x"], jac_outputs: ["f"] }));
      if (r.status === "200") check(/"shape":\s*\[\s*3\s*,\s*3\s*\]/.test(r.body), `polynomial jacobian: ${r.body.slice(0, 200)}`);
      return r.status;
    } },
    "REST valid (vectoradd, bridge)": { weight: 4, expected: ["200"], async run() {
      const a = await rest(s.vadd.httpPort, "/apply", JSON.stringify({ inputs: { a: arrayJson([1, 2]), b: arrayJson([3, 4]) } }));
      if (a.status !== "200") return a.status;
      check(/"buffer":\s*\[\s*4(\.0)?\s*,\s*6(\.0)?\s*\]/.test(a.body) || a.body.includes("AAAAAAAAEEAAAAAAAAAYQA"), `vectoradd REST apply: ${a.body.slice(0, 200)}`);
      const b = await rest(s.bridge.httpPort, "/jacobian", JSON.stringify({ inputs: meshRest(4), jac_inputs: ["mesh.points"], jac_outputs: ["barycenter"] }));
      return b.status;
    } },
    "REST malformed": { weight: 3, expected: ["400", "422"], run: async () => (await rest([s.vadd, s.bridge, s.mesh][Math.floor(Math.random() * 3)].httpPort, "/apply", Math.random() < 0.5 ? '{"inputs": {"a": [1, 2' : '{"inputs": {"a": {"shape": [2]}}}')).status },
    "REST client gone mid-body": { weight: 2, expected: ["gone"], run: async () => (await rest(s.mesh.httpPort, "/apply", JSON.stringify({ inputs: meshRest(5000) }), "mid-body")).status },
    "REST client gone mid-answer": { weight: 2, expected: ["gone"], run: async () => (await rest(s.vadd.httpPort, "/apply", JSON.stringify({ inputs: { a: arrayJson(rand(200_000)), b: arrayJson(rand(200_000)) } }), "mid-answer")).status },
  };
}

const CODE_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

/** A raw HTTP/2 session per server, replaced when the server closed it (idle, resets). */
const rawSessions = new Map<Server, RawGrpcSession>();
async function withRaw<T>(server: Server, use: (s: RawGrpcSession) => Promise<T>): Promise<T> {
  let session = rawSessions.get(server);
  if (!session?.usable) rawSessions.set(server, (session = new RawGrpcSession(server.address)));
  return use(session);
}

// ---- connections that hold a socket -------------------------------------------------------------

const connections = { silent: 0, idle: 0, broken: 0, closedByServer: 0, stillOpenAtEnd: 0, longestHeldMs: { silent: 0, idle: 0, broken: 0 } };
/** Silent and broken connections, which the server should close within its silent-connection time. */
const heldSockets = new Set<net.Socket>();
/** Idle ones, which it keeps until its idle limit (60 s). */
const idleSockets = new Set<net.Socket>();

/** A connection that (silent) sends nothing, (idle) sends the preface and waits, (broken) breaks HTTP/2's rules; each waits for the server to close it. */
function holdConnection(port: number, how: "silent" | "idle" | "broken"): void {
  connections[how]++;
  const opened = Date.now();
  const socket = net.connect(port, "127.0.0.1", () => {
    if (how === "idle") socket.write(clientPreface());
    // DATA on stream 0: a connection error, answered GOAWAY PROTOCOL_ERROR.
    if (how === "broken") socket.write(Buffer.concat([clientPreface(), h2frame(FrameType.DATA, 0, 0, Buffer.from("x"))]));
  });
  const set = how === "idle" ? idleSockets : heldSockets;
  set.add(socket);
  socket.on("data", () => {});
  socket.on("error", () => {});
  socket.on("close", () => {
    if (!set.delete(socket)) return; // closed here, at the end
    connections.closedByServer++;
    connections.longestHeldMs[how] = Math.max(connections.longestHeldMs[how], Date.now() - opened);
  });
  socket.on("end", () => socket.end());
}

// ---- the run ------------------------------------------------------------------------------------

const children: ChildProcess[] = [];
function fail(why: string): never {
  console.error(`bench:soak: ${why}`);
  for (const c of children) c.kill("SIGKILL");
  process.exit(2);
}

// Stopped early (Ctrl-C, a timeout), the run takes its servers with it.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => fail(`stopped by ${signal}`));

async function main(): Promise<void> {
  const runtime = await fakeRuntime();
  children.push(runtime.child);
  const servers: Record<string, Server> = {};
  const specs: [string, string[]][] = [
    ["mesh", ["meshstats", "--workers", "0", "--max-message-bytes", String(MAX_MESSAGE)]],
    ["vadd", ["vectoradd", "--workers", "2"]],
    ["heat", ["heat", "--workers", "0"]],
    ["poly", [path.join(ROOT, "test/fixtures/polynomial/polynomial.js"), "--workers", "2"]],
    ["bridge", [runtime.url]],
  ];
  for (const [name, args] of specs) (servers[name] = await serve(name, args)), children.push(servers[name].child);
  const list = Object.values(servers);
  const t0 = Date.now();
  const samples = new Map<Server, Sample[]>(list.map((s) => [s, []]));
  const takeSamples = async () => {
    for (const s of list) {
      const x = await sample(s, t0);
      if (x) samples.get(s)!.push(x);
    }
  };
  await takeSamples();
  const sampler = setInterval(() => void takeSamples(), Number(opts.sampleMs));

  const mix = kinds(servers);
  const names = Object.keys(mix);
  const total = names.reduce((sum, k) => sum + mix[k].weight, 0);
  const pick = () => {
    let r = Math.random() * total;
    for (const k of names) if ((r -= mix[k].weight) < 0) return k;
    return names[0];
  };
  const tally: Record<string, Record<Outcome, number>> = Object.fromEntries(names.map((k) => [k, {}]));
  const unexpected: Record<string, number> = {};
  const open = new Map<symbol, { kind: string; since: number }>();
  let neverEnded = 0;
  const runOne = async (kind: string) => {
    const id = Symbol(kind);
    open.set(id, { kind, since: Date.now() });
    let cap: NodeJS.Timeout | undefined;
    const capped = new Promise<Outcome>((resolve) => (cap = setTimeout(() => resolve("NEVER ENDED"), CALL_CAP_MS)));
    const outcome = await Promise.race([mix[kind].run().catch((e: unknown) => (e instanceof Error && e.message.startsWith("WRONG") ? "WRONG ANSWER" : codeOf(e))), capped]);
    clearTimeout(cap);
    open.delete(id);
    if (outcome === "NEVER ENDED") neverEnded++;
    tally[kind][outcome] = (tally[kind][outcome] ?? 0) + 1;
    if (!mix[kind].expected.includes(outcome)) unexpected[`${kind}: ${outcome}`] = (unexpected[`${kind}: ${outcome}`] ?? 0) + 1;
  };

  const stopAt = t0 + SECONDS * 1000;
  // Connections that hold a socket: a few silent and idle ones, and BAD_PER_S broken ones a second.
  const holders = setInterval(() => {
    const targets = [servers.mesh, servers.vadd, servers.bridge];
    for (let i = 0; i < BAD_PER_S; i++) holdConnection(Number(targets[i % 3].address.split(":")[1]), "broken");
    holdConnection(Number(servers.heat.address.split(":")[1]), Math.random() < 0.5 ? "silent" : "idle");
  }, 1000);
  console.log(`bench:soak: ${CONCURRENCY} call loops and ${BAD_PER_S} broken connections a second for ${SECONDS} s against ${list.map((s) => `${s.name} ${s.address}`).join(", ")}`);
  const progress = setInterval(() => {
    const last = list.map((s) => samples.get(s)!.at(-1)).map((x, i) => `${list[i].name} ${x?.rss_mb}MB/${x?.fds}fd`);
    console.log(`  t ${Math.round((Date.now() - t0) / 1000)} s: ${Object.values(tally).reduce((n, t) => n + Object.values(t).reduce((a, b) => a + b, 0), 0)} calls, ${Object.keys(unexpected).length} unexpected kinds; ${last.join(", ")}`);
  }, 30_000);
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (Date.now() < stopAt && list.every((s) => s.exit === undefined)) await runOne(pick());
  }));
  clearInterval(holders);
  clearInterval(progress);

  // Settle: every held socket should be closed by the server within the silent-connection time (10 s)
  // or its idle limit; the last samples are the server at rest.
  const settleUntil = Date.now() + SETTLE_MS;
  while (Date.now() < settleUntil && heldSockets.size > 0) await new Promise((r) => setTimeout(r, 500));
  connections.stillOpenAtEnd = heldSockets.size;
  const left = [...heldSockets, ...idleSockets];
  heldSockets.clear();
  idleSockets.clear();
  for (const socket of left) socket.destroy();
  for (const session of rawSessions.values()) await session.close();
  await new Promise((r) => setTimeout(r, 3000));
  clearInterval(sampler);
  await takeSamples();

  const health = await Promise.all(list.map((s) => get(s.httpPort, "/health").then((r) => `${r.status}`, (e) => `error: ${e.message}`)));
  const died = list.filter((s) => s.exit !== undefined).map((s) => `${s.name} exited ${s.exit}`);
  for (const s of list) (s.stopping = true), s.child.kill("SIGTERM");
  const exits = await Promise.all(list.map(async (s) => (s.exit ?? String((await once(s.child, "exit"))[0]))));
  runtime.child.stdin!.end();
  clearTimeout(hard);

  // Tables: outcomes by kind; each server's figures at start, after the warm-up, at the end.
  const rows = names.map((k) => ({ kind: k, calls: Object.values(tally[k]).reduce((a, b) => a + b, 0), outcomes: Object.entries(tally[k]).map(([o, n]) => `${o} ${n}`).join(", "), expected: mix[k].expected.join("|") }));
  const figures = list.flatMap((s) => {
    const xs = samples.get(s)!;
    const warm = xs.find((x) => x.t_s >= WARM_UP_S) ?? xs[0];
    const peak = (key: keyof Sample) => Math.max(...xs.map((x) => x[key]));
    return [
      { server: s.name, at: "start", ...xs[0] },
      { server: s.name, at: "after warm-up", ...warm },
      { server: s.name, at: "end (settled)", ...xs.at(-1)! },
      { server: s.name, at: "peak", t_s: NaN, rss_mb: peak("rss_mb"), heap_mb: peak("heap_mb"), handles: peak("handles"), threads: peak("threads"), fds: peak("fds"), sockets: peak("sockets"), loop_p99_ms: peak("loop_p99_ms"), loop_max_ms: peak("loop_max_ms") },
    ];
  });
  const leaks = list.flatMap((s) => {
    const xs = samples.get(s)!;
    const warm = xs.find((x) => x.t_s >= WARM_UP_S) ?? xs[0];
    const end = xs.at(-1)!;
    return [
      end.rss_mb - warm.rss_mb > LEAK.rssMb && `${s.name} RSS ${warm.rss_mb} → ${end.rss_mb} MB`,
      end.heap_mb - warm.heap_mb > LEAK.heapMb && `${s.name} heap ${warm.heap_mb} → ${end.heap_mb} MB`,
      end.fds - warm.fds > LEAK.fds && `${s.name} fds ${warm.fds} → ${end.fds}`,
      end.handles - warm.handles > LEAK.handles && `${s.name} handles ${warm.handles} → ${end.handles}`,
    ].filter((x): x is string => !!x);
  });
  console.table(rows);
  report("soak", figures);
  const file = path.join(ROOT, "bench/results/soak.json");
  const summary = { seconds: SECONDS, warm_up_s: WARM_UP_S, concurrency: CONCURRENCY, bad_connections_per_s: BAD_PER_S, outcomes: rows, unexpected, never_ended: neverEnded, wrong, connections, health, exits, died, leaks, server_errors: Object.fromEntries(list.map((s) => [s.name, s.errors])) };
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), summary, series: Object.fromEntries(list.map((s) => [s.name, samples.get(s)])) }, null, 2));
  console.log(`held connections: ${JSON.stringify(connections)}`);
  console.log(`health after the run: ${health.join(", ")}; SIGTERM → exits ${exits.join(", ")}`);
  for (const s of list) if (s.errors.length) console.log(`${s.name} logged errors:\n  ${s.errors.join("\n  ")}`);
  for (const [what, n] of Object.entries(unexpected)) console.log(`  unexpected: ${n} × ${what}`);
  const problems = [
    Object.keys(unexpected).length && `${Object.values(unexpected).reduce((a, b) => a + b, 0)} unexpected outcomes`,
    neverEnded && `${neverEnded} calls never ended`,
    died.length && died.join(", "),
    connections.stillOpenAtEnd && `${connections.stillOpenAtEnd} held connections still open ${SETTLE_MS / 1000} s after the run`,
    health.some((h) => h !== "200") && `health ${health.join(", ")}`,
    exits.some((e) => e !== "0") && `exits ${exits.join(", ")}`,
    ...leaks,
  ].filter(Boolean);
  console.log(problems.length ? `bench:soak: FAILED: ${problems.join("; ")}` : `bench:soak: ok`);
  process.exit(problems.length ? 1 : 0);
}

main().catch((e) => fail(e instanceof Error ? (e.stack ?? e.message) : String(e)));
