/**
 * Step rules. Every difference quotient divides by the step actually taken: the perturbed value is
 * rounded to the input's precision (FP32 or FP64), so for FP32 inputs or large |x| the real step
 * differs from the nominal h (tesseract-core divides by h and is wrong there).
 */

import { invalidArgument, type TesseractError } from "../../common/errors";
import type { AlgorithmName, ResolvedOptions } from "./options";
import type { DomainBounds } from "../tesseract";
import { elementName, type InputLeaf } from "../eval/input-leaf";

const scratch = new DataView(new ArrayBuffer(8));

/** The neighbour of x one unit in the last place towards `up` (true: +inf), in FP32 or FP64. */
export function nextAfter(x: number, up: boolean, fp32: boolean): number {
  if (Number.isNaN(x)) return x;
  if (x === 0) return (up ? 1 : -1) * (fp32 ? 2 ** -149 : Number.MIN_VALUE);
  // For IEEE floats, adding one to the bit pattern moves away from zero.
  const away = (x > 0) === up;
  if (fp32) {
    scratch.setFloat32(0, x);
    scratch.setInt32(0, scratch.getInt32(0) + (away ? 1 : -1));
    return scratch.getFloat32(0);
  }
  scratch.setFloat64(0, x);
  scratch.setBigInt64(0, scratch.getBigInt64(0) + (away ? 1n : -1n));
  return scratch.getFloat64(0);
}

/** fl(x + h) in the input's precision; one ulp further when that rounds back to x (never a zero step). */
export function stepped(x: number, h: number, fp32: boolean): number {
  const y = fp32 ? Math.fround(x + h) : x + h;
  return y !== x ? y : nextAfter(x, h > 0, fp32);
}

const MACHINE_EPSILON = { fp64: Number.EPSILON, fp32: 2 ** -23 };
/** The largest finite FP64 and FP32 numbers. */
const LARGEST = { fp64: Number.MAX_VALUE, fp32: 3.4028234663852886e38 };

/** tesseract-core's step: eps = 1e-4, absolute. */
export const DEFAULT_ABSOLUTE_EPS = 1e-4;

/** The step when neither the request nor the Tesseract sets eps: decided here, once. */
export function defaultEps(algorithm: AlgorithmName, relative: boolean, fp32: boolean): number {
  return relative ? defaultRelativeEps(algorithm, fp32) : DEFAULT_ABSOLUTE_EPS;
}

/**
 * The error-optimal relative step for a rule of order p, eps ≈ ε^(1/(p+1)) with ε the machine epsilon
 * of the input or, where coarser, of the requested outputs (truncation ~ h^p balanced against
 * rounding ~ ε/h): forward (p = 1) √ε ≈ 1.5e-8, central (p = 2) ∛ε ≈ 6.1e-6, Richardson (p = 4)
 * ε^(1/5) ≈ 7.4e-4 for FP64; FP32: 3.5e-4, 4.9e-3, 0.041. The adaptive rule extrapolates in pairs (4h, h), (h, h/4), ... down to h/64 (rows.ts): with
 * h = ε^(1/5) / 4 its largest pair meets Richardson's optimum (4h = ε^(1/5)) and its smallest steps
 * reach towards central's (h/64 ≈ 2.9e-6), so it is never far worse than either: 1.8e-4 (FP64),
 * 0.010 (FP32).
 */
export function defaultRelativeEps(algorithm: AlgorithmName, fp32: boolean): number {
  const e = fp32 ? MACHINE_EPSILON.fp32 : MACHINE_EPSILON.fp64;
  if (algorithm === "forward") return Math.sqrt(e);
  if (algorithm === "richardson") return e ** (1 / 5);
  if (algorithm === "adaptive") return e ** (1 / 5) / 4;
  return Math.cbrt(e);
}

/**
 * The step multiples the adaptive rule tries, largest first, a factor 4 apart: 1024× from the
 * largest to the smallest, so it finds a step whether the rule's h is too small or too large.
 */
export const ADAPTIVE_MULTIPLES = [16, 4, 1, 1 / 4, 1 / 16, 1 / 64];
/** Richardson's steps, 2h then h (rows.ts, extrapolate). */
export const RICHARDSON_MULTIPLES = [2, 1];

/** The step multiples a rule takes, each on both sides (forward: one side, chosen per element). */
export function ruleMultiples(algorithm: AlgorithmName): readonly number[] {
  return algorithm === "richardson" ? RICHARDSON_MULTIPLES : algorithm === "adaptive" ? ADAPTIVE_MULTIPLES : [1];
}

