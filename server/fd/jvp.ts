/**
 * Jacobian-vector product as one directional derivative. The step along the tangent v is
 * normalised, t = L / |v| with L the step rule's length (steps.ts), so that |x+ - x| = L whatever v's
 * scale; and the quotient divides by the step actually taken along v, s = <x+ - x-, v> / <v, v>
 * (rounding moves each element a little).
 *   central (and stochastic): J v ~= (f(x + t v) - f(x - t v)) / s          2 evaluations
 *   forward:                  J v ~= (f(x + t v) - f(x)) / s                2, or 1 given f(x)
 *   richardson, adaptive:     central differences at several multiples of t, extrapolated as in
 *                             rows.ts, with an error estimate                4 and 12 evaluations
 */
import { Code, TesseractError } from "../errors";
import type { Change } from "../eval/evaluator";
import { ensureOutputs } from "./jacobian";
import type { ResolvedOptions } from "./options";
import type { InputLeaf, Problem } from "./problem";
import { ADAPTIVE_MULTIPLES, extrapolate, RICHARDSON_MULTIPLES, roundingError, type CentralDifference } from "./rows";
import { nextAfter } from "./steps";

function dot(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  let sum = 0;
  a.forEach((x, l) => {
    for (let i = 0; i < x.length; i++) sum += x[i] * b[l][i];
  });
  return sum;
}

/** x + t v in each leaf's precision; elements with v_j = 0 stay exactly x_j, the others move. */
function along(leaves: readonly InputLeaf[], tangent: Float64Array[], t: number): Float64Array[] {
  return leaves.map((leaf, l) => {
    const out = new Float64Array(leaf.size);
    for (let j = 0; j < leaf.size; j++) {
      const x = leaf.data[j];
      const step = t * tangent[l][j];
      const y = leaf.fp32 ? Math.fround(x + step) : x + step;
      out[j] = step === 0 || y !== x ? y : nextAfter(x, step > 0, leaf.fp32);
    }
    return out;
  });
}

const asChanges = (values: Float64Array[]): Change[] => values.map((v, leaf) => ({ leaf, values: v }));

export interface DirectionalResult {
  values: Float64Array[];
  /** For Richardson and adaptive. */
  errors?: Float64Array[];
}

/**
 * `tangent[l]` is the flat tangent for problem.leaves[l]; returns one flat FP64 array per output.
 * `base`, when the caller already has f(x), saves forward's base evaluation.
 */
export async function jvp(problem: Problem, tangent: Float64Array[], options: ResolvedOptions, base?: Float64Array[]): Promise<DirectionalResult> {
  const vv = dot(tangent, tangent);
  if (vv === 0) {
    const outputs = await ensureOutputs(problem);
    return { values: outputs.map((o) => new Float64Array(o.shape.reduce((a, b) => a * b, 1))) };
  }
  const steps = problem.stepRule(options);
  const t = steps.directional(tangent.map((v) => v.some((x) => x !== 0))) / Math.sqrt(vv);
  /** The step actually taken along v between two points, in units of v. */
  const along_v = (a: ArrayLike<number>[], b: ArrayLike<number>[]) => dot(a.map((p, l) => Float64Array.from(p, (x, j) => x - b[l][j])), tangent) / vv;

  if (options.algorithm === "forward") {
    const plus = along(problem.leaves, tangent, t);
    const jobs: [Change[], () => string][] = [[asChanges(plus), () => "x + t v"]];
    if (!base) jobs.push([[], () => "the unperturbed inputs"]);
    const [fPlus, fBase = base!] = await problem.evaluateAll(jobs);
    const s = along_v(plus, problem.leaves.map((l) => l.data));
    return { values: fPlus.map((fp, o) => fp.map((x, i) => (x - fBase[o][i]) / s)) };
  }

  const multiples = options.algorithm === "richardson" ? RICHARDSON_MULTIPLES : options.algorithm === "adaptive" ? ADAPTIVE_MULTIPLES : [1];
  // Directional steps near a domain bound are refused (a Jacobian or VJP steps one element at a
  // time and takes one-sided stencils there).
  for (const m of [multiples[0], -multiples[0]]) {
    along(problem.leaves, tangent, m * t).forEach((values, l) => {
      const outside = values.findIndex((y) => !steps.contains(l, y));
      if (outside >= 0) {
        throw new TesseractError(Code.FAILED_PRECONDITION, `a step along the tangent takes ${problem.leaves[l].path} element ${outside} to ${values[outside]}, outside its domain ${steps.describeBounds(l)}; use a smaller eps`);
      }
    });
  }
  const differences: CentralDifference[] = [];
  for (const m of multiples) {
    const plus = along(problem.leaves, tangent, m * t);
    const minus = along(problem.leaves, tangent, -m * t);
    const [fPlus, fMinus] = await problem.evaluateAll([
      [asChanges(plus), () => `x + ${m === 1 ? "" : m}t v`],
      [asChanges(minus), () => `x - ${m === 1 ? "" : m}t v`],
    ]);
    const s = along_v(plus, minus);
    const rounding = multiples.length > 1 ? roundingError(problem, fPlus, fMinus, s) : [];
    differences.push({ values: fPlus.map((fp, o) => fp.map((x, i) => (x - fMinus[o][i]) / s)), halfWidth: s / 2, rounding });
  }
  return multiples.length > 1 ? extrapolate(differences) : { values: differences[0].values };
}
