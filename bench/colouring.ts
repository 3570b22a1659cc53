/**
 * `npm run bench:colouring`: column grouping's colourings on the structures of 2-D stencils (a
 * grid's cells within Manhattan distance r of each other), in one run: the groups largest-first
 * finds alone, those DSATUR finds, the lower bound (the most columns at one output value), the groups
 * groupColumns gives, and the time the two colourings take as it runs them (the median of 3). Also the stencil
 * beside a scalar every output depends on (a dense block). Prints a table and writes
 * bench/results/colouring.json.
 */
import { buildStructure, type Structure } from "../server/fd/sparsity";
import { groupColumns, largestFirst } from "../server/fd/colouring";
import { colourBySaturation } from "../server/fd/saturation-colouring";
import type { Column } from "../server/fd/column";
import { report } from "./report";

/** The n × n grid's stencil of radius r, and with `scalar` a leaf of one element dense in the output. */
function stencil(n: number, r: number, scalar: boolean): { structure: Structure; columns: Column[]; bound: number } {
  const [rows, cols]: [number[], number[]] = [[], []];
  const atValue = new Uint32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let a = -r; a <= r; a++) for (let b = Math.abs(a) - r; b <= r - Math.abs(a); b++) {
    if (i + a < 0 || i + a >= n || j + b < 0 || j + b >= n) continue;
    rows.push((i + a) * n + j + b);
    cols.push(i * n + j);
    atValue[(i + a) * n + j + b]++;
  }
  const leaves = [{ path: "x", size: n * n }, ...(scalar ? [{ path: "k", size: 1 }] : [])];
  const structure = buildStructure([{ output_path: "f", input_path: "x", output_index: rows, input_index: cols }], leaves, [{ path: "f", size: n * n }], { field: "bench", fromRequest: false });
  const columns = leaves.flatMap((leaf, l) => Array.from({ length: leaf.size }, (_, index) => ({ leaf: l, index })));
  return { structure, columns, bound: atValue.reduce((m, v) => Math.max(m, v), 0) + (scalar ? 1 : 0) };
}

async function main(): Promise<void> {
  const results: Record<string, unknown>[] = [];
  for (const [n, r, scalar] of [[100, 1, false], [300, 1, false], [600, 1, false], [100, 1, true], [60, 2, false], [200, 2, false], [60, 3, false]] as const) {
    const { structure, columns, bound } = stencil(n, r, scalar);
    const greedy = (await largestFirst(structure, columns))!.count;
    const dsatur = (await colourBySaturation(structure, columns, greedy + 1))?.count;
    const groups = (await groupColumns(structure, columns))!.length;
    // The two colourings as groupColumns runs them (it keeps the groupings of structures it met).
    const times: number[] = [];
    for (let k = 0; k < 3; k++) {
      const started = performance.now();
      const first = (await largestFirst(structure, columns))!.count;
      await colourBySaturation(structure, columns, first);
      times.push(performance.now() - started);
    }
    results.push({
      structure: `${n}x${n}, radius ${r}${scalar ? ", and a dense scalar" : ""}`,
      columns: columns.length,
      lower_bound: bound,
      largest_first: greedy,
      dsatur: dsatur ?? "over its bounds",
      groups,
      ms: +[...times].sort((a, b) => a - b)[1].toFixed(1),
    });
    console.log(`  ${n}x${n} r=${r}${scalar ? " +scalar" : ""}: ${groups} groups`);
  }
  report("colouring", results);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