/**
 * The multiple of h whose step must move x for the rule's h to be kept (else the element falls back,
 * see StepRule): the smallest the rule takes, except the adaptive rule's, which is h itself. Its
 * smaller multiples that do not move x are left out instead (rows.ts, grouped.ts): falling back for
 * h / 64 alone swapped an absolute step of 1e-4 for 1.8e8 at x = 1e12 (sin: 0 for 0.79, with an
 * estimate of 7e-9), where Richardson's h and 2h did.
 */
export function keptStepMultiple(algorithm: AlgorithmName): number {
  return algorithm === "adaptive" ? 1 : Math.min(...ruleMultiples(algorithm));
}

/** Refuses an input element that is NaN or ±Inf, naming it: no step from it is a number. */
export function checkFiniteInputs(leaves: readonly InputLeaf[]): void {
  for (const leaf of leaves) {
    const index = leaf.data.findIndex((x) => !Number.isFinite(x));
    if (index >= 0) throw invalidArgument(`${elementName(leaf, index)} is ${leaf.data[index]}: finite differences need finite inputs`);
  }
}

/** At most this many adjusted elements are named; the rest are counted. */
const MAX_ADJUSTED_NAMED = 100;

/**
 * The step rule of one request: h_j = eps for absolute steps, h_j = eps · max(|x_j|, typical) for
 * relative ones, with eps from `eps_by_path`, else `eps`, else the default for the mode (1e-4
 * absolute, `defaultRelativeEps` relative). Perturbed values are rounded to the input's precision and
 * never equal x; each element moved off the rule is reported once.
 *
 * Where h_j, at the smallest multiple the algorithm steps by, is below the spacing of the input's
 * numbers at x_j (x_j ± h_j rounds to x_j: a large |x| under absolute steps, or a tiny eps), the
 * element takes the algorithm's default relative step instead, defaultRelativeEps · max(|x_j|,
 * typical), as scipy's approx_derivative falls back for an absolute step that rounds to nothing. One
 * ulp instead (this rule before) left the difference to the outputs' rounding: zeros, or a few ulps
 * of f over one of x, answered as a derivative, and Richardson's points ±h and ±2h could coincide.
 */
export class StepRule {
  private readonly eps: number[];
  /** Where each leaf's eps comes from, for messages. */
  private readonly epsSource: string[];
  private readonly typical: number[];
  private readonly relative: boolean;
  /** The multiple of h that must move x (keptStepMultiple), and each leaf's fallback relative eps. */
  private readonly smallest: number;
  private readonly fallbackEps: number[];
  private readonly noted = new Set<string>();
  private unnamed = 0;

  constructor(
    options: ResolvedOptions,
    private readonly leaves: readonly InputLeaf[],
    /** Per leaf, the open domain its elements must stay in. */
    private readonly bounds: readonly (DomainBounds | undefined)[] = [],
    /** A requested output is FP32: default relative steps are sized for the coarser precision (output-precision.ts). */
    outputsFp32 = false,
  ) {
    // No step from NaN or ±Inf is a number: refused before any evaluation, naming the element.
    checkFiniteInputs(leaves);
    // Nor from outside its declared domain (no eps helps there: the input itself is the matter).
    leaves.forEach((leaf, l) => {
      const index = bounds[l] ? leaf.data.findIndex((x) => !this.contains(l, x)) : -1;
      if (index >= 0) throw invalidArgument(`${elementName(leaf, index)} is ${leaf.data[index]}, outside its domain ${this.describeBounds(l)}: finite differences need inputs inside it`);
    });
    this.relative = options.stepMode === "relative";
    this.eps = leaves.map((l) => options.epsByPath?.[l.path] ?? options.eps ?? defaultEps(options.algorithm, this.relative, l.fp32 || outputsFp32));
    this.epsSource = leaves.map((l) => (options.epsByPath?.[l.path] !== undefined ? `options.eps_by_path.{${l.path}}` : options.eps !== undefined ? "eps" : "the default eps"));
    this.typical = leaves.map((l) => options.typical?.[l.path] ?? 1);
    this.smallest = keptStepMultiple(options.algorithm);
    this.fallbackEps = leaves.map((l) => defaultRelativeEps(options.algorithm, l.fp32 || outputsFp32));
  }

  /** The step at value x of leaf `leaf`: the rule's, or its fallback where that rounds to nothing. */
  size(leaf: number, x: number, ruled = this.ruled(leaf, x)): number {
    return this.resolves(leaf, x, ruled) ? ruled : this.fallback(leaf, x);
  }

