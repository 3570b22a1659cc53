/**
 * Evaluation in worker threads (piscina). The pool lives as long as the server; each request is a
 * job whose base inputs are shared with the workers once (SharedArrayBuffer), so a task carries only
 * the perturbation. Cancelling a request removes its queued tasks; piscina stops a running one by
 * ending its worker, which is then replaced. The same happens to a task that overruns the
 * per-evaluation timeout, and a worker that dies (process.exit, an uncaught error, out of memory)
 * fails only its own task: piscina starts a new one in its place.
 */
import { randomUUID } from "node:crypto";
import * as path from "node:path";
import { Piscina } from "piscina";
import { Code, TesseractError } from "../../common/errors";
import type { AnyMessage } from "../schema/schema";
import type { DecodeLimits } from "../../common/tensor-codec";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";
import { shareTree } from "./shared-tree";
import { evalTimeoutError } from "./timeout";
import type { ApplyResult, ApplyTask, WorkerResult, WorkerTask } from "./worker-task";

export class WorkerPool {
  readonly piscina: Piscina;
  private lastTaskId = 0;
  /** Tasks under the timeout, by id: what to do when a worker says it started one. */
  private readonly onStart = new Map<number, () => void>();

  constructor(
    /** Bundled name or module path, loaded by each worker. */
    readonly tesseract: string,
    readonly threads: number,
    /** Per-evaluation timeout in ms (0: none). */
    readonly evalTimeoutMs = 0,
  ) {
    this.piscina = new Piscina({ filename: path.join(__dirname, "worker.js"), minThreads: threads, maxThreads: threads });
    // A worker that dies between tasks (an error thrown from a timer apply left behind) is replaced
    // like any other; piscina reports it as an 'error' event, which must not end the server.
    this.piscina.on("error", () => undefined);
    this.piscina.on("message", (message: { started?: number }) => {
      if (message?.started) this.onStart.get(message.started)?.();
    });
  }

  /** Worker threads alive now (a dead one is gone at once; its replacement counts once started). */
  get liveThreads(): number {
    return this.piscina.threads.length;
  }

  /** One evaluation of a gradient job. */
  evaluate(task: WorkerTask, signal?: AbortSignal): Promise<WorkerResult> {
    return this.run("default", task, signal);
  }

  /** A whole Apply call, wire to wire: the worker decodes, validates, applies and encodes. */
  async applyMessage(inputs: AnyMessage | null | undefined, limits: DecodeLimits, signal?: AbortSignal): Promise<AnyMessage> {
    const result: ApplyResult = await this.run("applyMessage", { tesseract: this.tesseract, inputs, limits } satisfies ApplyTask, signal);
    if ("error" in result) throw new TesseractError(result.error.code, result.error.message);
    return result.outputs;
  }

  /**
   * Runs a task; a timeout, a dead worker or a cancel becomes a status naming what happened. The
   * timeout counts from the moment a worker starts the task (it posts `started`), not from the queue.
   */
  private async run<T>(name: string, task: WorkerTask | ApplyTask, signal?: AbortSignal): Promise<T> {
    const stop = new AbortController();
    const cancel = () => stop.abort();
    signal?.addEventListener("abort", cancel, { once: true });
    const startedId = this.evalTimeoutMs > 0 ? ++this.lastTaskId : 0;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    if (startedId) {
      this.onStart.set(startedId, () => {
        timer = setTimeout(() => {
          timedOut = true;
          stop.abort();
        }, this.evalTimeoutMs);
      });
    }
    try {
      return await this.piscina.run({ ...task, startedId }, { name, signal: stop.signal });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if (timedOut) throw evalTimeoutError(this.evalTimeoutMs, "; its worker thread was stopped and replaced");
      const reason = e instanceof Error ? e.message : String(e);
      throw new TesseractError(Code.UNKNOWN, `the worker thread running apply died (${reason}); it was replaced`, { cause: e });
    } finally {
      clearTimeout(timer);
      this.onStart.delete(startedId);
      signal?.removeEventListener("abort", cancel);
    }
  }

  close(): Promise<void> {
    return this.piscina.destroy();
  }
}

export interface PoolJob {
  inputs: Record<string, unknown>;
  inputPaths: string[];
  outputPaths: readonly string[];
  outputsField: string;
  signal?: AbortSignal;
}

export class PoolEvaluator implements Evaluator {
  calls = 0;
  outputs: OutputInfo[] | undefined;
  private readonly task: Omit<WorkerTask, "perturbation">;

  constructor(
    private readonly pool: WorkerPool,
    private readonly job: PoolJob,
  ) {
    this.task = {
      tesseract: pool.tesseract,
      job: randomUUID(),
      inputs: shareTree(job.inputs),
      inputPaths: job.inputPaths,
      outputPaths: [...job.outputPaths],
      outputsField: job.outputsField,
    };
  }

  /** Two tasks per thread keep every worker busy while results travel back. */
  get concurrency(): number {
    return 2 * this.pool.threads;
  }

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    this.calls++;
    const result = await this.pool.evaluate({ ...this.task, perturbation }, this.job.signal);
    if ("error" in result) throw new TesseractError(result.error.code, result.error.message);
    this.outputs ??= result.outputs;
    // Each worker checks its own results; across workers, the shapes must agree too.
    result.outputs.forEach((out, o) => {
      const first = this.outputs![o];
      if (out.shape.join() !== first.shape.join()) {
        throw new TesseractError(Code.INTERNAL, `apply returned output ${out.path} with shape [${out.shape.join(", ")}] in one worker, [${first.shape.join(", ")}] in another`);
      }
    });
    return result.values;
  }
}
