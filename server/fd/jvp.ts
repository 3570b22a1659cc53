/**
 * Jacobian-vector product as one directional derivative. The step along the tangent v is
 * normalised, t = eps / |v|, so that |x+ - x| = eps whatever v's scale; and the quotient divides by
 * the step actually taken along v, s = <x+ - x-, v> / <v, v> (rounding moves each element a little).
 *   central (and stochastic): J v ~= (f(x + t v) - f(x - t v)) / s     2 evaluations
 *   forward:                  J v ~= (f(x + t v) - f(x)) / s           2, or 1 given f(x)
 */
import type { Change } from "../eval/evaluator";
import { ensureOutputs } from "./jacobian";
import type { ResolvedOptions } from "./options";
import type { InputLeaf, Problem } from "./problem";
import { stepped } from "./steps";

function dot(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  let sum = 0;
  a.forEach((x, l) => {
    for (let i = 0; i < x.length; i++) sum += x[i] * b[l][i];
  });
  return sum;
}

/** x + t v in each leaf's precision; elements with v_j = 0 stay exactly x_j. */
function along(leaves: readonly InputLeaf[], tangent: Float64Array[], t: number): Float64Array[] {
  return leaves.map((leaf, l) => {
    const out = new Float64Array(leaf.size);
    for (let j = 0; j < leaf.size; j++) {
      const v = tangent[l][j];
      out[j] = v === 0 ? leaf.data[j] : stepped(leaf.data[j], t * v, leaf.fp32);
    }
    return out;
  });
}

const asChanges = (values: Float64Array[]): Change[] => values.map((v, leaf) => ({ leaf, values: v }));

/**
 * `tangent[l]` is the flat tangent for problem.leaves[l]; returns one flat FP64 array per output.
 * `base`, when the caller already has f(x), saves forward's base evaluation.
 */
export async function jvp(problem: Problem, tangent: Float64Array[], options: ResolvedOptions, base?: Float64Array[]): Promise<Float64Array[]> {
  const vv = dot(tangent, tangent);
  if (vv === 0) {
    const outputs = await ensureOutputs(problem);
    return outputs.map((o) => new Float64Array(o.shape.reduce((a, b) => a * b, 1)));
  }
  const t = options.eps / Math.sqrt(vv);
  const plus = along(problem.leaves, tangent, t);
  const forward = options.algorithm === "forward";
  const minus: ArrayLike<number>[] = forward ? problem.leaves.map((l) => l.data) : along(problem.leaves, tangent, -t);
  const jobs: [Change[], () => string][] = [[asChanges(plus), () => "x + t v"]];
  if (!forward) jobs.push([asChanges(minus as Float64Array[]), () => "x - t v"]);
  else if (!base) jobs.push([[], () => "the unperturbed inputs"]);
  const [fPlus, fMinus = base!] = await problem.evaluateAll(jobs);
  const taken = plus.map((p, l) => p.map((x, j) => x - minus[l][j]));
  const s = dot(taken, tangent) / vv;
  return fPlus.map((fp, o) => fp.map((x, i) => (x - fMinus[o][i]) / s));
}
