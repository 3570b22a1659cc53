/**
 * CheckGradients: a Tesseract's analytic gradients against the engine's finite differences, on
 * sampled rows, within a bound on apply calls (tesseract-core's `check-gradients`). A thin layer over
 * the engine, as scipy's check_derivative over approx_derivative.
 *
 * What is compared, for each differentiated input path x and output path y:
 *   jacobian  J[y][x][:, j] (analytic) against the FD column d y / d x_j, for sampled elements j;
 *   jvp       J[y][x]·v (analytic, v a seeded random tangent on x) against the engine's FD JVP along v;
 *   vjp       (wᵀ·J[y][x])_j (analytic, w a seeded random cotangent on y) against wᵀ·(FD column j).
 * A Tesseract ships at most an analytic Jacobian (`gradients.jacobian`), so its JVP and VJP are the
 * contractions of that Jacobian; they are checked against finite-difference JVPs and VJPs all the same.
 * The VJP check contracts the FD columns with the cotangent: that is how the engine's VJP is formed
 * for central and forward differences (rows contracted with the cotangent), restricted to the sampled
 * elements, at no extra evaluation. Tolerances: request.ts.
 *
 * The work, and its bound max_evals (default 1000, or the least that checks every input path once):
 *   1 apply, to find the output paths and their shapes;
 *   jvp:         one FD JVP per input path (2 evaluations with central differences);
 *   jacobian/vjp: one FD column per sampled element (2 evaluations each), shared by both checks.
 * Which elements: sampling.ts; how columns are computed: source.ts.
 */
import { checkPathKeys, type ResolvedOptions } from "../fd/options";
import { inputLeaf, type InputLeaf } from "../eval/input-leaf";
import { seededGenerator } from "../fd/random";
import { plannedEvaluations } from "../fd/rows";
import { checkFiniteInputs } from "../fd/steps";
import { analyticEntries, checkAnalyticSize, requireAnalyticJacobian, type AnalyticEntry } from "./analytic";
import { outputLeaves, resolveLeaves, type Leaf } from "./leaves";
import { checkSettings, maxEvalsFor, type CheckGradientsRequest, type CheckSettings } from "./request";
import { randomVector, sampleElements, STREAMS, unitVector } from "./sampling";
import { Evaluations, type FdColumn, type GradientSource } from "./source";
import type { Column } from "../fd/column";
import { compareColumn, compareJvp, compareVjp, report, Tallies, type GradientCheck, type Tally } from "./tally";
import { Algorithm } from "../tesseract";

export { requireAnalyticJacobian } from "./analytic";
export { CHECK_DEFAULTS, type CheckEndpoint, type CheckGradientsRequest } from "./request";
export type { ColumnGroups, GradientSource } from "./source";
export type { GradientCheck } from "./tally";

export interface CheckGradientsResult {
  passed: boolean;
  checks: GradientCheck[];
  /** Apply calls made, all included (never more than max_evals). */
  apply_calls: number;
  max_evals: number;
  /** The column groups the FD columns were taken by, and where their structure came from (EvaluationStats); absent when taken one by one. */
  column_groups?: number;
  sparsity_source?: string;
}

/** One request's state once its outputs are known. */
interface Check {
  run: Evaluations;
  leaves: readonly InputLeaf[];
  outputs: readonly Leaf[];
  entry: AnalyticEntry;
  tallies: Tallies;
  /** The request's rule (its FD JVPs and columns). */
  algorithm: ResolvedOptions["algorithm"];
  /** Where the Jacobian has a known structure: the column groups its FD columns were taken by, and where it came from. */
  grouped?: { column_groups: number; sparsity_source: string };
}

