/**
 * A worker thread of the pool (piscina). It loads the Tesseract module itself, keeps per job the
 * revived inputs with a private copy of each perturbed leaf, and evaluates with the same inline
 * evaluator as the main thread (perturb-and-restore of that private copy).
 */
import ndarray from "ndarray";
import { Code, isTesseractError } from "../errors";
import { OutputSelector } from "../fd/outputs";
import { inputLeaf } from "../fd/problem";
import { loadTesseract } from "../loader";
import type { TesseractRuntime } from "../runtime";
import { withLeaf } from "../schema/paths";
import { InlineEvaluator } from "./inline";
import { reviveTree } from "./shared-tree";
import type { WorkerResult, WorkerTask } from "./worker-task";

const runtimes = new Map<string, TesseractRuntime>();
/** Recent jobs, oldest first; a worker serves few jobs at a time. */
const jobs = new Map<string, InlineEvaluator>();
const MAX_JOBS = 8;

function prepare(task: WorkerTask): InlineEvaluator {
  let runtime = runtimes.get(task.tesseract);
  if (!runtime) runtimes.set(task.tesseract, (runtime = loadTesseract(task.tesseract)));
  let inputs = reviveTree(task.inputs) as Record<string, unknown>;
  const resolved = runtime.schema.inputs.resolveDifferentiable(inputs, task.inputPaths, "jac_inputs", "input");
  // The shared arrays are read-only: the leaves this worker perturbs get private copies.
  for (const leaf of resolved) {
    leaf.array = ndarray(leaf.array.data.slice(), leaf.array.shape.slice()) as typeof leaf.array;
    inputs = withLeaf(inputs, leaf.segments, leaf.array);
  }
  const leaves = resolved.map((leaf) => inputLeaf(leaf, "jac_inputs"));
  const selector = new OutputSelector(runtime.schema.outputs, task.outputPaths, task.outputsField);
  const apply = runtime.definition.apply;
  return new InlineEvaluator((i) => apply(i), inputs, leaves, selector);
}

export default async function evaluate(task: WorkerTask): Promise<WorkerResult> {
  try {
    let evaluator = jobs.get(task.job);
    if (!evaluator) {
      evaluator = prepare(task);
      jobs.set(task.job, evaluator);
      if (jobs.size > MAX_JOBS) jobs.delete(jobs.keys().next().value!);
    }
    const values = await evaluator.evaluate(task.perturbation);
    return { values, outputs: evaluator.outputs! };
  } catch (e) {
    if (isTesseractError(e)) return { error: { code: e.code, message: e.message } };
    return { error: { code: Code.UNKNOWN, message: e instanceof Error ? e.message : String(e) } };
  }
}

