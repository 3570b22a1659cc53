/**
 * Step rules and the higher-order rules, on functions whose finite-difference error is known in
 * closed form: for f = x³ the central quotient is exactly 3x² + h², which reveals the step h taken;
 * for f = x⁵ the 5-point stencil's error is exactly 4h⁴.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import ndarray from "ndarray";
import { Code } from "../index";
import { defaultRelativeEps, StepRule } from "../server/fd/steps";
import { assembleJacobian, TesseractClient } from "../client";
import { Inputs as VectorInputs, Outputs as VectorOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { startServer } from "../index";
import { loadTesseract } from "../index";
import { silentLogger } from "../server/log";
import { TesseractRuntime } from "../server/runtime";
import { Algorithm } from "../index";
import { f64, rejects } from "./helpers";

const RELATIVE = 2;
// The polynomial fixture: f = x³ + y·sin(x) element-wise; with y = 0, f = x³.
const runtime = loadTesseract(path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js"));
// Evaluation counts here are each rule's own per request: without the evaluation cache, which would
// answer f(x) of a repeated input from an earlier request (test/evaluation-cache.test.ts).
before(() => runtime.useEvaluation({ workers: 0, cacheBytes: 0 }));
const inputs = (x: number[], y = 0, params: Record<string, ndarray.NdArray> = {}) => ({ x: f64(x), y: f64([y], []), params, blocks: [], mode: "" });
const diagonal = (values: Float64Array, n: number) => Array.from({ length: n }, (_, i) => values[i * n + i]);

/** The step each element of x actually used, from the central quotient 3x² + h². */
async function stepsTaken(x: number[], options: object): Promise<number[]> {
  const { entries } = await runtime.jacobian({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], options });
  return diagonal(entries[0].values, x.length).map((d, i) => Math.sqrt(d - 3 * x[i] * x[i]));
}

