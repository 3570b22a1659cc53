/**
 * Central Jacobians straight into the result (server/fd/central-jacobian.ts) against the rows every
 * other endpoint takes (columns.ts's planRowBatches, placed one by one): the same numbers to the
 * bit, dense and grouped, inline and with many pairs in flight, with elements near a domain bound
 * (one-sided, alone), several leaves (one empty); the exact evaluation counts; and a value the
 * arithmetic made non-finite refused with the rows' own message.
 */
import { strict as assert } from "node:assert";
import { Code } from "../index";
import { flatDifferences, outputStride, type ElementPairs, type Evaluator, type OutputInfo, type Perturbation } from "../server/eval/evaluator";
import { pairCount, sideOf } from "../server/eval/element-pairs";
import type { InputLeaf } from "../server/eval/input-leaf";
import { planRowBatches } from "../server/fd/columns";
import { allocateEntries, placeRow } from "../server/fd/entries";
import { jacobian } from "../server/fd/jacobian";
import type { ResolvedOptions } from "../server/fd/options";
import { Problem } from "../server/fd/problem";
import { planSparsity } from "../server/fd/sparsity-plan";
import type { DomainBounds, SparsityPattern } from "../server/tesseract";
import { perturbedCopies, rejects } from "./helpers";

type Fn = (leaves: Float64Array[]) => Float64Array[];

/** `fn` on copies of the leaves with the perturbation applied; with `inFlight` > 1, pairs in one call, as a pool takes them. */
class TestEvaluator implements Evaluator {
  calls = 0;
  readonly differences?: (pairs: ElementPairs) => Promise<Float64Array>;

  constructor(
    private readonly leaves: InputLeaf[],
    private readonly fn: Fn,
    readonly outputs: OutputInfo[],
    readonly concurrency: number,
  ) {
    if (concurrency > 1) {
      this.differences = async (pairs) => flatDifferences(await Promise.all(Array.from({ length: 2 * pairCount(pairs) }, (_, e) => this.evaluate(sideOf(pairs, e >> 1, e & 1)))), outputStride(this.outputs), pairs.widths);
    }
  }

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    const xs = perturbedCopies(this.leaves, perturbation);
    this.calls++;
    return this.fn(xs);
  }
}

function leaf(path: string, values: number[]): InputLeaf {
  return { path, segments: [{ kind: "field", name: path }], shape: [values.length], size: values.length, data: Float64Array.from(values), fp32: false };
}

// out0[i] = x[i]^3 + y[0] x[i] (diagonal in x, a dense column for y), out1 = [sum x, exp(y0) y1]; z is empty.
const fn: Fn = ([x, y]) => [Float64Array.from(x, (v) => v * v * v + y[0] * v), Float64Array.of(x.reduce((a, b) => a + b, 0), Math.exp(y[0]) * y[1])];
const X = [0.5, -1.25, 2, 0.001, 3.5, -0.75];
const Y = [0.3, 1.7];
const PATTERNS: SparsityPattern[] = [
  { output_path: "out0", input_path: "x", output_index: X.map((_, i) => i), input_index: X.map((_, i) => i) },
  { output_path: "out1", input_path: "x", output_index: X.map(() => 0), input_index: X.map((_, i) => i) },
];

function problemOf(concurrency: number, bounds: (DomainBounds | undefined)[] = [], f: Fn = fn) {
  const leaves = [leaf("x", X), leaf("z", []), leaf("y", Y)];
  const evaluator = new TestEvaluator(leaves, ([x, , y]) => f([x, y]), [{ path: "out0", shape: [X.length], datatype: 11 }, { path: "out1", shape: [2], datatype: 11 }], concurrency);
  return { evaluator, problem: new Problem(leaves, evaluator, undefined, bounds) };
}

const central = (sparsityMode: ResolvedOptions["sparsityMode"]): ResolvedOptions => ({ algorithm: "central", eps: 1e-5, seed: 1n, sparsityMode });

/** The Jacobian both ways, each on a fresh problem: [straight, from rows], with the evaluations each made. */
async function bothWays(concurrency: number, options: ResolvedOptions, bounds: (DomainBounds | undefined)[] = [], f: Fn = fn) {
  const sources = { request: options.sparsityMode === "dense" ? undefined : PATTERNS };
  const straight = problemOf(concurrency, bounds, f);
  const entries = await jacobian(straight.problem, options, Infinity, await planSparsity(straight.problem, options, sources));
  const viaRows = problemOf(concurrency, bounds, f);
  const plan = await planSparsity(viaRows.problem, options, sources);
  const placed = allocateEntries(viaRows.problem, Infinity);
  for await (const batch of planRowBatches(viaRows.problem, options, plan)) for (const row of batch) placeRow(placed, viaRows.problem, row);
  return { entries, rows: placed.flat(), calls: [straight.evaluator.calls, viaRows.evaluator.calls], groups: plan.columnGroups };
}

