/**
 * Which structure a request's Jacobian (or VJP) is grouped by, from the sources in order: the
 * request's pattern, the Tesseract's declaration, or (SPARSITY_MODE_DETECT) one detected from an
 * earlier dense Jacobian of the same Tesseract, shapes and paths; else none, and the rules run
 * dense. SPARSITY_MODE_DENSE ignores every pattern; so does the stochastic rule (its directions
 * perturb every element already).
 */
import type { Column } from "./column";
import { groupAllColumns, groupColumns } from "./colouring";
import { detectionKey, fits, verificationEvaluations, type DetectedPatterns } from "./detection";
import { groupable } from "./grouped";
import type { ResolvedOptions } from "./options";
import type { Problem } from "./problem";
import { PROBE_POINTS } from "./noise";
import { effectiveAlgorithm, plannedEvaluations, usesBase } from "./rows";
import { isRefusedByPrediction, MAX_PATTERN_NONZEROS, predictionMissed, structureOf, type Extent, type SparsityPattern, type Structure } from "./sparsity";

/** Where a request's structure may come from. */
export interface SparsitySources {
  /** The request's patterns (its `sparsity` field). */
  request?: readonly SparsityPattern[] | null;
  /** The Tesseract's declaration at the request's inputs (undefined when it declares none). */
  declared?: () => readonly SparsityPattern[] | undefined;
  /** The requested outputs as abstractEval predicts them, without evaluating (undefined: unknown). */
  predictedOutputs?: () => Promise<readonly { path: string; shape: readonly number[] }[] | undefined>;
  /** The Tesseract's detected structures, and the request's output paths (half of its key). */
  detected?: { cache: DetectedPatterns; outputPaths: readonly string[] };
}

/** EvaluationStats.sparsity_source after a failed verification: the structure's source, then this. */
export const FAILED_VERIFICATION = ", failed verification: dense";

/**
 * EvaluationStats.sparsity_source for a structure too large to verify: the verification holds every
 * grouped row until it passes, and a structure with a dense block of a large output would have
 * held the whole Jacobian (a stream's rows, bounded otherwise, held 4.3 GB for heat at n = 23 200).
 */
export const TOO_LARGE_TO_VERIFY = `, more than ${MAX_PATTERN_NONZEROS} nonzeros to verify: dense`;

export class SparsityPlan {
  /** The structure grouped by; undefined: dense. */
  structure?: Structure;
  /** The column groups evaluated: every column but `zeroColumns`. */
  groups?: Column[][];
  /**
   * Columns the structure gives no nonzero in any requested output: known exactly (zero), so never
   * evaluated. An all-zero pattern was one group of them, and cost that group's evaluations.
   */
  zeroColumns: Column[] = [];
  /** "request", "tesseract", "detected", or "" (dense), for EvaluationStats.sparsity_source. */
  source = "";
  /** Verify the grouped rows before returning them (a detected structure; any, under SPARSITY_MODE_DETECT). */
  verify = false;
  /** Where a dense run records its zeros (SPARSITY_MODE_DETECT with nothing detected yet). */
  record?: { cache: DetectedPatterns; key: string };
  /** f(x) was evaluated only to learn the output shapes (no abstractEval). */
  baseForShapes = false;
  /** The requested outputs' paths and shapes as planning learned them (abstractEval's order, maybe not apply's). */
  outputs?: readonly { path: string; shape: readonly number[] }[];
  /** `outputs` are abstractEval's prediction, not yet apply's. */
  predicted = false;

  constructor(
    /** The differentiated elements, n. */
    readonly columns: number,
  ) {}

  /** EvaluationStats.column_groups: the groups evaluated (n when dense). */
  get columnGroups(): number {
    return this.groups?.length ?? this.columns;
  }

  /** Structural nonzeros of the rows (JacobianHeader.nonzeros): 0 when the rows are dense. */
  get nonzeros(): number {
    return this.structure?.nonzeros ?? 0;
  }

  /**
   * Apply's outputs against abstractEval's prediction, once they are known (paths and shapes): a
   * prediction of [1, 3] where apply made [3], the same size, had a VJP refuse every cotangent,
   * the one shaped [3] before an Apply and the one shaped [1, 3] after it.
   */
  confirmPrediction(actual: readonly { path: string; shape: readonly number[] }[]): void {
    const predicted = this.predicted ? this.outputs : undefined;
    if (!predicted) return;
    const matches = actual.length === predicted.length && actual.every((a) => predicted.some((p) => p.path === a.path && p.shape.join() === a.shape.join()));
    if (!matches) throw predictionMissed(actual, predicted);
  }

