/**
 * Analytic values against finite differences: the comparisons, a running tally per check (endpoint,
 * input path, output path), and the report (tesseract.v1.GradientCheck) made from the tallies.
 */
import { elementName } from "../eval/input-leaf";
import type { Leaf } from "./leaves";
import type { CheckEndpoint } from "./request";
import { plural } from "../../common/plural";

/** tesseract.v1.GradientCheck. */
export interface GradientCheck {
  endpoint: CheckEndpoint;
  input_path: string;
  output_path: string;
  max_abs_error: number;
  /** Largest |analytic − fd| / |fd| over values with fd ≠ 0 (values with fd = 0 are judged by atol). */
  max_rel_error: number;
  /** jacobian and vjp: sampled elements of the input; jvp: tangent directions. */
  rows_checked: number;
  /** Rows with at least one value beyond atol + rtol·|fd|. */
  failures: number;
  message: string;
}

const show = (x: number, digits = 7) => (Number.isFinite(x) ? String(Number(x.toPrecision(digits))) : String(x));

/** Two values to as many digits as tell them apart (7 at least): "analytic 2, finite differences 2" told nothing. */
function showPair(a: number, b: number): [string, string] {
  let digits = 7;
  while (digits < 17 && a !== b && show(a, digits) === show(b, digits)) digits++;
  return [show(a, digits), show(b, digits)];
}


/** Running comparison of analytic values with finite differences for one check. */
export class Tally {
  rows = 0;
  failedRows = 0;
  values = 0;
  failedValues = 0;
  maxAbs = 0;
  maxRel = 0;
  private rowFailed = false;
  private worst?: { score: number; where: () => string; analytic: number; fd: number };

  constructor(
    readonly rtol: number,
    readonly atol: number,
  ) {}

  /**
   * One value; `where` names it, should it be the worst. `unresolved`: how far the finite
   * difference may be off for reasons no tolerance is about (its direction's rounding), added to
   * what is allowed.
   */
  value(analytic: number, fd: number, where: () => string, unresolved = 0): void {
    this.values++;
    let abs = Math.abs(analytic - fd);
    if (Number.isNaN(abs)) abs = Infinity;
    const allowed = this.atol + this.rtol * Math.abs(fd) + unresolved;
    // A NaN or infinite analytic entry fails outright: it made `unresolved` NaN (|J| times a stray
    // of 0), `abs > allowed` false, and the jvp check passed it.
    const ratio = abs / allowed;
    const score = Number.isFinite(analytic) && !Number.isNaN(ratio) ? ratio : Infinity;
    if (score > 1) {
      this.failedValues++;
      this.rowFailed = true;
    }
    this.maxAbs = Math.max(this.maxAbs, abs);
    if (fd !== 0) this.maxRel = Math.max(this.maxRel, abs / Math.abs(fd));
    if (!this.worst || score > this.worst.score) this.worst = { score, where, analytic, fd };
  }

  /** Closes a row: it failed when any of its values did. */
  endRow(): void {
    this.rows++;
    if (this.rowFailed) this.failedRows++;
    this.rowFailed = false;
  }

  message(rowWord: string): string {
    const w = this.worst;
    const [analytic, fd] = w ? showPair(w.analytic, w.fd) : [];
    const worst = w ? `; worst at ${w.where()}: analytic ${analytic}, finite differences ${fd}` : "";
    if (this.failedRows === 0) return `ok: ${plural(this.rows, rowWord)}, ${plural(this.values, "value")} within atol + rtol·|fd|${worst}`;
    return `${this.failedRows} of ${plural(this.rows, rowWord)} failed (${this.failedValues} of ${plural(this.values, "value")} beyond atol ${this.atol} + rtol ${this.rtol}·|fd|)${worst}`;
  }
}

/** The tallies of one request, made on first use: a check without one never compared a value. */
export class Tallies {
  private readonly all = new Map<string, Tally>();

  constructor(
    readonly rtol: number,
    readonly atol: number,
  ) {}

  get(endpoint: CheckEndpoint, leaf: Leaf, out: Leaf): Tally {
    const key = Tallies.key(endpoint, leaf, out);
    let t = this.all.get(key);
    if (!t) this.all.set(key, (t = new Tally(this.rtol, this.atol)));
    return t;
  }

