/**
 * The rules of rows.ts over groups of columns (colouring.ts): the elements of a group are perturbed
 * together, each by its own step, in one evaluation (pair), and the quotient is split back by the
 * structure. Within a group no two columns touch the same output value, so output value i moves
 * with one element j(i) only, and f_i(x + sum_{j in G} h_j e_j) is f_i(x + h_j(i) e_j(i)) exactly:
 * every entry is the very quotient the dense rule forms for it, divided by its own element's step
 * actually taken, with the same truncation, rounding and noise terms. So the error estimates of
 * Richardson and adaptive keep their meaning entry by entry.
 *
 * Costs, for g groups: central 2g, forward g + 1, Richardson 4g + 9, adaptive 12g + 9 (rows.ts's
 * counts with g in place of n). Rows come out sparse: values at the column's structural nonzeros.
 */
import { Code, isTesseractError, TesseractError } from "../../common/errors";
import type { Change } from "../eval/evaluator";
import { elementName } from "../eval/input-leaf";
import type { Column } from "./column";
import { PROBE_POINTS, PROBE_SPACING } from "./noise";
import type { ResolvedOptions } from "./options";
import type { Problem } from "./problem";
import {
  central,
  chunkedRows,
  centralQuotient,
  effectiveAlgorithm,
  extrapolate,
  extrapolates,
  checkRow,
  rowNoise,
  rowsOf,
  ROWS_PER_BATCH,
  stencilRounding,
  type CentralDifference,
  type LazyRows,
  type Row,
} from "./rows";
import type { Structure } from "./sparsity";
import { ruleMultiples, type StepRule } from "./steps";

/** The largest multiple of its step the sparsity verification moves an element by, each way (detection.ts). */
export const VERIFICATION_REACH = 1.5;

/**
 * Whether an element may share its evaluations with others: central stencils on both sides at every
 * multiple of the rule, and the verification's steps (VERIFICATION_REACH), stay inside its domain.
 * Elements near a bound go alone, over whole outputs, where a dependence the structure misses shows
 * (`unstructured`): rows.ts's one-sided stencils need f(x) and points on one side, which a group's
 * pair does not give, and the verification cannot move them. A forward group stepped such an element
 * (backwards, near an upper bound) and the verification left it where it was: a missed dependence
 * of 2.5 came back as 0.
 */
export function groupable(steps: StepRule, algorithm: ResolvedOptions["algorithm"], column: Column): boolean {
  const multiples = algorithm === "forward" ? [VERIFICATION_REACH] : [...ruleMultiples(algorithm), VERIFICATION_REACH];
  return multiples.every((m) => steps.inside(column.leaf, column.index, m) && steps.inside(column.leaf, column.index, -m));
}

/**
 * The rows of the Jacobian by the options' rule, one group of columns (one batch) at a time, each row
 * checked finite. `withRounding`: central and forward rows carry the rounding of the outputs each
 * value holds (`Row.rounding`, as rows.ts's elementRow gives it), for CheckGradients' tolerances.
 */
export function groupedRows(problem: Problem, options: ResolvedOptions, structure: Structure, groups: readonly Column[][], withRounding = false): AsyncGenerator<readonly Row[]> {
  const steps = problem.stepRule(options);
  const algorithm = effectiveAlgorithm(problem.size, options);
  const split = (group: readonly Column[]) => splitter(problem, structure, group);
  switch (algorithm) {
    case "central":
      return withRounding ? roundedCentralGroups(problem, steps, groups, split) : centralGroups(problem, steps, groups, split);
    case "forward":
      return forwardGroups(problem, steps, groups, split, withRounding);
    case "richardson":
    case "adaptive":
      return extrapolatedGroups(problem, steps, groups, ruleMultiples(algorithm), split);
    case "stochastic":
      throw new TesseractError(Code.INTERNAL, "column grouping has no stochastic rule");
  }
}

/**
 * The rows of columns the structure gives no nonzero (SparsityPlan.zeroColumns), without an
 * evaluation: no value at any output (and no error, for the rules that estimate one). The outputs
 * must be known. In batches of ROWS_PER_BATCH: they may be every column of a large input.
 */