  /**
   * Runs `check` of the request against the outputs planning learned. A refusal made against
   * abstractEval's prediction (refusedByPrediction) is confirmed by f(x) first, one evaluation on a
   * refusal's path only: where apply's outputs are not the predicted ones, abstractEval is wrong
   * (INTERNAL), not the request, which was refused for fitting apply's outputs (a cotangent shaped
   * [3] where the prediction said [1, 3]).
   */
  async checkAgainstOutputs<T>(problem: Problem, check: () => T): Promise<T> {
    try {
      return check();
    } catch (e) {
      if (!this.predicted || !isRefusedByPrediction(e)) throw e;
      await problem.base();
      this.confirmPrediction(problem.outputs!);
      throw e;
    }
  }

  /** After a failed verification: the request's apply calls in all, those made and those the dense rows will make. */
  private total?: number;

  /** The verification found the structure wrong: dense from here on, and the stats say so. */
  fallBack(options: ResolvedOptions, problem: Problem): void {
    this.structure = undefined;
    this.groups = undefined;
    this.zeroColumns = [];
    this.verify = false;
    this.source += FAILED_VERIFICATION;
    // What was spent stays spent (the stream's header said 13 of a request that made 17 calls); of the
    // dense plan, what the grouped attempt made already (f(x), the noise probe) is not made again.
    const algorithm = effectiveAlgorithm(this.columns, options);
    const countsBase = usesBase(this.columns, options) || (this.baseForShapes && algorithm === "central");
    const reused = (countsBase && problem.madeBase ? 1 : 0) + (problem.madeProbe ? PROBE_POINTS : 0);
    this.total = problem.calls + this.plannedEvaluations(options) - reused;
    problem.replanned(this.total);
  }

  /** The verification's apply calls once it passed (a central check's second chance adds 2), else as planned. */
  private verification?: number;

  /** The verification passed after `calls` apply calls: the planned count says so where they were more than planned. */
  verified(calls: number, options: ResolvedOptions): void {
    if (calls > verificationEvaluations(effectiveAlgorithm(this.columns, options))) this.verification = calls;
  }

  /** Whether the planned evaluations are the request's actual count (after a failed verification), an evaluation cache's answers left out. */
  get fellBack(): boolean {
    return this.total !== undefined;
  }

  /** No column to evaluate: every one is a zero column, whose rows need only the outputs' shapes (f(x), where planning did not make it). */
  get onlyZeroColumns(): boolean {
    return this.groups?.length === 0;
  }

  /** Apply calls the request will make: the rule's count with the groups in place of n, plus what planning added (after a failed verification: `total`). */
  plannedEvaluations(options: ResolvedOptions): number {
    if (this.total !== undefined) return this.total;
    const algorithm = effectiveAlgorithm(this.columns, options);
    const verification = this.verify ? (this.verification ?? verificationEvaluations(algorithm)) : 0;
    if (this.onlyZeroColumns) return 1 + verification;
    return plannedEvaluations(this.columnGroups, options) + (this.baseForShapes && algorithm === "central" ? 1 : 0) + verification;
  }
}

/** The differentiated leaves as extents. */
const extents = (problem: Problem): Extent[] => problem.leaves.map((l) => ({ path: l.path, size: l.size }));

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * The requested outputs' paths and sizes: known after an evaluation, else predicted by abstractEval,
 * else learned from f(x) (one evaluation the forward, Richardson and adaptive rules need anyway).
 */
async function knownOutputs(problem: Problem, sources: SparsitySources, plan: SparsityPlan): Promise<Extent[]> {
  if (!problem.outputs) {
    try {
      plan.outputs = await sources.predictedOutputs?.();
      plan.predicted = plan.outputs !== undefined;
    } catch {
      plan.outputs = undefined; // apply will say what is wrong with the inputs
    }
    if (!plan.outputs) {
      await problem.base();
      plan.baseForShapes = true;
    }
  }
  plan.outputs ??= problem.outputs!;
  return plan.outputs.map((o) => ({ path: o.path, size: sizeOf(o.shape), predicted: plan.predicted ? true : undefined }));
}