  /** The rule's step at x: eps, or eps · max(|x|, typical). */
  private ruled(leaf: number, x: number): number {
    return this.relative ? this.eps[leaf] * Math.max(Math.abs(x), this.typical[leaf]) : this.eps[leaf];
  }

  /**
   * Whether the adaptive rule leaves the step `multiple` · h out for an element: it does not move x,
   * or twice it not further (`resolves`). Noted.
   */
  leavesOut(leaf: number, index: number, multiple: number): boolean {
    const x = this.leaves[leaf].data[index];
    if (this.resolves(leaf, x, this.size(leaf, x), multiple)) return false;
    this.noteSkipped(leaf, index, multiple, "it does not move x in its precision");
    return true;
  }

  /**
   * Whether the multiple s of h (by default keptStepMultiple's) moves x at all, and twice it moves x
   * further, in the leaf's precision: else stencil points coincide (Richardson's x + h and x + 2h
   * at 1.1 ulps of h, its extrapolation then dividing by zero).
   */
  private resolves(leaf: number, x: number, h: number, multiple = this.smallest): boolean {
    const s = multiple * h;
    // A step as long as x is no rounding matter (one too long for FP64 is `overflow`'s to refuse).
    if (!(Math.abs(s) < Math.abs(x))) return s !== 0;
    if (this.leaves[leaf].fp32) {
      const [up, down] = [Math.fround(x + s), Math.fround(x - s)];
      return up !== x && down !== x && Math.fround(x + 2 * s) !== up && Math.fround(x - 2 * s) !== down;
    }
    return x + s !== x && x - s !== x && x + 2 * s !== x + s && x - 2 * s !== x - s;
  }

  /** The algorithm's default relative step at x (see the class comment). */
  private fallback(leaf: number, x: number): number {
    return this.fallbackEps[leaf] * Math.max(Math.abs(x), this.typical[leaf]);
  }

  /**
   * x_j + multiple · h_j in the leaf's precision; one ulp away when the step would round to nothing
   * (noted in adjusted_steps unless `noted` is false: the sparsity verification's own short steps).
   * Refused (INVALID_ARGUMENT) unless it and twice its distance from x_j are finite, so that the
   * width between any two points of a stencil, x ± multiple · h, is finite too.
   */
  perturbed(leaf: number, index: number, multiple: number, noted = true): number {
    const input = this.leaves[leaf];
    const x = input.data[index];
    const h = multiple * this.elementStep(leaf, index);
    let y = input.fp32 ? Math.fround(x + h) : x + h;
    if (y === x) {
      if (noted) this.note(`${elementName(input, index)}: a step of ${h} is below one ulp of ${y}; stepped one ulp instead`);
      y = nextAfter(y, h > 0, input.fp32);
    }
    if (!Number.isFinite(y) || !Number.isFinite(2 * (y - x))) throw this.overflow(leaf, index, multiple, y);
    return y;
  }

  /** The refusal of a step whose point, or whose width, is not a finite number. */
  overflow(leaf: number, index: number, multiple: number, y: number): TesseractError {
    const input = this.leaves[leaf];
    const x = input.data[index];
    const m = Math.abs(multiple) === 1 ? "" : `${Math.abs(multiple)}`;
    const precision = input.fp32 ? "FP32" : "FP64";
    const largest = input.fp32 ? LARGEST.fp32 : LARGEST.fp64;
    // |x| + m h must stay below the largest number, and 2 m h too (the width between x - m h and x + m h).
    const limit = Math.min(largest - Math.abs(x), largest / 2) / Math.abs(multiple);
    return invalidArgument(
      `${this.describeStep(leaf)} gives ${elementName(input, index)} = ${x} the step h = ${this.size(leaf, x)}, and x ${multiple < 0 ? "-" : "+"} ${m}h = ${y} ` +
        `(or its distance from x) is not a finite ${precision} number; expected h at most ${limit.toPrecision(3)} here, so that x ± ${m}h and the width between them are finite: use a smaller eps`,
    );
  }

  /** How h is set for a leaf, for messages: "eps = 1e+308 (absolute steps, h = eps)". */
  describeStep(leaf: number): string {
    const rule = this.relative ? `relative steps, h = eps · max(|x|, typical magnitude ${this.typical[leaf]})` : "absolute steps, h = eps";
    return `${this.epsSource[leaf]} = ${this.eps[leaf]} (${rule})`;
  }