  /** Whether any row of any tally failed. */
  failed(): boolean {
    return [...this.all.values()].some((t) => t.failedRows > 0);
  }

  find(endpoint: CheckEndpoint, leaf: Leaf, out: Leaf): Tally | undefined {
    return this.all.get(Tallies.key(endpoint, leaf, out));
  }

  private static key(endpoint: CheckEndpoint, leaf: Leaf, out: Leaf): string {
    return `${endpoint}\u0000${leaf.path}\u0000${out.path}`;
  }
}

/**
 * J·v (analytic, J flat [out, leaf]) against the FD JVP along v: one row. `uncertain`: how far each
 * FD value may be off by the engine's own account (its error estimate, or its outputs' rounding).
 */
export function compareJvp(t: Tally, J: Float64Array, v: Float64Array, stray: Float64Array, fd: Float64Array, uncertain: Float64Array, leaf: Leaf, out: Leaf): void {
  for (let i = 0; i < out.size; i++) {
    let sum = 0;
    // The FD JVP is J v' for a direction v' within `stray` of v: J v differs from it by up to Σ |J_ij| stray_j.
    let unresolved = uncertain[i];
    for (let j = 0; j < leaf.size; j++) {
      sum += J[i * leaf.size + j] * v[j];
      unresolved += Math.abs(J[i * leaf.size + j]) * stray[j];
    }
    t.value(sum, fd[i], () => `${elementName(out, i)} along a random tangent of ${leaf.path}`, unresolved);
  }
  t.endRow();
}

/** Column j of J against the FD column of element j (each value uncertain by `uncertain`, as compareJvp's): one row. */
export function compareColumn(t: Tally, J: Float64Array, column: Float64Array, uncertain: Float64Array, leaf: Leaf, j: number, out: Leaf): void {
  for (let i = 0; i < out.size; i++) t.value(J[i * leaf.size + j], column[i], () => `${elementName(out, i)} w.r.t. ${elementName(leaf, j)}`, uncertain[i]);
  t.endRow();
}

/** (wᵀ·J)_j against wᵀ·(FD column j): one row of one value. */
export function compareVjp(t: Tally, J: Float64Array, column: Float64Array, uncertain: Float64Array, w: Float64Array, leaf: Leaf, j: number, out: Leaf): void {
  let analytic = 0;
  let fd = 0;
  let unresolved = 0;
  for (let i = 0; i < out.size; i++) {
    analytic += w[i] * J[i * leaf.size + j];
    fd += w[i] * column[i];
    unresolved += Math.abs(w[i]) * uncertain[i];
  }
  t.value(analytic, fd, () => `${elementName(leaf, j)} for a random cotangent of ${out.path}`, unresolved);
  t.endRow();
}

/**
 * One GradientCheck per endpoint, input path and output path, in that order. `entry` gives the
 * analytic Jacobian's entry, or why it cannot be used (a failed check).
 */
export function report(endpoints: readonly CheckEndpoint[], leaves: readonly Leaf[], outputs: readonly Leaf[], entry: (out: Leaf, leaf: Leaf) => Float64Array | string, tallies: Tallies, maxEvals: number): GradientCheck[] {
  const checks: GradientCheck[] = [];
  for (const endpoint of endpoints) {
    for (const leaf of leaves) {
      for (const out of outputs) {
        const base = { endpoint, input_path: leaf.path, output_path: out.path, max_abs_error: 0, max_rel_error: 0, rows_checked: 0 };
        const J = entry(out, leaf);
        const t = tallies.find(endpoint, leaf, out);
        if (typeof J === "string") {
          checks.push({ ...base, failures: 1, message: J });
        } else if (!t && (leaf.size === 0 || out.size === 0)) {
          checks.push({ ...base, failures: 0, message: `nothing to check: ${leaf.size === 0 ? leaf.path : out.path} has no elements` });
        } else if (!t) {
          // Only when an engine call cost more than planned and spent the budget early.
          checks.push({ ...base, failures: 0, message: `not checked: max_evals ${maxEvals} was spent before this input path's turn` });
        } else {
          const rowWord = endpoint === "jvp" ? "tangent" : "row";
          checks.push({ ...base, max_abs_error: t.maxAbs, max_rel_error: t.maxRel, rows_checked: t.rows, failures: t.failedRows, message: t.message(rowWord) });
        }
      }
    }
  }
  return checks;
}
