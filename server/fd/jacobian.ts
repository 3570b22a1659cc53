/** The full Jacobian, assembled from rows: one FP64 array of shape (*output_shape, *input_shape) per pair. */
import type { ResolvedOptions } from "./options";
import type { Problem } from "./problem";
import { rows } from "./rows";

export interface JacobianEntry {
  outputPath: string;
  inputPath: string;
  shape: number[];
  /** Row-major: element (p, j) at p * inputSize + j. */
  values: Float64Array;
}

/** Makes sure output shapes are known even when there is no row to produce (no input elements). */
export async function ensureOutputs(problem: Problem) {
  if (!problem.outputs) await problem.evaluate([], () => "the unperturbed inputs");
  return problem.outputs!;
}

export async function jacobian(problem: Problem, options: ResolvedOptions): Promise<JacobianEntry[]> {
  let entries: JacobianEntry[][] | undefined; // [output][leaf]
  for await (const row of rows(problem, options)) {
    entries ??= allocate(problem);
    const size = problem.leaves[row.leaf].size;
    row.values.forEach((values, o) => {
      const target = entries![o][row.leaf].values;
      for (let p = 0; p < values.length; p++) target[p * size + row.index] = values[p];
    });
  }
  entries ??= allocate(problem, await ensureOutputs(problem));
  return entries.flat();
}

function allocate(problem: Problem, outputs = problem.outputs!): JacobianEntry[][] {
  return outputs.map((out) =>
    problem.leaves.map((leaf) => {
      const outSize = out.shape.reduce((a, b) => a * b, 1);
      return {
        outputPath: out.path,
        inputPath: leaf.path,
        shape: [...out.shape, ...leaf.shape],
        values: new Float64Array(outSize * leaf.size),
      };
    }),
  );
}
