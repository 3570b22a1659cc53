/**
 * Faults of the Tesseract itself, over gRPC: an apply that hangs (synchronously in a worker thread,
 * asynchronously inline) is stopped by the per-evaluation timeout, a worker thread that dies fails
 * only its own request, and each gets a precise status while the server goes on serving correct
 * answers; threads that die as they start (loading the module) fail every call at once. Also: the limits checked before any work, reported by Describe, and memory that returns
 * to its baseline after hundreds of failed requests.
 */
import { strict as assert } from "node:assert";
import { once } from "node:events";
import * as path from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import * as grpc from "@grpc/grpc-js";
import { FiniteDifferenceOptions, TesseractClient as GeneratedClient, type DescribeResponse, type JacobianResponse, type JacobianRowsResponse } from "../generated/tesseract/v1/tesseract";
import { Algorithm } from "../generated/tesseract/v1/algorithm";
import { Code } from "../index";
import { checkHealth, healthClient } from "../client/health";
import { WorkerPool } from "../server/eval/pool";
import { startServer, type RunningServer } from "../index";
import { loadTesseract } from "../index";
import { silentLogger } from "../server/log";
import { DEFAULT_LIMITS } from "../common/tensor-codec";
import { bounded, call, fails, POLYNOMIAL, polynomialAt, polynomialBatch, rejects } from "./helpers";

const TYPE_URL = "type.googleapis.com/tesseract.testing.polynomial.v1.Inputs";
/** The polynomial, whose module ends every worker thread that loads it (process.exit(9)); and one whose example inputs end each thread warming up on them. */
const EXITS_LOADING = path.join(__dirname, "../../test/fixtures/polynomial/exits-loading.js");
const EXITS_WARMING = path.join(__dirname, "../../test/fixtures/polynomial/exits-warming.js");
/** The costly polynomial, whose module throws as a worker thread loads it (a native addon that is not context-aware). */
const THROWS_IN_WORKER = path.join(__dirname, "../../test/fixtures/polynomial/throws-in-worker.js");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const polynomialCalls: () => number = require(POLYNOMIAL).calls;

const fp64 = (values: number[], shape = [values.length]) => ({ datatype: 11, shape, data: Buffer.from(Float64Array.from(values).buffer) });

interface PolynomialFields {
  x: number[];
  y?: number;
  mode?: string;
}

/** The polynomial fixture's inputs as an Any; `mode` injects the fault (see polynomial.js). */
function inputs(server: RunningServer, { x, y = 0.3, mode = "" }: PolynomialFields) {
  const message = server.runtime.schema.inputs.type.encode({ x: fp64(x), y: fp64([y], []), mode }).finish();
  return { type_url: TYPE_URL, value: Buffer.from(message) };
}


/** A JacobianRows stream's messages, or its error. */
function rows(stream: grpc.ClientReadableStream<JacobianRowsResponse>): Promise<JacobianRowsResponse[]> {
  return new Promise((resolve, reject) => {
    const got: JacobianRowsResponse[] = [];
    stream.on("data", (m: JacobianRowsResponse) => got.push(m));
    stream.on("error", reject);
    stream.on("end", () => resolve(got));
  });
}

/** The server's worker pool (private to its evaluation backends). */
const workerPool = (server: RunningServer) => (server.runtime as unknown as { backends: { workerPool: WorkerPool } }).backends.workerPool;

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const values = (t: { data?: Uint8Array } | undefined) => Array.from(new Float64Array(new Uint8Array(t!.data!).buffer));

/** d f_i / d y = sin(x_i) for f_i = x_i^3 + y sin(x_i): the answer a healthy server must still give. */
async function assertHealthyJacobian(client: GeneratedClient, server: RunningServer): Promise<void> {
  const x = [0.4, 1.1, 2.5];
  const response = await call<JacobianResponse>((cb) => client.jacobian({ inputs: inputs(server, { x }), jac_inputs: ["y"], jac_outputs: ["f"], sparsity: [] }, cb));
  const got = values(response.entries[0].value);
  x.forEach((xi, i) => assert.ok(Math.abs(got[i] - Math.sin(xi)) < 1e-8, `df/dy[${i}] = ${got[i]}, expected sin(${xi}) = ${Math.sin(xi)}`));
}

