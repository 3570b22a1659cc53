/**
 * Error estimates that bound the error, and an adaptive rule that is never far behind Richardson.
 *
 * - The noise of f is measured (server/fd/noise.ts), not assumed: on an RK4 integration, whose
 *   outputs scatter by several ulps, the Richardson and adaptive estimates bound every entry's error.
 * - A VJP's contracted output keeps its outputs' precision and magnitude: FP32 outputs round at
 *   2^-24 of sum |c_i f_i|, and the estimate says so.
 * - The adaptive rule's default steps: on every case of the accuracy suite (bench/fixtures/
 *   testfunctions), its error is within a factor 2 of Richardson's.
 * Values against analytic derivatives; exact apply-call counts.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import ndarray from "ndarray";
import { noiseLevel, pairNoise } from "../server/fd/noise";
import { plannedEvaluations } from "../server/fd/rows";
import { defaultRelativeEps } from "../server/fd/steps";
import { loadTesseract } from "../index";
import { TesseractRuntime } from "../server/runtime";
import { DataType } from "../common/tensor-codec";
import { Algorithm } from "../index";
import type { TestCase } from "../bench/fixtures/testfunctions/test-case";
import { f64 } from "./helpers";

const MODULE = path.join(__dirname, "../../bench/fixtures/testfunctions/testfunctions.js");
const testfunctions = loadTesseract(MODULE);
// Evaluation counts here are each rule's own per request: without the evaluation cache, which would
// answer f(x) of a repeated input from an earlier request (test/evaluation-cache.test.ts).
before(() => testfunctions.useEvaluation({ workers: 0, cacheBytes: 0 }));
// eslint-disable-next-line @typescript-eslint/no-require-imports
const cases = (require(MODULE) as { cases: TestCase[] }).cases;
const byName = (name: string) => cases.find((c) => c.name === name)!;

const ABSOLUTE = 1;
const RELATIVE = 2;
const { ALGORITHM_RICHARDSON: RICHARDSON, ALGORITHM_ADAPTIVE: ADAPTIVE } = Algorithm;

/** Decoded inputs holding one case at `point`. */
function inputsAt(c: TestCase, point = c.point) {
  const data = Float64Array.from(point);
  const tensor = { datatype: DataType.DATA_TYPE_FP64, shape: c.inputShape, data: new Uint8Array(data.buffer) };
  return testfunctions.decodeInputs({ type_url: testfunctions.schema.inputs.typeUrl, value: testfunctions.schema.inputs.type.encode({ [c.input]: tensor }).finish() });
}

async function caseJacobian(c: TestCase, options: object, point = c.point) {
  const { entries, stats } = await testfunctions.jacobian({ inputs: inputsAt(c, point), inputPaths: [c.input], outputPaths: [c.output], options });
  return { values: entries[0].values, errors: entries[0].errors, calls: stats.apply_calls };
}

/** max_ij e_ij, e relative where the exact entry is nonzero (as bench/accuracy.ts). */
function maxRelativeError(values: ArrayLike<number>, exact: readonly number[]): number {
  return Math.max(...exact.map((e, i) => (e === 0 ? Math.abs(values[i]) : Math.abs(values[i] - e) / Math.abs(e))));
}

/** Every entry's true error against its estimate. */
function assertBounded(values: ArrayLike<number>, errors: ArrayLike<number> | undefined, exact: readonly number[], what: string): void {
  assert.ok(errors, `${what}: no error estimate`);
  exact.forEach((e, i) => {
    const error = Math.abs(values[i] - e);
    assert.ok(error <= errors[i], `${what}, entry ${i}: error ${error.toExponential(2)} > estimate ${errors[i].toExponential(2)} (${(error / errors[i]).toFixed(2)}×)`);
  });
}