describe("step rules", () => {
  it("absolute: h = eps for every element; eps_by_path overrides eps for its path", async () => {
    const h = await stepsTaken([1, 2, 4], { eps: 1e-2 });
    h.forEach((v) => assert.ok(Math.abs(v - 1e-2) < 1e-6, `h = ${v}`));
    const { entries } = await runtime.jacobian({ inputs: inputs([2], 0, { k: f64([3]) }), inputPaths: ["x", "params.{k}"], outputPaths: ["f", "named.{k}"], options: { eps: 1e-2, eps_by_path: { "params.{k}": 0.5 } } });
    // named{k} = k² · sum(x): its central quotient in k is 2k·sum(x) exactly (quadratic), whatever h;
    // f's quotient in x still reveals eps = 1e-2.
    assert.ok(Math.abs(Math.sqrt(entries[0].values[0] - 12) - 1e-2) < 1e-6);
    assert.ok(Math.abs(entries[3].values[0] - 12) < 1e-12);
  });

  it("relative: h = eps · max(|x|, typical magnitude)", async () => {
    const h = await stepsTaken([0.5, 3, -40], { eps: 1e-3, step_mode: RELATIVE });
    [1, 3, 40].forEach((scale, i) => assert.ok(Math.abs(h[i] / (1e-3 * scale) - 1) < 1e-4, `h[${i}] = ${h[i]}`));
    const typical = await stepsTaken([0.5, 3, -40], { eps: 1e-3, step_mode: RELATIVE, typical_magnitude: { x: 10 } });
    [10, 10, 40].forEach((scale, i) => assert.ok(Math.abs(typical[i] / (1e-3 * scale) - 1) < 1e-4, `h[${i}] = ${typical[i]}`));
  });

  it("relative with eps unset: the error-optimal default for the rule and precision", async () => {
    assert.ok(Math.abs(defaultRelativeEps("forward", false) - 1.49e-8) < 1e-10);
    assert.ok(Math.abs(defaultRelativeEps("central", false) - 6.06e-6) < 1e-8);
    assert.ok(Math.abs(defaultRelativeEps("central", true) - 4.92e-3) < 1e-5);
    // (Too small to read back from x³'s quotient: ask the rule.)
    const leaves = [{ path: "x", segments: [], shape: [1], size: 1, data: Float64Array.of(100), fp32: false }, { path: "y", segments: [], shape: [1], size: 1, data: Float32Array.of(100), fp32: true }];
    const rule = new StepRule({ algorithm: "central", stepMode: "relative", seed: 0n }, leaves);
    assert.equal(rule.size(0, 100), 100 * Math.cbrt(Number.EPSILON));
    assert.equal(rule.size(1, 100), 100 * Math.cbrt(2 ** -23));
    assert.equal(new StepRule({ algorithm: "central", seed: 0n }, leaves).size(0, 100), 1e-4);
  });

  it("relative steps resolve a tiny input that absolute steps drown", async () => {
    // d(x³)/dx at 1e-6 is 3e-12; an absolute step of 1e-4 adds h² = 1e-8 to it.
    const x = 1e-6;
    const absolute = (await runtime.jacobian({ inputs: inputs([x]), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-4 } })).entries[0].values[0];
    const relative = (await runtime.jacobian({ inputs: inputs([x]), inputPaths: ["x"], outputPaths: ["f"], options: { step_mode: RELATIVE, typical_magnitude: { x: 1e-6 } } })).entries[0].values[0];
    assert.ok(Math.abs(absolute / 3e-12 - 1) > 1000);
    assert.ok(Math.abs(relative / 3e-12 - 1) < 1e-8, `relative error ${relative / 3e-12 - 1}`);
  });

  it("an absolute step that rounds to nothing takes the rule's relative step, reported once per element", async () => {
    // At 1e20 FP64 numbers are 16 384 apart: x ± 1e-4 is x. Central's relative step there is
    // ∛ε · 1e20 ≈ 6.06e14, and f = x³'s quotient 3x² + h² is then within 1e-10 of 3x².
    const { entries, stats } = await runtime.jacobian({ inputs: inputs([1, 1e20]), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-4 } });
    const h = Math.cbrt(Number.EPSILON) * 1e20;
    assert.ok(Math.abs(entries[0].values[3] / 3e40 - 1) < 1e-10, `${entries[0].values[3]}`);
    assert.ok(Math.abs(entries[0].values[0] - (3 + 1e-8)) < 1e-9, `${entries[0].values[0]}`); // x = 1 keeps h = 1e-4: 3 + h²
    assert.deepEqual(stats.adjusted_steps, [`x[1]: a step of 0.0001 is below the spacing of FP64 numbers at 100000000000000000000; took h = ${h.toPrecision(3)} instead (the relative step 0.00000606 · max(|x|, 1))`]);
  });

  it("Richardson with a step of about one ulp: its points x + h and x + 2h would coincide; the rule's relative step instead", async () => {
    // At 10 FP64 numbers are 1.8e-15 apart: x + 1e-15 and x + 2e-15 both round to x + 1 ulp, and
    // the extrapolation divided by zero (NaN, FAILED_PRECONDITION blaming an FP64 overflow).
    const { entries, stats } = await runtime.jacobian({ inputs: inputs([10]), inputPaths: ["x"], outputPaths: ["f"], options: { algorithm: Algorithm.ALGORITHM_RICHARDSON, eps: 1e-15 } });
    assert.ok(Math.abs(entries[0].values[0] / 300 - 1) < 1e-9, `${entries[0].values[0]}`);
    assert.match(stats.adjusted_steps[0], /^x\[0\]: a step of 1e-15 is below the spacing of FP64 numbers at 10; took h = /);
  });

  for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE]) {
    it(`${Algorithm[algorithm]}: an eps below the inputs' spacing gives the derivative, not rounding`, async () => {
      // One ulp instead (the rule before) left these to the outputs' rounding: 32 for 27 (central and
      // forward), and Richardson's and adaptive's points coincided (NaN, FAILED_PRECONDITION).
      for (const eps of [1e-17, 1e-320]) {
        const { entries, stats } = await runtime.jacobian({ inputs: inputs([1, 2, 3]), inputPaths: ["x"], outputPaths: ["f"], options: { algorithm, eps } });
        diagonal(entries[0].values, 3).forEach((d, i) => assert.ok(Math.abs(d / (3 * (i + 1) ** 2) - 1) < 1e-6, `eps ${eps}: J[${i}, ${i}] = ${d}`));
        assert.equal(stats.adjusted_steps.length, 3, stats.adjusted_steps.join(" | "));
        assert.match(stats.adjusted_steps[2], /^x\[2\]: a step of 1e-\d+( \/ 64)? is below the spacing of FP64 numbers at 3; took h = \S+ instead \(the relative step \S+ · max\(\|x\|, 1\)\)$/);
      }
    });
  }

  it("rejects bad step options, naming the field", async () => {
    const request = (options: object) => runtime.jacobian({ inputs: inputs([1]), inputPaths: ["x"], outputPaths: ["f"], options });
    await rejects(request({ eps_by_path: { z: 1e-3 } }), Code.INVALID_ARGUMENT, /^options\.eps_by_path has key "z", which is not in jac_inputs \(x\)$/);
    await rejects(request({ eps_by_path: { x: -1 } }), Code.INVALID_ARGUMENT, /^options\.eps_by_path\.\{x\} must be a positive finite number, got -1$/);
    await rejects(request({ typical_magnitude: { x: 0 } }), Code.INVALID_ARGUMENT, /^options\.typical_magnitude\.\{x\} must be a positive finite number, got 0$/);
    await rejects(request({ step_mode: 7 }), Code.INVALID_ARGUMENT, /^options\.step_mode: unknown step mode 7/);
  });
});