export function* zeroRows(problem: Problem, options: ResolvedOptions, columns: readonly Column[]): Generator<readonly Row[]> {
  const outputs = problem.outputs!.length;
  const [values, indices] = [new Float64Array(0), new Uint32Array(0)];
  const none = { values: Array<Float64Array>(outputs).fill(values), indices: Array<Uint32Array>(outputs).fill(indices) };
  const errors = extrapolates(effectiveAlgorithm(problem.size, options)) ? none.values : undefined;
  for (let from = 0; from < columns.length; from += ROWS_PER_BATCH) {
    yield columns.slice(from, from + ROWS_PER_BATCH).map((c): Row => ({ leaf: c.leaf, index: c.index, values: none.values, indices: none.indices, errors, checked: true }));
  }
}

function row(column: Column, values: Float64Array[], indices: (Uint32Array | undefined)[], errors?: Float64Array[]): Row {
  return { leaf: column.leaf, index: column.index, values, indices, errors };
}

/** The rows of each group by `task`, as many groups in flight as the evaluator can use (chunkedRows), each row checked finite. */
function perGroup(problem: Problem, groups: readonly Column[][], evaluationsPerGroup: number, task: (group: readonly Column[]) => Promise<Row[] | LazyRows>): AsyncGenerator<readonly Row[]> {
  return chunkedRows(problem, groups, evaluationsPerGroup, async (chunk) => {
    const parts = await Promise.all(chunk.map(task));
    if (parts.every((p) => Array.isArray(p))) return (parts as Row[][]).flat().map((r) => checkRow(problem, r));
    // A large group's rows are made on demand: the chunk's parts in order, each row checked as it is made.
    const starts = [0];
    for (const p of parts) starts.push(starts[starts.length - 1] + (Array.isArray(p) ? p.length : p.count));
    return {
      count: starts[parts.length],
      slice: (from: number, to: number) =>
        parts.flatMap((p, k) => {
          const [a, b] = [Math.max(from, starts[k]) - starts[k], Math.min(to, starts[k + 1]) - starts[k]];
          return a >= b ? [] : p.slice(a, b).map((r) => checkRow(problem, r));
        }),
    };
  });
}

/**
 * Central: D_j = (f(x+) - f(x-))|_{cells of j} / (x_j+ - x_j-) for every column of a group, from one
 * pair per group; a chunk's pairs go in one call (chunkedRows). A lone element (one near a bound
 * among them) goes through rows.ts's `central` (one-sided near a bound).
 */
function centralGroups(problem: Problem, steps: StepRule, groups: readonly Column[][], split: (group: readonly Column[]) => Splitter): AsyncGenerator<readonly Row[]> {
  return chunkedRows(problem, groups, 2, async (chunk) => {
    const lone = chunk.filter((group) => group.length === 1);
    const shared = lone.length ? chunk.filter((group) => group.length > 1) : chunk;
    const points = shared.map((group) => [groupPoints(steps, group, () => 1), groupPoints(steps, group, () => -1)] as const);
    const what = (k: number, side: number) => `${groupName(problem, shared[k])} ${side ? "-" : "+"} h`;
    const [differences, loneRows] = await Promise.all([
      shared.length ? problem.differences(points.map(([plus, minus]) => [plus.changes, minus.changes] as const), what) : [],
      Promise.all(
        lone.map(async ([c]) => {
          const s = split([c]);
          const full = (await central(problem, steps, c.leaf, c.index, 1)).values;
          return { ...row(c, s.gather(0, full), s.cells(0)), unstructured: s.outside(0, full) };
        }),
      ),
    ]);
    // Row t of the chunk: member j of shared group k, then the lone rows; made on demand where they are many (rowsOf).
    const splits = shared.map((group) => split(group));
    const starts = [0];
    for (const group of shared) starts.push(starts[starts.length - 1] + group.length);
    const inGroups = starts[shared.length];
    let k = 0;
    return rowsOf(inGroups + loneRows.length, (t) => {
      if (t >= inGroups) return checkRow(problem, loneRows[t - inGroups]);
      if (t < starts[k]) k = 0;
      while (t >= starts[k + 1]) k++;
      const j = t - starts[k];
      const [plus, minus] = points[k];
      return checkRow(problem, row(shared[k][j], splits[k].scaled(j, differences[k], plus.points[j] - minus.points[j]), splits[k].cells(j)));
    });
  });
}

/**
 * Central with each value's rounding: groupCentral's quotients (the pair evaluated whole, not
 * differenced where evaluated, since the rounding needs f(x+) and f(x-) themselves).
 */