describe("noise measured from the evaluations (ECnoise)", () => {
  /** A reproducible uniform in [-1, 1) (a linear congruential generator). */
  const uniform = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 30) - 1;

  it("finds the noise level of a smooth function plus noise, whatever the smooth part", () => {
    const next = uniform(7);
    // Uniform noise on [-a, a] has standard deviation a / sqrt(3).
    const a = 1e-9;
    for (const smooth of [() => 3, (t: number) => 2 + 0.5 * t, (t: number) => Math.exp(t) * Math.sin(3 * t)]) {
      const samples = Array.from({ length: 9 }, (_, i) => smooth(1e-3 * i) + a * next());
      const level = noiseLevel(samples)!;
      assert.ok(level > a / Math.sqrt(3) / 4 && level < (a / Math.sqrt(3)) * 4, `level ${level} for σ ${a / Math.sqrt(3)}`);
    }
  });

  it("sees no noise in a function that did not change, and an upper estimate where it is not smooth", () => {
    assert.equal(noiseLevel(new Array(9).fill(0.25)), undefined);
    const kinked = noiseLevel(Array.from({ length: 9 }, (_, i) => Math.abs(i - 4.5)))!;
    assert.ok(kinked > 0.1, `kink seen as noise ${kinked}`);
  });

  it("a row's pairs at a and 2a with f(x) give the 4th difference over sqrt(70) / 2", () => {
    const f = [0.3, -1.1, 0.7, 2.2, -0.4]; // f(x - 2a) .. f(x + 2a)
    const fourth = f[0] - 4 * f[1] + 6 * f[2] - 4 * f[3] + f[4];
    const [noise] = pairNoise([Float64Array.of(f[2])], { halfWidth: 1e-3, mean: [Float64Array.of((f[1] + f[3]) / 2)] }, { halfWidth: 2e-3, mean: [Float64Array.of((f[0] + f[4]) / 2)] });
    assert.ok(Math.abs(noise[0] - Math.abs(fourth) / Math.sqrt(70)) < 1e-15, `${noise[0]} vs ${Math.abs(fourth) / Math.sqrt(70)}`);
  });

  it("costs f(x) and the probe's 8 evaluations once per request: Richardson 4n + 9, adaptive 12n + 9", async () => {
    const rk4 = byName("rk4");
    for (const [algorithm, calls] of [[RICHARDSON, 4 * 3 + 9], [ADAPTIVE, 12 * 3 + 9]] as const) {
      assert.equal((await caseJacobian(rk4, { algorithm, eps: 1e-4 })).calls, calls);
      assert.equal(plannedEvaluations(3, { algorithm: algorithm === RICHARDSON ? "richardson" : "adaptive", seed: 0n }), calls);
      const streamed = testfunctions.jacobianRows({ inputs: inputsAt(rk4), inputPaths: [rk4.input], outputPaths: [rk4.output], options: { algorithm, eps: 1e-4 } });
      for await (const _ of streamed.rows);
      assert.equal(streamed.stats().apply_calls, streamed.plannedEvaluations());
    }
  });
});

describe("estimates bound the error where apply rounds many times (RK4, 400 steps)", () => {
  const rk4 = byName("rk4");
  // The suite's point and points around it (q0, p0, w each within ±25%), reproducibly.
  const points = [rk4.point, ...Array.from({ length: 12 }, (_, k) => rk4.point.map((x, j) => x * (1 + 0.5 * (((k * 7 + j * 3) % 11) / 10 - 0.5))))];

  for (const [algorithm, name] of [[RICHARDSON, "Richardson"], [ADAPTIVE, "adaptive"]] as const) {
    for (const [mode, modeName] of [[ABSOLUTE, "absolute"], [RELATIVE, "relative"]] as const) {
      it(`${name}, ${modeName} steps: every entry within its estimate, at 13 points`, async () => {
        for (const point of points) {
          const { values, errors } = await caseJacobian(rk4, { algorithm, step_mode: mode }, point);
          const exact = rk4.jacobian(point);
          assert.ok(maxRelativeError(values, exact) < 1e-8, `error ${maxRelativeError(values, exact)} at ${point}`);
          assertBounded(values, errors, exact, `${name} ${modeName} at ${point}`);
        }
      });
    }
  }

  it("JVP and VJP estimates bound their errors too", async () => {
    const v = [0.3, -0.8, 0.5];
    const c = [1.5, -0.25];
    const J = rk4.jacobian(rk4.point);
    const exactJvp = [0, 1].map((o) => v.reduce((s, vj, j) => s + J[o * 3 + j] * vj, 0));
    const exactVjp = [0, 1, 2].map((j) => c.reduce((s, co, o) => s + co * J[o * 3 + j], 0));
    for (const algorithm of [RICHARDSON, ADAPTIVE]) {
      const request = { inputs: inputsAt(rk4), inputPaths: [rk4.input], outputPaths: [rk4.output], options: { algorithm } };
      const jvp = await testfunctions.jvp({ ...request, tangent: { [rk4.input]: f64(v) } });
      // 4 + 9 and 12 + 9, and 2 for each stencil whose rounded points strayed from v (fd/jvp.ts, straighten): 1 of 2, 4 of 6 here.
      assert.equal(jvp.stats.apply_calls, algorithm === RICHARDSON ? 4 + 9 + 2 : 12 + 9 + 2 * 4);
      assertBounded(jvp.result[rk4.output].data, jvp.errors![rk4.output].data, exactJvp, `JVP ${Algorithm[algorithm]}`);
      const vjp = await testfunctions.vjp({ ...request, cotangent: { [rk4.output]: f64(c) } });
      assertBounded(vjp.result[rk4.input].data, vjp.errors![rk4.input].data, exactVjp, `VJP ${Algorithm[algorithm]}`);
    }
  });
});

