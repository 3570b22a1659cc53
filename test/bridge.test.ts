/**
 * `serve http://HOST:PORT[,…]`: a tesseract-core runtime's Tesseract through this server's engine,
 * against the fake tesseract-core runtime (test/fixtures/tesseract-core/) serving Mesh Stats, whose
 * derivatives are known (see mesh-stats.ts): d barycenter[c] / d points[i, c'] = scale·δ(c, c')/n, and
 * 1 for every cell_data and layer weights element. Calls are counted by the fake itself.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import type * as protobuf from "protobufjs";
import { Algorithm, type TesseractClient } from "../client";
import { startServer, type RunningServer } from "../index";
import { loadTesseractCore } from "../server/bridge/tesseract-core";
import { validationDetail } from "../server/bridge/tesseract-core-client";
import { silentLogger } from "../server/log";
import { MESH_STATS_OPENAPI, meshStats } from "./fixtures/tesseract-core/mesh-stats";
import { FakeDropConnection, FakeHttpStatus, FakeValidationError, startFakeTesseractCore, type FakeArray, type RunningFake } from "./fixtures/tesseract-core/fake-tesseract-core";
import { arraySchema, fakeArray, openApiDoc, ref, serveSchema } from "./fixtures/tesseract-core/served-schemas";
import { barycenter, meshStatsInputs, N, POINTS, reflectedClient, SCALE } from "./fixtures/tesseract-core/bridge-clients";
import { CLI, clientRejects, f64, flat } from "./helpers";

const CENTRAL = { algorithm: Algorithm.ALGORITHM_CENTRAL };
const inputs = meshStatsInputs;

/** A port nothing listens on: a fake started and closed. */
async function closedUrl(): Promise<string> {
  const fake = await startFakeTesseractCore(meshStats());
  await fake.close();
  return fake.url;
}

const close = (x: number, y: number) => Math.abs(x - y) <= 1e-7 * Math.max(1, Math.abs(y));

function assertAll(values: number[], expected: (i: number) => number, what: string) {
  values.forEach((v, i) => assert.ok(close(v, expected(i)), `${what}[${i}] = ${v}, expected ${expected(i)}`));
}

/** d barycenter / d points of meshstats: SCALE / N where the coordinate is the barycenter's, else 0. */
function assertBarycenterJacobian(d: unknown, what: string) {
  assertAll(flat(d), (k) => (Math.floor(k / (N * 3)) === k % 3 ? SCALE / N : 0), what);
}

/** A server over `fake` and a reflected client; `stop` closes all three. */
async function over(fake: RunningFake, options: Partial<Parameters<typeof startServer>[0]> = {}) {
  const server = await startServer({ tesseract: fake.url, port: 0, logger: silentLogger, ...options });
  const { client } = await reflectedClient(server.address);
  const stop = async () => {
    client.close();
    await server.close(0);
    await fake.close();
  };
  return { server, client, stop };
}

