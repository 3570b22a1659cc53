/**
 * Jacobian-vector product as one directional derivative. The tangent v enters scaled, w = v / 2^e
 * with 2^e ≈ max_j |v_j| (finite.ts: exact, and <w, w> neither overflows nor underflows whatever v's
 * scale), and J v = 2^e J w. The step along w is normalised, t = L / |w| with L the step rule's
 * length (steps.ts), so that |x+ - x| = L; and the quotient divides by the step actually taken
 * along w, s = <x+ - x-, w> / <w, w> (rounding moves each element a little).
 *   central (and stochastic): J w ~= (f(x + t w) - f(x - t w)) / s          2 evaluations
 *   forward:                  J w ~= (f(x + t w) - f(x)) / s                2, or 1 given f(x)
 *                             (the request's, Problem.base)
 *   richardson, adaptive:     central differences at several multiples of t, extrapolated as in
 *                             rows.ts, with an error estimate; f(x) and the noise probe along w
 *                             once (noise.ts)                                 4 + 9 and 12 + 9
 * Where rounding the points turned a stencil's direction measurably away from w (FP32 inputs), its
 * difference is straightened by one more along the stray (`straighten`: 2 evaluations, forward 1);
 * under the rules with an estimate, any stray is, so that the estimate need not count it.
 */
import { Code, invalidArgument, TesseractError } from "../../common/errors";
import type { Change } from "../eval/evaluator";
import { binaryScale, checkFinite } from "./finite";
import { ensureOutputs } from "./jacobian";
import { PROBE_SPACING } from "./noise";
import type { ResolvedOptions } from "./options";
import type { InputLeaf } from "../eval/input-leaf";
import type { Problem } from "./problem";
import { centralQuotient, elementRow, extrapolate, rowNoise, stencilRounding, type CentralDifference } from "./rows";
import { nextAfter, ruleMultiples, type StepRule } from "./steps";
import { elementCount } from "../../common/tensor-codec";

function dot(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  // Sums kept in locals of the looping function, never in variables a callback closes over: V8
  // boxes those on every write (3.5x slower over a large output in this engine's loops).
  let sum = 0;
  for (let l = 0; l < a.length; l++) {
    const x = a[l];
    const y = b[l];
    for (let i = 0; i < x.length; i++) sum += x[i] * y[i];
  }
  return sum;
}

/**
 * x + t w in each leaf's precision; elements with w_j = 0 stay exactly x_j, the others move.
 * Refused where a point, or twice its distance from x, is not finite (INVALID_ARGUMENT) or where it
 * leaves the domain (FAILED_PRECONDITION: a Jacobian or VJP steps one element at a time and takes
 * one-sided stencils there, a direction cannot).
 */
function along(problem: Problem, steps: StepRule, w: Float64Array[], t: number): Float64Array[] {
  return problem.leaves.map((leaf, l) => {
    const out = new Float64Array(leaf.size);
    for (let j = 0; j < leaf.size; j++) {
      const x = leaf.data[j];
      const step = t * w[l][j];
      const y = leaf.fp32 ? Math.fround(x + step) : x + step;
      out[j] = step === 0 || y !== x ? y : nextAfter(x, step > 0, leaf.fp32);
      if (!Number.isFinite(out[j]) || !Number.isFinite(2 * (out[j] - x))) {
        throw invalidArgument(
          `${steps.describeStep(l)} sets the step along the tangent to length ${Math.abs(t) * Math.sqrt(dot(w, w))}, which takes ${leaf.path} element ${j} = ${x} to ${out[j]} ` +
            `(or its distance from x) outside the finite ${leaf.fp32 ? "FP32" : "FP64"} numbers; expected steps that keep x ± t v and the width between them finite: use a smaller eps`,
        );
      }
      if (!steps.contains(l, out[j])) {
        throw new TesseractError(Code.FAILED_PRECONDITION, `a step along the tangent takes ${leaf.path} element ${j} to ${out[j]}, outside its domain ${steps.describeBounds(l)}; use a smaller eps`);
      }
    }
    return out;
  });
}

type Taken = (a: ArrayLike<number>[], b: ArrayLike<number>[]) => number;

