/**
 * A JVP's step along its tangent where the inputs' numbers are too coarse for it (a tiny eps, or
 * large inputs): rounding each point would move every element its own way — one ulp each — and the
 * quotient would be the derivative along another direction (answered OK: 0.43, 0.86, 1.71 for
 * 1, 1, 1). The step is lengthened until the points lie along the tangent, and reported; a step
 * already long enough is left as it is.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import ndarray from "ndarray";
import { loadTesseract, Algorithm } from "../index";
import { counted, f32, f64 } from "./helpers";

const FIXTURE = path.join(__dirname, "../../test/fixtures/polynomial");
// f_i = x_i³ + y sin(x_i): J = diag(3 x_i² + y cos x_i).
const runtime = loadTesseract(path.join(FIXTURE, "polynomial.js"));
const inputs = (x: number[]) => ({ x: f64(x), y: f64([0], []), params: {}, blocks: [], mode: "" });
const jvp = (x: number[], v: number[], options: object) => runtime.jvp({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64(v) }, options });

const ALGORITHMS = [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE, Algorithm.ALGORITHM_STOCHASTIC];

describe("JVP steps along the tangent", () => {
  for (const algorithm of ALGORITHMS) {
    it(`${Algorithm[algorithm]}: large inputs and an absolute eps of a few of their ulps give J v, the longer step reported`, async () => {
      const x = [1e9, 2e9, 3e9];
      // Four ulps of 3e9 at the rule's smallest step (adaptive's h / 64): the points are numbers
      // other than x, but rounding moves each element by up to half an ulp of its own.
      const smallest = algorithm === Algorithm.ALGORITHM_ADAPTIVE ? 1 / 64 : 1;
      const { result, stats } = await jvp(x, [1, 1, 1], { algorithm, eps: (4 * 2 ** -21) / smallest, step_mode: 1 });
      Array.from(result.f.data as Float64Array).forEach((got, i) => {
        const exact = 3 * x[i] * x[i];
        assert.ok(Math.abs(got - exact) <= 1e-3 * exact, `(J v)[${i}] = ${got}, expected ${exact}`);
      });
      assert.ok(
        stats.adjusted_steps.some((s) => /^the step along the tangent: \S+ is too short for the spacing of the inputs' numbers/.test(s)),
        stats.adjusted_steps.join(" | "),
      );
    });
  }

  for (const [algorithm, bound] of [[Algorithm.ALGORITHM_CENTRAL, 5e-8], [Algorithm.ALGORITHM_RICHARDSON, 1e-10]] as const) {
    it(`${Algorithm[algorithm]}: a tangent on an FP64 and an FP32 input — the FP64 input's outputs keep their accuracy (they lost six orders to the FP32 input's rounding)`, async () => {
      // f depends on x (FP64) alone, g on blocks[0].w (FP32) alone: g = Σ w² + e^y.
      const [x, w, vx, vw] = [[0.3, 0.7, 1.1], Float32Array.of(0.3, 0.6), [1, -0.5, 0.25], [0.7, -1.3]];
      const mixed = { x: f64(x), y: f64([0.5], []), params: {}, blocks: [{ w: ndarray(w, [2]) }], mode: "" };
      const { result } = await runtime.jvp({ inputs: mixed, inputPaths: ["x", "blocks.[0].w"], outputPaths: ["f", "g"], tangent: { x: f64(vx), "blocks.[0].w": f64(vw) }, options: { algorithm } });
      x.forEach((xi, i) => {
        const exact = (3 * xi * xi + 0.5 * Math.cos(xi)) * vx[i];
        assert.ok(Math.abs(result.f.data[i] - exact) < bound, `(J v)_f[${i}] = ${result.f.data[i]}, expected ${exact}`);
      });
      // g's own: as good as FP32 inputs allow.
      assert.ok(Math.abs(result.g.data[0] - (2 * w[0] * vw[0] + 2 * w[1] * vw[1])) < 1e-3);
    });
  }

  // f = exp(x), FP32 x: the stray a stencil was left with (below 2^-24 of v, not straightened) was
  // in Richardson's value and not in its estimate, which the error then exceeded 6 times.
  for (const algorithm of [Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE]) {
    it(`${Algorithm[algorithm]}: the error estimate of a JVP bounds its error, the rounding of its points included`, async () => {
      const x = Float32Array.of(0.3, -1.2, 2.5, 0.01);
      const v = [1, -0.5, 0.25, 2];
      const exp = { x: ndarray(x, [4]), y: ndarray(Float32Array.of(0.7), []), params: {}, blocks: [], mode: "exp" };
      const { result, errors } = await runtime.jvp({ inputs: exp, inputPaths: ["x", "y"], outputPaths: ["f"], tangent: { x: f64(v), y: f64([0.3], []) }, options: { algorithm } });
      x.forEach((xi, i) => {
        const error = Math.abs(result.f.data[i] - Math.exp(xi) * v[i]);
        assert.ok(error <= errors!.f.data[i], `f[${i}]: error ${error} beyond its estimate ${errors!.f.data[i]}`);
      });
    });
  }

  it("eps from 1e-17 down to a subnormal: J v, at the rule's relative step", async () => {
    for (const eps of [1e-17, 1e-300, 1e-320]) {
      const { result, stats } = await jvp([1, 2, 3], [1, -2, 0.5], { eps, step_mode: 1 });
      const expected = [3, -24, 13.5];
      Array.from(result.f.data as Float64Array).forEach((got, i) => assert.ok(Math.abs(got - expected[i]) <= 1e-3 * Math.abs(expected[i]), `eps ${eps}: (J v)[${i}] = ${got}`));
      // Each element that took the fallback is named.
      assert.deepEqual(stats.adjusted_steps.map((a) => a.slice(0, 5)), ["x[0]:", "x[1]:", "x[2]:"], stats.adjusted_steps.join(" | "));
    }
  });

  // One step along the whole tangent served its most demanding element: FP32 x = [0.3, 1234.5]
  // along [1, 1] stepped x_0 by 6 (1234.5's fallback relative step), and d x_0³ came back 68 times
  // too large; with eps 1e-4, the spacing of FP32 numbers at 1234.5 set a step of 0.35. Elements
  // needing steps more than 16 times apart now take their own differences.
  for (const [algorithm, calls] of [[Algorithm.ALGORITHM_CENTRAL, 4], [Algorithm.ALGORITHM_FORWARD, 3], [Algorithm.ALGORITHM_RICHARDSON, 16]] as const) {
    // Two columns' worth: central 2 + 2; forward f(x) + 1 + 1; Richardson 4 + 4 and the noise probe's 8 with f(x).
    it(`${Algorithm[algorithm]}: elements whose steps differ widely are differenced apart: J v right for each (x_0's was 68 times too large)`, async () => {
      const x = Float32Array.of(0.3, 1234.5);
      const { result, stats } = await runtime.jvp({ inputs: { ...inputs([0]), x: ndarray(x, [2]) }, inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([1, 1]) }, options: { algorithm } });
      const rtol = algorithm === Algorithm.ALGORITHM_FORWARD ? 1e-3 : 1e-4;
      Array.from(x).forEach((xi, i) => assert.ok(Math.abs(result.f.data[i] / (3 * xi * xi) - 1) < rtol, `(J v)[${i}] = ${result.f.data[i]}, expected ${3 * xi * xi}`));
      assert.equal(stats.apply_calls, calls);
    });
  }

  // vectoradd, result = 1.7 a + b, a FP32: the points x ± t v round per element, so the difference
  // was taken along v + c with |c| up to 2e-4 of v here, and answered 1.7 v off by as much (a
  // one-element tangent was exact). Each stencil is now straightened by a difference along c.
  // Richardson and adaptive straighten until what is left is below 2^-40 of v (their estimates do not count it): two rounds here.
  for (const [algorithm, calls] of [[Algorithm.ALGORITHM_CENTRAL, 4], [Algorithm.ALGORITHM_FORWARD, 3], [Algorithm.ALGORITHM_RICHARDSON, 21], [Algorithm.ALGORITHM_ADAPTIVE, 41]] as const) {
    it(`${Algorithm[algorithm]}: a tangent on an FP32 input is J v to 1e-7, not J v' for the rounded points' direction v' (off by 2e-4)`, async () => {
      const { runtime, counter } = counted("vectoradd");
      const v = [0.3, 1, 0.7];
      const fp32Inputs = { a: f32([1.1, -2.3, 0.77]), b: f64([0.5, 0.25, 2]), s: f64([1.7], []) };
      const { result, stray, stats } = await runtime.jvp({ inputs: fp32Inputs, inputPaths: ["a"], outputPaths: ["result"], tangent: { a: f64(v) }, options: { algorithm } });
      v.forEach((vi, i) => {
        const got = result.result.data[i];
        assert.ok(Math.abs(got - 1.7 * vi) <= 1e-7 * 1.7 * vi, `(J v)[${i}] = ${got}, expected ${1.7 * vi}`);
      });
      // The stray reported (what CheckGradients allows for) is what is left after straightening.
      assert.ok(Math.max(...stray!.a) < 1e-6, `stray ${Array.from(stray!.a)}`);
      // Two more evaluations per stencil (forward: one, f(x) known), counted as such.
      assert.equal(counter.calls, calls);
      assert.equal(stats.apply_calls, calls);
    });
  }

  it("a one-element tangent and FP64 inputs are not straightened: no stray to remove, no evaluations added", async () => {
    const { runtime, counter } = counted("vectoradd");
    const fp32Inputs = { a: f32([1.1, -2.3, 0.77]), b: f64([0.5, 0.25, 2]), s: f64([1.7], []) };
    const one = await runtime.jvp({ inputs: fp32Inputs, inputPaths: ["a"], outputPaths: ["result"], tangent: { a: f64([0, 1, 0]) } });
    assert.ok(Math.abs(one.result.result.data[1] - 1.7) < 1e-12, String(one.result.result.data[1]));
    assert.equal(counter.calls, 2);
    const fp64Inputs = { a: f64([1.1, -2.3, 0.77]), b: f64([0.5, 0.25, 2]), s: f64([1.7], []) };
    await runtime.jvp({ inputs: fp64Inputs, inputPaths: ["a"], outputPaths: ["result"], tangent: { a: f64([0.3, 1, 0.7]) } });
    assert.equal(counter.calls, 4);
  });

  it("a step already long enough is not touched: nothing reported, the same value as before", async () => {
    const { result, stats } = await jvp([1, 2, 3], [1, 1, 1], {});
    assert.deepEqual(stats.adjusted_steps, []);
    Array.from(result.f.data as Float64Array).forEach((got, i) => assert.ok(Math.abs(got - 3 * (i + 1) ** 2) < 1e-6, String(got)));
  });
});