describe("tesseract-core bridge (serve http://HOST:PORT)", function () {
  this.timeout(20000);
  let fake: RunningFake;
  let server: RunningServer;
  let client: TesseractClient<any, any>;
  let described: Awaited<ReturnType<typeof reflectedClient>>["described"];

  before(async () => {
    fake = await startFakeTesseractCore(meshStats());
    server = await startServer({ tesseract: fake.url, port: 0, logger: silentLogger });
    ({ client, described } = await reflectedClient(server.address));
  });

  after(async () => {
    client?.close();
    await server?.close(0);
    await fake?.close();
  });

  it("Describe shows the generated types, the title and version, the differentiable paths", () => {
    assert.equal(described.name, "Mesh Stats");
    assert.equal(described.version, "0.3.0");
    assert.equal(described.input_type, "tesseract_core.mesh_stats.v1.Inputs");
    assert.equal(described.output_type, "tesseract_core.mesh_stats.v1.Outputs");
    assert.deepEqual(described.differentiable_inputs, ["mesh.points", "mesh.cell_data.{}", "layers.[].weights"]);
    assert.deepEqual(described.differentiable_outputs, ["barycenter"]);
  });

  it("Apply is one POST /apply, answered with the fake's computation", async () => {
    const before = fake.applyCalls;
    const out = await client.apply(inputs());
    assert.equal(fake.applyCalls - before, 1);
    assertAll(flat(out.barycenter), (c) => barycenter()[c], "barycenter");
    assert.equal(Number(out.count), N);
  });

  it("unset optional fields are left to tesseract-core's defaults (scale = 1)", async () => {
    const { scale: _scale, method: _method, ...rest } = inputs();
    const out = await client.apply(rest);
    const p = [1, 2, 3, 4, 5, 6, 7, 8, 10, -1, 0.5, 2];
    const extra = 0.25 + 0.5 + 1 + 2 + 3 + 0.1 + 0.2 + 3;
    assertAll(flat(out.barycenter), (c) => p.filter((_, k) => k % 3 === c).reduce((s, v) => s + v, 0) / N + extra, "barycenter");
  });

  it("the central Jacobian w.r.t. points, cell_data and layer weights is the analytic one, in exactly 2n evaluations", async () => {
    const before = fake.applyCalls;
    const inputPaths = ["mesh.points", "mesh.cell_data.{a}", "mesh.cell_data.{b}", "layers.[0].weights"];
    const { jacobian, stats } = await client.jacobian({ inputs: inputs(), inputPaths, outputPaths: ["barycenter"], options: CENTRAL });
    const n = 12 + 2 + 3 + 2;
    assert.equal(fake.applyCalls - before, 2 * n);
    assert.equal(Number(stats.apply_calls), 2 * n);
    const d = jacobian.barycenter;
    assert.deepEqual(d["mesh.points"].shape, [3, N, 3]);
    assertBarycenterJacobian(d["mesh.points"], "d barycenter / d points");
    assertAll(flat(d["mesh.cell_data.{a}"]), () => 1, "d barycenter / d cell_data.a");
    assertAll(flat(d["mesh.cell_data.{b}"]), () => 1, "d barycenter / d cell_data.b");
    assertAll(flat(d["layers.[0].weights"]), () => 1, "d barycenter / d layers[0].weights");
  });

  it("JVP and VJP match the analytic derivatives", async () => {
    const tangent = { "mesh.points": f64(Array.from({ length: 12 }, (_, i) => i + 1), [N, 3]), "layers.[1].weights": f64([2]) };
    const jvp = await client.jvp({ inputs: inputs(), inputPaths: Object.keys(tangent), outputPaths: ["barycenter"], tangent, options: CENTRAL });
    const t = Array.from({ length: 12 }, (_, i) => i + 1);
    assertAll(flat(jvp.result.barycenter), (c) => (SCALE / N) * t.filter((_, k) => k % 3 === c).reduce((s, v) => s + v, 0) + 2, "jvp");
    const vjp = await client.vjp({ inputs: inputs(), inputPaths: ["mesh.points", "mesh.cell_data.{b}"], outputPaths: ["barycenter"], cotangent: { barycenter: f64([1, 2, 3]) }, options: CENTRAL });
    assertAll(flat(vjp.result["mesh.points"]), (k) => ((SCALE / N) * [1, 2, 3][k % 3]), "vjp points");
    assertAll(flat(vjp.result["mesh.cell_data.{b}"]), () => 6, "vjp cell_data.b");
  });

  it("an input the runtime declares float32, sent as float64, is cast as the runtime casts it: the quotient divides by the step taken", async () => {
    // The runtime rounds each float64 point to float32: differenced in float64, d/d weights was 1 ± 4e-5 (3: ± 1e-3).
    const { jacobian } = await client.jacobian({ inputs: inputs(), inputPaths: ["layers.[1].weights"], outputPaths: ["barycenter"], options: CENTRAL });
    assert.deepEqual(flat(jacobian.barycenter["layers.[1].weights"]), [1, 1, 1]);
    const huge = { ...inputs(), layers: [{ weights: f64([1e300]), name: "first" }] };
    await clientRejects(client.apply(huge), "INVALID_ARGUMENT", /^layers\.\[0\]\.weights has 1e\+300 at flat index 0 \(dtype float64\), which the declared dtype float32 cannot hold$/);
  });

  it("JacobianRows streams the same rows", async () => {
    const rows: string[] = [];
    const before = fake.applyCalls;
    for await (const event of client.jacobianRows({ inputs: inputs(), inputPaths: ["mesh.cell_data.{a}", "layers.[1].weights"], outputPaths: ["barycenter"], options: CENTRAL })) {
      if (event.row) rows.push(`${event.row.input_path}[${event.row.input_index}]`);
    }
    assert.deepEqual(rows.sort(), ["layers.[1].weights[0]", "mesh.cell_data.{a}[0]", "mesh.cell_data.{a}[1]"]);
    assert.equal(fake.applyCalls - before, 6);
  });

  it("a 422 from tesseract-core is INVALID_ARGUMENT naming the location", async () => {
    await clientRejects(client.apply(inputs(N + 1)), "INVALID_ARGUMENT", /inputs\.mesh\.n_points: .*n_points is 5 but points has 4 rows/);
    await clientRejects(client.jacobian({ inputs: inputs(N + 1), inputPaths: ["mesh.points"], outputPaths: ["barycenter"] }), "INVALID_ARGUMENT", /inputs\.mesh\.n_points/);
  });

  it("a 422 naming an input this server's schema does not have, or refusing one it has as extra (a runtime redeployed with a field added or dropped), is UNKNOWN saying the runtime's schema changed, not the caller's mistake (it was INVALID_ARGUMENT for a field no stub can set, or one the caller must set)", async () => {
    let refusal = new FakeValidationError([], "");
    const changed = await startFakeTesseractCore({
      ...meshStats(),
      apply: () => {
        throw refusal;
      },
    });
    const { client, stop } = await over(changed);
    try {
      const url = changed.url.replace(/\./g, "\\.");
      const said = (detail: string) => new RegExp(`^tesseract-core \\(${url}\\) refused the inputs over a field its schema and this server's disagree on: ${detail}; its /openapi\\.json has changed since this server read it at start: restart this server to serve the new one$`);
      refusal = new FakeValidationError(["inputs", "mesh", "tolerance"], "Field required", "missing");
      await clientRejects(client.apply(inputs()), "UNKNOWN", said("inputs\\.mesh\\.tolerance: Field required"));
      await clientRejects(client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL }), "UNKNOWN", /^evaluation at .* failed: tesseract-core .* refused the inputs over a field its schema and this server's disagree on: inputs\.mesh\.tolerance: Field required;/);
      refusal = new FakeValidationError(["inputs", "scale"], "Extra inputs are not permitted", "extra_forbidden");
      await clientRejects(client.apply(inputs()), "UNKNOWN", said("inputs\\.scale: Extra inputs are not permitted"));
    } finally {
      await stop();
    }
  });

  it("a 422's detail as the message says it: locations, at most three entries, control characters escaped, an empty one said so", () => {
    const entry = (loc: unknown[], msg: string) => ({ type: "value_error", loc, msg });
    assert.equal(validationDetail(JSON.stringify({ detail: [entry(["body", "inputs", "x", 3], "Value error, too big")] })), "inputs.x.[3]: Value error, too big");
    assert.equal(validationDetail(JSON.stringify({ detail: [1, 2, 3, 4].map((i) => entry(["body", `f${i}`], "bad")) })), "f1: bad; f2: bad; f3: bad; … and 1 more");
    assert.equal(validationDetail(JSON.stringify({ detail: [] })), "(an empty detail)");
    assert.equal(validationDetail("\u001b[31mnot json"), "\\u001b[31mnot json");
  });

  it("a 422 whose body nests 100 000 deep is still the runtime's refusal, quoted cut short: INVALID_ARGUMENT over gRPC, 422 over REST (its loc or msg so nested failed the call UNKNOWN \"Maximum call stack size exceeded\"; its input or ctx, REST's 500)", async () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    const bodies = [`{"detail":[{"type":"value_error","loc":["body",${deep}],"msg":"bad"}]}`, `{"detail":[{"type":"value_error","loc":["body"],"msg":${deep}}]}`, `{"detail":[{"type":"value_error","loc":["body","inputs"],"msg":"bad","input":${deep}}]}`, `{"detail":[{"type":"value_error","loc":["body"],"msg":"bad","ctx":{"error":${deep}}}]}`];
    let body = "";
    const refusing = await startFakeTesseractCore({
      ...meshStats(),
      apply: () => {
        throw new FakeHttpStatus(422, body);
      },
    });
    const { server, client, stop } = await over(refusing, { httpPort: 0 });
    try {
      for (body of bodies) {
        const quoted = `${body.slice(0, 200).replace(/[[\]{}().*+?^$|\\]/g, "\\$&")}… \\(${body.length} characters\\)`;
        await clientRejects(client.apply(inputs()), "INVALID_ARGUMENT", new RegExp(`^tesseract-core \\(${refusing.url}\\) refused the inputs: ${quoted}$`));
        const rest = await fetch(`http://127.0.0.1:${server.httpPort}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ inputs: { mesh: { n_points: 1, points: { shape: [1, 3], dtype: "float64", data: { buffer: [0, 0, 0], encoding: "json" } }, cell_data: {} }, layers: [] } }) });
        assert.equal(rest.status, 422);
        const [entry] = ((await rest.json()) as { detail: { loc: unknown[]; msg: string }[] }).detail;
        assert.deepEqual(entry.loc, ["body"]);
        assert.ok(entry.msg.startsWith(`Value error, tesseract-core (${refusing.url}) refused the inputs: {"detail":`), entry.msg);
      }
    } finally {
      await stop();
    }
  });

  it("a 422 only at a perturbed point (the runtime's own domain): FAILED_PRECONDITION naming the evaluation, not the caller's inputs", async () => {
    // The runtime refuses points[0, 0] above its value in the request: x + h is refused, x accepted.
    const base = meshStats();
    const limit = inputs().mesh.points.data[0];
    const fussy = await startFakeTesseractCore({
      ...base,
      apply(body) {
        if ((body.mesh as { points: FakeArray }).points.values[0] > limit) throw new FakeValidationError(["inputs", "mesh", "points"], `Value error, points[0, 0] must be at most ${limit}`);
        return base.apply(body);
      },
    });
    const fussyServer = await startServer({ tesseract: fussy.url, port: 0, httpPort: 0, logger: silentLogger });
    const { client: fussyClient } = await reflectedClient(fussyServer.address);
    try {
      const request = { inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL };
      await clientRejects(fussyClient.jacobian(request), "FAILED_PRECONDITION", /^evaluation at mesh\.points\[0, 0\] \+ h failed: tesseract-core \(.*\) refused the inputs: inputs\.mesh\.points: Value error, points\[0, 0\] must be at most 1; the unperturbed inputs are accepted: the step left what the Tesseract accepts \(use a smaller eps, or declare the domain in bounds\)$/);
      // Inputs refused as they are stay the caller's.
      await clientRejects(fussyClient.jacobian({ ...request, inputs: inputs(N + 1) }), "INVALID_ARGUMENT", /inputs\.mesh\.n_points/);
      // The REST API's 422 says the same: the runtime's own entry (loc inputs.mesh.points) blamed inputs it had accepted.
      const points = { object_type: "array", shape: [1, 3], dtype: "float64", data: { buffer: [[1, 2, 3]], encoding: "json" } };
      const res = await fetch(`http://127.0.0.1:${fussyServer.httpPort}/jacobian`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ inputs: { mesh: { n_points: 1, points, cell_data: {} }, layers: [] }, jac_inputs: ["mesh.points"], jac_outputs: ["barycenter"] }),
      });
      assert.equal(res.status, 422);
      const [entry] = ((await res.json()) as { detail: { loc: unknown[]; msg: string }[] }).detail;
      assert.deepEqual(entry.loc, ["body"]);
      assert.match(entry.msg, /^Value error, evaluation at mesh\.points\[0, 0\] \+ h failed: .* the unperturbed inputs are accepted/);
    } finally {
      fussyClient.close();
      await fussyServer.close();
      await fussy.close();
    }
  });

  it("the CLI's describe and apply work through reflection", async () => {
    const run = promisify(execFile);
    const payload = JSON.stringify({
      inputs: {
        mesh: { n_points: 1, points: { object_type: "array", shape: [1, 3], dtype: "float64", data: { buffer: [[1, 2, 3]], encoding: "json" } } },
        method: "METHOD_VALUE_FORWARD",
      },
    });
    const { stdout } = await run(process.execPath, [CLI, "apply", payload, "--address", server.address]);
    const out = JSON.parse(stdout);
    assert.deepEqual(out.barycenter.data?.buffer ?? out.barycenter, [1, 2, 3]);
  });
});

