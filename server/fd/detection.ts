/**
 * Detected structure (SPARSITY_MODE_DETECT): the first dense Jacobian of a Tesseract for given input
 * shapes and paths records where it is exactly zero; later requests group columns by that structure,
 * each verified by one extra evaluation pair along a random direction (two for forward rows, and a
 * pair along u/2 too for Richardson and adaptive rows, and for central and forward rows that fail at first) before any row is returned.
 *
 * Verification. With u a random direction (each element moved by ±(0.5..1.5) h_j / sqrt(r), r the
 * most nonzeros of a row J[i, :], in its own precision, FP32 elements by at least as many times 64
 * ulps, w_j = x_j+ - x_j- the width actually taken), the function moves by
 *   D_i = f_i(x + u) - f_i(x - u) ≈ sum_j J_ij w_j,
 * and the grouped Jacobian predicts P_i = sum_j J~_ij w_j. An entry (i, k) the structure wrongly
 * leaves out either goes unseen (no column of k's group touches i: D_i has J_ik w_k, P_i not) or is
 * folded into the entry of the column j of k's group that touches i (J~_ij = J_ij + J_ik w'_k / w'_j),
 * where D_i - P_i ≈ J_ik (w_k - w_j w'_k / w'_j): nonzero, the magnitudes being drawn at random and
 * independently. The test passes where |D_i - P_i| <= 1e-6 (sqrt(sum_j (J~_ij w_j)²) + |D_i|)
 * + 3 × the error estimates carried, sqrt(sum_j (e_ij w_j)²), + 16 × the rounding of both sides
 * + (forward rows) their truncation's bound below. Root sums of squares: the entries' truncation,
 * which 1e-6 allows for, and their errors add up under the random signs of w_j as such; the plain
 * sums let a missed entry of 1e-4 of a row of 1 000 entries pass.
 *
 * Forward rows are off by their O(h) truncation, J~_ij - J_ij ≈ h_j H_i,jj / 2 (H_i the Hessian of
 * f_i), so P_i - D_i ≈ sum_j m_j h_j² H_i,jj: far above 1e-6 on a curved function (correct
 * structures failed and ran dense, at more evaluations than dense alone). The second difference
 * along u, S_i = f_i(x + u) + f_i(x - u) - 2 f_i(x) ≈ sum_jk m_j m_k h_j h_k H_i,jk, bounds it:
 * where H_i is diagonal with one sign, |sum_j m_j h_j² H_i,jj| <= |S_i| / min |m_j| over the
 * columns j of row i's structure, and that much is allowed (the least |m_j| of every column would be
 * 2 sqrt(n), and let a missed entry of 20 times the rule's truncation pass at n = 100; twice the
 * bound let one pass 1 seed in 60). A missed dependence is caught where it exceeds about the forward
 * rule's own truncation of row i's entries, along two directions (verificationDirections); a
 * Hessian whose terms cancel in S_i fails, and runs dense.
 */
import { outputPrecision, type Change } from "../eval/evaluator";
import type { InputLeaf } from "../eval/input-leaf";
import type { ResolvedOptions } from "./options";
import { unitRoundoff, type Problem } from "./problem";
import { seededGenerator } from "./random";
import { effectiveAlgorithm, extrapolates, type Row } from "./rows";
import { groupable, VERIFICATION_REACH } from "./grouped";
import { buildStructure, MAX_PATTERN_NONZEROS, type Extent, type Structure } from "./sparsity";

/** Relative agreement the verification asks for (see above). */
const VERIFY_RTOL = 1e-6;
/**
 * The same for rows by an extrapolating rule (Richardson, adaptive), accurate to ~1e-12: their check
 * also moves along u/2, and (8 (D' - P') - (D - P)) / 3 cancels the O(u³) term of the difference
 * along u, which 1e-6 allowed for; what is left, the entries' own errors, their estimates carry.
 * 1e-6 let a missed entry of 1e-7 of its row pass (answered 0, its error estimate 0).
 */