/** The request's plan: its structure and column groups, or dense. */
export async function planSparsity(problem: Problem, options: ResolvedOptions, sources: SparsitySources): Promise<SparsityPlan> {
  const plan = new SparsityPlan(problem.size);
  if (options.sparsityMode === "dense" || problem.size === 0 || effectiveAlgorithm(problem.size, options) === "stochastic") return plan;
  const fromRequest = (sources.request?.length ?? 0) > 0;
  const patterns = fromRequest ? sources.request! : sources.declared?.();
  if (patterns) {
    const field = fromRequest ? "sparsity" : "the Tesseract's sparsity declaration";
    const outputs = await knownOutputs(problem, sources, plan);
    const structure = await plan.checkAgainstOutputs(problem, () => structureOf(patterns, extents(problem), outputs, { field, fromRequest }));
    if (!structure.dense) {
      await group(plan, problem, options, structure, fromRequest ? "request" : "tesseract");
      // Trusted as given, unless the caller asks for checked structures: then verified as a detected
      // one is; where grouping saves less than that costs, the dense rows measure every entry the
      // pattern would have zeroed unchecked.
      if (options.sparsityMode === "detect") verifyOrDense(plan, options);
      return plan;
    }
    // Patterns that say nothing of these blocks: under detection, learned as if none were given.
  }
  if (options.sparsityMode !== "detect" || !sources.detected) return plan;
  const { cache, outputPaths } = sources.detected;
  const key = detectionKey(problem.leaves, outputPaths);
  const detected = cache.get(key);
  if (detected === "dense") return plan;
  if (detected && fits(detected, await knownOutputs(problem, sources, plan))) {
    await group(plan, problem, options, detected, "detected");
    if (verifyOrDense(plan, options)) plan.record = { cache, key }; // a failed verification records anew
    return plan;
  }
  plan.record = { cache, key };
  return plan;
}

/**
 * A structure under SPARSITY_MODE_DETECT: verified where its grouping saves at least the evaluations
 * its verification costs, else dropped (dense: what it saves is not worth its verification; 9
 * columns in 7 groups took 12 forward evaluations where dense takes 10); dropped too where its rows,
 * held until verified, would exceed MAX_PATTERN_NONZEROS values. Whether it is verified.
 */
function verifyOrDense(plan: SparsityPlan, options: ResolvedOptions): boolean {
  const saved = plannedEvaluations(plan.columns, options) - plannedEvaluations(plan.columnGroups, options);
  if (saved < verificationEvaluations(effectiveAlgorithm(plan.columns, options))) Object.assign(plan, { structure: undefined, groups: undefined, zeroColumns: [], source: "" });
  // The rows held until verified are the structure's nonzeros (a dense block's every entry): bounded as a detected structure is.
  else if (plan.nonzeros > MAX_PATTERN_NONZEROS) Object.assign(plan, { structure: undefined, groups: undefined, zeroColumns: [], source: plan.source + TOO_LARGE_TO_VERIFY });
  else plan.verify = true;
  return plan.verify;
}

/**
 * Groups the columns by `structure`: elements near a domain bound each alone, the others coloured
 * (colouring.ts); every element alone when the structure is too dense to colour.
 */
async function group(plan: SparsityPlan, problem: Problem, options: ResolvedOptions, structure: Structure, source: string): Promise<void> {
  // A big structure takes seconds to colour: other calls get turns meanwhile, and a cancel stops it.
  const turn = () => problem.turn();
  if (problem.bounds.every((b) => b === undefined)) {
    // Without a declared domain every step stays inside: every column may be grouped.
    setGroups(plan, structure, (await groupAllColumns(structure, turn)) ?? problem.leaves.flatMap((leaf, l) => Array.from({ length: leaf.size }, (_, index) => [{ leaf: l, index }])));
    plan.source = source;
    return;
  }
  const steps = problem.stepRule(options);
  const algorithm = effectiveAlgorithm(problem.size, options);
  const together: Column[] = [];
  const alone: Column[] = [];
  problem.leaves.forEach((leaf, l) => {
    // Without a declared domain every step stays inside.
    const bounded = problem.bounds[l] !== undefined;
    for (let index = 0; index < leaf.size; index++) {
      const column = { leaf: l, index };
      (!bounded || groupable(steps, algorithm, column) ? together : alone).push(column);
    }
  });
  const groups = (await groupColumns(structure, together, turn)) ?? together.map((c) => [c]);
  setGroups(plan, structure, [...groups, ...alone.map((c) => [c])]);
  plan.source = source;
}

/**
 * The plan's groups, less those of zero columns only (the colouring gives a zero column the first
 * colour, so such a group is all the columns when every one is zero, or a zero column alone near a
 * domain bound): those columns' rows are known without an evaluation.
 */
function setGroups(plan: SparsityPlan, structure: Structure, groups: Column[][]): void {
  const zeroOnly = groups.map((group) => group.every((c) => structure.degree(c.leaf, c.index) === 0));
  plan.structure = structure;
  plan.groups = zeroOnly.includes(true) ? groups.filter((_, k) => !zeroOnly[k]) : groups;
  plan.zeroColumns = groups.filter((_, k) => zeroOnly[k]).flat();
}
