/**
 * A Tesseract that misbehaves at run time (test/fixtures/misbehaving/misbehaving.js), served inline,
 * in worker threads and under `auto`, over gRPC and REST: what it throws, returns or leaves behind
 * fails only its own request, with a status that names the evaluation, and the server goes on
 * answering right numbers to other callers. (faults.test.ts has the hangs, crashes and dying
 * threads; pool.test.ts an apply that writes to its inputs.)
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { FiniteDifferenceOptions, TesseractClient as GeneratedClient, type JacobianResponse } from "../generated/tesseract/v1/tesseract";
import { Algorithm } from "../generated/tesseract/v1/algorithm";
import { loadTesseract, startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { call, fails, serveProcess } from "./helpers";
import { MAX_DETAILS_BYTES } from "../common/errors";

const MISBEHAVING = path.join(__dirname, "../../test/fixtures/misbehaving/misbehaving.js");
const TYPE_URL = "type.googleapis.com/tesseract.testing.polynomial.v1.Inputs";
const fp64 = (values: number[], shape = [values.length]) => ({ datatype: 11, shape, data: Buffer.from(Float64Array.from(values).buffer) });
const values = (t: { data?: Uint8Array } | undefined) => Array.from(new Float64Array(new Uint8Array(t!.data!).buffer));
/** tesseract-core's array object, for the REST API. */
const array = (buffer: number[], shape: number[]) => ({ shape, dtype: "float64", data: { buffer, encoding: "json" } });
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The fixture's inputs as an Any: apply misbehaves by `mode` where y > 0.5. */
function inputs(server: { runtime: { schema: RunningServer["runtime"]["schema"] } }, x: number[], y: number, mode: string) {
  return { type_url: TYPE_URL, value: Buffer.from(server.runtime.schema.inputs.type.encode({ x: fp64(x), y: fp64([y], []), mode }).finish()) };
}


/** d f_i / d x_i = 3 x_i^2 + y cos(x_i) at y = 0.3, from a client of its own: the answer a healthy server gives. */
async function assertRightJacobian(client: GeneratedClient, server: Parameters<typeof inputs>[0]): Promise<void> {
  const x = [0.7, 1.3];
  const response = await call<JacobianResponse>((cb) => client.jacobian({ inputs: inputs(server, x, 0.3, ""), jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] }, cb));
  const J = values(response.entries[0].value);
  const expected = [3 * 0.49 + 0.3 * Math.cos(0.7), 0, 0, 3 * 1.69 + 0.3 * Math.cos(1.3)];
  J.forEach((v, k) => assert.ok(Math.abs(v - expected[k]) < 1e-6, `J[${k}] = ${v}, expected ${expected[k]}`));
}

const EVALUATORS = [
  ["inline", { workers: 0 }],
  ["worker threads", { workers: 2 }],
  ['"auto"', { workers: "auto" as const }],
] as const;

