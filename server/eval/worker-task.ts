/**
 * What the main thread sends a worker for a batch of evaluations or one Apply call, and what comes
 * back. A batch travels as one message: its evaluations packed in one Float64Array, or its pairs as
 * ElementPairs' typed arrays; its results in one Float64Array (transferred, not copied).
 */
import type { AnyMessage } from "../schema/schema";
import type { DecodeLimits } from "../../common/tensor-codec";
import type { Change, ElementPairs, OutputInfo, Perturbation } from "./evaluator";

/** Evaluations of one gradient job at several perturbations of its base inputs. */
export interface BatchTask {
  /** A bundled name or module path: the worker loads the Tesseract itself (once). */
  tesseract: string;
  /** Identifies the request; a worker prepares each job's inputs once. */
  job: string;
  /** The base inputs, arrays in shared memory (shared-tree.ts). */
  inputs: unknown;
  inputPaths: string[];
  outputPaths: string[];
  outputsField: string;
  /** The batch's evaluations, packed (packPerturbations); or */
  perturbations?: Float64Array;
  /**
   * its pairs (ElementPairs in one buffer: packElementPairs), each answered by f(x + plus) -
   * f(x + minus) alone (Evaluator.differences): the results and failures are then per pair.
   */
  pairs?: Uint8Array;
  /**
   * Under a per-evaluation timeout: shared [index, started] of the evaluation the worker is running
   * (index -1 until the first starts; started in ms after `progressEpoch`, a Date.now()), so the
   * main thread can tell a hanging evaluation without a message per evaluation.
   */
  progress?: Int32Array;
  progressEpoch?: number;
  /**
   * A batch sent unstoppable (pool.ts): shared [thread], the threadId of the worker once it begins
   * the batch (0 until then), so that the main thread can end that worker when the batch outruns its
   * request's cancel.
   */
  startedOn?: Int32Array;
  /**
   * Shared [ended] of the job (1 once its request has ended): a worker lets go of an ended job's
   * inputs at its next task, so that a busy pool does not keep its last jobs' inputs (worker.ts).
   */
  ended?: Int32Array;
}

/**
 * A failure the caller is told about, with its gRPC code; `missing`: the request's own error where
 * f(x) leaves the requested output out too (schema.ts omittedOutputError), which a thread cannot tell.
 */
export type TaskError = { error: { code: number; message: string; missing?: { code: number; message: string } } };

export interface BatchResult {
  /** Item k's outputs (an evaluation's, or a pair's difference), flat FP64 one after the other, at k * (sum of output sizes). */
  values: Float64Array;
  /** The requested outputs' paths and shapes (from the worker's first successful evaluation). */
  outputs: OutputInfo[] | undefined;
  /** Items that failed, by index in the batch (of a pair, the side that failed: 0 or 1); the others are in `values`. */
  failed: { index: number; side?: 0 | 1; error: TaskError["error"] }[];
  /** Milliseconds the worker spent evaluating the batch (for the batch size: pool.ts). */
  busyMs: number;
  /** Every value was checked finite in the worker (pairs divided by their widths): the main thread need not. */
  finite?: boolean;
}

/** One Apply call: the request's Any, decoded in the worker. */
export interface ApplyTask {
  tesseract: string;
  inputs: AnyMessage | null | undefined;
  limits: DecodeLimits;
  startedId?: number;
}

/**
 * What a worker tells the pool as it starts (before it takes a task): that it begins to load the
 * Tesseract, to warm up on its example inputs, and that it is done; or that it cannot load the
 * Tesseract (`unloadable`, and why), which the main thread loaded.
 */
export interface StartUpMessage {
  startUp: "loading" | "warming" | "done" | "unloadable";
  thread: number;
  why?: string;
}

/** An Apply's outputs, and how long apply itself took in the worker (ms). */
export type ApplyResult = { outputs: { type_url: string; value: Uint8Array }; applyMs: number } | TaskError;

/**
 * Perturbations as numbers: per perturbation its change count, then per change `leaf, -1, index,
 * value` (one element), `leaf, -2 - count, ...indices, ...points` (several elements: a column group)
 * or `leaf, length, ...values` (a whole leaf).
 */
