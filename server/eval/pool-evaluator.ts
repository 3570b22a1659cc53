/**
 * A gradient job's evaluations in the worker pool, in batches: the perturbations the engine asks for
 * at once go to a worker in one message and come back in one buffer, so a message's cost (tens of
 * microseconds) is shared by a batch and the pool pays off even when apply takes microseconds.
 * Central pairs (`differences`) travel as pairs: both evaluations in one worker, which sends back
 * only f(x+) - f(x-), and a whole chunk of pairs is one call with one promise, so the main thread's
 * share per evaluation stays around a microsecond.
 *
 * The batch size follows measured costs: a batch is made long enough that the pool's cost per task
 * (measured by WorkerPool.calibrate) is at most 1/OVERHEAD_SHARE of the time the worker spends on
 * it (measured per batch), and small enough that its results stay under MAX_BATCH_BYTES. The job's
 * base inputs are shared with the workers once (SharedArrayBuffer), so a batch carries only its
 * perturbations.
 */
import { randomUUID } from "node:crypto";
import { Code, TesseractError } from "../../common/errors";
import { FailedPair, outputSizes, outputStride, splitFlat, type ElementPairs, type Evaluator, type OutputInfo, type Perturbation } from "./evaluator";
import { checkSameOutputs } from "./outputs";
import { missingOutput } from "../schema/schema";
import { concatPairs, pairCount } from "./element-pairs";
import { leaseResults } from "./result-lease";
import type { WorkerPool } from "./pool";
import { shareTree } from "./shared-tree";
import { packElementPairs, packPerturbations, type BatchResult, type BatchTask } from "./worker-task";

/** A batch's work is at least this many times the pool's cost per task. */
const OVERHEAD_SHARE = 10;
export const MAX_BATCH = 256;
/** Results of one batch (FP64 outputs of every evaluation in it) stay under this. */
const MAX_BATCH_BYTES = 4 << 20;
/** A job's first batches hold at most this many evaluations, until it has measured its own costs. */
const FIRST_BATCH_LIMIT = 32;
/** Batches per thread in flight: one running, one queued, so a worker never waits for the next. */
const BATCHES_PER_THREAD = 2;
/**
 * Results of a job's evaluations in flight stay under this however many threads the pool has: with
 * large outputs fewer batches are out at once (a 185 KB output: about 180 evaluations, where 16
 * threads would otherwise hold 700 and the main thread more rows than it can stream).
 */
export const MAX_IN_FLIGHT_BYTES = 32 << 20;
/**
 * A batch predicted to take at most this long is sent unstoppable (pool.ts): a cancel waits for it
 * (and for the one queued behind it) rather than ending its worker, for a second at most
 * (UNSTOPPABLE_GRACE_MS: a prediction an apply that hangs on some inputs proves wrong).
 */
const SHORT_BATCH_MS = 20;

export interface PoolJob {
  inputs: Record<string, unknown>;
  inputPaths: string[];
  outputPaths: readonly string[];
  outputsField: string;
  signal?: AbortSignal;
  /** Threads the job keeps busy (default: all the pool's). */
  threads?: number;
}

/** What the engine asked for in one call: evaluations, or pairs to subtract; answered together. */
interface Pending {
  /** Evaluations (kind "single"), or pairs (kind "pairs"). */
  perturbations?: Perturbation[];
  pairs?: ElementPairs;
  /** Items: evaluations or pairs. */
  items: number;
  /** Its items' values, flat (item k at k × stride): a view of the batch's buffer. */
  resolve(values: Float64Array): void;
  reject(error: unknown): void;
}

