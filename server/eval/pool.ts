/**
 * Evaluation in worker threads (piscina). The pool lives as long as the server; each request is a
 * job whose base inputs are shared with the workers once (SharedArrayBuffer), so a task carries only
 * the perturbation. Cancelling a request removes its queued tasks; piscina stops a running one by
 * ending its worker, which is then replaced.
 */
import { randomUUID } from "node:crypto";
import * as path from "node:path";
import { Piscina } from "piscina";
import { Code, TesseractError } from "../errors";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";
import { shareTree } from "./shared-tree";
import type { WorkerResult, WorkerTask } from "./worker-task";

export class WorkerPool {
  private readonly piscina: Piscina;

  constructor(
    /** Bundled name or module path, loaded by each worker. */
    readonly tesseract: string,
    readonly threads: number,
  ) {
    this.piscina = new Piscina({ filename: path.join(__dirname, "worker.js"), minThreads: threads, maxThreads: threads });
  }

  run(task: WorkerTask, signal?: AbortSignal): Promise<WorkerResult> {
    return this.piscina.run(task, { signal });
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
    const result = await this.pool.run({ ...this.task, perturbation }, this.job.signal);
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