export async function checkGradients(source: GradientSource, req: CheckGradientsRequest): Promise<CheckGradientsResult> {
  // Everything that can be validated is, before the first evaluation.
  const jacobian = requireAnalyticJacobian(source);
  const settings = checkSettings(req);
  const { inputs } = req;
  const leaves = resolveLeaves(source.schema.inputs, inputs, req.inputPaths, "input_paths", "input").map((l) => inputLeaf(l, "input_paths"));
  // As the Jacobian refuses them (an apply at x + t v then answered NaN, naming no input).
  checkFiniteInputs(leaves);
  if (req.outputPaths?.length) source.schema.outputs.checkDifferentiable(req.outputPaths, "output_paths", "output");
  const options = source.options(inputs, req.options);
  checkPathKeys(options, leaves, "an input path being checked");
  const perRow = plannedEvaluations(1, options);
  const run = new Evaluations(source, req, perRow, maxEvalsFor(req.maxEvals, perRow, leaves.length, settings));

  // One apply: the output paths present and their shapes; then the analytic Jacobian, once.
  const outputs = outputLeaves(source.schema.outputs, await run.apply(), req.outputPaths);
  checkAnalyticSize(outputs, leaves, req.maxBytes);
  const check: Check = { run, leaves, outputs, entry: analyticEntries(jacobian, inputs, leaves, outputs), tallies: new Tallies(settings.rtol, settings.atol), algorithm: options.algorithm };
  if (settings.jvp) await checkJvps(check, settings.seed);
  if (settings.columns) await checkColumns(check, settings);

  const checks = report(settings.endpoints, leaves, outputs, check.entry, check.tallies, run.maxEvals);
  // Passed: none failed, and every check ran but those of a path with no elements (nothing to check).
  const empty = (paths: readonly { path: string; size: number }[]) => new Set(paths.filter((l) => l.size === 0).map((l) => l.path));
  const [emptyInputs, emptyOutputs] = [empty(leaves), empty(outputs)];
  const ran = (c: GradientCheck) => c.rows_checked > 0 || emptyInputs.has(c.input_path) || emptyOutputs.has(c.output_path);
  return { passed: checks.every((c) => c.failures === 0 && ran(c)), checks, apply_calls: run.used, max_evals: run.maxEvals, ...check.grouped };
}

/** jvp: J·v along one seeded random tangent per input path, while the budget lasts. */
async function checkJvps({ run, leaves, outputs, entry, tallies, algorithm }: Check, seed: bigint): Promise<void> {
  const rng = seededGenerator(seed, STREAMS.tangents);
  const outputPaths = outputs.map((o) => o.path);
  for (const leaf of leaves) {
    const v = randomVector(rng, leaf.size);
    if (leaf.size === 0) continue; // nothing to check (tally.ts's report says so)
    if (!run.fits()) break;
    let jvp = await run.jvp(leaf, v, outputPaths);
    const compare = (into: (out: Leaf) => Tally) => {
      for (const out of outputs) {
        const J = entry(out, leaf);
        if (typeof J !== "string" && out.size > 0) compareJvp(into(out), J, v, jvp.stray, jvp.result[out.path].data, jvp.uncertain[out.path], leaf, out);
      }
    };
    const trial = new Tallies(tallies.rtol, tallies.atol);
    compare((out) => trial.get("jvp", leaf, out));
    if (trial.failed() && confirmable(run, algorithm)) jvp = await run.jvp(leaf, v, outputPaths, Algorithm.ALGORITHM_RICHARDSON);
    compare((out) => tallies.get("jvp", leaf, out));
  }
}

/**
 * A JVP takes one step along its tangent, which the spacing of FP32 inputs can lengthen up to 16
 * times past an element's own step (fd/jvp.ts): at x = [2.5, 0.01], x³'s exact gradient failed on
 * that truncation alone (7e-4 against rtol 1e-4). A failed comparison is taken again with
 * Richardson's rule, whose error estimate counts as the engine's own uncertainty, before it counts;
 * a wrong gradient fails that one too. Only where the budget holds such a JVP.
 */
function confirmable(run: Evaluations, algorithm: ResolvedOptions["algorithm"]): boolean {
  return algorithm !== "richardson" && algorithm !== "adaptive" && run.fits(CONFIRMATION_CALLS);
}

