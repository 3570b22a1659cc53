/**
 * The outputs' precision, where the default relative step depends on it. The error-optimal step
 * balances truncation against rounding, and the rounding that matters is the coarser of the input's
 * and the outputs': an FP64 input's step (forward 1.5e-8 relative) over an FP32 output divides
 * that output's rounding (6e-8 relative) by the step, and answered 4 for a derivative of 0.24, OK.
 */
import { DataType } from "../../common/tensor-codec";
import { outputPrecision } from "../eval/evaluator";
import type { InputLeaf } from "../eval/input-leaf";
import type { ResolvedOptions } from "./options";
import { DEFAULT_ABSOLUTE_EPS, keptStepMultiple } from "./steps";
import type { Problem } from "./problem";

/**
 * Tells `problem` whether a requested output is FP32 (`Problem.outputsFp32`) before its step rule is
 * made, where that can change a step: an FP64 leaf taking a default relative step, by the rule
 * (relative steps, no eps of its own) or as the fallback of an absolute step too small for its
 * numbers (steps.ts). From the outputs already known, else abstractEval's prediction, else f(x) (one
 * evaluation, which the forward and extrapolating rules need anyway). Whether f(x) was evaluated for it.
 */
export async function settleOutputPrecision(problem: Problem, options: ResolvedOptions, predicted?: () => Promise<readonly { datatype: number }[] | undefined>): Promise<boolean> {
  if (!problem.leaves.some((leaf) => !leaf.fp32 && takesDefaultRelativeStep(leaf, options))) return false;
  // An input of NaN or ±Inf is the step rule's to refuse, before anything is evaluated.
  if (problem.leaves.some((leaf) => leaf.data.some((x) => !Number.isFinite(x)))) return false;
  let outputs: readonly { datatype: number }[] | undefined = problem.outputs;
  if (!outputs) {
    try {
      outputs = await predicted?.();
    } catch {
      outputs = undefined; // apply will say what is wrong with the inputs
    }
  }
  const evaluated = !outputs;
  if (!outputs) {
    await problem.base();
    outputs = problem.outputs!;
  }
  problem.outputsFp32 = outputs.some((o) => outputPrecision(o) === DataType.DATA_TYPE_FP32);
  return evaluated;
}

/**
 * Whether some element of an FP64 leaf may take the default relative step: its rule's, or the
 * fallback of an absolute step below the spacing of its numbers (|x| h-rounds to x beyond about
 * h · 2^52 / smallest multiple).
 */
function takesDefaultRelativeStep(leaf: InputLeaf, options: ResolvedOptions): boolean {
  const eps = options.epsByPath?.[leaf.path] ?? options.eps;
  if (options.stepMode === "relative") return eps === undefined;
  const smallest = keptStepMultiple(options.algorithm) * (eps ?? DEFAULT_ABSOLUTE_EPS);
  let largest = 0;
  for (let j = 0; j < leaf.size; j++) largest = Math.max(largest, Math.abs(leaf.data[j]));
  return largest * 2 ** -52 >= smallest;
}