function roundedCentralGroups(problem: Problem, steps: StepRule, groups: readonly Column[][], split: (group: readonly Column[]) => Splitter): AsyncGenerator<readonly Row[]> {
  return perGroup(problem, groups, 2, async (group) => {
    const s = split(group);
    const difference = await groupCentral(problem, steps, group, 1, s);
    return rowsOf(group.length, (k) => {
      const { values, rounding } = difference(k);
      return { ...row(group[k], values, s.cells(k)), rounding, unstructured: s.outside(k) };
    });
  });
}

/** Splits a group's outputs into its columns' values: each column's structural nonzeros, copied. */
interface Splitter {
  /** Per output, the flat indices column k of the group touches (undefined: all of that output). */
  cells(k: number): (Uint32Array | undefined)[];
  /** Column k's share of whole outputs (fresh arrays, the engine's own). */
  gather(k: number, outputs: readonly Float64Array[]): Float64Array[];
  /** (plus - minus) / step over column k's share: `quotient` of rows.ts without the copies. */
  quotient(k: number, plus: readonly Float64Array[], minus: readonly Float64Array[], step: number): Float64Array[];
  /** difference / step over column k's share (a central pair's difference, fresh arrays). */
  scaled(k: number, difference: readonly Float64Array[], step: number): Float64Array[];
  /**
   * Where column k's whole quotient (a lone column's: it is computed over whole outputs) is nonzero
   * outside its cells, noted from `whole` when given, and the first note so far.
   */
  outside(k: number, whole?: readonly Float64Array[]): string | undefined;
}

function splitter(problem: Problem, structure: Structure, group: readonly Column[]): Splitter {
  let aligned: Structure | undefined;
  // Kept for a group of few columns; a large one's rows are made a slice at a time (rowsOf), and so are their cells.
  const cells: (Uint32Array | undefined)[][] | undefined = group.length <= ROWS_PER_BATCH ? [] : undefined;
  const notes: (string | undefined)[] = [];
  const cellsOf = (k: number) => {
    const known = cells?.[k];
    if (known) return known;
    // The outputs are known once the group's first evaluation returned.
    const a = (aligned ??= structure.alignedTo(problem.outputs!));
    const { leaf, index } = group[k];
    const found = a.outputs.map((_, o) => a.cells(o, leaf, index));
    if (cells) cells[k] = found;
    return found;
  };
  return {
    cells: cellsOf,
    gather: (k, outputs) => outputs.map((values, o) => gather(values, cellsOf(k)[o])),
    quotient: (k, plus, minus, step) =>
      plus.map((p, o) => {
        const at = cellsOf(k)[o];
        const m = minus[o];
        if (!at) return p.map((v, i) => (v - m[i]) / step);
        const out = new Float64Array(at.length);
        for (let i = 0; i < at.length; i++) out[i] = (p[at[i]] - m[at[i]]) / step;
        return out;
      }),
    scaled: (k, difference, step) =>
      difference.map((d, o) => {
        const at = cellsOf(k)[o];
        if (!at) return d.map((v) => v / step);
        const out = new Float64Array(at.length);
        for (let i = 0; i < at.length; i++) out[i] = d[at[i]] / step;
        return out;
      }),
    outside: (k, whole) => {
      if (whole && notes[k] === undefined) notes[k] = nonzeroOutside(problem, group[k], whole, cellsOf(k));
      return notes[k];
    },
  };
}

/** The first value of a column's whole quotient that its cells (ascending) leave out and that is not zero: a dependence the structure misses. */
function nonzeroOutside(problem: Problem, column: Column, whole: readonly Float64Array[], cells: readonly (Uint32Array | undefined)[]): string | undefined {
  for (let o = 0; o < whole.length; o++) {
    const at = cells[o];
    if (!at) continue;
    for (let i = 0, k = 0; i < whole[o].length; i++) {
      if (k < at.length && at[k] === i) k++;
      else if (whole[o][i] !== 0) return `d ${problem.outputs![o].path}[${i}] / d ${elementName(problem.leaves[column.leaf], column.index)} is ${whole[o][i]} where the structure has no entry`;
    }
  }
  return undefined;
}

function gather(values: Float64Array, cells: Uint32Array | undefined): Float64Array {
  if (!cells) return values.slice();
  const out = new Float64Array(cells.length);
  for (let k = 0; k < cells.length; k++) out[k] = values[cells[k]];
  return out;
}

