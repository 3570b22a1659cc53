/**
 * Column grouping (Curtis, Powell and Reid, 1974): input elements whose Jacobian columns touch
 * disjoint output values can be perturbed together in one evaluation, since each output value then
 * moves with at most one of them. Grouping is colouring the columns so that two columns sharing an
 * output value differ in colour; this is the greedy colouring with the largest-first ordering
 * (columns touching the most output values first), which finds the optimum on banded and
 * block-diagonal structures and stays close to it elsewhere (Coleman and Moré, 1983). Where it is
 * above the obvious lower bound (the most columns at one output value), a slower colouring gets a
 * try (saturation-colouring.ts): on a 2-D grid's 5-point stencil it finds 5 groups where greedy takes 7.
 */
import { LRUCache } from "lru-cache";
import { COLUMNS_PER_TURN, type Column, type Turn } from "./column";
import { colourBySaturation } from "./saturation-colouring";
import type { Structure } from "./sparsity";

/**
 * Colour tests above which grouping is given up for dense evaluation: a nearly dense structure costs
 * O(n^2) tests to colour and saves nothing. The bound grows with the columns: dense costs an
 * evaluation per column, far more than WORK_PER_COLUMN tests (some 25 µs), and a fixed bound gave up
 * on a million columns of 3 nonzeros each (142 groups) and ran them dense, 2 000 000 evaluations.
 */
const MAX_COLOURING_WORK = 100_000_000;
const WORK_PER_COLUMN = 1000;

/** Lists longer than this become sets (a hot output value: every column of a sum touches it). */
const SMALL = 16;

/**
 * The colours used by the columns under one constraint (an output value, or all of an output), and
 * their mex: the smallest colour not used, below which every colour is taken.
 */
class Used {
  mex = 0;
  private small: number[] = [];
  private large?: Set<number>;

  has(colour: number): boolean {
    return this.large ? this.large.has(colour) : this.small.includes(colour);
  }

  add(colour: number): void {
    if (this.large) this.large.add(colour);
    else if (this.small.push(colour) > SMALL) this.large = new Set(this.small);
    while (this.has(this.mex)) this.mex++;
  }
}

/**
 * The columns in groups of mutually disjoint columns, or undefined when the structure is too dense
 * to be worth colouring. Greedy: each column takes the lowest colour that no column sharing one of
 * its output values has — at least the largest mex of its constraints, since every colour below a
 * constraint's mex is taken there. A column dense in an output shares with every column touching it.
 */
export async function groupColumns(structure: Structure, columns: readonly Column[], turn?: Turn): Promise<Column[][] | undefined> {
  // Every column of the structure, in order: the grouping depends on the structure alone.
  const whole = columns.length === structure.leaves.reduce((n, leaf) => n + leaf.size, 0);
  if (!whole) return colour(structure, columns, turn);
  const key = structure.fingerprint;
  let groups = recent.get(key);
  if (groups === undefined) recent.set(key, (groups = (await colour(structure, columns, turn)) ?? "dense"));
  return groups === "dense" ? undefined : groups;
}

/** groupColumns over every column of the structure, leaf by leaf; the columns are listed only when the grouping is not known yet. */
export async function groupAllColumns(structure: Structure, turn?: Turn): Promise<Column[][] | undefined> {
  const known = recent.get(structure.fingerprint);
  if (known !== undefined) return known === "dense" ? undefined : known;
  return groupColumns(structure, structure.leaves.flatMap((leaf, l) => Array.from({ length: leaf.size }, (_, index) => ({ leaf: l, index }))), turn);
}

/**
 * Groupings of recent structures over all their columns: a Tesseract's declaration gives the same
 * structure request after request, and colouring costs about a microsecond per column. The groups
 * are shared, never written to. Bounded in columns held (some 50 bytes each), not only in entries.
 */
const recent = new LRUCache<string, Column[][] | "dense">({ max: 16, maxSize: 1 << 20, sizeCalculation: (groups) => (groups === "dense" ? 1 : Math.max(1, groups.reduce((n, g) => n + g.length, 0))) });

async function colour(structure: Structure, columns: readonly Column[], turn?: Turn): Promise<Column[][] | undefined> {
  const greedy = await largestFirst(structure, columns, turn);
  if (!greedy) return undefined;
  const better = greedy.count > 1 ? await colourBySaturation(structure, columns, greedy.count, turn) : undefined;
  const { colours, count } = better ?? greedy;
  const groups: Column[][] = Array.from({ length: count }, () => []);
  columns.forEach((c, k) => groups[colours[k]].push(c));
  return groups;
}

/** The greedy largest-first colouring: colours[k] is column k's; undefined past the work bound. */
export async function largestFirst(structure: Structure, columns: readonly Column[], turn?: Turn): Promise<{ colours: Int32Array; count: number } | undefined> {
  const outputs = structure.outputs;
  const order = columns.map((c, k) => ({ k, degree: structure.degree(c.leaf, c.index) })).sort((a, b) => b.degree - a.degree || a.k - b.k);
  /** Per output: colours at each value (of columns touching it sparsely), of any column, of columns dense in it. */
  const atValue: (Used | undefined)[][] = outputs.map(() => []);
  const anyColumn = outputs.map(() => new Used());
  const denseColumns = outputs.map(() => new Used());
  const colourOf = new Int32Array(columns.length);
  let colours = 0;
  let work = 0;
  const maxWork = Math.max(MAX_COLOURING_WORK, WORK_PER_COLUMN * columns.length);
  for (let c = 0; c < order.length; c++) {
    if (turn && c % COLUMNS_PER_TURN === 0) {
      const turning = turn();
      if (turning) await turning;
    }
    const { k } = order[c];
    const { leaf, index } = columns[k];
    // The constraints, and what the column adds to once coloured.
    const constraints: Used[] = [];
    const joins: Used[] = [];
    for (let o = 0; o < outputs.length; o++) {
      const block = structure.block(o, leaf);
      if (!block) {
        constraints.push(anyColumn[o]);
        joins.push(anyColumn[o], denseColumns[o]);
        continue;
      }
      const [from, to] = [block.starts[index], block.starts[index + 1]];
      if (to === from) continue;
      constraints.push(denseColumns[o]);
      joins.push(anyColumn[o]);
      for (let p = from; p < to; p++) {
        const value = (atValue[o][block.rows[p]] ??= new Used());
        constraints.push(value);
        joins.push(value);
      }
    }
    let colour = constraints.reduce((c, u) => Math.max(c, u.mex), 0);
    while (constraints.some((u) => u.has(colour))) colour++;
    work += constraints.length * (colour + 1 - constraints.reduce((c, u) => Math.max(c, u.mex), 0));
    if (work > maxWork) return undefined;
    for (const u of joins) u.add(colour);
    colourOf[k] = colour;
    colours = Math.max(colours, colour + 1);
  }
  return { colours: colourOf, count: colours };
}