const EXTRAPOLATED_RTOL = 1e-10;
/** The entries' error estimates count at this many times their root sum of squares (their plain sum let a missed 1e-5 of a row of 1 000 pass). */
const ESTIMATE_MARGIN = 3;
/** Rounding counts at this many times its estimate. */
const ROUNDING_MARGIN = 16;
/** Forward rows' truncation: allowed at this many times its bound from the second difference, |S_i| / min |m_j| over row i's columns (see above). */
const TRUNCATION_MARGIN = 1;
/** The random stream of the verification's direction (random.ts). */
const VERIFY_STREAM = 7;
/**
 * An FP32 element's verification move spans at least this many ulps of it, times its random factor
 * (0.5..1.5). Moves of under an ulp all rounded to one: the widths of a row's columns came out equal
 * but for their signs, and a missed entry folded into a group mate's (J~_ij = J_ij + J_ik) passed
 * whenever the two signs agreed (4 seeds in 10 for an entry of 1 000 in a row of entries of 700).
 */
const FP32_MOVE_ULPS = 64;

/** A recorded structure, or "dense" when the Jacobian had too many nonzeros to keep. */
export type Detected = Structure | "dense";

/** Which requests share a detected structure: the same input paths and shapes, the same output paths. */
export function detectionKey(leaves: readonly InputLeaf[], outputPaths: readonly string[]): string {
  return JSON.stringify([leaves.map((l) => [l.path, l.shape, l.fp32]), outputPaths]);
}

/** Sparse entries a structure keeps in memory (its dense blocks cost nothing). */
function storedEntries(detected: Detected): number {
  return detected === "dense" ? 0 : detected.storedEntries;
}

/**
 * The detected structures of one Tesseract, least recently used first out: at most `maxEntries`
 * structures and `maxNonzeros` stored entries in all (4 bytes each).
 */
export class DetectedPatterns {
  private readonly entries = new Map<string, Detected>();
  private stored = 0;

  constructor(
    readonly maxEntries = 64,
    readonly maxNonzeros = MAX_PATTERN_NONZEROS,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): Detected | undefined {
    const found = this.entries.get(key);
    if (found !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, found);
    }
    return found;
  }

  set(key: string, detected: Detected): void {
    this.delete(key);
    if (storedEntries(detected) > this.maxNonzeros) return;
    this.entries.set(key, detected);
    this.stored += storedEntries(detected);
    for (const [oldest, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.stored <= this.maxNonzeros) break;
      this.entries.delete(oldest);
      this.stored -= storedEntries(entry);
    }
  }

  delete(key: string): void {
    const found = this.entries.get(key);
    if (found === undefined) return;
    this.entries.delete(key);
    this.stored -= storedEntries(found);
  }
}

/** Collects where dense rows are nonzero; gives up (the Jacobian is "dense") past `limit` entries. */
export class ZeroRecorder {
  /** [output][leaf]: output indices and input indices of the nonzero entries (made at the first row). */
  private rows?: number[][][];
  private columns?: number[][][];
  private count = 0;

  constructor(
    private readonly leaves: readonly Extent[],
    private readonly limit = MAX_PATTERN_NONZEROS,
  ) {}

  add(row: Row): void {
    if (this.count > this.limit) return;
    const rows = (this.rows ??= row.values.map(() => this.leaves.map(() => [])));
    const columns = (this.columns ??= row.values.map(() => this.leaves.map(() => [])));
    row.values.forEach((values, o) => {
      const indices = row.indices?.[o];
      for (let k = 0; k < values.length; k++) {
        if (values[k] === 0) continue;
        rows[o][row.leaf].push(indices ? indices[k] : k);
        columns[o][row.leaf].push(row.index);
        this.count++;
      }
    });
  }

  /** The structure of what was recorded, for outputs of these paths and sizes. */
  result(outputs: readonly Extent[]): Detected {
    const { rows, columns } = this;
    if (!rows || !columns || this.count > this.limit || outputs.length !== rows.length) return "dense";
    const patterns = outputs.flatMap((out, o) => this.leaves.map((leaf, l) => ({ output_path: out.path, input_path: leaf.path, output_index: rows[o][l], input_index: columns[o][l] })));
    return buildStructure(patterns, this.leaves, outputs, { field: "a detected structure", fromRequest: false });
  }
}