describe("central Jacobians straight into the result", () => {
  for (const concurrency of [1, 8]) {
    for (const mode of ["dense", "default"] as const) {
      it(`${mode === "dense" ? "dense" : "grouped"}, ${concurrency === 1 ? "inline" : "pairs in flight"}: the rows' numbers to the bit, 2 evaluations per column (group)`, async () => {
        const { entries, rows, calls, groups } = await bothWays(concurrency, central(mode));
        assert.deepEqual(entries.map((e) => [e.outputPath, e.inputPath, e.shape]), rows.map((e) => [e.outputPath, e.inputPath, e.shape]));
        entries.forEach((e, k) => assert.deepEqual(Array.from(e.values), Array.from(rows[k].values), `${e.outputPath} / ${e.inputPath}`));
        // By the pattern every column of x touches out1[0], and y's are dense: no two group (the next test groups some).
        assert.equal(groups, 8);
        assert.deepEqual(calls, [2 * groups, 2 * groups]);
        // d out0[i] / d x[i] = 3 x^2 + y0, to central differences' accuracy.
        const dx = entries.find((e) => e.outputPath === "out0" && e.inputPath === "x")!;
        X.forEach((x, i) => assert.ok(Math.abs(dx.values[i * X.length + i] - (3 * x * x + Y[0])) < 1e-8, `entry (${i}, ${i})`));
      });
    }
  }

  for (const concurrency of [1, 8]) {
    it(`grouped where columns share no output, ${concurrency === 1 ? "inline" : "pairs in flight"}: fewer evaluations, the same numbers`, async () => {
    // out0 alone: x's columns touch disjoint entries, so they form one group.
    const only0: Fn = (xs) => [fn(xs)[0]];
    const { entries, rows, calls, groups } = await (async () => {
      const options = central("default");
      const sources = { request: [PATTERNS[0]] };
      const run = async (viaRows: boolean) => {
        const leaves = [leaf("x", X), leaf("z", []), leaf("y", Y)];
        const evaluator = new TestEvaluator(leaves, ([x, , y]) => only0([x, y]), [{ path: "out0", shape: [X.length], datatype: 11 }], concurrency);
        const problem = new Problem(leaves, evaluator, undefined, []);
        const plan = await planSparsity(problem, options, sources);
        if (!viaRows) return { entries: await jacobian(problem, options, Infinity, plan), calls: evaluator.calls, groups: plan.columnGroups };
        const placed = allocateEntries(problem, Infinity);
        for await (const batch of planRowBatches(problem, options, plan)) for (const row of batch) placeRow(placed, problem, row);
        return { entries: placed.flat(), calls: evaluator.calls, groups: plan.columnGroups };
      };
      const [a, b] = [await run(false), await run(true)];
      return { entries: a.entries, rows: b.entries, calls: [a.calls, b.calls], groups: a.groups };
    })();
    assert.equal(groups, 1 + 2); // x in one group, y's two elements each alone
    assert.deepEqual(calls, [2 * groups, 2 * groups]);
    entries.forEach((e, k) => assert.deepEqual(Array.from(e.values), Array.from(rows[k].values)));
    });
  }

  it("elements near a domain bound take the one-sided stencil alone, with f(x) once", async () => {
    // y[0] = 0.3 with y > 0.3 - 5e-6: y[0] - h (h = 1e-5) leaves the domain, y[1] = 1.7 is far from it.
    const bounds = [undefined, undefined, { lower: 0.3 - 5e-6 }];
    for (const concurrency of [1, 8]) {
      const { entries, rows, calls } = await bothWays(concurrency, central("dense"), bounds);
      entries.forEach((e, k) => assert.deepEqual(Array.from(e.values), Array.from(rows[k].values)));
      // 7 central columns (2 each), y[0] one-sided: f(x), y + h, y + 2h.
      assert.deepEqual(calls, [2 * 7 + 3, 2 * 7 + 3]);
    }
  });

  it("a value the arithmetic made non-finite: FAILED_PRECONDITION with the rows' message", async () => {
    // Outputs of ±1e308 on either side of x[2]: their difference overflows.
    const huge: Fn = (xs) => {
      const out = fn(xs);
      out[1][0] = xs[0][2] > 2 ? 1.7e308 : xs[0][2] < 2 ? -1.7e308 : 0;
      return out;
    };
    for (const concurrency of [1, 8]) {
      const messages: string[] = [];
      for (const viaRows of [false, true]) {
        const { problem } = problemOf(concurrency, [], huge);
        const options = central("dense");
        const run = async () => {
          if (!viaRows) return jacobian(problem, options, Infinity, await planSparsity(problem, options, {}));
          for await (const _ of planRowBatches(problem, options, await planSparsity(problem, options, {})));
        };
        const error = await rejects(run(), Code.FAILED_PRECONDITION, /came out/);
        messages.push(error.message);
      }
      assert.match(messages[0], /^d out1 \(flat index 0\) \/ d x\[2\] came out -?Infinity/);
      assert.equal(messages[0], messages[1]);
    }
  });
});
