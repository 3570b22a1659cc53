/**
 * heat: apply against exact discrete solutions (sine modes are eigenvectors of the Dirichlet
 * Laplacian stencil), the Jacobian against the explicit matrix (I + rL)^steps and its band, the
 * diffusivity derivative against its analytic value, apply-call counts, validation and abstractEval.
 */
import { strict as assert } from "node:assert";
import ndarray from "ndarray";
import { Code } from "../index";
import { loadTesseract } from "../index";
import { Algorithm } from "../index";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import { DataType } from "../common/tensor-codec";
import { assertClose, counted, f32, f64, maxAbsDiff } from "./helpers";

const OUT = ["final_temperature"];

interface HeatInputs {
  initial_temperature?: ndarray.NdArray;
  diffusivity?: ndarray.NdArray;
  steps: number;
  dt: number;
  dx: number;
}

function heatInputs(values: Float64Array, shape: number[], opts: { kappa?: number; steps: number; dt?: number; dx?: number }): HeatInputs {
  return {
    initial_temperature: ndarray(values, shape),
    diffusivity: f64([opts.kappa ?? 1], []),
    steps: opts.steps,
    dt: opts.dt ?? 0,
    dx: opts.dx ?? 0,
  };
}

/** sin(π k (i + 1) / (n + 1)), i = 0 … n − 1: an eigenvector of the 1-D Dirichlet stencil. */
const mode = (n: number, k: number) => Float64Array.from({ length: n }, (_, i) => Math.sin((Math.PI * k * (i + 1)) / (n + 1)));

/** Its eigenvalue of L (u_{i-1} − 2u_i + u_{i+1}): −4 sin²(π k / (2 (n + 1))). */
const sin2 = (n: number, k: number) => Math.sin((Math.PI * k) / (2 * (n + 1))) ** 2;


async function applyHeat(inputs: HeatInputs): Promise<Float64Array> {
  const runtime = loadTesseract("heat");
  runtime.definition.validate!(inputs);
  const out = (await runtime.apply(inputs as never)) as { final_temperature: ndarray.NdArray<Float64Array> };
  assert.deepEqual(out.final_temperature.shape, inputs.initial_temperature!.shape);
  return out.final_temperature.data;
}

/** (I + r L)^steps for the 1-D n-point stencil, dense row-major. */
function explicitMatrix1d(n: number, r: number, steps: number): Float64Array {
  const M = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    M[i * n + i] = 1 - 2 * r;
    if (i > 0) M[i * n + i - 1] = r;
    if (i < n - 1) M[i * n + i + 1] = r;
  }
  return power(M, n, steps);
}

/** (I + r (L_y ⊗ I + I ⊗ L_x))^steps for the ny × nx grid, flat row-major index y·nx + x. */
function explicitMatrix2d(ny: number, nx: number, r: number, steps: number): Float64Array {
  const n = ny * nx;
  const M = new Float64Array(n * n);
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      const i = y * nx + x;
      M[i * n + i] = 1 - 4 * r;
      if (x > 0) M[i * n + i - 1] = r;
      if (x < nx - 1) M[i * n + i + 1] = r;
      if (y > 0) M[i * n + i - nx] = r;
      if (y < ny - 1) M[i * n + i + nx] = r;
    }
  }
  return power(M, n, steps);
}

function power(M: Float64Array, n: number, steps: number): Float64Array {
  let P = new Float64Array(n * n);
  for (let i = 0; i < n; i++) P[i * n + i] = 1;
  for (let s = 0; s < steps; s++) {
    const next = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) next[i * n + j] += M[i * n + k] * P[k * n + j];
    P = next;
  }
  return P;
}

