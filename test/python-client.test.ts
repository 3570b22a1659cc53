/**
 * A client in another language needs nothing but the .proto files: examples/python/generate.sh makes
 * Python stubs from proto/, and examples/python/client.py calls every RPC of an in-process meshstats
 * server. The test checks what it printed against meshstats' analytic values.
 * Skipped (with the Debian packages to install) where /usr/bin/python3 lacks grpc and protobuf or no
 * protoc that understands proto3 `optional` is available.
 */
import { strict as assert } from "node:assert";
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";

const PYTHON = "/usr/bin/python3";
const EXAMPLE = path.resolve(__dirname, "..", "..", "examples", "python");
const PACKAGES = "python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc";
const N = 4;
const TOL = 1e-8;
const BARY = "statistics.barycenter";
const FIRST = "statistics.first_point_coordinates";
const POINTS = "mesh.points";

interface Dense { shape: number[]; values: number[] }
interface PathShape { path: string; shape: number[]; datatype: string }
interface Stats {
  apply_calls: number;
  wall_seconds: number;
  column_groups: number;
  sparsity_source: string;
}
interface ClientOutput {
  describe: { name: string; input_type: string; output_type: string; differentiable_inputs: string[]; differentiable_outputs: string[]; endpoints: string[] };
  apply: { type_url: string; barycenter: number[]; first_point_coordinates: number[] };
  abstract_eval: PathShape[];
  jacobian: Record<string, Record<string, Dense>>;
  jacobian_apply_calls: number;
  jvp: { result: Record<string, Dense & { datatype: string }>; stats: Stats };
  vjp: { result: Record<string, Dense & { datatype: string }>; stats: Stats };
  rows: {
    header: { inputs: PathShape[]; outputs: PathShape[]; total_rows: number; planned_evaluations: number; nonzeros: number };
    rows: number;
    row_messages: number;
    assembled: Record<string, Record<string, Dense>>;
    stats: Stats;
  };
  bad_path: { code: string; details: string };
}

/** client.py's points: p[i][c] = 10 sin(1.3 k + 0.2), k = 3i + c (the server's sampleMeshInputs too). */
const points = Array.from({ length: 3 * N }, (_, k) => 10 * Math.sin(1.3 * k + 0.2));
/** client.py's JVP tangent for mesh.points: 0.5 + 0.1 k. */
const tangent = Array.from({ length: 3 * N }, (_, k) => 0.5 + 0.1 * k);
/** client.py's VJP cotangents. */
const cotangent = { [BARY]: [1, 2, 3], [FIRST]: [-0.5, -1, -1.5] };

/** d output[c] / d points[i][c'] in the (3, N, 3) layout. */
function analyticJacobian(output: string): number[] {
  const J = new Array<number>(3 * N * 3).fill(0);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < N; i++) J[c * N * 3 + i * 3 + c] = output === BARY ? 1 / N : i === 0 ? 1 : 0;
  }
  return J;
}

function assertClose(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const diff = Math.max(0, ...actual.map((a, i) => Math.abs(a - expected[i])));
  assert.ok(diff <= tol, `${what}: max |difference| ${diff} exceeds ${tol}`);
}

function runClient(address: string, generated: string): Promise<string> {
  const args = [path.join(EXAMPLE, "client.py"), "--address", address, "--n-points", String(N), "--generated", generated, "--timeout", "60"];
  return new Promise((resolve, reject) => {
    // Asynchronous: the server answering it runs in this process's event loop.
    execFile(PYTHON, args, { timeout: 120_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) =>
      error ? reject(new Error(`client.py failed (${error.message}):\n${stderr}`)) : resolve(stdout),
    );
  });
}

/** client.py run to its end: exit status and stderr (a failure is the expected outcome here). */
function runClientFailing(address: string, generated: string, timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  const args = [path.join(EXAMPLE, "client.py"), "--address", address, "--generated", generated, "--timeout", "60"];
  return new Promise((resolve) => {
    execFile(PYTHON, args, { timeout: timeoutMs }, (error, _stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : null) : 0, stderr }));
  });
}

