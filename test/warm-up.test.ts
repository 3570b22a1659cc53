/**
 * The warm-up before SERVING (server/warmup.ts): it runs the engine's requests on the Tesseract's
 * example inputs and leaves no trace (evaluation counter, cache); it is skipped without example
 * inputs or time; it stops at its time budget; an error in it is reported and logged, and the
 * server starts all the same.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { loadTesseract, startServer } from "../index";
import { TesseractRuntime } from "../server/runtime";
import meshstats from "../server/tesseracts/meshstats";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { warmUp, WARM_UP_EVALUATIONS } from "../server/warmup";
import { LogLines, meshInputs } from "./helpers";

const POLYNOMIAL = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
const COSTLY_POLYNOMIAL = path.join(__dirname, "../../test/fixtures/polynomial/costly.js");

const OUTPUTS = ["statistics.first_point_coordinates", "statistics.barycenter"];

describe("warm-up on the example inputs", function () {
  this.timeout(30_000);

  it("runs Jacobians, a VJP and a JVP on them, then restores the evaluation counter and empties the cache", async () => {
    const runtime = loadTesseract("meshstats");
    const report = await warmUp(runtime, 5000);
    assert.equal(report.error, undefined);
    assert.equal(report.skipped, undefined);
    assert.ok(report.requests >= 4, `${report.requests} requests`);
    assert.ok(report.evaluations >= WARM_UP_EVALUATIONS || report.ms >= 5000, `${report.evaluations} evaluations in ${report.ms} ms`);
    assert.equal(runtime.evaluations, 0);
    assert.equal(runtime.evaluationCache!.size, 0);
    // The inputs it used leave nothing behind: a forward Jacobian of them evaluates f(x) itself.
    const inputs = sampleMeshInputs(1000);
    const { stats } = await runtime.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm: 2, sparsity_mode: 1 } }); // forward, dense
    assert.equal(stats.apply_calls, 3000 + 1);
  });

  /** `script` in a process of its own, as a server's start is: what it prints last, parsed. */
  async function inOwnProcess(script: string) {
    const { stdout } = await promisify(execFile)(process.execPath, ["-e", script], { timeout: 25_000 });
    return JSON.parse(stdout.trim().split("\n").pop()!);
  }
  const requireIndex = `const { loadTesseract } = require(${JSON.stringify(path.join(__dirname, "../index"))});
      const { warmUp } = require(${JSON.stringify(path.join(__dirname, "../server/warmup"))});`;

  it("under --workers auto, a pool is started where the example's requests call for one, and warmed", async () => {
    // The Tesseract's apply takes 0.3 ms, so its requests call for the pool on any machine:
    // meshstats' 2 µs applies did on a quiet one, but whether the pool saves auto's 15 % on two busy
    // cores is a measurement (bench/), not a test's. Eight threads on 16 cores: the pool goes first.
    const started = await inOwnProcess(`
      ${requireIndex}
      (async () => {
        const costly = loadTesseract(${JSON.stringify(COSTLY_POLYNOMIAL)}); // 102 evaluations of 0.3 ms a central Jacobian
        const scalar = loadTesseract("univariate"); // scalar examples: a few evaluations, never worth a pool
        const cheap = loadTesseract("meshstats"); // 2 µs applies: batches sent unstoppable
        await Promise.all([costly, scalar, cheap].map((r) => r.useEvaluation({ workers: "auto", autoThreads: 8, autoCores: 16 })));
        const report = await warmUp(costly, 4000);
        const costlyReady = costly.poolReady(); // as the warm-up left it
        await warmUp(scalar, 1000);
        await warmUp(cheap, 1000);
        const threads = (await cheap.poolStarted()) && cheap.backends.workerPool.liveThreads;
        console.log(JSON.stringify({ costly: await costly.poolStarted(), costlyReady, threads, scalar: await scalar.poolStarted(), measured: costly.autoMeasurements, report }));
        await Promise.all([costly.close(), scalar.close(), cheap.close()]);
      })();`);
    assert.equal(started.report.error, undefined);
    assert.equal(started.costly, true);
    assert.equal(started.costlyReady, true, "ready when the warm-up ends: loaded, warmed and its costs measured");
    // Of its eight threads the pool keeps four; the warm-up's batches of a cheap apply wait at those
    // and start no more (threads they started stayed a minute, at 11 MB or more each).
    assert.equal(started.threads, 4);
    assert.ok(started.report.pooledEvaluations > 0, `the main thread's side of the pool warmed too: ${JSON.stringify(started.report)}`);
    assert.equal(started.scalar, false);
    // What it measured on code not yet optimised, beside threads starting, is not the served requests' to go by.
    assert.deepEqual(started.measured, { shapes: 0, correction: 1 });
  });

  it("where inline goes first (the threads as many as the cores), its requests run inline and start no pool; served ones start it only for a costly apply", async () => {
    const started = await inOwnProcess(`
      ${requireIndex}
      const { sampleMeshInputs } = require(${JSON.stringify(path.join(__dirname, "../server/tesseracts/samples"))});
      (async () => {
        const cold = loadTesseract("meshstats"); // 2 µs applies, no warm-up: cold code times them at 0.1 ms and more
        const cheap = loadTesseract("meshstats");
        const costly = loadTesseract(${JSON.stringify(COSTLY_POLYNOMIAL)}); // 0.3 ms
        await Promise.all([cold, cheap, costly].map((r) => r.useEvaluation({ workers: "auto", autoThreads: 2, autoCores: 2 })));
        const dense = { inputs: sampleMeshInputs(1000), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"], options: { algorithm: 1, sparsity_mode: 1 } };
        for (let k = 0; k < 3; k++) await cold.jacobian(dense);
        const coldThree = await cold.poolStarted();
        const report = await warmUp(cheap, 1000);
        const afterWarmUp = await cheap.poolStarted();
        for (let k = 0; k < 3; k++) await cheap.jacobian(dense);
        const afterThree = await cheap.poolStarted();
        const costlyReport = await warmUp(costly, 1000);
        const costlyAfterWarmUp = await costly.poolStarted();
        const inputs = costly.definition.exampleInputs();
        await costly.jacobian({ inputs, inputPaths: costlyReport.inputPaths, outputPaths: costlyReport.outputPaths, options: { algorithm: 1 } });
        console.log(JSON.stringify({ coldThree, report, afterWarmUp, afterThree, costlyAfterWarmUp, costly: await costly.poolStarted(), costlyReport }));
        await Promise.all([cold.close(), cheap.close(), costly.close()]);
      })();`);
    assert.equal(started.report.error, undefined);
    assert.ok(started.report.evaluations > 0 && started.report.pooledEvaluations === undefined, JSON.stringify(started.report));
    assert.deepEqual([started.afterWarmUp, started.afterThree], [false, false], "no pool after the warm-up, nor after three dense Jacobians of 6 000 evaluations");
    assert.equal(started.coldThree, false, "nor after three in a cold process without a warm-up");
    assert.equal(started.costlyAfterWarmUp, false, "the warm-up's timings are of cold code: a 0.3 ms apply starts no pool there either");
    assert.equal(started.costly, true, "its first request served starts the pool");
  });

  it("is skipped without example inputs or without time", async () => {
    assert.equal((await warmUp(loadTesseract(POLYNOMIAL))).skipped, "the Tesseract has no example inputs");
    assert.equal((await warmUp(loadTesseract("meshstats"), 0)).skipped, "no time budget");
  });

  it("stops at its time budget, leaving the runtime usable", async () => {
    const slow = new TesseractRuntime(
      {
        ...meshstats,
        // 5 ms per evaluation: a central Jacobian of 50 points takes 300 of them, far over 100 ms.
        apply: async (inputs: Parameters<typeof meshstats.apply>[0]) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          return meshstats.apply(inputs);
        },
        exampleInputs: () => sampleMeshInputs(50),
      },
      __dirname,
    );
    const report = await warmUp(slow, 100);
    assert.equal(report.error, undefined);
    assert.equal(report.requests, 0, "the first Jacobian was stopped");
    assert.equal(slow.evaluations, 0);
    const { stats } = await slow.jacobian({ inputs: meshInputs(2), inputPaths: ["mesh.points"], outputPaths: OUTPUTS });
    assert.equal(stats.apply_calls, 2 * 2, "central, 2 per column group: one group per point of meshstats' declared structure");
  });

  it("an error in it is logged and the server starts and serves all the same", async () => {
    const broken = new TesseractRuntime({ ...meshstats, exampleInputs: () => ({ fd_algorithm: 0 }) as never }, __dirname);
    assert.match((await warmUp(broken)).error ?? "", /^mesh is missing: expected a tesseract\.mesh\.v1\.VolumetricMeshData \(/);
    // Example inputs that are no inputs are named as inputs (they were "outputs mesh.points: ...").
    const listed = new TesseractRuntime({ ...meshstats, exampleInputs: () => ({ mesh: { points: [[1, 2, 3]] } }) as never }, __dirname);
    assert.equal((await warmUp(listed)).error, "inputs mesh.points: expected an ndarray, got a plain array: make one with ndarray(data, shape)");

    const log = new LogLines();
    const warned = log.next((line) => line.level === 40);
    const server = await startServer({ tesseract: broken, port: 0, workers: 0, logger: log.logger });
    try {
      const line = await warned;
      assert.equal(line.msg, "the warm-up on the example inputs failed; serving without it");
      assert.match(String(line.error), /^mesh is missing: expected /);
      const { stats } = await server.runtime.jacobian({ inputs: meshInputs(2), inputPaths: ["mesh.points"], outputPaths: OUTPUTS });
      assert.equal(stats.apply_calls, 2 * 2, "central, 2 per column group: one group per point of meshstats' declared structure");
    } finally {
      await server.close(0);
    }
  });
});
