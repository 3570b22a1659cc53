/** The full Jacobian: one FP64 array of shape (*output_shape, *input_shape) per pair (entries.ts). */
import type { ResolvedOptions } from "./options";
import type { Problem } from "./problem";
import { planRowBatches } from "./columns";
import { centralJacobian } from "./central-jacobian";
import { allocateEntries, placeRow, type JacobianEntry } from "./entries";
import { effectiveAlgorithm } from "./rows";
import type { SparsityPlan } from "./sparsity-plan";

export { checkJacobianSize, type JacobianEntry } from "./entries";

/** Makes sure output shapes are known even when there is no row to produce (no input elements). */
export async function ensureOutputs(problem: Problem) {
  if (!problem.outputs) await problem.evaluate([], () => "the unperturbed inputs");
  return problem.outputs!;
}

/**
 * `maxBytes` bounds the result; it is checked as soon as the output shapes are known. With a
 * sparsity plan, columns are grouped (columns.ts) and sparse rows land at their indices. Central
 * differences go straight into the result (central-jacobian.ts) unless a detected structure is
 * being verified or recorded.
 */
export async function jacobian(problem: Problem, options: ResolvedOptions, maxBytes = Infinity, plan?: SparsityPlan): Promise<JacobianEntry[]> {
  if (effectiveAlgorithm(problem.size, options) === "central" && !plan?.verify && !plan?.record) {
    const entries = await centralJacobian(problem, options, maxBytes, plan);
    return (entries ?? (await ensureOutputs(problem), allocateEntries(problem, maxBytes))).flat();
  }
  let entries: JacobianEntry[][] | undefined; // [output][leaf]
  for await (const batch of planRowBatches(problem, options, plan)) {
    entries ??= allocateEntries(problem, maxBytes);
    for (const row of batch) placeRow(entries, problem, row);
  }
  entries ??= (await ensureOutputs(problem), allocateEntries(problem, maxBytes));
  return entries.flat();
}