export class PoolEvaluator implements Evaluator {
  calls = 0;
  outputs: OutputInfo[] | undefined;
  /** Each output's number of values, once the outputs are known. */
  private sizes?: number[];
  private readonly task: Omit<BatchTask, "perturbations" | "pairs">;
  /** Waiting evaluations and pairs, each kind sent in batches of its own. */
  private readonly pending = { single: [] as Pending[], pairs: [] as Pending[] };
  /** Evaluations waiting, per kind. */
  private readonly waiting = { single: 0, pairs: 0 };
  private flushScheduled = false;
  /**
   * Evaluations per batch: to start, what the pool's previous job ended with (at most
   * FIRST_BATCH_LIMIT, since this job's apply may cost more) or 1; then from this job's measured costs.
   */
  private batchSize: number;
  /** Milliseconds one evaluation takes in a worker (exponential average over batches). */
  private evaluationMs?: number;
  /** The request's cancel, as every batch listens for it. */
  private readonly signal?: AbortSignal;
  /** Threads the job keeps busy. */
  private readonly threads: number;

  constructor(
    private readonly pool: WorkerPool,
    job: PoolJob,
  ) {
    // Every batch in flight listens for the job's signal (backends.ts makes it the job's own).
    this.signal = job.signal;
    this.threads = Math.min(pool.threads, job.threads ?? pool.threads);
    this.batchSize = Math.min(FIRST_BATCH_LIMIT, pool.lastBatchSize ?? 1);
    // Calls end by aborting their signal (calls.ts): the workers then let go of the job (worker.ts).
    const ended = new Int32Array(new SharedArrayBuffer(4));
    this.signal?.addEventListener("abort", () => Atomics.store(ended, 0, 1), { once: true });
    this.task = {
      tesseract: pool.tesseract,
      job: randomUUID(),
      inputs: shareTree(job.inputs),
      inputPaths: job.inputPaths,
      outputPaths: [...job.outputPaths],
      outputsField: job.outputsField,
      ended,
    };
  }

  /**
   * Enough evaluations in flight for each of the job's threads to have a batch running and one waiting, as far as
   * their results fit in MAX_IN_FLIGHT_BYTES (output sizes as the pool's last job measured them
   * until this one's are known); always at least one batch.
   */
  get concurrency(): number {
    const everyThread = BATCHES_PER_THREAD * this.threads * this.batchSize;
    const outputBytes = this.outputs ? 8 * this.outputSize() : (this.pool.lastOutputBytes ?? 0);
    return outputBytes > 0 ? Math.max(this.batchSize, Math.min(everyThread, Math.floor(MAX_IN_FLIGHT_BYTES / outputBytes))) : everyThread;
  }

  get taskEvaluations(): number {
    return this.batchSize;
  }

