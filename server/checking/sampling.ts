/**
 * The check's random choices, each a function of the seed alone through the engine's seeded
 * generator (fd/random.ts), one stream per purpose: which elements get an FD column, and the random
 * tangents and cotangents.
 *
 * Elements are sampled one per input path first, so every path is checked, then uniformly among the
 * rest until the budget is spent; all of them when it allows.
 */
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { seededGenerator, type SeededGenerator } from "../fd/random";

/** The check's streams of the seed (stream 0 is SPSA's directions). */
export const STREAMS = Object.freeze({ elements: 1, tangents: 2, cotangents: 3 });

/** An element of the differentiated inputs: index into the leaves, flat index within the leaf. */
export interface Element {
  leaf: number;
  index: number;
}

/** Seeded values in ±[0.5, 1): no component so small that its step vanishes in rounding. */
export function randomVector(rng: SeededGenerator, n: number): Float64Array {
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = uniformFloat64(rng);
    v[i] = (u < 0.5 ? -1 : 1) * (0.5 + Math.abs(u - 0.5));
  }
  return v;
}

/** e_j: the tangent whose FD JVP is the column of element j. */
export function unitVector(n: number, j: number): Float64Array {
  const unit = new Float64Array(n);
  unit[j] = 1;
  return unit;
}

/**
 * `count` elements of leaves of these sizes, in the order they are checked: one per leaf first (so
 * every input path is checked whenever the budget allows one column per path), then the rest
 * uniformly, without repetition. A partial Fisher-Yates shuffle over the global element indices,
 * kept sparse: O(count), whatever the number of elements.
 */
export function sampleElements(leaves: readonly { size: number }[], count: number, seed: bigint): Element[] {
  const offsets: number[] = [];
  let total = 0;
  for (const leaf of leaves) {
    offsets.push(total);
    total += leaf.size;
  }
  const locate = (g: number): Element => {
    let l = leaves.length - 1;
    while (offsets[l] > g) l--;
    return { leaf: l, index: g - offsets[l] };
  };
  if (count >= total) return Array.from({ length: total }, (_, g) => locate(g));
  const rng = seededGenerator(seed, STREAMS.elements);
  const order = new SparsePermutation();
  let position = 0;
  for (let l = 0; l < leaves.length && position < count; l++, position++) {
    order.swap(position, order.positionOf(offsets[l] + uniformInt(rng, 0, leaves[l].size - 1)));
  }
  for (; position < count; position++) order.swap(position, uniformInt(rng, position, total - 1));
  return Array.from({ length: count }, (_, p) => locate(order.at(p)));
}

/** A permutation of 0, 1, 2, … that stores only the positions it has moved. */
class SparsePermutation {
  private readonly elementAt = new Map<number, number>(); // position -> element (identity when absent)
  private readonly positionAt = new Map<number, number>(); // element -> position (identity when absent)

  at(position: number): number {
    return this.elementAt.get(position) ?? position;
  }

  positionOf(element: number): number {
    return this.positionAt.get(element) ?? element;
  }

  swap(p: number, q: number): void {
    const a = this.at(p);
    const b = this.at(q);
    this.elementAt.set(p, b);
    this.elementAt.set(q, a);
    this.positionAt.set(b, p);
    this.positionAt.set(a, q);
  }
}
