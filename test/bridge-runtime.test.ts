/**
 * The tesseract-core bridge beyond apply and gradients, against the fake tesseract-core runtime:
 * AbstractEval forwarded to /abstract_eval (or UNIMPLEMENTED naming the runtime), health following
 * the runtimes' /health, the per-evaluation timeout and cancellation aborting HTTP requests, outputs
 * cast to their declared dtypes (or refused naming the output), enums as tesseract-core's strings,
 * the generated .proto's folder removed on close.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import ndarray from "ndarray";
import { Algorithm, BoolArray, DataType, SparsityMode } from "../client";
import { startServer, type RunningServer } from "../index";
import { HealthMonitor } from "../server/bridge/health-monitor";
import { RuntimeReplicas } from "../server/bridge/runtime-replicas";
import { loadTesseractCore } from "../server/bridge/tesseract-core";
import { literalNumbers } from "../server/schema/openapi-proto";
import { numpyDtype } from "../common/numpy-arrays";
import { dataTypeOfArray } from "../common/tensor-codec";
import { silentLogger } from "../server/log";
import { abortedRequests, applyRequests, barycenter, meshStatsInputs, N, POINTS, reflectedClient, SCALE } from "./fixtures/tesseract-core/bridge-clients";
import { FakeDropConnection, FakeValidationError, startFakeTesseractCore, type FakeArray, type FakeTesseract, type RunningFake } from "./fixtures/tesseract-core/fake-tesseract-core";
import { MESH_STATS_OPENAPI, meshStats } from "./fixtures/tesseract-core/mesh-stats";
import { CLI, clientRejects, flat, LogLines } from "./helpers";
import { givenUpHoldMs } from "../server/bridge/settings";

const CENTRAL = { algorithm: Algorithm.ALGORITHM_CENTRAL };
const inputs = meshStatsInputs;

/** The bridge's warnings about requests given up on (runtime-replicas.ts). */
const ALL_HELD = "every connection of a tesseract-core runtime is held by requests given up on that it has not answered; it takes no other request until it answers them or their hold ends (--given-up-hold-ms)";
const HOLD_EXPIRED = "a request given up on was not answered by its tesseract-core runtime within its hold (--given-up-hold-ms); its connection was closed and its slot freed";

/** A metric's value on the server's /metrics. */
async function metric(port: number, name: string): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return new RegExp(`^${name} (.*)$`, "m").exec(text)?.[1] ?? `${name} missing`;
}

/** A fake and a bridging server over it (REST API on too); closed by `stop`. */
async function bridged(tesseract: FakeTesseract, options: Partial<Parameters<typeof startServer>[0]> = {}) {
  const fake = await startFakeTesseractCore(tesseract);
  // A server that fails to start leaves no fake listening (mocha would wait for it).
  const server = await startServer({ tesseract: fake.url, port: 0, httpPort: 0, logger: silentLogger, ...options }).catch(async (e: unknown) => {
    await fake.close();
    throw e;
  });
  const { client } = await reflectedClient(server.address);
  const stop = async () => {
    client.close();
    await server.close(0);
    await fake.close();
  };
  return { fake, server, client, stop, rest: `http://127.0.0.1:${server.httpPort}` };
}

/** Mesh Stats whose /openapi.json declares barycenter with `dtype`, answering `barycenter` as given. */
function declaring(dtype: string, answer: (inputs: Record<string, unknown>) => unknown): FakeTesseract {
  const openapi = structuredClone(MESH_STATS_OPENAPI);
  openapi.components.schemas.Apply_OutputSchema.properties.barycenter.properties.dtype.examples = [dtype];
  const base = meshStats();
  return { openapi, apply: (decoded) => ({ ...base.apply(decoded), barycenter: answer(decoded) }) };
}

const postJson = (url: string, body: unknown) => fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("tesseract-core bridge: AbstractEval", function () {
  this.timeout(20000);

  it("forwards to /abstract_eval when the runtime lists it: arrays as {shape, dtype}, no apply", async () => {
    const seen: Record<string, unknown>[] = [];
    const base = meshStats(0, { abstractEval: true });
    const { fake, client, rest, stop } = await bridged({ ...base, abstractEval: (abstract) => (seen.push(abstract), base.abstractEval!(abstract)) });
    try {
      assert.ok((await client.describe()).endpoints.includes("AbstractEval"));
      const abstract = { ...inputs(), mesh: { ...inputs().mesh, points: { shape: [7, 3], datatype: DataType.DATA_TYPE_FP64 } } };
      assert.deepEqual(await client.abstractEval(abstract), [{ path: "barycenter", shape: [3], datatype: DataType.DATA_TYPE_FP64 }]);
      assert.deepEqual([fake.abstractEvalCalls, fake.applyCalls], [1, 0]);
      const sent = seen[0] as { mesh: { points: unknown; cell_data: Record<string, unknown> }; method: string };
      assert.deepEqual(sent.mesh.points, { shape: [7, 3], dtype: "float64" });
      assert.deepEqual(sent.mesh.cell_data.b, { shape: [3], dtype: "float64" }, "concrete arrays travel as their shape and dtype");
      assert.equal(sent.method, "central");
      // Its 422 is INVALID_ARGUMENT with the location; the REST API forwards the same way.
      const bad = { ...abstract, mesh: { ...abstract.mesh, points: { shape: [7, 2], datatype: DataType.DATA_TYPE_FP64 } } };
      await clientRejects(client.abstractEval(bad), "INVALID_ARGUMENT", /inputs\.mesh\.points\.shape: .*points must have shape \(n, 3\)/);
      const res = await postJson(`${rest}/abstract_eval`, { inputs: { mesh: { n_points: 7, points: { shape: [7, 3], dtype: "float64" }, cell_data: {} }, layers: [] } });
      assert.equal(res.status, 200);
      // The whole output model, as tesseract-core answers it: `count` is no array (it was left out).
      assert.deepEqual(await res.json(), { barycenter: { shape: [3], dtype: "float64" }, count: 7 });
    } finally {
      await stop();
    }
  });

  it("a runtime without /abstract_eval: UNIMPLEMENTED naming its URL, and not among the endpoints", async () => {
    const { fake, client, rest, stop } = await bridged(meshStats());
    try {
      assert.ok(!(await client.describe()).endpoints.includes("AbstractEval"));
      const abstract = { ...inputs(), mesh: { ...inputs().mesh, points: { shape: [N, 3], datatype: DataType.DATA_TYPE_FP64 } } };
      const escaped = fake.url.replace(/[.]/g, "\\.");
      await clientRejects(client.abstractEval(abstract), "UNIMPLEMENTED", new RegExp(`tesseract-core runtime at ${escaped} has no /abstract_eval`));
      assert.equal((await postJson(`${rest}/abstract_eval`, { inputs: {} })).status, 404);
    } finally {
      await stop();
    }
  });
});

type HealthStream = grpc.ClientReadableStream<{ status: string }>;

/** Resolves with `wanted` once the Watch stream reports it (skipping other statuses). */
function watchFor(stream: HealthStream, wanted: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onData = ({ status }: { status: string }) => {
      if (status !== wanted) return;
      stream.off("data", onData);
      resolve(status);
    };
    stream.on("data", onData);
    stream.once("error", reject);
  });
}

