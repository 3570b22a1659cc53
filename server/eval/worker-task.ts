/** What the main thread sends a worker for one evaluation or one Apply call, and what comes back. */
import type { AnyMessage } from "../schema/schema";
import type { DecodeLimits } from "../../common/tensor-codec";
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
  /** Set under a per-evaluation timeout: the worker posts `{ started: startedId }` as it begins. */
  startedId?: number;
}

/** A failure the caller is told about, with its gRPC code. */
export type TaskError = { error: { code: number; message: string } };

export type WorkerResult = { values: Float64Array[]; outputs: OutputInfo[] } | TaskError;

/** One Apply call: the request's Any, decoded in the worker. */
export interface ApplyTask {
  tesseract: string;
  inputs: AnyMessage | null | undefined;
  limits: DecodeLimits;
  startedId?: number;
}

export type ApplyResult = { outputs: { type_url: string; value: Uint8Array } } | TaskError;
