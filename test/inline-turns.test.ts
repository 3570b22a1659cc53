/**
 * Inline evaluation in the server's event loop (InlineEvaluator.batch): a batch of slow synchronous
 * applies gives I/O a turn between its evaluations and stops at a cancel, where it held the event
 * loop for the whole batch (health checks answered once every six 500 ms evaluations, and two more
 * started after a cancel); a worker thread's batch, with nothing else to serve, runs straight through.
 * The applies take 2 ms of their thread each, twice the hold after which I/O gets its turn.
 */
import { strict as assert } from "node:assert";
import ndarray from "ndarray";
import { ElementPairsBuilder } from "../server/eval/element-pairs";
import { InlineEvaluator } from "../server/eval/inline";
import type { InputLeaf } from "../server/eval/input-leaf";
import { OutputSelector } from "../server/eval/outputs";
import { loadTesseract, SparsityMode } from "../index";
import { POLYNOMIAL } from "./helpers";

const APPLY_MS = 2;

/** Central pairs of x's elements (h = 0.5) through an inline evaluator of the polynomial fixture (f_i = x_i³ + y sin x_i), its apply taking APPLY_MS and telling `onApply`. */
function setup(eventLoop: { signal?: AbortSignal } | undefined, onApply: () => void) {
  const runtime = loadTesseract(POLYNOMIAL);
  const x = Float64Array.of(1, 2, 3);
  const tree = { x: ndarray(x, [3]), y: ndarray(Float64Array.of(0), []), params: {}, blocks: [], mode: "" };
  const leaves: InputLeaf[] = [{ path: "x", segments: [{ kind: "field", name: "x" }], shape: [3], size: 3, data: x, fp32: false }];
  const apply = (i: unknown) => {
    onApply();
    for (const end = performance.now() + APPLY_MS; performance.now() < end; );
    return runtime.definition.apply(i as never);
  };
  const inline = new InlineEvaluator(apply, tree, leaves, new OutputSelector(runtime.schema.outputs, ["f"], "outputs"), 0, eventLoop);
  const builder = new ElementPairsBuilder(3, 3);
  for (let j = 0; j < 3; j++) {
    builder.element(0, j, x[j] + 0.5, x[j] - 0.5);
    builder.endPair();
  }
  return { inline, pairs: builder.build() };
}

/** The events of `run` in order: each apply, and each turn the event loop gave to I/O (a setImmediate callback) while it ran. */
async function events(run: (onApply: () => void) => Promise<unknown>): Promise<string> {
  const seen: string[] = [];
  let running = true;
  const tick = () => {
    if (!running) return;
    if (seen.at(-1) !== "turn") seen.push("turn");
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    await run(() => seen.push("apply"));
  } finally {
    running = false;
  }
  return seen.join(" ");
}

describe("inline evaluation in the event loop", () => {
  it("a batch of slow synchronous applies gives I/O a turn between every two, with the same differences", async () => {
    let differences!: Float64Array;
    const seen = await events(async (onApply) => {
      const { inline, pairs } = setup({}, onApply);
      differences = await inline.differences(pairs);
    });
    assert.equal(seen.replace(/^turn /, ""), "apply turn apply turn apply turn apply turn apply turn apply");
    // f(x + 1/2) - f(x - 1/2) at y = 0: 3x² + 1/4 at the perturbed element, 0 elsewhere.
    assert.deepEqual(Array.from(differences), [3.25, 0, 0, 0, 12.25, 0, 0, 0, 27.25]);
  });

  it("a cancel while a batch runs stops it at the next evaluation, with the cancel's reason", async () => {
    const controller = new AbortController();
    let applies = 0;
    const { inline, pairs } = setup({ signal: controller.signal }, () => {
      // The client's cancel arrives while the first evaluation holds the event loop.
      if (++applies === 1) setImmediate(() => controller.abort(new Error("Cancelled on client")));
    });
    await assert.rejects(inline.differences(pairs), /^Error: Cancelled on client$/);
    assert.equal(applies, 1, "evaluations started");
  });

  it("--workers 0: a Jacobian whose applies hold the event loop 30 ms gives other callbacks (a health check's) a turn between every two evaluations", async () => {
    const runtime = loadTesseract(POLYNOMIAL);
    await runtime.useEvaluation({ workers: 0 });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const calls: () => number = require(POLYNOMIAL).calls;
    const before = calls();
    // The fixture's applies made so far, at each turn the event loop gives.
    const atTurns: number[] = [];
    let running = true;
    const tick = () => {
      if (!running) return;
      atTurns.push(calls() - before);
      setImmediate(tick);
    };
    setImmediate(tick);
    const x = [0.5, 1.5, 2.5, 3.5];
    try {
      const { stats } = await runtime.jacobian({ inputs: { x: ndarray(Float64Array.from(x), [4]), y: ndarray(Float64Array.of(0.25), []), params: {}, blocks: [], mode: "busy" }, inputPaths: ["x"], outputPaths: ["f"], options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
      assert.equal(stats.apply_calls, 8);
    } finally {
      running = false;
      await runtime.close();
    }
    const runs = atTurns.slice(1).map((n, k) => n - atTurns[k]);
    assert.equal(Math.max(...runs), 1, `applies between two turns: ${runs.join(" ")}`);
  });

  it("in a worker thread (no event loop to share), a batch runs through without turns", async () => {
    const seen = await events(async (onApply) => {
      const { inline, pairs } = setup(undefined, onApply);
      await inline.differences(pairs);
    });
    assert.equal(seen.replace(/^turn /, ""), "apply apply apply apply apply apply");
  });
});