describe("tesseract-core bridge: health follows the runtimes' /health", function () {
  this.timeout(20000);

  it("NOT_SERVING (gRPC Watch, REST 503) while no runtime answers, SERVING again once one does", async () => {
    const { fake, server, rest, stop } = await bridged(meshStats(), { healthIntervalMs: 10 });
    const Health = grpc.makeGenericClientConstructor(healthService, "grpc.health.v1.Health");
    const health = new Health(server.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Watch(req: { service: string }): HealthStream };
    const stream = health.Watch({ service: "" });
    try {
      await watchFor(stream, "SERVING");
      const notServing = watchFor(stream, "NOT_SERVING");
      await fake.stop();
      await notServing;
      const down = await fetch(`${rest}/health`);
      assert.equal(down.status, 503);
      assert.match(((await down.json()) as { detail: string }).detail, new RegExp(`no tesseract-core runtime answers GET /health \\(${fake.url.replace(/[.]/g, "\\.")}\\)`));
      const serving = watchFor(stream, "SERVING");
      await fake.restart();
      await serving;
      assert.deepEqual(await (await fetch(`${rest}/health`)).json(), { status: "ok" });
      const { client } = await reflectedClient(server.address);
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter());
      client.close();
    } finally {
      stream.cancel();
      health.close();
      await stop();
    }
  });

  it("outputs cached from a runtime do not outlive it: once it went away and came back (a redeploy), an Apply on the same inputs asks it again, and a forward Jacobian's f(x) is the new runtime's", async () => {
    let shift = 0; // what the runtime adds to barycenter: its "version"
    const mesh = meshStats();
    const redeployed: FakeTesseract = { ...mesh, apply: (inputs) => ((out) => ({ ...out, barycenter: { ...out.barycenter, values: out.barycenter.values.map((v) => v + shift) } }))(mesh.apply(inputs) as { barycenter: { shape: number[]; dtype: string; values: number[] }; count: number }) };
    const { fake, server, client, stop } = await bridged(redeployed, { healthIntervalMs: 10 });
    const Health = grpc.makeGenericClientConstructor(healthService, "grpc.health.v1.Health");
    const health = new Health(server.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Watch(req: { service: string }): HealthStream };
    const stream = health.Watch({ service: "" });
    try {
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter());
      await watchFor(stream, "SERVING");
      const notServing = watchFor(stream, "NOT_SERVING");
      await fake.stop();
      await notServing;
      shift = 1000;
      const serving = watchFor(stream, "SERVING");
      await fake.restart();
      await serving;
      const calls = fake.applyCalls;
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter().map((v) => v + 1000));
      assert.equal(fake.applyCalls - calls, 1, "the Apply reached the new runtime");
      // f(x) set against the old runtime's would put 1000 / h in every entry.
      const { jacobian } = await client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: { algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
      flat(jacobian.barycenter["mesh.points"]).forEach((d, k) => assert.ok(Math.abs(d - (Math.floor(k / (N * 3)) === k % 3 ? SCALE / N : 0)) < 1e-6, `d barycenter / d points at ${k}: ${d}`));
    } finally {
      stream.cancel();
      health.close();
      await stop();
    }
  });

  it("outputs cached from a runtime do not outlive it when it is redeployed between two health rounds: its kept connection closing is seen, and the next Apply asks the new runtime (it was answered the old runtime's cached outputs)", async () => {
    let shift = 0; // what the runtime adds to barycenter: its "version"
    const mesh = meshStats();
    const redeployed: FakeTesseract = { ...mesh, apply: (inputs) => ((out) => ({ ...out, barycenter: { ...out.barycenter, values: out.barycenter.values.map((v) => v + shift) } }))(mesh.apply(inputs) as { barycenter: { shape: number[]; dtype: string; values: number[] }; count: number }) };
    // No health round during the test: only the connection the start read /openapi.json on tells.
    const { fake, server, client, stop } = await bridged(redeployed, { healthIntervalMs: 600_000 });
    try {
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter());
      const calls = fake.applyCalls;
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter());
      assert.equal(fake.applyCalls, calls, "the second Apply was answered from the cache");
      await fake.stop();
      // The bridge reads the close a turn or two after the fake's stop resolves (a redeploy takes longer).
      while (server.runtime.remoteApply!.witnessed!()) await new Promise((resolve) => setImmediate(resolve));
      shift = 1000;
      await fake.restart();
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter().map((v) => v + 1000));
      assert.equal(fake.applyCalls - calls, 1, "the Apply reached the new runtime");
      // Not stored: no connection has stayed open to the new runtime since (no health round yet).
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter().map((v) => v + 1000));
      assert.equal(fake.applyCalls - calls, 2, "the Apply reached the new runtime again");
      const { jacobian } = await client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: { algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
      flat(jacobian.barycenter["mesh.points"]).forEach((d, k) => assert.ok(Math.abs(d - (Math.floor(k / (N * 3)) === k % 3 ? SCALE / N : 0)) < 1e-6, `d barycenter / d points at ${k}: ${d}`));
    } finally {
      await stop();
    }
  });

  it("a runtime that answers evaluations during a round is up though its /health is late (a runtime with every worker busy flapped NOT_SERVING)", async () => {
    let releaseHealth!: () => void;
    const healthHeld = new Promise<void>((resolve) => (releaseHealth = resolve));
    const fake = await startFakeTesseractCore({ ...meshStats(), healthHold: () => healthHeld });
    const replicas = await RuntimeReplicas.start([fake.url]);
    try {
      const round = async (answering: boolean) => {
        const controller = new AbortController();
        const answered = replicas.answersHealth(controller.signal);
        if (answering) replicas.answered(replicas.all[0]); // an evaluation's answer, mid-round
        await once(fake.events, "health");
        controller.abort(); // the round's timeout
        return answered;
      };
      assert.equal(await round(true), true);
      assert.equal(replicas.all[0].up, true);
      assert.equal(await round(false), false, "no answer of any kind in the round: down");
    } finally {
      releaseHealth();
      replicas.close();
      await fake.close();
    }
  });

  it("polling stops when the runtime closes (a round in flight is aborted)", async () => {
    const fake = await startFakeTesseractCore(meshStats());
    try {
      const replicas = await RuntimeReplicas.start([fake.url]);
      const monitor = new HealthMonitor(replicas, 10);
      assert.ok(monitor.polling);
      monitor.close();
      replicas.close();
      assert.ok(!monitor.polling);
      const runtime = await loadTesseractCore(fake.url, { healthIntervalMs: 10 });
      const readiness = runtime.readiness as HealthMonitor;
      assert.ok(readiness.polling);
      await runtime.close();
      assert.ok(!readiness.polling);
    } finally {
      await fake.close();
    }
  });
});

