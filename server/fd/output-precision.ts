/**
 * The outputs' precision, where the default relative step depends on it. The error-optimal step
 * balances truncation against rounding, and the rounding that matters is the coarser of the input's
 * and the outputs': an FP64 input's step (forward 1.5e-8 relative) over an FP32 output divides
 * that output's rounding (6e-8 relative) by the step, and answered 4 for a derivative of 0.24, OK.
 */
import { DataType } from "../../common/tensor-codec";
import type { ResolvedOptions } from "./options";
import type { Problem } from "./problem";

/**
 * Tells `problem` whether a requested output is FP32 (`Problem.outputsFp32`) before its step rule is
 * made, where that can change a step: relative steps, an FP64 leaf without an eps of its own. From
 * the outputs already known, else abstractEval's prediction, else f(x) (one evaluation, which the
 * forward and extrapolating rules need anyway). Whether f(x) was evaluated for it.
 */
export async function settleOutputPrecision(problem: Problem, options: ResolvedOptions, predicted?: () => Promise<readonly { datatype: number }[] | undefined>): Promise<boolean> {
  const defaulted = options.stepMode === "relative" && options.eps === undefined && problem.leaves.some((l) => !l.fp32 && options.epsByPath?.[l.path] === undefined);
  if (!defaulted) return false;
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
  problem.outputsFp32 = outputs.some((o) => o.datatype === DataType.DATA_TYPE_FP32);
  return evaluated;
}
