/**
 * CheckGradients end to end: real servers on 127.0.0.1:0 called with the SDK and the CLI. vectoradd's
 * analytic Jacobian passes (normalised or not, jacobian, jvp and vjp); a copy whose d result / d s is
 * 1.5 times too large (test/fixtures/wrong-vectoradd) is caught on exactly that pair; max_evals bounds
 * the apply calls, counted independently of the engine; a Tesseract without analytic gradients is
 * UNIMPLEMENTED; bad requests are INVALID_ARGUMENT. Then the sampling and tallying modules alone.
 */
import { strict as assert } from "node:assert";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import ndarray from "ndarray";
import { Algorithm, SparsityMode, TesseractClient, type GradientCheck } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { Inputs as VectorInputs, Outputs as VectorOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { randomVector, sampleElements, STREAMS } from "../server/checking/sampling";
import { compareColumn, report, Tallies, Tally } from "../server/checking/tally";
import { Code } from "../index";
import { seededGenerator } from "../server/fd/random";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { TesseractRuntime } from "../server/runtime";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import type { Arrays } from "../index";
import wrongVectoradd, { WRONG_FACTOR } from "./fixtures/wrong-vectoradd/wrong-vectoradd";
import { clientRejects, counted, f64, rejects } from "./helpers";
import vectoraddDefinition from "../server/tesseracts/vectoradd";

const VECTOR_TYPES = {
  inputs: VectorInputs,
  outputs: VectorOutputs,
  inputType: "tesseract.examples.vectoradd.v1.Inputs",
  outputType: "tesseract.examples.vectoradd.v1.Outputs",
};

const A = [0.5, -1.25, 2, 0.75, 3];
const B = [1, 0.5, -0.5, 2, -1];
const S = 1.5;
const vectorInputs = (normalize: boolean, a = A, b = B): Arrays<VectorInputs> => ({ a: f64(a), b: f64(b), s: ndarray(Float64Array.of(S), []), normalize });

/** A long vector, for sampling: elements i of a and b. */
const long = (n: number) => vectorInputs(false, Array.from({ length: n }, (_, i) => Math.sin(i + 1)), Array.from({ length: n }, (_, i) => Math.cos(i + 1)));

const find = (checks: GradientCheck[], endpoint: string, input: string, output = "result") => {
  const c = checks.find((x) => x.endpoint === endpoint && x.input_path === input && x.output_path === output);
  assert.ok(c, `no ${endpoint} check for ${input} -> ${output}`);
  return c;
};

describe("CheckGradients", () => {
  let vectorServer: RunningServer;
  let wrongServer: RunningServer;
  let meshServer: RunningServer;
  let vector: TesseractClient<VectorInputs, VectorOutputs>;
  let wrong: TesseractClient<VectorInputs, VectorOutputs>;
  let counter: { calls: number };
  let wrongCounter: { calls: number };

  before(async () => {
    const c = counted("vectoradd");
    counter = c.counter;
    // The fixture's definition, its apply counted the same way.
    wrongCounter = { calls: 0 };
    const wrongRuntime = new TesseractRuntime(
      {
        ...wrongVectoradd,
        apply: (inputs: never) => {
          wrongCounter.calls++;
          return wrongVectoradd.apply(inputs);
        },
      },
      __dirname,
    );
    [vectorServer, wrongServer, meshServer] = await Promise.all([
      startServer({ tesseract: c.runtime, host: "127.0.0.1", port: 0, logger: silentLogger }),
      startServer({ tesseract: wrongRuntime, host: "127.0.0.1", port: 0, logger: silentLogger }),
      startServer({ tesseract: "meshstats", host: "127.0.0.1", port: 0, logger: silentLogger }),
    ]);
    vector = new TesseractClient(vectorServer.address, VECTOR_TYPES);
    wrong = new TesseractClient(wrongServer.address, VECTOR_TYPES);
  });

  after(async () => {
    vector?.close();
    wrong?.close();
    await Promise.all([vectorServer?.close(), wrongServer?.close(), meshServer?.close()]);
  });

  for (const normalize of [false, true]) {
    it(`vectoradd (normalize ${normalize}) passes for jacobian, jvp and vjp, every element checked within the default budget`, async () => {
      const before = counter.calls;
      const response = await vector.checkGradients({ inputs: vectorInputs(normalize) });
      assert.equal(response.passed, true, JSON.stringify(response.checks, null, 1));
      // 3 endpoints × 3 input paths (a, b, s) × 1 output path, in that order.
      assert.deepEqual(
        response.checks.map((c) => `${c.endpoint} ${c.input_path} ${c.output_path}`),
        ["jacobian", "jvp", "vjp"].flatMap((e) => ["a", "b", "s"].map((i) => `${e} ${i} result`)),
      );
      for (const c of response.checks) {
        assert.equal(c.failures, 0, c.message);
        assert.equal(c.rows_checked, c.endpoint === "jvp" ? 1 : c.input_path === "s" ? 1 : A.length, c.message);
        assert.ok(c.max_abs_error < 1e-7, `${c.endpoint} ${c.input_path}: ${c.max_abs_error}`);
        assert.ok(c.max_rel_error < 1e-6, `${c.endpoint} ${c.input_path}: ${c.max_rel_error}`);
        assert.match(c.message, /^ok: \d+ (rows?|tangent), \d+ values? within atol \+ rtol·\|fd\|; worst at /);
      }
      // 1 apply for the outputs + 3 JVPs (2 each) + the central columns (2 per evaluation pair), every element
      // within 1000: unnormalised, by the declared structure's 3 column groups (a's columns, b's, s), as a
      // Jacobian takes them (each of the 11 columns was a pair of its own: 29 calls); normalised, dense.
      const groups = normalize ? undefined : 3;
      assert.deepEqual([response.stats?.column_groups || undefined, response.stats?.sparsity_source || undefined], [groups, normalize ? undefined : "tesseract"]);
      assert.equal(counter.calls - before, 1 + 3 * 2 + (groups ?? 2 * A.length + 1) * 2);
      assert.equal(response.stats?.apply_calls, counter.calls - before);
    });
  }

  it("inputs with no elements: nothing to check, and passed (it failed for a budget spent on nothing)", async () => {
    const empty = { a: f64([]), b: f64([]), s: ndarray(Float64Array.of(2), []), normalize: false };
    const response = await vector.checkGradients({ inputs: empty, inputPaths: ["a", "b"] });
    assert.equal(response.passed, true, JSON.stringify(response.checks));
    for (const c of response.checks) {
      assert.deepEqual([c.failures, c.rows_checked], [0, 0], JSON.stringify(c));
      assert.match(c.message, /^nothing to check: (a|b|result) has no elements$/);
    }
  });

  it("vectoradd: one endpoint, chosen paths, forward differences with a looser rtol", async () => {
    const response = await vector.checkGradients({
      inputs: vectorInputs(true),
      inputPaths: ["a"],
      outputPaths: ["result"],
      endpoints: ["jacobian"],
      rtol: 1e-3,
      atol: 1e-5,
      options: { algorithm: Algorithm.ALGORITHM_FORWARD, eps: 1e-6 },
    });
    assert.equal(response.passed, true, JSON.stringify(response.checks));
    assert.deepEqual(
      response.checks.map((c) => [c.endpoint, c.input_path, c.output_path, c.rows_checked]),
      [["jacobian", "a", "result", A.length]],
    );
  });

  for (const normalize of [false, true]) {
    it(`a wrong analytic d result / d s is caught (normalize ${normalize}), on that pair only, for every endpoint`, async () => {
      const response = await wrong.checkGradients({ inputs: vectorInputs(normalize) });
      assert.equal(response.passed, false);
      const failing = response.checks.filter((c) => c.failures > 0).map((c) => `${c.endpoint} ${c.input_path} ${c.output_path}`);
      assert.deepEqual(failing, ["jacobian s result", "jvp s result", "vjp s result"]);
      for (const input of ["a", "b"]) for (const e of ["jacobian", "jvp", "vjp"]) assert.equal(find(response.checks, e, input).failures, 0);

      const jac = find(response.checks, "jacobian", "s");
      assert.deepEqual([jac.rows_checked, jac.failures], [1, 1]);
      // Every entry of the column is off by a factor 1.5: relative error 0.5 exactly (up to FD noise).
      assert.ok(Math.abs(jac.max_rel_error - (WRONG_FACTOR - 1)) < 1e-6, String(jac.max_rel_error));
      assert.match(jac.message, /^1 of 1 row failed \(\d of 5 values beyond atol 0\.000001 \+ rtol 0\.0001·\|fd\|\); worst at result\[\d\] w\.r\.t\. s: analytic -?[\d.e-]+, finite differences -?[\d.e-]+$/);
      for (const e of ["jvp", "vjp"]) {
        const c = find(response.checks, e, "s");
        assert.deepEqual([c.rows_checked, c.failures], [1, 1], c.message);
        assert.ok(Math.abs(c.max_rel_error - (WRONG_FACTOR - 1)) < 1e-6, `${e}: ${c.max_rel_error}`);
      }
      if (!normalize) {
        // d result / ds = a exactly; the analytic says 1.5 a; the worst entry is where |a| is largest.
        assert.ok(Math.abs(jac.max_abs_error - (WRONG_FACTOR - 1) * 3) < 1e-8, String(jac.max_abs_error));
        assert.match(jac.message, /worst at result\[4\] w\.r\.t\. s: analytic 4\.5, finite differences 3$/);
      }
    });
  }

  // FP32 inputs: a JVP's points round per element, so the direction taken strays from the tangent by
  // up to an ulp of each element over the step (4e-4 of the value here, beyond rtol 1e-4). The JVP
  // now takes that stray out (jvp.ts, straighten); the check still allows what the stray left can
  // explain (Σ |J_ij| stray_j) and no more. Correct gradients failed before.
  const f32Inputs = (normalize: boolean): Arrays<VectorInputs> => {
    const n = 40;
    const f32 = (f: (i: number) => number) => ndarray(Float32Array.from({ length: n }, (_, i) => f(i)), [n]);
    return { a: f32((i) => 3 * Math.sin(i + 1)), b: f32((i) => 2 * Math.cos(i)), s: ndarray(Float32Array.of(S), []), normalize };
  };
  for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE]) {
    it(`FP32 inputs: vectoradd's correct gradients pass with the default tolerances (${Algorithm[algorithm]})`, async () => {
      for (const normalize of [false, true]) {
        const response = await vector.checkGradients({ inputs: f32Inputs(normalize), options: { algorithm } });
        assert.equal(response.passed, true, JSON.stringify(response.checks.filter((c) => c.failures > 0)));
        // Central and Richardson's JVP along a's random tangent is J v to ~1e-7 (it was off by more
        // than rtol, 4e-4); adaptive's steps are long enough to stray little, its truncation is ~1e-5.
        if (algorithm !== Algorithm.ALGORITHM_ADAPTIVE) assert.ok(find(response.checks, "jvp", "a").max_rel_error < 1e-6, find(response.checks, "jvp", "a").message);
      }
    });
  }

  it("near a declared bound: the Jacobian's columns take one-sided stencils and pass; a JVP along a random tangent cannot step and says so", async () => {
    // a_0 = 5e-5 above a's lower bound 0, eps 1e-4: a column steps one-sided, a direction not at all.
    const bounded = new TesseractRuntime({ ...vectoraddDefinition, bounds: { a: { lower: 0 } } }, __dirname);
    const inputs = vectorInputs(false, [5e-5, 1, 2, 3, 4]);
    const columns = await bounded.checkGradients({ inputs, inputPaths: ["a"], endpoints: ["jacobian", "vjp"] });
    assert.equal(columns.passed, true, JSON.stringify(columns.checks));
    assert.ok(find(columns.checks, "jacobian", "a").rows_checked >= 5);
    await rejects(bounded.checkGradients({ inputs, inputPaths: ["a"], endpoints: ["jvp"] }), Code.FAILED_PRECONDITION, /^a step along the tangent takes a element 0 to -?[\d.e-]+, outside its domain \(0, inf\); use a smaller eps$/);
  });

  // FP32 outputs: a difference over a step of 1e-4 carries the outputs' rounding, ~ulp(f)/h: 2e-4 to
  // 4e-2 of these derivatives. Correct gradients failed at the default tolerances; the check now allows
  // what the engine says each value may be off by (its error estimate, or 2 × the rounding it carries).
  describe("FP32 outputs (polynomial's f = x³ + y·sin x in FP32, from FP64 inputs)", () => {
    const fixture = path.join(__dirname, "../../test/fixtures/polynomial");
    // The engine's default step (1e-4 absolute), not the fixture's 1e-5: FP32 rounding over 1e-5 is ~1 % of these derivatives.
    const definition = { ...require(path.join(fixture, "polynomial.js")).default, finiteDifferences: undefined };
    const gradients = (wrongBy: number) => ({
      jacobian(inputs: { x: ndarray.NdArray; y: ndarray.NdArray }) {
        const x = Array.from(inputs.x.data as Float64Array);
        const y = inputs.y.get();
        const dx = new Float64Array(x.length * x.length);
        x.forEach((v, i) => (dx[i * x.length + i] = wrongBy * (3 * v * v + y * Math.cos(v))));
        return { f: { x: ndarray(dx, [x.length, x.length]), y: ndarray(Float64Array.from(x, Math.sin), [x.length]) } };
      },
    });
    const fp32Inputs = { x: f64([1.3, 2.1, 2.9]), y: f64([0.5], []), params: {}, blocks: [], mode: "fp32" };

    for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_RICHARDSON]) {
      it(`${Algorithm[algorithm]}: correct gradients pass; d f / d x 1 % off is caught on every endpoint; by column groups too (a declared diagonal d f / d x)`, async () => {
        const diagonal = [{ output_path: "f", input_path: "x", output_index: [0, 1, 2], input_index: [0, 1, 2] }];
        for (const sparsity of [undefined, () => diagonal]) {
          const right = new TesseractRuntime({ ...definition, gradients: gradients(1), sparsity }, fixture);
          const passing = await right.checkGradients({ inputs: fp32Inputs, inputPaths: ["x", "y"], outputPaths: ["f"], options: { algorithm } });
          assert.equal(passing.passed, true, JSON.stringify(passing.checks.filter((c) => c.failures > 0)));
          // x's columns in one group, y's (touching every f) in another.
          assert.equal(passing.column_groups, sparsity && 2);
          const off = new TesseractRuntime({ ...definition, gradients: gradients(1.01), sparsity }, fixture);
          const failing = await off.checkGradients({ inputs: fp32Inputs, inputPaths: ["x", "y"], outputPaths: ["f"], options: { algorithm } });
          assert.deepEqual(
            failing.checks.filter((c) => c.failures > 0).map((c) => `${c.endpoint} ${c.input_path}`),
            ["jacobian x", "jvp x", "vjp x"],
          );
        }
      });
    }

    // A NaN entry passed the jvp check (|J|·stray was NaN, and no comparison with a NaN allowance
    // fails); data shorter than its shape was compared as undefined, 0 or NaN; a plain list was "no entry".
    for (const [what, spoil, message] of [
      ["NaN", (f: ndarray.NdArray) => void ((f.data as Float64Array)[0] = NaN), "holds NaN at flat index 0"],
      ["Infinity", (f: ndarray.NdArray) => void ((f.data as Float64Array)[4] = Infinity), "holds Infinity at flat index 4"],
      ["data short of its shape", (f: ndarray.NdArray) => ndarray((f.data as Float64Array).subarray(0, 8), [3, 3]), "has 8 values for its shape's 9"],
      ["a plain list", (f: ndarray.NdArray) => Array.from(f.data as Float64Array), "is a plain list, expected an ndarray of shape [3, 3] (output shape, then input shape)"],
    ] as const) {
      it(`an analytic entry with ${what} fails every endpoint, saying so`, async () => {
        const broken = {
          jacobian(inputs: { x: ndarray.NdArray; y: ndarray.NdArray }) {
            const result = gradients(1).jacobian(inputs) as { f: Record<string, unknown> };
            result.f.x = spoil(result.f.x as ndarray.NdArray) ?? result.f.x;
            return result;
          },
        };
        const inputs = { x: f64([1.3, 2.1, 2.9]), y: f64([0.5], []), params: {}, blocks: [], mode: "" };
        const response = await new TesseractRuntime({ ...definition, gradients: broken }, fixture).checkGradients({ inputs, inputPaths: ["x"], outputPaths: ["f"] });
        assert.equal(response.passed, false);
        assert.deepEqual(
          response.checks.map((c) => [c.endpoint, c.failures, c.message]),
          ["jacobian", "jvp", "vjp"].map((endpoint) => [endpoint, 1, `the analytic jacobian's entry d f / d x ${message}`]),
        );
      });
    }

    // FP32 x = [2.5, 0.01]: the spacing of FP32 numbers at 2.5 lengthened the JVP's step past the
    // 1e-4 x_1 = 0.01 takes, and the truncation of x³ over it (7e-4 relative) failed a correct
    // gradient. A failed comparison is now taken again with Richardson's rule before it counts.
    it("FP32 inputs of mixed scale: a correct gradient's JVP check passes, confirmed by Richardson's rule; one 1 % off still fails", async () => {
      const mixed = { x: ndarray(Float32Array.of(2.5, 0.01), [2]), y: ndarray(Float32Array.of(0), []), params: {}, blocks: [], mode: "" };
      const request = { inputs: mixed, inputPaths: ["x"], outputPaths: ["f"], endpoints: ["jvp" as const], atol: 1e-12 };
      const right = await new TesseractRuntime({ ...definition, gradients: gradients(1) }, fixture).checkGradients(request);
      assert.equal(right.passed, true, JSON.stringify(right.checks));
      // The confirmation is counted: Richardson's 4 + the noise probe's 8 (f(x) is the check's own apply's) + 2 for each stencil straightened.
      const unconfirmed = await new TesseractRuntime({ ...definition, gradients: gradients(1) }, fixture).checkGradients({ ...request, atol: 1 });
      assert.deepEqual([unconfirmed.apply_calls, right.apply_calls], [5, 5 + 4 + 8 + 2 * 2]);
      const off = await new TesseractRuntime({ ...definition, gradients: gradients(1.01) }, fixture).checkGradients(request);
      assert.deepEqual(off.checks.map((c) => [c.endpoint, c.failures]), [["jvp", 1]]);
    });
  });

  it("FP32 inputs: a wrong analytic d result / d s is still caught on every endpoint, and only there", async () => {
    const response = await wrong.checkGradients({ inputs: f32Inputs(false) });
    const failing = response.checks.filter((c) => c.failures > 0).map((c) => `${c.endpoint} ${c.input_path} ${c.output_path}`);
    assert.deepEqual(failing, ["jacobian s result", "jvp s result", "vjp s result"]);
  });

  it("a wrong entry is caught even when sampling: every input path gets a row", async () => {
    const n = 200;
    const before = wrongCounter.calls;
    // Column by column (SPARSITY_MODE_DENSE), as for a Tesseract that declares no structure.
    const response = await wrong.checkGradients({ inputs: long(n), endpoints: ["jacobian"], maxEvals: 7, options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
    assert.equal(wrongCounter.calls - before, 7, "1 apply + one central column (2) per input path");
    assert.equal(response.passed, false);
    assert.deepEqual(
      response.checks.map((c) => [c.input_path, c.rows_checked, c.failures]),
      [["a", 1, 0], ["b", 1, 0], ["s", 1, 1]],
    );
  });

  it("max_evals bounds the apply calls; rows are sampled with the seed", async () => {
    const n = 200;
    let before = counter.calls;
    // Column by column (SPARSITY_MODE_DENSE), as for a Tesseract that declares no structure.
    const options = { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE };
    const small = await vector.checkGradients({ inputs: long(n), endpoints: ["jacobian", "vjp"], maxEvals: 41, seed: 7, options });
    assert.equal(counter.calls - before, 41, "1 apply + 20 central columns");
    assert.equal(small.passed, true, JSON.stringify(small.checks));
    const rows = (checks: GradientCheck[], endpoint: string) => checks.filter((c) => c.endpoint === endpoint).map((c) => c.rows_checked);
    assert.equal(rows(small.checks, "jacobian").reduce((x, y) => x + y, 0), 20);
    assert.deepEqual(rows(small.checks, "vjp"), rows(small.checks, "jacobian"), "vjp contracts the same columns");
    assert.ok(rows(small.checks, "jacobian").every((r) => r >= 1), "each input path gets at least one row");

    // Same seed, same rows (the worst entries named in the messages agree too); another seed, others.
    const again = await vector.checkGradients({ inputs: long(n), endpoints: ["jacobian", "vjp"], maxEvals: 41, seed: 7, options });
    assert.deepEqual(again.checks, small.checks);
    const other = await vector.checkGradients({ inputs: long(n), endpoints: ["jacobian", "vjp"], maxEvals: 41, seed: 8, options });
    assert.notDeepEqual(other.checks.map((c) => c.message), small.checks.map((c) => c.message));

    // The default budget, 1000: 3 JVPs (6) + all 401 central columns (802) fit; f(x) is the one the
    // checks above on the same inputs evaluated (the evaluation cache).
    before = counter.calls;
    const all = await vector.checkGradients({ inputs: long(n), options });
    assert.equal(counter.calls - before, 6 + 2 * (2 * n + 1));
    assert.equal(all.passed, true);
    // A longer vector (601 elements) does not fit: the default budget is used up to its last pair of evaluations.
    before = counter.calls;
    const capped = await vector.checkGradients({ inputs: long(300), options });
    const calls = counter.calls - before;
    assert.ok(calls <= 1000 && calls >= 999, `${calls} apply calls`);
    assert.equal(capped.passed, true);
    assert.equal(rows(capped.checks, "jacobian").reduce((x, y) => x + y, 0), (999 - 1 - 6) / 2);
  });

  describe("by the Tesseract's declared structure (vectoradd unnormalised: a's columns, b's, s, three column groups)", () => {
    const n = 200;
    const totalRows = (checks: GradientCheck[], endpoint: string) => checks.filter((c) => c.endpoint === endpoint).reduce((sum, c) => sum + c.rows_checked, 0);

    // Inputs no other check evaluated (the evaluation cache would answer f(x)): n + 1, n + 2, n + 3 elements per vector.
    for (const [k, algorithm, perGroup, once] of [
      [1, Algorithm.ALGORITHM_CENTRAL, 2, 0],
      [2, Algorithm.ALGORITHM_FORWARD, 1, 0], // f(x): the check's first apply
      [3, Algorithm.ALGORITHM_RICHARDSON, 4, 8], // and the noise probe, once
    ] as const) {
      it(`${Algorithm[algorithm]}: every one of the ${2 * (n + k) + 1} columns, checked in 3 groups (${perGroup} evaluations each), as a Jacobian takes them; column by column took ${perGroup} per column`, async () => {
        const options = { algorithm };
        const before = counter.calls;
        const response = await vector.checkGradients({ inputs: long(n + k), endpoints: ["jacobian", "vjp"], options, rtol: algorithm === Algorithm.ALGORITHM_FORWARD ? 1e-3 : 0 });
        assert.equal(response.passed, true, JSON.stringify(response.checks.filter((c) => c.failures > 0)));
        assert.equal(counter.calls - before, 1 + 3 * perGroup + once);
        assert.deepEqual([response.stats?.apply_calls, response.stats?.column_groups, response.stats?.sparsity_source], [counter.calls - before, 3, "tesseract"]);
        assert.equal(totalRows(response.checks, "jacobian"), 2 * (n + k) + 1);
        assert.equal(totalRows(response.checks, "vjp"), 2 * (n + k) + 1);
        assert.ok(find(response.checks, "jacobian", "a").max_rel_error < (algorithm === Algorithm.ALGORITHM_FORWARD ? 1e-6 : 1e-9), find(response.checks, "jacobian", "a").message);
      });
    }

    it("a wrong entry is still caught, and only there; the least budget (1 apply + a pair per input path) checks every column", async () => {
      const before = wrongCounter.calls;
      const response = await wrong.checkGradients({ inputs: long(n + 4), endpoints: ["jacobian"], maxEvals: 7 });
      assert.equal(wrongCounter.calls - before, 7);
      assert.deepEqual(
        response.checks.map((c) => [c.input_path, c.rows_checked, c.failures]),
        [["a", n + 4, 0], ["b", n + 4, 0], ["s", 1, 1]],
      );
      assert.match(find(response.checks, "jacobian", "s").message, /w\.r\.t\. s: analytic [\d.e-]+, finite differences [\d.e-]+$/);
    });

    it("max_evals below what every group takes: the groups of the sampled elements, one per input path first", async () => {
      // Declared banded in a (result_i and result_{i+1} for a_i: a superset of the true diagonal), a's
      // columns take 2 groups: 4 in all, and the least max_evals (1 + a pair per input path) holds 3.
      let calls = 0;
      const band = Uint32Array.from({ length: 2 * n - 1 }, (_, k) => (k + 1) >> 1);
      const bandColumns = Uint32Array.from({ length: 2 * n - 1 }, (_, k) => k >> 1);
      const diagonal = Uint32Array.from({ length: n }, (_, i) => i);
      const runtime = new TesseractRuntime(
        {
          ...vectoraddDefinition,
          apply: (inputs: never) => (calls++, vectoraddDefinition.apply(inputs)),
          sparsity: () => [
            { output_path: "result", input_path: "a", output_index: band, input_index: bandColumns },
            { output_path: "result", input_path: "b", output_index: diagonal, input_index: diagonal },
          ],
        },
        __dirname,
      );
      const full = await runtime.checkGradients({ inputs: long(n) as never, endpoints: ["jacobian"] });
      assert.deepEqual([full.passed, full.column_groups, full.apply_calls, calls], [true, 4, 1 + 4 * 2, 1 + 4 * 2]);
      const least = await runtime.checkGradients({ inputs: long(n) as never, endpoints: ["jacobian"], maxEvals: 7 });
      // f(x) from the evaluation cache this time.
      assert.deepEqual([least.passed, least.column_groups, least.apply_calls, calls], [true, 3, 3 * 2, 1 + 4 * 2 + 3 * 2]);
      // Every path has a row; of the 2n + 1 columns, those of the group left out are not checked.
      const rows = least.checks.map((c) => c.rows_checked);
      assert.deepEqual([least.checks.map((c) => c.input_path), rows.every((r) => r >= 1)], [["a", "b", "s"], true]);
      assert.ok(rows.reduce((x, y) => x + y, 0) < 2 * n + 1 && full.checks.reduce((x, c) => x + c.rows_checked, 0) === 2 * n + 1, JSON.stringify(rows));
    });
  });

  it("an analytic Jacobian over the message limit is RESOURCE_EXHAUSTED before the Tesseract is asked for it (two vectors of 20 000 had it allocate 6.4 GB, and loop for hours on the event loop)", async () => {
    const n = 3000;
    const inputs = long(n);
    // result (3 000) × a, b and s (6 001) in FP64: 144 MB.
    await clientRejects(
      vector.checkGradients({ inputs }),
      "RESOURCE_EXHAUSTED",
      /^checking these paths takes the analytic Jacobian whole: 18003000 FP64 values \(144024000 bytes\), over the 67108864-byte message limit \(--max-message-bytes\); check fewer or smaller paths \(input_paths, output_paths\)$/,
    );
    // d result / d s alone is 3 000 values: checked.
    const { passed } = await vector.checkGradients({ inputs, inputPaths: ["s"], maxEvals: 20 });
    assert.ok(passed);
  });

  it("vectoradd's analytic Jacobian of two 2 000-element vectors, normalised (64 MB, within the limit), is checked and passes (it was multiplied out as dense matrices: a minute on the event loop)", async () => {
    const n = 2000;
    const inputs = { ...long(n), normalize: true };
    const { passed, checks } = await vector.checkGradients({ inputs, inputPaths: ["a", "b"], endpoints: ["jacobian", "jvp"], maxEvals: 21 });
    assert.ok(passed, JSON.stringify(checks));
    assert.deepEqual(checks.map((c) => [c.endpoint, c.input_path, c.rows_checked > 0]), [["jacobian", "a", true], ["jacobian", "b", true], ["jvp", "a", true], ["jvp", "b", true]]);
  });

  it("a max_evals too small to check every input path once is INVALID_ARGUMENT", async () => {
    await clientRejects(vector.checkGradients({ inputs: vectorInputs(false), maxEvals: 12 }), "INVALID_ARGUMENT", /^max_evals 12 is too small: checking 3 input paths \(jacobian, jvp, vjp\) takes at least 13 apply calls/);
  });

  it("bad paths, endpoints, tolerances and options are INVALID_ARGUMENT", async () => {
    const inputs = vectorInputs(false);
    await clientRejects(vector.checkGradients({ inputs, inputPaths: ["c"] }), "INVALID_ARGUMENT", /^inputPaths \(input_paths\): input path "c" does not exist; differentiable input paths: a, b, s/);
    await clientRejects(vector.checkGradients({ inputs, outputPaths: ["nope"] }), "INVALID_ARGUMENT", /^outputPaths \(output_paths\): output path "nope" is not a differentiable path/);
    await clientRejects(vector.checkGradients({ inputs, endpoints: ["hessian"] }), "INVALID_ARGUMENT", /^endpoints: unknown endpoint "hessian"; expected jacobian, jvp or vjp/);
    await clientRejects(vector.checkGradients({ inputs, endpoints: ["jvp", "jacobian_vector_product"] }), "INVALID_ARGUMENT", /^endpoints: "jacobian_vector_product" is listed more than once \(as "jvp" before\)$/);
    // Names of Object's members are no endpoints (they checked nothing and passed).
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      await clientRejects(vector.checkGradients({ inputs, endpoints: [name] }), "INVALID_ARGUMENT", new RegExp(`^endpoints: unknown endpoint "${name}"; expected jacobian, jvp or vjp`));
    }
    // The caller's text quoted, escaped and cut short (it went raw and whole, a terminal's escape sequence included).
    await clientRejects(vector.checkGradients({ inputs, endpoints: [`\u001b[31m${"e".repeat(5000)}`] }), "INVALID_ARGUMENT", /^endpoints: unknown endpoint "\\u001b\[31me+"… \(5005 characters\); expected jacobian, jvp or vjp/);
    await clientRejects(vector.checkGradients({ inputs, rtol: -1 }), "INVALID_ARGUMENT", /^rtol must be a non-negative finite number/);
    await clientRejects(vector.checkGradients({ inputs, options: { eps: -1 } }), "INVALID_ARGUMENT", /options\.eps must be a positive finite number/);
    await clientRejects(vector.checkGradients({ inputs, inputPaths: ["a"], options: { eps_by_path: { b: 1e-3 } } }), "INVALID_ARGUMENT", /^options\.eps_by_path has key "b", which is not an input path being checked \(a\)/);
    // A NaN input is refused naming it, as the Jacobian refuses it (an apply at x + t v answered NaN, naming no input).
    await clientRejects(vector.checkGradients({ inputs: { ...inputs, s: f64([NaN], []) } }), "INVALID_ARGUMENT", /^s is NaN: finite differences need finite inputs$/);
  });

  it("a Tesseract without analytic gradients is UNIMPLEMENTED; Describe lists CheckGradients only with them", async () => {
    const mesh = new TesseractClient<MeshInputs, MeshOutputs>(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs });
    try {
      await clientRejects(mesh.checkGradients({ inputs: sampleMeshInputs(3) }), "UNIMPLEMENTED", /^Tesseract "meshstats" has no analytic gradients/);
      assert.ok(!(await mesh.describe()).endpoints.includes("CheckGradients"));
    } finally {
      mesh.close();
    }
    assert.ok((await vector.describe()).endpoints.includes("CheckGradients"));
  });

  it("in process: the runtime method, and the same UNIMPLEMENTED", async () => {
    const { runtime } = counted("vectoradd");
    const result = await runtime.checkGradients({ inputs: vectorInputs(true) as never, endpoints: ["vjp"], seed: "18446744073709551615" });
    assert.equal(result.passed, true);
    assert.equal(result.apply_calls, 1 + 11 * 2);
    assert.equal(result.max_evals, 1000);
    await rejects(counted("meshstats").runtime.checkGradients({ inputs: {} }), Code.UNIMPLEMENTED, /no analytic gradients/);
  });

  it("gives I/O turns while it runs (hundreds of JVPs, each too short to give one, held health checks for a second)", async () => {
    const { runtime } = counted("vectoradd");
    let turns = 0;
    let running = true;
    const count = () => {
      turns++;
      if (running) setImmediate(count);
    };
    setImmediate(count);
    const result = await runtime.checkGradients({ inputs: long(300) as never, options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
    running = false;
    assert.equal(result.passed, true);
    // 601 FD columns and 3 JVPs, each a request of its own: I/O got turns in between.
    // Measured: ~55 turns (about one a millisecond); 7 without them.
    assert.ok(turns > 25, `${turns} turns`);
  });
});