/** Column k's share of a difference quotient over whole outputs (a lone element's, from rows.ts). */
function gatherDifference(d: CentralDifference, split: Splitter, k: number): CentralDifference {
  return {
    values: split.gather(k, d.values),
    halfWidth: d.halfWidth,
    spread: d.spread,
    rounding: d.rounding.length ? split.gather(k, d.rounding) : [],
    mean: d.mean && split.gather(k, d.mean),
  };
}

/** The group's elements each at x_j + multiple(k) h_j: one change per leaf, and the points actually taken. */
export function groupPoints(steps: StepRule, group: readonly Column[], multiple: (k: number) => number): { changes: Change[]; points: number[] } {
  const n = group.length;
  const points: number[] = new Array(n);
  const leaf = group[0].leaf;
  let oneLeaf = true;
  for (let k = 0; k < n; k++) {
    const c = group[k];
    points[k] = steps.perturbed(c.leaf, c.index, multiple(k));
    oneLeaf &&= c.leaf === leaf;
  }
  if (n === 1) return { changes: [{ leaf, index: group[0].index, value: points[0] }], points };
  if (n > 1 && oneLeaf) {
    // The common case, every element in one leaf: one change, without sorting by leaf (loops: this runs per group and side).
    const indices = new Uint32Array(n);
    const values = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      indices[k] = group[k].index;
      values[k] = points[k];
    }
    return { changes: [{ leaf, indices, points: values }], points };
  }
  const byLeaf = new Map<number, number[]>();
  group.forEach((c, k) => {
    const members = byLeaf.get(c.leaf);
    if (members) members.push(k);
    else byLeaf.set(c.leaf, [k]);
  });
  const changes = [...byLeaf].map(([leaf, members]): Change => {
    if (members.length === 1) return { leaf, index: group[members[0]].index, value: points[members[0]] };
    const indices = new Uint32Array(members.length);
    const values = new Float64Array(members.length);
    members.forEach((k, m) => ((indices[m] = group[k].index), (values[m] = points[k])));
    return { leaf, indices, points: values };
  });
  return { changes, points };
}

/** "mesh.points[0, 0] and 5 more": a group, for error messages. */
export function groupName(problem: Problem, group: readonly Column[]): string {
  const first = elementName(problem.leaves[group[0].leaf], group[0].index);
  return group.length === 1 ? first : `${first} and ${group.length - 1} more (a column group)`;
}

/**
 * Central differences at `multiple` times each element's step, for every column of the group, with
 * what the error estimates need: D_j = (f(x+) - f(x-))|_{cells of j} / (x_j+ - x_j-), column k's made
 * when asked for (its row is), from the pair kept whole: a group of many columns made every column's
 * at once, at every step (a diagonal of 300 000: 1.4 GB for Richardson, 2.6 GB adaptive). A lone
 * element goes through rows.ts's `central` (one-sided near a bound).
 */
async function groupCentral(problem: Problem, steps: StepRule, group: readonly Column[], multiple: number, split: Splitter): Promise<(k: number) => CentralDifference> {
  if (group.length === 1) {
    const full = await central(problem, steps, group[0].leaf, group[0].index, multiple, true);
    split.outside(0, full.values);
    const difference = gatherDifference(full, split, 0);
    return () => difference;
  }
  const plus = groupPoints(steps, group, () => multiple);
  const minus = groupPoints(steps, group, () => -multiple);
  const m = multiple === 1 ? "" : multiple;
  const [fPlus, fMinus] = await problem.evaluateAll([
    [plus.changes, () => `${groupName(problem, group)} + ${m}h`],
    [minus.changes, () => `${groupName(problem, group)} - ${m}h`],
  ]);
  return (k) => {
    const width = plus.points[k] - minus.points[k];
    const [p, q] = [split.gather(k, fPlus), split.gather(k, fMinus)];
    const rounding = stencilRounding(problem, [1 / width, -1 / width], [p, q]);
    return { ...centralQuotient(p, q, width), halfWidth: width / 2, spread: Math.SQRT2 / Math.abs(width), rounding };
  };
}

