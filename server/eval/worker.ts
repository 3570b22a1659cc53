/**
 * A worker thread of the pool (piscina). It loads the Tesseract module itself, keeps per job the
 * revived inputs with a private copy of each perturbed leaf, and evaluates with the same inline
 * evaluator as the main thread (perturb-and-restore of that private copy). It also serves whole
 * Apply calls (`applyMessage`), so that a hanging or crashing apply never touches the main thread.
 */
import { parentPort } from "node:worker_threads";
import ndarray from "ndarray";
import { Code, isTesseractError } from "../../common/errors";
import { OutputSelector } from "./outputs";
import { inputLeaf } from "./input-leaf";
// The one import that goes up the floors: a worker thread loads the runtime it evaluates.
import { loadTesseract } from "../loader";
import { withLeaf } from "../schema/paths";
import { InlineEvaluator } from "./inline";
import { reviveTree } from "./shared-tree";
import type { ApplyResult, ApplyTask, TaskError, WorkerResult, WorkerTask } from "./worker-task";

type Runtime = ReturnType<typeof loadTesseract>;

const runtimes = new Map<string, Runtime>();

function runtimeOf(tesseract: string): Runtime {
  let runtime = runtimes.get(tesseract);
  if (!runtime) runtimes.set(tesseract, (runtime = loadTesseract(tesseract)));
  return runtime;
}

/** Under a per-evaluation timeout, the main thread starts the clock when apply is about to run (loading excluded). */
function reportStart(task: { startedId?: number }): void {
  if (task.startedId) parentPort?.postMessage({ started: task.startedId });
}

/** Errors cross the thread boundary as code and message. */
function taskError(e: unknown): TaskError {
  if (isTesseractError(e)) return { error: { code: e.code, message: e.message } };
  return { error: { code: Code.UNKNOWN, message: e instanceof Error ? e.message : String(e) } };
}
/** Recent jobs, oldest first; a worker serves few jobs at a time. */
const jobs = new Map<string, InlineEvaluator>();
const MAX_JOBS = 8;

function prepare(task: WorkerTask): InlineEvaluator {
  const runtime = runtimeOf(task.tesseract);
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
    reportStart(task);
    const values = await evaluator.evaluate(task.perturbation);
    return { values, outputs: evaluator.outputs! };
  } catch (e) {
    return taskError(e);
  }
}

export async function applyMessage(task: ApplyTask): Promise<ApplyResult> {
  try {
    const runtime = runtimeOf(task.tesseract);
    reportStart(task);
    const outputs = await runtime.apply(runtime.decodeInputs(task.inputs, "inputs", task.limits));
    return { outputs: runtime.encodeOutputs(outputs) };
  } catch (e) {
    return taskError(e);
  }
}