describe("faults of the Tesseract", function () {
  this.timeout(60_000);
  let server: RunningServer | undefined;
  let client: GeneratedClient | undefined;
  const serve = async (options: Partial<Parameters<typeof startServer>[0]>) => {
    server = await startServer({ tesseract: POLYNOMIAL, port: 0, logger: silentLogger, ...options });
    client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    return { server, client };
  };
  afterEach(async () => {
    client?.close();
    await server?.close(0);
    server = client = undefined;
  });

  it("worker threads: a hanging apply is stopped by the per-evaluation timeout, for that request only", async () => {
    const { server, client } = await serve({ workers: 2, evalTimeoutMs: 300 });
    const hang = inputs(server, { x: [0.5, 1], y: 0.9, mode: "hang" });
    await fails(
      call((cb) => client.apply({ inputs: hang }, cb)),
      grpc.status.DEADLINE_EXCEEDED,
      /^apply did not return within the per-evaluation timeout of 300 ms \(--eval-timeout-ms\); its worker thread was stopped and replaced$/,
    );
    await fails(
      call((cb) => client.jacobian({ inputs: hang, jac_inputs: ["y"], jac_outputs: ["f"], sparsity: [] }, cb)),
      grpc.status.DEADLINE_EXCEEDED,
      /^evaluation at y [+-] h failed: apply did not return within the per-evaluation timeout of 300 ms \(--eval-timeout-ms\); its worker thread was stopped and replaced$/,
    );
    await assertHealthyJacobian(client, server);
    const applied = await call<{ outputs?: unknown }>((cb) => client.apply({ inputs: inputs(server, { x: [2] }) }, cb));
    assert.ok(applied.outputs);
  });

  it("worker threads: a worker that dies fails its request with UNKNOWN naming it, and is replaced", async () => {
    const { server, client } = await serve({ workers: 2 });
    const crash = inputs(server, { x: [0.5, 1], y: 0.9, mode: "crash" });
    await fails(call((cb) => client.apply({ inputs: crash }, cb)), grpc.status.UNKNOWN, /^the worker thread running apply died \(worker exited with code: 7\); it was replaced$/);
    await fails(
      call((cb) => client.jacobian({ inputs: crash, jac_inputs: ["y"], jac_outputs: ["f"], sparsity: [] }, cb)),
      grpc.status.UNKNOWN,
      /^evaluation at y [+-] h failed: the worker thread running apply died \(worker exited with code: 7\); it was replaced$/,
    );
    await assertHealthyJacobian(client, server);
  });

  it("worker threads: a module that ends each thread loading it fails every call at once with UNKNOWN naming that (after the first, every call waited for good)", async () => {
    const { server, client } = await serve({ tesseract: EXITS_LOADING, workers: 2, warmUpMs: 0 });
    const some = inputs(server, { x: [0.4, 1.1] });
    const cannot = "the worker threads cannot run the Tesseract: one died while loading it \\(worker exited with code: 9\\)";
    for (const round of [1, 2, 3]) {
      const apply = fails(call((cb) => client.apply({ inputs: some }, cb)), grpc.status.UNKNOWN, new RegExp(`^${cannot}$`));
      await bounded(apply, 20_000, `Apply ${round} was not answered`);
      const jacobian = fails(call((cb) => client.jacobian({ inputs: some, jac_inputs: ["y"], jac_outputs: ["f"], sparsity: [] }, cb)), grpc.status.UNKNOWN, new RegExp(`^evaluation at y [+-] h failed: ${cannot}$`));
      await bounded(jacobian, 20_000, `Jacobian ${round} was not answered`);
    }
    // piscina starts no thread after one died starting: the pool ended those it had, rather than keep calls waiting for them.
    assert.equal(workerPool(server).liveThreads, 0);
  });

  it("worker threads: a server whose threads die loading the Tesseract reports NOT_SERVING, over gRPC and REST (it was SERVING, answering no call)", async () => {
    // The warm-up usually finds the pool unable to run the Tesseract before the port is bound; on a loaded
    // machine its budget may end first, and health turns NOT_SERVING once the threads have died.
    const { server, client } = await serve({ tesseract: EXITS_LOADING, workers: 2, httpPort: 0 });
    const health = healthClient(client.getChannel());
    const cannot = "the worker threads cannot run the Tesseract: one died while loading it (worker exited with code: 9)";
    await new Promise<void>((resolve, reject) => {
      const watch = (health as unknown as { Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }> }).Watch({ service: "" });
      watch.on("data", (m: { status: string }) => m.status === "NOT_SERVING" && (resolve(), watch.cancel()));
      watch.on("error", (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
    });
    assert.equal(await checkHealth(health, server.address, ""), "NOT_SERVING");
    assert.equal(await checkHealth(health, server.address, "tesseract.v1.Tesseract"), "NOT_SERVING");
    const rest = await fetch(`http://127.0.0.1:${server.httpPort}/health`);
    assert.equal(rest.status, 503);
    assert.deepEqual(await rest.json(), { status: "unavailable", detail: cannot });
  });

  it('worker threads: "auto" stays SERVING where its threads die loading the Tesseract (evaluations go on in the event loop)', async () => {
    const { server, client } = await serve({ tesseract: EXITS_LOADING, workers: "auto", warmUpMs: 0 });
    // Applies of 600 ms: the second starts the pool and waits for it (backends.ts, LONG_APPLY_MS).
    for (const x of [1, 2]) await call((cb) => client.apply({ inputs: inputs(server, { x: [x], mode: "long" }) }, cb));
    assert.equal(await server.runtime.poolStarted(), true, "no pool was started");
    assert.equal(workerPool(server).ready, false);
    assert.equal(await checkHealth(healthClient(client.getChannel()), server.address, ""), "SERVING");
    await assertHealthyJacobian(client, server);
  });

  it("worker threads: a module that throws as a worker thread loads it fails every call at once, naming its error, and health is NOT_SERVING (calls failed one by one, SERVING)", async () => {
    const { server, client } = await serve({ tesseract: THROWS_IN_WORKER, workers: 2 });
    const cannot = "the worker threads cannot run the Tesseract: loading it in a worker thread failed: Module did not self-register: '/app/build/Release/solver.node'.";
    const some = inputs(server, { x: [0.4, 1.1] });
    await fails(call((cb) => client.apply({ inputs: some }, cb)), grpc.status.UNKNOWN, new RegExp(`^${escapeRegExp(cannot)}$`));
    await fails(call((cb) => client.jacobian({ inputs: some, jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] }, cb)), grpc.status.UNKNOWN, new RegExp(`^evaluation at .* failed: ${escapeRegExp(cannot)}$`));
    assert.equal(await checkHealth(healthClient(client.getChannel()), server.address, ""), "NOT_SERVING");
  });

  it('"auto": a module that throws as a worker thread loads it leaves the pool untaken: a Jacobian that calls for the pool is answered from the event loop (it failed)', async () => {
    const { server, client } = await serve({ tesseract: THROWS_IN_WORKER, workers: "auto" });
    // 0.3 ms applies, 400 evaluations: what takes the pool once it is ready.
    const x = Array.from({ length: 200 }, (_, i) => -1 + i / 100);
    const y = 0.3;
    for (const round of [1, 2]) {
      const response = await call<JacobianResponse>((cb) => client.jacobian({ inputs: inputs(server, { x, y }), jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] }, cb));
      const got = values(response.entries[0].value);
      // d f_i / d x_i = 3 x_i^2 + y cos(x_i); the rest 0.
      x.forEach((xi, i) => assert.ok(Math.abs(got[i * x.length + i] - (3 * xi * xi + y * Math.cos(xi))) < 1e-6, `round ${round}: d f_${i} / d x_${i} = ${got[i * x.length + i]}`));
    }
    assert.equal(await server.runtime.poolStarted(), true, "no pool was started");
    assert.equal(workerPool(server).ready, false);
    assert.equal(await checkHealth(healthClient(client.getChannel()), server.address, ""), "SERVING");
  });

  it('"auto": a pool whose threads die loading the Tesseract is never taken: Apply goes on in the event loop', async () => {
    const runtime = loadTesseract(EXITS_LOADING);
    await runtime.useEvaluation({ workers: "auto", autoThreads: 2 });
    // Other inputs each time (not answered from the evaluation cache).
    const long = (x: number) => ({ type_url: TYPE_URL, value: runtime.schema.inputs.type.encode({ x: fp64([x]), y: fp64([0.3], []), mode: "long" }).finish() });
    try {
      // An apply of 600 ms: the next Apply starts the pool and waits for it (backends.ts, LONG_APPLY_MS).
      for (const round of [1, 2, 3]) assert.ok(await bounded(runtime.applyMessage(long(round)), 20_000, `Apply ${round} was not answered`));
      const pool = (runtime as unknown as { backends: { workerPool?: WorkerPool } }).backends.workerPool;
      assert.ok(pool, "the pool was not started");
      assert.equal(pool.ready, false);
    } finally {
      await runtime.close();
    }
  });

  it("a pool whose threads die loading the Tesseract, or warming up on its example inputs, fails each task at once naming that", async () => {
    for (const [module, died] of [
      [EXITS_LOADING, "while loading it \\(worker exited with code: 9\\)"],
      [EXITS_WARMING, "while warming up on its example inputs \\(worker exited with code: 7\\)"],
    ]) {
      const pool = new WorkerPool(module, 2);
      const { schema } = loadTesseract(module);
      const some = { type_url: TYPE_URL, value: schema.inputs.type.encode({ x: fp64([1]), y: fp64([0.3], []), mode: "" }).finish() };
      const cannot = new RegExp(`^the worker threads cannot run the Tesseract: one died ${died}$`);
      try {
        await bounded(pool.calibrate(), 20_000, `${module}: calibration never ended`);
        assert.equal(pool.ready, false);
        await bounded(rejects(pool.applyMessage(some, DEFAULT_LIMITS), Code.UNKNOWN, cannot), 20_000, `${module}: an Apply waited`);
        await bounded(rejects(pool.applyMessage(some, DEFAULT_LIMITS, new AbortController().signal), Code.UNKNOWN, cannot), 20_000, `${module}: a stoppable Apply waited`);
        await bounded(rejects(pool.evaluateBatch(polynomialBatch("job", 1.5), new AbortController().signal), Code.UNKNOWN, cannot), 20_000, `${module}: a batch waited`);
        await bounded(rejects(pool.evaluateBatch(polynomialBatch("job", 1.5), undefined, false), Code.UNKNOWN, cannot), 20_000, `${module}: an unstoppable batch waited`);
        assert.equal(pool.liveThreads, 0);
      } finally {
        await pool.close();
      }
    }
  });

  it("worker threads, no per-evaluation timeout: a request cancelled while its apply hangs has the worker ended and replaced", async () => {
    const { server, client } = await serve({ workers: 2, warmUpMs: 0 });
    await assertHealthyJacobian(client, server); // the pool starts with the first request
    const pool = workerPool(server);
    // x's pairs are measured quick, so the batch with y's (y + h > 0.5 hangs) is one sent unstoppable
    // (pool-evaluator.ts): a cancel does not end it at once. Each call leaves one worker hung.
    const x = Array.from({ length: 2000 }, (_, i) => 1 + i / 2000);
    for (const round of [1, 2]) {
      const hanging = new Promise<number>((resolve) => {
        const listener = (message: { hanging?: number }) => message?.hanging && (pool.piscina.off("message", listener), resolve(message.hanging));
        pool.piscina.on("message", listener);
      });
      let jacobian!: grpc.ClientUnaryCall;
      const answered = call((cb) => (jacobian = client.jacobian({ inputs: inputs(server, { x, y: 0.5, mode: "hang" }), jac_inputs: ["x", "y"], jac_outputs: ["f"], sparsity: [] }, cb)));
      const thread = await hanging;
      jacobian.cancel();
      await fails(answered, grpc.status.CANCELLED, /^Cancelled on client$/);
      // The hung worker is ended (its apply stops) and another takes its place; before, it stayed
      // hung for good, and once both were, every later call waited for its deadline.
      const ended = (async () => {
        while (pool.piscina.threads.some((w) => w.threadId === thread)) await once(pool.piscina, "workerDestroy");
        while (pool.liveThreads < 2) await once(pool.piscina, "workerCreate");
      })();
      await bounded(ended, 20_000, `round ${round}: the worker hung in apply (thread ${thread}) was never ended`);
    }
    await assertHealthyJacobian(client, server);
    const applied = await call<{ outputs?: unknown }>((cb) => client.apply({ inputs: inputs(server, { x: [2] }) }, cb));
    assert.ok(applied.outputs);
  });

  it("inline: an asynchronous apply that never settles is given up on after the timeout", async () => {
    const { server, client } = await serve({ workers: 0, evalTimeoutMs: 200 });
    const stall = inputs(server, { x: [0.5], y: 0.9, mode: "stall" });
    await fails(call((cb) => client.apply({ inputs: stall }, cb)), grpc.status.DEADLINE_EXCEEDED, /^apply did not return within the per-evaluation timeout of 200 ms \(--eval-timeout-ms\)$/);
    await fails(
      call((cb) => client.jacobian({ inputs: stall, jac_inputs: ["y"], jac_outputs: ["f"], sparsity: [] }, cb)),
      grpc.status.DEADLINE_EXCEEDED,
      /^evaluation at y [+-] h failed: apply did not return within the per-evaluation timeout of 200 ms/,
    );
    await assertHealthyJacobian(client, server);
  });

  it("a per-evaluation timeout longer than a timer can wait (2^31 ms) is none: it fired at once", async () => {
    for (const workers of [0, 2]) {
      const { server, client } = await serve({ workers, evalTimeoutMs: 3e9 });
      const slow = inputs(server, { x: [0.5], y: 0.9, mode: "slow" });
      // Answered OK, after the slow apply's 20 ms: no timeout fired.
      const answer = (await call((cb) => client.apply({ inputs: slow }, cb))) as { outputs?: { type_url?: string } };
      assert.equal(answer.outputs?.type_url, "type.googleapis.com/tesseract.testing.polynomial.v1.Outputs", `--workers ${workers}`);
      client.close();
      await server.close(0);
    }
    server = client = undefined;
  });

  it("the pool replaces a dead or stopped worker: back to its thread count, and serving", async () => {
    const pool = new WorkerPool(POLYNOMIAL, 2, { evalTimeoutMs: 300 });
    const { schema } = loadTesseract(POLYNOMIAL);
    const encoded = (mode: string) => ({ type_url: TYPE_URL, value: schema.inputs.type.encode({ x: fp64([1]), y: fp64([0.9], []), mode }).finish() });
    try {
      await rejects(pool.applyMessage(encoded("hang"), DEFAULT_LIMITS), Code.DEADLINE_EXCEEDED, /worker thread was stopped and replaced/);
      await rejects(pool.applyMessage(encoded("crash"), DEFAULT_LIMITS), Code.UNKNOWN, /worker exited with code: 7/);
      while (pool.liveThreads < 2) await once(pool.piscina, "workerCreate");
      assert.equal(pool.liveThreads, 2);
      const ok = await Promise.all([1, 2, 3, 4].map(() => pool.applyMessage(encoded(""), DEFAULT_LIMITS)));
      assert.equal(ok.length, 4);
    } finally {
      await pool.close();
    }
  });

  it("a task cancelled just as a new worker starts does not end that worker: dead workers are still replaced after it", async () => {
    const pool = new WorkerPool(POLYNOMIAL, 2);
    const { schema } = loadTesseract(POLYNOMIAL);
    const encoded = (mode: string) => ({ type_url: TYPE_URL, value: schema.inputs.type.encode({ x: fp64([1]), y: fp64([0.9], []), mode }).finish() });
    const crash = () => rejects(pool.applyMessage(encoded("crash"), DEFAULT_LIMITS), Code.UNKNOWN, /worker exited with code: 7/);
    // The threads piscina told ready (it does as each starts), of those alive.
    const ready = new Set<number>();
    pool.piscina.on("workerCreate", (w: { id: number }) => ready.add(w.id));
    const readyThreads = () => pool.piscina.threads.filter((w) => ready.has(w.threadId)).length;
    const twoReady = (what: string) =>
      bounded((async () => {
        while (readyThreads() < 2) await once(pool.piscina, "workerCreate");
      })(), 20_000, what);
    try {
      await pool.calibrate();
      await twoReady("the pool did not start");
      // A worker dies; its replacement starts. The other takes a ping, and two Apply calls (tasks that
      // can be stopped, each wanting a worker of its own) wait.
      await crash();
      const ping = pool.piscina.run(null, { name: "ping" });
      const controllers = [new AbortController(), new AbortController()];
      const waiting = controllers.map((c) => pool.applyMessage(encoded(""), DEFAULT_LIMITS, c.signal).catch((e: unknown) => e));
      // The ping done, piscina hands the waiting calls to the free worker and to the one still
      // starting; both calls are cancelled before that one is ready.
      await ping;
      for (const c of controllers) c.abort(new Error("cancelled"));
      await Promise.all(waiting);
      await twoReady("the pool did not get back to two workers after the cancels");
      // A worker ended before it was ready made piscina take its workers for ones that cannot start:
      // it replaced no dead worker after that (with none left, waiting tasks waited for good).
      await crash();
      await twoReady("a worker that died was not replaced");
      const ok = await Promise.all([1, 2, 3].map(() => pool.applyMessage(encoded(""), DEFAULT_LIMITS)));
      assert.equal(ok.length, 3);
    } finally {
      await pool.close();
    }
  });

  it("a worker that dies fails only the batch whose apply ended it: one waiting there behind it is sent again", async () => {
    const pool = new WorkerPool(POLYNOMIAL, 1);
    const batch = (mode: string) => polynomialBatch(`job ${mode}`, 1.5, mode);
    try {
      await pool.calibrate();
      // Both unstoppable (as batches measured short are sent): the one worker takes the second while it runs the first.
      const crashing = pool.evaluateBatch(batch("crash"), undefined, false);
      const waiting = pool.evaluateBatch(batch(""), undefined, false);
      await rejects(crashing, Code.UNKNOWN, /^the worker thread running apply died \(worker exited with code: 7\); it was replaced$/);
      // It failed too, "the worker thread running apply died", though its apply never ran.
      const { values, failed } = await waiting;
      assert.deepEqual(failed, []);
      assert.deepEqual(Array.from(values), polynomialAt(1.5));
    } finally {
      await pool.close();
    }
  });
});