/** Forward: D_j = (f(x + sum_G s_j h_j e_j) - f(x))|_{cells of j} / (x_j+ - x_j), s_j = -1 only near an upper bound. */
function forwardGroups(problem: Problem, steps: StepRule, groups: readonly Column[][], split: (group: readonly Column[]) => Splitter, withRounding: boolean): AsyncGenerator<readonly Row[]> {
  return perGroup(problem, groups, 1, async (group) => {
    const base = await problem.base();
    const sides = group.map(({ leaf, index }) => {
      const side = steps.inside(leaf, index, 1) ? 1 : steps.inside(leaf, index, -1) ? -1 : 0;
      if (side === 0) throw new TesseractError(Code.FAILED_PRECONDITION, `${elementName(problem.leaves[leaf], index)}: its domain ${steps.describeBounds(leaf)} leaves no room for a step; use a smaller eps`);
      if (side < 0) steps.noteOneSided(leaf, index, -1);
      return side;
    });
    const plus = groupPoints(steps, group, (k) => sides[k]);
    const fPlus = await problem.evaluate(plus.changes, () => `${groupName(problem, group)} ${group.length === 1 && sides[0] < 0 ? "-" : "+"} h`);
    const s = split(group);
    const step = (k: number) => plus.points[k] - problem.leaves[group[k].leaf].data[group[k].index];
    const rounding = (k: number) => (withRounding ? stencilRounding(problem, [1 / step(k), -1 / step(k)], [s.gather(k, fPlus), s.gather(k, base)]) : undefined);
    if (group.length > 1) return rowsOf(group.length, (k) => ({ ...row(group[k], s.quotient(k, fPlus, base, step(k)), s.cells(k)), rounding: rounding(k) }));
    // A lone element (one near a bound among them): its quotient over whole outputs, as centralGroups'.
    const full = fPlus.map((p, o) => p.map((v, i) => (v - base[o][i]) / step(0)));
    return [{ ...row(group[0], s.gather(0, full), s.cells(0)), rounding: rounding(0), unstructured: s.outside(0, full) }];
  });
}

/**
 * Richardson and adaptive (rows.ts's extrapolatedRows) over groups: a step that fails is dropped for
 * the whole group; one that does not move an element (adaptive) is taken by the others alone, so
 * each column keeps the steps it has when differenced alone (dropping it for the group cost x = 0.3
 * beside 1e12 its small steps: 1.2e-7 off where alone 3e-12).
 */
function extrapolatedGroups(problem: Problem, steps: StepRule, groups: readonly Column[][], multiples: readonly number[], split: (group: readonly Column[]) => Splitter): AsyncGenerator<readonly Row[]> {
  const adaptive = multiples.length > 2;
  const noise = () => problem.noise(() => steps.probe(PROBE_SPACING, PROBE_POINTS));
  return perGroup(problem, groups, 2 * multiples.length, async (group) => {
    const s = split(group);
    // Per step taken: column k's difference, at position at[k] of the columns that took it (-1: not taken; no `at`: all did).
    const taken: { at?: Int32Array; difference: (k: number) => CentralDifference }[] = [];
    for (const m of multiples) {
      const kept = adaptive ? group.flatMap((c, k) => (steps.leavesOut(c.leaf, c.index, m) ? [] : [k])) : undefined;
      if (kept?.length === 0) continue;
      const taking = kept && kept.length < group.length ? kept.map((k) => group[k]) : group;
      try {
        const difference = await groupCentral(problem, steps, taking, m, taking === group ? s : split(taking));
        const at = taking === group ? undefined : new Int32Array(group.length).fill(-1);
        if (at) kept!.forEach((k, p) => (at[k] = p));
        taken.push({ at, difference });
      } catch (e) {
        if (!adaptive || !isTesseractError(e) || (e.code !== Code.FAILED_PRECONDITION && e.code !== Code.UNKNOWN)) throw e;
        for (const c of taking) steps.noteSkipped(c.leaf, c.index, m, e.message);
      }
    }
    const stepsOf = (k: number) => taken.filter(({ at }) => !at || at[k] >= 0);
    if (group.some((_, k) => stepsOf(k).length < 2)) throw new TesseractError(Code.FAILED_PRECONDITION, `${groupName(problem, group)}: fewer than two of the adaptive steps could be evaluated (see adjusted_steps)`);
    const [sigma, base] = [await noise(), await problem.base()];
    // Made a slice of rows at a time where the group is large (rowsOf), from the steps' evaluations kept whole.
    return rowsOf(group.length, (k) => {
      const differences = stepsOf(k).map(({ at, difference }) => difference(at ? at[k] : k));
      const { values, errors } = extrapolate(differences, rowNoise(s.gather(k, sigma), differences, s.gather(k, base)));
      return { ...row(group[k], values, s.cells(k), errors), unstructured: s.outside(k) };
    });
  });
}
