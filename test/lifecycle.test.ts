/**
 * The server under pressure and at shutdown: a bounded number of gradient jobs with a bounded queue,
 * the server's own deadlines, and a graceful drain (health NOT_SERVING, new calls UNAVAILABLE, calls
 * in flight given a grace period then ended with UNAVAILABLE).
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { FiniteDifferenceOptions, TesseractClient as GeneratedClient, type DescribeResponse } from "../generated/tesseract/v1/tesseract";
import { startServer, type RunningServer } from "../index";
import { loadTesseract } from "../index";
import { silentLogger } from "../server/log";
import { TesseractRuntime } from "../server/runtime";
import * as net from "node:net";
import { once } from "node:events";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { call, freePort, serveProcess } from "./helpers";
import { SparsityMode } from "../index";
import { sampleHeatInputs } from "../server/tesseracts/samples";

const FIXTURE = path.join(__dirname, "../../test/fixtures/polynomial");

/** The polynomial fixture whose apply waits until `open()` is called (no timers involved). */
function gated() {
  const base = loadTesseract(path.join(FIXTURE, "polynomial.js")).definition;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const runtime = new TesseractRuntime({ ...base, apply: async (inputs: unknown) => (await gate, base.apply(inputs)) }, FIXTURE);
  return { runtime, open: () => open() };
}

function jacobianRequest(runtime: TesseractRuntime) {
  const x = { datatype: 11, shape: [2], data: Buffer.from(Float64Array.of(0.1, 0.2).buffer) };
  return { inputs: { type_url: "type.googleapis.com/tesseract.testing.polynomial.v1.Inputs", value: Buffer.from(runtime.schema.inputs.type.encode({ x }).finish()) }, jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] };
}

const status = (e: unknown) => (e as grpc.ServiceError).code;

/** Every process below `pid` (its children, theirs, ...), from /proc. */
function processesUnder(pid: number): number[] {
  const parentOf = (p: string) => Number(fs.readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]?.split(" ")[1]);
  const all = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p));
  const below: number[] = [];
  for (let frontier = [pid]; frontier.length; ) {
    const next = all.filter((p) => {
      try {
        return frontier.includes(parentOf(p));
      } catch {
        return false;
      }
    }).map(Number);
    below.push(...next);
    frontier = next;
  }
  return below;
}

