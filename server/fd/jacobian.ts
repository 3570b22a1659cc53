/** The full Jacobian, assembled from rows: one FP64 array of shape (*output_shape, *input_shape) per pair. */
import { Code, TesseractError } from "../../common/errors";
import type { ResolvedOptions } from "./options";
import type { Problem } from "./problem";
import { planRowBatches } from "./columns";
import type { SparsityPlan } from "./sparsity-plan";
import { elementCount } from "../../common/tensor-codec";

export interface JacobianEntry {
  outputPath: string;
  inputPath: string;
  shape: number[];
  /** Row-major: element (p, j) at p * inputSize + j. */
  values: Float64Array;
  /** Estimated absolute errors, same layout (Richardson and adaptive only). */
  errors?: Float64Array;
}

/** Makes sure output shapes are known even when there is no row to produce (no input elements). */
export async function ensureOutputs(problem: Problem) {
  if (!problem.outputs) await problem.evaluate([], () => "the unperturbed inputs");
  return problem.outputs!;
}

/** Refuses a Jacobian of more than `maxBytes` (FP64 values of every output × input pair). */
export function checkJacobianSize(outputShapes: readonly number[][], inputSizes: readonly number[], maxBytes: number): void {
  const values = outputShapes.reduce((sum, shape) => sum + elementCount(shape), 0) * inputSizes.reduce((a, b) => a + b, 0);
  if (8 * values > maxBytes) {
    throw new TesseractError(
      Code.RESOURCE_EXHAUSTED,
      `the Jacobian has ${values} FP64 values (${8 * values} bytes), over the ${maxBytes}-byte message limit; stream it row by row with JacobianRows`,
    );
  }
}

/**
 * `maxBytes` bounds the result; it is checked as soon as the output shapes are known. With a
 * sparsity plan, columns are grouped (columns.ts) and sparse rows land at their indices.
 */
export async function jacobian(problem: Problem, options: ResolvedOptions, maxBytes = Infinity, plan?: SparsityPlan): Promise<JacobianEntry[]> {
  const allocate = (outputs = problem.outputs!): JacobianEntry[][] => {
    checkJacobianSize(outputs.map((o) => o.shape), problem.leaves.map((l) => l.size), maxBytes);
    return outputs.map((out) =>
      problem.leaves.map((leaf) => ({
        outputPath: out.path,
        inputPath: leaf.path,
        shape: [...out.shape, ...leaf.shape],
        values: new Float64Array(elementCount(out.shape) * leaf.size),
      })),
    );
  };
  let entries: JacobianEntry[][] | undefined; // [output][leaf]
  for await (const batch of planRowBatches(problem, options, plan)) {
    entries ??= allocate();
    for (const row of batch) {
      const size = problem.leaves[row.leaf].size;
      row.values.forEach((values, o) => {
        const entry = entries![o][row.leaf];
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
  }
  entries ??= allocate(await ensureOutputs(problem));
  return entries.flat();
}