/**
 * ±(0.5..1.5) / sqrt(r): the verification direction's multiple of each element's step (at most
 * VERIFICATION_REACH), r the most structural nonzeros of an output value's row. Each output moves
 * along its own row's elements only, by about one step; 1 / sqrt(n) moved a diagonal's outputs by
 * a hundredth of a step at n = 10 000, and FP32 rounding hid a missed 10 % entry. An FP32 element
 * moves by at least its random factor times FP32_MOVE_ULPS ulps.
 */
function directionMultiples(leaves: readonly InputLeaf[], seed: bigint, direction: number, rowNonzeros: number, steps: { elementStep(leaf: number, index: number): number }): Float64Array[] {
  const rng = seededGenerator(seed, VERIFY_STREAM + direction);
  const scale = 1 / Math.sqrt(Math.max(1, rowNonzeros));
  return leaves.map((leaf, l) =>
    Float64Array.from({ length: leaf.size }, (_, j) => {
      const draw = rng.next() >>> 0;
      const factor = VERIFICATION_REACH - 1 + (draw >>> 1) / 2 ** 31; // 0.5..1.5
      const least = leaf.fp32 ? (FP32_MOVE_ULPS * factor * fp32Ulp(leaf.data[j])) / steps.elementStep(l, j) : 0;
      return (draw & 1 ? 1 : -1) * Math.max(factor * scale, least);
    }),
  );
}