describe("tesseract-core bridge: several runtimes, failures, cancellation", function () {
  this.timeout(20000);

  it("a runtime answering a redirect is UNKNOWN naming where it points (the message ended at \"HTTP 307: \")", async () => {
    const moved = await startFakeTesseractCore({ ...meshStats(), apply: () => { throw new FakeHttpStatus(307, "", "http://127.0.0.1:1/elsewhere/apply"); } });
    const server = await startServer({ tesseract: moved.url, port: 0, logger: silentLogger });
    const { client } = await reflectedClient(server.address);
    try {
      await clientRejects(client.apply(inputs()), "UNKNOWN", /^apply on http:\/\/127\.0\.0\.1:\d+ answered HTTP 307, a redirect to "http:\/\/127\.0\.0\.1:1\/elsewhere\/apply", which the bridge does not follow: serve the runtime's own URL$/);
    } finally {
      client.close();
      await server.close(0);
      await moved.close();
    }
  });

  it("a runtime answering 204 is UNKNOWN at once naming it, Content-Length or not (one of 10 was waited for until the runtime closed the connection, then sent again)", async () => {
    let posts = 0;
    let contentLength: string | undefined = "10";
    const runtime = http.createServer((req, res) => {
      req.resume();
      if (req.url === "/openapi.json") return void res.end(JSON.stringify(MESH_STATS_OPENAPI));
      posts++;
      res.writeHead(204, contentLength === undefined ? {} : { "content-length": contentLength });
      res.end();
    });
    runtime.keepAliveTimeout = 60_000; // the wait lasted as long as this
    await new Promise<void>((resolve) => runtime.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(runtime.address() as { port: number }).port}`;
    const server = await startServer({ tesseract: url, port: 0, logger: silentLogger });
    const { client } = await reflectedClient(server.address);
    try {
      for (const length of ["10", undefined]) {
        contentLength = length;
        const before = posts;
        await clientRejects(client.apply(inputs()), "UNKNOWN", /^apply on http:\/\/127\.0\.0\.1:\d+ answered HTTP 204 with no body, where JSON was expected$/);
        assert.equal(posts - before, 1, "sent once");
      }
    } finally {
      client.close();
      await server.close(0);
      runtime.closeAllConnections();
      await new Promise((resolve) => runtime.close(resolve));
    }
  });

  it("a busy runtime's Retry-After: past 30 s, or past the call's deadline, UNAVAILABLE at once saying so (it waited 30 s six times, or until the deadline)", async () => {
    let retryAfter = "3600";
    let posts = 0;
    const runtime = http.createServer((req, res) => {
      req.resume();
      if (req.url === "/openapi.json") return void res.end(JSON.stringify(MESH_STATS_OPENAPI));
      posts++;
      res.writeHead(503, { "content-type": "text/plain", "retry-after": retryAfter });
      res.end("busy");
    });
    await new Promise<void>((resolve) => runtime.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(runtime.address() as AddressInfo).port}`;
    const server = await startServer({ tesseract: url, port: 0, logger: silentLogger });
    const { client } = await reflectedClient(server.address);
    try {
      const unanswered = `^no tesseract-core runtime answered POST /apply \\(${url.replace(/\./g, "\\.")}: HTTP 503 busy\\); the runtime asked to retry after`;
      await clientRejects(client.apply(inputs()), "UNAVAILABLE", new RegExp(`${unanswered} 3600 s, longer than this server waits \\(30 s\\): retry later$`));
      assert.equal(posts, 1);
      retryAfter = "20";
      await clientRejects(client.apply(inputs(), { deadline: 10_000 }), "UNAVAILABLE", new RegExp(`${unanswered} 20 s, past the call's deadline \\(in \\d+ ms\\)$`));
      assert.equal(posts, 2);
      // A gradient job's evaluations know the deadline too.
      await clientRejects(client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL }, { deadline: 10_000 }), "UNAVAILABLE", new RegExp(`^evaluation at mesh\\.points\\[\\d, \\d\\] [+-] h failed: ${unanswered.slice(1)} 20 s, past the call's deadline \\(in \\d+ ms\\)$`));
      // The per-evaluation timeout bounds each request, not the waits between them (a runtime asking
      // for 1 s was given up on at once under a 500 ms timeout): the call's deadline ends them.
      retryAfter = "1";
      const timed = await startServer({ tesseract: url, port: 0, logger: silentLogger, evalTimeoutMs: 500 });
      const { client: timedClient } = await reflectedClient(timed.address);
      try {
        const before = posts;
        await clientRejects(timedClient.apply(inputs(), { deadline: 4000 }), "UNAVAILABLE", new RegExp(`${unanswered.replace("\\);", "\\), sent \\d+ times;")} 1 s, past the call's deadline \\(in \\d+ ms\\)$`));
        assert.ok(posts - before >= 2, `sent ${posts - before} times`);
      } finally {
        timedClient.close();
        await timed.close(0);
      }
    } finally {
      client.close();
      await server.close(0);
      runtime.closeAllConnections();
      await new Promise((resolve) => runtime.close(resolve));
    }
  });

  it("one replica's long Retry-After does not fail the call while another, busy without one, may take it soon (it was UNAVAILABLE at once)", async () => {
    const asking = http.createServer((req, res) => {
      req.resume();
      if (req.url === "/openapi.json") return void res.end(JSON.stringify(MESH_STATS_OPENAPI));
      res.writeHead(503, { "content-type": "text/plain", "retry-after": "3600" });
      res.end("busy");
    });
    await new Promise<void>((resolve) => asking.listen(0, "127.0.0.1", resolve));
    let first = true;
    const base = meshStats();
    const briefly = await startFakeTesseractCore({
      ...base,
      apply: (decoded) => {
        if (first) {
          first = false;
          throw new FakeHttpStatus(503, "warming up");
        }
        return base.apply(decoded);
      },
    });
    const server = await startServer({ tesseract: `http://127.0.0.1:${(asking.address() as AddressInfo).port},${briefly.url}`, port: 0, logger: silentLogger });
    const { client } = await reflectedClient(server.address);
    try {
      assertAll(flat((await client.apply(inputs())).barycenter), (c) => barycenter()[c], "apply after the brief 503");
      assert.equal(first, false);
    } finally {
      client.close();
      await server.close(0);
      await briefly.close();
      asking.closeAllConnections();
      await new Promise((resolve) => asking.close(resolve));
    }
  });

  it("a runtime answering 503 or 429 (busy, not ready) hands the evaluation to another, and alone is UNAVAILABLE, which callers retry (it was UNKNOWN)", async () => {
    // Both statuses at once: each waits out the retries' ~6 s.
    const once = async (status: number) => {
      const busy = await startFakeTesseractCore({ ...meshStats(), apply: () => { throw new FakeHttpStatus(status, "try again later"); } });
      const good = await startFakeTesseractCore(meshStats());
      const both = await startServer({ tesseract: `${busy.url},${good.url}`, port: 0, logger: silentLogger });
      // --runtime-retry-ms 0: a 503 is sent again only as a busy answer, five times.
      const alone = await startServer({ tesseract: busy.url, port: 0, logger: silentLogger, runtimeRetryMs: 0 });
      const [shared, lonely] = [await reflectedClient(both.address), await reflectedClient(alone.address)];
      try {
        for (let i = 0; i < 4; i++) assertAll(flat((await shared.client.apply(inputs())).barycenter), (c) => barycenter()[c], `apply ${i} through the other runtime`);
        // Sent again after a wait, five times (about 6 s), before it fails.
        const before = busy.applyCalls;
        await clientRejects(lonely.client.apply(inputs()), "UNAVAILABLE", new RegExp(`^no tesseract-core runtime answered POST /apply \\(${busy.url.replace(/\./g, "\\.")}: HTTP ${status} try again later\\), sent 6 times$`));
        assert.equal(busy.applyCalls - before, 6);
      } finally {
        shared.client.close();
        lonely.client.close();
        await Promise.all([both.close(), alone.close(), busy.close(), good.close()]);
      }
    };
    await Promise.all([once(503), once(429)]);
  });

  it("a proxy answering 502 (its runtime restarting) hands the evaluation to another runtime, and alone, under --runtime-retry-ms 0, is UNAVAILABLE at once, as a refused connection is (it was UNKNOWN, which callers do not retry)", async () => {
    const gateway = await startFakeTesseractCore({ ...meshStats(), apply: () => { throw new FakeHttpStatus(502, "<html>502 Bad Gateway</html>"); } });
    const good = await startFakeTesseractCore(meshStats());
    const both = await startServer({ tesseract: `${gateway.url},${good.url}`, port: 0, logger: silentLogger });
    const alone = await startServer({ tesseract: gateway.url, port: 0, logger: silentLogger, runtimeRetryMs: 0 });
    const [shared, lonely] = [await reflectedClient(both.address), await reflectedClient(alone.address)];
    try {
      // Other inputs each time (not answered from the evaluation cache): round-robin sends some to the gateway first.
      for (let i = 0; i < 4; i++) {
        const points = POINTS.map((p) => p + i);
        const outputs = await shared.client.apply({ ...inputs(), mesh: { ...inputs().mesh, points: f64(points, [N, 3]) } });
        assertAll(flat(outputs.barycenter), (c) => barycenter()[c] + SCALE * i, `apply ${i} through the other runtime`);
      }
      assert.ok(gateway.applyCalls >= 1);
      const before = gateway.applyCalls;
      await clientRejects(lonely.client.apply(inputs()), "UNAVAILABLE", new RegExp(`^no tesseract-core runtime answered POST /apply \\(${gateway.url.replace(/\./g, "\\.")}: HTTP 502 <html>502 Bad Gateway</html>\\)$`));
      assert.equal(gateway.applyCalls - before, 1);
    } finally {
      shared.client.close();
      lonely.client.close();
      await Promise.all([both.close(), alone.close(), gateway.close(), good.close()]);
    }
  });

  it("a runtime that drops the connection under an evaluation gets it once more, on a fresh connection, not again after a wait (a runtime crashing on these inputs got it eight times); the error says in words what happened (it said UND_ERR_SOCKET alone)", async () => {
    const crashing = await startFakeTesseractCore({ ...meshStats(), apply: () => { throw new FakeDropConnection(); } });
    const { client, stop } = await over(crashing);
    try {
      await clientRejects(client.apply(inputs()), "UNAVAILABLE", /^no tesseract-core runtime answered POST \/apply \(http:\/\/127\.0\.0\.1:\d+: (UND_ERR_SOCKET|ECONNRESET): the connection closed before a whole answer came \(the runtime may crash on these inputs\)\)$/);
      assert.equal(crashing.applyCalls, 2);
    } finally {
      await stop();
    }
  });

  it("a runtime busy now and then (every third apply a 503): the evaluation is sent again after a wait, and the Jacobian completes (one 503 failed it)", async () => {
    let applies = 0;
    const base = meshStats();
    const flaky = await startFakeTesseractCore({ ...base, apply: (decoded) => {
      if (++applies % 3 === 0) throw new FakeHttpStatus(503, "busy");
      return base.apply(decoded);
    } });
    const { server, client, stop } = await over(flaky, { concurrency: 1, metricsPort: 0 });
    try {
      const { jacobian, stats } = await client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL });
      assertBarycenterJacobian(jacobian.barycenter["mesh.points"], "jacobian");
      assert.equal(Number(stats.apply_calls), 6 * N);
      assert.equal(flaky.applyCalls, applies);
      assert.ok(applies >= 9 * N - 1, `${applies} requests for ${6 * N} evaluations`);
      // The resends show in the metrics: requests sent beside the evaluations (they were seen nowhere).
      const metrics = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
      assert.match(metrics, new RegExp(`^tesseract_grpc_runtime_requests_total ${applies}$`, "m"));
      assert.match(metrics, new RegExp(`^tesseract_grpc_evaluations_total ${6 * N}$`, "m"));
    } finally {
      await stop();
    }
  });

  it("--concurrency bounds the requests in flight to a runtime across calls (40 Applies had 40 at once), and its health is still asked beside them", async () => {
    const slow = await startFakeTesseractCore(meshStats(30));
    const { client, stop } = await over(slow, { concurrency: 3, healthIntervalMs: 10 });
    try {
      const healthBefore = slow.healthCalls;
      const answers = await Promise.all(Array.from({ length: 20 }, () => client.apply(inputs())));
      assert.equal(answers.length, 20);
      assert.equal(slow.maxInFlight, 3);
      assert.ok(slow.healthCalls > healthBefore, "health asked while applies queued");
      assert.equal(await client.health(), "SERVING");
    } finally {
      await stop();
    }
  });

  it("a Jacobian takes turns with the Apply calls waiting for the runtime (queued behind 40 Applies, it waited for every one)", async () => {
    const slow = await startFakeTesseractCore(meshStats(10));
    const { client, stop } = await over(slow, { concurrency: 1, evalCacheBytes: 0 });
    try {
      let appliesDone = 0;
      const applies = Array.from({ length: 40 }, () => client.apply(inputs()).then(() => appliesDone++));
      const { jacobian, stats } = await client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL });
      const appliesBefore = appliesDone;
      await Promise.all(applies);
      assertBarycenterJacobian(jacobian.barycenter["mesh.points"], "jacobian");
      // Its evaluations went in turn with the Applies: about as many Applies were answered meanwhile
      // (24 for 24 here), besides those answered before its first evaluation asked (a few, on a busy machine).
      const evaluations = Number(stats.apply_calls);
      assert.ok(appliesBefore <= evaluations + 8, `${appliesBefore} of 40 Applies answered before the Jacobian's ${evaluations} evaluations were`);
    } finally {
      await stop();
    }
  });

  it("an answer that is not UTF-8 is UNKNOWN naming the byte (it was read with replacement characters and answered OK)", async () => {
    const base = meshStats();
    const text = (decoded: Record<string, unknown>) => JSON.stringify({ ...base.apply(decoded), barycenter: [1, 2, 3] });
    const bad = await startFakeTesseractCore({ ...base, apply: (decoded) => Buffer.concat([Buffer.from(text(decoded).slice(0, -1)), Buffer.from(',"note":"A\xff\xfeB"}', "latin1")]) });
    const { client, stop } = await over(bad);
    try {
      await clientRejects(client.apply(inputs()), "UNKNOWN", /^POST \/apply on http:\/\/127\.0\.0\.1:\d+ answered text that is not UTF-8: decoding fails at byte \d+ \(0xff\)$/);
    } finally {
      await stop();
    }
  });

  it("--eval-timeout-ms starts once the evaluation has a slot: time waiting for one of --concurrency does not count (calls queued behind others timed out)", async () => {
    const slow = await startFakeTesseractCore(meshStats(100));
    // 600 ms: room for a 100 ms apply on a loaded machine (250 ms timed out there).
    const { client, stop } = await over(slow, { concurrency: 1, evalTimeoutMs: 600, evalCacheBytes: 0 });
    try {
      // Each takes 100 ms; the eighth waits 700 ms for its turn, more than the timeout, and is answered all the same.
      const answers = await Promise.all(Array.from({ length: 8 }, () => client.apply(inputs())));
      assert.equal(answers.length, 8);
      assert.equal(slow.maxInFlight, 1);
      // A call cancelled while it waits leaves the queue without reaching the runtime.
      const before = slow.applyCalls;
      const first = client.apply(inputs());
      const controller = new AbortController();
      const cancelled = client.apply(inputs(), { signal: controller.signal });
      controller.abort();
      await assert.rejects(cancelled);
      await first;
      assert.equal(slow.applyCalls - before, 1);
    } finally {
      await stop();
    }
  });

  it("two runtimes share the evaluations, several at once", async () => {
    const fakes = [await startFakeTesseractCore(meshStats(20)), await startFakeTesseractCore(meshStats(20))];
    const server = await startServer({ tesseract: fakes.map((f) => f.url).join(","), port: 0, logger: silentLogger, concurrency: 8 });
    const { client } = await reflectedClient(server.address);
    try {
      const { jacobian } = await client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL });
      assertBarycenterJacobian(jacobian.barycenter["mesh.points"], "jacobian");
      assert.equal(fakes[0].applyCalls + fakes[1].applyCalls, 24);
      for (const f of fakes) assert.ok(f.applyCalls > 0 && f.maxInFlight > 1, `calls ${f.applyCalls}, at most ${f.maxInFlight} at once`);
    } finally {
      client.close();
      await server.close(0);
      await Promise.all(fakes.map((f) => f.close()));
    }
  });

  it("a replica far slower than the other gets evaluations only as fast as it answers them (round-robin gave it half a Jacobian's, which then took as long as that half took it)", async () => {
    const fast = await startFakeTesseractCore(meshStats());
    const slow = await startFakeTesseractCore(meshStats(400));
    const server = await startServer({ tesseract: `${fast.url},${slow.url}`, port: 0, logger: silentLogger, concurrency: 2 });
    const { client } = await reflectedClient(server.address);
    try {
      // One Apply each (other inputs: none answered from the evaluation cache), so both are timed.
      for (const scale of [3, 4]) assertAll(flat((await client.apply({ ...inputs(), scale })).barycenter), (c) => barycenter()[c] + ((scale - SCALE) * POINTS.filter((_, k) => k % 3 === c).reduce((s, v) => s + v, 0)) / N, "barycenter");
      assert.deepEqual([fast.applyCalls, slow.applyCalls], [1, 1]);
      const { jacobian, stats } = await client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL });
      assertBarycenterJacobian(jacobian.barycenter["mesh.points"], "jacobian");
      assert.equal(Number(stats.apply_calls), 24);
      assert.deepEqual([fast.applyCalls, slow.applyCalls], [25, 1], "every evaluation of the Jacobian on the fast replica");
    } finally {
      client.close();
      await server.close(0);
      await Promise.all([fast.close(), slow.close()]);
    }
  });

  it("a fresh server does not split its first evaluations evenly over replicas it has not timed: an untimed replica has one at a time until it answers (a runtime ten times slower was sent half of the first burst, which the Jacobian then waited for)", async () => {
    // Runtimes that compute one apply at a time, as a tesseract-core runtime with one worker does.
    const serial = (ms: number, answered?: () => void) => {
      let queue = Promise.resolve();
      return { ...meshStats(), hold: () => (queue = queue.then(() => new Promise<void>((resolve) => setTimeout(resolve, ms))).then(answered)) };
    };
    let slowAnswered = false;
    let sentBeforeItAnswered = 0;
    const slowTesseract = serial(200, () => (slowAnswered = true));
    const slow = await startFakeTesseractCore({ ...slowTesseract, hold: () => (slowAnswered || sentBeforeItAnswered++, slowTesseract.hold()) });
    const fast = await startFakeTesseractCore(serial(20));
    const server = await startServer({ tesseract: `${slow.url},${fast.url}`, port: 0, logger: silentLogger, concurrency: 8, evalCacheBytes: 0 });
    const { client } = await reflectedClient(server.address);
    try {
      const { jacobian, stats } = await client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL });
      assertBarycenterJacobian(jacobian.barycenter["mesh.points"], "jacobian");
      assert.equal(Number(stats.apply_calls), 24);
      assert.equal(slow.applyCalls + fast.applyCalls, 24);
      // The first request to each runtime times it; until it is answered the other takes the rest.
      assert.equal(sentBeforeItAnswered, 1, "requests sent to the slow runtime before its first answer");
    } finally {
      client.close();
      await server.close(0);
      await Promise.all([fast.close(), slow.close()]);
    }
  });

  it("a runtime that is down: its evaluations go to the live one", async () => {
    const down = await closedUrl();
    const live = await startFakeTesseractCore(meshStats());
    const server = await startServer({ tesseract: `${live.url},${down}`, port: 0, logger: silentLogger });
    const { client } = await reflectedClient(server.address);
    try {
      const { jacobian } = await client.jacobian({ inputs: inputs(), inputPaths: ["layers.[0].weights"], outputPaths: ["barycenter"], options: CENTRAL });
      assertAll(flat(jacobian.barycenter["layers.[0].weights"]), () => 1, "jacobian");
      assert.equal(live.applyCalls, 4);
    } finally {
      client.close();
      await server.close(0);
      await live.close();
    }
  });

  it("sends enums as tesseract-core's strings and leaves unset optional fields out; a 500 is UNKNOWN naming the status", async () => {
    const seen: Record<string, unknown>[] = [];
    const recording = meshStats();
    const fake = await startFakeTesseractCore({
      ...recording,
      apply(decoded) {
        seen.push(decoded);
        if (decoded.label === "boom") throw new Error("solver diverged");
        return recording.apply(decoded);
      },
    });
    const runtime = await loadTesseractCore(fake.url);
    try {
      const { scale: _scale, ...noScale } = inputs();
      await runtime.apply(noScale);
      assert.equal(seen[0].method, "central");
      assert.ok(!("scale" in seen[0]), `scale sent: ${JSON.stringify(seen[0].scale)}`);
      assert.deepEqual((seen[0].mesh as { points: { dtype: string; shape: number[] } }).points.shape, [N, 3]);
      await assert.rejects(runtime.apply({ ...inputs(), label: "boom" }), (e: Error & { code?: number }) => e.code === grpc.status.UNKNOWN && /HTTP 500/.test(e.message) && e.message.includes(fake.url));
    } finally {
      await runtime.close();
      await fake.close();
    }
  });

  it("every runtime down, under --runtime-retry-ms 0: UNAVAILABLE at once naming them", async () => {
    const live = await startFakeTesseractCore(meshStats());
    const runtime = await loadTesseractCore(live.url, { runtimeRetryMs: 0 });
    await live.close();
    const inputsTree = inputs();
    await assert.rejects(runtime.apply(inputsTree), (e: Error & { code?: number }) => e.code === grpc.status.UNAVAILABLE && e.message.includes(live.url));
    await runtime.close();
  });

  it("a request past its client's deadline is answered at once; its HTTP requests are left to the runtime's answer, not closed (closing does not stop tesseract-core's work)", async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const fake = await startFakeTesseractCore({ ...meshStats(), hold: () => gate });
    const server = await startServer({ tesseract: fake.url, port: 0, logger: silentLogger, concurrency: 4 });
    const { client } = await reflectedClient(server.address);
    try {
      await clientRejects(client.jacobian({ inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL }, { deadline: 300 }), "DEADLINE_EXCEEDED");
      open();
      assert.deepEqual(flat((await client.apply(inputs())).barycenter), barycenter());
      assert.equal(fake.aborted, 0);
    } finally {
      open();
      client.close();
      await server.close(0);
      await fake.close();
    }
  });

  it("an unreachable URL at start is an error naming it", async () => {
    const down = await closedUrl();
    await assert.rejects(startServer({ tesseract: down, port: 0, logger: silentLogger }), (e: Error) => e.message.includes(down) && /openapi\.json/.test(e.message));
    await assert.rejects(loadTesseractCore("http://127.0.0.1:1,not a url"), /not an http/);
  });

  it("a server that is not tesseract-core: an error naming the URL and what was expected", async () => {
    const other = await startFakeTesseractCore({ ...meshStats(), openapi: { openapi: "3.1.0", info: { title: "x" }, components: { schemas: {} } } });
    try {
      await assert.rejects(loadTesseractCore(other.url), (e: Error) => e.message.includes(other.url) && /ApplyInputSchema/.test(e.message));
    } finally {
      await other.close();
    }
  });

  it("an /openapi.json whose models nest deeper than any request may, or whose $refs chain on and on: an error naming where, at once (3 000 models deep overflowed the stack, \"Maximum call stack size exceeded\" the whole error; a chain of 30 000 $refs took 20 s)", async () => {
    /** Mesh Stats with a field `deep` of a chain of `n` models (`next` each), or of `n` schemas that are only a $ref to the next. */
    const chained = (n: number, aliases: boolean) => {
      const openapi = structuredClone(MESH_STATS_OPENAPI);
      const schemas = openapi.components.schemas;
      schemas.Apply_InputSchema.properties.deep = { $ref: "#/components/schemas/M0" };
      for (let i = 0; i < n - 1; i++) schemas[`M${i}`] = aliases ? { $ref: `#/components/schemas/M${i + 1}` } : { type: "object", properties: { next: { $ref: `#/components/schemas/M${i + 1}` } } };
      schemas[`M${n - 1}`] = { type: "object", properties: { x: { type: "number" } } };
      return openapi;
    };
    const cases: [number, boolean, RegExp][] = [
      [3000, false, /^http:\/\/127\.0\.0\.1:\d+\/openapi\.json: deep(\.next){39}\.… \(504 characters\): models nest more than 100 deep below the inputs here, deeper than a request or answer may nest$/],
      [30_000, true, /^http:\/\/127\.0\.0\.1:\d+\/openapi\.json: deep: #\/components\/schemas\/M0 is a chain of more than 100 schemas that are only \$refs$/],
    ];
    for (const [n, aliases, message] of cases) {
      const fake = await startFakeTesseractCore({ ...meshStats(), openapi: chained(n, aliases) });
      try {
        await assert.rejects(loadTesseractCore(fake.url), (e: Error) => (assert.match(e.message, message), true));
      } finally {
        await fake.close();
      }
    }
  });

  it("models nested as deep as a request can reach are served, and one level deeper refused at start naming where: a request's JSON adds \"inputs\" above the models and an array's object, data and buffer list below (97 to 100 models deep were served, and no request could reach them)", async () => {
    /** A chain of `n` models below the inputs (`deep.next.next…`), the last holding `leaf`. */
    const chain = (n: number, leaf: Record<string, unknown>) => {
      const models: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) models[`Apply_M${i}`] = { type: "object", properties: i < n - 1 ? { next: ref(`Apply_M${i + 1}`) } : leaf, required: Object.keys(i < n - 1 ? { next: 0 } : leaf) };
      return openApiDoc({ deep: ref("Apply_M0") }, { y: arraySchema(true) }, models);
    };
    const nested = (n: number, leaf: unknown): unknown => (n === 1 ? leaf : { next: nested(n - 1, leaf) });
    const bottom = (inputs: Record<string, unknown>) => {
      let model = inputs.deep as Record<string, unknown>;
      while (model.next) model = model.next as Record<string, unknown>;
      return model;
    };
    const arrayJson = { object_type: "array", shape: [2], dtype: "float64", data: { buffer: [1, 2], encoding: "json" } };
    // The deepest each can be, called over REST (JSON lists) and gRPC; one model more is refused.
    const cases: [Record<string, unknown>, number, unknown, unknown][] = [
      [{ w: arraySchema(true) }, 96, { w: arrayJson }, { w: f64([1, 2]) }],
      [{ v: { type: "number" } }, 99, { v: 1.5 }, { v: 1.5 }],
    ];
    for (const [leaf, n, restLeaf, grpcLeaf] of cases) {
      const served = await serveSchema(chain(n, leaf), (inputs) => {
        const { w, v } = bottom(inputs) as { w?: FakeArray; v?: number };
        return { y: fakeArray(w ? w.values.map((x) => 3 * x) : [v!]) };
      });
      try {
        const rest = await served.post("apply", { inputs: { deep: nested(n, restLeaf) } });
        assert.equal(rest.status, 200, JSON.stringify(rest.json));
        assert.deepEqual(rest.json.y.data.buffer, "w" in leaf ? [3, 6] : [1.5]);
        assert.deepEqual(flat((await served.client.apply({ deep: nested(n, grpcLeaf) })).y), "w" in leaf ? [3, 6] : [1.5]);
      } finally {
        await served.stop();
      }
      const fake = await startFakeTesseractCore({ openapi: chain(n + 1, leaf), apply: () => ({}) });
      try {
        // The path, cut short at 200 characters, is deep.next.next… down to where the JSON passes 100 levels: w's buffer list, or the model itself.
        const message = /^http:\/\/127\.0\.0\.1:\d+\/openapi\.json: deep(\.next){39}\.… \(\d+ characters\): a request's JSON nests 101 deep here \("inputs", each model, list and dict, and an array's object, "data" and "buffer" list are a level each\), deeper than a request or answer may nest \(100\)$/;
        await assert.rejects(loadTesseractCore(fake.url), (e: Error) => (assert.match(e.message, message), true));
      } finally {
        await fake.close();
      }
    }
  });

  it("an /openapi.json whose models are reached along more than 100 000 paths (each of 20 models holding the next twice: 2^21) is refused at start naming that, in time linear in the limit (every path is listed, field_order and the differentiable paths: 40 such models took days, 18 with an array overflowed the stack); so is a path nesting deeper than a request may through a model written first nearer the root", async () => {
    for (const differentiable of [false, true]) {
      const openapi = structuredClone(MESH_STATS_OPENAPI);
      const schemas = openapi.components.schemas;
      schemas.Apply_InputSchema.properties.tree = { $ref: "#/components/schemas/D0" };
      const n = 20;
      for (let i = 0; i < n; i++) schemas[`D${i}`] = { type: "object", properties: { l: { $ref: `#/components/schemas/D${i + 1}` }, r: { $ref: `#/components/schemas/D${i + 1}` } } };
      schemas[`D${n}`] = { type: "object", properties: { x: differentiable ? arraySchema(true) : { type: "number" } } };
      const fake = await startFakeTesseractCore({ ...meshStats(), openapi });
      try {
        await assert.rejects(loadTesseractCore(fake.url), (e: Error) => (assert.match(e.message, /^http:\/\/127\.0\.0\.1:\d+\/openapi\.json: the inputs' models are reached along more than 100000 paths \(a model held by several fields counts at each\): every path is listed \(field_order, the differentiable paths\); hold such a model once$/), true));
      } finally {
        await fake.close();
      }
    }
    // Written first at depth 1, X's chain of 98 is within the limit there; reached again below a chain of 99 others, it is 197 deep.
    const openapi = structuredClone(MESH_STATS_OPENAPI);
    const schemas = openapi.components.schemas;
    Object.assign(schemas.Apply_InputSchema.properties, { x: { $ref: "#/components/schemas/X0" }, a: { $ref: "#/components/schemas/A0" } });
    for (let i = 0; i < 99; i++) {
      if (i < 97) schemas[`X${i}`] = { type: "object", properties: { next: { $ref: `#/components/schemas/X${i + 1}` } } };
      schemas[`A${i}`] = { type: "object", properties: { next: { $ref: `#/components/schemas/${i < 98 ? `A${i + 1}` : "X0"}` } } };
    }
    schemas.X97 = { type: "object", properties: { v: { type: "number" } } };
    const fake = await startFakeTesseractCore({ ...meshStats(), openapi });
    try {
      await assert.rejects(loadTesseractCore(fake.url), (e: Error) => (assert.match(e.message, /^http:\/\/127\.0\.0\.1:\d+\/openapi\.json: a(\.next){39}\.nex… \(496 characters\): a request's JSON nests 101 deep here \("inputs", each model, list and dict, and an array's object, "data" and "buffer" list are a level each\), deeper than a request or answer may nest \(100\)$/), true));
    } finally {
      await fake.close();
    }
  });

  it("an /openapi.json of 50 000 models whose names meet, or of 10 000 Literals on fields of one name, is read in linear time (each name was tried against all before it: minutes, then 68 s)", async () => {
    const openapi = structuredClone(MESH_STATS_OPENAPI);
    const schemas = openapi.components.schemas;
    // Keys that all read `X` as message names (punctuation goes): X, X2, … X50000.
    const marks = "!#$%&'()*+,-./:;<=>?@[]^`{|}~ ";
    for (let i = 0; i < 50_000; i++) {
      let key = "x~";
      for (let j = i; j > 0; j = Math.floor(j / marks.length)) key += marks[j % marks.length];
      schemas[key] = { type: "object", properties: {} };
    }
    // 100 groups of 100 models, each with its own Literal on a field `mode`: enums ModeValue, ModeValue2, … ModeValue10000.
    for (let i = 0; i < 100; i++) {
      schemas[`G${i}`] = { type: "object", properties: {} };
      schemas.Apply_InputSchema.properties[`g${i}`] = { $ref: `#/components/schemas/G${i}` };
      for (let j = 0; j < 100; j++) {
        schemas[`Mode${i}_${j}`] = { type: "object", properties: { mode: { enum: [`m${i}_${j}`], type: "string" } } };
        schemas[`G${i}`].properties[`m${j}`] = { $ref: `#/components/schemas/Mode${i}_${j}` };
      }
    }
    const fake = await startFakeTesseractCore({ ...meshStats(), openapi });
    try {
      const runtime = await loadTesseractCore(fake.url);
      const inputType = runtime.schema.inputs.type;
      const sub = (type: protobuf.Type, field: string) => type.fields[field].resolvedType as protobuf.Type;
      const enums = new Set<string>();
      for (let i = 0; i < 100; i++) for (let j = 0; j < 100; j++) enums.add(sub(sub(inputType, `g${i}`), `m${j}`).fields.mode.resolvedType!.name);
      assert.equal(enums.size, 10_000, "an enum each");
      assert.ok(enums.has("ModeValue") && enums.has("ModeValue10000"));
      await runtime.close();
    } finally {
      await fake.close();
    }
  });

  it("the CLI's serve exits 1 naming an unreachable URL", async () => {
    const down = await closedUrl();
    const run = promisify(execFile);
    await assert.rejects(run(process.execPath, [CLI, "serve", down, "--port", "0"]), (e: { code: number; stderr: string }) => e.code === 1 && e.stderr.includes(down));
  });
});
