/**
 * Inline rows in timed chunks (rows.ts, ChunkSizer and chunkedRows): an evaluator that takes many
 * pairs at once but runs one evaluation at a time gets one pair first, then about half a millisecond
 * of pairs per call, so cheap applies do not pay a call per row; a costly apply stays at one pair per
 * call. The sizes are checked on a clock of the test's own; through the engine, on the real clock,
 * only what no load on the machine can change (a stall makes the next chunk small, not the rest).
 * The rows are the same either way: exact counts and the analytic derivative.
 */
import { strict as assert } from "node:assert";
import { flatDifferences, outputStride, type ElementPairs, type Evaluator, type OutputInfo, type Perturbation } from "../server/eval/evaluator";
import { pairCount, sideOf } from "../server/eval/element-pairs";
import type { InputLeaf } from "../server/eval/input-leaf";
import type { ResolvedOptions } from "../server/fd/options";
import { Problem } from "../server/fd/problem";
import { ChunkSizer, rows } from "../server/fd/rows";
import { perturbedCopies } from "./helpers";

/** f(x) = x³ element-wise, one evaluation at a time (concurrency 1), pairs taken in one call; `spinMs` of work per evaluation. */
class InlinePairs implements Evaluator {
  calls = 0;
  readonly concurrency = 1;
  /** Pairs in each `differences` call, in order. */
  readonly pairsPerCall: number[] = [];
  readonly outputs: OutputInfo[];

  constructor(
    private readonly leaves: InputLeaf[],
    private readonly spinMs: number,
  ) {
    this.outputs = [{ path: "cube", shape: [leaves[0].size], datatype: 11 }];
  }

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    const [x] = perturbedCopies(this.leaves, perturbation);
    this.calls++;
    for (const started = performance.now(); performance.now() - started < this.spinMs; );
    return [x.map((v) => v * v * v)];
  }

  async differences(pairs: ElementPairs): Promise<Float64Array> {
    this.pairsPerCall.push(pairCount(pairs));
    const sides: Float64Array[][] = [];
    for (let e = 0; e < 2 * pairCount(pairs); e++) sides.push(await this.evaluate(sideOf(pairs, e >> 1, e & 1)));
    return flatDifferences(sides, outputStride(this.outputs), pairs.widths);
  }
}

const CENTRAL: ResolvedOptions = { algorithm: "central", eps: 1e-5, seed: 1n, sparsityMode: "dense" };

async function streamRows(n: number, spinMs: number) {
  const x = Float64Array.from({ length: n }, (_, i) => 0.5 + i / n);
  const leaves: InputLeaf[] = [{ path: "x", segments: [{ kind: "field", name: "x" }], shape: [n], size: n, data: x, fp32: false }];
  const evaluator = new InlinePairs(leaves, spinMs);
  const problem = new Problem(leaves, evaluator);
  const seen = new Set<number>();
  for await (const batch of rows(problem, CENTRAL)) {
    for (const row of batch) {
      seen.add(row.index);
      // d cube[i] / d x[j] = 3 x_j² at i = j, else 0.
      row.values[0].forEach((v, i) => {
        if (i !== row.index) assert.equal(v, 0, `(${i}, ${row.index})`);
        else assert.ok(Math.abs(v - 3 * x[i] * x[i]) < 1e-8, `(${i}, ${i}): ${v}`);
      });
    }
  }
  assert.equal(seen.size, n);
  assert.equal(evaluator.calls, 2 * n);
  return evaluator.pairsPerCall;
}

describe("inline rows in timed chunks", () => {
  it("sizes chunks to half a millisecond by the last chunk's time per item, one until timed, at most 64", async () => {
    let clock = 0;
    const sizer = new ChunkSizer({ concurrency: 1 } as Problem, 2, () => clock);
    const chunk = (items: number, ms: number) => sizer.timed(items, async () => void (clock += ms));
    assert.equal(sizer.size(), 1, "untimed");
    await chunk(1, 0.01);
    assert.equal(sizer.size(), 50, "0.01 ms an item");
    await chunk(50, 5);
    assert.equal(sizer.size(), 5, "0.1 ms an item");
    await chunk(5, 10);
    assert.equal(sizer.size(), 1, "2 ms an item: one");
    await chunk(1, 0.001);
    assert.equal(sizer.size(), 64, "a microsecond an item: the cap");
    await chunk(0, 1);
    assert.equal(sizer.size(), 64, "an empty chunk tells nothing");
  });

  it("in worker threads, a task's worth whatever the time", async () => {
    let clock = 0;
    const sizer = new ChunkSizer({ concurrency: 48, taskEvaluations: 24 } as Problem, 2, () => clock);
    await sizer.timed(12, async () => void (clock += 100));
    assert.equal(sizer.size(), 12);
  });

  it("cheap applies through the engine: one pair, then several per call", async () => {
    const perCall = await streamRows(400, 0);
    assert.equal(perCall[0], 1, "the first chunk times one pair");
    assert.equal(perCall.reduce((a, b) => a + b, 0), 400);
    assert.ok(perCall.length < 400 / 2, `${perCall.length} calls for 400 pairs`);
    assert.ok(Math.max(...perCall) <= 64, "at most 64 pairs a call");
  });

  it("an apply of a millisecond: one pair per call", async () => {
    const perCall = await streamRows(12, 1);
    assert.deepEqual(perCall, Array(12).fill(1));
  });
});