const asChanges = (values: Float64Array[]): Change[] => values.map((v, leaf) => ({ leaf, values: v }));

/**
 * How far the points `a` - `b` are from a step of `s` along w, relative to that step (largest
 * element against largest element). Rounding each point to its precision moves it by up to half an
 * ulp of every element; while the step spans thousands of ulps that is noise, but a step of a few
 * ulps or less (a tiny eps, or large inputs) points elsewhere than the tangent, each element
 * rounding its own way, and the difference quotient is then the derivative along another direction.
 */
function misdirection(a: Float64Array[], b: ArrayLike<number>[], w: Float64Array[], s: number): number {
  let off = 0;
  let along = 0;
  for (let l = 0; l < w.length; l++) {
    for (let j = 0; j < w[l].length; j++) {
      off = Math.max(off, Math.abs(a[l][j] - b[l][j] - s * w[l][j]));
      along = Math.max(along, Math.abs(s * w[l][j]));
    }
  }
  return off / along;
}

/** A step along w (in units of w) whose largest element spans 2 / MAX_MISDIRECTION of the coarsest ulp among the elements it moves. */
function roundingFloor(problem: Problem, w: Float64Array[]): number {
  let least = 0;
  let largest = 0;
  problem.leaves.forEach((leaf, l) => {
    for (let j = 0; j < leaf.size; j++) {
      if (w[l][j] === 0) continue;
      least = Math.max(least, leastUnstrayedStep(leaf, j));
      largest = Math.max(largest, Math.abs(w[l][j]));
    }
  });
  return least / largest;
}

/** The least step in element j for which rounding its points (up to an ulp between two) strays at most MAX_MISDIRECTION. */
function leastUnstrayedStep(leaf: InputLeaf, j: number): number {
  const x = leaf.data[j];
  return (2 * Math.abs(nextAfter(x, x >= 0, leaf.fp32) - x)) / MAX_MISDIRECTION;
}

/** The most a JVP's points may stray from its tangent, relative to the step (about a thousand ulps a step). */
const MAX_MISDIRECTION = 2 ** -10;

/** One stencil's points along w, x + m t w and (central) x - m t w, and the step taken between them (to x for forward), in units of w. */
interface Stencil {
  multiple: number;
  plus: Float64Array[];
  minus?: Float64Array[];
  s: number;
}

/**
 * The step length along w (in units of w): `t`, doubled while the rule's smallest stencil (the
 * points at ± smallest · t, or x + smallest · t and x for forward) strays from w by more than
 * MAX_MISDIRECTION — the JVP's form of "one ulp instead" (a Jacobian steps each element alone, so
 * one ulp keeps its direction; a direction needs all its elements to move in proportion). A longer
 * step is reported in adjusted_steps. A step that grows out of the finite numbers or the domain is
 * refused by `along`, as a long eps is. The smallest stencil's points come back for the rule to use.
 */
function tangentStep(problem: Problem, steps: StepRule, w: Float64Array[], t: number, taken: Taken, smallest: number, forward: boolean): { length: number; stencil: Stencil } {
  const base = problem.leaves.map((l) => l.data);
  for (let length = t; ; ) {
    const plus = along(problem, steps, w, smallest * length);
    const minus = forward ? undefined : along(problem, steps, w, -smallest * length);
    const s = taken(plus, minus ?? base);
    if (misdirection(plus, minus ?? base, w, s) <= MAX_MISDIRECTION) {
      if (length !== t) steps.noteTangentStep(t * Math.sqrt(dot(w, w)), length * Math.sqrt(dot(w, w)));
      return { length, stencil: { multiple: smallest, plus, minus, s } };
    }
    // At once to where rounding cannot stray that far (twice that many of the coarsest ulp a moved
    // element has, over the largest |w|), then doubling: a step of 1e-320 is not doubled 1 000 times.
    length = Math.max(2 * length, roundingFloor(problem, w) / smallest);
  }
}