describe("tesseract-core bridge: a request given up on holds its slot until the runtime is done with it", function () {
  this.timeout(20000);

  /** An Apply cancelled once the runtime has it: CANCELLED at once. */
  async function cancelledOnceSent(client: Awaited<ReturnType<typeof reflectedClient>>["client"], fake: RunningFake): Promise<void> {
    const [controller, before] = [new AbortController(), fake.applyCalls];
    const call = client.apply(inputs(), { signal: controller.signal });
    await applyRequests(fake, before + 1);
    controller.abort();
    await clientRejects(call, "CANCELLED");
  }

  /** Mesh Stats computing until `open()` (a runtime goes on computing a request whose connection closed: uvicorn does). */
  function gated() {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    return { tesseract: { ...meshStats(), hold: () => gate }, open };
  }

  /** `body` on a server bridging a gated Mesh Stats; then the gate is opened and everything stopped. */
  async function onGated(options: Parameters<typeof bridged>[1], body: (bridge: Awaited<ReturnType<typeof bridged>> & { open: () => void }) => Promise<void>): Promise<void> {
    const { tesseract, open } = gated();
    const bridge = await bridged(tesseract, options);
    try {
      await body({ ...bridge, open });
    } finally {
      open();
      await bridge.stop();
    }
  }

  it("--eval-timeout-ms: DEADLINE_EXCEEDED naming the evaluation at once; the runtime's requests are left to answer, then the slots are free", async () => {
    await onGated({ evalTimeoutMs: 100, concurrency: 2 }, async ({ fake, client, open }) => {
      const url = fake.url.replace(/[.]/g, "\\.");
      await clientRejects(
        client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL }),
        "DEADLINE_EXCEEDED",
        new RegExp(`per-evaluation timeout of 100 ms \\(--eval-timeout-ms\\) \\(the evaluation (at the base inputs|perturbing mesh\\.points\\[\\d+\\])\\); POST /apply on ${url} was aborted`),
      );
      const sent = fake.applyCalls;
      open();
      // Its slots come back once the runtime has answered: the next call is served, as many at once as before.
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter());
      assert.equal(fake.applyCalls, sent + 1);
      assert.ok(fake.maxInFlight <= 2, `${fake.maxInFlight} requests at once`);
      assert.equal(fake.aborted, 0);
    });
  });

  it("a client's cancellation of a Jacobian is answered at once; its requests in flight hold their slots until answered", async () => {
    await onGated({ concurrency: 1 }, async ({ fake, client, open }) => {
      const controller = new AbortController();
      const call = client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL }, { signal: controller.signal });
      await applyRequests(fake, 1);
      controller.abort();
      await clientRejects(call, "CANCELLED");
      const sent = fake.applyCalls;
      const next = clientRejects(client.apply(inputs(), { deadline: 500 }), "DEADLINE_EXCEEDED");
      await Promise.race([next, applyRequests(fake, sent + 1)]);
      assert.equal(fake.applyCalls, sent, "an Apply reached the runtime while the cancelled Jacobian's requests held every slot");
      await next;
      open();
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter());
      assert.equal(fake.maxInFlight, 1);
    });
  });

  it("of two runtimes, one whose every connection is held by requests given up on is tried after the other (evaluations queued behind its holds)", async () => {
    const { tesseract, open } = gated();
    const hanging = await startFakeTesseractCore(tesseract);
    const free = await startFakeTesseractCore(meshStats());
    const server = await startServer({ tesseract: `${hanging.url},${free.url}`, port: 0, logger: silentLogger, concurrency: 1, healthIntervalMs: 60_000, evalCacheBytes: 0 });
    const { client } = await reflectedClient(server.address);
    try {
      // The first Apply goes to the first runtime, which never answers: cancelled, it holds that runtime's one connection.
      await cancelledOnceSent(client, hanging);
      // Round robin sent every other one to it, to wait there until their deadlines.
      for (let i = 0; i < 4; i++) assertAll(flat((await client.apply(inputs(), { deadline: 5000 })).barycenter), barycenter(), `apply ${i}`);
      assert.equal(hanging.applyCalls, 1);
      assert.equal(free.applyCalls, 4);
    } finally {
      open();
      client.close();
      await server.close(0);
      await Promise.all([hanging.close(), free.close()]);
    }
  });

  it("a cancelled Apply's slot is held until the runtime drops its connection, then given back", async () => {
    const { tesseract, open } = gated();
    let drop = true;
    const dropping = { ...tesseract, apply: (decoded: Record<string, unknown>) => { if (drop) throw new FakeDropConnection(); return tesseract.apply(decoded); } };
    const { fake, client, stop } = await bridged(dropping, { concurrency: 1 });
    try {
      await cancelledOnceSent(client, fake);
      const retry = clientRejects(client.apply(inputs(), { deadline: 500 }), "DEADLINE_EXCEEDED");
      await Promise.race([retry, applyRequests(fake, 2)]);
      assert.equal(fake.applyCalls, 1, "the retry reached the runtime while it computed the cancelled request");
      await retry;
      open();
      await abortedRequests(fake, 1); // dropped by the runtime
      drop = false;
      assertAll(flat((await client.apply(inputs(), { deadline: 5000 })).barycenter), barycenter());
    } finally {
      open();
      await stop();
    }
  });

  it("a cancelled Apply is answered at once; the next one waits until the runtime has answered the first (cancel-and-retry piled work onto a slow runtime)", async () => {
    await onGated({ concurrency: 1 }, async ({ fake, client, open }) => {
      await cancelledOnceSent(client, fake); // while the runtime still computes it
      // The retry waits for the slot the first holds: its deadline passes before it reaches the runtime.
      const retry = clientRejects(client.apply(inputs(), { deadline: 500 }), "DEADLINE_EXCEEDED");
      await Promise.race([retry, applyRequests(fake, 2)]);
      assert.equal(fake.applyCalls, 1, "the retry reached the runtime while it computed the cancelled request");
      await retry;
      open();
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter());
      assert.equal(fake.applyCalls, 2);
      assert.equal(fake.maxInFlight, 1);
    });
  });

  it("--given-up-hold-ms: cancelled Applies the runtime never answers hold their slots only that long, then their connections are closed and the slots freed, with warnings naming the runtime, the request and how long (they held every slot forever: each later Apply DEADLINE_EXCEEDED)", async () => {
    let sent = 0;
    // The first two requests hang forever (a runtime stuck on some inputs); later ones are answered.
    const hanging = { ...meshStats(), hold: () => (++sent <= 2 ? new Promise<void>(() => {}) : Promise.resolve()) };
    const lines = new LogLines();
    const allHeld = lines.next((line) => line.msg === ALL_HELD);
    const expired: Record<string, unknown>[] = [];
    const bothExpired = lines.next((line) => line.msg === HOLD_EXPIRED && expired.push(line) === 2);
    const { fake, server, client, stop } = await bridged(hanging, { concurrency: 2, givenUpHoldMs: 400, logger: lines.logger, metricsPort: 0 });
    try {
      const controller = new AbortController();
      const calls = [client.apply(inputs(), { signal: controller.signal }), client.apply(inputs(), { signal: controller.signal })];
      await applyRequests(fake, 2);
      controller.abort();
      for (const call of calls) await clientRejects(call, "CANCELLED");
      const warned = await allHeld;
      assert.deepEqual({ ...warned, time: undefined, pid: undefined, hostname: undefined }, { level: 40, time: undefined, pid: undefined, hostname: undefined, runtime: fake.url, request: "POST /apply", held: 2, concurrency: 2, holdMs: 400, msg: ALL_HELD });
      assert.match(await metric(server.metricsPort!, "tesseract_grpc_runtime_requests_held"), /^2$/);
      // Waits for a slot until the holds run out, then reaches the runtime and is answered.
      const next = client.apply(inputs(), { deadline: 10_000 });
      await bothExpired;
      assertAll(flat((await next).barycenter), barycenter());
      for (const line of expired) {
        assert.equal(line.level, 40);
        assert.equal(line.runtime, fake.url);
        assert.equal(line.request, "POST /apply");
        assert.equal(line.holdMs, 400);
        assert.ok(typeof line.sentMs === "number" && line.sentMs >= 399, `sent ${String(line.sentMs)} ms before`);
      }
      await abortedRequests(fake, 2); // their connections closed by the bridge
      assert.equal(fake.applyCalls, 3);
      assert.match(await metric(server.metricsPort!, "tesseract_grpc_runtime_requests_held"), /^0$/);
    } finally {
      await stop();
    }
  });

  it("a cancelled AbstractEval took no slot and holds none: its request is closed, and an Apply is served at once (it held a slot over the capacity, and Applies waited for it)", async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const { fake, client, stop } = await bridged({ ...meshStats(0, { abstractEval: true }), abstractEvalHold: () => gate }, { concurrency: 1 });
    try {
      const controller = new AbortController();
      const abstract = client.abstractEval(inputs(), { signal: controller.signal });
      await once(fake.events, "abstract_eval");
      controller.abort();
      await clientRejects(abstract, "CANCELLED");
      assertAll(flat((await client.apply(inputs(), { deadline: 5000 })).barycenter), barycenter());
      assert.deepEqual([fake.abstractEvalCalls, fake.applyCalls], [1, 1]);
    } finally {
      open();
      await stop();
    }
  });

  it("the hold's default is the larger of 60 s and --eval-timeout-ms; --given-up-hold-ms as given, 0 included", () => {
    assert.equal(givenUpHoldMs(undefined), 60_000);
    assert.equal(givenUpHoldMs(undefined, 5000), 60_000);
    assert.equal(givenUpHoldMs(undefined, 600_000), 600_000);
    assert.equal(givenUpHoldMs(1000, 600_000), 1000);
    assert.equal(givenUpHoldMs(0, 600_000), 0);
  });
});

function assertAll(values: number[], expected: number[], what = "values", tolerance = 1e-7) {
  assert.equal(values.length, expected.length, what);
  values.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= tolerance * Math.max(1, Math.abs(expected[i])), `${what}[${i}] = ${v}, expected ${expected[i]}`));
}

