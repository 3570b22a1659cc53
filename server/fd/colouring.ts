/**
 * Column grouping (Curtis, Powell and Reid, 1974): input elements whose Jacobian columns touch
 * disjoint output values can be perturbed together in one evaluation, since each output value then
 * moves with at most one of them. Grouping is colouring the columns so that two columns sharing an
 * output value differ in colour; this is the greedy colouring with the largest-first ordering
 * (columns touching the most output values first), which finds the optimum on banded and
 * block-diagonal structures and stays close to it elsewhere (Coleman and Moré, 1983).
 */
import type { Structure } from "./sparsity";

/** An input element: flat index `index` of leaf `leaf`. */
export interface Column {
  leaf: number;
  index: number;
}

/**
 * Steps of colouring work (column-to-column comparisons) above which grouping is given up for
 * dense evaluation: a nearly dense structure costs O(n^2 m) to colour and saves nothing.
 */
const MAX_COLOURING_WORK = 200_000_000;

/**
 * The columns in groups of mutually disjoint columns, or undefined when the structure is too dense
 * to be worth colouring. Greedy: each column takes the lowest colour that no column sharing one of
 * its output values has. A column dense in an output shares with every column touching that output.
 */
export function groupColumns(structure: Structure, columns: readonly Column[]): Column[][] | undefined {
  const outputs = structure.outputs;
  const order = columns.map((c, k) => ({ k, degree: structure.degree(c.leaf, c.index) })).sort((a, b) => b.degree - a.degree || a.k - b.k);
  /** Per output: colours used at each value by sparse columns, by any column, by columns dense in it. */
  const atValue: (number[] | undefined)[][] = outputs.map(() => []);
  const anyColour: number[][] = outputs.map(() => []);
  const denseColour: number[][] = outputs.map(() => []);
  const forbidden = new Int32Array(columns.length + 1).fill(-1);
  const colourOf = new Int32Array(columns.length);
  let colours = 0;
  let work = 0;
  for (const { k } of order) {
    const { leaf, index } = columns[k];
    const forbid = (list: readonly number[] | undefined) => {
      if (!list) return;
      work += list.length;
      for (const c of list) forbidden[c] = k;
    };
    outputs.forEach((_, o) => {
      const cells = structure.cells(o, leaf, index);
      if (cells === undefined) return forbid(anyColour[o]);
      if (cells.length > 0) forbid(denseColour[o]);
      for (const i of cells) forbid(atValue[o][i]);
    });
    if (work > MAX_COLOURING_WORK) return undefined;
    let colour = 0;
    while (forbidden[colour] === k) colour++;
    colourOf[k] = colour;
    colours = Math.max(colours, colour + 1);
    outputs.forEach((_, o) => {
      const cells = structure.cells(o, leaf, index);
      if (cells === undefined) {
        denseColour[o].push(colour);
        anyColour[o].push(colour);
        return;
      }
      if (cells.length > 0) anyColour[o].push(colour);
      for (const i of cells) (atValue[o][i] ??= []).push(colour);
    });
  }
  const groups: Column[][] = Array.from({ length: colours }, () => []);
  columns.forEach((c, k) => groups[colourOf[k]].push(c));
  return groups;
}