// f = x³ + y·sin(x) returned in FP32 from an FP64 x (the fixture's mode "fp32"), with no eps of the
// Tesseract's own: the default relative step was sized for x's FP64 alone, so forward differences
// (1.5e-8 relative) divided f's FP32 rounding (6e-8) by the step and answered 0 where the
// derivative is 0.7 to 3.9, OK; central was off by 1e-3. The step is now sized for the coarser of
// the input's and the requested outputs' precision.
describe("default relative steps and the outputs' precision", () => {
  const fixture = path.join(__dirname, "../../test/fixtures/polynomial");
  const fp32Out = new TesseractRuntime({ ...loadTesseract(path.join(fixture, "polynomial.js")).definition, finiteDifferences: undefined }, fixture);
  before(() => fp32Out.useEvaluation({ workers: 0, cacheBytes: 0 }));
  const x = [0.3, 0.7, 1.1];
  const fp32Inputs = { x: f64(x), y: f64([0.5], []), params: {}, blocks: [], mode: "fp32" };
  const exact = x.map((v) => 3 * v * v + 0.5 * Math.cos(v));

  for (const [algorithm, rtol, calls] of [[Algorithm.ALGORITHM_FORWARD, 1e-3, 4], [Algorithm.ALGORITHM_CENTRAL, 1e-4, 7], [Algorithm.ALGORITHM_RICHARDSON, 1e-5, 21]] as const) {
    it(`${Algorithm[algorithm]}: FP64 input, FP32 output: the Jacobian and the JVP within ${rtol} (forward answered 0, central 1e-3 off)`, async () => {
      const options = { algorithm, step_mode: RELATIVE };
      const { entries, stats } = await fp32Out.jacobian({ inputs: fp32Inputs, inputPaths: ["x"], outputPaths: ["f"], options });
      diagonal(entries[0].values, 3).forEach((d, i) => assert.ok(Math.abs(d - exact[i]) <= rtol * exact[i], `df${i}/dx${i} = ${d}, expected ${exact[i]}`));
      // No abstractEval: f(x) tells the outputs' precision before the first step (central's one more evaluation).
      assert.equal(stats.apply_calls, calls);
      const { result } = await fp32Out.jvp({ inputs: fp32Inputs, inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([1, 1, 1]) }, options });
      Array.from(result.f.data as Float64Array).forEach((d, i) => assert.ok(Math.abs(d - exact[i]) <= rtol * exact[i], `(J v)${i} = ${d}, expected ${exact[i]}`));
      // The VJP's contracted outputs take the same steps (forward answered [4, 0] for a cotangent [0.5, -2]).
      const { result: vjp } = await fp32Out.vjp({ inputs: fp32Inputs, inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64([1, 1, 1]) }, options });
      Array.from(vjp.x.data as Float64Array).forEach((d, i) => assert.ok(Math.abs(d - exact[i]) <= rtol * exact[i], `(vᵀJ)${i} = ${d}, expected ${exact[i]}`));
    });
  }

  it("an absolute step too small for an FP64 input's numbers falls back to a relative step sized for the FP32 outputs (forward answered 0)", async () => {
    const huge = [5e12, 4e12]; // beyond 2^52 · 1e-4: x + 1e-4 rounds to x
    for (const [algorithm, rtol] of [[Algorithm.ALGORITHM_FORWARD, 1e-3], [Algorithm.ALGORITHM_CENTRAL, 1e-4]] as const) {
      const { entries, stats } = await fp32Out.jacobian({ inputs: { ...fp32Inputs, x: f64(huge), y: f64([0], []) }, inputPaths: ["x"], outputPaths: ["f"], options: { algorithm } });
      diagonal(entries[0].values, 2).forEach((d, i) => assert.ok(Math.abs(d / (3 * huge[i] ** 2) - 1) <= rtol, `${Algorithm[algorithm]}: df${i}/dx${i} = ${d}, expected ${3 * huge[i] ** 2}`));
      assert.match(stats.adjusted_steps[0], /^x\[0\]: a step of 0\.0001 is below the spacing of FP64 numbers at 5000000000000; took h = \S+ instead \(the relative step 0\.0(00345|0492) ·/);
    }
  });

  it("nothing is evaluated for it where no step depends on it (absolute steps, an eps given); FP64 outputs keep FP64's steps", async () => {
    for (const options of [{}, { step_mode: RELATIVE, eps: 1e-6 }]) {
      const { stats } = await fp32Out.jacobian({ inputs: fp32Inputs, inputPaths: ["x"], outputPaths: ["f"], options });
      assert.equal(stats.apply_calls, 6, JSON.stringify(options));
    }
    // FP64 outputs: f(x) is evaluated to learn so, and the steps stay FP64's (6e-6 relative: the quotient exact to 1e-10).
    const { entries, stats } = await fp32Out.jacobian({ inputs: { ...fp32Inputs, mode: "" }, inputPaths: ["x"], outputPaths: ["f"], options: { step_mode: RELATIVE } });
    assert.equal(stats.apply_calls, 7);
    diagonal(entries[0].values, 3).forEach((d, i) => assert.ok(Math.abs(d - exact[i]) <= 1e-9 * exact[i], `df${i}/dx${i} = ${d}`));
  });
});

