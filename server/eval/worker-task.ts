/** What the main thread sends a worker for one evaluation, and what comes back. */
import type { OutputInfo, Perturbation } from "./evaluator";

export interface WorkerTask {
  /** A bundled name or module path: the worker loads the Tesseract itself (once). */
  tesseract: string;
  /** Identifies the request; a worker prepares each job's inputs once. */
  job: string;
  /** The base inputs, arrays in shared memory (shared-tree.ts). */
  inputs: unknown;
  inputPaths: string[];
  outputPaths: string[];
  outputsField: string;
  perturbation: Perturbation;
}

export type WorkerResult =
  | { values: Float64Array[]; outputs: OutputInfo[] }
  | { error: { code: number; message: string } };