describe("tesseract-core bridge: a long Jacobian's progress in the log", function () {
  this.timeout(20000);

  it("a gradient call still running logs its evaluations done and planned every --progress-log-ms, and stops once it ends (the log said nothing until the end)", async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const log = new LogLines();
    const { fake, client, stop } = await bridged({ ...meshStats(), hold: () => gate }, { concurrency: 2, limits: { progressLogMs: 20 }, logger: log.logger });
    try {
      const progress = log.next((line) => line.msg === "call in progress");
      const call = client.jacobian({ inputs: meshStatsInputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: { algorithm: Algorithm.ALGORITHM_CENTRAL } }, { metadata: { "x-request-id": "slow-solver-1" }, deadline: 5000 });
      await applyRequests(fake, 2);
      // Without a progress line, the call's deadline ends the wait.
      const line = (await Promise.race([progress, call.then(() => ({}), (e: Error) => ({ ended: e.message }))])) as Record<string, unknown>;
      assert.deepEqual([line.rpc, line.request_id, line.evaluations, line.planned_evaluations], ["Jacobian", "slow-solver-1", 2, 24]);
      assert.equal(typeof line.ms, "number");
      const lines: Record<string, unknown>[] = [];
      void log.next((l) => (lines.push(l), false)); // every later line, kept
      open();
      const { jacobian, stats } = await call;
      assert.equal(Number(stats.apply_calls), 24);
      assert.ok(flat(jacobian.barycenter["mesh.points"]).every((v, k) => Math.abs(v - (Math.floor(k / (N * 3)) === k % 3 ? SCALE / N : 0)) < 1e-7));
      await client.apply(meshStatsInputs()); // a round trip after the end, for a line that would follow it
      const end = lines.findIndex((l) => l.msg === "call" && l.rpc === "Jacobian");
      assert.ok(end >= 0);
      assert.deepEqual(lines.slice(end).filter((l) => l.msg === "call in progress"), [], "progress logged after the call ended");
    } finally {
      open();
      await stop();
    }
  });
});