  /** fl(x_j + multiple · h_j) in the leaf's precision (may equal x_j; `perturbed` never does). */
  private perturbedValue(leaf: number, index: number, multiple: number): number {
    const input = this.leaves[leaf];
    const x = input.data[index];
    const h = multiple * this.size(leaf, x);
    return input.fp32 ? Math.fround(x + h) : x + h;
  }

  /** Element j's step: the rule's, or its fallback where that rounds to nothing (noted, as `perturbed` notes it). */
  elementStep(leaf: number, index: number): number {
    const x = this.leaves[leaf].data[index];
    const ruled = this.ruled(leaf, x);
    const size = this.size(leaf, x, ruled);
    if (size !== ruled) this.noteFallback(leaf, index, ruled);
    return size;
  }

  /**
   * The noise probe's increment p_j for every element (noise.ts): spacing · h_j towards +inf, or
   * towards -inf when `count` increments would leave the domain; 0 where neither side has room or
   * the points would not be finite (that element's own steps are refused with a message).
   */
  probe(spacing: number, count: number): Float64Array[] {
    return this.leaves.map((input, leaf) =>
      Float64Array.from(input.data, (x) => {
        const p = spacing * this.size(leaf, x);
        const fits = (y: number) => Number.isFinite(input.fp32 ? Math.fround(y) : y) && this.contains(leaf, y);
        return fits(x + count * p) ? p : fits(x - count * p) ? -p : 0;
      }),
    );
  }

  /** Whether x_j + multiple · h_j stays strictly inside the leaf's domain bounds. */
  inside(leaf: number, index: number, multiple: number): boolean {
    return this.contains(leaf, this.perturbedValue(leaf, index, multiple));
  }

  /** Whether a value of leaf `leaf` lies strictly inside its domain bounds. */
  contains(leaf: number, y: number): boolean {
    const b = this.bounds[leaf];
    return !b || (!(b.lower !== undefined && y <= b.lower) && !(b.upper !== undefined && y >= b.upper));
  }

  /** The side (+1 or -1) with room for two steps of `multiple`, for a one-sided stencil; 0 if none. */
  oneSided(leaf: number, index: number, multiple: number): 1 | -1 | 0 {
    if (this.inside(leaf, index, multiple) && this.inside(leaf, index, 2 * multiple)) return 1;
    if (this.inside(leaf, index, -multiple) && this.inside(leaf, index, -2 * multiple)) return -1;
    return 0;
  }

  describeBounds(leaf: number): string {
    const b = this.bounds[leaf] ?? {};
    return `(${b.lower ?? "-inf"}, ${b.upper ?? "inf"})`;
  }

  /** Reports an element differenced on one side of a domain bound. */
  noteOneSided(leaf: number, index: number, side: 1 | -1): void {
    this.note(`${elementName(this.leaves[leaf], index)}: one-sided (${side > 0 ? "forward" : "backward"}) stencil, the domain is ${this.describeBounds(leaf)}`);
  }

  /** Reports a step of the adaptive sequence that could not be evaluated and was left out. */
  noteSkipped(leaf: number, index: number, multiple: number, why: string): void {
    this.note(`${elementName(this.leaves[leaf], index)}: the step ${multiple}h was left out (${why})`);
  }

  /** Reports an element whose rule's step rounds to nothing, and the step it took instead. */
  private noteFallback(leaf: number, index: number, ruled: number): void {
    const input = this.leaves[leaf];
    const x = input.data[index];
    const step = this.smallest === 1 ? `${ruled}` : `${ruled} / ${1 / this.smallest}`;
    this.note(
      `${elementName(input, index)}: a step of ${step} is below the spacing of ${input.fp32 ? "FP32" : "FP64"} numbers at ${x}; ` +
        `took h = ${this.fallback(leaf, x).toPrecision(3)} instead (the relative step ${this.fallbackEps[leaf].toPrecision(3)} · max(|x|, ${this.typical[leaf]}))`,
    );
  }

  /** Reports a JVP's step along its tangent lengthened from `from` to `to` (jvp.ts, tangentStep). */
  noteTangentStep(from: number, to: number): void {
    this.note(`the step along the tangent: ${from} is too short for the spacing of the inputs' numbers (the points would not lie along the tangent); took ${to}`);
  }

  private note(message: string): void {
    if (this.noted.size < MAX_ADJUSTED_NAMED) this.noted.add(message);
    else this.unnamed++;
  }

  /** What stats.adjusted_steps reports. */
  adjusted(): string[] {
    const named = [...this.noted];
    return this.unnamed ? [...named, `... and ${this.unnamed} more`] : named;
  }
}
