/**
 * A worker thread of the pool (piscina). It loads the Tesseract module itself, keeps per job the
 * revived inputs with a private copy of each perturbed leaf, and evaluates batches of
 * perturbations with the same inline evaluator as the main thread (perturb-and-restore of that
 * private copy), returning a batch's outputs in one transferred buffer. It also serves whole
 * Apply calls (`applyMessage`), so that a hanging or crashing apply never touches the main thread.
 */
import { parentPort, threadId } from "node:worker_threads";
import { Piscina } from "piscina";
import ndarray from "ndarray";
import { Code, isTesseractError, thrownMessage } from "../../common/errors";
import { OutputSelector } from "./outputs";
import { omittedOutputError } from "../schema/schema";
import { inputLeaf } from "./input-leaf";
// The imports that go up the floors: a worker thread loads the Tesseract it evaluates (without the
// runtime's endpoints, which it does not serve).
import { findTesseract } from "../find-tesseract";
import { LoadedTesseract } from "../loaded-tesseract";
import { floatingPaths, getAtPath, parsePath, withLeaf } from "../../common/paths";
import { InputGuard } from "./input-guard";
import { InlineEvaluator } from "./inline";
import { ElementPairsBuilder, pairCount } from "./element-pairs";
import { collectEvery, fullCollection, minorCollection, OutputGarbage } from "./output-garbage";
import { reviveTree, shareTree } from "./shared-tree";
import { type ApplyResult, type ApplyTask, type BatchResult, type BatchTask, type StartUpMessage, type TaskError, packElementPairs, unpackElementPairs, unpackPerturbations } from "./worker-task";

const runtimes = new Map<string, LoadedTesseract>();

function runtimeOf(tesseract: string): LoadedTesseract {
  let runtime = runtimes.get(tesseract);
  if (!runtime) {
    const { definition, moduleDir, source } = findTesseract(tesseract);
    runtimes.set(tesseract, (runtime = new LoadedTesseract(definition, moduleDir, source)));
  }
  return runtime;
}

/** Under a per-evaluation timeout, the main thread starts the clock when an Apply call is about to run (loading excluded). */
function reportStart(task: { startedId?: number }): void {
  if (task.startedId) parentPort?.postMessage({ started: task.startedId });
}

/** Errors cross the thread boundary as code and message. */
function taskError(e: unknown): TaskError {
  if (isTesseractError(e)) {
    const missing = omittedOutputError(e);
    return { error: { code: e.code, message: e.message, ...(missing && { missing: { code: missing.code, message: missing.message } }) } };
  }
  return { error: { code: Code.UNKNOWN, message: thrownMessage(e) } };
}
/** A job as a worker holds it: its inputs (with private copies of the perturbed leaves) and outputs. */
interface Job {
  evaluator: InlineEvaluator;
  selector: OutputSelector;
  /** The job's inputs as prepared: a batch whose apply wrote to them fails (input-guard.ts). */
  guard: InputGuard;
  /** The job's end, set by the main thread (worker-task.ts). */
  ended?: Int32Array;
  /** Bytes the job holds: its shared inputs and the guard's copy of them. */
  bytes: number;
}

/** What the pool gives each thread at its start (pool.ts): its thread count, the Tesseract, its warm-up. */
interface ThreadData {
  threads?: number;
  tesseract?: string;
  warm?: { evaluations: number; budgetMs: number };
}
const threadData = (Piscina.workerData ?? {}) as ThreadData;

/** This thread's dead output buffers, collected as evaluations make them (output-garbage.ts). */
const outputGarbage = new OutputGarbage(minorCollection(), collectEvery(threadData.threads ?? 1));

/** Recent jobs, oldest first; a worker serves few jobs at a time. */
const jobs = new Map<string, Job>();
const MAX_JOBS = 8;

function prepare(task: BatchTask): Job {
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
  const guard = new InputGuard(inputs);
  return { evaluator: new InlineEvaluator((i) => apply(i), inputs, leaves, selector), selector, guard, ended: task.ended, bytes: 2 * guard.bytes };
}

const collectAll = fullCollection();

/** Bytes of ended jobs let go since the last full collection, and how many make one worth its milliseconds. */
let droppedBytes = 0;
const COLLECT_DROPPED_BYTES = 16 << 20;