describe("tesseract-core bridge: outputs in their declared dtype", function () {
  this.timeout(20000);

  const values = (decoded: Record<string, unknown>) => (meshStats().apply(decoded).barycenter as { values: number[] }).values;

  it("an output whose dtype changes between answers is UNKNOWN naming it (int64 answers after float64 ones were cast and differenced: a Jacobian of 0.5 answered OK as -2249.75)", async () => {
    // Declared float64, and undeclared (later answers then reached the engine as integers).
    for (const [declared, message] of [
      ["float64", /outputs\.barycenter is int32, a differentiable output declared float64: finite differences need its declared precision/],
      [undefined, /apply returned output barycenter as DATA_TYPE_INT32 here, DATA_TYPE_FP64 at an earlier evaluation: an output's datatype must not change between evaluations/],
    ] as const) {
      let calls = 0;
      const answer = (d: Record<string, unknown>) => (calls++ < 3 ? { shape: [3], dtype: "float64", values: values(d) } : { shape: [3], dtype: "int32", values: values(d).map(Math.round) });
      const tesseract = declaring(declared ?? "float64", answer);
      if (!declared) delete (tesseract.openapi as any).components.schemas.Apply_OutputSchema.properties.barycenter.properties.dtype.examples;
      const { client, stop } = await bridged(tesseract, { concurrency: 1 });
      try {
        for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD]) {
          calls = 0;
          await clientRejects(client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: { algorithm, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } }), "UNKNOWN", message);
        }
      } finally {
        await stop();
      }
    }
  });

  it("a float32 output answered as float64, or as a bare JSON list, is cast to float32", async () => {
    for (const answer of [(d: Record<string, unknown>) => ({ shape: [3], dtype: "float64", values: values(d) }), (d: Record<string, unknown>) => values(d)]) {
      const { client, stop } = await bridged(declaring("float32", answer));
      try {
        const out = await client.apply(inputs());
        assert.ok(out.barycenter.data instanceof Float32Array, out.barycenter.data.constructor.name);
        assert.deepEqual(flat(out.barycenter), barycenter().map(Math.fround));
        // Linear in the weights: exact but for float32's rounding of outputs near 10 (2 ulp / 2 eps ≈ 4e-6).
        const { jacobian } = await client.jacobian({ inputs: inputs(), inputPaths: ["layers.[1].weights"], outputPaths: ["barycenter"], options: { ...CENTRAL, eps: 0.25 } });
        assertAll(flat(jacobian.barycenter["layers.[1].weights"]), [1, 1, 1], "d barycenter / d weights through float32", 1e-5);
      } finally {
        await stop();
      }
    }
  });

  it("bool arrays stay bool both ways (they went to the runtime and back to callers as uint8)", async () => {
    const openapi = structuredClone(MESH_STATS_OPENAPI) as any;
    const boolArray = () => {
      const schema = structuredClone(openapi.components.schemas.Apply_OutputSchema.properties.barycenter);
      schema.properties.dtype.examples = ["bool"];
      schema.array_flags = [];
      return schema;
    };
    openapi.components.schemas.Apply_InputSchema.properties.mask = boolArray();
    openapi.components.schemas.Apply_OutputSchema.properties.flags = boolArray();
    const seen: unknown[] = [];
    const base = meshStats();
    const mask = (decoded: Record<string, unknown>) => decoded.mask as { dtype: string; values: number[] } | undefined;
    // tesseract-core casts same_kind: uint8 is no bool to numpy (can_cast(uint8, bool, "same_kind") is False).
    const apply = (decoded: Record<string, unknown>) => {
      seen.push(mask(decoded)?.dtype);
      if (mask(decoded) && mask(decoded)!.dtype !== "bool") throw new FakeValidationError(["inputs", "mask"], `cannot cast ${mask(decoded)!.dtype} to bool`);
      return { ...base.apply(decoded), flags: { shape: [3], dtype: "bool", values: mask(decoded)?.values.map((v) => 1 - v) ?? [1, 1, 1] } };
    };
    const { client, rest, stop } = await bridged({ openapi, apply });
    try {
      const restMask = { object_type: "array", shape: [3], dtype: "bool", data: { buffer: [true, false, true], encoding: "json" } };
      const res = await postJson(`${rest}/apply`, { inputs: { mesh: { n_points: 1, points: { shape: [1, 3], dtype: "float64", data: { buffer: [1, 2, 3], encoding: "json" } }, cell_data: {} }, layers: [], mask: restMask } });
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(((await res.json()) as { flags: unknown }).flags, { object_type: "array", shape: [3], dtype: "bool", data: { buffer: [false, true, false], encoding: "json" } });
      const out = await client.apply({ ...inputs(), mask: ndarray(BoolArray.of(0, 1, 1), [3]) });
      assert.ok(out.flags.data instanceof BoolArray, out.flags.data.constructor.name);
      assert.deepEqual(flat(out.flags), [1, 0, 0]);
      assert.deepEqual(seen, ["bool", "bool"]);
    } finally {
      await stop();
    }
  });

  it("a VJP whose perturbed points answer another shape before f(x) does: the runtime's shape fault, not the caller's right cotangent (a second misfit did not wait for f(x))", async () => {
    const base = meshStats();
    const perturbed = (decoded: Record<string, unknown>) => (decoded.mesh as { points: FakeArray }).points.values[0] !== POINTS[0];
    const odd: FakeTesseract = {
      ...base,
      // Both sides of points[0, 0] answer at once, and with two barycenter values; every other point later, with three.
      delayMs: (decoded) => (perturbed(decoded) ? 0 : 150),
      apply: (decoded) => {
        const answer = base.apply(decoded);
        const values = (answer.barycenter as FakeArray).values;
        return perturbed(decoded) ? { ...answer, barycenter: { shape: [2], dtype: "float64", values: values.slice(0, 2) } } : answer;
      },
    };
    const { client, stop } = await bridged(odd, { concurrency: 16 });
    try {
      const request = { inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], cotangent: { barycenter: ndarray(Float64Array.of(1, 1, 1), [3]) }, options: { ...CENTRAL, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
      await clientRejects(client.vjp(request), "UNKNOWN", /^evaluation at .+ failed: apply returned output barycenter with shape \[3\] here, \[2\] at an earlier evaluation/);
    } finally {
      await stop();
    }
  });

  it("an output of every integer and floating dtype the contract has comes back in that datatype with its values (the fake's base64 int64 answer was a 500, so none was ever read)", async () => {
    const values = { bool: [1, 0, 1], int8: [-128, 0, 127], int16: [-32768, 1, 32767], int32: [-(2 ** 31), 2, 2 ** 31 - 1], int64: [-(2 ** 53) + 1, 3, 2 ** 53 - 1], uint8: [0, 1, 255], uint16: [0, 2, 65535], uint32: [0, 3, 2 ** 32 - 1], uint64: [0, 4, 2 ** 53 - 1], float32: [0.5, -1.25, 2 ** 127], float64: [0.1, -2, 1e300] };
    for (const [dtype, expected] of Object.entries(values)) {
      const { client, stop } = await bridged(declaring(dtype, () => ({ shape: [3], dtype, values: expected })));
      try {
        const { barycenter: out } = (await client.apply(inputs())) as { barycenter: ndarray.NdArray };
        assert.equal(numpyDtype(dataTypeOfArray(out.data as never)), dtype);
        assert.deepEqual(Array.from(out.data as ArrayLike<number | bigint | boolean>, Number), expected, dtype);
      } finally {
        await stop();
      }
    }
  });

  it("values the declared dtype cannot hold are UNKNOWN naming the output, the element and the value", async () => {
    const cases: [string, unknown, RegExp][] = [
      ["int32", { shape: [3], dtype: "float64", values: [2.5, 1, 1] }, /outputs\.barycenter has 2\.5 at flat index 0 \(dtype float64\), which the declared dtype int32 cannot hold/],
      ["float32", { shape: [3], dtype: "float64", values: [1, 1e300, 1] }, /outputs\.barycenter has 1e\+300 at flat index 1 \(dtype float64\), which the declared dtype float32 cannot hold/],
      ["uint8", [1, -1, 2], /outputs\.barycenter has -1 at flat index 1 \(a JSON list\), which the declared dtype uint8 cannot hold/],
      // float16 is read (as float32), but a differentiable output needs its declared precision.
      ["float64", { shape: [3], dtype: "float16", values: [1, 2, 3] }, /outputs\.barycenter is float16, a differentiable output declared float64: finite differences need its declared precision/],
      ["float32", { shape: [3], dtype: "float16", values: [1, 2, 3] }, /outputs\.barycenter is float16, a differentiable output declared float32: finite differences need its declared precision/],
    ];
    for (const [dtype, answer, message] of cases) {
      const { fake, client, stop } = await bridged(declaring(dtype, () => answer));
      try {
        const url = fake.url.replace(/[.]/g, "\\.");
        await clientRejects(client.apply(inputs()), "UNKNOWN", new RegExp(`apply on ${url} answered outputs that do not match tesseract_core\\.mesh_stats\\.v1\\.Outputs: ${message.source}`));
      } finally {
        await stop();
      }
    }
  });

  it("the runtime's 422 reaches a REST caller as the runtime wrote it (its entries, not a value error wrapping their text)", async () => {
    const base = meshStats();
    const refusing: FakeTesseract = {
      ...base,
      apply: () => {
        throw new FakeValidationError(["inputs", "mesh", "points"], "Value error, the points are not a mesh");
      },
    };
    const { rest, client, stop } = await bridged(refusing);
    try {
      const array = (values: number[], shape: number[]) => ({ shape, dtype: "float64", data: { buffer: values, encoding: "json" } });
      const res = await postJson(`${rest}/apply`, { inputs: { mesh: { n_points: N, points: array(POINTS, [N, 3]), cell_data: {} }, layers: [] } });
      assert.equal(res.status, 422);
      assert.deepEqual(await res.json(), { detail: [{ type: "value_error", loc: ["body", "inputs", "mesh", "points"], msg: "Value error, the points are not a mesh", input: null }] });
      // Over gRPC, its text in the INVALID_ARGUMENT.
      await clientRejects(client.apply(inputs()), "INVALID_ARGUMENT", /refused the inputs: inputs\.mesh\.points: Value error, the points are not a mesh$/);
    } finally {
      await stop();
    }
  });

  it("a required output left out of the answer, or null, is UNKNOWN naming it, not an OK Apply with an empty output or a zero", async () => {
    const base = meshStats();
    for (const [left, how] of [["barycenter", "missing"], ["count", "missing"], ["barycenter", "null"], ["count", "null"]]) {
      const answer = (decoded: Parameters<typeof base.apply>[0]) => {
        const outputs = base.apply(decoded) as Record<string, unknown>;
        return how === "null" ? { ...outputs, [left]: null } : Object.fromEntries(Object.entries(outputs).filter(([key]) => key !== left));
      };
      const { fake, client, stop } = await bridged({ ...base, apply: answer });
      try {
        const url = fake.url.replace(/[.]/g, "\\.");
        await clientRejects(client.apply(inputs()), "UNKNOWN", new RegExp(`apply on ${url} answered outputs that do not match tesseract_core\\.mesh_stats\\.v1\\.Outputs: outputs\\.${left} is ${how}; the runtime's schema requires it`));
      } finally {
        await stop();
      }
    }
  });

  it("an output the schema read at start lacks (the runtime redeployed with another) is UNKNOWN naming it and saying to restart this server", async () => {
    const base = meshStats();
    const { fake, client, stop } = await bridged({ ...base, apply: (decoded: Parameters<typeof base.apply>[0]) => ({ ...(base.apply(decoded) as object), spread: 0.5 }) });
    try {
      const url = fake.url.replace(/[.]/g, "\\.");
      const message = new RegExp(`^apply on ${url} answered outputs that do not match tesseract_core\\.mesh_stats\\.v1\\.Outputs: outputs\\.spread is not a field of Outputs; fields: barycenter, count; its /openapi\\.json has changed since this server read it at start: restart this server to serve the new one$`);
      await clientRejects(client.apply(inputs()), "UNKNOWN", message);
    } finally {
      await stop();
    }
  });

  it("a later answer of a Jacobian is checked where it is read: a differentiated output gone or not castable is UNKNOWN naming it", async () => {
    // The first answer is decoded whole; later ones only at the differentiated outputs (one
    // evaluation at a time, so that the first answer is back before the later requests go).
    const cases: [(call: number, good: unknown) => unknown, RegExp][] = [
      [(call, good) => (call < 3 ? good : undefined), /outputs\.barycenter is missing/],
      [(call, good) => (call < 3 ? good : null), /outputs\.barycenter is (missing|null)/],
    ];
    for (const [answer, message] of cases) {
      let calls = 0;
      const dtype = message.source.includes("int32") ? "int32" : "float64";
      const good = dtype === "int32" ? { shape: [3], dtype: "int32", values: [1, 2, 3] } : undefined;
      const { fake, client, stop } = await bridged(declaring(dtype, (d) => answer(calls++, good ?? { shape: [3], dtype: "float64", values: values(d) })), { concurrency: 1 });
      try {
        const url = fake.url.replace(/[.]/g, "\\.");
        const request = client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: { ...CENTRAL, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
        await clientRejects(request, "UNKNOWN", new RegExp(`apply on ${url} answered outputs that do not match tesseract_core\\.mesh_stats\\.v1\\.Outputs: ${message.source}`));
        assert.ok(calls > 3, `${calls} applies: the refusal came from a later answer`);
      } finally {
        await stop();
      }
    }
  });

  it("a differentiated output the runtime declares int32 is UNKNOWN naming it (its differences were rounding jumps)", async () => {
    const { client, stop } = await bridged(declaring("int32", () => ({ shape: [3], dtype: "int32", values: [1, 2, 3] })));
    try {
      const request = client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: { ...CENTRAL, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
      await clientRejects(request, "UNKNOWN", /output barycenter is declared int32 at a differentiable path: expected float32 or float64 \(finite differences of integers are rounding jumps\)$/);
    } finally {
      await stop();
    }
  });

  it("an integer output answered as integral float64 is cast exactly", async () => {
    const { client, stop } = await bridged(declaring("int32", () => ({ shape: [3], dtype: "float64", values: [3, -7, 2147483647] })));
    try {
      const out = await client.apply(inputs());
      assert.ok(out.barycenter.data instanceof Int32Array, out.barycenter.data.constructor.name);
      assert.deepEqual(flat(out.barycenter), [3, -7, 2147483647]);
    } finally {
      await stop();
    }
  });
});

describe("tesseract-core bridge: enums", function () {
  this.timeout(20000);

  /** Mesh Stats recording what it received. */
  function recording(seen: Record<string, unknown>[]): FakeTesseract {
    const base = meshStats();
    return { ...base, apply: (decoded) => (seen.push(decoded), base.apply(decoded)) };
  }

  it("an explicit METHOD_VALUE_UNSPECIFIED is unset: left out, so tesseract-core's default applies", async () => {
    const seen: Record<string, unknown>[] = [];
    const { client, stop } = await bridged(recording(seen));
    try {
      await client.apply({ ...inputs(), method: 0 });
      assert.ok(!("method" in seen[0]), `method sent as ${JSON.stringify(seen[0].method)}`);
      await client.apply({ ...inputs(), method: "METHOD_VALUE_FORWARD" });
      assert.equal(seen[1].method, "forward");
    } finally {
      await stop();
    }
  });

  it("the CLI's JSON and the REST API take enum values by tesseract-core's strings; /openapi.json lists them", async () => {
    const seen: Record<string, unknown>[] = [];
    const { server, rest, stop } = await bridged(recording(seen));
    try {
      const points = { object_type: "array", shape: [1, 3], dtype: "float64", data: { buffer: [[1, 2, 3]], encoding: "json" } };
      const payload = JSON.stringify({ inputs: { mesh: { n_points: 1, points }, method: "forward" } });
      await promisify(execFile)(process.execPath, [CLI, "apply", payload, "--address", server.address]);
      assert.equal(seen.at(-1)!.method, "forward");
      const res = await postJson(`${rest}/apply`, { inputs: { mesh: { n_points: 1, points, cell_data: {} }, layers: [], method: "central" } });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(seen.at(-1)!.method, "central");
      const bad = await postJson(`${rest}/apply`, { inputs: { mesh: { n_points: 1, points, cell_data: {} }, layers: [], method: "backward" } });
      assert.equal(bad.status, 422);
      assert.match(((await bad.json()) as { detail: { msg: string }[] }).detail[0].msg, /inputs\.method is "backward", expected one of "central", "forward" \(or their enum value names\)$/);
      const doc = (await (await fetch(`${rest}/openapi.json`)).json()) as any;
      assert.deepEqual(doc.components.schemas.Apply_InputSchema.properties.method, { type: "string", enum: ["central", "forward"], default: "central" });
    } finally {
      await stop();
    }
  });
});

describe("tesseract-core bridge: Literals of any values, required fields", function () {
  this.timeout(20000);

  /** Mesh Stats with a Literal[3, 2, 1] `order` and a Literal["a", 1, None, ""] `kind`, recording what it received. */
  function withLiterals(seen: Record<string, unknown>[]): FakeTesseract {
    const openapi = structuredClone(MESH_STATS_OPENAPI) as any;
    const schema = openapi.components.schemas.Apply_InputSchema;
    schema.properties.order = { enum: [3, 2, 1], type: "integer", default: 3 };
    schema.properties.kind = { enum: ["a", 1, null, ""], default: "a" };
    schema.properties.flag = { enum: [false, true], type: "boolean", default: false };
    // -1 was named as 1 (1 reached the runtime as -1), 0.5 as 0_5.
    schema.properties.sign = { enum: [-1, 0, 1], type: "integer", default: 0 };
    schema.properties.frac = { enum: [0.5, 2], type: "number", default: 2 };
    // Its fallback name, ODD_VALUE_VALUE_2 for "-", was "value_2"'s own: the start failed.
    schema.properties.odd = { enum: ["value_2", "-"], default: "-" };
    // Required, and null allowed: a Literal holding None, an Optional[str] without a default.
    schema.properties.nul = { enum: [null, "a"] };
    schema.properties.tag = { anyOf: [{ type: "string" }, { type: "null" }] };
    schema.required = [...schema.required, "nul", "tag"];
    // An output of the same name as an input, with other values: it shared the input's enum, and won.
    openapi.components.schemas.Apply_OutputSchema.properties.method = { enum: ["lu", "qr", "svd"], type: "string", default: "lu" };
    // A required Optional output, answered null.
    openapi.components.schemas.Apply_OutputSchema.properties.note = { anyOf: [{ type: "string" }, { type: "null" }] };
    openapi.components.schemas.Apply_OutputSchema.required = [...(openapi.components.schemas.Apply_OutputSchema.required ?? []), "note"];
    openapi.components.schemas.ApplyOutputSchema.field_order[""] = ["barycenter", "note", "count"];
    const base = meshStats();
    return { openapi, apply: (decoded) => (seen.push(decoded), { ...base.apply(decoded), method: "qr", note: null }) };
  }
  const points = { object_type: "array", shape: [1, 3], dtype: "float64", data: { buffer: [[1, 2, 3]], encoding: "json" } };
  const restInputs = (extra: Record<string, unknown>, mesh: Record<string, unknown> = { n_points: 1 }) => ({ inputs: { mesh: { ...mesh, points, cell_data: {} }, layers: [], ...extra } });

  it("the REST API takes a Literal's values as themselves and sends them so (1 of Literal[3, 2, 1] went to the runtime as \"3\"; \"\" could not be sent)", async () => {
    const seen: Record<string, unknown>[] = [];
    const { rest, client, server, stop } = await bridged(withLiterals(seen));
    try {
      for (const [order, kind] of [[1, 1], [3, ""], [2, "a"]]) {
        const res = await postJson(`${rest}/apply`, restInputs({ order, kind }));
        assert.equal(res.status, 200, await res.clone().text());
        assert.deepEqual([seen.at(-1)!.order, seen.at(-1)!.kind], [order, kind]);
      }
      const bad = await postJson(`${rest}/apply`, restInputs({ order: 4 }));
      assert.equal(bad.status, 422);
      assert.match(((await bad.json()) as { detail: { msg: string }[] }).detail[0].msg, /inputs\.order is 4, expected one of 3, 2, 1 \(or their enum value names\)$/);
      // A Literal of strings still takes a value number, as it did: METHOD_VALUE_FORWARD's.
      assert.equal((await postJson(`${rest}/apply`, restInputs({ method: literalNumbers(["central", "forward"])[1] }))).status, 200);
      assert.equal(seen.at(-1)!.method, "forward");
      // Another number is refused naming the field and its values (protobufjs's "enum value expected" was located at the whole inputs).
      const numbered = await postJson(`${rest}/apply`, restInputs({ method: 2 }));
      assert.equal(numbered.status, 422);
      assert.deepEqual(((await numbered.json()) as { detail: { loc: unknown[]; msg: string }[] }).detail.map((d) => [d.loc, d.msg]), [[["body", "inputs", "method"], 'Value error, inputs.method is 2, expected one of "central", "forward" (or their enum value names)']]);
      assert.equal(seen.at(-1)!.method, "forward");
      // Over gRPC an enum is its value number, as protobuf has it: ORDER_VALUE_1's is the literal 1.
      await client.apply({ ...inputs(), order: "ORDER_VALUE_1" });
      assert.strictEqual(seen.at(-1)!.order, 1);
      // A Literal of booleans takes booleans (1 went as false); an input and an output of one name keep their own values.
      const flagged = await postJson(`${rest}/apply`, restInputs({ flag: true, method: "forward", odd: "-" }));
      assert.equal(flagged.status, 200, await flagged.clone().text());
      assert.deepEqual([seen.at(-1)!.flag, seen.at(-1)!.method, seen.at(-1)!.odd], [true, "forward", "-"]);
      const answered = (await flagged.json()) as { method: string; note?: unknown };
      // The output's own enum values; its required Optional answered null stays in the answer (it was left out).
      assert.deepEqual([answered.method, "note" in answered, answered.note], ["qr", true, null]);
      // In the model's field order, as tesseract-core writes it (the null came last).
      assert.deepEqual(Object.keys(answered), ["barycenter", "note", "count", "method"]);
      assert.equal((await postJson(`${rest}/apply`, restInputs({ flag: 1 }))).status, 422);
      // null: a Literal's None is sent as null (it was refused as missing); a required one that may be null, unset, goes as null (it was left out).
      assert.equal((await postJson(`${rest}/apply`, restInputs({ nul: null, tag: "t" }))).status, 200);
      assert.deepEqual([seen.at(-1)!.nul, seen.at(-1)!.tag], [null, "t"]);
      assert.equal((await postJson(`${rest}/apply`, restInputs({ nul: "a" }))).status, 200);
      assert.deepEqual([seen.at(-1)!.nul, seen.at(-1)!.tag], ["a", null]);
      await client.apply(inputs());
      assert.ok("nul" in seen.at(-1)! && "tag" in seen.at(-1)!, JSON.stringify(Object.keys(seen.at(-1)!)));
      assert.deepEqual([seen.at(-1)!.nul, seen.at(-1)!.tag], [null, null]);
      // The CLI's JSON reads a Literal's values as tesseract-core does (1 went as value number 1, the literal 3).
      const points1 = { object_type: "array", shape: [1, 3], dtype: "float64", data: { buffer: [[1, 2, 3]], encoding: "json" } };
      const cliInputs = (extra: object) => JSON.stringify({ inputs: { mesh: { n_points: 1, points: points1 }, ...extra } });
      await promisify(execFile)(process.execPath, [CLI, "apply", cliInputs({ order: 1, flag: true, sign: 1, frac: 0.5, nul: null }), "--address", server.address]);
      assert.deepEqual([seen.at(-1)!.order, seen.at(-1)!.flag, seen.at(-1)!.sign, seen.at(-1)!.frac, seen.at(-1)!.nul], [1, true, 1, 0.5, null]);
      await promisify(execFile)(process.execPath, [CLI, "apply", cliInputs({ sign: -1 }), "--address", server.address]);
      assert.equal(seen.at(-1)!.sign, -1);
      // A number that is none of the values is refused, not taken as a value number (2 went as the literal 1).
      await assert.rejects(promisify(execFile)(process.execPath, [CLI, "apply", cliInputs({ sign: 2 }), "--address", server.address]), /inputs\.sign: unknown SignValue value 2/);
      const doc = (await (await fetch(`${rest}/openapi.json`)).json()) as any;
      assert.deepEqual(doc.components.schemas.Apply_InputSchema.properties.order, { type: "integer", enum: [3, 2, 1], default: 3 });
      assert.deepEqual(doc.components.schemas.Apply_InputSchema.properties.kind, { enum: ["a", 1, null, ""], default: "a" });
      // What the models require, and which may be null, as the runtime's own document says (both were left out).
      assert.deepEqual(doc.components.schemas.Apply_InputSchema.required, ["mesh", "layers", "nul", "tag"]);
      assert.deepEqual(doc.components.schemas.Apply_InputSchema.properties.tag, { anyOf: [{ type: "string" }, { type: "null" }] });
      assert.deepEqual(doc.components.schemas.Apply_OutputSchema.properties.note, { anyOf: [{ type: "string" }, { type: "null" }] });
    } finally {
      await stop();
    }
  });

  it("a required field left unset is INVALID_ARGUMENT naming it (it went to the runtime as 0 and answered OK); an explicit 0 is sent", async () => {
    const seen: Record<string, unknown>[] = [];
    const { rest, client, fake, stop } = await bridged(withLiterals(seen));
    try {
      const { n_points: _, ...meshWithout } = inputs().mesh;
      await clientRejects(client.apply({ ...inputs(), mesh: meshWithout }), "INVALID_ARGUMENT", /^inputs\.mesh\.n_points is missing; the runtime's schema requires it$/);
      const jacobian = client.jacobian({ inputs: { ...inputs(), mesh: meshWithout }, inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL });
      await clientRejects(jacobian, "INVALID_ARGUMENT", /inputs\.mesh\.n_points is missing; the runtime's schema requires it/);
      const res = await postJson(`${rest}/apply`, restInputs({}, {}));
      assert.equal(res.status, 422);
      const [entry] = ((await res.json()) as { detail: { type: string; loc: unknown[]; msg: string }[] }).detail;
      // pydantic's type and msg for it (it was value_error; then our gRPC message).
      assert.deepEqual([entry.type, entry.loc, entry.msg], ["missing", ["body", "inputs", "mesh", "n_points"], "Field required"]);
      // A required list or dict left out of a REST body (converted, it went to the runtime as an empty one, answered 200).
      const { layers: _layers, ...withoutLayers } = restInputs({}).inputs;
      const { cell_data: _cells, ...meshWithoutCells } = restInputs({}).inputs.mesh;
      for (const [body, loc] of [
        [{ inputs: withoutLayers }, ["body", "inputs", "layers"]],
        [{ inputs: { ...withoutLayers, layers: [], mesh: meshWithoutCells } }, ["body", "inputs", "mesh", "cell_data"]],
      ] as const) {
        const refused = await postJson(`${rest}/apply`, body);
        assert.equal(refused.status, 422);
        const [missing] = ((await refused.json()) as { detail: { type: string; loc: unknown[]; msg: string }[] }).detail;
        assert.deepEqual([missing.type, missing.loc, missing.msg], ["missing", loc, "Field required"]);
      }
      assert.equal(fake.applyCalls, 0);
      await postJson(`${rest}/apply`, restInputs({}, { n_points: 0 }));
      assert.strictEqual((seen.at(-1)!.mesh as { n_points: unknown }).n_points, 0);
    } finally {
      await stop();
    }
  });
});

describe("tesseract-core bridge: numbers JSON cannot carry", function () {
  this.timeout(20000);

  it("a scalar input of Infinity or NaN is INVALID_ARGUMENT naming it (sent as null, the runtime took its default and Apply answered OK); 1e999 on the REST API is 422", async () => {
    const { rest, client, fake, stop } = await bridged(meshStats());
    try {
      for (const scale of [Infinity, -Infinity, NaN]) {
        await clientRejects(client.apply({ ...inputs(), scale }), "INVALID_ARGUMENT", new RegExp(`^inputs\\.scale is ${scale}, which the runtime cannot be sent: it reads JSON, whose numbers are finite$`));
      }
      const points = { object_type: "array", shape: [1, 3], dtype: "float64", data: { buffer: [[1, 2, 3]], encoding: "json" } };
      const body = JSON.stringify({ inputs: { mesh: { n_points: 1, points, cell_data: {} }, layers: [], scale: 0.125 } }).replace("0.125", "1e999");
      const res = await fetch(`${rest}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body });
      assert.equal(res.status, 422);
      assert.match(((await res.json()) as { detail: { msg: string }[] }).detail[0].msg, /inputs\.scale is Infinity \(a number beyond ±1\.8e308\), expected a finite number$/);
      assert.equal(fake.applyCalls, 0);
    } finally {
      await stop();
    }
  });
});

describe("tesseract-core bridge: null on the REST API", function () {
  this.timeout(20000);

  it("null is taken where the runtime's schema takes it (label: Optional[str] = None) and a 422 naming the field elsewhere (scale: float = 1.0: it was read as unset, and the runtime applied its default)", async () => {
    const seen: Record<string, unknown>[] = [];
    const base = meshStats();
    const { rest, fake, stop } = await bridged({ ...base, apply: (decoded) => (seen.push(decoded), base.apply(decoded)) });
    try {
      const points = { object_type: "array", shape: [1, 3], dtype: "float64", data: { buffer: [[1, 2, 3]], encoding: "json" } };
      const body = (extra: object) => ({ inputs: { mesh: { n_points: 1, points, cell_data: {} }, layers: [], ...extra } });
      const scale = await postJson(`${rest}/apply`, body({ scale: null }));
      assert.equal(scale.status, 422);
      assert.deepEqual(((await scale.json()) as { detail: { loc: unknown[]; msg: string }[] }).detail.map((d) => [d.loc, d.msg]), [[["body", "inputs", "scale"], "Value error, inputs.scale is null, expected a number"]]);
      assert.equal(fake.applyCalls, 0);
      const label = await postJson(`${rest}/apply`, body({ label: null, scale: 2 }));
      assert.equal(label.status, 200, await label.clone().text());
      assert.deepEqual([fake.applyCalls, seen.at(-1)!.scale], [1, 2]);
      // The document says which: label anyOf [string, null], scale a number.
      const properties = ((await (await fetch(`${rest}/openapi.json`)).json()) as any).components.schemas.Apply_InputSchema.properties;
      assert.deepEqual([properties.label.anyOf?.[1], properties.scale.anyOf], [{ type: "null" }, undefined]);
    } finally {
      await stop();
    }
  });
});

describe("tesseract-core bridge: an Optional array output that is None", function () {
  this.timeout(20000);

  /** Mesh Stats with an Optional[Differentiable[Array]] output `extra`: None, or barycenter's values where `present` says. */
  function withOptionalOutput(present: (decoded: Record<string, unknown>) => boolean): FakeTesseract {
    const openapi = structuredClone(MESH_STATS_OPENAPI) as any;
    const outputs = openapi.components.schemas.Apply_OutputSchema;
    outputs.properties.extra = { anyOf: [structuredClone(outputs.properties.barycenter), { type: "null" }] };
    const base = meshStats();
    return { openapi, apply: (decoded) => ({ ...base.apply(decoded), extra: present(decoded) ? base.apply(decoded).barycenter : null }) };
  }
  const x00 = (decoded: Record<string, unknown>) => ((decoded.mesh as { points: FakeArray }).points.values as number[])[0];
  const none = /^outputPaths \(jac_outputs\): output "extra" is None at these inputs: the Tesseract left it out, as its schema allows; there is nothing to differentiate$/;

  it("None at the inputs: a gradient of it is INVALID_ARGUMENT naming it (it blamed the first perturbed evaluation, UNKNOWN, or after an Apply INTERNAL); the REST API 422", async () => {
    const { rest, client, stop } = await bridged(withOptionalOutput(() => false));
    try {
      const request = (algorithm: Algorithm, outputPaths = ["extra"]) => ({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths, options: { algorithm } });
      assert.ok(!("extra" in (await client.apply(inputs()))), "extra answered though None");
      // Forward takes f(x) from the Apply just made (the evaluation cache).
      for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD]) await clientRejects(client.jacobian(request(algorithm)), "INVALID_ARGUMENT", none);
      const rows = (async () => {
        for await (const _ of client.jacobianRows(request(Algorithm.ALGORITHM_CENTRAL))) void _;
      })();
      await clientRejects(rows, "INVALID_ARGUMENT", none);
      const cotangent = { extra: ndarray(Float64Array.of(1, 1, 1), [3]) };
      await clientRejects(client.vjp({ ...request(Algorithm.ALGORITHM_CENTRAL), cotangent }), "INVALID_ARGUMENT", /^outputPaths \(vjp_outputs\): output "extra" is None at these inputs/);
      const points = { object_type: "array", shape: [1, 3], dtype: "float64", data: { buffer: [[1, 2, 3]], encoding: "json" } };
      const res = await postJson(`${rest}/jacobian`, { inputs: { mesh: { n_points: 1, points, cell_data: {} }, layers: [] }, jac_inputs: ["mesh.points"], jac_outputs: ["extra"] });
      assert.equal(res.status, 422);
      const [entry] = ((await res.json()) as { detail: { loc: unknown[]; msg: string }[] }).detail;
      assert.deepEqual(entry.loc, ["body", "jac_outputs"]);
      assert.match(entry.msg, /jac_outputs: output "extra" is None at these inputs/);
      // The outputs that are there still differentiate.
      const { jacobian } = await client.jacobian(request(Algorithm.ALGORITHM_CENTRAL, ["barycenter"]));
      flat(jacobian.barycenter["mesh.points"]).forEach((d, k) => assert.ok(Math.abs(d - (Math.floor(k / (N * 3)) === k % 3 ? SCALE / N : 0)) < 1e-6, `d barycenter / d points at ${k}: ${d}`));
    } finally {
      await stop();
    }
  });

  it("None at the inputs, there where the first evaluation is: INVALID_ARGUMENT all the same (it depended on which evaluation came first)", async () => {
    const at = inputs();
    const first = (at.mesh.points.data as Float64Array)[0];
    // There only where the first coordinate moved: at x[0, 0] ± h, the central Jacobian's first pair.
    const { client, stop } = await bridged(withOptionalOutput((decoded) => x00(decoded) !== first));
    try {
      await clientRejects(client.jacobian({ inputs: at, inputPaths: ["mesh.points"], outputPaths: ["extra"], options: CENTRAL }), "INVALID_ARGUMENT", none);
    } finally {
      await stop();
    }
  });

  it("there at the inputs, None at a perturbed point: that evaluation is named, the runtime's fault (UNKNOWN)", async () => {
    const at = inputs();
    const first = (at.mesh.points.data as Float64Array)[0];
    // None once the first coordinate moves down: at x[0, 0] - h only.
    const { client, stop } = await bridged(withOptionalOutput((decoded) => x00(decoded) >= first));
    try {
      const jacobian = client.jacobian({ inputs: at, inputPaths: ["mesh.points"], outputPaths: ["extra"], options: CENTRAL });
      // Worded by whichever check met it first: the output's resolution, where that evaluation's answer came back first of the pair, or its leaf.
      await clientRejects(jacobian, "UNKNOWN", /^evaluation at mesh\.points\[0, 0\] - h failed: apply returned no (output extra here, which an earlier evaluation returned: whether an output is there must not depend on the values of the differentiated inputs \(differences are taken output by output\)|output extra, a differentiable tensor field of \w+)$/);
    } finally {
      await stop();
    }
  });
});

describe("tesseract-core bridge: the generated .proto", function () {
  this.timeout(20000);

  it("is written to a temporary folder that closing removes", async () => {
    const fake = await startFakeTesseractCore(meshStats());
    try {
      const runtime = await loadTesseractCore(fake.url);
      const [dir] = runtime.protoIncludeDirs;
      assert.ok(fs.existsSync(runtime.protoFiles[0]) && runtime.protoFiles[0].startsWith(dir));
      await runtime.close();
      assert.ok(!fs.existsSync(dir), `${dir} is still there`);
      const server: RunningServer = await startServer({ tesseract: fake.url, port: 0, logger: silentLogger });
      const [served] = server.runtime.protoIncludeDirs;
      assert.ok(fs.existsSync(served));
      await server.close(0);
      assert.ok(!fs.existsSync(served), `${served} is still there`);
    } finally {
      await fake.close();
    }
  });

  it("a title too long for a file name (300 characters) is served: the package is the title's first words and a hash of the rest (the start failed with ENAMETOOLONG)", async () => {
    const title = "Mesh statistics ".repeat(19) + "of the last run";
    const { client, stop } = await bridged({ ...meshStats(), openapi: { ...MESH_STATS_OPENAPI, info: { ...MESH_STATS_OPENAPI.info, title } } });
    try {
      const described = await client.describe();
      assert.equal(described.name, title);
      assert.equal(described.input_type, "tesseract_core.mesh_statistics_mesh_statistics_mesh_statistics_mesh_st_b879f0bb.v1.Inputs");
      assertAll(flat((await client.apply(inputs())).barycenter), barycenter());
    } finally {
      await stop();
    }
    // A --proto-package part as long is kept in the package; only the file's folder is shortened.
    const protoPackage = `acme.${"x".repeat(300)}.v1`;
    const named = await bridged(meshStats(), { protoPackage });
    try {
      assert.equal((await named.client.describe()).input_type, `${protoPackage}.Inputs`);
      assertAll(flat((await named.client.apply(inputs())).barycenter), barycenter());
    } finally {
      await named.stop();
    }
  });

  it("declares the arrays' dtypes; the REST API's /openapi.json reports them, with the runtime's shapes and defaults", async () => {
    const { server, rest, stop } = await bridged(meshStats());
    try {
      const text = fs.readFileSync(server.runtime.protoFiles[0], "utf8");
      assert.match(text, /tesseract\.v1\.Tensor weights = \d+ \[\(tesseract\.v1\.differentiable\) = true, \(tesseract\.v1\.datatype\) = DATA_TYPE_FP32\];/);
      const doc = (await (await fetch(`${rest}/openapi.json`)).json()) as any;
      // Shapes as the runtime's document gives them (they were all null).
      assert.deepEqual(doc.components.schemas.ApplyInputSchema.differentiable_arrays, {
        "mesh.points": { shape: [null, 3], dtype: "float64" },
        "mesh.cell_data.{}": { shape: [null, null], dtype: "float64" },
        "layers.[].weights": { shape: [null], dtype: "float32" },
      });
      assert.deepEqual(doc.components.schemas.ApplyOutputSchema.differentiable_arrays, { barycenter: { shape: [3], dtype: "float64" } });
      // The runtime's declared defaults, never a proto zero (it said 0 and "", then nothing).
      const properties = doc.components.schemas.Apply_InputSchema.properties;
      assert.deepEqual([properties.label, properties.scale], [{ anyOf: [{ type: "string" }, { type: "null" }], default: null }, { type: "number", default: 1 }]);
      assert.equal(properties.method.default, "central");
      // An array's rank and fixed dimensions (the shape schema accepted any).
      assert.deepEqual(doc.components.schemas.Apply_Mesh.properties.points.properties.shape, MESH_STATS_OPENAPI.components.schemas.Apply_Mesh.properties.points.properties.shape);
    } finally {
      await stop();
    }
  });
});
