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

/** Collects pairs element by element; `build` packs them. */
export class ElementPairsBuilder {
  private readonly starts = [0];
  private readonly leaves: number[] = [];
  private readonly indices: number[] = [];
  private readonly plus: number[] = [];
  private readonly minus: number[] = [];

  /** An element of the pair being collected. */
  element(leaf: number, index: number, plus: number, minus: number): void {
    this.leaves.push(leaf);
    this.indices.push(index);
    this.plus.push(plus);
    this.minus.push(minus);
  }

  /** Ends the pair being collected. */
  endPair(): void {
    this.starts.push(this.leaves.length);
  }

  get count(): number {
    return this.starts.length - 1;
  }

  build(): ElementPairs {
    return { starts: Uint32Array.from(this.starts), leaves: Uint32Array.from(this.leaves), indices: Uint32Array.from(this.indices), plus: Float64Array.from(this.plus), minus: Float64Array.from(this.minus) };
  }
}

/**
 * Pairs whose two sides change the same elements (one element, a group, or whole leaves) packed.
 * Sides that change different elements cannot be packed: that is the engine's mistake.
 */
export function packPairs(pairs: readonly PerturbationPair[]): ElementPairs {
  const builder = new ElementPairsBuilder();
  for (const [a, b] of pairs) {
    if (a.length !== b.length) throw new Error("the two sides of a pair change different leaves");
    for (let c = 0; c < a.length; c++) {
      const [plus, minus] = [elementsOf(a[c]), elementsOf(b[c])];
      const same = a[c].leaf === b[c].leaf && plus.indices.length === minus.indices.length;
      for (let k = 0; k < plus.indices.length; k++) {
        if (!same || plus.indices[k] !== minus.indices[k]) throw new Error("the two sides of a pair change different elements");
        builder.element(a[c].leaf, plus.indices[k], plus.values[k], minus.values[k]);
      }
    }
    builder.endPair();
  }
  return builder.build();
}

/** The elements one change sets (flat indices) and their values. */
function elementsOf(change: Change): { indices: ArrayLike<number>; values: ArrayLike<number> } {
  if ("indices" in change) return { indices: change.indices, values: change.points };
  if ("values" in change) return { indices: Uint32Array.from(change.values, (_, k) => k), values: change.values };
  return { indices: [change.index], values: [change.value] };
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
  };
}

/** Several packs of pairs as one, in order. */
export function concatPairs(packs: readonly ElementPairs[]): ElementPairs {
  if (packs.length === 1) return packs[0];
  const elements = packs.reduce((n, p) => n + p.leaves.length, 0);
  const starts = new Uint32Array(packs.reduce((n, p) => n + pairCount(p), 0) + 1);
  const out = { starts, leaves: new Uint32Array(elements), indices: new Uint32Array(elements), plus: new Float64Array(elements), minus: new Float64Array(elements) };
  let [pair, element] = [0, 0];
  for (const p of packs) {
    for (let k = 1; k < p.starts.length; k++) starts[++pair] = element + p.starts[k];
    out.leaves.set(p.leaves, element);
    out.indices.set(p.indices, element);
    out.plus.set(p.plus, element);
    out.minus.set(p.minus, element);
    element += p.leaves.length;
  }
  return out;
}