describe("domain bounds", () => {
  // The polynomial fixture with a declared domain x > 0, and an apply that refuses x <= 0.
  const fixtureDir = path.join(__dirname, "../../test/fixtures/polynomial");
  const base = runtime.definition;
  const refusing = (i: { x: ndarray.NdArray<Float64Array> }) => {
    if (i.x.data.some((v) => v <= 0)) throw new Error(`evaluated outside the domain: x = ${Array.from(i.x.data)}`);
    return base.apply(i);
  };
  const bounded = new TesseractRuntime({ ...base, bounds: { x: { lower: 0 } }, apply: refusing }, fixtureDir);

  it("central: a one-sided second-order stencil near the bound, exact to its error term, reported", async () => {
    // f = x^3 at x = 5e-5 with h = 1e-4: x - h < 0. Through x, x + h, x + 2h the stencil gives
    // 3x^2 - 2h^2 exactly (its error term is f'''/6 (-h)(-2h) with f''' = 6).
    const x = 5e-5;
    const { entries, stats } = await bounded.jacobian({ inputs: inputs([x, 1]), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-4 } });
    assert.ok(Math.abs(entries[0].values[0] - (3 * x * x - 2e-8)) < 1e-12, `${entries[0].values[0]}`);
    assert.ok(Math.abs(entries[0].values[3] - 3) < 1e-7); // x = 1: central, far from the bound
    assert.deepEqual(stats.adjusted_steps, ["x[0]: one-sided (forward) stencil, the domain is (0, inf)"]);
    assert.equal(stats.apply_calls, 1 + 2 + 2); // f(x) once, two one-sided points, one central pair
  });

  it("Richardson between h and 2h from the bound: both steps one-sided, so the extrapolation keeps its order and its estimate the error", async () => {
    // x = 1.5e-4, h = 1e-4: x ± h inside, x - 2h not. A central h and a one-sided 2h extrapolated
    // to 1.075e-7 for 6.75e-8, estimate 3e-8; two one-sided stencils (errors -2h² and -8h² for x³)
    // extrapolate to 3x² exactly.
    const x = 1.5e-4;
    const { entries, stats } = await bounded.jacobian({ inputs: inputs([x, 1]), inputPaths: ["x"], outputPaths: ["f"], options: { algorithm: Algorithm.ALGORITHM_RICHARDSON, eps: 1e-4 } });
    const error = Math.abs(entries[0].values[0] - 3 * x * x);
    assert.ok(error < 1e-15 && error <= entries[0].errors![0], `d x³ / dx = ${entries[0].values[0]}, expected ${3 * x * x}; estimate ${entries[0].errors![0]}`);
    assert.deepEqual(stats.adjusted_steps, ["x[0]: one-sided (forward) stencil, the domain is (0, inf)"]);
  });

  it("the one-sided stencil of an output that does not depend on the element is exactly 0 (it was ulp(f)/h)", async () => {
    // f_1 = x_1³ = 64 000 does not depend on x_0; c0 f0 + c1 f1 + c2 f2 with c0 + c1 + c2 = 0 only to rounding gave ~1e-6.
    const { entries } = await bounded.jacobian({ inputs: inputs([5e-5, 40]), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-4 } });
    assert.equal(entries[0].values[2], 0); // d f_1 / d x_0, row-major [f][x]
    for (const algorithm of [Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE]) {
      const { entries: e } = await bounded.jacobian({ inputs: inputs([5e-5, 40]), inputPaths: ["x"], outputPaths: ["f"], options: { algorithm, eps: 1e-4 } });
      assert.equal(e[0].values[2], 0, `algorithm ${algorithm}`);
    }
  });

  it("forward, Richardson and adaptive stay inside too; stochastic and a JVP along several elements refuse with a clear message", async () => {
    const x = [5e-5, 2];
    for (const algorithm of [Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE]) {
      const { entries } = await bounded.jacobian({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], options: { algorithm, eps: 1e-4 } });
      assert.ok(Math.abs(entries[0].values[0] - 3 * x[0] ** 2) < 1e-7, `algorithm ${algorithm}: ${entries[0].values[0]}`);
    }
    await rejects(
      bounded.jacobian({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], options: { algorithm: Algorithm.ALGORITHM_STOCHASTIC, num_samples: 1, eps: 1e-4 } }),
      Code.FAILED_PRECONDITION,
      /^x\[0\]: a stochastic step would leave its domain \(0, inf\)/,
    );
    await rejects(bounded.jvp({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([1, 1]) }, options: { eps: 1e-4 } }), Code.FAILED_PRECONDITION, /outside its domain \(0, inf\)/);
  });

  it("a JVP along one element near a bound is that element's one-sided column (it was refused: CheckGradients could not check such an element)", async () => {
    const x = [5e-5, 2];
    for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_RICHARDSON]) {
      const { result, stats } = await bounded.jvp({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([-2, 0]) }, options: { algorithm, eps: 1e-4 } });
      assert.ok(Math.abs(result.f.data[0] - -2 * 3 * x[0] ** 2) < 1e-7, `algorithm ${algorithm}: ${result.f.data[0]}`);
      assert.ok(result.f.data[1] === 0, String(result.f.data[1]));
      // (A forward difference is one-sided anyway: only the stencils that had to change are reported.)
      if (algorithm !== Algorithm.ALGORITHM_FORWARD) assert.ok(stats.adjusted_steps.some((s) => /^x\[0\]: one-sided/.test(s)), stats.adjusted_steps.join(" | "));
    }
  });

  it("inputs on or outside their declared domain are INVALID_ARGUMENT naming the element, for every rule (they were told to use a smaller eps)", async () => {
    for (const x0 of [-0.5, 0]) {
      for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_ADAPTIVE]) {
        await rejects(bounded.jacobian({ inputs: inputs([x0, 2]), inputPaths: ["x"], outputPaths: ["f"], options: { algorithm } }), Code.INVALID_ARGUMENT, new RegExp(`^x\\[0\\] is ${x0}, outside its domain \\(0, inf\\): finite differences need inputs inside it$`));
      }
      await rejects(bounded.jvp({ inputs: inputs([x0, 2]), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([1, 1]) } }), Code.INVALID_ARGUMENT, /outside its domain \(0, inf\)/);
    }
  });

  it("Describe's defaults leave unset what is computed from the inputs (an eps function was reported as the engine's 1e-4)", () => {
    const computed = new TesseractRuntime({ ...base, finiteDifferences: { eps: () => 1e-6, algorithm: () => Algorithm.ALGORITHM_FORWARD } }, fixtureDir);
    assert.deepEqual([computed.describe().defaults.eps, computed.describe().defaults.algorithm], [0, 0]);
    const fixed = new TesseractRuntime({ ...base, finiteDifferences: { eps: 1e-6 } }, fixtureDir);
    assert.equal(fixed.describe().defaults.eps, 1e-6);
  });

  it("a bounds key that names no differentiable input is refused at load (a misspelt one was ignored, the domain undeclared)", () => {
    assert.throws(() => new TesseractRuntime({ ...base, bounds: { "params.kappa": { lower: 0 } } }, fixtureDir), /^Error: polynomial: bounds: input path "params\.kappa" is not a differentiable path; differentiable input paths: x, y, params\.\{\}, blocks\.\[\]\.w$/);
    assert.doesNotThrow(() => new TesseractRuntime({ ...base, bounds: { "params.{kappa}": { lower: 0 }, "blocks.[].w": { upper: 1 } } }, fixtureDir));
  });

  it("an inverted or NaN bound and an invalid fixed default are refused at load (every request was refused instead, telling the caller their inputs were outside (1, 0))", () => {
    assert.throws(() => new TesseractRuntime({ ...base, bounds: { x: { lower: 1, upper: 0 } } }, fixtureDir), /^Error: polynomial: bounds\.x is \(1, 0\): expected lower < upper$/);
    assert.throws(() => new TesseractRuntime({ ...base, bounds: { x: { lower: NaN } } }, fixtureDir), /^Error: polynomial: bounds\.x\.lower is "NaN": expected a number$/);
    assert.throws(() => new TesseractRuntime({ ...base, finiteDifferences: { eps: -1 } }, fixtureDir), /^Error: polynomial: Tesseract default eps must be a positive finite number, got -1$/);
    assert.throws(() => new TesseractRuntime({ ...base, finiteDifferences: { numSamples: 0.5 } }, fixtureDir), /^Error: polynomial: Tesseract default numSamples must be a whole number of at least 1, got 0\.5$/);
    // What is computed from the inputs can only be checked with them.
    assert.doesNotThrow(() => new TesseractRuntime({ ...base, finiteDifferences: { eps: () => -1, algorithm: Algorithm.ALGORITHM_FORWARD } }, fixtureDir));
  });

  it("no room on either side is FAILED_PRECONDITION naming the element", async () => {
    const narrow = new TesseractRuntime({ ...base, bounds: { x: { lower: 0, upper: 1e-4 } }, apply: refusing }, fixtureDir);
    await rejects(narrow.jacobian({ inputs: inputs([5e-5]), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-4 } }), Code.FAILED_PRECONDITION, /^x\[0\] = 0\.00005: its domain \(0, 0\.0001\) leaves no room/);
  });
});