describe("a VJP carries its outputs' precision and magnitude", () => {
  const fixture = path.join(__dirname, "../../test/fixtures/polynomial");
  const base = loadTesseract(path.join(fixture, "polynomial.js")).definition;
  // f = A x rounded to FP32 (linear: every error is rounding), from FP64 inputs.
  const A = [
    [3.1, -1.7, 0.4, 2.9],
    [3.1, -1.7, 0.41, 2.9],
    [-0.6, 5.3, 1.2, 0.8],
  ];
  const fp32 = new TesseractRuntime(
    { ...base, apply: (i: { x: ndarray.NdArray<Float64Array> }) => ({ f: ndarray(Float32Array.from(A, (row) => row.reduce((s, a, j) => s + a * i.x.data[j], 0)), [3]) }) } as never,
    fixture,
  );
  const x = [1.3, -0.7, 2.2, 0.9];
  // The first two outputs nearly cancel in c^T f: phi's rounding is 2^-24 sum |c_i f_i|, far above 2^-24 |phi|.
  const c = [1, -1, 0.01];
  const exact = x.map((_, j) => c.reduce((s, ci, o) => s + ci * A[o][j], 0));

  for (const algorithm of [RICHARDSON, ADAPTIVE]) {
    it(`FP32 outputs, ${Algorithm[algorithm]}: the estimate bounds the error`, async () => {
      // eps 1e-8 moves f by less than its FP32 resolution (ulp(10) ~ 1e-6): the differences are
      // mostly 0, far off, and only the outputs' own precision (2^-24 sum |c_i f_i| / h) says so;
      // the noise probe sees nothing change there.
      for (const eps of [1e-8, 1e-5, 1e-3]) {
        const { result, errors } = await fp32.vjp({ inputs: { x: f64(x), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64(c) }, options: { algorithm, eps } });
        assertBounded(result.x.data, errors!.x.data, exact, `eps ${eps}`);
      }
    });
  }
});

describe("the adaptive rule's default steps", () => {
  it("relative: ε^(1/5) / 4, so that its largest extrapolation meets Richardson's optimum", () => {
    assert.equal(defaultRelativeEps("adaptive", false), Number.EPSILON ** (1 / 5) / 4);
    assert.equal(defaultRelativeEps("adaptive", true), (2 ** -23) ** (1 / 5) / 4);
  });

  it("log-sum-exp of 500 values near 1e3 (relative steps): adaptive no worse than Richardson", async () => {
    const lse = byName("logsumexp");
    const exact = lse.jacobian(lse.point);
    const richardson = await caseJacobian(lse, { algorithm: RICHARDSON, step_mode: RELATIVE });
    const adaptive = await caseJacobian(lse, { algorithm: ADAPTIVE, step_mode: RELATIVE });
    const [r, a] = [maxRelativeError(richardson.values, exact), maxRelativeError(adaptive.values, exact)];
    assert.ok(a <= r, `adaptive ${a} vs Richardson ${r}`);
    assert.ok(a < 1e-8, `adaptive ${a}`);
    assertBounded(adaptive.values, adaptive.errors, exact, "adaptive");
    assert.equal(adaptive.calls, 12 * 500 + 9);
  });

  it("on every case and step mode of the accuracy suite, within a factor 2 of Richardson's error", async () => {
    for (const c of cases) {
      const exact = c.jacobian(c.point);
      // As bench/accuracy.ts: absolute, relative, and relative with typical magnitude min |x|.
      for (const options of [{ step_mode: ABSOLUTE }, { step_mode: RELATIVE }, { step_mode: RELATIVE, typical_magnitude: { [c.input]: Math.min(...c.point.map(Math.abs)) } }]) {
        const r = maxRelativeError((await caseJacobian(c, { algorithm: RICHARDSON, ...options })).values, exact);
        const a = maxRelativeError((await caseJacobian(c, { algorithm: ADAPTIVE, ...options })).values, exact);
        assert.ok(a <= 2 * r, `${c.name} ${JSON.stringify(options)}: adaptive ${a.toExponential(2)}, Richardson ${r.toExponential(2)}`);
      }
    }
  });
});
