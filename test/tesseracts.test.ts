/**
 * The bundled Tesseracts through the runtime: Jacobians, JVPs and VJPs against analytic derivatives
 * for every algorithm, exact evaluation counts, validation, and faults raised by apply.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import ndarray from "ndarray";
import { Code } from "../index";
import { loadTesseract } from "../index";
import { defaultNumSamples } from "../server/fd/rows";
import { TesseractRuntime } from "../server/runtime";
import { Algorithm, SparsityMode } from "../index";
import { assertClose, counted, f32, f64, maxAbsDiff, meshInputs, meshJacobian, rejects, rms } from "./helpers";

const OUTPUTS = ["statistics.first_point_coordinates", "statistics.barycenter"];


describe("meshstats", () => {
  for (const N of [7, 1000]) {
    const n = 3 * N;
    const K = defaultNumSamples(n);
    // meshstats is linear, so central and forward are exact but for rounding: |x| ~ 10, eps 1e-6,
    // error ~ 1e-16 * 10 / 1e-6 = 1e-9. Its declared structure groups the 3N elements into N
    // column groups (one element of each coordinate); SPARSITY_MODE_DENSE takes them one by one.
    const [GROUPED, DENSE] = [SparsityMode.SPARSITY_MODE_UNSPECIFIED, SparsityMode.SPARSITY_MODE_DENSE];
    const cases = [
      { algorithm: Algorithm.ALGORITHM_CENTRAL, name: "central", mode: GROUPED, calls: 2 * N, tol: 1e-8 },
      { algorithm: Algorithm.ALGORITHM_FORWARD, name: "forward", mode: GROUPED, calls: N + 1, tol: 1e-8 },
      { algorithm: Algorithm.ALGORITHM_CENTRAL, name: "central, dense", mode: DENSE, calls: 2 * n, tol: 1e-8 },
      { algorithm: Algorithm.ALGORITHM_FORWARD, name: "forward, dense", mode: DENSE, calls: n + 1, tol: 1e-8 },
    ];
    for (const { algorithm, name, mode, calls, tol } of cases) {
      it(`N = ${N}, ${name}: ${calls} apply calls for both outputs, exact Jacobian`, async () => {
        const { runtime, counter } = counted("meshstats");
        const { entries, stats } = await runtime.jacobian({ inputs: meshInputs(N), inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm, sparsity_mode: mode } });
        assert.equal(counter.calls, calls);
        assert.equal(stats.apply_calls, calls);
        assert.deepEqual(entries.map((e) => [e.outputPath, e.inputPath, e.shape]), [
          ["statistics.first_point_coordinates", "mesh.points", [3, N, 3]],
          ["statistics.barycenter", "mesh.points", [3, N, 3]],
        ]);
        assertClose(entries[0].values, meshJacobian(N, "first_point_coordinates"), tol);
        assertClose(entries[1].values, meshJacobian(N, "barycenter"), tol);
      });
    }

    it(`N = ${N}, stochastic: 2K = ${2 * K} apply calls, SPSA error at its theoretical size`, async () => {
      const { runtime, counter } = counted("meshstats");
      const { entries } = await runtime.jacobian({ inputs: meshInputs(N), inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm: Algorithm.ALGORITHM_STOCHASTIC, seed: 3 } });
      assert.equal(counter.calls, 2 * K);
      // Row c of d first/d points has one 1; every other entry j gets mean_k(D_k0c D_kj): RMS 1/sqrt(K).
      const error = rms(entries[0].values, meshJacobian(N, "first_point_coordinates"));
      assert.ok(error > 0.5 / Math.sqrt(K) && error < 1.5 / Math.sqrt(K), `RMS ${error}, theory ${1 / Math.sqrt(K)}`);
    });
  }

  it("the algorithm comes from inputs.fd_algorithm, and request options override it", async () => {
    const { runtime, counter } = counted("meshstats");
    const inputs = meshInputs(7, Algorithm.ALGORITHM_FORWARD);
    await runtime.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS });
    assert.equal(counter.calls, 7 + 1, "forward over 7 column groups");
    counter.calls = 0;
    await runtime.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: OUTPUTS, options: { algorithm: Algorithm.ALGORITHM_CENTRAL } });
    assert.equal(counter.calls, 2 * 7);
    assert.equal(runtime.options(inputs).eps, 1e-6);
    assert.equal(runtime.options(inputs, { eps: 1e-3 }).eps, 1e-3);
  });

  it("JVP: 2 apply calls; VJP: 2 × (N column groups) apply calls, both exact", async () => {
    const N = 50;
    const { runtime, counter } = counted("meshstats");
    const tangent = ndarray(Float64Array.from({ length: 3 * N }, (_, i) => Math.cos(i)), [N, 3]);
    const jvp = await runtime.jvp({ inputs: meshInputs(N), inputPaths: ["mesh.points"], outputPaths: OUTPUTS, tangent: { "mesh.points": tangent } });
    assert.equal(counter.calls, 2);
    const mean = [0, 1, 2].map((c) => Array.from({ length: N }, (_, i) => tangent.get(i, c)).reduce((a, b) => a + b) / N);
    // Exact for a linear map but for rounding: ulp(|f| ~ 10) / (2 eps / |v|), |v| ~ 8.7: ~1e-8.
    assertClose(jvp.result["statistics.barycenter"].data, mean, 2e-8);
    assertClose(jvp.result["statistics.first_point_coordinates"].data, [tangent.get(0, 0), tangent.get(0, 1), tangent.get(0, 2)], 2e-8);

    counter.calls = 0;
    const cot = { "statistics.first_point_coordinates": f64([1, 2, 3]), "statistics.barycenter": f64([-1, 0, 4]) };
    const vjp = await runtime.vjp({ inputs: meshInputs(N), inputPaths: ["mesh.points"], outputPaths: OUTPUTS, cotangent: cot });
    assert.equal(counter.calls, 2 * N);
    const expected = new Float64Array(3 * N).map((_, k) => (k < 3 ? [1, 2, 3][k] : 0) + [-1, 0, 4][k % 3] / N);
    assertClose(vjp.result["mesh.points"].data, expected, 1e-8);
    assert.deepEqual(vjp.result["mesh.points"].shape, [N, 3]);
  });

  it("validates the mesh with precise messages", () => {
    const { runtime } = counted("meshstats");
    const validate = (edit: (i: ReturnType<typeof meshInputs>) => void) => () => {
      const inputs = meshInputs(4);
      edit(inputs);
      runtime.definition.validate!(inputs);
    };
    const cases: [(i: ReturnType<typeof meshInputs>) => void, RegExp][] = [
      [(i) => (i.mesh.n_cells = 2), /^mesh\.num_points_per_cell has 1 element, expected mesh\.n_cells = 2$/],
      [(i) => (i.mesh.num_points_per_cell = f64([3]) as never), /^mesh\.cell_connectivity has 4 elements, expected sum\(mesh\.num_points_per_cell\) = 3$/],
      [(i) => (i.mesh.num_points_per_cell = f64([2.5]) as never), /^mesh\.num_points_per_cell\[0\] is 2\.5, expected a non-negative whole number$/],
      [(i) => (i.mesh.points = ndarray(new Float64Array(8), [4, 2])), /^mesh\.points has shape \[4, 2\], expected \(n_points, 3\)$/],
      [(i) => (i.mesh.points = ndarray(new Float32Array(12), [4, 3]) as never), /^mesh\.points has datatype DATA_TYPE_FP32, expected DATA_TYPE_FP64$/],
      [(i) => (i.mesh.points = undefined as never), /^mesh\.points is missing/],
      [(i) => (i.mesh.n_points = 5), /^mesh\.n_points is 5 but mesh\.points has 4 rows$/],
      [(i) => (i.mesh.n_points = 0), /^mesh\.n_points is 0 \(or unset\) but mesh\.points has 4 rows$/],
      [(i) => (i.mesh.cell_data = { "t.k": f64([1, 2], [2, 1]) } as never), /^mesh\.cell_data\.\{t\.k\} has 2 rows, expected 1$/],
    ];
    for (const [edit, message] of cases) assert.throws(validate(edit), (e: { code: number; message: string }) => e.code === Code.INVALID_ARGUMENT && message.test(e.message));
  });

  it("abstractEval gives the output shapes from the points' shape", async () => {
    const { runtime } = counted("meshstats");
    const outputs = await runtime.abstractEval({ mesh: { points: { shape: [1000, 3], datatype: 11 } } });
    assert.deepEqual(outputs, [
      { path: "statistics.first_point_coordinates", shape: [3], datatype: 11 },
      { path: "statistics.barycenter", shape: [3], datatype: 11 },
    ]);
  });
});

describe("vectoradd", () => {
  const inputs = (normalize: boolean, fp32 = false) => ({
    a: (fp32 ? f32 : f64)([1.5, -2, 0.25, 4]),
    b: (fp32 ? f32 : f64)([0.5, 1, -3, 2]),
    s: ndarray(Float64Array.of(1.7), []),
    normalize,
  });
  const PATHS = ["a", "b", "s"];

  for (const normalize of [false, true]) {
    for (const [algorithm, name, tol] of [[Algorithm.ALGORITHM_CENTRAL, "central", 1e-9], [Algorithm.ALGORITHM_FORWARD, "forward", 1e-5]] as const) {
      it(`${normalize ? "normalised" : "plain"}, ${name}: matches the analytic Jacobian`, async () => {
        const { runtime, counter } = counted("vectoradd");
        const x = inputs(normalize);
        const { entries } = await runtime.jacobian({ inputs: x, inputPaths: PATHS, outputPaths: ["result"], options: { algorithm, eps: name === "central" ? 1e-5 : 1e-8 } });
        // Plain: the declared structure (a and b diagonal, s dense) gives 3 column groups; normalised, dense.
        const groups = normalize ? 9 : 3;
        assert.equal(counter.calls, name === "central" ? 2 * groups : groups + 1);
        const exact = runtime.definition.gradients!.jacobian!(x, PATHS, ["result"]);
        // Central: h^2 |f'''| ~ 1e-10 here (zero when plain); forward: h/2 |f''| + 1e-16/h ~ 1e-8.
        for (const e of entries) assertClose(e.values, exact.result[e.inputPath].data, tol, e.inputPath);
      });
    }
  }

  it("the analytic Jacobian is s·I, I and a without normalisation", () => {
    const { runtime } = counted("vectoradd");
    const exact = runtime.definition.gradients!.jacobian!(inputs(false), PATHS, ["result"]);
    const eye = (k: number) => Float64Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? k : 0));
    assert.deepEqual(exact.result.a.data, eye(1.7));
    assert.deepEqual(exact.result.b.data, eye(1));
    assert.deepEqual(exact.result.s.data, Float64Array.of(1.5, -2, 0.25, 4));
    assert.deepEqual(exact.result.s.shape, [4]);
  });

  it("normalised at any magnitude: components of 1e200 and 1e-200 give the unit vector and its Jacobian (squared, they overflowed to a result of 0, answered OK, and underflowed to a refusal)", async () => {
    for (const magnitude of [1e200, 1e-200, 1e-310]) {
      const { runtime } = counted("vectoradd");
      const x = { a: f64([magnitude, 2 * magnitude, -2 * magnitude]), b: f64([0, 0, 0]), normalize: true };
      runtime.definition.validate!(x);
      const { result } = (await runtime.apply(x)) as { result: ndarray.NdArray<Float64Array> };
      assertClose(result.data, [1 / 3, 2 / 3, -2 / 3], 1e-15, `a ∝ ${magnitude}`);
      // dr/da = (I - r rᵀ) / |a|, past FP64's range for subnormal a; the step follows the magnitude.
      if (magnitude < 1e-300) continue;
      const exact = runtime.definition.gradients!.jacobian!(x, ["a"], ["result"]).result.a.data;
      const r = [1 / 3, 2 / 3, -2 / 3];
      assertClose(exact, Array.from({ length: 9 }, (_, k) => ((k % 4 === 0 ? 1 : 0) - r[Math.floor(k / 3)] * r[k % 3]) / (3 * magnitude)), 1e-12 / magnitude, `analytic, a ∝ ${magnitude}`);
      const { entries } = await runtime.jacobian({ inputs: x, inputPaths: ["a"], outputPaths: ["result"], options: { eps: 1e-6 * magnitude } });
      assertClose(entries[0].values, exact, 1e-8 / magnitude, `central, a ∝ ${magnitude}`);
    }
  });

  it("FP32 inputs: derivatives within FP32 rounding", async () => {
    const { runtime } = counted("vectoradd");
    const x = inputs(true, true);
    const { entries } = await runtime.jacobian({ inputs: x, inputPaths: ["a", "b"], outputPaths: ["result"], options: { eps: 1e-3 } });
    const exact = runtime.definition.gradients!.jacobian!(x, ["a", "b"], ["result"]);
    // The output is computed in FP64 from FP32 inputs, so only the step rounds to FP32 — and the
    // engine divides by the rounded step. Left: truncation h^2 |f'''| ~ 1e-6.
    for (const e of entries) assertClose(e.values, exact.result[e.inputPath].data, 1e-5, e.inputPath);
  });

  it("JVP and VJP agree with the analytic Jacobian (2 and 2n calls)", async () => {
    const { runtime, counter } = counted("vectoradd");
    const x = inputs(true);
    const J = runtime.definition.gradients!.jacobian!(x, PATHS, ["result"]).result;
    const va = f64([0.1, 0.2, -0.3, 0.4]);
    const vs = ndarray(Float64Array.of(-2), []);
    const { result } = await runtime.jvp({ inputs: x, inputPaths: ["a", "s"], outputPaths: ["result"], tangent: { a: va, s: vs } });
    assert.equal(counter.calls, 2);
    const expected = [0, 1, 2, 3].map((i) => [0, 1, 2, 3].reduce((sum, j) => sum + J.a.get(i, j) * va.get(j), 0) + J.s.get(i) * -2);
    assertClose(result.result.data, expected, 1e-9);

    counter.calls = 0;
    const c = f64([1, -1, 2, 0.5]);
    const vjp = await runtime.vjp({ inputs: x, inputPaths: PATHS, outputPaths: ["result"], cotangent: { result: c } });
    assert.equal(counter.calls, 2 * 9);
    assertClose(vjp.result.b.data, [0, 1, 2, 3].map((j) => [0, 1, 2, 3].reduce((s, i) => s + c.get(i) * J.b.get(i, j), 0)), 1e-9);
    assertClose(vjp.result.s.data, [[0, 1, 2, 3].reduce((s, i) => s + c.get(i) * J.s.get(i), 0)], 1e-9);
    assert.deepEqual(vjp.result.s.shape, []);
  });
});

describe("univariate (Rosenbrock, FP32)", () => {
  const at = (x: number, y: number) => ({ x: f32([x], []), y: f32([y], []) });
  const gradient = (x: number, y: number, a = 1, b = 100) => [-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x)];

  for (const [algorithm, name] of [[Algorithm.ALGORITHM_CENTRAL, "central"], [Algorithm.ALGORITHM_FORWARD, "forward"], [Algorithm.ALGORITHM_STOCHASTIC, "stochastic (n = 2 < 10 samples: central)"]] as const) {
    it(`${name}: gradient within FP32 tolerance`, async () => {
      const { runtime } = counted("univariate");
      const x = Math.fround(0.5);
      const y = Math.fround(0.7);
      const { entries } = await runtime.jacobian({ inputs: at(x, y), inputPaths: ["x", "y"], outputPaths: ["result"], options: { algorithm } });
      const [gx, gy] = gradient(x, y);
      // f ~ 20.5 rounds to FP32 (ulp 1.9e-6); over a step of 1e-3 that is ~2e-3, plus truncation
      // (h^2 f''' ~ 1e-6 central; h/2 f'' ~ 0.2 forward, f''_xx = 2 - 400(y - 3x^2) ~ 22).
      const tol = name === "forward" ? 0.3 : 1e-2;
      assert.ok(Math.abs(entries[0].values[0] - gx) < tol, `d/dx ${entries[0].values[0]} vs ${gx}`);
      assert.ok(Math.abs(entries[1].values[0] - gy) < tol, `d/dy ${entries[1].values[0]} vs ${gy}`);
      assert.deepEqual(entries[0].shape, []);
    });
  }

  it("JVP and VJP", async () => {
    const { runtime, counter } = counted("univariate");
    const [gx, gy] = gradient(Math.fround(-1.2), 1);
    const jvp = await runtime.jvp({ inputs: at(-1.2, 1), inputPaths: ["x", "y"], outputPaths: ["result"], tangent: { x: f32([1], []), y: f32([2], []) } });
    // Two, and two more along the stray of the FP32 points from the tangent (jvp.ts, straighten).
    assert.equal(counter.calls, 4);
    assert.ok(Math.abs(jvp.result.result.get() - (gx + 2 * gy)) < 0.05, `${jvp.result.result.get()} vs ${gx + 2 * gy}`);
    const vjp = await runtime.vjp({ inputs: at(-1.2, 1), inputPaths: ["x", "y"], outputPaths: ["result"], cotangent: { result: f64([3], []) } });
    assert.ok(Math.abs(vjp.result.x.get() - 3 * gx) < 0.05 && Math.abs(vjp.result.y.get() - 3 * gy) < 0.05);
  });

  it("rejects FP64 scalars with the field named", () => {
    const { runtime } = counted("univariate");
    assert.throws(() => runtime.definition.validate!({ x: f64([1], []), y: f32([1], []) }), /^Error|x has datatype DATA_TYPE_FP64, expected DATA_TYPE_FP32$/);
  });

  it("abstractEval refuses what Apply refuses by shape (it answered a scalar result for an x of shape [3])", async () => {
    const { runtime } = counted("univariate");
    const scalar = { shape: [], datatype: 10 };
    assert.deepEqual(await runtime.abstractEval({ x: scalar, y: { shape: [], datatype: 11 } }), [{ path: "result", shape: [], datatype: 10 }]);
    await rejects(runtime.abstractEval({ x: { shape: [3], datatype: 10 }, y: scalar }), Code.INVALID_ARGUMENT, /^x has shape \[3\], expected a scalar \(shape \[\]\)$/);
    await rejects(runtime.abstractEval({ x: scalar, y: scalar, b: { shape: [1, 1], datatype: 10 } }), Code.INVALID_ARGUMENT, /^b has shape \[1, 1\], expected a scalar \(shape \[\]\)$/);
    await rejects(runtime.abstractEval({ x: scalar }), Code.INVALID_ARGUMENT, /^y is missing: expected an FP32 scalar$/);
  });
});

describe("bad tangents and cotangents", () => {
  const base = () => ({ inputs: meshInputs(4), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"] });
  const { runtime, counter } = counted("meshstats");
  beforeEach(() => (counter.calls = 0));

  const tangents: [string, Record<string, ndarray.NdArray>, RegExp][] = [
    ["missing key", {}, /^tangent_vector is missing input "mesh\.points" \(shape \[4, 3\]\)$/],
    ["extra key", { "mesh.points": f64(new Array(12).fill(1), [4, 3]), "mesh.other": f64([1]) }, /^tangent_vector has key "mesh\.other", which is not in jvp_inputs \(mesh\.points\)$/],
    ["wrong shape", { "mesh.points": f64(new Array(12).fill(1), [3, 4]) }, /^tangent_vector\.\{mesh\.points\} has shape \[3, 4\], expected \[4, 3\] like the input$/],
  ];
  for (const [what, tangent, message] of tangents) {
    it(`tangent: ${what}, rejected before evaluating`, async () => {
      await rejects(runtime.jvp({ ...base(), tangent }), Code.INVALID_ARGUMENT, message);
      assert.equal(counter.calls, 0);
    });
  }

  const cotangents: [string, Record<string, ndarray.NdArray>, RegExp, number][] = [
    ["missing key", {}, /^cotangent_vector is missing output "statistics\.barycenter"$/, 0],
    ["extra key", { "statistics.barycenter": f64([1, 2, 3]), nope: f64([1]) }, /^cotangent_vector has key "nope", which is not in vjp_outputs \(statistics\.barycenter\)$/, 0],
    // meshstats' abstractEval tells the output's shape before any evaluation (it is needed for its declared structure); f(x) confirms it before the refusal.
    ["wrong shape", { "statistics.barycenter": f64([1, 2]) }, /^cotangent_vector\.\{statistics\.barycenter\} has shape \[2\], expected \[3\] like the output \(the output's shape as the Tesseract's abstractEval predicts it\)$/, 1],
  ];
  for (const [what, cotangent, message, calls] of cotangents) {
    it(`cotangent: ${what}`, async () => {
      await rejects(runtime.vjp({ ...base(), cotangent }), Code.INVALID_ARGUMENT, message);
      assert.equal(counter.calls, calls);
    });
  }

  it("integer and bool tangents and cotangents are cast to FP64, as tesseract-core casts them (they were refused)", async () => {
    const direction = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1];
    const asFloat = await runtime.jvp({ ...base(), tangent: { "mesh.points": f64(direction, [4, 3]) } });
    const asInt = await runtime.jvp({ ...base(), tangent: { "mesh.points": ndarray(Int32Array.from(direction), [4, 3]) } });
    assert.deepEqual(Array.from(asInt.result["statistics.barycenter"].data), Array.from(asFloat.result["statistics.barycenter"].data));
    const cotangent = await runtime.vjp({ ...base(), cotangent: { "statistics.barycenter": ndarray(Uint8Array.of(1, 0, 1), [3]) } });
    const expected = await runtime.vjp({ ...base(), cotangent: { "statistics.barycenter": f64([1, 0, 1]) } });
    assert.deepEqual(Array.from(cotangent.result["mesh.points"].data), Array.from(expected.result["mesh.points"].data));
  });

  it("bad jac paths name the path and list the differentiable ones, before evaluating", async () => {
    const cases: [string[], string[], RegExp][] = [
      [[], OUTPUTS, /^jac_inputs is empty: name at least one differentiable input path; available: mesh\.points$/],
      [["mesh.n_points"], OUTPUTS, /^jac_inputs: input path "mesh\.n_points" is not differentiable; differentiable input paths: mesh\.points$/],
      [["mesh.pts"], OUTPUTS, /^jac_inputs: input path "mesh\.pts" does not exist; differentiable input paths: mesh\.points$/],
      [["mesh.points"], [], /^jac_outputs is empty/],
      [["mesh.points"], ["statistics.mean"], /^jac_outputs: output path "statistics\.mean" is not a differentiable path; differentiable output paths: statistics\.first_point_coordinates, statistics\.barycenter$/],
      [["mesh.points", "mesh.points"], OUTPUTS, /^jac_inputs: input path "mesh\.points" is listed more than once$/],
      [["mesh..points"], OUTPUTS, /bad path "mesh\.\.points": empty segment at position 5/],
    ];
    for (const [inputPaths, outputPaths, message] of cases) {
      await rejects(runtime.jacobian({ inputs: meshInputs(4), inputPaths, outputPaths }), Code.INVALID_ARGUMENT, message);
    }
    assert.equal(counter.calls, 0);
  });
});

describe("faults raised by apply", () => {
  const fixture = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
  const runtime = loadTesseract(fixture);
  const inputs = (mode: string) => ({ x: f64([0.999999, 2]), y: f64([0.5], []), params: {}, blocks: [], mode });

  it("an exception names the evaluation that failed", async () => {
    await rejects(runtime.jacobian({ inputs: inputs("throw"), inputPaths: ["x", "y"], outputPaths: ["f"] }), Code.UNKNOWN, /^evaluation at y \+ h failed: y is too large for this model$/);
  });

  it("a thrown object says its message, or what it is (it read [object Object])", async () => {
    await rejects(runtime.jacobian({ inputs: inputs("throw-object"), inputPaths: ["y"], outputPaths: ["f"] }), Code.UNKNOWN, /^evaluation at y \+ h failed: y is too large for this model$/);
    await rejects(runtime.jacobian({ inputs: inputs("throw-value"), inputPaths: ["y"], outputPaths: ["f"] }), Code.UNKNOWN, /^evaluation at y \+ h failed: \{ limit: 0\.5 \}$/);
    const atOne = { ...inputs("throw-object"), y: f64([1], []) };
    await rejects(runtime.applyMessage(runtime.schema.inputs.encodeAny(atOne)), Code.UNKNOWN, /^apply failed: y is too large for this model$/);
  });

  it("NaN names the output element and the evaluation", async () => {
    await rejects(runtime.jacobian({ inputs: inputs("nan"), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-5 } }), Code.FAILED_PRECONDITION, /^evaluation at x\[0\] \+ h failed: apply returned NaN in output f at flat index 0$/);
  });

  it("NaN on the far side of a pair names that side and the element (the side subtracted in place)", async () => {
    const at = (x0: number) => ({ ...inputs("nan-below"), x: f64([x0, 2]) });
    await rejects(runtime.jacobian({ inputs: at(1.000001), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-5 } }), Code.FAILED_PRECONDITION, /^evaluation at x\[0\] - h failed: apply returned NaN in output f at flat index 1$/);
  });

  it("an output changing shape between evaluations is the Tesseract's fault", async () => {
    await rejects(runtime.jacobian({ inputs: inputs("reshape"), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-5 } }), Code.INTERNAL, /^evaluation at x\[0\] - h failed: apply returned output f with shape \[2\] here, \[1\] at an earlier evaluation: an output.s shape must not depend on the values of the differentiated inputs \(differences are taken element by element\)$/);
  });

  it("a VJP whose first evaluation answers another shape: f(x) tells it is the Tesseract's fault, not the caller's cotangent (a right cotangent was refused)", async () => {
    const vjp = (cotangent: number[]) => runtime.vjp({ inputs: inputs("reshape"), inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64(cotangent) }, options: { eps: 1e-5 } });
    // x[0] + h comes first, with f of shape [1]; at x, f has shape [2], as the cotangent.
    await rejects(vjp([1, 1]), Code.INTERNAL, /^evaluation at the unperturbed inputs failed: apply returned output f with shape \[2\] here, \[1\] at an earlier evaluation: an output.s shape must not depend/);
    // Where f(x) has the first evaluation's shapes, a cotangent that does not fit them is the caller's.
    const wrong = runtime.vjp({ inputs: inputs(""), inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64([1, 1, 1]) }, options: { eps: 1e-5 } });
    await rejects(wrong, Code.INVALID_ARGUMENT, /^cotangent_vector\.\{f\} has shape \[3\], expected \[2\] like the output$/);
  });

  it("an output missing from a later evaluation is the Tesseract's fault", async () => {
    await rejects(runtime.jacobian({ inputs: inputs("drop"), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-5 } }), Code.INTERNAL, /^evaluation at x\[0\] - h failed: apply returned no output f here, which an earlier evaluation returned: whether an output is there must not depend on the values of the differentiated inputs \(differences are taken output by output\)$/);
  });

  it("an output under a name Outputs does not declare is the Tesseract's fault, named (Apply answered OK without it; a Jacobian blamed the caller's path)", async () => {
    const fields = "fields: f, named, g, count_out";
    await rejects(runtime.apply(inputs("misnamed")), Code.INTERNAL, new RegExp(`^outputs ff: Outputs has no such field; ${fields}$`));
    await rejects(
      runtime.jacobian({ inputs: inputs("misnamed"), inputPaths: ["x"], outputPaths: ["f"] }),
      Code.INTERNAL,
      new RegExp(`^evaluation at x\\[0\\] \\+ h failed: outputs ff: Outputs has no such field; ${fields}$`),
    );
  });

  it("an integer or a non-tensor at a differentiable output is the Tesseract's fault, named, for every gradient (an INT32 output was differenced into rounding jumps, answered OK)", async () => {
    for (const [mode, message] of [
      ["int", "apply returned output f as int32, at a differentiable path: expected float32 or float64 (finite differences of integers are rounding jumps)"],
      ["plain", "apply returned a plain array at output f, a differentiable tensor field: expected an ndarray: make one with ndarray(data, shape)"],
      ["typed", "apply returned a bare Float64Array at output f, a differentiable tensor field: expected an ndarray: make one with ndarray(data, shape)"],
      ["short", "apply returned output f that has shape [2], which needs 2 elements, but its data holds 1"],
    ]) {
      const pattern = new RegExp(`^evaluation at x\\[0\\] \\+ h failed: ${message.replace(/[()[\]]/g, "\\$&")}$`);
      const common = { inputs: inputs(mode), inputPaths: ["x"], outputPaths: ["f"] };
      await rejects(runtime.jacobian(common), Code.INTERNAL, pattern);
      await rejects(runtime.jvp({ ...common, tangent: { x: f64([1, 1]) } }), Code.INTERNAL, new RegExp(`${message.replace(/[()[\]]/g, "\\$&")}$`));
      await rejects(runtime.vjp({ ...common, cotangent: { f: f64([1, 1]) } }), Code.INTERNAL, new RegExp(`${message.replace(/[()[\]]/g, "\\$&")}$`));
      // Unrequested, it does not matter.
      const { entries } = await runtime.jacobian({ ...common, outputPaths: ["g"], inputPaths: ["y"] });
      assert.ok(maxAbsDiff(entries[0].values, [Math.exp(0.5)]) < 1e-8);
    }
    // Apply itself: the same fault, named (it was "internal error", or V8's text from a worker).
    const short = await runtime.apply(inputs("short"));
    await rejects(Promise.resolve().then(() => runtime.encodeOutputs(short)), Code.INTERNAL, /^outputs f has shape \[2\], which needs 2 elements, but its data holds 1$/);
    // A declared output left out from the first evaluation on ("drop" below x[0] = 0.99999): it blamed the caller's path.
    await rejects(runtime.jacobian({ inputs: { ...inputs("drop"), x: f64([0.5, 2]) }, inputPaths: ["x"], outputPaths: ["f"] }), Code.INTERNAL, /^evaluation at x\[0\] \+ h failed: apply returned no output f, a differentiable tensor field of Outputs$/);
  });

  it("an error of another copy of tesseract-grpc (a module's own dependency) keeps its code and message (it was INTERNAL, hidden)", async () => {
    // The errors module loaded a second time, from elsewhere: its TesseractError is another class.
    const copy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "copy-")), "errors.js");
    fs.copyFileSync(require.resolve("../common/errors"), copy);
    const other = require(copy) as typeof import("../common/errors");
    const base = loadTesseract(fixture);
    const strict = new TesseractRuntime({ ...base.definition, apply: () => { throw other.invalidArgument("x: expected at most 2 elements"); } }, path.dirname(fixture));
    await rejects(strict.jacobian({ inputs: inputs(""), inputPaths: ["x"], outputPaths: ["f"] }), Code.INVALID_ARGUMENT, /^x: expected at most 2 elements$/);
    const failing = new TesseractRuntime({ ...base.definition, apply: () => { throw new other.TesseractError(Code.FAILED_PRECONDITION, "the solver diverged"); } }, path.dirname(fixture));
    await rejects(failing.jacobian({ inputs: inputs(""), inputPaths: ["x"], outputPaths: ["f"] }), Code.FAILED_PRECONDITION, /^evaluation at x\[0\] \+ h failed: the solver diverged$/);
  });

  it("a validate that throws a plain Error or a string is answered as a throwing apply is: UNKNOWN with its message (it was INTERNAL, hidden)", () => {
    const base = loadTesseract(fixture);
    for (const thrown of [new Error("kappa must be positive"), "kappa must be positive"]) {
      const strict = new TesseractRuntime({ ...base.definition, validate: () => { throw thrown; } }, path.dirname(fixture));
      assert.throws(
        () => strict.decodeInputs(strict.schema.inputs.encodeAny(inputs(""))),
        (e: { code: number; message: string }) => e.code === Code.UNKNOWN && e.message === "validate failed: kappa must be positive",
      );
    }
  });

  it("abstractEval's faults are named: a throw UNKNOWN with its message, an answer of the wrong form INTERNAL, one that never settles given up on after --eval-timeout-ms", async () => {
    const base = loadTesseract(fixture);
    const withAbstract = (abstractEval: () => unknown, evalTimeoutMs = 0) => {
      const runtime = new TesseractRuntime({ ...base.definition, abstractEval: abstractEval as never }, path.dirname(fixture));
      return runtime.useEvaluation({ workers: 0, evalTimeoutMs }).then(() => runtime);
    };
    const abstract = { x: { shape: [2], datatype: 11 } };
    await rejects((await withAbstract(() => { throw new Error("no shapes today"); })).abstractEval(abstract), Code.UNKNOWN, /^abstractEval failed: no shapes today$/);
    for (const [answer, what] of [[null, "null"], [{ f: [2] }, "object"], [[{ path: "f", shape: [-1], datatype: 11 }], "f with shape \\[-1\\]"], [[{ path: "f", shape: [2] }], "f with datatype undefined"]] as const) {
      await rejects((await withAbstract(() => answer)).abstractEval(abstract), Code.INTERNAL, new RegExp(`^abstractEval returned ${what}: expected a list of \\{path, shape, datatype\\}`));
    }
    const stalled = await withAbstract(() => new Promise(() => {}), 100);
    await rejects(stalled.abstractEval(abstract), Code.DEADLINE_EXCEEDED, /^abstractEval did not return within the per-evaluation timeout of 100 ms \(--eval-timeout-ms\)$/);
    // A unary Jacobian asks abstractEval for its size: it hung there with no deadline. Given up on, it
    // goes on without it, as the planning of every gradient does (apply says what is wrong, if anything).
    const { entries } = await stalled.jacobian({ inputs: inputs(""), inputPaths: ["x"], outputPaths: ["f"], maxBytes: 1 << 20 });
    assert.deepEqual(entries.map((e) => [e.outputPath, e.inputPath, e.values.length]), [["f", "x", 4]]);
  });

  it("abstractEval sees every tensor as { shape, datatype }, in maps and lists too (a map's reached it as ndarrays), the map still without a prototype", async () => {
    const seen: any[] = [];
    const base = loadTesseract(fixture).definition;
    const runtime = new TesseractRuntime({ ...base, abstractEval: (view: unknown) => (seen.push(view), [{ path: "g", shape: [], datatype: 11 }]) }, path.dirname(fixture));
    const params = Object.assign(Object.create(null), { k: ndarray(Float32Array.of(1, 2), [2]), ["__proto__"]: { shape: [3], datatype: 11 } });
    await runtime.abstractEval({ x: ndarray(Float64Array.of(1), [1]), params, blocks: [{ w: ndarray(Float64Array.of(1, 2, 3), [3]) }] });
    assert.deepEqual(seen[0].x, { shape: [1], datatype: 11 });
    assert.equal(Object.getPrototypeOf(seen[0].params), null);
    assert.deepEqual({ ...seen[0].params }, { k: { shape: [2], datatype: 10 }, ["__proto__"]: { shape: [3], datatype: 11 } });
    assert.deepEqual(seen[0].blocks[0].w, { shape: [3], datatype: 11 });
  });

  it("non-finite values in unrequested outputs do not matter", async () => {
    const { entries } = await runtime.jacobian({ inputs: inputs("nan"), inputPaths: ["y"], outputPaths: ["g"] });
    assert.ok(maxAbsDiff(entries[0].values, [Math.exp(0.5)]) < 1e-8);
  });
});