/** The spacing of FP32 numbers at x. */
function fp32Ulp(x: number): number {
  const a = Math.abs(Math.fround(x));
  return a < 2 ** -126 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

/**
 * Checks grouped rows against one random-direction evaluation pair (see above): undefined when they
 * agree, else where and by how much they do not. The rows are read once per pass: an iterable that
 * may be read again (held-rows.ts rebuilds them from its packed arrays each time).
 */
export async function verifyRows(problem: Problem, options: ResolvedOptions, rows: Iterable<Row>): Promise<string | undefined> {
  // Near a bound an element is not moved below; its column, computed alone over whole outputs, tells instead.
  for (const row of rows) if (row.unstructured) return row.unstructured;
  for (let direction = 0; direction < verificationDirections(effectiveAlgorithm(problem.size, options)); direction++) {
    const mismatch = await verifyAlong(problem, options, rows, direction);
    if (mismatch) return mismatch;
  }
  return undefined;
}

/**
 * Verification directions: one, or two for forward rows. Forward's allowance (above) leaves room
 * for a missed entry whose column's multiple nearly equals the folded column's along the direction
 * (one in 30 seeds let one twenty times the rule's truncation pass); along two independent
 * directions both must: none in 60 seeds at twice the truncation.
 */
export function verificationDirections(algorithm: string): number {
  return algorithm === "forward" ? 2 : 1;
}

/** Apply calls the verification makes when it passes at once: a pair per direction, two (along u and u/2) for an extrapolating rule; central and forward rows take 2 more per direction that fails at first (their second chance). */
export function verificationEvaluations(algorithm: ResolvedOptions["algorithm"]): number {
  return 2 * verificationDirections(algorithm) * (extrapolates(algorithm) ? 2 : 1);
}

/** The most structural nonzeros in the row of one output value (J[i, :]), over the grouped rows (columns). */
function mostRowNonzeros(problem: Problem, rows: Iterable<Row>): number {
  const counts = problem.outputs!.map((o) => new Uint32Array(o.shape.reduce((a, b) => a * b, 1)));
  for (const row of rows) {
    row.values.forEach((values, o) => {
      const indices = row.indices?.[o];
      for (let k = 0; k < values.length; k++) counts[o][indices ? indices[k] : k]++;
    });
  }
  return counts.reduce((most, c) => c.reduce((m, v) => Math.max(m, v), most), 0);
}

/** One random direction's check of the grouped rows (see above): undefined when they agree. */
async function verifyAlong(problem: Problem, options: ResolvedOptions, rows: Iterable<Row>, direction: number): Promise<string | undefined> {
  const steps = problem.stepRule(options);
  const algorithm = effectiveAlgorithm(problem.size, options);
  const leaves = problem.leaves;
  const multiples = directionMultiples(leaves, options.seed, direction, mostRowNonzeros(problem, rows), steps);
  // Rows by an extrapolating rule are checked along u and u/2 as well (see EXTRAPOLATED_RTOL).
  const scales = extrapolates(algorithm) ? [1, 0.5] : [1];
  const pointsAt = (scale: number) => {
    const plus = leaves.map((l) => Float64Array.from(l.data));
    const minus = leaves.map((l) => Float64Array.from(l.data));
    const widths = leaves.map((l) => new Float64Array(l.size));
    leaves.forEach((leaf, l) => {
      for (let j = 0; j < leaf.size; j++) {
        const m = multiples[l][j];
        // An element closer to a domain bound than its tiny step stays put, and so does one whose column
        // was computed alone (near a bound, one-sided): `unstructured` above verified it, and a
        // one-sided entry's truncation error is no matter for this check.
        if (!steps.inside(l, j, m) || !steps.inside(l, j, -m) || !groupable(steps, algorithm, { leaf: l, index: j })) continue;
        // Its own steps, m_j ~ 1/sqrt(r) of the rule's, are no step of the answer's: not in adjusted_steps.
        plus[l][j] = steps.perturbed(l, j, scale * m, false);
        minus[l][j] = steps.perturbed(l, j, -scale * m, false);
        widths[l][j] = plus[l][j] - minus[l][j];
      }
    });
    return { plus, minus, widths };
  };
  // Central rows that fail the check along u get a second chance along u/2 (2 more evaluations), which
  // allows for the entries' own O(h²) truncation, bounded by the cubic term along u: 1e-6 of the row
  // does not cover it at larger steps (a diagonal of x³ at x ~ 0.01, eps 1e-5, or at x ~ 1, eps 1e-3,
  // failed every verification and ran dense). Its points are made now, evaluated only then.
  const points = (secondChance(algorithm) ? [1, 0.5] : scales).map(pointsAt);
  const changes = (values: Float64Array[]): Change[] => values.map((v, leaf) => ({ leaf, values: v }));
  const evaluate = (from: number, to: number) =>
    problem.evaluateAll(
      points.slice(from, to).flatMap(({ plus, minus }, k) => [
        [changes(plus), () => `the sparsity verification's point x + ${from + k ? "u/2" : "u"}`],
        [changes(minus), () => `the sparsity verification's point x - ${from + k ? "u/2" : "u"}`],
      ] as const),
    );
  const evaluated = await evaluate(0, scales.length);
  // Forward rows' truncation bound (see above), from f(x), which forward rows evaluated already.
  const f0 = algorithm === "forward" ? await problem.base() : undefined;
  const zeros = () => evaluated[0].map((f) => new Float64Array(f.length));
  const predicted = [zeros(), zeros()];
  const [magnitude, carried, terms] = [zeros(), zeros(), zeros()];
  /** Per output value, the least |m_j| among the columns of its row's structure (the truncation bounds of forward and central rows). */
  const least = f0 || algorithm === "central" ? evaluated[0].map((f) => new Float64Array(f.length).fill(Infinity)) : undefined;
  const widths = points[0].widths;
  for (const row of rows) {
    const w = widths[row.leaf][row.index];
    if (w === 0) continue;
    const m = Math.abs(multiples[row.leaf][row.index]);
    row.values.forEach((values, o) => {
      const indices = row.indices?.[o];
      const errors = row.errors?.[o];
      for (let k = 0; k < values.length; k++) {
        const i = indices ? indices[k] : k;
        predicted[0][o][i] += values[k] * w;
        if (scales.length > 1) predicted[1][o][i] += values[k] * points[1].widths[row.leaf][row.index];
        magnitude[o][i] += (values[k] * w) ** 2;
        if (errors) carried[o][i] += (errors[k] * w) ** 2;
        terms[o][i] += m * m;
        if (least && values[k] !== 0) least[o][i] = Math.min(least[o][i], m);
      }
    });
  }
  const [fPlus, fMinus] = evaluated;
  const outputs = problem.outputs!;
  /** The first output value the rows mispredict; `half` f(x ± u/2), where central rows take their second chance. */
  const check = (half?: readonly Float64Array[][]): string | undefined => {
    for (let o = 0; o < outputs.length; o++) {
      const u = unitRoundoff(outputPrecision(outputs[o]));
      for (let i = 0; i < fPlus[o].length; i++) {
        const moved = fPlus[o][i] - fMinus[o][i];
        const along = Math.abs(fPlus[o][i]) + Math.abs(fMinus[o][i]);
        let mismatch = moved - predicted[0][o][i];
        // Rounding: of f at the points, and of each entry J~_ij, u |f_i| / h_j, times |w_j| = 2 |m_j| h_j;
        // the entries' roundings are independent, and add up as a root sum of squares (as magnitudes do).
        let rounding = u * (along + (f0 ? 2 * Math.abs(f0[o][i]) : 0) + along * Math.sqrt(terms[o][i]));
        let truncation = f0 && least![o][i] < Infinity ? (TRUNCATION_MARGIN / least![o][i]) * Math.abs(fPlus[o][i] + fMinus[o][i] - 2 * f0[o][i]) : 0;
        if (scales.length > 1) {
          const [halfPlus, halfMinus] = [evaluated[2][o][i], evaluated[3][o][i]];
          mismatch = (8 * (halfPlus - halfMinus - predicted[1][o][i]) - mismatch) / 3;
          // f at the half points, 8/3 of theirs; the entries' rounding, (8/3 · 1/2 + 1/3) of it, 5/3 in all (once above).
          rounding += u * ((8 * (Math.abs(halfPlus) + Math.abs(halfMinus)) + along) / 3 + (2 / 3) * along * Math.sqrt(terms[o][i]));
        }
        if (half && least![o][i] < Infinity) {
          // The cubic term along u, C = (4/3)(D - 2 D'), less its rounding: D is off by C, and central
          // entries by h_j² f'''/6, 1 / m_j² times their column's share of C. A function with no
          // curvature (C under its rounding) is checked as strictly as before.
          const [halfPlus, halfMinus] = [half[0][o][i], half[1][o][i]];
          const cubic = (4 / 3) * (Math.abs(moved - 2 * (halfPlus - halfMinus)) - ROUNDING_MARGIN * u * (along + 2 * (Math.abs(halfPlus) + Math.abs(halfMinus))));
          truncation += (1 + 1 / least![o][i] ** 2) * Math.max(0, cubic);
        }
        const rtol = scales.length > 1 ? EXTRAPOLATED_RTOL : VERIFY_RTOL;
        const tolerance = rtol * (Math.sqrt(magnitude[o][i]) + Math.abs(moved)) + ESTIMATE_MARGIN * Math.sqrt(carried[o][i]) + ROUNDING_MARGIN * rounding + truncation;
        if (!(Math.abs(mismatch) <= tolerance)) {
          return `${outputs[o].path}${outputs[o].shape.length ? `[${i}]` : ""} moved by ${moved} along a random direction, the grouped Jacobian predicts ${predicted[0][o][i]}`;
        }
      }
    }
    return undefined;
  };
  const mismatch = check();
  if (!mismatch || !secondChance(algorithm)) return mismatch;
  return check(await evaluate(1, 2));
}

/** Rules whose rows that fail along u are checked again along u/2, their O(h²) truncation allowed for (central; forward, whose O(h) term the second difference bounds). */
const secondChance = (algorithm: string) => algorithm === "central" || algorithm === "forward";

/** Whether a detected structure still fits the outputs: the same paths (in any order) and sizes. */
export function fits(structure: Structure, outputs: readonly Extent[]): boolean {
  return structure.outputs.length === outputs.length && structure.outputs.every((o) => outputs.some((x) => x.path === o.path && x.size === o.size));
}