describe("outputs whose paths change with the inputs: a map key that comes and goes", function () {
  this.timeout(120_000);
  // The polynomial's "rekey" mode returns named{extra} = 2 sum(x) while x[0] <= 1, before named{p}:
  // at x = [1] f(x) and x - h have it, x + h has not. analytic.js adds an analytic Jacobian (for CheckGradients).
  const ANALYTIC = path.join(path.dirname(POLYNOMIAL), "analytic.js");
  const PRESENCE = "whether an output is there must not depend on the values of the differentiated inputs \\(differences are taken output by output\\)";
  const ADDED = "output named\\.\\{extra\\} here, which an earlier evaluation did not return";
  const MISSING = "no output named\\.\\{extra\\} here, which an earlier evaluation returned";
  const NOT_AT_X = "no output named\\.\\{extra\\} here, which it returns at the unperturbed inputs";
  const fault = (point: string, what: string) => new RegExp(`^evaluation at ${point.replace(/[[\]+]/g, "\\$&")} failed: apply returned ${what}: ${PRESENCE}$`);
  // Where worker threads resolve the outputs each on their own first evaluation, which evaluation
  // shows the fault first depends on which thread takes which batch.
  const anyFault = new RegExp(
    "^evaluation at (the unperturbed inputs|x\\[0\\] [+-] \\d*h) failed: apply returned " +
      `(${[MISSING, NOT_AT_X, "no output named\\.\\{extra\\} at one evaluation, which another returned", ADDED, "output named\\.\\{extra\\} at one evaluation, which another did not return"].join("|")}): ${PRESENCE}$`,
  );
  const ALGORITHMS = [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE, Algorithm.ALGORITHM_STOCHASTIC];
  /** Inline, per algorithm: the fault of a Jacobian (JacobianRows and a JVP: the same), a VJP and CheckGradients. */
  const INLINE: Record<number, [RegExp, RegExp, RegExp]> = {
    [Algorithm.ALGORITHM_CENTRAL]: [fault("x[0] - h", ADDED), fault("the unperturbed inputs", ADDED), fault("x[0] + h", NOT_AT_X)],
    [Algorithm.ALGORITHM_FORWARD]: [fault("x[0] + h", MISSING), fault("x[0] + h", MISSING), fault("x[0] + h", MISSING)],
    [Algorithm.ALGORITHM_RICHARDSON]: [fault("x[0] - 2h", ADDED), fault("x[0] + 2h", MISSING), fault("x[0] + 2h", NOT_AT_X)],
    [Algorithm.ALGORITHM_ADAPTIVE]: [fault("x[0] - 16h", ADDED), fault("x[0] + 16h", MISSING), fault("x[0] + 16h", NOT_AT_X)],
    [Algorithm.ALGORITHM_STOCHASTIC]: [fault("x[0] - h", ADDED), fault("the unperturbed inputs", ADDED), fault("x[0] + h", NOT_AT_X)],
  };

  let server: RunningServer | undefined;
  let client: GeneratedClient | undefined;
  afterEach(async () => {
    client?.close();
    await server?.close(0);
    server = client = undefined;
  });

  const rekeyed = (s: RunningServer, mode = "rekey") => ({
    type_url: TYPE_URL,
    value: Buffer.from(s.runtime.schema.inputs.type.encode({ x: fp64([1]), y: fp64([0.3], []), params: { p: fp64([1]) }, mode }).finish()),
  });

  for (const [workers, cached] of [
    [0, false],
    [0, true],
    [2, false],
    [2, true],
  ] as const) {
    it(`${workers ? "worker threads" : "inline"}, ${cached ? "f(x) in the evaluation cache (an Apply first)" : "no evaluation cache"}: INTERNAL naming the output and the evaluation, for every algorithm and gradient (a forward Jacobian after an Apply answered OK with d named{p} / dx = -1e5; central left named{extra} out)`, async () => {
      server = await startServer({ tesseract: ANALYTIC, port: 0, logger: silentLogger, workers, warmUpMs: 0, ...(cached ? {} : { evalCacheBytes: 0 }) });
      const c = (client = new GeneratedClient(server.address, grpc.credentials.createInsecure()));
      const inputs = rekeyed(server);
      if (cached) await call((cb) => c.apply({ inputs }, cb));
      for (const algorithm of ALGORITHMS) {
        const options = FiniteDifferenceOptions.fromPartial({ algorithm, seed: 1, num_samples: 4 });
        const jacobian = { inputs, jac_inputs: ["x"], jac_outputs: ["named.{}"], options, sparsity: [] };
        const [ofJacobian, ofVjp, ofCheck] = workers ? [anyFault, anyFault, anyFault] : INLINE[algorithm];
        // Inline, f(x) from the cache: CheckGradients' forward JVP finds named{extra} missing at x + h as f(x) told it.
        const ofForwardCheck = !workers && cached && algorithm === Algorithm.ALGORITHM_FORWARD ? fault("x[0] + h", NOT_AT_X) : ofCheck;
        const what = Algorithm[algorithm];
        await fails(call((cb) => c.jacobian(jacobian, cb)), grpc.status.INTERNAL, ofJacobian, `Jacobian, ${what}`);
        await fails(rows(c.jacobianRows(jacobian)), grpc.status.INTERNAL, ofJacobian, `JacobianRows, ${what}`);
        await fails(
          call((cb) => c.jacobianVectorProduct({ inputs, jvp_inputs: ["x"], jvp_outputs: ["named.{}"], tangent_vector: { x: fp64([1]) }, options }, cb)),
          grpc.status.INTERNAL,
          ofJacobian,
          `JVP, ${what}`,
        );
        // The cotangent fits the outputs at the caller's inputs: refusing it blamed the caller.
        const cotangent_vector = { "named.{extra}": fp64([1]), "named.{p}": fp64([1]) };
        await fails(call((cb) => c.vectorJacobianProduct({ inputs, vjp_inputs: ["x"], vjp_outputs: ["named.{}"], cotangent_vector, options, sparsity: [] }, cb)), grpc.status.INTERNAL, ofVjp, `VJP, ${what}`);
        const check = { inputs, input_paths: ["x"], output_paths: ["named.{}"], endpoints: [], rtol: 0, atol: 0, max_evals: 0, seed: 1, options };
        await fails(call((cb) => c.checkGradients(check, cb)), grpc.status.INTERNAL, ofForwardCheck, `CheckGradients, ${what}`);
      }
      // A map key the caller names that f(x) has not either stays the caller's mistake.
      const typo = { inputs: rekeyed(server, ""), jac_inputs: ["x"], jac_outputs: ["named.{q}"], sparsity: [] };
      const notThere = /^jac_outputs: output path "named\.\{q\}" does not exist in the outputs; differentiable output paths: f, named\.\{p\}, g$/;
      for (const algorithm of ALGORITHMS) {
        await fails(call((cb) => c.jacobian({ ...typo, options: FiniteDifferenceOptions.fromPartial({ algorithm, seed: 1, num_samples: 4 }) }, cb)), grpc.status.INVALID_ARGUMENT, notThere);
      }
      await assertHealthyJacobian(c, server);
    });
  }
});