/** A port nothing listens on: one the system gave a listener that is closed again. */
async function closedPort(): Promise<number> {
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as { port: number };
  await new Promise<void>((resolve) => listener.close(() => resolve()));
  return port;
}

describe("Python client from the .proto files alone (examples/python)", function () {
  this.timeout(180_000);
  let server: RunningServer | undefined;
  let generated: string | undefined;
  let out: ClientOutput;

  before(async function () {
    const imports = spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { encoding: "utf8" });
    if (imports.status !== 0) {
      console.log(`      skipped: ${PYTHON} cannot import grpc and google.protobuf; install the Debian packages ${PACKAGES}`);
      this.skip();
    }
    const check = spawnSync("bash", [path.join(EXAMPLE, "generate.sh"), "--check"], { encoding: "utf8" });
    if (check.status !== 0) {
      console.log(`      skipped: ${check.stderr.split("\n")[0]} Install the Debian packages ${PACKAGES}`);
      this.skip();
    }
    // A private output directory: another test run in this checkout may be generating at the same time.
    generated = mkdtempSync(path.join(tmpdir(), "tesseract-py-"));
    const gen = spawnSync("bash", [path.join(EXAMPLE, "generate.sh")], { encoding: "utf8", env: { ...process.env, OUT: generated }, timeout: 120_000 });
    assert.equal(gen.status, 0, `generate.sh failed:\n${gen.stdout}${gen.stderr}`);

    server = await startServer({ tesseract: "meshstats", host: "127.0.0.1", port: 0, logger: silentLogger });
    const stdout = await runClient(server.address, generated);
    out = JSON.parse(stdout) as ClientOutput;
  });

  after(async () => {
    await server?.close();
    if (generated) rmSync(generated, { recursive: true, force: true });
  });

  it("Describe and AbstractEval", () => {
    assert.equal(out.describe.name, "meshstats");
    assert.equal(out.describe.input_type, "tesseract.examples.meshstats.v1.Inputs");
    assert.equal(out.describe.output_type, "tesseract.examples.meshstats.v1.Outputs");
    assert.deepEqual(out.describe.differentiable_inputs, [POINTS]);
    assert.deepEqual([...out.describe.differentiable_outputs].sort(), [BARY, FIRST].sort());
    for (const rpc of ["Apply", "Jacobian", "JacobianRows", "JacobianVectorProduct", "VectorJacobianProduct", "AbstractEval", "Describe"]) {
      assert.ok(out.describe.endpoints.includes(rpc), rpc);
    }
    const shapes = Object.fromEntries(out.abstract_eval.map((p) => [p.path, p]));
    assert.deepEqual(shapes[BARY], { path: BARY, shape: [3], datatype: "DATA_TYPE_FP64" });
    assert.deepEqual(shapes[FIRST], { path: FIRST, shape: [3], datatype: "DATA_TYPE_FP64" });
  });

  it("Apply: the first point and the mean of the points sent", () => {
    assert.equal(out.apply.type_url, "type.googleapis.com/tesseract.examples.meshstats.v1.Outputs");
    const mean = [0, 1, 2].map((c) => points.filter((_, k) => k % 3 === c).reduce((a, b) => a + b, 0) / N);
    assertClose(out.apply.barycenter, mean, 1e-12, "barycenter");
    assertClose(out.apply.first_point_coordinates, points.slice(0, 3), 0, "first point");
  });

  // meshstats declares its structure: N column groups, so 2N evaluations instead of 2n = 6N.
  it("Jacobian: analytic values within 1e-8, 2N evaluations (meshstats' column groups)", () => {
    for (const output of [BARY, FIRST]) {
      const entry = out.jacobian[output]?.[POINTS];
      assert.ok(entry, `missing d ${output} / d ${POINTS}`);
      assert.deepEqual(entry.shape, [3, N, 3]);
      assertClose(entry.values, analyticJacobian(output), TOL, `d ${output} / d ${POINTS}`);
    }
    assert.equal(out.jacobian_apply_calls, 2 * N);
  });

  it("JacobianVectorProduct and VectorJacobianProduct: analytic values", () => {
    const jvpBary = [0, 1, 2].map((c) => tangent.filter((_, k) => k % 3 === c).reduce((a, b) => a + b, 0) / N);
    assert.deepEqual(out.jvp.result[BARY].shape, [3]);
    assertClose(out.jvp.result[BARY].values, jvpBary, TOL, "JVP barycenter");
    assertClose(out.jvp.result[FIRST].values, tangent.slice(0, 3), TOL, "JVP first point");
    assert.equal(out.jvp.stats.apply_calls, 2);

    const vjp = Array.from({ length: 3 * N }, (_, k) => cotangent[BARY][k % 3] / N + (k < 3 ? cotangent[FIRST][k] : 0));
    assert.deepEqual(out.vjp.result[POINTS].shape, [N, 3]);
    assert.equal(out.vjp.result[POINTS].datatype, "DATA_TYPE_FP64");
    assertClose(out.vjp.result[POINTS].values, vjp, TOL, "VJP mesh.points");
    assert.equal(out.vjp.stats.apply_calls, 2 * N);
    assert.deepEqual([out.vjp.stats.column_groups, out.vjp.stats.sparsity_source], [N, "tesseract"]);
  });

  it("JacobianRows: 3N sparse rows that assemble into the unary Jacobian", () => {
    const { header, rows, assembled, stats } = out.rows;
    assert.equal(header.total_rows, 3 * N);
    assert.equal(header.nonzeros, 3 * N + 3, "d barycenter[c] / d points[i, c] and d first[c] / d points[0, c]");
    assert.deepEqual(header.inputs, [{ path: POINTS, shape: [N, 3], datatype: "DATA_TYPE_FP64" }]);
    assert.deepEqual(header.outputs.map((o) => o.path).sort(), [BARY, FIRST].sort());
    assert.equal(rows, 3 * N);
    assert.equal(stats.apply_calls, 2 * N);
    assert.deepEqual(assembled, out.jacobian);
  });

  // With --timeout 60, a client that waited for the channel would be killed by execFile's 30 s first.
  it("no server at the address: client.py exits 1 at once, naming the address and how to start one", async () => {
    const port = await closedPort();
    const { code, stderr } = await runClientFailing(`127.0.0.1:${port}`, generated!, 30_000);
    assert.equal(code, 1, stderr);
    assert.match(stderr, new RegExp(`^client\\.py: UNAVAILABLE: no server at 127\\.0\\.0\\.1:${port} \\(.*\\) - start one with \`npx tesseract-grpc serve meshstats\``));
  });

  it("an address with a scheme: the message says to write HOST:PORT", async () => {
    const { code, stderr } = await runClientFailing(`http://${server!.address}`, generated!, 30_000);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /write --address as HOST:PORT, without a scheme/);
  });

  it("a server of another Tesseract: client.py names what it serves before calling it", async () => {
    const other = await startServer({ tesseract: "vectoradd", host: "127.0.0.1", port: 0, logger: silentLogger });
    try {
      const { code, stderr } = await runClientFailing(other.address, generated!, 30_000);
      assert.equal(code, 1, stderr);
      assert.equal(stderr.trim(), `client.py: the server at ${other.address} serves vectoradd (tesseract.examples.vectoradd.v1.Inputs -> tesseract.examples.vectoradd.v1.Outputs), but this client calls meshstats: is the address right?`);
    } finally {
      await other.close();
    }
  });

  it("a bad path is INVALID_ARGUMENT naming it and the differentiable paths", () => {
    assert.equal(out.bad_path.code, "INVALID_ARGUMENT");
    assert.match(out.bad_path.details, /mesh\.pointz/);
    assert.match(out.bad_path.details, /mesh\.points(?!z)/);
  });
});
