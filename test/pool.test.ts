/**
 * Worker-thread evaluation: results bit-identical to inline evaluation for every rule, exact
 * evaluation counts, errors from apply named as inline, cancellation, and the "auto" switch.
 */
import { strict as assert } from "node:assert";
import { getEventListeners } from "node:events";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import * as path from "node:path";
import ndarray from "ndarray";
import { Code } from "../index";
import { loadTesseract } from "../index";
import type { TesseractRuntime } from "../server/runtime";
import { InputGuard } from "../server/eval/input-guard";
import { Algorithm, SparsityMode } from "../index";
import { sampleHeatInputs, sampleMeshInputs } from "../server/tesseracts/samples";
import { PoolCorrection, poolSavingMs } from "../server/eval/auto";
import { defaultAutoThreads, type EvaluationSettings } from "../server/eval/backends";
import type { WorkerPool } from "../server/eval/pool";
import { MAX_IN_FLIGHT_BYTES } from "../server/eval/pool-evaluator";
import { f64, rejects } from "./helpers";

/** The runtime's worker pool (private to its evaluation backends), to count the tasks it ran. */
const workerPool = (runtime: TesseractRuntime) => (runtime as unknown as { backends: { workerPool: WorkerPool } }).backends.workerPool;

const OUTPUTS = ["statistics.first_point_coordinates", "statistics.barycenter"];