export interface DirectionalResult {
  values: Float64Array[];
  /** For Richardson and adaptive. */
  errors?: Float64Array[];
  /** Central and forward: the rounding of the outputs each value carries (rows.ts, stencilRounding). */
  rounding?: Float64Array[];
  /**
   * Per leaf and element, how far the direction actually taken strayed from the tangent, in the
   * tangent's units (at most this far: the largest over the rule's stencils, times the most its
   * extrapolation weighs them by). Rounding the points to the input's precision moves each element
   * a little, so the result is J v' with |v' - v| ≤ stray elementwise: what J v can be told from.
   */
  stray?: Float64Array[];
}

/** The most an extrapolation of two central differences weighs them by: |q / (q - 1)| + |1 / (q - 1)| for q ≥ 4 (steps a factor 2 apart, or more). */
const EXTRAPOLATION_WEIGHTS = 5 / 3;

/**
 * `tangent[l]` is the flat tangent for problem.leaves[l]; returns one flat FP64 array per output.
 * `withRounding`: central and forward results carry their outputs' rounding (CheckGradients).
 */
export async function jvp(problem: Problem, tangent: Float64Array[], options: ResolvedOptions, withRounding = false): Promise<DirectionalResult> {
  const scale = binaryScale(tangent);
  if (scale === 0) {
    const outputs = await ensureOutputs(problem);
    return { values: outputs.map((o) => new Float64Array(elementCount(o.shape))) };
  }
  const w = tangent.map((v) => v.map((x) => x / scale));
  // One part after the other: their evaluations share the request's input tree.
  let total: DirectionalResult | undefined;
  for (const part of resolvedParts(problem, options, w)) total = sum(total, await partJvp(problem, options, part, withRounding));
  const result = total!;
  // J v = 2^e J w.
  const scaled = (arrays: Float64Array[], what: string) =>
    arrays.map((a, o) => {
      const out = problem.outputs![o];
      const values = a.map((x) => x * scale);
      checkFinite(values, (i) => `${what} of ${out.path}${out.shape.length ? ` (flat index ${i})` : ""}`);
      return values;
    });
  return {
    values: scaled(result.values, "the JVP"),
    errors: result.errors && scaled(result.errors, "the JVP's error estimate"),
    rounding: result.rounding && scaled(result.rounding, "the JVP's rounding"),
    stray: result.stray!.map((d) => d.map((x) => x * scale)),
  };
}

/**
 * w as the parts whose directional differences are taken apart: elements grouped by the step each
 * needs, its own rule's step or the least its rounding allows (MAX_MISDIRECTION), within a factor of
 * PART_SPAN. One step along the whole of w served its most demanding element: FP32 x = [0.3,
 * 1234.5] along [1, 1] took a step of 0.35 (1234.5's spacing) and answered 1.2 for J v = -37 with
 * f = sin(50 x_0) + x_1; relative steps sized every element by its leaf's largest |x|. One part
 * when the elements are alike; a part of one element is that element's column.
 */
function resolvedParts(problem: Problem, options: ResolvedOptions, w: Float64Array[]): Part[] {
  const steps = problem.stepRule(options);
  const smallest = Math.min(...ruleMultiples(options.algorithm));
  const stepOf = w.map((v, l) => v.map((vj, j) => (vj === 0 ? 0 : steps.elementStep(l, j))));
  const needs = stepOf.map((v, l) => v.map((h, j) => (h === 0 ? 0 : Math.max(h, leastUnstrayedStep(problem.leaves[l], j) / smallest))));
  let [least, most] = [Infinity, 0];
  for (const v of needs) for (const need of v) if (need > 0) [least, most] = [Math.min(least, need), Math.max(most, need)];
  // Spans of PART_SPAN from the least need up: elements alike never part.
  const parts = new Map<number, Part>();
  needs.forEach((v, l) => {
    for (let j = 0; j < v.length; j++) {
      if (v[j] === 0) continue;
      const key = most <= PART_SPAN * least ? 0 : Math.floor(Math.log2(v[j] / least) / Math.log2(PART_SPAN));
      let part = parts.get(key);
      if (!part) parts.set(key, (part = { w: w.map((u) => new Float64Array(u.length)), step: Infinity }));
      part.w[l][j] = w[l][j];
      part.step = Math.min(part.step, stepOf[l][j]);
    }
  });
  return [...parts.values()];
}