for (const [name, evaluation] of EVALUATORS) {
  describe(`a misbehaving Tesseract, ${name}`, function () {
    this.timeout(60_000);
    let server: RunningServer;
    let client: GeneratedClient;
    let other: GeneratedClient;
    before(async () => {
      server = await startServer({ tesseract: MISBEHAVING, port: 0, httpPort: 0, logger: silentLogger, warmUpMs: 0, evalCacheBytes: 0, ...evaluation });
      client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
      other = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    });
    after(async () => {
      client.close();
      other.close();
      await server.close(0);
    });

    /** Apply, central and forward Jacobians, CheckGradients and REST's apply, each failing as `failure` says, while another client is answered right. */
    async function eachFails(mode: string, code: grpc.status, failure: string): Promise<void> {
      const at = inputs(server, [0.4, 1.1, 2.5], 0.9, mode);
      const forward = FiniteDifferenceOptions.fromPartial({ algorithm: Algorithm.ALGORITHM_FORWARD });
      const meanwhile = assertRightJacobian(other, server);
      await fails(call((cb) => client.apply({ inputs: at }, cb)), code, new RegExp(`^apply failed: ${escape(failure)}$`), `${mode}: Apply`);
      await fails(call((cb) => client.jacobian({ inputs: at, jac_inputs: ["y"], jac_outputs: ["f"], sparsity: [] }, cb)), code, new RegExp(`^evaluation at y [+-] h failed: ${escape(failure)}$`), `${mode}: Jacobian`);
      await fails(call((cb) => client.jacobian({ inputs: at, jac_inputs: ["y"], jac_outputs: ["f"], options: forward, sparsity: [] }, cb)), code, new RegExp(`^evaluation at the unperturbed inputs failed: ${escape(failure)}$`), `${mode}: forward Jacobian`);
      await fails(call((cb) => client.checkGradients({ inputs: at, input_paths: ["x"], output_paths: ["f"], endpoints: [], rtol: 0, atol: 0, max_evals: 0, seed: 1 }, cb)), code, new RegExp(`^apply failed: ${escape(failure)}$`), `${mode}: CheckGradients`);
      const rest = await fetch(`http://127.0.0.1:${server.httpPort}/apply`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ inputs: { x: array([0.4, 1.1, 2.5], [3]), y: array([0.9], []), mode } }),
      });
      assert.equal(rest.status, 500, `${mode}: REST apply`);
      assert.equal(await rest.text(), `apply failed: ${failure}`, `${mode}: REST apply`);
      await meanwhile;
    }

    it("throws values that are no Error, whose message cannot be read: UNKNOWN naming the evaluation and the value (a message getter or a Proxy that throws was INTERNAL, or a worker thread said to have died)", async () => {
      await eachFails("throw-null", grpc.status.UNKNOWN, "null");
      await eachFails("throw-symbol", grpc.status.UNKNOWN, "Symbol(a symbol)");
      await eachFails("throw-message-getter", grpc.status.UNKNOWN, "{ message: [Getter] } (reading its message threw: message getter throws)");
      await eachFails("throw-error-getter", grpc.status.UNKNOWN, "an Error (reading its message threw: Error.message getter throws)");
      await eachFails("throw-proxy", grpc.status.UNKNOWN, "{} (reading its message threw: hostile get)");
      await eachFails("throw-message-object", grpc.status.UNKNOWN, "{ nested: true }");
      await assertRightJacobian(client, server);
    });

    it("throws an Error of a megabyte's message: Apply's status and REST's 500 quote it cut to the status bound (REST answered the whole megabyte)", async () => {
      const at = inputs(server, [0.4, 1.1, 2.5], 0.9, "throw-long");
      const bounded = /^apply failed: the solver said: x+… \(message cut\)$/;
      await fails(call((cb) => client.apply({ inputs: at }, cb)), grpc.status.UNKNOWN, bounded, "Apply");
      const rest = await fetch(`http://127.0.0.1:${server.httpPort}/apply`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ inputs: { x: array([0.4, 1.1, 2.5], [3]), y: array([0.9], []), mode: "throw-long" } }),
      });
      assert.equal(rest.status, 500);
      const text = await rest.text();
      assert.match(text, bounded);
      assert.ok(Buffer.byteLength(text) <= MAX_DETAILS_BYTES, `${Buffer.byteLength(text)} bytes`);
    });

    it("returns an output whose getter throws: UNKNOWN 'apply failed' naming its error, from Apply, CheckGradients and REST too (they were INTERNAL with no details)", async () => {
      await eachFails("getter-throws-data", grpc.status.UNKNOWN, "the data getter throws");
      await eachFails("getter-throws", grpc.status.UNKNOWN, "the f getter throws");
    });

    it("returns an output whose shape is no list of whole numbers ([NaN], [1.5], [-1]): INTERNAL naming the output and its shape, and later Jacobians are answered (with workers, [NaN] made the pool's batch size NaN and every later Jacobian waited for good; [1.5] was 'internal error', [-1] V8's 'Invalid typed array length')", async () => {
      for (const [mode, shape] of [["shape-nan", "NaN"], ["shape-fraction", "1.5"], ["shape-negative", "-1"]]) {
        const at = inputs(server, [0.4, 1.1, 2.5], 0.9, mode);
        const failure = `apply returned output f that has shape [${shape}]: expected whole numbers ≥ 0`;
        await fails(call((cb) => client.jacobian({ inputs: at, jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] }, cb)), grpc.status.INTERNAL, new RegExp(`^evaluation at (x\\[\\d\\]|x\\[0\\] and 2 more \\(a column group\\)) [+-] h failed: ${escape(failure)}$`), `${mode}: Jacobian`);
        await fails(call((cb) => client.jacobian({ inputs: at, jac_inputs: ["y"], jac_outputs: ["f"], options: FiniteDifferenceOptions.fromPartial({ algorithm: Algorithm.ALGORITHM_FORWARD }), sparsity: [] }, cb)), grpc.status.INTERNAL, new RegExp(`^evaluation at the unperturbed inputs failed: ${escape(failure)}$`), `${mode}: forward Jacobian`);
      }
      // A deadline, so that a pool left waiting fails this test rather than hanging it.
      const deadline = Date.now() + 30_000;
      const x = [0.7, 1.3];
      const response = await call<JacobianResponse>((cb) => other.jacobian({ inputs: inputs(server, x, 0.3, ""), jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] }, new grpc.Metadata(), { deadline }, cb));
      const expected = [3 * 0.49 + 0.3 * Math.cos(0.7), 0, 0, 3 * 1.69 + 0.3 * Math.cos(1.3)];
      values(response.entries[0].value).forEach((v, k) => assert.ok(Math.abs(v - expected[k]) < 1e-6, `J[${k}] = ${v}, expected ${expected[k]}`));
    });

    it("returns a Proxy whose every trap throws: UNKNOWN naming the evaluation, never that apply wrote to its inputs (it left them perturbed)", async () => {
      const at = inputs(server, [0.4, 1.1, 2.5], 0.9, "proxy-hostile");
      for (const jac_inputs of [["x"], ["y"], ["x", "y"]]) {
        await fails(
          call((cb) => client.jacobian({ inputs: at, jac_inputs, jac_outputs: ["f"], sparsity: [] }, cb)),
          grpc.status.UNKNOWN,
          /^evaluation at (x\[\d\]|y|x\[0\] and 2 more \(a column group\)) [+-] h failed: hostile getPrototypeOf$/,
          `Jacobian by ${jac_inputs}`,
        );
      }
      await assertRightJacobian(client, server);
    });
  });
}

