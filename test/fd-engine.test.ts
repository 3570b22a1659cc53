/**
 * The finite-difference engine on plain functions with known derivatives, through a test evaluator
 * (no schema, no gRPC): evaluation counts, each rule's accuracy, steps actually taken, SPSA
 * statistics, JVP/VJP, cancellation and error context.
 */
import { strict as assert } from "node:assert";
import { Code, TesseractError } from "../index";
import type { Evaluator, OutputInfo, Perturbation } from "../server/eval/evaluator";
import { jacobian } from "../server/fd/jacobian";
import { jvp } from "../server/fd/jvp";
import { resolveOptions, type ResolvedOptions } from "../server/fd/options";
import type { InputLeaf } from "../server/eval/input-leaf";
import { Problem } from "../server/fd/problem";
import { defaultNumSamples, plannedEvaluations } from "../server/fd/rows";
import { nextAfter, stepped } from "../server/fd/steps";
import { vjp } from "../server/fd/vjp";
import { Algorithm } from "../index";
import { recordFrom } from "../common/records";
import { assertClose, perturbedCopies, rejects, rms } from "./helpers";

type Fn = (leaves: Float64Array[]) => Float64Array[];

/** Evaluates `fn` on copies of the leaves with the perturbation applied (in each leaf's precision). */
class FunctionEvaluator implements Evaluator {
  calls = 0;
  concurrency = 1;
  onEvaluate?: (call: number) => void;

  constructor(
    private readonly leaves: InputLeaf[],
    private readonly fn: Fn,
    readonly outputs: OutputInfo[],
  ) {}

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    const xs = perturbedCopies(this.leaves, perturbation);
    this.calls++;
    this.onEvaluate?.(this.calls);
    return this.fn(xs);
  }
}

function leaf(path: string, values: number[], fp32 = false): InputLeaf {
  const data = fp32 ? Float32Array.from(values) : Float64Array.from(values);
  return { path, segments: [{ kind: "field", name: path }], shape: [values.length], size: values.length, data, fp32 };
}

function setup(leaves: InputLeaf[], fn: Fn, outputSizes: number[], signal?: AbortSignal) {
  const evaluator = new FunctionEvaluator(leaves, fn, outputSizes.map((n, i) => ({ path: `out${i}`, shape: [n], datatype: 11 })));
  return { evaluator, problem: new Problem(leaves, evaluator, signal) };
}

const opts = (algorithm: ResolvedOptions["algorithm"], eps: number, extra: Partial<ResolvedOptions> = {}): ResolvedOptions => ({ algorithm, eps, seed: 7n, ...extra });

// f(x, y) = [sin(x0) * y0, x0^3 + x1 y0, exp(x1)] and g(x) = [x0 x1]: two outputs, two leaves.
const fn: Fn = ([x, y]) => [Float64Array.of(Math.sin(x[0]) * y[0], x[0] ** 3 + x[1] * y[0], Math.exp(x[1])), Float64Array.of(x[0] * x[1])];
const X = [0.7, -0.3];
const Y = [1.9];
/** Analytic Jacobians in (out, in) layout: [out0 wrt x (3x2), out0 wrt y (3x1), out1 wrt x (1x2), out1 wrt y (1x1)]. */
function analytic(x = X, y = Y): Float64Array[] {
  return [
    Float64Array.of(Math.cos(x[0]) * y[0], 0, 3 * x[0] ** 2, y[0], 0, Math.exp(x[1])),
    Float64Array.of(Math.sin(x[0]), x[1], 0),
    Float64Array.of(x[1], x[0]),
    Float64Array.of(0),
  ];
}
const twoLeaves = () => [leaf("x", X), leaf("y", Y)];

