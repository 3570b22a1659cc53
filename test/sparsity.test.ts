/**
 * Column grouping (issue 14): grouped results against dense ones on every bundled Tesseract and on
 * random sparse patterns (fast-check, exact evaluation counts), the three sources of structure and
 * their precedence, detection that never returns a wrong Jacobian silently, refusals of patterns
 * that do not fit, and heat's banded Jacobian in 6 evaluations, streamed as sparse rows.
 */
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import * as path from "node:path";
import fc from "fast-check";
import ndarray from "ndarray";
import { assembleJacobian, assembleSparseJacobian, densifyRows, TesseractClient, type JacobianRowsEvent } from "../client";
import { Inputs as HeatInputs, Outputs as HeatOutputs } from "../generated/tesseract/examples/heat/v1/heat";
import { Inputs as VectorInputs, Outputs as VectorOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { Algorithm, Code, SparsityMode, startServer, type RunningServer } from "../index";
import { JacobianRowsResponse } from "../generated/tesseract/v1/tesseract";
import { DetectedPatterns } from "../server/fd/detection";
import { rowMessages } from "../server/grpc/rows-stream";
import { buildStructure, MAX_PATTERN_COLUMNS, MAX_PATTERN_NONZEROS, structureOf } from "../server/fd/sparsity";
import { groupColumns } from "../server/fd/colouring";
import { ROWS_PER_BATCH } from "../server/fd/rows";
import { silentLogger } from "../server/log";
import { TesseractRuntime, type JacobianEntry } from "../server/runtime";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import type { SparsityPattern } from "../server/tesseract";
import { clientRejects, counted, f32, f64, meshInputs, rejects } from "./helpers";

const { CENTRAL, FORWARD, RICHARDSON, ADAPTIVE } = {
  CENTRAL: Algorithm.ALGORITHM_CENTRAL,
  FORWARD: Algorithm.ALGORITHM_FORWARD,
  RICHARDSON: Algorithm.ALGORITHM_RICHARDSON,
  ADAPTIVE: Algorithm.ALGORITHM_ADAPTIVE,
};
const DENSE = SparsityMode.SPARSITY_MODE_DENSE;
const DETECT = SparsityMode.SPARSITY_MODE_DETECT;
const POLYNOMIAL_DIR = path.join(__dirname, "../../test/fixtures/polynomial");

/** Grouped entries equal the dense ones to rounding; estimates equal at structural nonzeros, 0 off them. */
function assertSameEntries(grouped: JacobianEntry[], dense: JacobianEntry[], what: string): void {
  assert.deepEqual(grouped.map((e) => [e.outputPath, e.inputPath, e.shape]), dense.map((e) => [e.outputPath, e.inputPath, e.shape]));
  grouped.forEach((g, k) => {
    const d = dense[k];
    const scale = d.values.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
    for (let i = 0; i < g.values.length; i++) {
      assert.ok(Math.abs(g.values[i] - d.values[i]) <= 1e-12 * scale, `${what}: d ${g.outputPath} / d ${g.inputPath} entry ${i}: ${g.values[i]} vs ${d.values[i]}`);
      if (g.errors && d.errors && g.values[i] !== 0) assert.equal(g.errors[i], d.errors[i], `${what}: the error estimate of entry ${i}`);
    }
    assert.equal(!!g.errors, !!d.errors, `${what}: error estimates on both or neither`);
  });
}

describe("column grouping", () => {
  describe("grouped = dense on every bundled Tesseract, every rule but stochastic", () => {
    const vector = (normalize: boolean) => ({ a: f64([1.5, -2, 0.25, 4, 3]), b: f64([0.5, 1, -3, 2, 1]), s: f64([1.7], []), normalize });
    const cases = [
      { name: "meshstats", inputs: meshInputs(30), inputPaths: ["mesh.points"], outputPaths: ["statistics.first_point_coordinates", "statistics.barycenter"], groups: 30 },
      { name: "vectoradd", inputs: vector(false), inputPaths: ["a", "b", "s"], outputPaths: ["result"], groups: 3 },
      { name: "vectoradd", inputs: vector(true), inputPaths: ["a", "b", "s"], outputPaths: ["result"], groups: 11 },
      { name: "heat", inputs: sampleHeatInputs(60, 2), inputPaths: ["initial_temperature", "diffusivity"], outputPaths: ["final_temperature"], groups: 5 },
      // The 5-point stencil: 5 groups (largest-first alone took 7).
      { name: "heat", inputs: sampleHeatInputs(12, 1, 2), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"], groups: 5 },
      // A diamond of 13 cells per column: at least 13 groups; largest-first alone took 16.
      { name: "heat", inputs: sampleHeatInputs(9, 2, 2), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"], groups: 14 },
      { name: "univariate", inputs: { x: ndarray(Float32Array.of(0.5), []), y: ndarray(Float32Array.of(1.5), []) }, inputPaths: ["x", "y"], outputPaths: ["result"], groups: 2 },
    ];
    for (const c of cases) {
      for (const [algorithm, rule, perGroup, extra] of [[CENTRAL, "central", 2, 0], [FORWARD, "forward", 1, 1], [RICHARDSON, "richardson", 4, 9], [ADAPTIVE, "adaptive", 12, 9]] as const) {
        it(`${c.name} ${c.inputPaths.join(", ")} (${c.groups} groups), ${rule}: ${perGroup} × groups + ${extra} evaluations`, async () => {
          const { runtime, counter } = counted(c.name);
          runtime.definition.validate?.(c.inputs);
          const request = { inputs: c.inputs, inputPaths: c.inputPaths, outputPaths: c.outputPaths };
          const grouped = await runtime.jacobian({ ...request, options: { algorithm } });
          assert.equal(grouped.stats.column_groups, c.groups);
          assert.equal(counter.calls, perGroup * c.groups + extra);
          assert.equal(grouped.stats.apply_calls, counter.calls);
          const dense = await runtime.jacobian({ ...request, options: { algorithm, sparsity_mode: DENSE } });
          assert.equal(dense.stats.sparsity_source, "");
          assertSameEntries(grouped.entries, dense.entries, `${c.name} ${rule}`);
        });
      }
    }
  });

  it("VJP: grouped by meshstats' structure, equal to the dense VJP (Richardson's estimate too)", async () => {
    const { runtime, counter } = counted("meshstats");
    const N = 12;
    const request = {
      inputs: meshInputs(N),
      inputPaths: ["mesh.points"],
      outputPaths: ["statistics.first_point_coordinates", "statistics.barycenter"],
      cotangent: { "statistics.first_point_coordinates": f64([1, -2, 0.5]), "statistics.barycenter": f64([3, 0.25, -1]) },
    };
    for (const algorithm of [CENTRAL, RICHARDSON]) {
      counter.calls = 0;
      const grouped = await runtime.vjp({ ...request, options: { algorithm } });
      assert.equal(counter.calls, algorithm === CENTRAL ? 2 * N : 4 * N + 9);
      assert.deepEqual([grouped.stats.column_groups, grouped.stats.sparsity_source], [N, "tesseract"]);
      const dense = await runtime.vjp({ ...request, options: { algorithm, sparsity_mode: DENSE } });
      const [g, d] = [grouped.result["mesh.points"].data, dense.result["mesh.points"].data];
      const expected = Float64Array.from({ length: 3 * N }, (_, k) => (k < 3 ? [1, -2, 0.5][k] : 0) + [3, 0.25, -1][k % 3] / N);
      // Both within rounding of the exact VJP (meshstats is linear: |x| ~ 10, eps 1e-6).
      g.forEach((v, j) => assert.ok(Math.abs(v - expected[j]) < 1e-8 && Math.abs(d[j] - expected[j]) < 1e-8, `element ${j}: ${v} and ${d[j]} vs ${expected[j]}`));
      if (algorithm === RICHARDSON) {
        // Each entry's bound, summed with |c|: it bounds the true error.
        grouped.errors!["mesh.points"].data.forEach((e, j) => assert.ok(Math.abs(g[j] - expected[j]) <= e, `element ${j}: error ${Math.abs(g[j] - expected[j])} over its estimate ${e}`));
      }
    }
  });

  describe("random sparse patterns (fast-check)", () => {
    /**
     * A synthetic Tesseract on the polynomial fixture's schema: f_i = sum over the pattern's (i, j) of
     * w_ij (sin x_j + x_j^2 / 2), m outputs, n inputs; it declares nothing, the request sends the pattern.
     */
    function synthetic(m: number, pairs: [number, number][]) {
      const base = new TesseractRuntime(require(path.join(POLYNOMIAL_DIR, "polynomial.js")).default, POLYNOMIAL_DIR);
      const counter = { calls: 0 };
      const weight = (i: number, j: number) => 1 + ((i * 7 + j * 13) % 5) / 4;
      const definition = {
        ...base.definition,
        apply(inputs: { x: ndarray.NdArray<Float64Array> }) {
          counter.calls++;
          const x = inputs.x.data;
          const f = new Float64Array(m);
          for (const [i, j] of pairs) f[i] += weight(i, j) * (Math.sin(x[j]) + x[j] * x[j] / 2);
          return { f: ndarray(f, [m]) };
        },
        abstractEval: () => [{ path: "f", shape: [m], datatype: 11 }],
      };
      return { runtime: new TesseractRuntime(definition, POLYNOMIAL_DIR), counter };
    }

    const patterns = fc
      .record({ m: fc.integer({ min: 1, max: 24 }), n: fc.integer({ min: 1, max: 24 }) })
      .chain(({ m, n }) =>
        fc.record({
          m: fc.constant(m),
          n: fc.constant(n),
          pairs: fc.uniqueArray(fc.tuple(fc.nat(m - 1), fc.nat(n - 1)), { maxLength: m * n, selector: ([i, j]) => `${i} ${j}` }),
          // Entries the request declares but that are zero: a superset is allowed.
          extra: fc.uniqueArray(fc.tuple(fc.nat(m - 1), fc.nat(n - 1)), { maxLength: 8, selector: ([i, j]) => `${i} ${j}` }),
          x: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: n, maxLength: n }),
        }),
      );

    it("central: 2 × groups evaluations exactly, grouped = dense, groups between the densest row and max conflicts + 1", async () => {
      await fc.assert(
        fc.asyncProperty(patterns, async ({ m, n, pairs, extra, x }) => {
          const { runtime, counter } = synthetic(m, pairs);
          const declared = [...new Map([...pairs, ...extra].map((p) => [`${p[0]} ${p[1]}`, p])).values()];
          const sparsity = [{ output_path: "f", input_path: "x", output_index: declared.map((p) => p[0]), input_index: declared.map((p) => p[1]) }];
          const request = { inputs: { x: f64(x), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], options: { algorithm: CENTRAL } };
          const grouped = await runtime.jacobian({ ...request, sparsity });
          const groups = grouped.stats.column_groups!;
          // No nonzero at all: no group, and f(x) alone, for the outputs' shapes.
          assert.equal(counter.calls, groups ? 2 * groups : 1);
          assert.equal(grouped.stats.sparsity_source, "request");
          // Greedy colouring: at least the most columns one row holds, at most one more than the most columns one column conflicts with.
          const rows = Array.from({ length: m }, (_, i) => new Set(declared.filter((p) => p[0] === i).map((p) => p[1])));
          const conflicts = (j: number) => new Set(rows.filter((r) => r.has(j)).flatMap((r) => [...r]).filter((k) => k !== j)).size;
          assert.ok(groups >= Math.max(0, ...rows.map((r) => r.size)), `${groups} groups`);
          assert.ok(groups <= 1 + Math.max(0, ...Array.from({ length: n }, (_, j) => conflicts(j))), `${groups} groups`);
          const dense = await runtime.jacobian({ ...request, options: { algorithm: CENTRAL, sparsity_mode: DENSE } });
          assert.equal(counter.calls, (groups ? 2 * groups : 1) + 2 * n);
          assertSameEntries(grouped.entries, dense.entries, "random pattern");
        }),
        { numRuns: 60 },
      );
    });

    it("forward: groups + 1 evaluations; JacobianRows: sparse rows that assemble to the same Jacobian", async () => {
      await fc.assert(
        fc.asyncProperty(patterns, async ({ m, pairs, x }) => {
          const { runtime, counter } = synthetic(m, pairs);
          const sparsity = [{ output_path: "f", input_path: "x", output_index: pairs.map((p) => p[0]), input_index: pairs.map((p) => p[1]) }];
          const request = { inputs: { x: f64(x), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], options: { algorithm: FORWARD }, sparsity };
          const unary = await runtime.jacobian(request);
          assert.equal(counter.calls, unary.stats.column_groups! + 1);
          const stream = runtime.jacobianRows(request);
          const J = new Float64Array(unary.entries[0].values.length);
          let values = 0;
          for await (const row of stream.rows) {
            const at = row.indices?.[0];
            // A pattern with no pair at all streams dense rows (nonzeros 0 means dense on the wire).
            if (!at) assert.ok(pairs.length === 0 && row.values[0].every((v) => v === 0));
            at?.forEach((i, k) => (J[i * x.length + row.inputIndex] = row.values[0][k]));
            values += at?.length ?? 0;
          }
          assert.equal(stream.nonzeros(), pairs.length);
          assert.equal(values, pairs.length, "each row carries its structural nonzeros only");
          assert.deepEqual(J, unary.entries[0].values);
        }),
        { numRuns: 30 },
      );
    });
  });

  describe("sources and precedence", () => {
    const polynomial = () => new TesseractRuntime(require(path.join(POLYNOMIAL_DIR, "polynomial.js")).default, POLYNOMIAL_DIR);
    const inputs = () => ({ x: f64([0.5, -1, 2, 0.25]), y: f64([0.7], []), params: {}, blocks: [], mode: "" });
    // f_i = x_i^3 + y sin(x_i): d f / d x diagonal, d f / d y dense.
    const diagonal: SparsityPattern = { output_path: "f", input_path: "x", output_index: [0, 1, 2, 3], input_index: [0, 1, 2, 3] };

    it("the request's pattern; without abstractEval, f(x) tells the output shapes first (2 × groups + 1)", async () => {
      const runtime = polynomial();
      const { entries, stats } = await runtime.jacobian({ inputs: inputs(), inputPaths: ["x", "y"], outputPaths: ["f"], sparsity: [diagonal] });
      assert.deepEqual([stats.column_groups, stats.sparsity_source, stats.apply_calls], [2, "request", 2 * 2 + 1]);
      const dense = await runtime.jacobian({ inputs: inputs(), inputPaths: ["x", "y"], outputPaths: ["f"], options: { sparsity_mode: DENSE } });
      assertSameEntries(entries, dense.entries, "polynomial");
    });

    it("adaptive: a step that does not move one element of a group is left out for that element alone: the values and notes are the dense ones (x = 0.3 beside 1e12 was 1.2e-7 off, alone 3e-12)", async () => {
      const runtime = polynomial();
      const mixed = { ...inputs(), x: f64([0.3, 1e12, 0.7, 1.1]), y: f64([0], []) };
      const request = { inputs: mixed, inputPaths: ["x"], outputPaths: ["f"], options: { algorithm: Algorithm.ALGORITHM_ADAPTIVE, eps: 1e-3 } };
      const grouped = await runtime.jacobian({ ...request, sparsity: [diagonal] });
      assert.equal(grouped.stats.column_groups, 1);
      const dense = await runtime.jacobian({ ...request, options: { ...request.options, sparsity_mode: DENSE } });
      assertSameEntries(grouped.entries, dense.entries, "adaptive, grouped");
      assert.deepEqual(grouped.stats.adjusted_steps, dense.stats.adjusted_steps);
      assert.ok(Math.abs(grouped.entries[0].values[0] / (3 * 0.09) - 1) < 1e-10, String(grouped.entries[0].values[0]));
    });

    it("the verification's own steps are not the answer's: adjusted_steps names only those (its sub-ulp steps at x = 6e11 were notes of 'stepped one ulp')", async () => {
      const runtime = polynomial();
      // FP64 spacing 1.2e-4 here: x + 1e-4 moves x, the verification's (0.5..1.5) 1e-4 / 2 mostly do not.
      const huge = { ...inputs(), x: f64([6e11, 7e11, 8e11, 9e11]), y: f64([0], []) };
      const checked = await runtime.jacobian({ inputs: huge, inputPaths: ["x"], outputPaths: ["f"], sparsity: [diagonal], options: { sparsity_mode: DETECT, eps: 1e-4, seed: 3 } });
      assert.equal(checked.stats.sparsity_source, "request");
      const dense = await runtime.jacobian({ inputs: huge, inputPaths: ["x"], outputPaths: ["f"], options: { sparsity_mode: DENSE, eps: 1e-4 } });
      assert.deepEqual(checked.stats.adjusted_steps, dense.stats.adjusted_steps);
    });

    it("the request's pattern before the Tesseract's; SPARSITY_MODE_DENSE ignores both; the stochastic rule too", async () => {
      const { runtime, counter } = counted("vectoradd");
      const inputs = { a: f64([1, 2, 3]), b: f64([4, 5, 6]), s: f64([2], []), normalize: false };
      const request = { inputs, inputPaths: ["a", "b"], outputPaths: ["result"] };
      // The declaration: a and b diagonal; a_i and b_i both move result_i, so all of a, then all of b.
      assert.deepEqual((await runtime.jacobian(request)).stats.column_groups, 2);
      counter.calls = 0;
      // The request's own (a dense block for b): a's 3 columns in one group, b's in 3.
      const own = [{ output_path: "result", input_path: "a", output_index: [0, 1, 2], input_index: [0, 1, 2] }];
      const fromRequest = await runtime.jacobian({ ...request, sparsity: own });
      assert.deepEqual([fromRequest.stats.column_groups, fromRequest.stats.sparsity_source, counter.calls], [4, "request", 8]);
      const dense = await runtime.jacobian({ ...request, sparsity: own, options: { sparsity_mode: DENSE } });
      assert.deepEqual([dense.stats.column_groups, dense.stats.sparsity_source], [6, ""]);
      const stochastic = await runtime.jacobian({ ...request, options: { algorithm: Algorithm.ALGORITHM_STOCHASTIC, num_samples: 2, seed: 1 } });
      assert.deepEqual([stochastic.stats.column_groups, stochastic.stats.sparsity_source, stochastic.stats.apply_calls], [6, "", 4]);
    });

    it("a given pattern is trusted; under SPARSITY_MODE_DETECT it is verified (2 more evaluations), and a wrong one falls back to dense, saying so; one that saves nothing runs dense", async () => {
      const runtime = polynomial();
      const request = { inputs: inputs(), inputPaths: ["x"], outputPaths: ["f"] };
      const dense = await runtime.jacobian({ ...request, options: { sparsity_mode: DENSE } });
      // Claims f_i depends on x_0 only: trusted, the Jacobian is wrong (as scipy trusts its sparsity argument).
      const wrongPattern = { output_path: "f", input_path: "x", output_index: [0, 1, 2, 3], input_index: [0, 0, 0, 0] };
      const trusted = await runtime.jacobian({ ...request, sparsity: [wrongPattern] });
      assert.equal(trusted.stats.sparsity_source, "request");
      assert.notDeepEqual(trusted.entries[0].values, dense.entries[0].values);
      // Evaluations (f(x), for the output shapes, is cached since the trusted call): both patterns make one
      // group (2), verified by one more pair (2); the wrong one then its second chance along u/2 (2) and
      // the dense columns (2 × 4).
      // Misses f_0's dependence on x_0, and claims enough else that no two columns group: grouping
      // saves nothing, so the columns run dense, unverified, and measure every entry (J_00 was 0, OK).
      const ungroupable = { output_path: "f", input_path: "x", output_index: [1, 2, 3, 0, 1, 0, 2, 0, 3], input_index: [0, 0, 0, 1, 1, 2, 2, 3, 3] };
      for (const [sparsity, source, calls] of [
        [[wrongPattern], "request, failed verification: dense", 2 + 2 + 2 + 2 * 4],
        [[diagonal], "request", 2 + 2],
        [[ungroupable], "", 2 * 4],
      ] as const) {
        const { entries, stats } = await runtime.jacobian({ ...request, sparsity, options: { sparsity_mode: DETECT } });
        assert.deepEqual([stats.sparsity_source, stats.apply_calls], [source, calls]);
        assertSameEntries(entries, dense.entries, source);
      }
      // A declaration that says nothing (an empty list) leaves detection to learn the structure.
      const silent = new TesseractRuntime({ ...polynomial().definition, sparsity: () => [] }, POLYNOMIAL_DIR);
      const detect = { ...request, options: { sparsity_mode: DETECT } };
      assert.equal((await silent.jacobian(detect)).stats.sparsity_source, "");
      assert.deepEqual([(await silent.jacobian(detect)).stats.sparsity_source, (await silent.jacobian(detect)).stats.column_groups], ["detected", 1]);
    });

    it("under SPARSITY_MODE_DETECT a structure that saves fewer evaluations than its verification costs runs dense (forward, 5 columns in 2 groups: 7 evaluations where dense takes 6)", async () => {
      // d f / d x diagonal, d f / d y dense: x in one group, y alone.
      const request = { inputs: inputs(), inputPaths: ["x", "y"], outputPaths: ["f"] };
      for (const algorithm of [FORWARD, CENTRAL]) {
        const dense = await polynomial().jacobian({ ...request, options: { algorithm, sparsity_mode: DENSE } });
        // Forward: 2 groups + f(x) + 4 to verify is more than 5 + f(x). Central: 2 × 2 + 2 to verify + f(x) for the shapes, less than 2 × 5.
        const expected = algorithm === FORWARD ? [5, "", 1 + 5] : [2, "request", 2 * 2 + 2 + 1];
        const checked = await polynomial().jacobian({ ...request, sparsity: [diagonal], options: { algorithm, sparsity_mode: DETECT } });
        assert.deepEqual([checked.stats.column_groups, checked.stats.sparsity_source, checked.stats.apply_calls], expected);
        assertSameEntries(checked.entries, dense.entries, "checked pattern");
        // A detected structure likewise: learned by the first dense Jacobian, then dense again (forward) or grouped.
        const runtime = polynomial();
        const detect = { ...request, options: { algorithm, sparsity_mode: DETECT } };
        await runtime.jacobian(detect);
        const detected = await runtime.jacobian(detect);
        assert.deepEqual([detected.stats.column_groups, detected.stats.sparsity_source], algorithm === FORWARD ? [5, ""] : [2, "detected"]);
        assertSameEntries(detected.entries, dense.entries, "detected");
      }
    });

    it("a request refused by abstractEval's prediction is checked against f(x) first: apply's outputs differing from the prediction are INTERNAL (a right request was refused as the caller's mistake); the same refusal confirmed by apply stands", async () => {
      const base = polynomial();
      // f has x's 2 elements; abstractEval says 1.
      const wrong = new TesseractRuntime({ ...base.definition, abstractEval: () => [{ path: "f", shape: [1], datatype: 11 }] }, POLYNOMIAL_DIR);
      const request = { inputs: { x: f64([0.5, -1]), y: f64([0.7], []), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"] };
      const pattern = { output_path: "f", input_path: "x", output_index: [0, 1], input_index: [0, 1] };
      const missed = /^apply's outputs \(f \[2\]\) differ from those abstractEval predicted \(f \[1\]\)$/;
      await rejects(wrong.jacobian({ ...request, sparsity: [pattern] }), Code.INTERNAL, missed);
      await rejects(wrong.vjp({ ...request, sparsity: [pattern], cotangent: { f: f64([1, 1]) } }), Code.INTERNAL, missed);
      // A request that fits the prediction: apply's outputs differing from it are the Tesseract's mistake.
      await rejects(wrong.jacobian({ ...request, sparsity: [{ ...pattern, output_index: [0, 0] }] }), Code.INTERNAL, /^apply's outputs \(f \[2\]\) differ from those abstractEval predicted \(f: 1 element\)$/);
      // A right prediction: the caller's index out of range is theirs, confirmed by one evaluation.
      const right = new TesseractRuntime({ ...base.definition, abstractEval: () => [{ path: "f", shape: [2], datatype: 11 }] }, POLYNOMIAL_DIR);
      await rejects(right.jacobian({ ...request, sparsity: [{ ...pattern, output_index: [0, 2] }] }), Code.INVALID_ARGUMENT, /output_index\[1\] = 2 is out of range for f, which has 2 elements .*abstractEval predicts it\)$/);
      assert.equal(right.evaluations, 1);
    });

    it("abstractEval predicting another shape of the same size: a VJP is INTERNAL with either cotangent, before and after an Apply (every cotangent was refused, one shape before an Apply and the other after)", async () => {
      const base = polynomial();
      const wrong = new TesseractRuntime({ ...base.definition, abstractEval: () => [{ path: "f", shape: [1, 2], datatype: 11 }] }, POLYNOMIAL_DIR);
      const inputs = { x: f64([0.5, -1]), y: f64([0.7], []), params: {}, blocks: [], mode: "" };
      const request = { inputs, inputPaths: ["x"], outputPaths: ["f"], sparsity: [{ output_path: "f", input_path: "x", output_index: [0, 1], input_index: [0, 1] }] };
      const missed = /^apply's outputs \(f \[2\]\) differ from those abstractEval predicted \(f \[1, 2\]\)$/;
      await rejects(wrong.vjp({ ...request, cotangent: { f: f64([1, 1]) } }), Code.INTERNAL, missed);
      await rejects(wrong.vjp({ ...request, cotangent: { f: f64([1, 1], [1, 2]) } }), Code.INTERNAL, missed);
      await wrong.applyMessage(wrong.schema.inputs.encodeAny(inputs));
      await rejects(wrong.vjp({ ...request, cotangent: { f: f64([1, 1], [1, 2]) } }), Code.INTERNAL, missed);
    });

    it("a forward VJP takes f(x) from planning where it made it, as the Jacobian does (a pattern for some outputs under DETECT, the columns found dense: one more call than the Jacobian)", async () => {
      const x = [0.5, -1, 2];
      const request = {
        inputs: { x: f64(x), y: f64([0.7], []), params: {}, blocks: [], mode: "" },
        inputPaths: ["x"],
        outputPaths: ["f", "g"],
        sparsity: [{ output_path: "f", input_path: "x", output_index: [0, 1, 2], input_index: [0, 1, 2] }],
        options: { algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: DETECT },
      };
      // No evaluation cache, so that each call makes its own f(x); the first Jacobian finds the columns dense (g holds no pattern).
      const runtime = polynomial();
      await runtime.useEvaluation({ workers: 0, cacheBytes: 0 });
      const calls = [(await runtime.jacobian(request)).stats.apply_calls, (await runtime.jacobian(request)).stats.apply_calls];
      const vjp = await runtime.vjp({ ...request, cotangent: { f: f64([1, 2, 3]), g: f64([0.5], []) } });
      // f(x) (for the output shapes, and the forward rule's base), then one column each.
      assert.deepEqual([...calls, vjp.stats.apply_calls], [1 + 3, 1 + 3, 1 + 3]);
      // vᵀJ: f_i = x_i³ + y sin x_i, g does not depend on x.
      x.forEach((xi, i) => assert.ok(Math.abs(vjp.result.x.data[i] - (i + 1) * (3 * xi * xi + 0.7 * Math.cos(xi))) < 1e-3, `vjp[${i}] = ${vjp.result.x.data[i]}`));
    });

    it("an abstractEval that fails or answers no output tensor leaves a Jacobian to apply, unary as streamed (the unary one failed on it alone)", async () => {
      const base = polynomial();
      const request = { inputs: { x: f64([0.5, -1]), y: f64([0.7], []), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], maxBytes: 1 << 20 };
      for (const abstractEval of [() => { throw new Error("not written yet"); }, () => [{ path: "zzz", shape: [1], datatype: 11 }]]) {
        const broken = new TesseractRuntime({ ...base.definition, abstractEval }, POLYNOMIAL_DIR);
        const { entries } = await broken.jacobian(request);
        assert.deepEqual(Array.from(entries[0].values, (v) => Math.round(v * 1e4) / 1e4), [0.75 + 0.7 * Math.cos(0.5), 0, 0, 3 + 0.7 * Math.cos(-1)].map((v) => Math.round(v * 1e4) / 1e4));
      }
    });

    it("abstractEval naming no output tensor (unknown, malformed, a message, a map without its key) is INTERNAL, naming the path", async () => {
      const base = polynomial();
      for (const path of ["zzz", "q.{open", "f.[0]", "named", "named.{a}.b"]) {
        const wrong = new TesseractRuntime({ ...base.definition, abstractEval: () => [{ path: "g", shape: [], datatype: 11 }, { path, shape: [1], datatype: 11 }] }, POLYNOMIAL_DIR);
        await rejects(wrong.abstractEval({ x: f64([0.5]), y: f64([0.7], []) }), Code.INTERNAL, new RegExp(`^abstractEval returned the path ${JSON.stringify(path).replace(/[.{}[\]]/g, "\\$&")} at \\[1\\], which names no tensor of tesseract\\.testing\\.polynomial\\.v1\\.Outputs`));
      }
      const right = new TesseractRuntime({ ...base.definition, abstractEval: () => [{ path: "named.{a.b}", shape: [1], datatype: 11 }] }, POLYNOMIAL_DIR);
      assert.deepEqual(await right.abstractEval({ x: f64([0.5]), y: f64([0.7], []) }), [{ path: "named.{a.b}", shape: [1], datatype: 11 }]);
    });

    it("an index into an output of no elements says it has none (it said \"flat row-major indices 0 to -1\")", () => {
      assert.throws(
        () => buildStructure([{ output_path: "f", input_path: "x", output_index: [0], input_index: [0] }], [{ path: "x", size: 2 }], [{ path: "f", size: 0 }], { field: "sparsity", fromRequest: true }),
        /^TesseractError: sparsity\[0\] \(output_path "f", input_path "x"\): output_index\[0\] = 0 is out of range for f, which has no elements$/,
      );
    });

    it("a structure aligned to outputs of the predicted sizes still refuses outputs of other sizes at the same paths (structures are shared: the alignment skipped the check)", () => {
      const structure = buildStructure([{ output_path: "f", input_path: "x", output_index: [0], input_index: [0] }], [{ path: "x", size: 2 }], [{ path: "f", size: 1 }], { field: "t", fromRequest: true });
      structure.alignedTo([{ path: "f", shape: [1] }]);
      assert.throws(() => structure.alignedTo([{ path: "f", shape: [2] }]), /^TesseractError: apply's outputs \(f \[2\]\) differ from those abstractEval predicted \(f: 1 element\)$/);
    });

    it("a declaration that fails is INTERNAL naming it; one that does not fit is INTERNAL naming the pair", async () => {
      const base = polynomial();
      const broken = new TesseractRuntime({ ...base.definition, sparsity: () => { throw new Error("oops"); } }, POLYNOMIAL_DIR);
      await rejects(broken.jacobian({ inputs: inputs(), inputPaths: ["x"], outputPaths: ["f"] }), Code.INTERNAL, /^the Tesseract's sparsity declaration failed: oops$/);
      const misspelt = new TesseractRuntime({ ...base.definition, sparsity: () => [{ ...diagonal, output_path: "ff" }] }, POLYNOMIAL_DIR);
      await rejects(misspelt.jacobian({ inputs: inputs(), inputPaths: ["x"], outputPaths: ["f"] }), Code.INTERNAL, /^the Tesseract's sparsity declaration\[0\]: output_path: output path "ff" is not a differentiable path; differentiable output paths: f, named\.\{\}, g$/);
      const notList = new TesseractRuntime({ ...base.definition, sparsity: () => ({ output_path: "f" }) as never }, POLYNOMIAL_DIR);
      await rejects(notList.jacobian({ inputs: inputs(), inputPaths: ["x"], outputPaths: ["f"] }), Code.INTERNAL, /^the Tesseract's sparsity declaration returned object: expected a list of \{output_path, input_path, output_index, input_index\} patterns$/);
      const wrong = new TesseractRuntime({ ...base.definition, sparsity: () => [{ ...diagonal, output_index: [0, 1, 2, 4] }] }, POLYNOMIAL_DIR);
      await rejects(wrong.jacobian({ inputs: inputs(), inputPaths: ["x"], outputPaths: ["f"] }), Code.INTERNAL, /^the Tesseract's sparsity declaration\[0\] \(output_path "f", input_path "x"\): output_index\[3\] = 4 is out of range for f, which has 4 elements/);
      // An index list left out or misspelt declared a block of zeros (a Jacobian of zeros, answered OK); a pattern path was skipped (dense).
      const { output_index: _o, ...withoutOutputs } = diagonal;
      for (const [declared, message] of [
        [withoutOutputs, /^the Tesseract's sparsity declaration\[0\]: output_index is undefined: expected a list of flat indices \(an empty one declares a block of zeros\)$/],
        [{ ...withoutOutputs, outputIndex: diagonal.output_index }, /: output_index is undefined: expected a list of flat indices \(an empty one declares a block of zeros\); it has outputIndex, which is no field of a pattern$/],
        [{ ...diagonal, input_index: 3 }, /: input_index is number: expected a list of flat indices/],
        [{ ...diagonal, output_path: "named.{}" }, /^the Tesseract's sparsity declaration\[0\]: output_path "named\.\{\}" is a pattern; a declaration names concrete paths$/],
        [null, /^the Tesseract's sparsity declaration\[0\]: null: expected \{output_path, input_path, output_index, input_index\}$/],
      ] as const) {
        const runtime = new TesseractRuntime({ ...base.definition, sparsity: () => [declared] as never }, POLYNOMIAL_DIR);
        await rejects(runtime.jacobian({ inputs: inputs(), inputPaths: ["x"], outputPaths: ["f"] }), Code.INTERNAL, message);
      }
      // Empty lists still declare a block of zeros.
      const zeros = new TesseractRuntime({ ...base.definition, sparsity: () => [{ ...diagonal, output_index: [], input_index: new Uint32Array(0) }] }, POLYNOMIAL_DIR);
      const { entries } = await zeros.jacobian({ inputs: inputs(), inputPaths: ["x"], outputPaths: ["f"] });
      assert.ok(entries[0].values.every((v) => v === 0));
    });
  });

  it("abstractEval is asked once per request, however many steps need its prediction (the size check, the outputs' precision, the plan asked it three times)", async () => {
    const meshstats = counted("meshstats").runtime.definition;
    const calls = { abstractEval: 0 };
    const definition = { ...meshstats, abstractEval: (inputs: never) => (calls.abstractEval++, meshstats.abstractEval!(inputs)) };
    const runtime = new TesseractRuntime(definition, POLYNOMIAL_DIR);
    const { stats } = await runtime.jacobian({ inputs: meshInputs(5), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"], options: { step_mode: 2 }, maxBytes: 1 << 20 });
    assert.equal(stats.sparsity_source, "tesseract");
    assert.equal(calls.abstractEval, 1);
  });

  describe("zero columns: known exactly, never evaluated (a real server)", () => {
    // vectoradd at s = 0: result = b, so d result / d a is a block of zeros, declared by the request or by the Tesseract.
    const definition = require(path.join(__dirname, "fixtures/scaled-vectoradd/scaled-vectoradd.js")).default;
    const counter = { calls: 0 };
    const runtime = new TesseractRuntime({ ...definition, apply: (inputs: never) => (counter.calls++, definition.apply(inputs)) }, __dirname);
    let server: RunningServer;
    let client: TesseractClient<VectorInputs, VectorOutputs>;
    before(async () => {
      server = await startServer({ tesseract: runtime, host: "127.0.0.1", port: 0, logger: silentLogger });
      client = new TesseractClient<VectorInputs, VectorOutputs>(server.address, { inputs: VectorInputs, outputs: VectorOutputs });
    });
    after(async () => {
      client?.close();
      await server?.close();
    });
    const inputs = (s: number) => ({ a: f64([1, 2, 3, 4]), b: f64([5, 6, 7, 8]), s: f64([s], []), normalize: false });
    const zeroA = [{ output_path: "result", input_path: "a", output_index: [], input_index: [] }];
    /** Apply calls of `call`, the evaluation cache emptied first (f(x) would come from it). */
    const calls = async <T>(call: () => Promise<T>): Promise<[T, number]> => {
      runtime.evaluationCache?.clear();
      counter.calls = 0;
      const result = await call();
      return [result, counter.calls];
    };

    for (const [algorithm, before] of [[CENTRAL, 2], [FORWARD, 2], [RICHARDSON, 13], [ADAPTIVE, 21]] as const) {
      it(`${Algorithm[algorithm]}: an all-zero pattern costs f(x) alone, for the outputs' shapes (one group of zeros took ${before}): Jacobian, JacobianRows, VJP`, async () => {
        const request = { inputs: inputs(2), inputPaths: ["a"], outputPaths: ["result"], sparsity: zeroA, options: { algorithm } };
        const [unary, unaryCalls] = await calls(() => client.jacobian(request));
        assert.deepEqual([unaryCalls, unary.stats.apply_calls, unary.stats.column_groups, unary.stats.sparsity_source], [1, 1, 0, "request"]);
        assert.deepEqual(Array.from(unary.jacobian.result.a.data), new Array(16).fill(0));
        const estimates = algorithm === RICHARDSON || algorithm === ADAPTIVE;
        assert.deepEqual(unary.errorEstimate && Array.from(unary.errorEstimate.result.a.data), estimates ? new Array(16).fill(0) : undefined);
        const [events, streamCalls] = await calls(async () => {
          const events: JacobianRowsEvent[] = [];
          for await (const e of client.jacobianRows(request)) events.push(e);
          return events;
        });
        const stats = events[events.length - 1].stats!;
        assert.deepEqual([streamCalls, events[0].header!.planned_evaluations, stats.apply_calls, stats.column_groups], [1, 1, 1, 0]);
        assert.deepEqual((await assembleJacobian(events)).jacobian, unary.jacobian);
        const [vjp, vjpCalls] = await calls(() => client.vjp({ ...request, cotangent: { result: f64([1, -1, 2, 0.5]) } }));
        assert.deepEqual([vjpCalls, vjp.stats.apply_calls, vjp.stats.column_groups, Array.from(vjp.result.a.data)], [1, 1, 0, [0, 0, 0, 0]]);
      });
    }

    it("a zero block beside a diagonal (the Tesseract's declaration at s = 0): a's columns take no group, b's one", async () => {
      const [{ stats, jacobian }, n] = await calls(() => client.jacobian({ inputs: inputs(0), inputPaths: ["a", "b"], outputPaths: ["result"] }));
      assert.deepEqual([n, stats.apply_calls, stats.column_groups, stats.sparsity_source], [2, 2, 1, "tesseract"]);
      assert.deepEqual(Array.from(jacobian.result.a.data), new Array(16).fill(0));
      assert.deepEqual(Array.from(jacobian.result.b.data).map((v) => Math.round(v * 1e9) / 1e9), [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    });

    it("a fractional index in a declaration is INTERNAL saying it is no whole number (it said \"out of range\"), on every route that groups columns", async () => {
      const request = { inputs: inputs(-1), inputPaths: ["a"], outputPaths: ["result"] };
      const message = /^the Tesseract's sparsity declaration\[0\] \(output_path "result", input_path "a"\): output_index\[1\] = 1\.5: expected a whole number \(a flat row-major index into result\)$/;
      await clientRejects(client.jacobian(request), "INTERNAL", message);
      await clientRejects(assembleJacobian(client.jacobianRows(request)), "INTERNAL", message);
      await clientRejects(client.vjp({ ...request, cotangent: { result: f64([1, 1, 1, 1]) } }), "INTERNAL", message);
      await clientRejects(client.checkGradients({ inputs: inputs(-1), inputPaths: ["a"], endpoints: ["jacobian"] }), "INTERNAL", message);
    });
  });

  describe("patterns that do not fit: INVALID_ARGUMENT naming the pair", () => {
    const { runtime, counter } = counted("meshstats");
    const request = { inputs: meshInputs(4), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"] };
    const pattern = (p: Partial<SparsityPattern>): SparsityPattern => ({ output_path: "statistics.barycenter", input_path: "mesh.points", output_index: [0], input_index: [0], ...p });
    const cases: [string, SparsityPattern[], RegExp, number?][] = [
      // Made against abstractEval's prediction: f(x) confirms it first (once: the evaluation cache holds it then).
      ["an output index out of range", [pattern({ output_index: ["3"] })], /^sparsity\[0\] \(output_path "statistics\.barycenter", input_path "mesh\.points"\): output_index\[0\] = 3 is out of range for statistics\.barycenter, which has 3 elements \(flat row-major indices 0 to 2\) \(the output's shape as the Tesseract's abstractEval predicts it\)$/, 1],
      ["an input index out of range", [pattern({ input_index: ["18446744073709551615"] })], /^sparsity\[0\] .*: input_index\[0\] = 18446744073709551615 is out of range for mesh\.points, which has 12 elements/],
      ["an output that is not requested", [pattern({ output_path: "statistics.first_point_coordinates" })], /^sparsity\[0\] \(output_path "statistics\.first_point_coordinates", input_path "mesh\.points"\): output_path is not a requested output \(statistics\.barycenter\)$/],
      ["an input that is not differentiated", [pattern({ input_path: "mesh.pointz" })], /^sparsity\[0\] .*: input_path is not a differentiated input \(mesh\.points\)$/],
      ["a pattern without its output path (it read \"undefined\")", [pattern({ output_path: undefined as unknown as string })], /^sparsity\[0\] \(output_path unset, input_path "mesh\.points"\): output_path is not a requested output/],
      ["index lists of different lengths", [pattern({ output_index: [0, 1] })], /^sparsity\[0\] .*: output_index has 2 entries and input_index 1; expected pairs/],
      ["the same pair twice", [pattern({}), pattern({})], /^sparsity\[1\] .*: the pair already has a pattern, sparsity\[0\]; give each pair one$/],
    ];
    for (const [what, sparsity, message, calls = 0] of cases) {
      it(what, async () => {
        runtime.evaluationCache?.clear();
        counter.calls = 0;
        await rejects(runtime.jacobian({ ...request, sparsity }), Code.INVALID_ARGUMENT, message);
        await rejects(runtime.vjp({ ...request, cotangent: { "statistics.barycenter": f64([1, 2, 3]) }, sparsity }), Code.INVALID_ARGUMENT, message);
        assert.equal(counter.calls, calls, "refused before evaluating (abstractEval tells the shapes)");
      });
    }

    it("more pairs than a request may carry: RESOURCE_EXHAUSTED; an unknown sparsity_mode: INVALID_ARGUMENT", async () => {
      const huge = { length: MAX_PATTERN_NONZEROS + 1 } as ArrayLike<number>;
      assert.throws(
        () => buildStructure([pattern({ output_index: huge, input_index: huge })], [{ path: "mesh.points", size: 12 }], [{ path: "statistics.barycenter", size: 3 }], { field: "sparsity", fromRequest: true }),
        (e: { code: number; message: string }) => e.code === Code.RESOURCE_EXHAUSTED && /^sparsity has 4000001 index pairs, more than the 4000000 a request may carry/.test(e.message),
      );
      await rejects(runtime.jacobian({ ...request, options: { sparsity_mode: 7 } }), Code.INVALID_ARGUMENT, /^options\.sparsity_mode: unknown sparsity mode 7; expected 0, 1 or 2/);
    });
  });

  describe("patterns over a large input, for many outputs", () => {
    const n = 100_000;
    const keys = (count: number) => Array.from({ length: count }, (_, k) => `k${k}`);
    const leaves = [{ path: "x", size: n }];

    it("zero blocks (patterns without pairs) share their column pointers: 400 of them over 100 000 elements held 400 arrays of 100 001 (5 GB for 300 over 1 000 000, and the server fell over)", async () => {
      const outputs = keys(400).map((k) => ({ path: `named.{${k}}`, size: 1 }));
      const patterns = outputs.map((o) => ({ output_path: o.path, input_path: "x", output_index: [], input_index: [] }));
      const structure = buildStructure(patterns, leaves, outputs, { field: "sparsity", fromRequest: true });
      assert.deepEqual([structure.heldValues, structure.nonzeros, structure.dense], [0, 0, false]);
      assert.equal(structure.block(399, 0)!.starts, structure.block(0, 0)!.starts);
      // All of it one group: every column touches nothing.
      assert.equal((await groupColumns(structure, Array.from({ length: n }, (_, index) => ({ leaf: 0, index }))))!.length, 1);
    });

    it("patterns with pairs whose column pointers would pass MAX_PATTERN_COLUMNS: RESOURCE_EXHAUSTED naming the pattern, before they are built", async () => {
      const runtime = new TesseractRuntime(require(path.join(POLYNOMIAL_DIR, "polynomial.js")).default, POLYNOMIAL_DIR);
      const count = Math.floor(MAX_PATTERN_COLUMNS / (n + 1)) + 1;
      const params = Object.fromEntries(keys(count).map((k) => [k, f64([1])]));
      const sparsity = keys(count).map((k, j) => ({ output_path: `named.{${k}}`, input_path: "x", output_index: [0], input_index: [j] }));
      const request = { inputs: { x: ndarray(new Float64Array(n).fill(0.5), [n]), y: f64([0.7], []), params, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: keys(count).map((k) => `named.{${k}}`) };
      await rejects(
        runtime.jacobian({ ...request, sparsity }),
        Code.RESOURCE_EXHAUSTED,
        new RegExp(`^sparsity\\[${count - 1}\\] \\(output_path "named\\.\\{k${count - 1}\\}", input_path "x"\\): sparsity's patterns with index pairs span ${count * (n + 1)} input elements so far, more than the ${MAX_PATTERN_COLUMNS} a request may carry`),
      );
    });
  });

  describe("detection (SPARSITY_MODE_DETECT)", () => {
    /**
     * f_i = x_i^3 (diagonal) while x[0] < 1; beyond, f_i also moves with x[n-1]: a structure that
     * changes with the inputs, as a solver's branch would.
     */
    function switching() {
      const base = new TesseractRuntime(require(path.join(POLYNOMIAL_DIR, "polynomial.js")).default, POLYNOMIAL_DIR);
      const counter = { calls: 0 };
      const definition = {
        ...base.definition,
        apply(inputs: { x: ndarray.NdArray<Float64Array> }) {
          counter.calls++;
          const x = inputs.x.data;
          const last = x[x.length - 1];
          return { f: ndarray(x.map((v) => v ** 3 + (x[0] > 1 ? 0.5 * v * last : 0)), [x.length]) };
        },
      };
      return { runtime: new TesseractRuntime(definition, POLYNOMIAL_DIR), counter };
    }
    const at = (x: number[]) => ({ inputs: { x: f64(x), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], options: { sparsity_mode: DETECT, seed: 5 } });

    it("an element near a domain bound, which the verification cannot move, is verified by its own whole column (a missed dependence passed as detected)", async () => {
      // f_i = x_i³, and f_1 += y x_0: with y = 0 the structure recorded is diagonal; with y = 5 it misses
      // d f_1 / d x_0, and x_0 = 1e-5 sits within a step of its lower bound 0.
      const base = new TesseractRuntime(require(path.join(POLYNOMIAL_DIR, "polynomial.js")).default, POLYNOMIAL_DIR);
      const definition = {
        ...base.definition,
        bounds: { x: { lower: 0 } },
        apply(inputs: { x: ndarray.NdArray<Float64Array>; y: ndarray.NdArray<Float64Array> }) {
          const x = inputs.x.data;
          const f = x.map((v) => v ** 3);
          f[1] += inputs.y.data[0] * x[0];
          return { f: ndarray(f, [x.length]) };
        },
      };
      // Forward grouped x_0 (its step up stays inside) where the verification could not move it. Eight
      // elements, so that grouping saves more than the verification costs under every rule.
      for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE]) {
        const runtime = new TesseractRuntime(definition, POLYNOMIAL_DIR);
        const at = (y: number) => ({ inputs: { x: f64([1e-5, 0.5, 2, 1.5, 0.7, 1.1, 0.3, 0.9]), y: f64([y], []), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], options: { sparsity_mode: DETECT, algorithm } });
        assert.equal((await runtime.jacobian(at(0))).stats.sparsity_source, "");
        const { entries, stats } = await runtime.jacobian(at(5));
        assert.equal(stats.sparsity_source, "detected, failed verification: dense", Algorithm[algorithm]);
        assert.ok(Math.abs(entries[0].values[1 * 8 + 0] - 5) < 1e-6, `${Algorithm[algorithm]}: d f_1 / d x_0 = ${entries[0].values[8]}`);
        // The dense Jacobian recorded the coupling: the next request groups by it, and passes.
        assert.equal((await runtime.jacobian(at(5))).stats.sparsity_source, "detected");
      }
    });

    it("the first dense Jacobian records its zeros; later ones group by them, verified by one more pair", async () => {
      const { runtime, counter } = switching();
      const first = await runtime.jacobian(at([0.5, -1, 2, 0.25, 1.5]));
      assert.deepEqual([first.stats.sparsity_source, first.stats.column_groups, counter.calls], ["", 5, 10]);
      counter.calls = 0;
      const second = await runtime.jacobian(at([0.25, -2, 1, 0.5, 1]));
      // One group (a diagonal), f(x) for the shapes (no abstractEval), and the verification pair.
      assert.deepEqual([second.stats.sparsity_source, second.stats.column_groups, counter.calls], ["detected", 1, 2 + 1 + 2]);
      const dense = await runtime.jacobian({ ...at([0.25, -2, 1, 0.5, 1]), options: { sparsity_mode: DENSE } });
      assertSameEntries(second.entries, dense.entries, "detected");
      // Without DETECT, the recorded structure is not used.
      assert.equal((await runtime.jacobian({ ...at([0.25, -2, 1, 0.5, 1]), options: {} })).stats.column_groups, 5);
    });

    it("a structure that changed with the inputs fails verification: the dense Jacobian, and the stats say so", async () => {
      const { runtime, counter } = switching();
      await runtime.jacobian(at([0.5, -1, 2, 0.25, 1.5]));
      counter.calls = 0;
      const x = [1.5, -1, 2, 0.25, 1.5]; // x[0] > 1: every f_i moves with x[4] too
      const checked = await runtime.jacobian(at(x));
      assert.equal(checked.stats.sparsity_source, "detected, failed verification: dense");
      assert.equal(checked.stats.column_groups, 5);
      assert.equal(counter.calls, 1 + 2 + 2 + 2 + 2 * 5, "f(x), the grouped pair, the verification pair and its second chance, then dense");
      const dense = await runtime.jacobian({ ...at(x), options: { sparsity_mode: DENSE } });
      assertSameEntries(checked.entries, dense.entries, "fallback");
      const J = checked.entries[0].values;
      assert.ok(Math.abs(J[0 * 5 + 4] - 0.5 * 1.5) < 1e-6, "d f_0 / d x_4 is there");
      // A stream's planned evaluations count the failed attempt too (its header said 10, for the dense run alone).
      for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE]) {
        const { runtime: fresh } = switching();
        const options = { ...at(x).options, algorithm };
        await fresh.jacobian({ ...at([0.5, -1, 2, 0.25, 1.5]), options });
        const stream = fresh.jacobianRows({ ...at(x), options });
        for await (const _ of stream.rows);
        assert.equal(stream.stats().sparsity_source, "detected, failed verification: dense");
        assert.equal(stream.plannedEvaluations(), stream.stats().apply_calls, Algorithm[algorithm]);
      }
      // The dense run recorded the new structure: the next call groups by it and passes.
      const again = await runtime.jacobian(at(x));
      assert.equal(again.stats.sparsity_source, "detected");
      assertSameEntries(again.entries, dense.entries, "re-detected");
    });

    it("forward: a correct structure passes verification despite the rule's O(h) truncation (it failed, and ran dense at more evaluations); a changed one still fails", async () => {
      const { runtime, counter } = switching();
      const forward = (x: number[]) => ({ ...at(x), options: { ...at(x).options, algorithm: Algorithm.ALGORITHM_FORWARD } });
      await runtime.jacobian(forward([0.5, -1, 2, 0.25, 1.5]));
      counter.calls = 0;
      const second = await runtime.jacobian(forward([0.25, -2, 1, 0.5, 1]));
      // f(x), one group, two verification pairs (forward's): 6 (it was 4 + 5 dense columns).
      assert.deepEqual([second.stats.sparsity_source, second.stats.column_groups, counter.calls], ["detected", 1, 6]);
      const dense = await runtime.jacobian({ ...forward([0.25, -2, 1, 0.5, 1]), options: { algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: DENSE } });
      assertSameEntries(second.entries, dense.entries, "forward, detected");
      // x[0] > 1: every f_i moves with x[4] as well, 0.5 x_i: far above forward's truncation (~3e-4 here).
      // (The allowance is per row: the least |m_j| of every column, 2 sqrt(n), let a missed entry 20 times
      // the truncation pass at n = 100.)
      const changed = await runtime.jacobian(forward([1.5, -1, 2, 0.25, 1.5]));
      assert.equal(changed.stats.sparsity_source, "detected, failed verification: dense");
      assert.ok(Math.abs(changed.entries[0].values[0 * 5 + 4] - 0.5 * 1.5) < 1e-3, "d f_0 / d x_4 is there");
    });

    it("forward, n = 100: a missed entry 20 times the rule's truncation fails verification (the allowance took every column's least |m_j|, and let it pass)", async () => {
      // f_i = 1000 x_i², and f_0 += 2 x_50 once x_99 > 0: d f_0 / d x_50 = 2, forward's truncation of d f_0 / d x_0 is 0.1.
      const base = new TesseractRuntime(require(path.join(POLYNOMIAL_DIR, "polynomial.js")).default, POLYNOMIAL_DIR);
      const definition = {
        ...base.definition,
        apply(inputs: { x: ndarray.NdArray<Float64Array> }) {
          const x = inputs.x.data;
          const f = x.map((v) => 1000 * v * v);
          if (x[99] > 0) f[0] += 2 * x[50];
          return { f: ndarray(f, [x.length]) };
        },
      };
      // Every seed: the verification's directions are random (one in 60 seeds passed it with one direction and twice the allowance).
      for (let seed = 0; seed < 20; seed++) {
        const runtime = new TesseractRuntime(definition, POLYNOMIAL_DIR);
        const at = (last: number) => ({ inputs: { x: f64(Array.from({ length: 100 }, (_, i) => (i === 99 ? last : 0.5 + i / 100))), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], options: { sparsity_mode: DETECT, algorithm: Algorithm.ALGORITHM_FORWARD, eps: 1e-4, seed } });
        assert.equal((await runtime.jacobian(at(-1))).stats.sparsity_source, "");
        const { entries, stats } = await runtime.jacobian(at(1));
        assert.equal(stats.sparsity_source, "detected, failed verification: dense", `seed ${seed}`);
        assert.ok(Math.abs(entries[0].values[50] - 2) < 1e-6, `d f_0 / d x_50 = ${entries[0].values[50]}`);
      }
    });

    /** The polynomial fixture's schema with `apply` of x and y; a fresh runtime (its own detected structures, no evaluation cache). */
    const custom = async (apply: (x: Float64Array, y: number) => Float64Array | Float32Array) => {
      const base = new TesseractRuntime(require(path.join(POLYNOMIAL_DIR, "polynomial.js")).default, POLYNOMIAL_DIR);
      const runtime = new TesseractRuntime({ ...base.definition, apply: (inputs: { x: ndarray.NdArray<Float64Array>; y: ndarray.NdArray<Float64Array> }) => {
        const f = apply(inputs.x.data, inputs.y.data[0]);
        return { f: ndarray(f, [f.length]) };
      } }, POLYNOMIAL_DIR);
      await runtime.useEvaluation({ workers: 0, cacheBytes: 0 });
      return runtime;
    };
    /** The second request's sparsity_source and apply calls, after a first one at y = 0 recorded the structure (entries zero there). */
    async function detectedThenAt(runtime: TesseractRuntime, x: number[], y: number, options: object, seed = 2): Promise<{ source?: string; calls: number }> {
      const at = (yy: number, s: number) => ({ inputs: { x: f64(x), y: f64([yy], []), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], options: { sparsity_mode: DETECT, seed: s, ...options } });
      assert.equal((await runtime.jacobian(at(0, 1))).stats.sparsity_source, "");
      const { stats } = await runtime.jacobian(at(y, seed));
      return { source: stats.sparsity_source, calls: stats.apply_calls };
    }

    it("Richardson and adaptive: a missed entry of 1e-7 of its row fails verification (it passed, answered 0 with an estimate of 0), along u and u/2: 4 evaluations", async () => {
      // f_i = x_i³, and f_i += y x_{i+3}: with y = 0 the structure recorded is diagonal.
      const coupled = (x: Float64Array, y: number) => x.map((v, i) => v ** 3 + y * x[(i + 3) % x.length]);
      const x = [0.5, -1, 0.2, 0.25, 0.5, 0.7];
      for (const algorithm of [Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE]) {
        assert.equal((await detectedThenAt(await custom(coupled), x, 1e-7, { algorithm })).source, "detected, failed verification: dense", Algorithm[algorithm]);
        // A correct structure passes: one group (4 + 9, adaptive 12 + 9) and the 4 of the verification.
        const passing = await detectedThenAt(await custom(coupled), x, 0, { algorithm });
        assert.deepEqual(passing, { source: "detected", calls: (algorithm === Algorithm.ALGORITHM_RICHARDSON ? 4 : 12) + 9 + 4 });
      }
    });

    it("central and forward: a correct structure of a curved function passes at larger steps, by a second chance along u/2 (x³ at x ~ 0.01, or eps 1e-3: it failed every time and ran dense, 20 calls for 4, forward 12 for 6)", async () => {
      const cubes = (x: Float64Array) => x.map((v) => v ** 3);
      const x = [0.5, -1, 2, 0.25, 1.5, 0.3, 0.9, 1.1];
      for (const algorithm of [CENTRAL, FORWARD]) {
        for (const [scale, eps] of [[0.01, 1e-5], [1, 1e-3]]) {
          const runtime = await custom(cubes);
          const at = (k: number) => ({ inputs: { x: f64(x.map((v) => v * scale * (1 + k / 100))), y: f64([0], []), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], options: { algorithm, sparsity_mode: DETECT, eps, seed: k } });
          assert.equal((await runtime.jacobian(at(0))).stats.sparsity_source, "");
          for (let k = 1; k <= 5; k++) {
            // f(x), one group, the verification (a pair, forward's two), and a second chance (a pair) per direction where taken.
            const { entries, stats } = await runtime.jacobian(at(k));
            const what = `${Algorithm[algorithm]}, x ~ ${scale}, eps ${eps}, seed ${k}`;
            assert.equal(stats.sparsity_source, "detected", what);
            assert.ok((algorithm === CENTRAL ? [1 + 2 + 2, 1 + 2 + 2 + 2] : [1 + 1 + 4, 1 + 1 + 4 + 2, 1 + 1 + 4 + 4]).includes(stats.apply_calls), `${what}: ${stats.apply_calls} calls`);
            // Central is off by h², forward by 3 x h + h².
            at(k).inputs.x.data.forEach((v, j) => assert.ok(Math.abs(entries[0].values[j * 8 + j] - 3 * v * v) <= 1e-6 * Math.max(1, 3 * v * v) + (algorithm === FORWARD ? 3 * Math.abs(v) * eps : 0) + eps * eps, `${what}: entry ${j}`));
          }
          // Streamed, the header's planned evaluations count the second chance where it was taken.
          const stream = runtime.jacobianRows(at(6));
          for await (const _ of stream.rows);
          assert.equal(stream.plannedEvaluations(), stream.stats().apply_calls);
        }
      }
    });

    it("central, rows of 300 entries: a missed entry of 1e-4 fails verification for 8 seeds in 10 (it passed for every seed: 1e-6 of the row's plain sum)", async () => {
      // 2 outputs, f_r = Σ of its block of 300 x_j² / 2, and f_0 += y x_307. A missed entry folded into
      // a group mate's shows as y (m_k - m_j): where the random multiples nearly agree, it can pass.
      const blocks = (x: Float64Array, y: number) => Float64Array.from({ length: 2 }, (_, r) => x.subarray(300 * r, 300 * (r + 1)).reduce((a, v) => a + (v * v) / 2, 0) + (r === 0 ? y * x[307] : 0));
      const x = Array.from({ length: 600 }, (_, j) => 1 + 0.5 * Math.sin(j));
      let failed = 0;
      for (let seed = 1; seed <= 10; seed++) {
        if ((await detectedThenAt(await custom(blocks), x, 1e-4, {}, seed)).source === "detected, failed verification: dense") failed++;
      }
      assert.ok(failed >= 8, `${failed} of 10`);
      assert.equal((await detectedThenAt(await custom(blocks), x, 0, {})).source, "detected");
    });

    it("FP32 outputs, a diagonal of 100: a missed coupling of 1e-2 fails verification (each element moved by a tenth of its step, rounding hid it)", async () => {
      const coupled = (x: Float64Array, y: number) => Float32Array.from(x, (v, i) => (v * v) / 2 + y * x[(i + 50) % 100]);
      const x = Array.from({ length: 100 }, (_, i) => Math.fround(1 + 0.3 * Math.sin(i)));
      assert.equal((await detectedThenAt(await custom(coupled), x, 1e-2, { eps: 1e-4 })).source, "detected, failed verification: dense");
      assert.equal((await detectedThenAt(await custom(coupled), x, 0, { eps: 1e-4 })).source, "detected");
    });

    it("FP32 inputs whose steps are an ulp or two: a missed entry folded into a group mate's fails verification for every seed (moves under an ulp all rounded to one: it passed for 4 seeds in 10, wrong by 1 000); a correct band passes for every seed", async () => {
      // f_i = Σ_{j = i..i+8} x_j² / 2, x_1.. in one FP32 binade (ulp 6.1e-5, the step 1e-4); where x_0 > 1, f_m += 1000 x_{m+9} (m = n / 2).
      const band = (x: Float64Array) => Float64Array.from(x, (_, i) => x.subarray(i, i + 9).reduce((a, v) => a + (v * v) / 2, 0) + (x[0] > 1 && i === x.length >> 1 ? 1000 * x[i + 9] : 0));
      for (let seed = 1; seed <= 10; seed++) {
        const n = 61 + seed;
        const at = (x0: number, s: number) => ({ inputs: { x: f32(Array.from({ length: n }, (_, j) => (j === 0 ? x0 : 600 + 3 * (j - 1)))), y: f64([0], []), params: {}, blocks: [], mode: "" }, inputPaths: ["x"], outputPaths: ["f"], options: { sparsity_mode: DETECT, eps: 1e-4, seed: s } });
        for (const [x0, source, entry] of [[2, "detected, failed verification: dense", 1000], [0.75, "detected", 0]] as const) {
          const runtime = await custom(band);
          assert.equal((await runtime.jacobian(at(0.5, 1))).stats.sparsity_source, "");
          const { entries, stats } = await runtime.jacobian(at(x0, seed));
          assert.equal(stats.sparsity_source, source, `seed ${seed}, x_0 = ${x0}`);
          const m = n >> 1;
          assert.ok(Math.abs(entries[0].values[m * n + m + 9] - entry) < 1, `d f_${m} / d x_${m + 9} = ${entries[0].values[m * n + m + 9]}, seed ${seed}`);
        }
      }
    });

    it("streamed: rows are held back until verified, so a failed verification streams only the dense rows", async () => {
      const { runtime } = switching();
      await runtime.jacobian(at([0.5, -1, 2, 0.25, 1.5]));
      const stream = runtime.jacobianRows(at([1.5, -1, 2, 0.25, 1.5]));
      const rows = [];
      for await (const row of stream.rows) rows.push(row);
      assert.equal(rows.length, 5);
      assert.ok(rows.every((r) => !r.indices && r.values[0].length === 5), "dense rows");
      assert.equal(stream.nonzeros(), 0);
      assert.equal(stream.stats().sparsity_source, "detected, failed verification: dense");
    });

    it("the cache is bounded in structures and in stored entries, least recently used first out", async () => {
      const cache = new DetectedPatterns(2, 10);
      const structure = (n: number) => buildStructure([{ output_path: "f", input_path: "x", output_index: Array.from({ length: n }, (_, i) => i), input_index: Array.from({ length: n }, (_, i) => i) }], [{ path: "x", size: n }], [{ path: "f", size: n }], { field: "t", fromRequest: false });
      cache.set("a", structure(3));
      cache.set("b", structure(3));
      cache.get("a");
      cache.set("c", structure(3));
      assert.deepEqual([cache.get("a") !== undefined, cache.get("b") !== undefined, cache.get("c") !== undefined], [true, false, true]);
      cache.set("d", structure(8)); // 3 + 8 > 10 stored entries: "a" and "c" go
      assert.deepEqual([cache.size, cache.get("d") !== undefined], [1, true]);
      cache.set("e", structure(11)); // alone over the bound: not kept
      assert.equal(cache.get("e"), undefined);
    });
  });

  /**
   * A diagonal pattern over n = 3 ROWS_PER_BATCH + 5 elements of polynomial's f = x^3 + y sin x (one
   * column group), streamed by `algorithm` (under `mode`) on a runtime of its own (f(x) is remembered
   * between requests): every batch at most ROWS_PER_BATCH rows, each row d f_j / d x_j = 3 x_j^2 +
   * y cos x_j at index j alone (within `tolerance`, or its own error estimate); the stats, and the
   * rows' bits (order, index, values, estimates, indices).
   */
  async function streamDiagonal(algorithm: Algorithm, tolerance?: number, mode?: SparsityMode) {
    const runtime = new TesseractRuntime(require(path.join(POLYNOMIAL_DIR, "polynomial.js")).default, POLYNOMIAL_DIR);
    const n = 3 * ROWS_PER_BATCH + 5;
    const x = Float64Array.from({ length: n }, (_, i) => 0.5 + i / n);
    const y = 0.7;
    const all = Uint32Array.from({ length: n }, (_, i) => i);
    const stream = runtime.jacobianRows({
      inputs: { x: ndarray(x, [n]), y: f64([y], []), params: {}, blocks: [], mode: "" },
      inputPaths: ["x"],
      outputPaths: ["f"],
      sparsity: [{ output_path: "f", input_path: "x", output_index: all, input_index: all }],
      options: { algorithm, sparsity_mode: mode },
    });
    let rows = 0;
    const bits = createHash("sha256");
    const bytes = (a: Float64Array | Uint32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    for await (const batch of stream.batches) {
      assert.ok(batch.length <= ROWS_PER_BATCH, `a batch of ${batch.length} rows`);
      for (const row of batch) {
        rows++;
        const j = row.inputIndex;
        bits.update(`${j} ${row.values.length} ${row.errors?.length}`);
        for (const a of [...row.values, ...(row.errors ?? []), ...row.indices!]) bits.update(bytes(a!));
        assert.deepEqual(Array.from(row.indices![0]!), [j]);
        const value = row.values[0][0];
        const error = tolerance ?? row.errors![0][0];
        if (tolerance === undefined) assert.ok(error > 0 && error < 1e-6, `row ${j}: estimate ${error}`);
        assert.ok(Math.abs(value - (3 * x[j] ** 2 + y * Math.cos(x[j]))) <= error, `row ${j}: ${value} ± ${error}`);
      }
    }
    const stats = stream.stats();
    return { stats: [rows === n, stats.apply_calls, stats.column_groups, stats.sparsity_source], bits: bits.digest("hex") };
  }

  it("a column group of many columns streams its rows a slice at a time (a diagonal of 300 000 made every row at once: 420 MB, out of memory under a 160 MB heap)", async () => {
    // Central: f(x) for the output shapes (no abstractEval), then one pair; forward: f(x) and one evaluation.
    assert.deepEqual((await streamDiagonal(CENTRAL, 1e-8)).stats, [true, 1 + 2, 1, "request"]);
    assert.deepEqual((await streamDiagonal(FORWARD, 1e-4)).stats, [true, 2, 1, "request"]);
  });

  it("Richardson and adaptive stream a column group of many columns a slice at a time too, estimates included (4g + 9 and 12g + 9 evaluations; a diagonal of 300 000 made every row at once: 1.4 and 2.6 GB)", async () => {
    assert.deepEqual((await streamDiagonal(RICHARDSON)).stats, [true, 4 + 9, 1, "request"]);
    assert.deepEqual((await streamDiagonal(ADAPTIVE)).stats, [true, 12 + 9, 1, "request"]);
  });

  it("under SPARSITY_MODE_DETECT the rows held until verified stream as the trusted pattern's, bit for bit, estimates and indices included, in batches of at most ROWS_PER_BATCH (they left as one batch of every row)", async function () {
    this.timeout(60_000);
    // The verification's evaluations: a pair, two for forward, along u and u/2 for Richardson and adaptive.
    for (const [algorithm, tolerance, verifying] of [[CENTRAL, 1e-8, 2], [FORWARD, 1e-4, 4], [RICHARDSON, undefined, 4], [ADAPTIVE, undefined, 4]] as const) {
      const trusted = await streamDiagonal(algorithm, tolerance);
      const verified = await streamDiagonal(algorithm, tolerance, DETECT);
      assert.deepEqual(verified.stats, [true, (trusted.stats[1] as number) + verifying, 1, "request"], Algorithm[algorithm]);
      assert.equal(verified.bits, trusted.bits, Algorithm[algorithm]);
    }
  });

  it("a structure met again (by content) reuses its grouping; another structure or a subset of columns is coloured afresh", async () => {
    const tridiagonal = (n: number, band = 1) => {
      const pairs: [number, number][] = [];
      for (let j = 0; j < n; j++) for (let i = Math.max(0, j - band); i <= Math.min(n - 1, j + band); i++) pairs.push([i, j]);
      const pattern = { output_path: "f", input_path: "x", output_index: pairs.map((p) => p[0]), input_index: pairs.map((p) => p[1]) };
      return buildStructure([pattern], [{ path: "x", size: n }], [{ path: "f", size: n }], { field: "t", fromRequest: false });
    };
    const columns = (n: number) => Array.from({ length: n }, (_, index) => ({ leaf: 0, index }));
    const [a, b, wider] = [tridiagonal(30), tridiagonal(30), tridiagonal(30, 2)];
    assert.equal(a.fingerprint, b.fingerprint);
    assert.notEqual(a.fingerprint, wider.fingerprint);
    const groups = (await groupColumns(a, columns(30)))!;
    assert.equal(groups.length, 3);
    assert.equal(await groupColumns(b, columns(30)), groups, "the same groups, not coloured again");
    assert.equal((await groupColumns(wider, columns(30)))!.length, 5);
    const subset = (await groupColumns(a, columns(30).slice(0, 10)))!;
    assert.notEqual(subset, groups);
    assert.deepEqual(subset.flat().map((c) => c.index).sort((x, y) => x - y), Array.from({ length: 10 }, (_, i) => i));
  });

  describe("the colouring's quality", () => {
    /** Output cell (i, j) of an n × n grid depends on the input cells within Manhattan distance r. */
    const grid = (n: number, r: number) => {
      const pairs: [number, number][] = [];
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let a = -r; a <= r; a++) for (let b = Math.abs(a) - r; b <= r - Math.abs(a); b++) {
        if (i + a >= 0 && i + a < n && j + b >= 0 && j + b < n) pairs.push([(i + a) * n + j + b, i * n + j]);
      }
      return pairs;
    };
    const structureOfPairs = (pairs: readonly [number, number][], n: number, m: number) =>
      buildStructure([{ output_path: "f", input_path: "x", output_index: pairs.map((p) => p[0]), input_index: pairs.map((p) => p[1]) }], [{ path: "x", size: n }], [{ path: "f", size: m }], { field: "t", fromRequest: false });
    /** Every column in one group, no two columns of a group at one output value. */
    function assertPartition(groups: { index: number }[][], structure: ReturnType<typeof structureOfPairs>, n: number, m: number) {
      assert.deepEqual(groups.flat().map((c) => c.index).sort((a, b) => a - b), Array.from({ length: n }, (_, j) => j));
      for (const group of groups) {
        const seen = new Uint8Array(m);
        for (const { index } of group) for (const r of structure.cells(0, 0, index)!) assert.equal(seen[r]++, 0, `two columns of a group share output value ${r}`);
      }
    }
    const all = (n: number) => Array.from({ length: n }, (_, index) => ({ leaf: 0, index }));

    for (const [n, r, expected, greedy] of [[30, 1, 5, 7], [60, 1, 5, 7], [30, 2, 14, 18]] as const) {
      it(`a ${n} × ${n} grid, cells within distance ${r}: ${expected} groups (largest-first alone: ${greedy}; at least ${2 * r * r + 2 * r + 1})`, async () => {
        const structure = structureOfPairs(grid(n, r), n * n, n * n);
        const groups = (await groupColumns(structure, all(n * n)))!;
        assert.equal(groups.length, expected);
        assertPartition(groups, structure, n * n, n * n);
      });
    }

    it("a 30 × 30 grid's 5-point stencil beside a scalar every output value depends on (a dense block): 6 groups (largest-first alone: 8)", async () => {
      const n = 30 * 30;
      const pairs = grid(30, 1);
      const pattern = { output_path: "f", input_path: "x", output_index: pairs.map((p) => p[0]), input_index: pairs.map((p) => p[1]) };
      const structure = buildStructure([pattern], [{ path: "x", size: n }, { path: "k", size: 1 }], [{ path: "f", size: n }], { field: "t", fromRequest: false });
      const groups = (await groupColumns(structure, [...all(n), { leaf: 1, index: 0 }]))!;
      assert.equal(groups.length, 6);
      assert.deepEqual(groups.find((g) => g.some((c) => c.leaf === 1)), [{ leaf: 1, index: 0 }], "the scalar alone in its group");
      assertPartition(groups.map((g) => g.filter((c) => c.leaf === 0)), structure, n, n);
    });

    it("random patterns: the groups partition the columns, disjoint at every output value, never fewer than the most columns at one value (fast-check)", async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 60 }), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 400 }), async (n, m, raw) => {
          const pairs = [...new Map(raw.map(([i, j]) => [`${i % m},${j % n}`, [i % m, j % n] as [number, number]])).values()];
          const structure = structureOfPairs(pairs, n, m);
          const groups = (await groupColumns(structure, all(n)))!;
          assertPartition(groups, structure, n, m);
          const atValue = new Uint32Array(m);
          for (const [i] of pairs) atValue[i]++;
          assert.ok(groups.length >= Math.max(1, ...atValue));
        }),
        { numRuns: 300, seed: 20261202 },
      );
    });
  });

  it("a large sparse structure is coloured, not run dense: 160 000 columns of 3 nonzeros in rows of about 450 (a fixed bound of 1e8 colour tests gave up on it: 160 000 groups); other calls get turns meanwhile (it held the thread for seconds)", async function () {
    this.timeout(60000);
    const [n, m] = [160_000, 1_070];
    // A seeded xorshift: the same structure every run.
    let state = 12345;
    const next = () => ((state ^= state << 13), (state ^= state >>> 17), (state ^= state << 5), (state >>> 0) % m);
    const rows = new Uint32Array(3 * n);
    const columns = new Uint32Array(3 * n);
    for (let k = 0; k < 3 * n; k++) [rows[k], columns[k]] = [next(), Math.floor(k / 3)];
    const structure = buildStructure([{ output_path: "f", input_path: "x", output_index: rows, input_index: columns }], [{ path: "x", size: n }], [{ path: "f", size: m }], { field: "t", fromRequest: false });
    // Turns asked for and given: each ends once the event loop has run its other callbacks (counted).
    let [asked, others] = [0, 0];
    const other = setInterval(() => others++, 0);
    const turn = () => (asked++ % 64 === 0 ? new Promise<void>(setImmediate) : undefined);
    const groups = await groupColumns(structure, Array.from({ length: n }, (_, index) => ({ leaf: 0, index })), turn);
    clearInterval(other);
    assert.equal(asked, Math.ceil(n / 256));
    assert.ok(others > 0, "no timer ran while the structure was coloured");
    assert.ok(groups, "coloured");
    // At least the longest row; far fewer than the columns.
    const lengths = new Uint32Array(m);
    for (const r of rows) lengths[r]++;
    const longest = Math.max(...lengths);
    assert.ok(groups.length >= longest && groups.length < 2 * longest, `${groups.length} groups, the longest row ${longest}`);
    // Each group touches each row once at most.
    for (const group of groups) {
      const seen = new Uint8Array(m);
      for (const { index } of group) for (const r of structure.cells(0, 0, index)!) assert.equal(seen[r]++, 0, `two columns of a group share row ${r}`);
    }
  });

  it("patterns met again (by content) reuse their structure; one index changed builds anew; a refusal is never kept", () => {
    const extents = { leaves: [{ path: "x", size: 4 }], outputs: [{ path: "f", size: 4 }] };
    const source = { field: "sparsity", fromRequest: true };
    const pattern = (rows: ArrayLike<number>) => [{ output_path: "f", input_path: "x", output_index: rows, input_index: [0, 1, 2, 3] }];
    const diagonal = structureOf(pattern([0, 1, 2, 3]), extents.leaves, extents.outputs, source);
    assert.equal(structureOf(pattern(Uint32Array.of(0, 1, 2, 3)), extents.leaves, extents.outputs, source), diagonal, "the same numbers, another array type");
    const other = structureOf(pattern([0, 1, 2, 0]), extents.leaves, extents.outputs, source);
    assert.notEqual(other, diagonal);
    assert.deepEqual(Array.from(other.cells(0, 0, 3)!), [0]);
    assert.deepEqual(Array.from(diagonal.cells(0, 0, 3)!), [3]);
    // Another source reads the same patterns under other rules (a declaration's unrequested pairs are skipped).
    assert.notEqual(structureOf(pattern([0, 1, 2, 3]), extents.leaves, extents.outputs, { field: "d", fromRequest: false }), diagonal);
    for (let k = 0; k < 2; k++) assert.throws(() => structureOf(pattern([0, 1, 2, 4]), extents.leaves, extents.outputs, source), /output_index\[3\] = 4 is out of range/);
  });

  it("REST /jacobian: dense output either way; sparsity_mode=dense (query or body) evaluates column by column", async () => {
    const server = await startServer({ tesseract: "vectoradd", port: 0, httpPort: 0, logger: silentLogger });
    const array = (values: number[], shape: number[]) => ({ shape, dtype: "float64", data: { buffer: values, encoding: "json" } });
    try {
      const jacobian = async (query: string, options?: object) => {
        const response = await fetch(`http://127.0.0.1:${server.httpPort}/jacobian${query}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ inputs: { a: array([1, 2, 3], [3]), b: array([4, 5, 6], [3]), s: array([2], []) }, jac_inputs: ["a", "b"], jac_outputs: ["result"], ...(options ? { options } : {}) }),
        });
        return { status: response.status, json: (await response.json()) as { result: { a: unknown } } };
      };
      const before = server.runtime.evaluations;
      const grouped = await jacobian("");
      const afterGrouped = server.runtime.evaluations;
      const dense = await jacobian("?sparsity_mode=dense");
      const afterDense = server.runtime.evaluations;
      assert.deepEqual([grouped.status, dense.status], [200, 200]);
      assert.deepEqual(grouped.json, dense.json);
      assert.deepEqual([afterGrouped - before, afterDense - afterGrouped], [2 * 2, 2 * 6]);
      assert.equal((await jacobian("", { sparsity_mode: "SPARSITY_MODE_DENSE" })).status, 200);
      assert.equal(server.runtime.evaluations - afterDense, 2 * 6);
      const bad = await jacobian("?sparsity_mode=sparse");
      assert.equal(bad.status, 422);
      assert.match(JSON.stringify(bad.json), /query parameter sparsity_mode is \\"sparse\\", expected dense or detect/);
    } finally {
      await server.close();
    }
  });

  it("a sparse row larger than the message budget is split: indices with their values and estimates, every message within budget", () => {
    const indices = Uint32Array.from({ length: 700 }, (_, k) => 3 * k);
    const values = Float64Array.from(indices, (i) => Math.sin(i));
    const errors = Float64Array.from(indices, (i) => i * 1e-9);
    const dense = Float64Array.from({ length: 50 }, (_, i) => i);
    const row = { inputPath: "x", inputIndex: 7, values: [values, dense], errors: [errors, dense], indices: [indices, undefined] };
    const messages = [...rowMessages(row, [{ path: "f" }, { path: "g" }], 1024)];
    assert.ok(messages.length > 10);
    const seen = { f: [] as number[], values: [] as number[], errors: [] as number[], g: 0 };
    for (const { message: bytes } of messages) {
      assert.ok(bytes.length <= 1024, `a message of ${bytes.length} bytes`);
      const { row: decoded } = JacobianRowsResponse.decode(bytes);
      assert.deepEqual([decoded!.input_path, decoded!.input_index], ["x", 7]);
      for (const slice of decoded!.slices) {
        const v = new Float64Array(new Uint8Array(slice.values!.data).buffer);
        const e = new Float64Array(new Uint8Array(slice.error_estimate!.data).buffer);
        if (slice.output_path === "g") {
          assert.deepEqual([slice.indices, Array.from(v)], [[], Array.from(dense.subarray(slice.offset, slice.offset + v.length))]);
          seen.g += v.length;
          continue;
        }
        assert.deepEqual([slice.offset, slice.indices.length, e.length], [0, v.length, v.length]);
        seen.f.push(...slice.indices);
        seen.values.push(...v);
        seen.errors.push(...e);
      }
    }
    assert.deepEqual(seen.f, Array.from(indices));
    assert.deepEqual(seen.values, Array.from(values));
    assert.deepEqual(seen.errors, Array.from(errors));
    assert.equal(seen.g, 50);
  });

  describe("heat, n = 23 200, one step: tridiagonal, 6 evaluations, sparse rows", () => {
    const n = 23_200;
    let server: RunningServer;
    let client: TesseractClient<HeatInputs, HeatOutputs>;
    before(async () => {
      server = await startServer({ tesseract: "heat", host: "127.0.0.1", port: 0, logger: silentLogger });
      client = new TesseractClient<HeatInputs, HeatOutputs>(server.address, { inputs: HeatInputs, outputs: HeatOutputs });
    });
    after(async () => {
      client?.close();
      await server?.close();
    });

    it("SDK: an index that is no uint64 is INVALID_ARGUMENT naming it, before the call (it was INTERNAL: a serialization failure)", async () => {
      const request = { inputs: sampleHeatInputs(8, 1), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] };
      for (const [output_index, message] of [
        [[0, -1], /^sparsity could not be encoded: sparsity\[0\]\.output_index\[1\] is -1: expected a whole number ≥ 0 \(a flat row-major index\)$/],
        [[0.5, 1], /^sparsity could not be encoded: sparsity\[0\]\.output_index\[0\] is 0\.5: expected a whole number ≥ 0/],
      ] as const) {
        const sparsity = [{ output_path: "final_temperature", input_path: "initial_temperature", output_index, input_index: [0, 1] }];
        await clientRejects(client.jacobian({ ...request, sparsity }), "INVALID_ARGUMENT", message);
      }
    });

    it("streams 3 values per row (2 at the ends), 6 evaluations, and assembles sparse to (I + rL)", async () => {
      const request = { inputs: sampleHeatInputs(n, 1), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] };
      const events: JacobianRowsEvent[] = [];
      for await (const e of client.jacobianRows(request)) events.push(e);
      const header = events[0].header!;
      assert.deepEqual([header.total_rows, header.planned_evaluations, header.nonzeros], [n, 6, 3 * n - 2]);
      const rows = events.filter((e) => e.row).map((e) => e.row!);
      assert.equal(rows.length, n, "one message per row");
      for (const row of rows) {
        const j = row.input_index;
        assert.deepEqual(row.slices[0].indices, [j - 1, j, j + 1].filter((i) => i >= 0 && i < n));
      }
      const { jacobian, stats } = await assembleSparseJacobian(events);
      assert.deepEqual([stats.apply_calls, stats.column_groups, stats.sparsity_source], [6, 3, "tesseract"]);
      const J = jacobian.final_temperature.initial_temperature;
      assert.deepEqual([J.shape, J.outputSize, J.inputSize, J.values.length], [[n, n], n, n, 3 * n - 2]);
      const r = 0.45; // the default dt: 0.9 of the 1-D stability limit 1/2
      for (let j = 0; j < n; j++) {
        for (let p = J.indptr[j]; p < J.indptr[j + 1]; p++) {
          const expected = J.indices[p] === j ? 1 - 2 * r : r;
          assert.ok(Math.abs(J.values[p] - expected) < 1e-9, `(${J.indices[p]}, ${j}): ${J.values[p]}`);
        }
      }
    });

    it("densifyRows gives whole rows; assembleJacobian the dense Jacobian the unary call gives (n = 300)", async () => {
      const request = { inputs: sampleHeatInputs(300, 2), inputPaths: ["initial_temperature", "diffusivity"], outputPaths: ["final_temperature"] };
      const unary = await client.jacobian(request);
      const assembled = await assembleJacobian(client.jacobianRows(request));
      assert.deepEqual(assembled.jacobian, unary.jacobian);
      let rows = 0;
      for await (const event of densifyRows(client.jacobianRows(request))) {
        if (!event.row) continue;
        rows++;
        const { input_path, input_index, values } = event.row;
        const block = unary.jacobian.final_temperature[input_path];
        const size = input_path === "diffusivity" ? 1 : 300;
        assert.deepEqual(values[0], Float64Array.from({ length: 300 }, (_, i) => block.data[i * size + input_index]));
      }
      assert.equal(rows, 301);
    });

    it("SPARSITY_MODE_DETECT with a pattern leaving a large block dense: more nonzeros than a verification may hold, so dense rows, saying so (every row was held: 4.3 GB at this n)", async () => {
      // 2 001 × 2 001 dense entries: just over MAX_PATTERN_NONZEROS, which bounds the rows held until verified.
      const m = 2001;
      assert.ok(m * m > MAX_PATTERN_NONZEROS);
      const request = {
        inputs: sampleHeatInputs(m, 1),
        inputPaths: ["initial_temperature", "diffusivity"],
        outputPaths: ["final_temperature"],
        sparsity: [{ output_path: "final_temperature", input_path: "diffusivity", output_index: [], input_index: [] }],
        options: { sparsity_mode: DETECT },
      };
      const events: JacobianRowsEvent[] = [];
      for await (const e of client.jacobianRows(request)) events.push(e);
      const stats = events[events.length - 1].stats!;
      assert.deepEqual(
        [events[0].header!.nonzeros, events[0].header!.planned_evaluations, stats.apply_calls, stats.column_groups, stats.sparsity_source],
        [0, 2 * (m + 1), 2 * (m + 1), m + 1, `request, more than ${MAX_PATTERN_NONZEROS} nonzeros to verify: dense`],
      );
      const { jacobian } = await assembleSparseJacobian(events);
      const J = jacobian.final_temperature.initial_temperature;
      const r = 0.45;
      assert.equal(J.values.length, 3 * m - 2);
      for (let j = 0; j < m; j++) {
        for (let p = J.indptr[j]; p < J.indptr[j + 1]; p++) assert.ok(Math.abs(J.values[p] - (J.indices[p] === j ? 1 - 2 * r : r)) < 1e-9, `(${J.indices[p]}, ${j}): ${J.values[p]}`);
      }
      assert.equal(jacobian.final_temperature.diffusivity.values.length, 0);
    });

    it("SPARSITY_MODE_DENSE streams dense rows (nonzeros 0) of the same Jacobian", async () => {
      const request = { inputs: sampleHeatInputs(200, 1), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"] };
      const events: JacobianRowsEvent[] = [];
      for await (const e of client.jacobianRows({ ...request, options: { sparsity_mode: DENSE } })) events.push(e);
      assert.equal(events[0].header!.nonzeros, 0);
      assert.ok(events.every((e) => !e.row || (e.row.slices[0].indices === undefined && e.row.slices[0].values.length === 200)));
      assert.deepEqual((await assembleJacobian(events)).jacobian, (await client.jacobian(request)).jacobian);
    });
  });
});