/**
 * The misbehaving Tesseract served by a process of its own with `flags` (a loop it holds is that
 * process's, not this one's), called by `body` with a client of it and a local copy for the expected values.
 */
async function withServerProcess(flags: string[], body: (client: InstanceType<typeof GeneratedClient>, local: { runtime: ReturnType<typeof loadTesseract> }) => Promise<void>): Promise<void> {
  const serve = await serveProcess([MISBEHAVING, "--port", "0", "--warm-up-ms", "0", ...flags]);
  const client = new GeneratedClient(serve.address, grpc.credentials.createInsecure());
  try {
    await body(client, { runtime: loadTesseract(MISBEHAVING) });
  } finally {
    client.close();
    serve.child.kill("SIGKILL");
  }
}

describe("a misbehaving Tesseract's apply that never returns, in worker threads", function () {
  this.timeout(60_000);

  it("CheckGradients' apply at the inputs runs in a worker too: --eval-timeout-ms stops it, DEADLINE_EXCEEDED, and the server goes on (it ran in the event loop, which it held for good)", async () => {
    await withServerProcess(["--workers", "2", "--eval-timeout-ms", "300"], async (client, local) => {
      const check = { inputs: inputs(local, [0.4, 1.1], 0.9, "loop"), input_paths: ["x"], output_paths: ["f"], endpoints: [], rtol: 0, atol: 0, max_evals: 0, seed: 1 };
      const deadline = () => ({ deadline: Date.now() + 20_000 });
      await fails(
        call((cb) => client.checkGradients(check, new grpc.Metadata(), deadline(), cb)),
        grpc.status.DEADLINE_EXCEEDED,
        /^apply did not return within the per-evaluation timeout of 300 ms \(--eval-timeout-ms\); its worker thread was stopped and replaced$/,
        "CheckGradients",
      );
      await assertRightJacobian(client, local);
      const passed = await call<{ passed: boolean }>((cb) => client.checkGradients({ ...check, inputs: inputs(local, [0.4, 1.1], 0.3, "") }, new grpc.Metadata(), deadline(), cb));
      assert.equal(passed.passed, true);
    });
  });
});

describe("a misbehaving Tesseract's apply that returns a thenable settling with itself", function () {
  this.timeout(60_000);

  it("is apply's failure, UNKNOWN naming the evaluation, and the server goes on (the thenable was adopted for ever, a microtask at a time: the server answered no one, --eval-timeout-ms included)", async () => {
    const deadline = () => ({ deadline: Date.now() + 10_000 });
    const failure = escape("apply returned a thenable that settled with another thenable (itself?), which would be awaited for ever: return the outputs, or a Promise of them");
    await withServerProcess(["--workers", "0", "--eval-timeout-ms", "1000"], async (client, local) => {
      const at = inputs(local, [0.4, 1.1], 0.9, "then-self");
      await fails(call((cb) => client.apply({ inputs: at }, new grpc.Metadata(), deadline(), cb)), grpc.status.UNKNOWN, new RegExp(`^apply failed: ${failure}$`), "Apply");
      const jacobian = { inputs: at, jac_inputs: ["y"], jac_outputs: ["f"], sparsity: [] };
      await fails(call((cb) => client.jacobian(jacobian, new grpc.Metadata(), deadline(), cb)), grpc.status.UNKNOWN, new RegExp(`^evaluation at y [+-] h failed: ${failure}$`), "Jacobian");
      await assertRightJacobian(client, local);
    });
  });
});