describe("limits checked before any work", () => {
  let server: RunningServer | undefined;
  let client: GeneratedClient | undefined;
  afterEach(async () => {
    client?.close();
    await server?.close(0);
  });

  it("rows per stream, tensor elements and bytes: refused before any apply, and reported by Describe", async () => {
    server = await startServer({ tesseract: POLYNOMIAL, port: 0, workers: 0, maxRowsPerStream: 3, maxTensorElements: 10, maxTensorBytes: 64, evalTimeoutMs: 1234, streamStallMs: 4321, logger: silentLogger });
    client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    const c = client;
    const s = server;
    const before = polynomialCalls();

    const stream = c.jacobianRows({ inputs: inputs(s, { x: [1, 2, 3, 4] }), jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] });
    const received: unknown[] = [];
    stream.on("data", (m) => received.push(m));
    const [error] = (await once(stream, "error")) as [grpc.ServiceError];
    assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(error.details, "jac_inputs (x) have 4 elements: the stream would send 4 rows, more than this server's limit of 3 (--max-rows-per-stream); ask for fewer inputs per call");
    assert.equal(received.length, 0);

    await fails(call((cb) => c.apply({ inputs: inputs(s, { x: Array.from({ length: 11 }, (_, i) => i) }) }, cb)), grpc.status.INVALID_ARGUMENT, /^x: shape\[0\] is 11, more than the limit of 10 elements/);
    await fails(call((cb) => c.apply({ inputs: inputs(s, { x: Array.from({ length: 9 }, (_, i) => i) }) }, cb)), grpc.status.INVALID_ARGUMENT, /^x: shape \[9\] of DATA_TYPE_FP64 takes 72 bytes, more than the limit of 64 bytes per tensor$/);
    assert.equal(polynomialCalls(), before, "no apply ran for a refused request");

    // Within the limits, the stream runs: 3 rows.
    const rows: unknown[] = [];
    for await (const m of c.jacobianRows({ inputs: inputs(s, { x: [1, 2, 3] }), jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] })) if ((m as { row?: unknown }).row) rows.push(m);
    assert.equal(rows.length, 3);

    const described = await call<DescribeResponse>((cb) => c.describe({}, cb));
    assert.deepEqual(
      { ...described.limits, max_message_bytes: undefined, stream_chunk_bytes: undefined },
      { max_message_bytes: undefined, stream_chunk_bytes: undefined, max_tensor_elements: 10, max_tensor_bytes: 64, max_rows_per_stream: 3, eval_timeout_ms: 1234, stream_stall_ms: 4321, max_jobs: 8, max_queue: 32, default_deadline_ms: 0, max_deadline_ms: 0, max_request_messages: 100000 },
    );
  });
});