describe("Richardson and adaptive rules", () => {
  // f = x⁵ through the polynomial fixture is not available; x³ + y sin(x) with y gives a smooth
  // non-polynomial part. Use g = exp(y) + Σw² as well: dg/dy = e^y.
  it("Richardson: 4n + 9 evaluations, 4th order: exact for x³, error estimate bounds the true error", async () => {
    const x = [0.3, -1.7, 2.5];
    const { entries, stats } = await runtime.jacobian({ inputs: inputs(x, 0.8), inputPaths: ["x", "y"], outputPaths: ["f", "g"], options: { algorithm: Algorithm.ALGORITHM_RICHARDSON, eps: 1e-2 } });
    assert.equal(stats.apply_calls, 4 * 4 + 9); // 4 per element; f(x) and the noise probe's 8 once
    const [fx, fy, , gy] = entries;
    const exact = x.map((v) => 3 * v * v + 0.8 * Math.cos(v));
    diagonal(fx.values, 3).forEach((d, i) => {
      const error = Math.abs(d - exact[i]);
      // 5-point stencil: error h⁴ f⁽⁵⁾/30 with f⁽⁵⁾ = y cos x: ~ 3e-10 at h = 1e-2.
      assert.ok(error < 1e-9, `error ${error}`);
      assert.ok(fx.errors![i * 3 + i] >= error, `estimate ${fx.errors![i * 3 + i]} < error ${error}`);
    });
    x.forEach((v, i) => assert.ok(Math.abs(fy.values[i] - Math.sin(v)) <= fy.errors![i]));
    assert.ok(Math.abs(gy.values[0] - Math.exp(0.8)) <= gy.errors![0]);
    assert.ok(Math.abs(gy.values[0] - Math.exp(0.8)) < 1e-9);
  });

  it("adaptive: picks a good step per entry from a poor starting eps, with an estimate that bounds the error", async () => {
    const { entries, stats } = await runtime.jacobian({ inputs: inputs([1], 3), inputPaths: ["y"], outputPaths: ["g"], options: { algorithm: Algorithm.ALGORITHM_ADAPTIVE, eps: 0.2 } });
    assert.equal(stats.apply_calls, 12 + 9);
    const error = Math.abs(entries[0].values[0] - Math.exp(3));
    // A plain central difference at h = 0.2 would be off by h²e³/6 ≈ 0.13.
    assert.ok(error < 1e-4, `error ${error}`);
    assert.ok(entries[0].errors![0] >= error && entries[0].errors![0] < 1e-2, `estimate ${entries[0].errors![0]}, error ${error}`);
  });

  it("adaptive: multiples of h that do not move x are left out, not the absolute step itself (sin at 1e12: 0 for 0.79, estimate 7e-9)", async () => {
    // An absolute h = 1e-4 (tesseract-core's default) moves x = 1e12 (FP64 spacing 1.2e-4), h / 4 to h / 64 do not: the
    // rule fell back to its relative step, 1.8e8, for all of them.
    const sine = new TesseractRuntime({ ...runtime.definition, apply: ((i: { x: ndarray.NdArray<Float64Array> }) => ({ f: ndarray(Float64Array.from(i.x.data, Math.sin), [i.x.size]) })) as never }, path.join(__dirname, "../../test/fixtures/polynomial"));
    await sine.useEvaluation({ workers: 0, cacheBytes: 0 });
    const x = 1e12;
    const { entries, stats } = await sine.jacobian({ inputs: inputs([x]), inputPaths: ["x"], outputPaths: ["f"], options: { algorithm: Algorithm.ALGORITHM_ADAPTIVE, eps: 1e-4 } });
    const error = Math.abs(entries[0].values[0] - Math.cos(x));
    assert.ok(error < 1e-9 && error <= entries[0].errors![0], `d sin / dx = ${entries[0].values[0]}, expected ${Math.cos(x)}; estimate ${entries[0].errors![0]}; ${stats.adjusted_steps.join(" | ")}`);
    assert.deepEqual(stats.adjusted_steps, [0.25, 0.0625, 0.015625].map((m) => `x[0]: the step ${m}h was left out (it does not move x in its precision)`));
  });

  it("central and forward give no error estimate", async () => {
    const { entries } = await runtime.jacobian({ inputs: inputs([1]), inputPaths: ["x"], outputPaths: ["f"] });
    assert.equal(entries[0].errors, undefined);
  });

  it("JVP and VJP with Richardson: 4 + 9 and 4n + 9 evaluations, estimates bounding the error", async () => {
    const x = [0.5, 1.5];
    const v = f64([1, -2]);
    const jvp = await runtime.jvp({ inputs: inputs(x, 1), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: v }, options: { algorithm: Algorithm.ALGORITHM_RICHARDSON, eps: 1e-2 } });
    assert.equal(jvp.stats.apply_calls, 4 + 9);
    x.forEach((xi, i) => {
      const exact = (3 * xi * xi + Math.cos(xi)) * v.get(i);
      const error = Math.abs(jvp.result.f.get(i) - exact);
      assert.ok(error <= jvp.errors!.f.get(i) && error < 1e-8, `jvp[${i}] error ${error}, estimate ${jvp.errors!.f.get(i)}`);
    });
    const vjp = await runtime.vjp({ inputs: inputs(x, 1), inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64([2, 3]) }, options: { algorithm: Algorithm.ALGORITHM_RICHARDSON, eps: 1e-2 } });
    assert.equal(vjp.stats.apply_calls, 8 + 9);
    x.forEach((xi, i) => {
      const exact = [2, 3][i] * (3 * xi * xi + Math.cos(xi));
      const error = Math.abs(vjp.result.x.get(i) - exact);
      assert.ok(error <= vjp.errors!.x.get(i) && error < 1e-8, `vjp[${i}] error ${error}, estimate ${vjp.errors!.x.get(i)}`);
    });
  });
});

