/**
 * Central Jacobians written straight into the result: a chunk of columns (elements, or column
 * groups) goes to the evaluator as pairs in one call (Problem.flatDifferences), and each pair's
 * flat differences are divided by each column's width and placed at its entries — no row, array or
 * promise per column on the way. The numbers are those of rows.ts's centralRows and grouped.ts's
 * centralGroups (the same points, differences and widths); those remain for streams, contractions
 * and a plan that verifies or records a structure. A column near a domain bound, and a group of one,
 * takes rows.ts's `central` (one-sided near a bound), alone.
 */
import { elementName } from "../eval/input-leaf";
import { outputSizes, type ElementPairs } from "../eval/evaluator";
import { ElementPairsBuilder } from "../eval/element-pairs";
import type { Column } from "./column";
import { allocateEntries, placeRow, type JacobianEntry } from "./entries";
import { groupName } from "./grouped";
import type { ResolvedOptions } from "./options";
import type { Problem } from "./problem";
import { central, checkRow, ChunkSizer, type Row } from "./rows";
import type { SparsityPlan } from "./sparsity-plan";
import type { Structure } from "./sparsity";
import type { StepRule } from "./steps";
import { ChunkWindow, completed } from "./window";

/** The entries [output][leaf]; undefined when there was no column to evaluate. */
export async function centralJacobian(problem: Problem, options: ResolvedOptions, maxBytes: number, plan?: SparsityPlan): Promise<JacobianEntry[][] | undefined> {
  const steps = problem.stepRule(options);
  const grouped = plan?.structure && plan.groups ? { structure: plan.structure, groups: plan.groups } : undefined;
  const items = grouped ? grouped.groups.length : problem.size;
  const leafStarts: number[] = [];
  for (let leaf = 0, start = 0; leaf < problem.leaves.length; start += problem.leaves[leaf++].size) leafStarts.push(start);
  /** Element t of the dense Jacobian's columns: its leaf (its index is t - leafStarts[leaf]). */
  const leafOf = (t: number) => {
    let leaf = problem.leaves.length - 1;
    while (leafStarts[leaf] > t) leaf--;
    return leaf;
  };
  let entries: JacobianEntry[][] | undefined;
  let scatter: Scatter | undefined;
  const place = (row: Row) => placeRow((entries ??= allocateEntries(problem, maxBytes)), problem, checkRow(problem, row));

  /** Items per chunk: a worker batch's worth of pairs, or inline about half a millisecond of them. */
  const sizer = new ChunkSizer(problem, 2);
  const chunks = new ChunkWindow(items, 2, sizer.size, () => problem.concurrency);
  const chunk = async (from: number, to: number) => {
    // A pair per item: its elements (one, dense; a group's) at their points on either side.
    let elements = to - from;
    if (grouped) for (let t = from; t < to; t++) elements += grouped.groups[t].length - 1;
    const builder = new ElementPairsBuilder(to - from, elements);
    const lone: Promise<void>[] = [];
    const element = (leaf: number, index: number) => builder.element(leaf, index, steps.perturbed(leaf, index, 1), steps.perturbed(leaf, index, -1));
    for (let t = from; t < to; t++) {
      if (grouped) {
        const group = grouped.groups[t];
        if (group.length === 1) lone.push(loneColumn(problem, steps, group[0], grouped.structure).then(place));
        else {
          for (const { leaf, index } of group) element(leaf, index);
          builder.endPair();
        }
        continue;
      }
      const leaf = leafOf(t);
      const index = t - leafStarts[leaf];
      if (steps.inside(leaf, index, 1) && steps.inside(leaf, index, -1)) {
        element(leaf, index);
        builder.endPair();
      } else lone.push(loneColumn(problem, steps, { leaf, index }).then(place));
    }
    const pairs = builder.build();
    const what = (k: number, side: number) => `${groupName(problem, columnsOf(pairs, k))} ${side ? "-" : "+"} h`;
    const [differences] = await Promise.all([problem.flatDifferences(pairs, what), ...lone]);
    if (builder.count > 0) {
      entries ??= allocateEntries(problem, maxBytes);
      scatter ??= new Scatter(problem, entries, grouped?.structure);
      const { starts, leaves, indices, plus, minus } = pairs;
      for (let k = 0; k < builder.count; k++) {
        for (let e = starts[k]; e < starts[k + 1]; e++) scatter.column(differences, k, leaves[e], indices[e], plus[e] - minus[e]);
      }
    }
  };
  for await (const _ of completed(chunks.more, chunks.window, () => chunks.take((from, to) => sizer.timed(to - from, () => chunk(from, to)))));
  return entries;
}