describe("server lifecycle and limits", () => {
  let server: RunningServer | undefined;
  let client: GeneratedClient | undefined;
  afterEach(async () => {
    client?.close();
    await server?.close(0);
  });

  it("at most maxJobs gradient jobs run; maxQueue wait; the next is RESOURCE_EXHAUSTED with a retry hint", async () => {
    const { runtime, open } = gated();
    server = await startServer({ tesseract: runtime, port: 0, workers: 0, limits: { maxJobs: 1, maxQueue: 1 }, logger: silentLogger });
    client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    const c = client;
    const first = call((cb) => c.jacobian(jacobianRequest(runtime), cb));
    const second = call((cb) => c.jacobian(jacobianRequest(runtime), cb));
    const third = call((cb) => c.jacobian(jacobianRequest(runtime), cb)).catch((e: grpc.ServiceError) => e) as Promise<grpc.ServiceError>;
    const refused = await third;
    assert.equal(status(refused), grpc.status.RESOURCE_EXHAUSTED);
    assert.match(refused.details, /^1 gradient jobs are running and 1 waiting, the most this server takes \(--max-jobs 1, --max-queue 1\); retry in a few seconds$/);
    // Describe is not a gradient job: it answers while the slot is taken.
    const described = await call<DescribeResponse>((cb) => c.describe({}, cb));
    assert.deepEqual([described.limits?.max_jobs, described.limits?.max_queue], [1, 1]);
    open();
    await Promise.all([first, second]);
  });

  it("a JacobianRows reader that stops reading: after --stream-stall-ms its stream ends with RESOURCE_EXHAUSTED and the job slot serves the next call", async () => {
    const heat = loadTesseract("heat");
    server = await startServer({ tesseract: heat, port: 0, workers: 0, limits: { maxJobs: 1, maxQueue: 1 }, streamStallMs: 200, warmUpMs: 0, logger: silentLogger });
    client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    const c = client;
    const inputs = (n: number) => {
      const { type_url, value } = heat.schema.inputs.encodeAny(sampleHeatInputs(n, 1, 1), "inputs");
      return { type_url, value: Buffer.from(value) };
    };
    const request = (n: number) => ({ inputs: inputs(n), jac_inputs: ["initial_temperature"], jac_outputs: ["final_temperature"], options: FiniteDifferenceOptions.fromPartial({ sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE }), sparsity: [] });
    // 2 000 rows of 16 kB: far more than the transport buffers while nobody reads.
    const stalled = c.jacobianRows(request(2000));
    let rows = 0;
    stalled.on("data", () => rows++ === 0 && stalled.pause());
    const ended = once(stalled, "error") as Promise<[grpc.ServiceError]>;
    // The only job slot is the stalled stream's: this call waits in the queue until it gives it back.
    const next = await call<{ stats?: { apply_calls?: unknown } }>((cb) => c.jacobian(request(10), cb));
    assert.equal(Number(next.stats?.apply_calls), 20);
    stalled.resume();
    const [error] = await ended;
    assert.equal(status(error), grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(error.details, "the reader took no message for 200 ms, the most this server waits (--stream-stall-ms); the stream ended to free its job slot: read rows as they come, or ask for fewer per call");
    assert.ok(rows > 1 && rows < 2000, `${rows} rows arrived`);
  });

  it("the server's maximum and default deadlines end calls with DEADLINE_EXCEEDED", async () => {
    const { runtime, open } = gated();
    server = await startServer({ tesseract: runtime, port: 0, workers: 0, limits: { maxDeadlineMs: 100, defaultDeadlineMs: 50 }, logger: silentLogger });
    client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    const c = client;
    const noDeadline = await call((cb) => c.jacobian(jacobianRequest(runtime), cb)).catch((e: grpc.ServiceError) => e) as grpc.ServiceError;
    assert.equal(status(noDeadline), grpc.status.DEADLINE_EXCEEDED);
    assert.equal(noDeadline.details, "the server's default deadline of 50 ms passed");
    const long = await call((cb) => c.jacobian(jacobianRequest(runtime), new grpc.Metadata(), { deadline: Date.now() + 60_000 }, cb)).catch((e: grpc.ServiceError) => e) as grpc.ServiceError;
    assert.equal(status(long), grpc.status.DEADLINE_EXCEEDED);
    assert.equal(long.details, "the server's maximum deadline of 100 ms passed");
    open();
  });

  it("shutdown: NOT_SERVING (REST /health 503 too), new calls UNAVAILABLE, calls in flight ended with UNAVAILABLE after the grace", async () => {
    const { runtime } = gated(); // never opened: the call in flight would run forever
    server = await startServer({ tesseract: runtime, port: 0, httpPort: 0, workers: 0, logger: silentLogger });
    const restHealth = `http://127.0.0.1:${server.httpPort}/health`;
    assert.equal((await fetch(restHealth)).status, 200);
    client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    const c = client;
    const { service } = require("grpc-health-check");
    const health = new (grpc.makeGenericClientConstructor(service, "grpc.health.v1.Health"))(server.address, grpc.credentials.createInsecure()) as any;
    await call((cb) => c.describe({}, cb)); // connected
    const inFlight = call((cb) => c.jacobian(jacobianRequest(runtime), cb)).catch((e: grpc.ServiceError) => e) as Promise<grpc.ServiceError>;
    while (server.calls.inFlightCount === 0) await new Promise(setImmediate);

    const started = performance.now();
    const closing = server.close(300);
    const reply = await call<{ status: string }>((cb) => health.check({ service: "" }, cb));
    assert.equal(reply.status, "NOT_SERVING");
    // It answered 200 "ok" while REST calls were refused with 503: a balancer kept sending them.
    const rest = await fetch(restHealth);
    assert.deepEqual([rest.status, await rest.json()], [503, { status: "unavailable", detail: "the server is shutting down" }]);
    const refused = await call((cb) => c.describe({}, cb)).catch((e: grpc.ServiceError) => e) as grpc.ServiceError;
    assert.equal(status(refused), grpc.status.UNAVAILABLE);
    assert.equal(refused.details, "the server is shutting down; retry on another instance");
    const ended = await inFlight;
    assert.equal(status(ended), grpc.status.UNAVAILABLE);
    assert.equal(ended.details, "the server shut down before this call finished");
    await closing;
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 290 && elapsed < 300 + 1000, `closed after ${elapsed} ms`);
    health.close();
    server = undefined;
  });

  it("a second SIGTERM or SIGINT during the drain (npm start passes its own on) is logged and waits with the first: exit 0", async () => {
    const served = await serveProcess(["vectoradd", "--port", "0", "--grace-ms", "1500", "--warm-up-ms", "0"]);
    // A connection that never speaks HTTP/2 holds the drain for the grace.
    const silent = net.connect(Number(served.address.split(":")[1]), "127.0.0.1").on("error", () => undefined);
    try {
      await once(silent, "connect");
      const drained = new Promise<void>((resolve) => {
        const look = () => (served.stderrTail().includes('"msg":"shutting down"') ? (served.child.stderr!.off("data", look), resolve()) : undefined);
        served.child.stderr!.on("data", look);
      });
      served.child.kill("SIGTERM");
      await drained;
      served.child.kill("SIGTERM");
      served.child.kill("SIGINT");
      const [code] = served.child.exitCode !== null ? [served.child.exitCode] : await once(served.child, "exit");
      assert.equal(code, 0, served.stderrTail());
      assert.equal(served.stderrTail().split('"msg":"shutting down already').length - 1, 2, served.stderrTail());
      assert.equal(served.stderrTail().split('"msg":"shutting down"').length - 1, 1, "one drain");
    } finally {
      silent.destroy();
    }
  });

  it("`npm start` stopped by a SIGTERM to npm alone (a process manager's, kill <npm's pid>) stops the server: nothing is left listening (the server went on, its parent gone)", async () => {
    const root = path.join(__dirname, "../..");
    const npm = spawn("npm", ["start", "--silent", "--", "--port", "0", "--warm-up-ms", "0"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    npm.stdout!.on("data", (d: Buffer) => (stdout += d));
    npm.stderr!.resume();
    const children: number[] = [];
    try {
      const port = await new Promise<number>((resolve, reject) => {
        npm.stdout!.on("data", () => {
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stdout);
          if (m) resolve(Number(m[1]));
        });
        npm.once("exit", () => reject(new Error(`npm start exited before listening: ${stdout}`)));
      });
      children.push(...processesUnder(npm.pid!));
      npm.kill("SIGTERM");
      await once(npm, "exit");
      // The server's own drain ends with its exit; then the port refuses.
      const refused = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, "127.0.0.1");
        socket.once("connect", () => (socket.destroy(), resolve(false)));
        socket.once("error", () => resolve(true));
      });
      assert.ok(refused, `port ${port} still answers after npm start was stopped`);
    } finally {
      for (const pid of children) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone, as it should be
        }
      }
    }
  });

  it("SIGTERM with silent connections open (a TCP socket that never speaks HTTP/2; REST sockets silent, mid-headers, mid-body): exit 0 soon after the grace", async () => {
    const free = await freePort();
    const served = await serveProcess(["vectoradd", "--port", "0", "--http-port", String(free), "--grace-ms", "200", "--warm-up-ms", "0"]);
    // The server may reset them as it goes: that is expected, not an error of the test.
    const grpcPort = Number(served.address.split(":")[1]);
    const sockets = [grpcPort, free, free, free].map((port) => net.connect(port, "127.0.0.1").on("error", () => undefined));
    try {
      await Promise.all(sockets.map((s) => once(s, "connect")));
      // REST: one says nothing, one sends half its headers, one a body that never ends.
      sockets[2].write("POST /apply HTTP/1.1\r\nHost: x\r\n");
      sockets[3].write("POST /apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"inp\r\n");
      const started = performance.now();
      assert.equal(await served.stop(), 0);
      const elapsed = performance.now() - started;
      // Grace 200 ms, then a second for grpc-js's own shutdown and one more for what it cannot end.
      assert.ok(elapsed < 6000, `exited ${elapsed} ms after SIGTERM`);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