describe("worker-thread evaluation", function () {
  this.timeout(60000);
  const runtimes: TesseractRuntime[] = [];
  const load = async (name: string, workers: number | "auto", settings: EvaluationSettings = {}) => {
    const runtime = loadTesseract(name);
    await runtime.useEvaluation({ workers, autoThreads: 2, ...settings });
    runtimes.push(runtime);
    return runtime;
  };
  after(() => Promise.all(runtimes.map((r) => r.close())));

  it("heat: the same Jacobian as inline, in exactly 2n evaluations", async () => {
    const inputs = sampleHeatInputs(40, 50);
    const request = { inputs, inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] };
    const inline = await (await load("heat", 0)).jacobian(request);
    const pooled = await (await load("heat", 2)).jacobian(request);
    assert.equal(pooled.stats.apply_calls, 80);
    assert.deepEqual(pooled.entries, inline.entries);
  });

  it("meshstats: every rule, JVP and VJP identical to inline", async () => {
    const inline = await load("meshstats", 0);
    const pooled = await load("meshstats", 3);
    const inputs = sampleMeshInputs(20);
    for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_STOCHASTIC]) {
      const request = { inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm, seed: 11, num_samples: 12 } };
      const [a, b] = [await inline.jacobian(request), await pooled.jacobian(request)];
      assert.deepEqual(b.entries, a.entries, `algorithm ${algorithm}`);
      assert.equal(b.stats.apply_calls, a.stats.apply_calls);
    }
    const tangent = { "mesh.points": ndarray(new Float64Array(60).map((_, i) => Math.cos(i)), [20, 3]) };
    const jvp = { inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, tangent };
    assert.deepEqual((await pooled.jvp(jvp)).result, (await inline.jvp(jvp)).result);
    const vjp = { inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, cotangent: { [OUTPUTS[0]]: f64([1, 2, 3]), [OUTPUTS[1]]: f64([3, 2, 1]) } };
    const [a, b] = [await inline.vjp(vjp), await pooled.vjp(vjp)];
    assert.deepEqual(b.result, a.result);
    assert.equal(b.stats.apply_calls, 40, "grouped by meshstats' declared structure: 2 × 20 groups");
  });

  it("cheap applies travel in batches: a few tasks for thousands of evaluations, the same Jacobian", async () => {
    const inline = await load("meshstats", 0);
    const pooled = await load("meshstats", 2);
    const request = { inputs: sampleMeshInputs(500), inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
    const before = workerPool(pooled)?.piscina.completed ?? 0;
    const [a, b] = [await inline.jacobian(request), await pooled.jacobian(request)];
    assert.deepEqual(b.entries, a.entries);
    assert.equal(b.stats.apply_calls, 3000);
    const tasks = workerPool(pooled).piscina.completed - before;
    assert.ok(tasks < 3000 / 8, `${tasks} tasks for 3000 evaluations`);
  });

  it("a failed evaluation in a batch fails only itself: adaptive steps into a NaN region, as inline", async () => {
    const module = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
    const inline = await load(module, 0);
    const pooled = await load(module, 2);
    // "nan" mode: f[0] is NaN where x[0] > 1; the adaptive rule's longer steps from 0.999995 go there and are dropped.
    const request = { inputs: { x: f64([0.999995, 0.5]), y: f64([0.5], []), params: {}, blocks: [], mode: "nan" }, inputPaths: ["x"], outputPaths: ["f"], options: { algorithm: Algorithm.ALGORITHM_ADAPTIVE } };
    const [a, b] = [await inline.jacobian(request), await pooled.jacobian(request)];
    assert.deepEqual(b.entries, a.entries);
    assert.deepEqual(b.stats.adjusted_steps, a.stats.adjusted_steps);
    assert.equal(a.stats.adjusted_steps.length, 3, "16h, 4h and h were dropped");
    // Inline, a failed x + mh spares its x - mh; in the pool both were already under way.
    assert.equal(b.stats.apply_calls, a.stats.apply_calls + 3);
  });

  it('"auto": once two applies in a row have held the event loop 20 ms, Apply calls go to the pool, and so do a Jacobian\'s evaluations (each ran in the event loop, health and deadlines waiting on it), until applies are quick again', async () => {
    const module = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
    const runtime = await load(module, "auto");
    const inputs = { x: f64([0.5, 1.5, 2.5, 3.5]), y: f64([0.25], []), params: {}, blocks: [], mode: "busy" };
    const thread = async () => ((runtime.schema.outputs.decodeAny(await runtime.applyMessage(runtime.schema.inputs.encodeAny({ ...inputs, y: f64([Math.random()], []) })), "outputs") as { count_out: { data: Int32Array } }).count_out.data[0] === 1 ? "event loop" : "worker");
    assert.equal(await thread(), "event loop", "nothing measured yet");
    assert.equal(await thread(), "event loop", "one slow apply alone may have been the thread preempted");
    assert.ok(!(await (runtime as unknown as { backends: { poolStarted(): Promise<boolean> } }).backends.poolStarted()), "no pool for one slow apply");
    assert.equal(await thread(), "event loop", "the pool is starting");
    assert.ok(await (runtime as unknown as { backends: { poolStarted(): Promise<boolean> } }).backends.poolStarted());
    assert.equal(await thread(), "worker");
    // A Jacobian of 8 evaluations: all pooled, none sampled in the event loop first (the last apply told its cost).
    const inlineCalls = (require(module) as { calls(): number }).calls;
    const before = inlineCalls();
    const { stats } = await runtime.jacobian({ inputs, inputPaths: ["x"], outputPaths: ["f"], options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
    assert.equal(stats.apply_calls, 8);
    assert.equal(inlineCalls() - before, 0, "evaluations in the event loop");
    // Quick applies again, measured in the worker: after eight in a row, Apply runs in the event loop again (it stayed in the pool for good);
    // one quick Apply alone does not bring it back (the next costly one held the event loop again).
    const quick = () => runtime.applyMessage(runtime.schema.inputs.encodeAny({ ...inputs, mode: "", y: f64([Math.random()], []) }));
    const inlineBefore = inlineCalls();
    await quick();
    assert.equal(await thread(), "worker", "a costly Apply after one quick one");
    for (let k = 0; k < 8; k++) await quick();
    assert.equal(inlineCalls() - inlineBefore, 0, "all pooled so far");
    await quick();
    assert.equal(inlineCalls() - inlineBefore, 1, "the quick Apply ran in the event loop");
  });

  it('"auto": one apply of half a second or more held the event loop beyond doubt: the next Apply waits for the pool to start and runs there (heat of 1.5 million steps held health checks 10-18 s, twice)', async function () {
    this.timeout(20_000);
    const module = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
    const runtime = await load(module, "auto");
    const inputs = { x: f64([0.5, 1.5]), y: f64([0.25], []), params: {}, blocks: [], mode: "long" };
    const thread = async () => ((runtime.schema.outputs.decodeAny(await runtime.applyMessage(runtime.schema.inputs.encodeAny({ ...inputs, y: f64([Math.random()], []) })), "outputs") as { count_out: { data: Int32Array } }).count_out.data[0] === 1 ? "event loop" : "worker");
    assert.equal(await thread(), "event loop", "nothing measured yet");
    assert.equal(await thread(), "worker", "the second waited for the pool");
  });

  it('"auto": after an apply of half a second, the rest of the same request waits for the pool to start and runs there (a fresh server\'s first Jacobian of 1.5 s applies ran 10 of its 12 evaluations in the event loop, health checks waiting 12-15 s)', async function () {
    this.timeout(30_000);
    const module = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
    const runtime = await load(module, "auto");
    const inlineCalls = (require(module) as { calls(): number }).calls;
    const before = inlineCalls();
    const x = [0.5, 1.5, 2.5];
    const { stats, entries } = await runtime.jacobian({ inputs: { x: f64(x), y: f64([0.25], []), params: {}, blocks: [], mode: "long" }, inputPaths: ["x"], outputPaths: ["f"], options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
    assert.equal(stats.apply_calls, 6);
    assert.equal(inlineCalls() - before, 2, "evaluations in the event loop: the first pair's");
    // d f_i / d x_j = 3 x_j² + y cos x_j where i = j.
    const expected = x.flatMap((_, i) => x.map((xj, j) => (i === j ? 3 * xj ** 2 + 0.25 * Math.cos(xj) : 0)));
    Array.from(entries[0].values).forEach((v, k) => assert.ok(Math.abs(v - expected[k]) < 1e-6, `entry ${k}: ${v}, expected ${expected[k]}`));
  });

  it("tensors inside maps (objects without a prototype) reach workers as tensors: the same Jacobians as inline (they were answered OK as zeros)", async () => {
    const module = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
    const [inline, pooled] = [await load(module, 0), await load(module, 2)];
    const params = () => Object.assign(Object.create(null), { a: f64([1, 2]), ["__proto__"]: f64([3]) });
    const request = () => ({ inputs: { x: f64([0.5, 1.5]), y: f64([0.25], []), params: params(), blocks: [], mode: "" }, inputPaths: ["x", "params.{a}", "params.{__proto__}"], outputPaths: ["named.{a}", "named.{__proto__}", "f"] });
    const [a, b] = [await inline.jacobian(request()), await pooled.jacobian(request())];
    assert.deepEqual(b.entries, a.entries);
    // named{k} = params{k}² Σx: d named{a} / d x = params{a}² = [1, 4] in each column.
    const block = b.entries.find((e) => e.outputPath === "named.{a}" && e.inputPath === "x")!;
    assert.deepEqual(Array.from(block.values).map((v) => +v.toFixed(6)), [1, 1, 4, 4]);
    // Rows come in any order: keyed by input element.
    const rows = async (runtime: typeof inline) => {
      const got: Record<string, number[]> = {};
      for await (const row of runtime.jacobianRows(request()).rows) got[`${row.inputPath}[${row.inputIndex}]`] = row.values.flatMap((v) => Array.from(v));
      return got;
    };
    assert.deepEqual(await rows(pooled), await rows(inline));
  });

  it("the input guard takes a bytes field by its bytes (not an entry per element, which a large one made costly)", () => {
    const tree = { blob: new Uint8Array(1 << 20), name: "x" };
    const guard = new InputGuard(tree);
    guard.check();
    tree.blob[3] = 7;
    assert.throws(() => guard.check(), /^TesseractError: apply wrote to its inputs: blob element 3 went from 0 to 7 during the request/);
  });

  it("an apply that writes to its inputs: the request is INTERNAL naming the element, inline and in workers, for every gradient (the Jacobian was answered OK, wrong)", async () => {
    const module = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
    const request = { inputs: { x: f64([1, 2]), y: f64([0.5], []), params: {}, blocks: [], mode: "mutate" }, inputPaths: ["x"], outputPaths: ["f"] };
    const message = /apply wrote to its inputs: y element 0 went from 0\.5 to \d+\.5 during the request, so later evaluations were not at the caller's inputs; an apply must not change its inputs \(copy what it modifies\)$/;
    for (const workers of [0, 2]) {
      const runtime = await load(module, workers);
      // Fresh inputs each time: inline, the request's own tree is what apply wrote to.
      const fresh = () => ({ ...request, inputs: { ...request.inputs, y: f64([0.5], []) } });
      await rejects(runtime.jacobian(fresh()), Code.INTERNAL, message);
      await rejects(runtime.jvp({ ...fresh(), tangent: { x: f64([1, 1]) } }), Code.INTERNAL, message);
      await rejects(runtime.vjp({ ...fresh(), cotangent: { f: f64([1, 1]) } }), Code.INTERNAL, message);
      const drain = async () => {
        for await (const _ of runtime.jacobianRows(fresh()).batches);
      };
      await rejects(drain(), Code.INTERNAL, message);
      // Whatever it writes: an object replaced, a list grown, a scalar field changed.
      for (const [mode, what] of [["replace", "y was replaced"], ["append", "blocks had \\d+ entries and came to \\d+"], ["rename", "mode went from rename to renamed"]]) {
        await rejects(runtime.jacobian({ ...fresh(), inputs: { ...fresh().inputs, mode } }), Code.INTERNAL, new RegExp(`apply wrote to its inputs: ${what} during the request`));
      }
      // The same Tesseract, not writing: answered.
      assert.equal((await runtime.jacobian({ ...fresh(), inputs: { ...fresh().inputs, mode: "" } })).entries[0].values.length, 4);
    }
  });

  it("a row whose difference overflows in a worker is refused naming the entry, as inline", async () => {
    const module = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
    const [inline, pooled] = [await load(module, 0), await load(module, 2)];
    // f_i = 1.5e308 tanh(1e6 x_i): f(h) - f(-h) = 3e308 at x_1 = 0; the others' rows are finite.
    const request = { inputs: { x: f64([1, 0, 2]), y: f64([0], []), params: {}, blocks: [], mode: "steep" }, inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-4 } };
    for (const runtime of [inline, pooled]) {
      const drain = async () => {
        for await (const _ of runtime.jacobianRows(request).batches);
      };
      await rejects(drain(), Code.FAILED_PRECONDITION, /^d f \(flat index 1\) \/ d x\[1\] came out Infinity although every output of apply was finite/);
    }
    const finite = { ...request, inputs: { ...request.inputs, x: f64([1, 0.5, 2]) } };
    let rows = 0;
    for await (const batch of pooled.jacobianRows(finite).batches) rows += batch.length;
    assert.equal(rows, 3);
  });

  it("f(x) of an Apply is reused by a forward Jacobian in the pool", async () => {
    const pooled = await load("meshstats", 2);
    const inputs = sampleMeshInputs(30);
    await pooled.applyMessage(pooled.schema.inputs.encodeAny(inputs));
    const { stats } = await pooled.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
    assert.equal(stats.apply_calls, 90);
  });

  it("an exception in a worker names the evaluation, as inline", async () => {
    const pooled = await load(path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js"), 2);
    const inputs = { x: f64([0.5, 2]), y: f64([0.5], []), params: {}, blocks: [], mode: "throw" };
    await rejects(pooled.jacobian({ inputs, inputPaths: ["y"], outputPaths: ["f"] }), Code.UNKNOWN, /^evaluation at y \+ h failed: y is too large for this model$/);
    await rejects(pooled.jacobian({ inputs: { ...inputs, mode: "throw-object" }, inputPaths: ["y"], outputPaths: ["f"] }), Code.UNKNOWN, /^evaluation at y \+ h failed: y is too large for this model$/);
    // The pool keeps working.
    const ok = await pooled.jacobian({ inputs: { ...inputs, mode: "" }, inputPaths: ["x"], outputPaths: ["f"] });
    assert.equal(ok.stats.apply_calls, 4);
  });

  it("a central pair evaluated in a worker names its failing side, as inline", async () => {
    const module = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
    const [inline, pooled] = [await load(module, 0), await load(module, 2)];
    // y = 0.5 exactly: y + h is fine, y - h throws.
    const request = { inputs: { x: f64([0.5, 2]), y: f64([0.5], []), params: {}, blocks: [], mode: "throw-below" }, inputPaths: ["x", "y"], outputPaths: ["f"], options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
    for (const runtime of [inline, pooled]) await rejects(runtime.jacobian(request), Code.UNKNOWN, /^evaluation at y - h failed: y is too small for this model$/);
  });

  it("each worker warms its evaluation path on the example inputs before the pool is ready; only where it pays", async () => {
    const pooled = await load("meshstats", 2);
    await pooled.jacobian({ inputs: sampleMeshInputs(5), inputPaths: ["mesh.points"], outputPaths: OUTPUTS });
    await pooled.poolStarted();
    const pool = workerPool(pooled);
    assert.ok(pool.ready);
    const warm = (tesseract: string, evaluations: number, budgetMs = 10_000) => pool.piscina.run({ tesseract, evaluations, budgetMs }, { name: "warm" }) as Promise<number>;
    assert.equal(await warm("meshstats", 1000), 2 + 4 + 8 + 16 + 32 + 64 + 128 + 3 * 256, "doubling batches, then 256 each, until 1000");
    assert.equal(await warm("meshstats", 100_000, 0), 0, "no time");
    assert.equal(await warm(path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js"), 1000), 0, "no example inputs");
  });

  it("central Jacobians keep every thread busy (a task per chunk, at least one per thread at once); a row stream, what its reader takes where the threads leave it a core", async () => {
    /** Eight threads, counted on two cores (this machine's, say) or on 16; the most tasks out at once of `run`. */
    const pooledOn = async (cores: number) => {
      const pooled = await load("meshstats", 8, { autoCores: cores });
      await pooled.jacobian({ inputs: sampleMeshInputs(5), inputPaths: ["mesh.points"], outputPaths: OUTPUTS }); // starts the pool
      const pool = workerPool(pooled);
      const evaluateBatch = pool.evaluateBatch.bind(pool);
      let inFlight = 0;
      let most = 0;
      pool.evaluateBatch = (...args) => {
        most = Math.max(most, ++inFlight);
        return evaluateBatch(...args).finally(() => inFlight--);
      };
      return async (run: (runtime: TesseractRuntime) => Promise<unknown>) => {
        most = 0;
        await run(pooled);
        return most;
      };
    };
    const [onTwo, onSixteen] = [await pooledOn(2), await pooledOn(16)];
    const inputs = sampleMeshInputs(1000);
    for (const sparsity_mode of [SparsityMode.SPARSITY_MODE_DENSE, SparsityMode.SPARSITY_MODE_UNSPECIFIED]) {
      const request = { inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { sparsity_mode } };
      // Chunks a fixed share of the concurrency (four) kept four or five tasks out, whatever the threads.
      const jacobian = await onTwo((runtime) => runtime.jacobian(request));
      assert.ok(jacobian >= 8, `mode ${sparsity_mode}: at most ${jacobian} tasks at once on 8 threads`);
      // A stream read 5 ms a batch: where the threads leave its writer a core, it keeps out what the
      // reader takes (window.ts, ConsumerPace: two or three); where they share the cores, every
      // thread's worth (paced, a two-thread pool streamed a quarter slower on two cores).
      const slowly = async (runtime: TesseractRuntime) => {
        for await (const _ of runtime.jacobianRows(request).batches) await new Promise((resolve) => setTimeout(resolve, 5));
      };
      const paced = await onSixteen(slowly);
      assert.ok(paced <= 3, `mode ${sparsity_mode}: ${paced} tasks at once for a reader taking 5 ms a batch, 8 threads on 16 cores`);
      const unpaced = await onTwo(slowly);
      assert.ok(unpaced >= 8, `mode ${sparsity_mode}: at most ${unpaced} tasks at once for a stream, 8 threads on 2 cores`);
    }
  });

  it("a pool of more than ten threads starts without a listener-leak warning", async () => {
    const warnings: Error[] = [];
    const listen = (w: Error) => warnings.push(w);
    process.on("warning", listen);
    try {
      const pooled = await load("meshstats", 12);
      await pooled.jacobian({ inputs: sampleMeshInputs(5), inputPaths: ["mesh.points"], outputPaths: OUTPUTS }); // starts the pool
      assert.ok(await pooled.poolStarted());
      assert.equal(workerPool(pooled).liveThreads, 12);
      await new Promise(setImmediate); // process warnings are emitted on a later tick
    } finally {
      process.off("warning", listen);
    }
    assert.deepEqual(warnings.map((w) => `${w.name}: ${w.message}`), []);
  });

  it("big outputs: the results in flight stay under MAX_IN_FLIGHT_BYTES however many threads, and the stream is unchanged", async () => {
    // 16 threads × 2 batches × 4 MB would hold 128 MB of 160 KB rows; the bound is 32 MB.
    const n = 20_000;
    const rowBytes = 8 * n;
    const pooled = await load("heat", 16);
    const request = { inputs: sampleHeatInputs(n, 1), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"], options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
    // A first job tells the pool the outputs' size (a job's first batches go out before its own are known).
    for await (const _ of pooled.jacobianRows(request).batches) break;
    const stream = pooled.jacobianRows(request);
    const start = pooled.evaluations;
    let rows = 0;
    let most = 0;
    // Each row as its band (heat's one step touches cells j - 1, j, j + 1), its sum and its nonzeros.
    const fingerprint = (j: number, v: Float64Array) => {
      let sum = 0;
      let nonzeros = 0;
      for (let i = 0; i < v.length; i++) {
        sum += v[i];
        if (v[i] !== 0) nonzeros++;
      }
      return [v[j - 1], v[j], v[j + 1], sum, nonzeros].join();
    };
    const pooledRows = new Map<number, string>();
    for await (const batch of stream.batches) {
      rows += batch.length;
      // Evaluations sent and not yet handed over as rows: what is held in flight for this stream.
      most = Math.max(most, pooled.evaluations - start - 2 * rows);
      for (const row of batch) pooledRows.set(row.inputIndex, fingerprint(row.inputIndex, row.values[0]));
      if (rows >= 2000) break;
    }
    assert.ok(most > 0 && most * rowBytes <= MAX_IN_FLIGHT_BYTES * 1.25, `${most} evaluations of ${rowBytes} bytes in flight`);
    // The same rows as inline evaluation.
    const inline = await load("heat", 0);
    const last = Math.max(...pooledRows.keys());
    let compared = 0;
    for await (const batch of inline.jacobianRows(request).batches) {
      for (const row of batch) {
        if (!pooledRows.has(row.inputIndex)) continue;
        assert.equal(pooledRows.get(row.inputIndex), fingerprint(row.inputIndex, row.values[0]), `row ${row.inputIndex}`);
        compared++;
      }
      if (batch.at(-1)!.inputIndex >= last) break;
    }
    assert.equal(compared, pooledRows.size);
  });

  it("a signal shared by many pooled requests is left without their listeners", async () => {
    const pooled = await load("meshstats", 2);
    const shared = new AbortController().signal;
    const request = { inputs: sampleMeshInputs(50), inputPaths: ["mesh.points"], outputPaths: OUTPUTS, signal: shared, options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
    for (let k = 0; k < 12; k++) assert.equal((await pooled.jacobian(request)).stats.apply_calls, 300);
    assert.equal(getEventListeners(shared, "abort").length, 0);
  });

  it("a cancel stops the request and leaves the pool usable", async () => {
    const pooled = await load("heat", 2);
    const controller = new AbortController();
    const inputs = sampleHeatInputs(400, 3000); // ~ms per apply, 800 evaluations: seconds if not stopped
    const running = pooled.jacobian({ inputs, inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"], signal: controller.signal });
    setImmediate(() => controller.abort(new Error("caller went away")));
    const started = performance.now();
    await assert.rejects(running, /caller went away|aborted/i);
    assert.ok(performance.now() - started < 2000, "stopped early");
    const small = sampleHeatInputs(10, 10);
    const after = await pooled.jacobian({ inputs: small, inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] });
    assert.equal(after.stats.apply_calls, 20);
  });

  it("the correction is the least of the last five observed paces, and relaxes towards 1", () => {
    const correction = new PoolCorrection();
    assert.equal(correction.value, 1, "nothing observed yet");
    for (const ratio of [2.5, 3, 0.8, 2, 2.2]) correction.observed(ratio);
    assert.equal(correction.value, 0.8, "one good stretch is enough");
    correction.observed(2.4);
    assert.equal(correction.value, 0.8);
    correction.observed(2.6);
    correction.observed(2.7); // 0.8 is now six observations old
    assert.equal(correction.value, 2);
    correction.relax();
    assert.ok(Math.abs(correction.value - (0.95 * 2 + 0.05)) < 1e-12);
  });

  it('"auto" takes a thread per core but one (the main thread keeps one), and all of one or two', () => {
    assert.deepEqual([1, 2, 3, 4, 16, 64].map((cores) => defaultAutoThreads(cores)), [1, 2, 2, 3, 15, 63]);
  });

  it('"auto" weighs the pool\'s measured costs against apply\'s', () => {
    const twoCores = { threads: 2, cores: 2, taskOverheadMs: 0.05, ready: true };
    // 1 ms applies: the pool nearly halves the time.
    assert.ok(poolSavingMs(1, 0.002, 100, twoCores) > 40);
    // Too few evaluations left to repay starting a job.
    assert.ok(poolSavingMs(0.01, 0.002, 5, twoCores) < 0);
    // Applies far cheaper than the engine's own work: the main thread is the bottleneck either way.
    assert.ok(poolSavingMs(0.0001, 0.002, 1e6, twoCores) < 0);
    // One core: no parallelism to gain.
    assert.ok(poolSavingMs(1, 0.002, 100, { ...twoCores, cores: 1 }) < 0);
    // A pool measured at 2.5 times its modelled time per evaluation is no longer chosen.
    assert.ok(poolSavingMs(1, 0.002, 100, { ...twoCores, correction: 2.5 }) < 0);
  });

  /**
   * A polynomial runtime on `workers` threads (no evaluation cache: it keeps inputs by design),
   * started and calibrated; `jacobian(x)` differentiates g by y with x as the inputs' bulk, with
   * `signals` its call's signal aborted when it ends, as a transport's is (grpc/calls.ts);
   * `arrayBuffers()` after a full gc.
   */
  async function heldInputs(workers: number, signals: boolean) {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const runtime = loadTesseract(path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js"));
    await runtime.useEvaluation({ workers, cacheBytes: 0 });
    runtimes.push(runtime);
    const jacobian = async (x: Float64Array) => {
      const call = new AbortController();
      try {
        return await runtime.jacobian({ inputs: { x: ndarray(x, [x.length]), y: f64([0.3], []), mode: "", params: {}, blocks: [] }, inputPaths: ["y"], outputPaths: ["g"], signal: signals ? call.signal : undefined });
      } finally {
        call.abort();
      }
    };
    await jacobian(new Float64Array(4).fill(1));
    return { jacobian, arrayBuffers: () => (gc(), gc(), process.memoryUsage().arrayBuffers) };
  }
  const MB = 1 << 20;

  it("an idle pool lets go of its jobs' inputs: the main thread's array buffers return to their baseline", async () => {
    // No signals (an in-process caller's calls have none): only the idle tidy lets go.
    const { jacobian, arrayBuffers } = await heldInputs(2, false);
    const baseline = arrayBuffers();
    // Each job's inputs are shared with the workers (4 MB each); a worker kept its last eight jobs'
    // for their next batches, and an idle one for good: 32 MB stayed.
    for (let k = 0; k < 8; k++) await jacobian(new Float64Array(MB / 2).fill(1 + k));
    // Polled: the pool tidies its workers once idle a while (pool.ts, IDLE_TIDY_MS).
    const deadline = Date.now() + 10_000;
    while (arrayBuffers() - baseline > 8 * MB && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const held = arrayBuffers() - baseline;
    assert.ok(held <= 8 * MB, `${(held / MB).toFixed(1)} MB of the jobs' 32 MB still held 10 s after the last`);
  });

  it("a busy pool lets go of ended jobs' inputs at its next task, with no idle spell to tidy it", async () => {
    // One worker: every task reaches the thread that holds the jobs.
    const { jacobian, arrayBuffers } = await heldInputs(1, true);
    const baseline = arrayBuffers();
    // Back to back, far inside the pool's idle delay (IDLE_TIDY_MS): the worker kept the last eight
    // jobs' inputs (4 MB each here), 32 MB, until the pool next fell idle.
    for (let k = 0; k < 16; k++) await jacobian(new Float64Array(MB / 2).fill(1 + k));
    const held = arrayBuffers() - baseline;
    // The last job's inputs, and an ended job's or so not yet collected (worker.ts, COLLECT_DROPPED_BYTES).
    assert.ok(held <= 12 * MB, `${(held / MB).toFixed(1)} MB of the jobs' inputs held right after the last, where two or three jobs' (8-12 MB) should be`);
  });

  it('"auto" keeps a cheap apply inline and moves a costly one to the pool, with the same results', async () => {
    const heatInline = await load("heat", 0);
    const heatAuto = await load("heat", "auto");
    const costly = { inputs: sampleHeatInputs(300, 3000), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] };
    assert.deepEqual((await heatAuto.jacobian(costly)).entries, (await heatInline.jacobian(costly)).entries);
    const cheap = { inputs: sampleHeatInputs(30, 2), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] };
    assert.deepEqual((await heatAuto.jacobian(cheap)).entries, (await heatInline.jacobian(cheap)).entries);
  });
});