describe("CLI: check-gradients", () => {
  const CLI = path.join(__dirname, "../cli/cli.js");
  const WRONG_MODULE = path.join(__dirname, "fixtures/wrong-vectoradd/wrong-vectoradd.js");
  const servers: ChildProcess[] = [];

  async function serve(spec: string): Promise<string> {
    const server = spawn(process.execPath, [CLI, "serve", spec, "--port", "0", "--workers", "0"], { stdio: ["ignore", "pipe", "ignore"] });
    servers.push(server);
    const [first] = (await once(createInterface({ input: server.stdout! }), "line")) as [string];
    const match = /^listening on (127\.0\.0\.1:\d+)$/.exec(first);
    assert.ok(match, `first stdout line: ${first}`);
    return match[1];
  }

  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args]);
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  }

  let vectorAddress: string;
  let wrongAddress: string;

  before(async () => {
    [vectorAddress, wrongAddress] = await Promise.all([serve("vectoradd"), serve(WRONG_MODULE)]);
  });

  after(async () => {
    await Promise.all(
      servers.map(async (server) => {
        const exited = once(server, "exit");
        server.kill("SIGTERM");
        const [code] = await exited;
        assert.equal(code, 0);
      }),
    );
  });

  const payload = JSON.stringify({ inputs: { a: A, b: B, s: S, normalize: true }, endpoints: ["jacobian", "jvp", "vjp"] });

  it("exits 0 and prints the passing response on vectoradd", async () => {
    const { code, stdout, stderr } = await cli("check-gradients", payload, "--address", vectorAddress, "--rtol", "1e-5", "--max-evals", "500", "--seed", "3");
    assert.equal(code, 0, stderr);
    const response = JSON.parse(stdout) as { passed: boolean; checks: GradientCheck[] };
    assert.equal(response.passed, true);
    assert.equal(response.checks.length, 9);
    assert.ok(response.checks.every((c) => c.failures === 0 && c.rows_checked > 0));
  });

  it("takes the columns by the Tesseract's column groups, or one by one under --sparsity-mode dense", async () => {
    const unnormalised = JSON.stringify({ inputs: { a: A, b: B, s: S }, endpoints: ["jacobian"] });
    const [grouped, dense] = await Promise.all([cli("check-gradients", unnormalised, "--address", vectorAddress), cli("check-gradients", unnormalised, "--address", vectorAddress, "--sparsity-mode", "dense")]);
    assert.deepEqual([grouped.code, dense.code], [0, 0], grouped.stderr + dense.stderr);
    assert.match(grouped.stderr, /^stats: \d+ apply calls in [0-9.e-]+ s; 3 column groups \(sparsity: tesseract\)\n$/);
    assert.match(dense.stderr, /^stats: \d+ apply calls in [0-9.e-]+ s\n$/);
  });

  it("exits 1 on the wrong Jacobian, still printing the response", async () => {
    const { code, stdout, stderr } = await cli("check-gradients", payload, "--address", wrongAddress);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^stats: \d+ apply calls in [0-9.e-]+ s\n$/, "only the stats on stderr");
    const response = JSON.parse(stdout) as { passed: boolean; checks: GradientCheck[] };
    assert.equal(response.passed, false);
    assert.deepEqual(
      response.checks.filter((c) => c.failures > 0).map((c) => [c.endpoint, c.input_path, c.output_path]),
      [["jacobian", "s", "result"], ["jvp", "s", "result"], ["vjp", "s", "result"]],
    );
  });

  it("a declaration of zeros (scaled-vectoradd at s = 0: result = b) is checked at f(x) alone, its columns known; a fractional index is INTERNAL saying it is no whole number", async () => {
    const scaled = await serve(path.join(__dirname, "fixtures/scaled-vectoradd/scaled-vectoradd.js"));
    const at = (s: number) => JSON.stringify({ inputs: { a: A, b: B, s }, input_paths: ["a"], endpoints: ["jacobian", "vjp"] });
    const zero = await cli("check-gradients", at(0), "--address", scaled);
    assert.equal(zero.code, 0, zero.stderr);
    // One group of the zero columns took 2 more.
    assert.match(zero.stderr, /^stats: 1 apply call in [0-9.e-]+ s; 0 column groups \(sparsity: tesseract\)\n$/);
    const response = JSON.parse(zero.stdout) as { passed: boolean; checks: GradientCheck[] };
    assert.deepEqual([response.passed, response.checks.map((c) => [c.endpoint, c.rows_checked, c.failures])], [true, [["jacobian", A.length, 0], ["vjp", A.length, 0]]]);
    const broken = await cli("check-gradients", at(-1), "--address", scaled);
    assert.deepEqual([broken.code, broken.stdout], [1, ""]);
    assert.equal(broken.stderr, 'tesseract-grpc check-gradients: INTERNAL: the Tesseract\'s sparsity declaration[0] (output_path "result", input_path "a"): output_index[1] = 1.5: expected a whole number (a flat row-major index into result)\n');
  });

  it("a failed call: the status on stderr, exit 1", async () => {
    const bad = await cli("check-gradients", JSON.stringify({ inputs: { a: A, b: B }, input_paths: ["c"] }), "--address", vectorAddress);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, "");
    assert.match(bad.stderr, /^tesseract-grpc check-gradients: INVALID_ARGUMENT: input_paths: input path "c" does not exist/);
  });
});