  /** Measured milliseconds per evaluation in a worker, once a batch has come back. */
  get measuredEvaluationMs(): number | undefined {
    return this.evaluationMs;
  }

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    this.calls++;
    const values = await this.enqueue("single", { perturbations: [perturbation], items: 1 });
    return splitFlat(values, (this.sizes ??= outputSizes(this.outputs!)), 1)[0];
  }

  /** Each pair's two evaluations in one worker, which sends back only their difference. */
  differences(pairs: ElementPairs): Promise<Float64Array> {
    const items = pairCount(pairs);
    this.calls += 2 * items;
    return this.enqueue("pairs", { pairs, items });
  }

  private enqueue(kind: "single" | "pairs", what: Omit<Pending, "resolve" | "reject">): Promise<Float64Array> {
    return new Promise((resolve, reject) => {
      // One shape for every call (a spread of `what` would not be): this runs per evaluation.
      this.pending[kind].push({ perturbations: what.perturbations, pairs: what.pairs, items: what.items, resolve, reject });
      this.waiting[kind] += evaluationsOf(kind, what.items);
      // A full batch goes at once; the rest waits for what else the engine asks for in this turn.
      if (this.waiting[kind] >= this.batchSize) this.flush(kind);
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush("single");
          this.flush("pairs");
        });
      }
    });
  }

  /** Sends what waits in batches of about batchSize evaluations (a call's evaluations stay together). */
  private flush(kind: "single" | "pairs"): void {
    const queue = this.pending[kind];
    while (queue.length > 0) {
      let evaluations = 0;
      let count = 0;
      while (count < queue.length && (count === 0 || evaluations + evaluationsOf(kind, queue[count].items) <= this.batchSize)) evaluations += evaluationsOf(kind, queue[count++].items);
      this.waiting[kind] -= evaluations;
      void this.send(queue.splice(0, count), kind, evaluations);
    }
  }

  private async send(batch: Pending[], kind: "single" | "pairs", evaluations: number): Promise<void> {
    try {
      // One shape for every task (spreading the job's fields into it made new object shapes each time).
      const { tesseract, job, inputs, inputPaths, outputPaths, outputsField, ended } = this.task;
      const pairs = kind === "pairs" ? packElementPairs(concatPairs(batch.map((p) => p.pairs!))) : undefined;
      const perturbations = kind === "single" ? packPerturbations(batch.flatMap((p) => p.perturbations!)) : undefined;
      // A batch measured to be short need not be stoppable: it may then wait at a busy worker.
      const short = this.evaluationMs !== undefined && this.evaluationMs * evaluations <= SHORT_BATCH_MS;
      const result = await this.pool.evaluateBatch({ tesseract, job, inputs, inputPaths, outputPaths, outputsField, perturbations, pairs, ended }, this.signal, !short);
      if (result.outputs) this.checkOutputs(result.outputs);
      this.learn(result.busyMs / evaluations);
      const failed = result.failed.length ? new Map(result.failed.map((f) => [f.index, f])) : undefined;
      const size = this.outputSize();
      // An item (a pair's differences, or an evaluation) may become a row, which the stream releases once written (result-lease.ts).
      leaseResults(result.values, size, result.finite === true);
      let item = 0;
      for (const p of batch) {
        const failure = failed && firstFailure(failed, item, p.items);
        if (failure) {
          const { code, message, missing } = failure.error;
          const error = missing ? missingOutput(new TesseractError(code, message), new TesseractError(missing.code, missing.message)) : new TesseractError(code, message);
          p.reject(kind === "pairs" ? new FailedPair(failure.index - item, failure.side ?? 0, error) : error);
        } else {
          // A view of the batch's buffer, one region per call: the engine may write over it.
          p.resolve(batch.length === 1 ? result.values : result.values.subarray(item * size, (item + p.items) * size));
        }
        item += p.items;
      }
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
  }

  /** FP64 values per evaluation, all outputs together (0 while unknown). */
  private outputSize(): number {
    return this.outputs ? outputStride(this.outputs) : 0;
  }

  /** Each worker checks its own results; across workers, the outputs must agree too. */
  private checkOutputs(outputs: OutputInfo[]): void {
    if (this.outputs) checkSameOutputs(outputs, this.outputs, Code.INTERNAL, "at one evaluation", "another");
    else this.outputs = outputs;
  }

  /** The batch size from what an evaluation and a task cost (see the module comment). */
  private learn(evaluationMs: number): void {
    this.evaluationMs = this.evaluationMs === undefined ? evaluationMs : 0.7 * this.evaluationMs + 0.3 * evaluationMs;
    const byCost = Math.ceil((OVERHEAD_SHARE * this.pool.taskOverheadMs) / Math.max(this.evaluationMs, 1e-6));
    const outputBytes = 8 * this.outputSize();
    const byBytes = Math.floor(MAX_BATCH_BYTES / Math.max(outputBytes, 1));
    this.batchSize = Math.max(1, Math.min(MAX_BATCH, byCost, byBytes));
    this.pool.lastBatchSize = this.batchSize;
    this.pool.lastOutputBytes = outputBytes;
  }
}

/** Evaluations of `items` items of a kind. */
const evaluationsOf = (kind: "single" | "pairs", items: number) => (kind === "pairs" ? 2 * items : items);

/** The first failure among items [from, from + count) of a batch. */
function firstFailure(failed: Map<number, BatchResult["failed"][number]>, from: number, count: number): BatchResult["failed"][number] | undefined {
  for (let k = from; k < from + count; k++) {
    const failure = failed.get(k);
    if (failure) return failure;
  }
  return undefined;
}
