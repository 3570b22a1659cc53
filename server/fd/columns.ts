/**
 * The rows of a request under its sparsity plan (sparsity-plan.ts): grouped by the structure when
 * there is one (grouped.ts), verified before any row leaves when the structure was detected
 * (detection.ts: on a mismatch the rows are dropped and computed densely), and recorded when a dense
 * run is to teach detection its zeros. Every Jacobian-shaped endpoint takes its rows from here, one
 * at a time (planRows) or in the batches they are computed in (planRowBatches: a column group's rows
 * at once, so a transport can write them without a wait per row).
 */
import { ZeroRecorder, verifyRows } from "./detection";
import type { Column } from "./column";
import { groupedRows, zeroRows } from "./grouped";
import { HeldRows } from "./held-rows";
import type { ResolvedOptions } from "./options";
import type { Problem } from "./problem";
import { rows, type Row } from "./rows";
import type { SparsityPlan } from "./sparsity-plan";

export async function* planRows(problem: Problem, options: ResolvedOptions, plan?: SparsityPlan): AsyncGenerator<Row> {
  for await (const batch of planRowBatches(problem, options, plan)) for (const row of batch) yield row;
}

export function planRowBatches(problem: Problem, options: ResolvedOptions, plan?: SparsityPlan): AsyncGenerator<readonly Row[]> {
  if (plan?.structure && plan.groups) {
    const grouped = withZeroRows(problem, options, groupedRows(problem, options, plan.structure, plan.groups), plan.zeroColumns);
    return plan.verify ? verified(problem, options, plan, grouped) : grouped;
  }
  const dense = rows(problem, options);
  return plan?.record ? recorded(problem, plan, dense) : dense;
}

/** The evaluated groups' rows, then the zero columns' (after them, the outputs are known without f(x) wherever a group was evaluated). */
async function* withZeroRows(problem: Problem, options: ResolvedOptions, grouped: AsyncGenerator<readonly Row[]>, zeroColumns: readonly Column[]): AsyncGenerator<readonly Row[]> {
  yield* grouped;
  if (!zeroColumns.length) return;
  if (!problem.outputs) await problem.base();
  yield* zeroRows(problem, options, zeroColumns);
}

/** The grouped rows once they pass verification (in batches as held); else the dense rows, recorded anew. */
async function* verified(problem: Problem, options: ResolvedOptions, plan: SparsityPlan, grouped: AsyncGenerator<readonly Row[]>): AsyncGenerator<readonly Row[]> {
  const held = await heldIfVerified(problem, options, plan, grouped);
  if (held) {
    yield* held.batches();
    return;
  }
  plan.fallBack(options, problem);
  yield* plan.record ? recorded(problem, plan, rows(problem, options)) : rows(problem, options);
}

/** Every grouped row, held packed (held-rows.ts) until verified; undefined, the rows let go, on a mismatch. */
async function heldIfVerified(problem: Problem, options: ResolvedOptions, plan: SparsityPlan, grouped: AsyncGenerator<readonly Row[]>): Promise<HeldRows | undefined> {
  // A detected structure is at most MAX_PATTERN_NONZEROS entries, and so are these rows.
  const held = new HeldRows();
  for await (const batch of grouped) for (const row of batch) held.add(row);
  const before = problem.calls;
  const passed = (await verifyRows(problem, options, held)) === undefined;
  // A central check's second chance (detection.ts) is counted where it was taken.
  if (passed) plan.verified(problem.calls - before, options);
  return passed ? held : undefined;
}

/** Passes dense rows on, noting their nonzeros; a complete run stores the structure for later requests. */
async function* recorded(problem: Problem, plan: SparsityPlan, source: AsyncGenerator<readonly Row[]>): AsyncGenerator<readonly Row[]> {
  const { cache, key } = plan.record!;
  const recorder = new ZeroRecorder(problem.leaves);
  for await (const batch of source) {
    for (const row of batch) recorder.add(row);
    yield batch;
  }
  const known = problem.outputs;
  if (known) cache.set(key, recorder.result(known.map((o) => ({ path: o.path, size: o.shape.reduce((a, b) => a * b, 1) }))));
}