describe("CheckGradients' modules", () => {
  const leaf = (path: string, shape: number[]) => ({ path, shape, size: shape.reduce((a, b) => a * b, 1) });

  it("sampleElements: one element per leaf first, then distinct elements; all of them in order when the count allows; a function of the seed", () => {
    const leaves = [leaf("a", [50]), leaf("s", []), leaf("m", [4, 5])];
    const picked = sampleElements(leaves, 30, 7n);
    assert.equal(picked.length, 30);
    assert.deepEqual(picked.slice(0, 3).map((e) => e.leaf), [0, 1, 2]);
    const keys = picked.map((e) => `${e.leaf}:${e.index}`);
    assert.equal(new Set(keys).size, 30);
    for (const e of picked) assert.ok(e.index >= 0 && e.index < leaves[e.leaf].size);
    assert.deepEqual(sampleElements(leaves, 30, 7n), picked);
    assert.notDeepEqual(sampleElements(leaves, 30, 8n), picked);
    const all = sampleElements(leaves, 71, 7n);
    assert.deepEqual(all.slice(49, 52), [{ leaf: 0, index: 49 }, { leaf: 1, index: 0 }, { leaf: 2, index: 0 }]);
    assert.equal(all.length, 71);
  });

  it("randomVector: seeded values in ±[0.5, 1), one stream per purpose", () => {
    const v = randomVector(seededGenerator(3n, STREAMS.tangents), 1000);
    assert.ok(v.every((x) => Math.abs(x) >= 0.5 && Math.abs(x) < 1));
    assert.ok(v.some((x) => x < 0) && v.some((x) => x > 0));
    assert.deepEqual(randomVector(seededGenerator(3n, STREAMS.tangents), 1000), v);
    assert.notDeepEqual(randomVector(seededGenerator(3n, STREAMS.cotangents), 1000), v);
  });

  it("Tally: rows fail on any value beyond atol + rtol·|fd|; NaN is an infinite error; the worst value is named", () => {
    const t = new Tally(1e-3, 1e-6);
    t.value(1, 1.0005, () => "x[0]");
    t.value(0, 5e-7, () => "x[1]");
    t.endRow();
    t.value(2, 2.1, () => "x[2]");
    t.value(NaN, 1, () => "x[3]");
    t.endRow();
    assert.deepEqual([t.rows, t.failedRows, t.values, t.failedValues, t.maxAbs, t.maxRel], [2, 1, 4, 2, Infinity, Infinity]);
    assert.equal(t.message("row"), "1 of 2 rows failed (2 of 4 values beyond atol 0.000001 + rtol 0.001·|fd|); worst at x[3]: analytic NaN, finite differences 1");
    const ok = new Tally(1e-4, 1e-6);
    ok.value(3, 3, () => "y");
    ok.endRow();
    assert.equal(ok.message("tangent"), "ok: 1 tangent, 1 value within atol + rtol·|fd|; worst at y: analytic 3, finite differences 3");
    // Values 7 digits do not tell apart are shown with as many as do.
    const close = new Tally(0, 0);
    close.value(2, 2.0000000004, () => "z");
    close.endRow();
    assert.match(close.message("row"), /worst at z: analytic 2, finite differences 2\.0000000004$/);
  });

  it("report: an unusable analytic entry fails its check; a pair never tallied is reported as not checked", () => {
    const [a, b, out] = [leaf("a", [2]), leaf("b", [2]), leaf("result", [2])];
    const tallies = new Tallies(1e-4, 1e-6);
    compareColumn(tallies.get("jacobian", a, out), Float64Array.of(1, 0, 0, 1), Float64Array.of(1, 0), new Float64Array(2), a, 0, out);
    const entry = (_: unknown, l: { path: string }) => (l.path === "a" ? Float64Array.of(1, 0, 0, 1) : "no entry for b");
    const checks = report(["jacobian", "jvp"], [a, b], [out], entry, tallies, 9);
    assert.deepEqual(
      checks.map((c) => [c.endpoint, c.input_path, c.rows_checked, c.failures, c.message.slice(0, 12)]),
      [
        ["jacobian", "a", 1, 0, "ok: 1 row, 2"],
        ["jacobian", "b", 0, 1, "no entry for"],
        ["jvp", "a", 0, 0, "not checked:"],
        ["jvp", "b", 0, 1, "no entry for"],
      ],
    );
  });
});
