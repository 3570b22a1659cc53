/** The full Jacobian's storage: one FP64 array of shape (*output_shape, *input_shape) per (output, input) pair. */
import { Code, TesseractError } from "../../common/errors";
import { elementCount } from "../../common/tensor-codec";
import type { Problem } from "./problem";
import type { Row } from "./rows";

export interface JacobianEntry {
  outputPath: string;
  inputPath: string;
  shape: number[];
  /** Row-major: element (p, j) at p * inputSize + j. */
  values: Float64Array;
  /** Estimated absolute errors, same layout (Richardson and adaptive only). */
  errors?: Float64Array;
}

/** Refuses a Jacobian of more than `maxBytes` (FP64 values of every output × input pair). */
export function checkJacobianSize(outputShapes: readonly number[][], inputSizes: readonly number[], maxBytes: number): void {
  const values = outputShapes.reduce((sum, shape) => sum + elementCount(shape), 0) * inputSizes.reduce((a, b) => a + b, 0);
  if (8 * values > maxBytes) {
    throw new TesseractError(
      Code.RESOURCE_EXHAUSTED,
      `the Jacobian has ${values} FP64 values (${8 * values} bytes), over the ${maxBytes}-byte message limit (--max-message-bytes); stream it row by row with the gRPC JacobianRows (or the CLI's jacobian --stream or --out)`,
    );
  }
}

/** Zeroed entries [output][leaf] for the problem's outputs (known by now), refused over `maxBytes`. */
export function allocateEntries(problem: Problem, maxBytes: number): JacobianEntry[][] {
  const outputs = problem.outputs!;
  checkJacobianSize(outputs.map((o) => o.shape), problem.leaves.map((l) => l.size), maxBytes);
  return outputs.map((out) =>
    problem.leaves.map((leaf) => ({
      outputPath: out.path,
      inputPath: leaf.path,
      shape: [...out.shape, ...leaf.shape],
      values: new Float64Array(elementCount(out.shape) * leaf.size),
    })),
  );
}

/** A row's values (and errors) at its column of the entries: dense, or sparse at its indices. */
export function placeRow(entries: JacobianEntry[][], problem: Problem, row: Row): void {
  const size = problem.leaves[row.leaf].size;
  row.values.forEach((values, o) => {
    const entry = entries[o][row.leaf];
    const at = row.indices?.[o];
    // Value k is output element p = at[k] (sparse) or k (dense): entry (p, j) at p * size + j.
    const place = (target: Float64Array, from: Float64Array) => {
      for (let k = 0; k < from.length; k++) target[(at ? at[k] : k) * size + row.index] = from[k];
    };
    place(entry.values, values);
    const errors = row.errors?.[o];
    if (errors) place((entry.errors ??= new Float64Array(entry.values.length)), errors);
  });
}
