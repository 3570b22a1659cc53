/**
 * Warm-up before a server reports SERVING. V8 optimises a function once it has run often enough;
 * until then the engine's per-evaluation paths (perturb, apply, select, the difference rules, rows)
 * run several times slower, so a fresh server's first Jacobian took 3–5× a warm one. The warm-up
 * runs those paths on the Tesseract's own example inputs (the authoring API's `exampleInputs`):
 * the inputs through the wire codec, apply, then central and forward Jacobians, a VJP and a JVP of
 * every differentiable path, round after round, until WARM_UP_EVALUATIONS apply calls or the time
 * budget. Under `--workers auto` the requests decide on the pool as real ones would, except where
 * inline goes first (two cores: they run inline throughout, and only an apply that holds the event
 * loop starts the pool; EvaluationBackends.warmingUp). A pool they start is waited for after their
 * round (its threads load and warm themselves, and get the cores to themselves), and once it is
 * ready, WARM_UP_EVALUATIONS more (within the budget) warm the main thread's side of it. A
 * Tesseract whose example requests never call for the pool starts none.
 *
 * It never fails a start: an error is reported (and logged by the caller) and the server starts as
 * without it. It leaves no trace but warm code: the evaluation counter (metrics) is restored, the
 * evaluation cache emptied and the evaluation costs `auto` measured forgotten (an apply that held the
 * event loop is remembered: it says apply is costly, compiled or not).
 */
import ndarray from "ndarray";
import { Algorithm, SparsityMode } from "./tesseract";
import type { TesseractRuntime } from "./runtime";
import type { NdArray } from "ndarray";
import { elementCount } from "../common/tensor-codec";
import { floatingPaths, getAtPath, parsePath } from "../common/paths";
import { thrownMessage } from "../common/errors";

/** Apply calls after which the engine's hot paths are optimised (each runs thousands of times). */
export const WARM_UP_EVALUATIONS = 40_000;
/** The default bound on the time a warm-up may add to a start. */
export const DEFAULT_WARM_UP_MS = 1000;
/** The engine's share of the budget: its rounds start no new request after it. */
const ENGINE_SHARE = 0.75;

export interface WarmUpReport {
  /** Why there was none (no example inputs, a zero budget). */
  skipped?: string;
  /** What stopped it early; the server starts all the same. */
  error?: string;
  ms: number;
  requests: number;
  evaluations: number;
  /** The example's differentiable floating-point paths (for the transport's warm-up). */
  inputPaths: string[];
  outputPaths: string[];
  /** Evaluations made once a worker pool was ready (for `auto` to take); undefined: none was ready in time. */
  pooledEvaluations?: number;
}

const leafAt = (tree: unknown, path: string) => getAtPath(tree, parsePath(path)) as NdArray;

/** A vector of ones shaped like each path's tensor (a tangent or cotangent). */
function ones(tree: unknown, paths: string[]): Record<string, NdArray<Float64Array>> {
  return Object.fromEntries(paths.map((p) => [p, ndarray(new Float64Array(elementCount(leafAt(tree, p).shape)).fill(1), leafAt(tree, p).shape)]));
}

export async function warmUp(runtime: TesseractRuntime, budgetMs = DEFAULT_WARM_UP_MS): Promise<WarmUpReport> {
  const started = performance.now();
  const report: WarmUpReport = { ms: 0, requests: 0, evaluations: 0, inputPaths: [], outputPaths: [] };
  const example = runtime.definition.exampleInputs;
  if (!example || !(budgetMs > 0)) return { ...report, skipped: example ? "no time budget" : "the Tesseract has no example inputs" };
  const evaluations = runtime.evaluations;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(new Error(`the warm-up's ${budgetMs} ms are up`)), budgetMs);
  runtime.warmingUp = true;
  try {
    // The engine's rounds stop at ENGINE_SHARE of the budget; the transport's warm-up takes the rest.
    await rounds(runtime, example(), stop.signal, report, started + ENGINE_SHARE * budgetMs);
  } catch (e) {
    if (!stop.signal.aborted) report.error = thrownMessage(e);
  } finally {
    clearTimeout(timer);
    runtime.warmingUp = false;
    runtime.evaluations = evaluations;
    runtime.evaluationCache?.clear();
    runtime.forgetMeasurements();
    report.ms = performance.now() - started;
  }
  return report;
}

/** The warm-up's requests, round after round, until enough evaluations or the deadline. */
async function rounds(runtime: TesseractRuntime, example: unknown, signal: AbortSignal, report: WarmUpReport, deadline: number): Promise<void> {
  const { schema } = runtime;
  // Through the wire codec and the Tesseract's validation, as a request's inputs come.
  const inputs = runtime.decodeInputs(schema.inputs.encodeAny(example, "inputs"));
  const { outputs } = await runtime.baseOutputs(inputs, signal);
  runtime.encodeOutputs(outputs);
  const inputPaths = (report.inputPaths = floatingPaths(schema.inputs.differentiablePaths(inputs), inputs));
  const outputPaths = (report.outputPaths = floatingPaths(schema.outputs.differentiablePaths(outputs), outputs));
  if (inputPaths.length === 0 || outputPaths.length === 0) return;
  const request = { inputs, inputPaths, outputPaths, signal };
  const requests = [
    // Grouped (the Tesseract's declared structure, if any) and dense: both paths are hot.
    () => runtime.jacobian({ ...request, options: { algorithm: Algorithm.ALGORITHM_CENTRAL } }),
    () => runtime.jacobian({ ...request, options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } }),
    () => runtime.jacobian({ ...request, options: { algorithm: Algorithm.ALGORITHM_FORWARD } }),
    () => runtime.vjp({ ...request, cotangent: ones(outputs, outputPaths) }),
    () => runtime.jvp({ ...request, tangent: ones(inputs, inputPaths) }),
  ];
  /** Settles when a pool the requests started has started (true: ready, or failed to load), there is none (false), or the budget is up. */
  const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  const poolStarted = () => Promise.race([runtime.poolStarted(), aborted]);
  /** Evaluations made before a pool was ready (undefined until it is). */
  let beforePool: number | undefined;
  let target = WARM_UP_EVALUATIONS;
  while (report.evaluations < target && performance.now() < deadline) {
    for (const run of requests) {
      const { stats } = await run();
      report.requests++;
      report.evaluations += stats.apply_calls;
    }
    // A pool the requests started gets ready before they go on: its threads' start-up would
    // otherwise share the cores with them (on two cores it outlasted the engine's rounds, and the
    // first request served took a cold pool: 2.1-3.2 times a warm call). Once it is ready, they
    // take it, and as many evaluations again warm the main thread's side of it.
    if (beforePool === undefined && (await poolStarted()) && runtime.poolReady()) {
      beforePool = report.evaluations;
      target = report.evaluations + WARM_UP_EVALUATIONS;
    }
  }
  if (beforePool !== undefined) report.pooledEvaluations = report.evaluations - beforePool;
  // A pool still getting ready is waited for (within the budget): its threads' warm-up is not to
  // compete with the first calls for the cores.
  await poolStarted();
}
