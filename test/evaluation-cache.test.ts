/**
 * Reuse of f(x) (server/eval/evaluation-cache.ts): a request that needs the outputs at its
 * unperturbed inputs takes them from an earlier Apply or gradient request on the same inputs —
 * exact evaluation counts, the same values as without the cache, never a value for other inputs;
 * the authoring API's `deterministic: false` and the server's `--eval-cache-mb 0` turn it off; the
 * cache's bounds; the inputs' key.
 */
import { strict as assert } from "node:assert";
import ndarray from "ndarray";
import { Algorithm, SparsityMode, TesseractClient } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { startServer, type RunningServer } from "../index";
import { EvaluationCache } from "../server/eval/evaluation-cache";
import { inputsKey } from "../server/eval/input-key";
import { silentLogger } from "../server/log";
import { TesseractRuntime } from "../server/runtime";
import meshstats from "../server/tesseracts/meshstats";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import { clientRejects, counted, f64, meshInputs, meshJacobian, serveProcess } from "./helpers";

const FIRST = "statistics.first_point_coordinates";
const BARY = "statistics.barycenter";
// Dense: these tests count f(x) against the rule's n + 1 (column grouping is tested in sparsity.test).
const FORWARD = { algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE };

describe("evaluation cache: f(x) reused across requests", function () {
  this.timeout(60_000);
  const servers: RunningServer[] = [];
  const clients: TesseractClient<MeshInputs, MeshOutputs>[] = [];
  const serve = async (options: Partial<Parameters<typeof startServer>[0]> = {}) => {
    const server = await startServer({ tesseract: "meshstats", port: 0, workers: 0, logger: silentLogger, warmUpMs: 0, ...options });
    const client = new TesseractClient<MeshInputs, MeshOutputs>(server.address, { inputs: MeshInputs, outputs: MeshOutputs });
    servers.push(server);
    clients.push(client);
    return client;
  };
  after(async () => {
    clients.forEach((c) => c.close());
    await Promise.all(servers.map((s) => s.close(0)));
  });

  const N = 7;
  const n = 3 * N;
  const forward = (inputs: ReturnType<typeof meshInputs>, outputPaths = [FIRST, BARY]) => ({ inputs, inputPaths: ["mesh.points"], outputPaths, options: FORWARD });

  it("Apply then a forward Jacobian on the same inputs: n evaluations instead of n + 1, the same values", async () => {
    const client = await serve();
    const uncached = await serve({ evalCacheBytes: 0 });
    const inputs = meshInputs(N);
    const reference = await uncached.jacobian(forward(inputs));
    assert.equal(reference.stats.apply_calls, n + 1);

    await client.apply(inputs);
    const reused = await client.jacobian(forward(inputs));
    assert.equal(reused.stats.apply_calls, n);
    assert.deepEqual(reused.jacobian, reference.jacobian);
    // Against the analytic Jacobian (forward differences: O(h) off, here h = 1e-6 on a linear function).
    const bary = reused.jacobian[BARY]["mesh.points"].data as Float64Array;
    meshJacobian(N, "barycenter").forEach((v, i) => assert.ok(Math.abs(bary[i] - v) < 1e-8, `entry ${i}: ${bary[i]} vs ${v}`));

    // A second forward Jacobian reuses the first one's f(x); so does one of fewer outputs (picked
    // out of the Apply's outputs).
    assert.equal((await client.jacobian(forward(inputs))).stats.apply_calls, n);
    assert.equal((await client.jacobian(forward(inputs, [BARY]))).stats.apply_calls, n);
  });

  it("never reuses f(x) of other inputs: one element one ulp away, another map entry, another non-differentiable field", async () => {
    const client = await serve();
    const uncached = await serve({ evalCacheBytes: 0 });
    const inputs = meshInputs(N);
    await client.apply(inputs);
    const nudged = meshInputs(N);
    const points = nudged.mesh.points.data as Float64Array;
    points[5] = points[5] + Math.abs(points[5]) * 2 ** -52;
    const withData = meshInputs(N);
    withData.mesh.point_data = { t: ndarray(new Float64Array(N), [N, 1]) };
    const otherAlgorithm = meshInputs(N, Algorithm.ALGORITHM_FORWARD);
    for (const other of [nudged, withData, otherAlgorithm]) {
      const { stats, jacobian } = await client.jacobian(forward(other));
      assert.equal(stats.apply_calls, n + 1);
      assert.deepEqual(jacobian, (await uncached.jacobian(forward(other))).jacobian);
    }
  });

  it("a NaN input is refused as without the cache after an Apply on it (the Apply's NaN output was refused first, naming the output)", async () => {
    const client = await serve();
    const inputs = meshInputs(N);
    inputs.mesh.points.data[4] = NaN;
    await client.apply(inputs);
    for (const outputPaths of [[BARY], [FIRST, BARY]]) {
      await clientRejects(client.jacobian(forward(inputs, outputPaths)), "INVALID_ARGUMENT", /^mesh\.points\[1, 1\] is NaN: finite differences need finite inputs$/);
    }
  });

  it("CheckGradients after an Apply does not evaluate f(x) again; a forward FD JVP reuses it too", async () => {
    const { runtime, counter } = counted("vectoradd");
    const inputs = { a: f64([1, 2, 3]), b: f64([0.5, -1, 2]), s: f64([2], []), normalize: true };
    const any = runtime.schema.inputs.encodeAny(inputs);
    await runtime.applyMessage(any);
    assert.equal(counter.calls, 1);
    const check = await runtime.checkGradients({ inputs: runtime.decodeInputs(any), endpoints: ["jvp"], options: FORWARD });
    assert.equal(check.passed, true, JSON.stringify(check.checks));
    // Three input paths, one forward FD JVP each: one evaluation apiece, f(x) from the Apply.
    assert.equal(check.apply_calls, 3);
    assert.equal(counter.calls, 1 + 3);
  });

  it("JacobianRows plans n evaluations when f(x) is cached, and makes exactly those", async () => {
    const { runtime } = counted("meshstats");
    const inputs = meshInputs(N);
    const before = runtime.jacobianRows(forward(inputs));
    await before.outputs(); // the plan is made with the outputs
    assert.equal(before.plannedEvaluations(), n + 1);
    await runtime.applyMessage(runtime.schema.inputs.encodeAny(inputs));
    const stream = runtime.jacobianRows(forward(inputs));
    await stream.outputs();
    assert.equal(stream.plannedEvaluations(), n);
    for await (const row of stream.rows) void row;
    assert.equal(stream.stats().apply_calls, n);
  });

  it("one-sided stencils near a declared bound take f(x) from an earlier request", async () => {
    const { runtime, counter } = counted("heat");
    // κ = 1e-7 with steps of 1e-6: the central step would leave κ > 0, so the stencil is one-sided
    // through f(x), f(x + h) and f(x + 2h). dt given (r = 0.1), so that the output depends on κ:
    // with the default dt it does not, heat declares that block zero, and no stencil is taken.
    const inputs = { ...sampleHeatInputs(8, 3), diffusivity: f64([1e-7], []), dt: 1e6 };
    const request = { inputs, inputPaths: ["diffusivity"], outputPaths: ["final_temperature"] };
    const first = await runtime.jacobian(request);
    assert.equal(first.stats.apply_calls, 3);
    const second = await runtime.jacobian(request);
    assert.equal(second.stats.apply_calls, 2);
    assert.deepEqual(second.entries, first.entries);
    assert.equal(counter.calls, 5);
  });

  it("deterministic: false, and a server without a cache, evaluate f(x) every time", async () => {
    const random = new TesseractRuntime({ ...meshstats, deterministic: false }, __dirname);
    const notCached = await serve({ tesseract: random });
    const off = await serve({ evalCacheBytes: 0 });
    for (const client of [notCached, off]) {
      const inputs = meshInputs(N);
      await client.apply(inputs);
      assert.equal((await client.jacobian(forward(inputs))).stats.apply_calls, n + 1);
      assert.equal((await client.jacobian(forward(inputs))).stats.apply_calls, n + 1);
    }
    assert.equal(random.evaluationCache, undefined);
  });

  it("serve --eval-cache-mb 0 turns it off; by default Apply then forward is n evaluations", async () => {
    const cases: [string[], number][] = [
      [[], n],
      [["--eval-cache-mb", "0"], n + 1],
    ];
    for (const [args, expected] of cases) {
      const server = await serveProcess(["meshstats", "--port", "0", "--warm-up-ms", "0", ...args]);
      const client = new TesseractClient<MeshInputs, MeshOutputs>(server.address, { inputs: MeshInputs, outputs: MeshOutputs });
      try {
        await client.apply(meshInputs(N));
        assert.equal((await client.jacobian(forward(meshInputs(N)))).stats.apply_calls, expected, args.join(" "));
      } finally {
        client.close();
        assert.equal(await server.stop(), 0);
      }
    }
  });
});