describe("fd engine", () => {
  describe("jacobian", () => {
    it("central: 2n evaluations for all outputs at once, error O(h^2)", async () => {
      const { evaluator, problem } = setup(twoLeaves(), fn, [3, 1]);
      const entries = await jacobian(problem, opts("central", 1e-4));
      assert.equal(evaluator.calls, 2 * 3);
      assert.deepEqual(entries.map((e) => [e.outputPath, e.inputPath, e.shape]), [
        ["out0", "x", [3, 2]],
        ["out0", "y", [3, 1]],
        ["out1", "x", [1, 2]],
        ["out1", "y", [1, 1]],
      ]);
      // Truncation h^2/6 |f'''| = 1e-8 for x0^3 (f''' = 6), plus rounding 1e-16 |f| / h ~ 1e-12.
      entries.forEach((e, i) => assertClose(e.values, analytic()[i], 2e-8, `${e.outputPath}/${e.inputPath}`));
    });

    it("forward: n + 1 evaluations, error O(h)", async () => {
      const { evaluator, problem } = setup(twoLeaves(), fn, [3, 1]);
      const entries = await jacobian(problem, opts("forward", 1e-7));
      assert.equal(evaluator.calls, 3 + 1);
      // Truncation h/2 |f''| ~ 1e-7 * 6 / 2 plus rounding 1e-16 * 3 / 1e-7.
      entries.forEach((e, i) => assertClose(e.values, analytic()[i], 1e-6, `${e.outputPath}/${e.inputPath}`));
    });

    it("stochastic: 2K evaluations, reproducible by seed, central when K >= n", async () => {
      const leaves = [leaf("x", Array.from({ length: 40 }, (_, i) => i / 10))];
      const linear: Fn = ([x]) => [Float64Array.of(x.reduce((s, v, i) => s + (i + 1) * v, 0))];
      const run = async (extra: Partial<ResolvedOptions>) => {
        const { evaluator, problem } = setup(leaves, linear, [1]);
        const [entry] = await jacobian(problem, opts("stochastic", 1e-3, extra));
        return { calls: evaluator.calls, values: entry.values };
      };
      const a = await run({ numSamples: 12, seed: 99n });
      const b = await run({ numSamples: 12, seed: 99n });
      const c = await run({ numSamples: 12, seed: 100n });
      assert.equal(a.calls, 24);
      assert.deepEqual(a.values, b.values);
      assert.notDeepEqual(a.values, c.values);
      assert.equal((await run({})).calls, 2 * defaultNumSamples(40)); // max(10, floor(sqrt(40))) = 10
      const fallback = await run({ numSamples: 40 });
      assert.equal(fallback.calls, 80);
      assertClose(fallback.values, Float64Array.from({ length: 40 }, (_, i) => i + 1), 1e-8);
    });

    it("stochastic: unbiased, with error shrinking like 1/sqrt(K)", async () => {
      // For f = <w, x>, the SPSA estimate of w_j has error sum_{i != j} w_i mean_k(D_ki D_kj):
      // zero mean and RMS |w_{-j}| / sqrt(K). With w = 1 everywhere and n = 400: sqrt(399 / K).
      const n = 400;
      const leaves = [leaf("x", Array.from({ length: n }, (_, i) => Math.cos(i)))];
      const linear: Fn = ([x]) => [Float64Array.of(x.reduce((s, v) => s + v, 0))];
      const ones = new Float64Array(n).fill(1);
      const errorFor = async (K: number) => {
        const { problem } = setup(leaves, linear, [1]);
        const [entry] = await jacobian(problem, opts("stochastic", 1e-3, { numSamples: K, seed: BigInt(K) }));
        return rms(entry.values, ones);
      };
      const small = await errorFor(16);
      const large = await errorFor(256);
      assert.ok(Math.abs(small / Math.sqrt(399 / 16) - 1) < 0.25, `RMS ${small} vs theory ${Math.sqrt(399 / 16)}`);
      assert.ok(Math.abs(large / Math.sqrt(399 / 256) - 1) < 0.25, `RMS ${large} vs theory ${Math.sqrt(399 / 256)}`);
      assert.ok(large < small / 3, `error did not shrink: ${small} -> ${large}`);
    });

    it("stochastic: unbiased over consecutive seeds too (seed = iteration, as SGD loops take it)", async () => {
      // f = (x0² + x1²) / 2 at x = (1, 1): SPSA with K = 4 estimates d f / d x1 = 1 with an error
      // mean_k(D_k0 D_k1) of zero mean. Seeded from the seed's bits, seeds 0..199 drew correlated
      // directions and averaged 1.5 (the directions' first 16 signs were + for every seed to 9999).
      const leaves = [leaf("x", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])];
      const half: Fn = ([x]) => [Float64Array.of((x[0] * x[0] + x[1] * x[1]) / 2)];
      const seeds = 200;
      let sum = 0;
      for (let seed = 0; seed < seeds; seed++) {
        const { problem } = setup(leaves, half, [1]);
        const [entry] = await jacobian(problem, opts("stochastic", 1e-3, { numSamples: 4, seed: BigInt(seed) }));
        sum += entry.values[1];
      }
      // One estimate's error has RMS 1/sqrt(4) = 0.5: the mean of 200 is 1 ± 0.035.
      assert.ok(Math.abs(sum / seeds - 1) < 0.15, `mean over seeds 0..${seeds - 1}: ${sum / seeds}, expected 1`);
    });

    it("stochastic least squares: never further from J than zero; SPSA's standard error matches its error", async () => {
      // f = <w, x> with one large weight: SPSA spreads w_0's size over every entry (error ~ |w| sqrt(n/K)),
      // least squares projects w onto the directions' span (error <= |w|).
      const n = 60;
      const w = Float64Array.from({ length: n }, (_, i) => (i === 0 ? 10 : 0.1 * Math.sin(i)));
      const leaves = [leaf("x", Array.from({ length: n }, (_, i) => i / n))];
      const linear: Fn = ([x]) => [Float64Array.of(x.reduce((s, v, i) => s + w[i] * v, 0))];
      const norm = Math.hypot(...w);
      const run = async (estimator: "spsa" | "least-squares") => {
        const { evaluator, problem } = setup(leaves, linear, [1]);
        const [entry] = await jacobian(problem, opts("stochastic", 1e-3, { numSamples: 12, seed: 4n, stochasticEstimator: estimator }));
        return { entry, calls: evaluator.calls, error: Math.hypot(...entry.values.map((v, i) => v - w[i])) };
      };
      const spsa = await run("spsa");
      const ls = await run("least-squares");
      assert.equal(ls.calls, 24);
      assert.ok(ls.error <= norm, `least squares ${ls.error} > |w| ${norm}`);
      assert.ok(spsa.error > norm, `SPSA ${spsa.error} (expected worse than zero here)`);
      assert.equal(ls.entry.errors, undefined);
      // The standard errors estimate the SPSA error's size (RMS over entries), within a factor 2.
      const rmsError = spsa.error / Math.sqrt(n);
      const rmsEstimate = Math.sqrt(spsa.entry.errors!.reduce((s, e) => s + e * e, 0) / n);
      assert.ok(rmsEstimate > rmsError / 2 && rmsEstimate < 2 * rmsError, `estimate ${rmsEstimate}, error ${rmsError}`);
    });

    it("plannedEvaluations matches what each rule does", () => {
      assert.equal(plannedEvaluations(21, opts("central", 1)), 42);
      assert.equal(plannedEvaluations(21, opts("forward", 1)), 22);
      assert.equal(plannedEvaluations(3000, opts("stochastic", 1)), 2 * 54);
      assert.equal(plannedEvaluations(21, opts("stochastic", 1, { numSamples: 21 })), 42);
    });
  });

  describe("steps actually taken", () => {
    it("FP32 inputs: divides by the rounded step, not the nominal one", async () => {
      // Around 1000, FP32 spacing is 6.1e-5, so a nominal 1e-4 step becomes 1.22e-4 or 6.1e-5.
      // f = x^2 has f' = 2000.2; dividing by the nominal step would be off by ~20%.
      const x = Math.fround(1000.1);
      const { problem } = setup([leaf("x", [x], true)], ([v]) => [Float64Array.of(v[0] * v[0])], [1]);
      const [entry] = await jacobian(problem, opts("central", 1e-4));
      const plus = stepped(x, 1e-4, true);
      assert.notEqual(plus - x, 1e-4); // the premise: rounding changed the step
      // Central differences of a quadratic are exact up to step asymmetry (one FP32 ulp): ~6e-5.
      assert.ok(Math.abs(entry.values[0] - 2 * x) < 1e-4, `${entry.values[0]} vs ${2 * x}`);
    });

    it("large |x| in FP64: a step below one ulp is never zero", async () => {
      // At 1e20 an ulp is 16384: x + 1e-4 rounds back to x; the engine moves one ulp instead and
      // divides by 16384 (f = 2x is exact in binary, so the quotient is exactly 2).
      const { problem } = setup([leaf("x", [1e20])], ([v]) => [Float64Array.of(2 * v[0])], [1]);
      const [entry] = await jacobian(problem, opts("forward", 1e-4));
      assert.equal(entry.values[0], 2);
    });

    it("nextAfter and stepped", () => {
      assert.equal(nextAfter(1, true, false), 1 + Number.EPSILON);
      assert.equal(nextAfter(1, false, false), 1 - Number.EPSILON / 2);
      assert.equal(nextAfter(-1, true, false), -1 + Number.EPSILON / 2);
      assert.equal(nextAfter(1, true, true), 1 + 2 ** -23);
      assert.equal(nextAfter(0, false, true), -(2 ** -149));
      assert.equal(stepped(1, 1e-30, false), 1 + Number.EPSILON);
      assert.equal(stepped(2, 0.5, true), 2.5);
    });
  });

  describe("jvp", () => {
    const v = [Float64Array.of(0.3, -1.2), Float64Array.of(0.5)];
    /** J v from the analytic Jacobians. */
    function expected(scale = 1): Float64Array[] {
      const [j0x, j0y, j1x] = analytic();
      const jv0 = [0, 1, 2].map((r) => scale * (j0x[2 * r] * v[0][0] + j0x[2 * r + 1] * v[0][1] + j0y[r] * v[1][0]));
      return [Float64Array.from(jv0), Float64Array.of(scale * (j1x[0] * v[0][0] + j1x[1] * v[0][1]))];
    }

    it("central: 2 evaluations, accurate whatever the tangent's scale", async () => {
      for (const scale of [1, 1e6, 1e-6]) {
        const { evaluator, problem } = setup(twoLeaves(), fn, [3, 1]);
        const { values: result } = await jvp(problem, v.map((t) => t.map((x) => x * scale)), opts("central", 1e-5));
        assert.equal(evaluator.calls, 2);
        // The step along v has length eps whatever |v|, so the relative error is the same.
        result.forEach((r, o) => assertClose(r, expected(scale)[o], 1e-8 * scale, `scale ${scale}`));
      }
    });

    it("forward: 2 evaluations, or 1 when f(x) is known", async () => {
      const { evaluator, problem } = setup(twoLeaves(), fn, [3, 1]);
      const { values: result } = await jvp(problem, v, opts("forward", 1e-7));
      assert.equal(evaluator.calls, 2);
      result.forEach((r, o) => assertClose(r, expected()[o], 1e-6));
      // f(x) evaluated before for the request (Problem.base) is not evaluated again.
      const known = setup(twoLeaves(), fn, [3, 1]);
      await known.problem.base();
      const { values: again } = await jvp(known.problem, v, opts("forward", 1e-7));
      assert.equal(known.evaluator.calls, 2);
      assert.deepEqual(again, result);
    });

    it("a zero tangent gives zeros", async () => {
      const { problem } = setup(twoLeaves(), fn, [3, 1]);
      const { values: result } = await jvp(problem, [new Float64Array(2), new Float64Array(1)], opts("central", 1e-5));
      assert.deepEqual(result, [new Float64Array(3), new Float64Array(1)]);
    });
  });

  describe("vjp", () => {
    const cot = [
      { path: "out0", shape: [3], values: Float64Array.of(1, -2, 0.5) },
      { path: "out1", shape: [1], values: Float64Array.of(3) },
    ];
    /** c^T J from the analytic Jacobians. */
    function expected(): Float64Array[] {
      const [j0x, j0y, j1x] = analytic();
      const gx = [0, 1].map((j) => [0, 1, 2].reduce((s, r) => s + cot[0].values[r] * j0x[2 * r + j], 0) + cot[1].values[0] * j1x[j]);
      const gy = [0, 1, 2].reduce((s, r) => s + cot[0].values[r] * j0y[r], 0);
      return [Float64Array.from(gx), Float64Array.of(gy)];
    }

    // Per-entry Jacobian errors (1e-8 central, see above; h/2 |f''| ~ 6e-7 forward) weighted by sum |c| = 6.5.
    for (const [algorithm, calls, tol] of [["central", 6, 1e-7], ["forward", 4, 1e-5]] as const) {
      it(`${algorithm}: ${calls} evaluations, equals c^T J`, async () => {
        const { evaluator, problem } = setup(twoLeaves(), fn, [3, 1]);
        const { values: result } = await vjp(problem, evaluator, cot, opts(algorithm, algorithm === "central" ? 1e-4 : 1e-7), "cotangent_vector");
        assert.equal(evaluator.calls, calls);
        result.forEach((r, i) => assertClose(r, expected()[i], tol));
      });
    }

    it("stochastic: SPSA on the weighted output equals the contracted SPSA Jacobian", async () => {
      const n = 30;
      const leaves = [leaf("x", Array.from({ length: n }, (_, i) => Math.sin(i)))];
      const many: Fn = ([x]) => [x.map((v) => v * v), Float64Array.of(x.reduce((s, v) => s + v, 0))];
      const c = [
        { path: "out0", shape: [n], values: Float64Array.from({ length: n }, (_, i) => i % 3) },
        { path: "out1", shape: [1], values: Float64Array.of(2) },
      ];
      const o = opts("stochastic", 1e-4, { numSamples: 8, seed: 5n });
      const full = setup(leaves, many, [n, 1]);
      const entries = await jacobian(full.problem, o);
      const contracted = new Float64Array(n).map((_, j) => {
        let s = c[1].values[0] * entries[1].values[j];
        for (let p = 0; p < n; p++) s += c[0].values[p] * entries[0].values[p * n + j];
        return s;
      });
      const direct = setup(leaves, many, [n, 1]);
      const { values: [result] } = await vjp(direct.problem, direct.evaluator, c, o, "cotangent_vector");
      assert.equal(direct.evaluator.calls, 16);
      assertClose(result, contracted, 1e-9);
    });

    it("rejects a cotangent of the wrong shape once outputs are known", async () => {
      const { evaluator, problem } = setup(twoLeaves(), fn, [3, 1]);
      const bad = [{ ...cot[0], shape: [4], values: new Float64Array(4) }, cot[1]];
      await rejects(vjp(problem, evaluator, bad, opts("central", 1e-4), "cotangent_vector"), Code.INVALID_ARGUMENT, /cotangent_vector\.\{out0\} has shape \[4\], expected \[3\]/);
      // The first evaluation's outputs, then f(x)'s, which have the same shapes: the cotangent's fault.
      assert.equal(evaluator.calls, 2);
    });
  });

  describe("cancellation and failures", () => {
    it("stops between evaluations when the signal aborts", async () => {
      const controller = new AbortController();
      const { evaluator, problem } = setup(twoLeaves(), fn, [3, 1], controller.signal);
      evaluator.onEvaluate = (call) => call === 3 && controller.abort(new Error("caller went away"));
      await assert.rejects(jacobian(problem, opts("central", 1e-4)), /caller went away/);
      assert.equal(evaluator.calls, 3);
    });

    it("says which evaluation failed", async () => {
      const failing: Fn = ([x]) => {
        if (x[1] > -0.3) throw new Error("solver diverged");
        return [Float64Array.of(x[0])];
      };
      const { problem } = setup(twoLeaves(), failing, [1]);
      await rejects(jacobian(problem, opts("central", 1e-4)), Code.UNKNOWN, /^evaluation at x\[1\] \+ h failed: solver diverged$/);
    });

    it("keeps the code of a TesseractError thrown by apply", async () => {
      const failing: Fn = () => {
        throw new TesseractError(Code.FAILED_PRECONDITION, "mesh is inverted");
      };
      const { problem } = setup(twoLeaves(), failing, [1]);
      await rejects(jacobian(problem, opts("forward", 1e-4)), Code.FAILED_PRECONDITION, /evaluation at the unperturbed inputs failed: mesh is inverted/);
    });
  });

  describe("options", () => {
    it("precedence: request > Tesseract defaults (maybe from inputs) > engine defaults", () => {
      const inputs = { choice: Algorithm.ALGORITHM_FORWARD };
      const defaults = { eps: 1e-6, algorithm: (i: typeof inputs) => i.choice, numSamples: 12 };
      // Per-path maps are keyed by caller text: records without a prototype.
      const plain = { epsByPath: recordFrom([]), stepMode: "absolute", typical: recordFrom([]), stochasticEstimator: "spsa", sparsityMode: "default" };
      // eps unset: the step rule's default for the mode (1e-4 absolute; see the step rule tests).
      assert.deepEqual(resolveOptions({ seed: 1 }, undefined, inputs), { algorithm: "central", eps: undefined, numSamples: undefined, seed: 1n, ...plain });
      assert.deepEqual(resolveOptions({ seed: 1 }, defaults, inputs), { algorithm: "forward", eps: 1e-6, numSamples: 12, seed: 1n, ...plain });
      assert.deepEqual(resolveOptions({ algorithm: Algorithm.ALGORITHM_STOCHASTIC, eps: 0.01, num_samples: 3, seed: "18446744073709551615" }, defaults, inputs), {
        algorithm: "stochastic",
        eps: 0.01,
        numSamples: 3,
        seed: 2n ** 64n - 1n,
        ...plain,
      });
      // UNSPECIFIED from the request or the inputs falls through to the next level.
      assert.equal(resolveOptions({ algorithm: 0 }, defaults, { choice: 0 }).algorithm, "central");
    });

    it("rejects bad request options with the field named", () => {
      const cases: [object, RegExp][] = [
        [{ eps: 0 }, /^options\.eps must be a positive finite number, got 0$/],
        [{ eps: -1e-3 }, /options\.eps .* got -0\.001/],
        [{ eps: NaN }, /options\.eps .* got NaN/],
        [{ eps: Infinity }, /options\.eps .* got Infinity/],
        [{ num_samples: 0 }, /^options\.num_samples must be a whole number of at least 1, got 0$/],
        [{ algorithm: 42 }, /^options\.algorithm: unknown algorithm 42/],
        [{ seed: -1 }, /^options\.seed must be an unsigned 64-bit integer, got -1$/],
        [{ seed: "2e70" }, /options\.seed/],
      ];
      for (const [request, message] of cases) {
        assert.throws(() => resolveOptions(request, undefined, {}), (e: TesseractError) => e.code === Code.INVALID_ARGUMENT && message.test(e.message));
      }
    });
  });
});