/**
 * Lets go of the kept jobs whose requests have ended (other than `current`): in a busy pool the
 * idle tidy never comes, and each kept job held its inputs twice (shared, and the guard's copy).
 * Long-lived by then, they are freed by a full collection only.
 */
function dropEnded(current: string): void {
  for (const [id, job] of jobs) {
    if (id === current || !job.ended || Atomics.load(job.ended, 0) === 0) continue;
    jobs.delete(id);
    droppedBytes += job.bytes;
  }
  if (droppedBytes >= COLLECT_DROPPED_BYTES) {
    droppedBytes = 0;
    collectAll?.();
  }
}

function jobOf(task: BatchTask): Job {
  dropEnded(task.job);
  let job = jobs.get(task.job);
  if (!job) {
    job = prepare(task);
    jobs.set(task.job, job);
    if (jobs.size > MAX_JOBS) jobs.delete(jobs.keys().next().value!);
  }
  return job;
}

/**
 * A batch's evaluations, one after the other, its values in one buffer moved (not copied) to the
 * main thread (InlineEvaluator.batch); a failure is recorded and the rest still run.
 */
async function evaluateBatch(task: BatchTask): Promise<BatchResult> {
  if (task.startedOn) Atomics.store(task.startedOn, 0, threadId);
  const started = performance.now();
  const perturbations = task.perturbations && unpackPerturbations(task.perturbations);
  const pairs = task.pairs && unpackElementPairs(task.pairs);
  const items = pairs ? pairCount(pairs) : perturbations!.length;
  let job: Job;
  try {
    job = jobOf(task);
  } catch (e) {
    // The job cannot be prepared here (the module fails to load, say): every evaluation fails alike.
    return { values: new Float64Array(0), outputs: undefined, failed: Array.from({ length: items }, (_, index) => ({ index, ...taskError(e) })), busyMs: 0 };
  }
  const { progress, progressEpoch } = task;
  // The start first, then the index: the main thread never pairs a new index with an old start.
  const onStart = progress
    ? (e: number) => {
        Atomics.store(progress, 1, Date.now() - progressEpoch!);
        Atomics.store(progress, 0, e);
      }
    : undefined;
  const { evaluator } = job;
  const { values, failed, finite } = await (pairs ? evaluator.pairs(pairs, { onStart }) : evaluator.evaluations(perturbations!, { onStart }));
  try {
    job.guard.check();
  } catch (e) {
    // Every evaluation of the batch may have been at other inputs; the job is not to be used again.
    jobs.delete(task.job);
    return { values: new Float64Array(0), outputs: undefined, failed: Array.from({ length: items }, (_, index) => ({ index, ...taskError(e) })), busyMs: 0 };
  }
  // A pair's two evaluations made twice the bytes of the difference it returns.
  outputGarbage.made(values.byteLength * (pairs ? 2 : 1));
  const result: BatchResult = { values, outputs: job.selector.outputs, failed: failed.map(({ error, ...at }) => ({ ...at, ...taskError(error) })), busyMs: performance.now() - started, finite };
  // The values' buffer is moved to the main thread, not copied.
  return Piscina.move({ [Piscina.transferableSymbol]: values.buffer, [Piscina.valueSymbol]: result } as never) as unknown as BatchResult;
}

export async function applyMessage(task: ApplyTask): Promise<ApplyResult> {
  try {
    const runtime = runtimeOf(task.tesseract);
    reportStart(task);
    const inputs = runtime.decodeInputs(task.inputs, "inputs", task.limits);
    const started = performance.now();
    const outputs = await runtime.apply(inputs);
    return { outputs: runtime.encodeOutputs(outputs), applyMs: performance.now() - started };
  } catch (e) {
    return taskError(e);
  }
}

/**
 * Warms this thread's evaluation path (at its start, once the Tesseract is loaded): central pairs over the
 * Tesseract's example inputs, through the batch loop real jobs take, until `evaluations` or
 * `budgetMs`. V8 optimises that path only once it has run thousands of times; a pool taken before
 * would run its first jobs several times slower than inline. Without example inputs, nothing.
 */
export async function warm(task: { tesseract: string; evaluations: number; budgetMs: number }): Promise<number> {
  try {
    return await warmOn(task);
  } catch {
    return 0; // an example apply fails: the first real jobs say why, the pool still starts
  }
}