/** The columns pair k of `pairs` perturbs (for messages). */
function columnsOf(pairs: ElementPairs, k: number): Column[] {
  return Array.from({ length: pairs.starts[k + 1] - pairs.starts[k] }, (_, c) => ({ leaf: pairs.leaves[pairs.starts[k] + c], index: pairs.indices[pairs.starts[k] + c] }));
}

/** A column alone through rows.ts's `central`, as a row (at the structure's cells when grouped). */
async function loneColumn(problem: Problem, steps: StepRule, { leaf, index }: Column, structure?: Structure): Promise<Row> {
  const { values } = await central(problem, steps, leaf, index, 1);
  if (!structure) return { leaf, index, values };
  const aligned = structure.alignedTo(problem.outputs!);
  const indices = values.map((_, o) => aligned.cells(o, leaf, index));
  return { leaf, index, values: values.map((v, o) => (indices[o] ? Float64Array.from(indices[o]!, (i) => v[i]) : v)), indices };
}

/** Places pairs' differences over their columns' widths into the entries: every output value, or the structure's cells. */
class Scatter {
  private readonly stride: number;
  /** Where each output starts within a pair's values. */
  private readonly offsets: number[];
  private readonly structure?: Structure;

  constructor(
    private readonly problem: Problem,
    private readonly entries: JacobianEntry[][],
    structure?: Structure,
  ) {
    const sizes = outputSizes(problem.outputs!);
    this.stride = sizes.reduce((a, b) => a + b, 0);
    this.offsets = [];
    for (let o = 0, at = 0; o < sizes.length; at += sizes[o++]) this.offsets.push(at);
    this.structure = structure?.alignedTo(problem.outputs!);
  }

  /** Column `index` of leaf `leaf` from pair k's differences, over the width its points span. */
  column(differences: Float64Array, k: number, leaf: number, index: number, width: number): void {
    const base = k * this.stride;
    const size = this.problem.leaves[leaf].size;
    for (let o = 0; o < this.offsets.length; o++) {
      const target = this.entries[o][leaf].values;
      const from = base + this.offsets[o];
      const block = this.structure?.block(o, leaf);
      let check = 0;
      if (block) {
        for (let t = block.starts[index]; t < block.starts[index + 1]; t++) {
          const i = block.rows[t];
          const v = differences[from + i] / width;
          target[i * size + index] = v;
          check += v - v;
        }
      } else {
        const n = (this.offsets[o + 1] ?? this.stride) - this.offsets[o];
        for (let i = 0; i < n; i++) {
          const v = differences[from + i] / width;
          target[i * size + index] = v;
          check += v - v;
        }
      }
      // x - x is 0 for finite x: a NaN or Inf is refused as rows.ts's checkRow refuses it.
      if (check !== 0) this.refuse(differences, base, leaf, index, width);
    }
  }

  /** Throws checkRow's refusal for the column's values (some are not finite). */
  private refuse(differences: Float64Array, base: number, leaf: number, index: number, width: number): never {
    const values = this.offsets.map((at, o) => {
      const cells = this.structure?.cells(o, leaf, index);
      const n = (this.offsets[o + 1] ?? this.stride) - at;
      return cells ? Float64Array.from(cells, (i) => differences[base + at + i] / width) : Float64Array.from({ length: n }, (_, i) => differences[base + at + i] / width);
    });
    const indices = this.offsets.map((_, o) => this.structure?.cells(o, leaf, index));
    checkRow(this.problem, { leaf, index, values, indices });
    throw new Error(`${elementName(this.problem.leaves[leaf], index)}: a non-finite value checkRow did not refuse`);
  }
}