describe("heat", () => {
  describe("apply: exact discrete solutions of sine modes", () => {
    // L sin-mode = −4 sin²(πk/(2(n+1))) sin-mode, so after s steps u = u0 λ^s, λ = 1 − 4 r sin²(...).
    // Each step rounds at about 2^-53 |u| ≤ 1.1e-16: after 400 steps well under 1e-12.
    const cases = [
      { name: "default dt (r = 0.45)", n: 50, k: 3, steps: 400, dt: 0, dx: 0, kappa: 1, r: 0.45 },
      { name: "highest mode, default dt", n: 31, k: 31, steps: 200, dt: 0, dx: 0, kappa: 2.5, r: 0.45 },
      { name: "explicit dt and dx (r = 0.3)", n: 40, k: 1, steps: 300, dt: 0.0012, dx: 0.1, kappa: 2.5, r: (2.5 * 0.0012) / 0.01 },
    ];
    for (const { name, n, k, steps, dt, dx, kappa, r } of cases) {
      it(`1-D, ${name}: u0 · (1 − 4 r sin²(πk/(2(n+1))))^steps to 1e-12`, async () => {
        const u0 = mode(n, k);
        const got = await applyHeat(heatInputs(u0, [n], { kappa, steps, dt, dx }));
        const factor = (1 - 4 * r * sin2(n, k)) ** steps;
        assertClose(got, u0.map((v) => v * factor), 1e-12, "final_temperature");
      });
    }

    it("2-D, product of sines (ny ≠ nx), default dt (r = 0.225) and explicit dt: λ = 1 − 4r (S_y + S_x)", async () => {
      const [ny, nx, ky, kx] = [20, 30, 2, 5];
      const u0 = new Float64Array(ny * nx);
      const my = mode(ny, ky);
      const mx = mode(nx, kx);
      for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) u0[y * nx + x] = my[y] * mx[x];
      for (const { dt, dx, kappa, r } of [
        { dt: 0, dx: 0, kappa: 1, r: 0.225 },
        { dt: 0.01, dx: 0.5, kappa: 4, r: (4 * 0.01) / 0.25 },
      ]) {
        const steps = 150;
        const got = await applyHeat(heatInputs(u0.slice(), [ny, nx], { kappa, steps, dt, dx }));
        const factor = (1 - 4 * r * (sin2(ny, ky) + sin2(nx, kx))) ** steps;
        assertClose(got, u0.map((v) => v * factor), 1e-12, `final_temperature (dt = ${dt})`);
      }
    });

    it("1-D, the smallest grids and step counts, exactly: u_i ← (1 − 2r) u_i + r (u_{i−1} + u_{i+1}), zero beyond the ends", async () => {
      const r = 0.45; // the default dt's
      for (const n of [1, 2, 3, 17]) {
        for (const steps of [1, 2, 5]) {
          const u0 = Float64Array.from({ length: n }, (_, i) => Math.cos(1 + i) - 0.25 * i);
          let u = u0.slice();
          for (let s = 0; s < steps; s++) u = u.map((v, i) => (1 - 2 * r) * v + r * ((i > 0 ? u[i - 1] : 0) + (i < n - 1 ? u[i + 1] : 0)));
          assert.deepEqual(Array.from(await applyHeat(heatInputs(u0, [n], { steps }))), Array.from(u), `n = ${n}, ${steps} steps`);
          assert.deepEqual(Array.from(u0), Array.from(Float64Array.from({ length: n }, (_, i) => Math.cos(1 + i) - 0.25 * i)), "the input is left as it was");
        }
      }
    });

    it("does not modify its input, and 2-D with one row equals 1-D under the 2-D stencil's r", async () => {
      const u0 = mode(9, 2).map((v, i) => v + 0.1 * i);
      const copy = u0.slice();
      const inputs = heatInputs(u0, [9], { steps: 5, dt: 0.2 });
      await applyHeat(inputs);
      assert.deepEqual(u0, copy);
      // A 1 × n grid: the rows above and below are ghost zeros, so each step is u + r(u_{x-1} − 4u + u_{x+1}).
      const row = await applyHeat(heatInputs(u0.slice(), [1, 9], { steps: 1, dt: 0.2 }));
      const expected = u0.map((v, i) => v + 0.2 * ((i > 0 ? u0[i - 1] : 0) - 4 * v + (i < 8 ? u0[i + 1] : 0)));
      assertClose(row, expected, 1e-15, "1 × 9 grid");
    });
  });

  describe("gradients", () => {
    // The map is linear in u, so central differences carry no truncation error; what remains is
    // rounding: each output is computed to about (steps + 1)·2^-53·max|u| ≈ 5e-16 (|u| ≤ 1.2), the
    // difference of two such values is divided by the step actually taken, 2h = 2e-6 (eps 1e-6, the
    // Tesseract's default): ≤ 1e-15 / 2e-6 = 5e-10. Tolerance 1e-9.
    it("1-D: d final / d initial = (I + rL)^steps (n = 12, steps = 3), banded with bandwidth steps, 2n apply calls", async () => {
      const [n, steps] = [12, 3];
      const r = 0.4; // dt = 0.1, dx = 0.5, κ = 1
      const { runtime, counter } = counted("heat");
      const inputs = heatInputs(mode(n, 1).map((v, i) => v + 0.2 * Math.cos(i)), [n], { steps, dt: 0.1, dx: 0.5 });
      const { entries, stats } = await runtime.jacobian({ inputs: inputs as never, inputPaths: ["initial_temperature"], outputPaths: OUT, options: { algorithm: Algorithm.ALGORITHM_CENTRAL } });
      assert.equal(counter.calls, 2 * n);
      assert.equal(stats.apply_calls, 2 * n);
      assert.equal(entries.length, 1);
      assert.deepEqual([entries[0].outputPath, entries[0].inputPath, entries[0].shape], ["final_temperature", "initial_temperature", [n, n]]);
      const J = entries[0].values;
      const M = explicitMatrix1d(n, r, steps);
      assertClose(J, M, 1e-9, "Jacobian vs (I + rL)^3");
      // Outside the band, the perturbed element never reaches the output element: the two
      // evaluations give bit-identical values, so the entry is exactly 0; inside, (I + rL)^3 has no zero.
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          if (Math.abs(i - j) > steps) assert.equal(J[i * n + j], 0, `J[${i}, ${j}] outside the band`);
          else assert.notEqual(J[i * n + j], 0, `J[${i}, ${j}] inside the band`);
        }
      }
    });

    it("2-D: d final / d initial = (I + r(L_y⊗I + I⊗L_x))^steps (3 × 4, steps = 2), zero beyond flat bandwidth steps·nx", async () => {
      const [ny, nx, steps] = [3, 4, 2];
      const n = ny * nx;
      const { runtime, counter } = counted("heat");
      const inputs = heatInputs(Float64Array.from({ length: n }, (_, i) => Math.sin(0.7 * i + 0.1)), [ny, nx], { steps });
      const { entries } = await runtime.jacobian({ inputs: inputs as never, inputPaths: ["initial_temperature"], outputPaths: OUT });
      assert.equal(counter.calls, 2 * n);
      assert.deepEqual(entries[0].shape, [ny, nx, ny, nx]);
      const J = entries[0].values;
      assertClose(J, explicitMatrix2d(ny, nx, 0.225, steps), 1e-9, "Jacobian vs (I + rL)^2");
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          const [yi, xi, yj, xj] = [Math.floor(i / nx), i % nx, Math.floor(j / nx), j % nx];
          // The stencil reaches Manhattan distance `steps`.
          if (Math.abs(yi - yj) + Math.abs(xi - xj) > steps) assert.equal(J[i * n + j], 0, `J[${i}, ${j}]`);
          if (Math.abs(i - j) > steps * nx) assert.equal(J[i * n + j], 0);
        }
      }
    });

    it("d final / d diffusivity = u0 · s λ^(s−1) · (−4 dt sin²(...)/dx²) for a sine mode with dt fixed", async () => {
      const [n, k, steps, dt, dx, kappa] = [20, 2, 50, 0.05, 0.5, 1];
      const u0 = mode(n, k);
      const S = sin2(n, k);
      const r = (kappa * dt) / (dx * dx); // 0.2
      const lambda = 1 - 4 * r * S;
      const dLambda = (-4 * dt * S) / (dx * dx); // dλ/dκ
      const expected = u0.map((v) => v * steps * lambda ** (steps - 1) * dLambda);
      const { runtime, counter } = counted("heat");
      const inputs = heatInputs(u0, [n], { kappa, steps, dt, dx });
      const { entries } = await runtime.jacobian({ inputs: inputs as never, inputPaths: ["diffusivity"], outputPaths: OUT });
      assert.equal(counter.calls, 2);
      assert.deepEqual(entries[0].shape, [n]);
      // |derivative| ≤ 0.36. Truncation: h²/6 · |d³u/dκ³| ≤ 1e-12/6 · s³ |dλ/dκ|³ ≈ 1e-13. Rounding:
      // ≈ s · 2^-53 / 2h ≈ 3e-9 at worst (steps accumulate). Tolerance 1e-8 (relative ~3e-8).
      assertClose(entries[0].values, expected, 1e-8, "d final / d diffusivity");
      // Both inputs in one Jacobian: 2(n + 1) apply calls, one per perturbation serving the output.
      counter.calls = 0;
      const both = await runtime.jacobian({ inputs: inputs as never, inputPaths: ["initial_temperature", "diffusivity"], outputPaths: OUT });
      assert.equal(counter.calls, 2 * (n + 1));
      assert.deepEqual(both.entries.map((e) => [e.inputPath, e.shape]), [["initial_temperature", [n, n]], ["diffusivity", [n]]]);
      assertClose(both.entries[1].values, expected, 1e-8, "d final / d diffusivity, together with initial");
    });

    it("with the default dt, r does not depend on κ: d final / d diffusivity is exactly 0", async () => {
      const runtime = loadTesseract("heat");
      const { entries } = await runtime.jacobian({ inputs: sampleHeatInputs(16, 20) as never, inputPaths: ["diffusivity"], outputPaths: OUT });
      assert.equal(maxAbsDiff(entries[0].values, new Float64Array(16)), 0);
    });

    it("near its bound κ > 0, diffusivity is differenced one-sided, never evaluated at κ <= 0", async () => {
      // κ = 1e-7 with eps 1e-6: a central step would reach -9e-7, where apply refuses to run.
      const { runtime, counter } = counted("heat");
      const inputs = { ...sampleHeatInputs(8, 3), diffusivity: f64([1e-7], []), dt: 0.4 };
      runtime.definition.validate!(inputs);
      const oneSided = await runtime.jacobian({ inputs: inputs as never, inputPaths: ["diffusivity"], outputPaths: OUT, options: { eps: 1e-6 } });
      assert.deepEqual(oneSided.stats.adjusted_steps, ["diffusivity: one-sided (forward) stencil, the domain is (0, inf)"]);
      assert.equal(counter.calls, 3); // f(x), f(x + h), f(x + 2h)
      // Reference: central differences with a step small enough to stay inside (u is cubic in κ here).
      const reference = await runtime.jacobian({ inputs: inputs as never, inputPaths: ["diffusivity"], outputPaths: OUT, options: { eps: 1e-9 } });
      assert.deepEqual(reference.stats.adjusted_steps, []);
      assertClose(oneSided.entries[0].values, reference.entries[0].values, 1e-6 * Math.max(...reference.entries[0].values.map(Math.abs)));
    });
  });

  describe("validation", () => {
    const runtime = loadTesseract("heat");
    const base = (): HeatInputs => heatInputs(mode(10, 1), [10], { steps: 5 });
    const cases: [string, (i: HeatInputs) => void, RegExp][] = [
      ["missing initial_temperature", (i) => delete i.initial_temperature, /^initial_temperature is missing: expected an FP64 tensor of shape \(n,\) or \(ny, nx\)$/],
      ["FP32 initial_temperature", (i) => (i.initial_temperature = f32([1, 2])), /^initial_temperature has datatype DATA_TYPE_FP32, expected DATA_TYPE_FP64$/],
      ["scalar initial_temperature", (i) => (i.initial_temperature = f64([1], [])), /^initial_temperature has shape \[\], expected rank 1 \(n,\) or 2 \(ny, nx\)$/],
      ["rank-3 initial_temperature", (i) => (i.initial_temperature = f64([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2])), /^initial_temperature has shape \[2, 2, 2\], expected rank 1/],
      ["empty initial_temperature", (i) => (i.initial_temperature = f64([], [3, 0])), /^initial_temperature has shape \[3, 0\], which is empty: expected at least one grid point$/],
      ["NaN in initial_temperature", (i) => (i.initial_temperature = f64([0, 1, NaN])), /^initial_temperature has NaN at flat index 2, expected finite values$/],
      ["missing diffusivity", (i) => delete i.diffusivity, /^diffusivity is missing: expected an FP64 scalar κ > 0$/],
      ["FP32 diffusivity", (i) => (i.diffusivity = f32([1], [])), /^diffusivity has datatype DATA_TYPE_FP32, expected DATA_TYPE_FP64$/],
      ["diffusivity of shape [1]", (i) => (i.diffusivity = f64([1])), /^diffusivity has shape \[1\], expected a scalar \(shape \[\]\)$/],
      ["zero diffusivity", (i) => (i.diffusivity = f64([0], [])), /^diffusivity is 0, expected a finite number > 0$/],
      ["negative diffusivity", (i) => (i.diffusivity = f64([-2], [])), /^diffusivity is -2, expected a finite number > 0$/],
      ["infinite diffusivity", (i) => (i.diffusivity = f64([Infinity], [])), /^diffusivity is Infinity, expected a finite number > 0$/],
      ["NaN diffusivity", (i) => (i.diffusivity = f64([NaN], [])), /^diffusivity is NaN, expected a finite number > 0$/],
      ["steps = 0", (i) => (i.steps = 0), /^steps is 0, expected 1 ≤ steps ≤ 10000000$/],
      ["steps = 1e7 + 1", (i) => (i.steps = 10_000_001), /^steps is 10000001, expected 1 ≤ steps ≤ 10000000$/],
      ["negative dt", (i) => (i.dt = -0.1), /^dt is -0.1, expected a finite number ≥ 0 \(0 selects the stable default\)$/],
      ["NaN dt", (i) => (i.dt = NaN), /^dt is NaN, expected a finite number ≥ 0/],
      ["negative dx", (i) => (i.dx = -1), /^dx is -1, expected a finite number ≥ 0 \(0 means 1\)$/],
      ["infinite dx", (i) => (i.dx = Infinity), /^dx is Infinity, expected a finite number ≥ 0/],
      [
        "unstable 1-D dt",
        (i) => (i.dt = 0.6),
        /^dt is 0\.6, which is unstable: r = κ·dt\/dx² = 1·0\.6\/1² = 0\.6 exceeds the 1-D stability limit 0\.5 \(1\/2\); use dt ≤ 0\.5, or dt = 0 for the stable default 0\.45$/,
      ],
      [
        "unstable 2-D dt with κ and dx",
        (i) => Object.assign(i, { initial_temperature: f64([1, 2, 3, 4, 5, 6], [2, 3]), diffusivity: f64([2], []), dx: 0.5, dt: 0.05 }),
        /^dt is 0\.05, which is unstable: r = κ·dt\/dx² = 2·0\.05\/0\.5² = 0\.4 exceeds the 2-D stability limit 0\.25 \(1\/4\); use dt ≤ 0\.03125, or dt = 0 for the stable default 0\.028125$/,
      ],
    ];
    for (const [name, edit, message] of cases) {
      it(`${name}: INVALID_ARGUMENT (code 3)`, () => {
        const inputs = base();
        edit(inputs);
        assert.throws(
          () => runtime.definition.validate!(inputs),
          (e: { code: number; message: string }) => {
            assert.equal(e.code, Code.INVALID_ARGUMENT);
            assert.equal(e.code, 3);
            assert.match(e.message, message);
            return true;
          },
        );
      });
    }

    it("accepts dt exactly at the stability limit, the default dt and dx, and the sample inputs", () => {
      const ok = (edit: (i: HeatInputs) => void) => {
        const inputs = base();
        edit(inputs);
        runtime.definition.validate!(inputs);
      };
      ok((i) => (i.dt = 0.5));
      ok((i) => Object.assign(i, { diffusivity: f64([3], []), dx: 0.1, dt: (0.1 * 0.1) / (2 * 3) }));
      ok((i) => Object.assign(i, { initial_temperature: f64([1, 2, 3, 4], [2, 2]), dt: 0.25 }));
      ok((i) => (i.steps = 10_000_000));
      for (const dims of [1, 2] as const) runtime.definition.validate!(sampleHeatInputs(10, 3, dims));
    });

    it("rejects bad inputs through the wire form too (decodeInputs)", () => {
      const inputs = { ...base(), dt: 0.7 };
      const any = runtime.schema.inputs.encodeAny(inputs, "inputs");
      assert.throws(() => runtime.decodeInputs(any), (e: { code: number; message: string }) => e.code === Code.INVALID_ARGUMENT && /^dt is 0\.7, which is unstable/.test(e.message));
      runtime.decodeInputs(runtime.schema.inputs.encodeAny(base(), "inputs"));
    });
  });

  describe("abstractEval and samples", () => {
    const runtime = loadTesseract("heat");

    it("final_temperature has the initial field's shape, FP64", async () => {
      assert.deepEqual(await runtime.abstractEval(sampleHeatInputs(7, 2) as never), [{ path: "final_temperature", shape: [7], datatype: DataType.DATA_TYPE_FP64 }]);
      assert.deepEqual(await runtime.abstractEval(sampleHeatInputs(5, 2, 2) as never), [{ path: "final_temperature", shape: [5, 5], datatype: DataType.DATA_TYPE_FP64 }]);
      const abstract = { initial_temperature: { shape: [3, 8], datatype: DataType.DATA_TYPE_FP64 }, diffusivity: { shape: [], datatype: DataType.DATA_TYPE_FP64 }, steps: 1, dt: 0, dx: 0 };
      assert.deepEqual(runtime.definition.abstractEval!(abstract), [{ path: "final_temperature", shape: [3, 8], datatype: DataType.DATA_TYPE_FP64 }]);
      assert.ok(runtime.endpoints().includes("AbstractEval"));
    });

    it("rejects a missing or rank-3 field", () => {
      assert.throws(() => runtime.definition.abstractEval!({ steps: 1 }), /^TesseractError: initial_temperature is missing/);
      assert.throws(
        () => runtime.definition.abstractEval!({ initial_temperature: { shape: [2, 2, 2], datatype: DataType.DATA_TYPE_FP64 } }),
        (e: { code: number; message: string }) => e.code === Code.INVALID_ARGUMENT && /^initial_temperature has shape \[2, 2, 2\], expected rank 1/.test(e.message),
      );
    });

    it("sampleHeatInputs: deterministic, smooth, κ = 1, dt and dx default; apply keeps it finite and decaying", async () => {
      const a = sampleHeatInputs(64, 100);
      const b = sampleHeatInputs(64, 100);
      assert.deepEqual(a.initial_temperature.data, b.initial_temperature.data);
      assert.deepEqual([a.diffusivity.data[0], a.steps, a.dt, a.dx], [1, 100, 0, 0]);
      for (const dims of [1, 2] as const) {
        const inputs = sampleHeatInputs(24, 50, dims);
        const out = await applyHeat(inputs as never);
        const maxIn = Math.max(...inputs.initial_temperature.data.map(Math.abs));
        const maxOut = Math.max(...out.map(Math.abs));
        assert.ok(out.every(Number.isFinite) && maxOut < maxIn, `dims ${dims}: max ${maxOut} vs ${maxIn}`);
      }
    });

    it("is bundled and described", () => {
      const d = runtime.describe();
      assert.equal(d.name, "heat");
      assert.equal(d.input_type, "tesseract.examples.heat.v1.Inputs");
      assert.deepEqual(d.differentiable_inputs, ["initial_temperature", "diffusivity"]);
      assert.deepEqual(d.differentiable_outputs, ["final_temperature"]);
      assert.equal(d.defaults.eps, 1e-6);
    });
  });
});