describe("memory after faults", function () {
  this.timeout(120_000);

  it("returns to its baseline after hundreds of failed requests (inline)", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const server = await startServer({ tesseract: POLYNOMIAL, port: 0, workers: 0, evalTimeoutMs: 50, logger: silentLogger });
    const client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    const big = Array.from({ length: 20_000 }, (_, i) => 1.5 + i / 20_000); // x[0] > 1 for mode nan
    const round = async () => {
      const requests = [
        call((cb) => client.jacobian({ inputs: inputs(server, { x: big, y: 0.9, mode: "throw" }), jac_inputs: ["y"], jac_outputs: ["f"], sparsity: [] }, cb)),
        call((cb) => client.jacobian({ inputs: inputs(server, { x: big, mode: "nan" }), jac_inputs: ["y"], jac_outputs: ["f"], sparsity: [] }, cb)),
        call((cb) => client.apply({ inputs: { type_url: TYPE_URL, value: Buffer.from([0x0a, 0xff, 0xff, 0x03]) } }, cb)),
        call((cb) => client.jacobian({ inputs: inputs(server, { x: big }), jac_inputs: ["nope"], jac_outputs: ["f"], sparsity: [] }, cb)),
        call((cb) => client.apply({ inputs: inputs(server, { x: [1], y: 0.9, mode: "stall" }) }, cb)),
      ];
      const settled = await Promise.allSettled(requests);
      settled.forEach((s, i) => assert.equal(s.status, "rejected", `request ${i} of the round succeeded`));
    };
    const heap = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    try {
      for (let i = 0; i < 10; i++) await round(); // warm up: JIT, pools, the first allocations
      const baseline = heap();
      for (let i = 0; i < 60; i++) await round(); // 300 failed requests, ~50 MB of inputs in all
      const growth = heap() - baseline;
      // A leak of even the inputs of one request in ten would be ~5 MB; stalled applies keep ~200 bytes each.
      assert.ok(growth < 4 * 2 ** 20, `heap grew by ${(growth / 2 ** 20).toFixed(1)} MiB after 300 failed requests`);
    } finally {
      client.close();
      await server.close(0);
    }
  });
});