describe("evaluation cache: bounds and keys", () => {
  const outputs = [{ path: "y", shape: [4], datatype: 11 }];
  const values = (v: number) => ({ outputs, values: [new Float64Array(4).fill(v)] });
  const unused = () => assert.fail("no Apply entry expected");

  it("keeps the most recently used entries within its bytes and entries, and copies values both ways", () => {
    const bytes = new EvaluationCache(2 * (256 + 32), 100);
    bytes.setSelected("a", ["y"], values(1));
    bytes.setSelected("b", ["y"], values(2));
    bytes.getSelected("a", ["y"], unused); // a is now the most recent
    bytes.setSelected("c", ["y"], values(3));
    assert.equal(bytes.getSelected("b", ["y"], () => undefined as never), undefined, "b was the least recently used");
    assert.deepEqual([...bytes.getSelected("a", ["y"], unused)!.values[0]], [1, 1, 1, 1]);
    const entries = new EvaluationCache(1 << 20, 2);
    for (const key of ["a", "b", "c"]) entries.setSelected(key, ["y"], values(1));
    assert.equal(entries.size, 2);

    const kept = values(5);
    bytes.setSelected("k", ["y"], kept);
    kept.values[0][0] = -1;
    const got = bytes.getSelected("k", ["y"], unused)!;
    got.values[0][1] = -2;
    assert.deepEqual([...bytes.getSelected("k", ["y"], unused)!.values[0]], [5, 5, 5, 5]);
    assert.equal(bytes.getSelected("k", ["z"], () => undefined as never), undefined, "other output paths are another entry");
  });

  it("outputs of an evaluation begun before a clear (a runtime replaced meanwhile) are not stored, nor any while the runtime is not witnessed", () => {
    let witnessed = true;
    const cache = new EvaluationCache(1 << 20, 100, () => witnessed);
    const since = cache.now;
    cache.clear(); // the runtime was replaced while the evaluation ran
    cache.setSelected("a", ["y"], values(1), since);
    assert.equal(cache.size, 0, "begun before the clear: the old runtime's");
    cache.setSelected("a", ["y"], values(2), cache.now);
    assert.deepEqual([...cache.getSelected("a", ["y"], unused)!.values[0]], [2, 2, 2, 2]);
    witnessed = false;
    cache.setSelected("b", ["y"], values(3), cache.now);
    assert.equal(cache.getSelected("b", ["y"], () => undefined as never), undefined, "nothing vouches for the runtime that answered");
  });

  it("keys inputs by everything apply can read, in order, with the Tesseract's identity", () => {
    const tree = (points: Float64Array | Float32Array, extra: Record<string, unknown> = {}) => ({ mesh: { points: ndarray(points, [2]), n: 2 }, ...extra });
    const key = (t: unknown, id = "t 1") => inputsKey(id, t);
    const base = key(tree(Float64Array.of(1, 2)));
    assert.equal(key(tree(Float64Array.of(1, 2))), base, "equal content, equal key");
    assert.notEqual(key(tree(Float64Array.of(1, 2)), "t 2"), base, "another Tesseract");
    assert.notEqual(key(tree(Float32Array.of(1, 2))), base, "another datatype");
    assert.notEqual(key(tree(Float64Array.of(1, 2 + 2 ** -51))), base, "one ulp");
    assert.notEqual(key({ a: 0 }), key({ a: -0 }), "-0 is not 0");
    assert.notEqual(key({ a: 1, b: 2 }), key({ b: 2, a: 1 }), "key order (apply may iterate it)");
    assert.notEqual(key({ a: undefined }), key({ a: null }));
    assert.notEqual(key({ a: "1" }), key({ a: 1 }));
    assert.notEqual(key({ a: [1, 2] }), key({ a: [[1, 2]] }));
    assert.notEqual(key({ m: ndarray(Float64Array.of(1, 2, 3, 4), [2, 2]) }), key({ m: ndarray(Float64Array.of(1, 2, 3, 4), [2, 2], [1, 2]) }), "strides");
    assert.equal(key({ a: new Date() }), undefined, "a class instance: no key, never cached");
    assert.equal(key({ f: () => 1 }), undefined);
  });
});