/**
 * Part of a tangent, and the length of its step: the least of its elements' own steps, so that none
 * is stepped further than its rule allows. (The largest |x| of each leaf set it, and stepped an
 * element of 0.3 beside one of 1234.5 by 6.)
 */
interface Part {
  w: Float64Array[];
  step: number;
}

/** Elements whose steps are within this factor of each other share a directional difference. */
const PART_SPAN = 16;

/** Two parts' results as one: values, errors and rounding add up, strays by element take the larger. */
function sum(a: DirectionalResult | undefined, b: DirectionalResult): DirectionalResult {
  if (!a) return b;
  const add = (x?: Float64Array[], y?: Float64Array[]) => (x && y ? x.map((v, o) => v.map((e, i) => e + y[o][i])) : (x ?? y));
  return {
    values: add(a.values, b.values)!,
    errors: add(a.errors, b.errors),
    rounding: add(a.rounding, b.rounding),
    stray: a.stray!.map((v, l) => v.map((e, j) => Math.max(e, b.stray![l][j]))),
  };
}

/** J w for one part, in units of w: a single element's column, or a directional difference along w. */
async function partJvp(problem: Problem, options: ResolvedOptions, { w, step }: Part, withRounding: boolean): Promise<DirectionalResult> {
  const single = singleElement(w);
  if (single) return elementJvp(problem, options, single, withRounding);
  const ww = dot(w, w);
  const stray = w.map((v) => new Float64Array(v.length));
  const steps = problem.stepRule(options);
  const nominal = step / Math.sqrt(ww);
  /** The step actually taken along w between two points, in units of w. */
  const taken = (a: ArrayLike<number>[], b: ArrayLike<number>[]) => {
    const s = stepTaken(problem, a, b, w);
    if (!Number.isFinite(s)) throw invalidArgument(`the step along the tangent (length ${nominal * Math.sqrt(ww)}, ${steps.describeStep(w.findIndex((v) => v.some((x) => x !== 0)))}) is too long for FP64: <x+ - x-, v> is not finite; use a smaller eps`);
    return s;
  };
  const multiples = ruleMultiples(options.algorithm);
  const { length: t, stencil } = tangentStep(problem, steps, w, nominal, taken, Math.min(...multiples), options.algorithm === "forward");
  const direction: Direction = { problem, steps, w, stray, withRounding };
  const result = options.algorithm === "forward" ? await forward(direction, t, stencil) : await centralFamily(direction, t, taken, multiples, stencil);
  const weights = multiples.length > 1 ? EXTRAPOLATION_WEIGHTS : 1;
  return { ...result, stray: stray.map((d) => d.map((x) => x * weights)) };
}

/** The tangent's one nonzero element, if it has exactly one. */
function singleElement(tangent: Float64Array[]): { leaf: number; index: number; v: number } | undefined {
  let found: { leaf: number; index: number; v: number } | undefined;
  for (let l = 0; l < tangent.length; l++) {
    for (let j = 0; j < tangent[l].length; j++) {
      if (tangent[l][j] === 0) continue;
      if (found) return undefined;
      found = { leaf: l, index: j, v: tangent[l][j] };
    }
  }
  return found;
}

/**
 * J v along a single element j: v_j times column j, by the Jacobian's rule for that element (its own
 * step; one-sided near a domain bound, where a direction could not step at all). The step is taken
 * in x_j alone and divided by as taken: no stray.
 */
async function elementJvp(problem: Problem, options: ResolvedOptions, { leaf, index, v }: { leaf: number; index: number; v: number }, withRounding: boolean): Promise<DirectionalResult> {
  const row = await elementRow(problem, options, leaf, index, withRounding);
  const times = (arrays: Float64Array[], factor: number, what: string) =>
    arrays.map((a, o) => {
      const out = problem.outputs![o];
      const values = a.map((x) => x * factor);
      checkFinite(values, (i) => `${what} of ${out.path}${out.shape.length ? ` (flat index ${i})` : ""}`);
      return values;
    });
  const values = times(row.values, v, "the JVP");
  const errors = row.errors && times(row.errors, Math.abs(v), "the JVP's error estimate");
  const rounding = row.rounding && times(row.rounding, Math.abs(v), "the JVP's rounding");
  row.release?.();
  return { values, errors, rounding, stray: problem.leaves.map((l) => new Float64Array(l.size)) };
}