describe("error estimates end to end", () => {
  it("FP32 inputs (univariate Rosenbrock): Richardson with relative steps, within FP32 accuracy and bounded", async () => {
    const univariate = loadTesseract("univariate");
    const [x, y] = [Math.fround(0.5), Math.fround(0.7)];
    const exact = [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)];
    const { entries } = await univariate.jacobian({
      inputs: { x: ndarray(Float32Array.of(x), []), y: ndarray(Float32Array.of(y), []) },
      inputPaths: ["x", "y"],
      outputPaths: ["result"],
      options: { algorithm: Algorithm.ALGORITHM_RICHARDSON, step_mode: RELATIVE },
    });
    entries.forEach((e, k) => {
      const error = Math.abs(e.values[0] - exact[k]);
      // apply rounds to FP32 a few times (ulp ~2e-6 at f ~ 20), over steps of ~0.04: ~1e-3 absolute.
      assert.ok(error < 5e-3, `d/d${e.inputPath}: ${e.values[0]} vs ${exact[k]}, estimate ${e.errors![0]}`);
      assert.ok(e.errors![0] >= error, `estimate ${e.errors![0]} < error ${error}`);
    });
  });

  it("streamed rows carry the same estimates as the unary response", async () => {
    const server = await startServer({ tesseract: "vectoradd", port: 0, streamChunkBytes: 1024, logger: silentLogger });
    const client = new TesseractClient<VectorInputs, VectorOutputs>(server.address, { inputs: VectorInputs, outputs: VectorOutputs });
    try {
      const inputs = { a: ndarray(new Float64Array(100).map((_, i) => Math.sin(i)), [100]), b: ndarray(new Float64Array(100).fill(1), [100]), s: ndarray(Float64Array.of(2), []), normalize: true };
      const request = { inputs, inputPaths: ["a", "s"], outputPaths: ["result"], options: { algorithm: Algorithm.ALGORITHM_RICHARDSON } };
      const unary = await client.jacobian(request);
      const streamed = await assembleJacobian(client.jacobianRows(request));
      assert.ok(unary.errorEstimate, "unary estimates");
      assert.deepEqual(streamed.errorEstimate, unary.errorEstimate);
      assert.deepEqual(streamed.jacobian, unary.jacobian);
    } finally {
      client.close();
      await server.close();
    }
  });
});