/** The most a confirming Richardson JVP costs: 4 + 9 evaluations, and 2 for each of its two stencils' straightenings (3 at most). */
const CONFIRMATION_CALLS = 13 + 2 * 2 * 3;

/**
 * jacobian and vjp: the FD columns of sampled elements, as many as the budget left allows. Where
 * the Jacobian has a known structure (the Tesseract's declaration), by column groups: each group's
 * one evaluation (pair) gives every column in it, so the groups of the sampled elements are
 * evaluated, and every column of theirs is checked.
 */
async function checkColumns(check: Check, settings: CheckSettings): Promise<void> {
  const { run, leaves, outputs } = check;
  const rng = seededGenerator(settings.seed, STREAMS.cotangents);
  const cotangents = new Map(outputs.map((out) => [out.path, randomVector(rng, out.size)]));
  const compare = (column: FdColumn) => compareFdColumn(check, settings, cotangents, column);
  const outputPaths = outputs.map((o) => o.path);
  const grouped = await run.columnGroups(leaves, outputPaths);
  if (grouped) {
    const chosen = sampledGroups(leaves, grouped.groups!, run.groupsLeft(grouped, grouped.groups!.length), settings.seed);
    check.grouped = { column_groups: chosen.length, sparsity_source: grouped.source };
    // Zero columns cost nothing to check: every one is.
    const zeros = Object.fromEntries(outputs.map((out) => [out.path, new Float64Array(out.size)]));
    for (const { leaf, index } of grouped.zeroColumns) compare({ leaf, index, values: zeros, uncertain: zeros });
    for await (const column of run.groupedColumns(grouped, chosen)) compare(column);
    return;
  }
  const planned = run.rowsLeft(leaves.reduce((n, l) => n + l.size, 0));
  for (const { leaf: l, index: j } of sampleElements(leaves, planned, settings.seed)) {
    if (!run.fits()) break;
    const leaf = leaves[l];
    const { result, uncertain } = await run.jvp(leaf, unitVector(leaf.size, j), outputPaths);
    compare({ leaf: l, index: j, values: Object.fromEntries(Object.entries(result).map(([path, v]) => [path, v.data])), uncertain });
  }
}

/** One FD column against the analytic Jacobian's (jacobian) and its contraction with the random cotangents (vjp). */
function compareFdColumn({ leaves, outputs, entry, tallies }: Check, settings: CheckSettings, cotangents: Map<string, Float64Array>, { leaf: l, index: j, values, uncertain }: FdColumn): void {
  const leaf = leaves[l];
  for (const out of outputs) {
    const J = entry(out, leaf);
    if (typeof J === "string" || out.size === 0) continue;
    const column = values[out.path];
    if (settings.endpoints.includes("jacobian")) compareColumn(tallies.get("jacobian", leaf, out), J, column, uncertain[out.path], leaf, j, out);
    if (settings.endpoints.includes("vjp")) compareVjp(tallies.get("vjp", leaf, out), J, column, uncertain[out.path], cotangents.get(out.path)!, leaf, j, out);
  }
}

/**
 * `count` of the groups: those of the sampled elements first (sampleElements: one per input path
 * first, so every path is checked), then the others in order.
 */
function sampledGroups(leaves: readonly { size: number }[], groups: readonly Column[][], count: number, seed: bigint): Column[][] {
  // -1: a zero column, in no group.
  const groupOf = leaves.map((leaf) => new Int32Array(leaf.size).fill(-1));
  groups.forEach((group, k) => group.forEach((c) => (groupOf[c.leaf][c.index] = k)));
  const chosen = new Set<number>();
  for (const { leaf, index } of sampleElements(leaves, count, seed)) if (groupOf[leaf][index] >= 0) chosen.add(groupOf[leaf][index]);
  for (let k = 0; chosen.size < count; k++) chosen.add(k);
  return [...chosen].map((k) => groups[k]);
}
