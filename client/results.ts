/**
 * The gradient endpoints' results: values keyed by path, the evaluation stats, and lookups that
 * return an ndarray or throw an error naming the paths there are, so that callers need neither
 * `!` nor a check of their own under `noUncheckedIndexedAccess`.
 */
import type { NdArray } from "ndarray";
import { status } from "@grpc/grpc-js";
import { listed, quote } from "../common/errors";
import { formatPath, parsePath } from "../common/paths";
import type { EvaluationStats } from "../generated/tesseract/v1/tesseract";
import { TesseractClientError } from "./errors";
import { isString } from "./arguments";

/** The Jacobian in tesseract-core's nested layout: jacobian[outputPath][inputPath], shape (*out, *in), FP64. */
export type NestedJacobian = Record<string, Record<string, NdArray<Float64Array>>>;

/** What a response without stats reports (a server that sends none). */
export const NO_STATS: EvaluationStats = Object.freeze({ apply_calls: 0, wall_seconds: 0, adjusted_steps: [], column_groups: 0, sparsity_source: "" });

function notFound(what: string, path: string, available: string[]): TesseractClientError {
  return new TesseractClientError(status.NOT_FOUND, `the result has no ${what} ${quote(path)}; it has: ${listed(available)}`);
}

/** `jacobian()`'s result, and `assembleJacobian()`'s. */
export class JacobianResult {
  constructor(
    readonly jacobian: NestedJacobian,
    /** Estimated absolute error of each entry, same layout; for Richardson and adaptive only. */
    readonly errorEstimate: NestedJacobian | undefined,
    readonly stats: EvaluationStats,
  ) {}

  /** d outputPath / d inputPath, shape (*output_shape, *input_shape); NOT_FOUND naming the pairs there are. */
  block(outputPath: string, inputPath: string): NdArray<Float64Array> {
    return lookupBlock(this.jacobian, outputPath, inputPath);
  }

  /** The estimated errors of `block(outputPath, inputPath)`; NOT_FOUND when the algorithm gives none. */
  errorBlock(outputPath: string, inputPath: string): NdArray<Float64Array> {
    if (!this.errorEstimate) throw noErrorEstimates();
    return lookupBlock(this.errorEstimate, outputPath, inputPath);
  }
}

/**
 * `path` as the server keys results: its canonical spelling (`m.{\{k\}}` and `m.{{k\}}` name the
 * same key, and results come back under the latter); as it is when it does not parse.
 */
function canonical(path: string): string {
  try {
    return formatPath(parsePath(path));
  } catch {
    return path;
  }
}

/** `record[key]`, or under the key's canonical spelling. */
function keyed<T>(record: Record<string, T>, path: string): T | undefined {
  if (Object.hasOwn(record, path)) return record[path];
  const spelled = canonical(path);
  return Object.hasOwn(record, spelled) ? record[spelled] : undefined;
}

/**
 * `nested[outputPath][inputPath]`, each path found under its canonical spelling too; NOT_FOUND naming
 * the pairs there are. The dense results' block() and the sparse one's share it.
 */
export function lookupBlock<T>(nested: Record<string, Record<string, T>>, outputPath: string, inputPath: string): T {
  isString(outputPath, "outputPath");
  isString(inputPath, "inputPath");
  const byInput = keyed(nested, outputPath);
  const block = byInput && keyed(byInput, inputPath);
  if (block) return block;
  const pairs = Object.entries(nested).flatMap(([o, inputs]) => Object.keys(inputs).map((i) => `${o} / ${i}`));
  throw notFound("Jacobian block d output / d input", `${outputPath} / ${inputPath}`, pairs);
}

/** The error of errorBlock() on a result without estimates. */
export function noErrorEstimates(): TesseractClientError {
  return new TesseractClientError(status.NOT_FOUND, "the result has no error estimates: only the richardson, adaptive and stochastic algorithms give them");
}

/** `jvp()`'s result (keyed by output path) and `vjp()`'s (keyed by input path). */
export class VectorProductResult {
  constructor(
    readonly result: Record<string, NdArray<Float64Array>>,
    /** Estimated absolute errors, like `result`; for Richardson and adaptive only. */
    readonly errorEstimate: Record<string, NdArray<Float64Array>> | undefined,
    readonly stats: EvaluationStats,
  ) {}

  /** The value for `path` (an output path for a JVP, an input path for a VJP); NOT_FOUND naming the paths there are. */
  get(path: string): NdArray<Float64Array> {
    isString(path, "path");
    const value = keyed(this.result, path);
    if (value) return value;
    throw notFound("path", path, Object.keys(this.result));
  }
}