/**
 * The step s along w that the points a - b took, fitted by least squares with each element weighted
 * by its precision (1 / its rounding², the spacing of its numbers at the points): elements that
 * round coarsely say little of s. Unweighted, an FP32 leaf's rounding set the s every output is
 * divided by, and outputs of the FP64 leaves alone lost six orders of accuracy (a JVP along x FP64
 * and b FP32: 9.6e-4 against 2.1e-9 along x alone).
 */
function stepTaken(problem: Problem, a: ArrayLike<number>[], b: ArrayLike<number>[], w: Float64Array[]): number {
  const rounding = (l: number, j: number) => (problem.leaves[l].fp32 ? 2 ** -23 : 2 ** -52) * Math.max(Math.abs(a[l][j]), Math.abs(b[l][j]), Number.MIN_VALUE * 2 ** 52);
  // Weights relative to the coarsest rounding (so none overflows), capped where roundings differ beyond reason.
  let coarsest = 0;
  for (let l = 0; l < w.length; l++) for (let j = 0; j < w[l].length; j++) if (w[l][j] !== 0) coarsest = Math.max(coarsest, rounding(l, j));
  let along = 0;
  let norm = 0;
  for (let l = 0; l < w.length; l++) {
    for (let j = 0; j < w[l].length; j++) {
      if (w[l][j] === 0) continue;
      const ratio = coarsest / rounding(l, j);
      const weight = w[l][j] * Math.min(ratio * ratio, 2 ** 600);
      along += weight * (a[l][j] - b[l][j]);
      norm += weight * w[l][j];
    }
  }
  return along / norm;
}

/** From x + t w (the stencil tangentStep checked) and x. */
async function forward(direction: Direction, t: number, { plus, s }: Stencil): Promise<DirectionalResult> {
  const { problem } = direction;
  // f(x) is the request's own (Problem.base): evaluated once, whoever asked for it first.
  const [[fPlus], fBase] = await Promise.all([problem.evaluateAll([[asChanges(plus), () => "x + t v"]]), problem.base()]);
  const values = fPlus.map((fp, o) => fp.map((x, i) => (x - fBase[o][i]) / s));
  await straighten(direction, t, values, s, plus, undefined, fBase);
  return { values, rounding: direction.withRounding ? stencilRounding(problem, [1 / s, -1 / s], [fPlus, fBase]) : undefined };
}

/** Central differences at the rule's multiples of t, largest first (their points are checked first); the smallest's points are tangentStep's. */
async function centralFamily(direction: Direction, t: number, taken: Taken, multiples: readonly number[], smallest: Stencil): Promise<DirectionalResult> {
  const { problem, steps, w } = direction;
  const differences: CentralDifference[] = [];
  for (const m of multiples) {
    const plus = m === smallest.multiple ? smallest.plus : along(problem, steps, w, m * t);
    const minus = m === smallest.multiple ? smallest.minus! : along(problem, steps, w, -m * t);
    const s = m === smallest.multiple ? smallest.s : taken(plus, minus);
    const [fPlus, fMinus] = await problem.evaluateAll([
      [asChanges(plus), () => `x + ${m === 1 ? "" : m}t v`],
      [asChanges(minus), () => `x - ${m === 1 ? "" : m}t v`],
    ]);
    const rounding = multiples.length > 1 || direction.withRounding ? stencilRounding(problem, [1 / s, -1 / s], [fPlus, fMinus]) : [];
    const difference = centralQuotient(fPlus, fMinus, s);
    await straighten(direction, m * t, difference.values, s, plus, minus, undefined, multiples.length > 1 ? ESTIMATED_STRAY : NEGLIGIBLE_STRAY);
    differences.push({ ...difference, halfWidth: s / 2, spread: Math.SQRT2 / Math.abs(s), rounding });
  }
  if (multiples.length === 1) return { values: differences[0].values, rounding: direction.withRounding ? differences[0].rounding : undefined };
  // The probe's points x + i p, i <= 8, lie within x + t w / 8: inside wherever x ± t w is.
  const probe = await problem.noise(() => w.map((v) => v.map((x) => PROBE_SPACING * t * x)));
  return extrapolate(differences, rowNoise(probe, differences, await problem.base()));
}