export function packPerturbations(perturbations: readonly Perturbation[]): Float64Array {
  let length = 0;
  for (const p of perturbations) {
    length++;
    for (const change of p) length += 2 + ("values" in change ? change.values.length : "indices" in change ? 2 * change.indices.length : 2);
  }
  const packed = new Float64Array(length);
  let at = 0;
  for (const p of perturbations) {
    packed[at++] = p.length;
    for (const change of p) {
      packed[at++] = change.leaf;
      if ("values" in change) {
        packed[at++] = change.values.length;
        packed.set(change.values, at);
        at += change.values.length;
      } else if ("indices" in change) {
        const { indices, points } = change;
        const count = indices.length;
        packed[at++] = -2 - count;
        // Loops: a group has few elements, and TypedArray.set costs more than it copies then.
        for (let k = 0; k < count; k++) packed[at + k] = indices[k];
        for (let k = 0; k < count; k++) packed[at + count + k] = points[k];
        at += 2 * count;
      } else {
        packed[at++] = -1;
        packed[at++] = change.index;
        packed[at++] = change.value;
      }
    }
  }
  return packed;
}

/** The perturbations packPerturbations packed (whole-leaf values are views of `packed`). */
export function unpackPerturbations(packed: Float64Array): Perturbation[] {
  const perturbations: Perturbation[] = [];
  for (let at = 0; at < packed.length; ) {
    const changes: Change[] = new Array(packed[at++]);
    for (let c = 0; c < changes.length; c++) {
      const leaf = packed[at++];
      const length = packed[at++];
      if (length === -1) {
        changes[c] = { leaf, index: packed[at], value: packed[at + 1] };
        at += 2;
      } else if (length < -1) {
        const count = -2 - length;
        changes[c] = { leaf, indices: Uint32Array.from(packed.subarray(at, at + count)), points: packed.subarray(at + count, at + 2 * count) };
        at += 2 * count;
      } else {
        changes[c] = { leaf, values: packed.subarray(at, at + length) };
        at += length;
      }
    }
    perturbations.push(changes);
  }
  return perturbations;
}

/**
 * ElementPairs in one buffer, to post to a worker as one part rather than five typed arrays (each
 * costs its own copy and header: measured 16 µs a task against 5). Layout: pair, element and width
 * counts (uint32; widths: 0 or the pairs'), starts, leaves and indices (uint32), then, from an
 * 8-byte boundary, plus, minus and the widths (FP64).
 */
export function packElementPairs(pairs: ElementPairs): Uint8Array {
  const count = pairs.starts.length - 1;
  const elements = pairs.leaves.length;
  const widths = pairs.widths ? count : 0;
  const { u32, f64, bytes } = elementPairsLayout(count, elements, widths);
  const packed = new Uint8Array(bytes);
  const ints = new Uint32Array(packed.buffer, 0, u32);
  ints[0] = count;
  ints[1] = elements;
  ints[2] = widths;
  ints.set(pairs.starts, 3);
  ints.set(pairs.leaves, 4 + count);
  ints.set(pairs.indices, 4 + count + elements);
  const floats = new Float64Array(packed.buffer, f64, 2 * elements + widths);
  floats.set(pairs.plus);
  floats.set(pairs.minus, elements);
  if (pairs.widths) floats.set(pairs.widths, 2 * elements);
  return packed;
}

/** The pairs packElementPairs packed, as views of its buffer (no copy). */
export function unpackElementPairs(packed: Uint8Array): ElementPairs {
  const head = new Uint32Array(packed.buffer, packed.byteOffset, 3);
  const [count, elements, widths] = [head[0], head[1], head[2]];
  const { f64 } = elementPairsLayout(count, elements, widths);
  const ints = (from: number, length: number) => new Uint32Array(packed.buffer, packed.byteOffset + 4 * from, length);
  const floats = (from: number, length = elements) => new Float64Array(packed.buffer, packed.byteOffset + f64 + 8 * from, length);
  const pairs: ElementPairs = { starts: ints(3, count + 1), leaves: ints(4 + count, elements), indices: ints(4 + count + elements, elements), plus: floats(0), minus: floats(elements) };
  if (widths) pairs.widths = floats(2 * elements, widths);
  return pairs;
}

function elementPairsLayout(count: number, elements: number, widths: number): { u32: number; f64: number; bytes: number } {
  const u32 = 4 + count + 2 * elements;
  const f64 = 8 * Math.ceil((4 * u32) / 8);
  return { u32, f64, bytes: f64 + 8 * (2 * elements + widths) };
}
