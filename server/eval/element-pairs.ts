/**
 * Pairs of element changes packed in typed arrays (evaluator.ts's ElementPairs): what central
 * differences evaluate, one element a pair (dense) or several (a column group), with no object per
 * pair or per evaluation, so that they travel to a worker thread as they are and an evaluator sets
 * the elements straight from them. Building, packing object pairs, and unpacking one side.
 */
import type { Change, ElementPairs, Perturbation, PerturbationPair } from "./evaluator";

export type { ElementPairs };

export function pairCount(pairs: ElementPairs): number {
  return pairs.starts.length - 1;
}

/** Collects pairs element by element, into typed arrays of a given capacity (in pairs and in elements); `build` packs them. */
export class ElementPairsBuilder {
  private readonly starts: Uint32Array;
  private readonly leaves: Uint32Array;
  private readonly indices: Uint32Array;
  private readonly plus: Float64Array;
  private readonly minus: Float64Array;
  private pairs = 0;
  private elements = 0;

  constructor(pairs: number, elements: number) {
    this.starts = new Uint32Array(pairs + 1);
    [this.leaves, this.indices] = [new Uint32Array(elements), new Uint32Array(elements)];
    [this.plus, this.minus] = [new Float64Array(elements), new Float64Array(elements)];
  }

  /** An element of the pair being collected. */
  element(leaf: number, index: number, plus: number, minus: number): void {
    const e = this.elements++;
    this.leaves[e] = leaf;
    this.indices[e] = index;
    this.plus[e] = plus;
    this.minus[e] = minus;
  }

  /** Ends the pair being collected. */
  endPair(): void {
    this.starts[++this.pairs] = this.elements;
  }

  get count(): number {
    return this.pairs;
  }

  /** The pairs collected (copies cut to size when fewer than the capacity: a view would carry the whole buffer to a worker). */
  build(): ElementPairs {
    const [p, e] = [this.pairs + 1, this.elements];
    const cut = <T extends Uint32Array | Float64Array>(a: T, n: number): T => (a.length === n ? a : (a.slice(0, n) as T));
    return { starts: cut(this.starts, p), leaves: cut(this.leaves, e), indices: cut(this.indices, e), plus: cut(this.plus, e), minus: cut(this.minus, e) };
  }
}

/**
 * Pairs whose two sides change the same elements (one element, or a group) packed. Sides that
 * change different elements, or whole leaves, are not packed: that would be the engine's mistake.
 */
export function packPairs(pairs: readonly PerturbationPair[]): ElementPairs {
  let elements = 0;
  for (const [a] of pairs) for (const change of a) elements += "indices" in change ? change.indices.length : 1;
  const builder = new ElementPairsBuilder(pairs.length, elements);
  for (const [a, b] of pairs) {
    if (a.length !== b.length) throw new Error("the two sides of a pair change different leaves");
    for (let c = 0; c < a.length; c++) {
      const [plus, minus] = [a[c], b[c]];
      if ("values" in plus || "values" in minus) throw new Error("whole leaves are set as they are, not packed element by element");
      if ("index" in plus && "index" in minus && plus.leaf === minus.leaf && plus.index === minus.index) {
        builder.element(plus.leaf, plus.index, plus.value, minus.value);
        continue;
      }
      if (!("indices" in plus && "indices" in minus) || plus.leaf !== minus.leaf || plus.indices.length !== minus.indices.length) throw new Error("the two sides of a pair change different elements");
      for (let k = 0; k < plus.indices.length; k++) {
        if (plus.indices[k] !== minus.indices[k]) throw new Error("the two sides of a pair change different elements");
        builder.element(plus.leaf, plus.indices[k], plus.points[k], minus.points[k]);
      }
    }
    builder.endPair();
  }
  return builder.build();
}

/** One side (0: plus, 1: minus) of pair k as a Perturbation: one change per leaf. */
export function sideOf(pairs: ElementPairs, k: number, side: number): Perturbation {
  const [from, to] = [pairs.starts[k], pairs.starts[k + 1]];
  const points = side === 0 ? pairs.plus : pairs.minus;
  if (to - from === 1) return [{ leaf: pairs.leaves[from], index: pairs.indices[from], value: points[from] }];
  const byLeaf = new Map<number, number[]>();
  for (let e = from; e < to; e++) {
    const members = byLeaf.get(pairs.leaves[e]);
    if (members) members.push(e);
    else byLeaf.set(pairs.leaves[e], [e]);
  }
  return [...byLeaf].map(([leaf, members]): Change => ({ leaf, indices: Uint32Array.from(members, (e) => pairs.indices[e]), points: Float64Array.from(members, (e) => points[e]) }));
}

/** Pairs [from, to) of `pairs`, packed anew. */
export function slicePairs(pairs: ElementPairs, from: number, to = pairCount(pairs)): ElementPairs {
  const [first, last] = [pairs.starts[from], pairs.starts[to]];
  return {
    starts: Uint32Array.from(pairs.starts.subarray(from, to + 1), (s) => s - first),
    leaves: pairs.leaves.slice(first, last),
    indices: pairs.indices.slice(first, last),
    plus: pairs.plus.slice(first, last),
    minus: pairs.minus.slice(first, last),
    ...(pairs.widths && { widths: pairs.widths.slice(from, to) }),
  };
}

/** Several packs of pairs as one, in order. */
export function concatPairs(packs: readonly ElementPairs[]): ElementPairs {
  if (packs.length === 1) return packs[0];
  const elements = packs.reduce((n, p) => n + p.leaves.length, 0);
  const starts = new Uint32Array(packs.reduce((n, p) => n + pairCount(p), 0) + 1);
  const out: ElementPairs = { starts, leaves: new Uint32Array(elements), indices: new Uint32Array(elements), plus: new Float64Array(elements), minus: new Float64Array(elements) };
  // Pairs without widths are divided by 1 (exact) beside those with.
  if (packs.some((p) => p.widths)) out.widths = new Float64Array(starts.length - 1).fill(1);
  let [pair, element] = [0, 0];
  for (const p of packs) {
    if (p.widths) out.widths!.set(p.widths, pair);
    for (let k = 1; k < p.starts.length; k++) starts[++pair] = element + p.starts[k];
    out.leaves.set(p.leaves, element);
    out.indices.set(p.indices, element);
    out.plus.set(p.plus, element);
    out.minus.set(p.minus, element);
    element += p.leaves.length;
  }
  return out;
}