/** A JVP along w: the problem, its step rule, w, the stray found so far (per leaf and element, in units of w), and whether results carry their rounding. */
interface Direction {
  problem: Problem;
  steps: StepRule;
  w: Float64Array[];
  stray: Float64Array[];
  withRounding: boolean;
}

/** A stray below this share of w (relative to w's largest element) is left as it is: FP64 inputs at the rules' steps stray 1e-11 to 1e-8. */
const NEGLIGIBLE_STRAY = 2 ** -24;

/**
 * Under the rules with an error estimate, what is left may stray this much at most: a stray the
 * estimate did not count made Richardson's JVP of exp(x) at x = 123.45 (FP64) 1.7 times its
 * estimate off, and at FP32 inputs 50 times.
 */
const ESTIMATED_STRAY = 2 ** -40;

/** Rounds of straightening a stencil may take: each squares what strays (FP32's 2^-10 is below 2^-40 after two). */
const MOST_STRAIGHTENINGS = 3;

/**
 * A stencil whose points x+ and x- (x for forward) rounded to their inputs' precision differs along
 * w + r, r = (x+ - x-) / s - w, not along w: its quotient D is J w + J r. FP32 inputs put r at up to
 * 2^-10 of w (MAX_MISDIRECTION), and a JVP along [0.3, 1, 0.7] was off by 2e-4 relative where each
 * element alone was exact. While r is not negligible (`negligible`, relative to w), J r is taken by
 * a difference of its own along r, as long as the stencil's step, and subtracted from D in place:
 * what is left strays only by that difference's rounding e, about |r| / |w| times less (D is then
 * J w - J e, and the next round takes r = -e). Its points outside the domain leave D as it is (r is
 * then the stray reported). Raises `stray` to what is left.
 */
async function straighten({ problem, steps, w, stray }: Direction, t: number, difference: Float64Array[], s: number, plus: Float64Array[], minus?: Float64Array[], fBase?: Float64Array[], negligible = NEGLIGIBLE_STRAY): Promise<void> {
  const x: ArrayLike<number>[] = problem.leaves.map((leaf) => leaf.data);
  const largest = (vs: Float64Array[]) => vs.reduce((most, v) => v.reduce((m, e) => Math.max(m, Math.abs(e)), most), 0);
  const note = (left: Float64Array[]) => left.forEach((v, l) => v.forEach((e, j) => (stray[l][j] = Math.max(stray[l][j], Math.abs(e)))));
  const reach = t * Math.sqrt(dot(w, w));
  let r = w.map((v, l) => v.map((wj, j) => (plus[l][j] - (minus ?? x)[l][j]) / s - wj));
  for (let round = 0; round < MOST_STRAIGHTENINGS && largest(r) > negligible * largest(w); round++) {
    const u = reach / Math.sqrt(dot(r, r));
    let rPlus: Float64Array[];
    let rMinus: Float64Array[] | undefined;
    try {
      rPlus = along(problem, steps, r, u);
      if (minus) rMinus = along(problem, steps, r, -u);
    } catch {
      break;
    }
    const jobs: [Change[], () => string][] = [[asChanges(rPlus), () => "x + u (a step along the rounding of x ± t v)"]];
    if (rMinus) jobs.push([asChanges(rMinus), () => "x - u (a step along the rounding of x ± t v)"]);
    const [fPlus, fMinus = fBase!] = await problem.evaluateAll(jobs);
    const sr = stepTaken(problem, rPlus, rMinus ?? x, r);
    difference.forEach((d, o) => {
      for (let i = 0; i < d.length; i++) d[i] -= (fPlus[o][i] - fMinus[o][i]) / sr;
    });
    const taken = r;
    r = taken.map((v, l) => v.map((rj, j) => rj - (rPlus[l][j] - (rMinus ?? x)[l][j]) / sr));
  }
  note(r);
}