async function warmOn(task: { tesseract: string; evaluations: number; budgetMs: number }): Promise<number> {
  const deadline = performance.now() + task.budgetMs;
  const runtime = runtimeOf(task.tesseract);
  const example = runtime.definition.exampleInputs?.() as Record<string, unknown> | undefined;
  if (!example) return 0;
  const outputs = await runtime.apply(example);
  const inputPaths = floatingPaths(runtime.schema.inputs.differentiablePaths(example), example);
  const outputPaths = floatingPaths(runtime.schema.outputs.differentiablePaths(outputs), outputs);
  if (inputPaths.length === 0 || outputPaths.length === 0) return 0;
  // Pairs of tiny steps of the first leaf's elements, as a central Jacobian takes them.
  const data = (getAtPath(example, parsePath(inputPaths[0])) as { data: ArrayLike<number> }).data;
  const pairsOf = (count: number) => {
    const builder = new ElementPairsBuilder(count, count);
    for (let k = 0; k < count; k++) {
      const index = k % data.length;
      builder.element(0, index, data[index] * (1 + 1e-7), data[index] * (1 - 1e-7));
      builder.endPair();
    }
    return builder.build();
  };
  const inputs = shareTree(example);
  const batch = (pairs: number): BatchTask => ({
    tesseract: task.tesseract,
    job: `warm-up ${threadId}`,
    inputs,
    inputPaths,
    outputPaths,
    outputsField: "jac_outputs",
    pairs: packElementPairs(pairsOf(pairs)),
  });
  // Batches doubling up to WARM_BATCH. An apply still costly once compiled (after the first
  // rounds) is not worth warming for: compilation is a small part of its time.
  let done = 0;
  for (let size = 2, round = 0; done < task.evaluations && performance.now() < deadline; round++, size = Math.min(WARM_BATCH, 2 * size)) {
    const { busyMs } = await evaluateBatch(batch(size / 2));
    done += size;
    if (round >= 2 && busyMs / size > WARM_WORTHWHILE_MS) break;
  }
  jobs.delete(`warm-up ${threadId}`);
  return done;
}

/** Most evaluations per batch of the warm-up, and the time per evaluation above which it stops. */
const WARM_BATCH = 256;
const WARM_WORTHWHILE_MS = 0.5;


/**
 * The pool has been idle a while (pool.ts, IDLE_TIDY_MS): the jobs kept for their next batches are
 * over, most likely; their inputs (shared with the main thread, which frees them only once no thread
 * holds them) and the dead outputs of their batches are let go. A job that goes on prepares itself again.
 */
export function tidy(): void {
  jobs.clear();
  droppedBytes = 0;
  collectAll?.();
}

/** An empty task: the pool times a round trip with it (pool.ts, calibrate). */
export function ping(): null {
  return null;
}

/**
 * The thread loads the Tesseract and warms itself before it takes a task: piscina awaits the default
 * export (a promise here) before it counts a thread it starts for queued work as ready, so a thread
 * started while jobs run takes none of their batches cold. A Tesseract that cannot be loaded is
 * named by each task (runtimeOf throws there again). The pool is told each stage (pool.ts,
 * `startingThreads`): a thread that dies in one (a module that calls process.exit as it loads) has
 * no task to fail, and piscina starts no thread after it, so every later call waited for good.
 */
async function startUp({ tesseract, warm: budget }: ThreadData): Promise<void> {
  if (!tesseract) return;
  const stage = (startUp: StartUpMessage["startUp"]) => parentPort?.postMessage({ startUp, thread: threadId } satisfies StartUpMessage);
  stage("loading");
  try {
    runtimeOf(tesseract);
  } catch (e) {
    // The main thread loaded it, this thread cannot (a native addon that is not context-aware: "Module
    // did not self-register"; code that needs the main thread): no thread can run it (pool.ts).
    parentPort?.postMessage({ startUp: "unloadable", thread: threadId, why: thrownMessage(e) } satisfies StartUpMessage);
    return;
  }
  try {
    if (budget) {
      stage("warming");
      await warm({ tesseract, ...budget });
    }
  } catch {
    // The example inputs' failure is the Tesseract's everywhere: each request names its own.
  } finally {
    stage("done");
  }
}

export default startUp(threadData).then(() => evaluateBatch);
