/**
 * The row producer every Jacobian-shaped result is built on. A row is the derivative of all requested
 * outputs with respect to one input element j, i.e. J[..., j]; rows come as an async iterable so
 * callers can stream, contract or assemble them, and stop (AbortSignal) between evaluations.
 * Each rule below states its formula and divides by the step actually taken (see steps.ts).
 */
import { xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";
import type { ResolvedOptions } from "./options";
import { elementName, type Problem } from "./problem";
import { stepped } from "./steps";
import { completed } from "./window";

export interface Row {
  /** Index into problem.leaves. */
  leaf: number;
  /** Flat row-major index of the element within the leaf. */
  index: number;
  /** One flat FP64 array per output: d output / d x_j. */
  values: Float64Array[];
}

/** SPSA's default sample count, as tesseract-core: max(10, floor(sqrt(n))). */
export function defaultNumSamples(n: number): number {
  return Math.max(10, Math.floor(Math.sqrt(n)));
}

/** The rule that actually runs: stochastic falls back to central when it would not save evaluations. */
export function effectiveAlgorithm(n: number, options: ResolvedOptions): ResolvedOptions["algorithm"] {
  if (options.algorithm === "stochastic" && (options.numSamples ?? defaultNumSamples(n)) >= n) return "central";
  return options.algorithm;
}

/** Apply calls a Jacobian (or VJP) will make for n input elements. */
export function plannedEvaluations(n: number, options: ResolvedOptions): number {
  switch (effectiveAlgorithm(n, options)) {
    case "central":
      return 2 * n;
    case "forward":
      return n + 1;
    case "stochastic":
      return 2 * (options.numSamples ?? defaultNumSamples(n));
  }
}

export function rows(problem: Problem, options: ResolvedOptions): AsyncGenerator<Row> {
  switch (effectiveAlgorithm(problem.size, options)) {
    case "central":
      return centralRows(problem, options.eps);
    case "forward":
      return forwardRows(problem, options.eps);
    case "stochastic":
      return stochasticRows(problem, options.eps, options.numSamples ?? defaultNumSamples(problem.size), options.seed);
  }
}

/**
 * (f(x+) - f(x-)) / step for every output element, written over `plus` (the engine's own copy of
 * the outputs, used once) to spare an allocation per row.
 */
function quotient(plus: Float64Array[], minus: Float64Array[], step: number): Float64Array[] {
  plus.forEach((p, o) => {
    const m = minus[o];
    for (let i = 0; i < p.length; i++) p[i] = (p[i] - m[i]) / step;
  });
  return plus;
}

/** Every differentiated element as (leaf, index), in leaf order. */
function elements(problem: Problem): { leaf: number; index: number }[] {
  return problem.leaves.flatMap((input, leaf) => Array.from({ length: input.size }, (_, index) => ({ leaf, index })));
}

/** Central: J[:, j] = (f(x + h e_j) - f(x - h e_j)) / (x_j+ - x_j-); 2n evaluations, error O(h^2). */
function centralRows(problem: Problem, h: number): AsyncGenerator<Row> {
  const all = elements(problem);
  return completed(all.length, () => Math.ceil(problem.concurrency / 2), async (k) => {
    const { leaf, index } = all[k];
    const input = problem.leaves[leaf];
    const x = input.data[index];
    const plus = stepped(x, h, input.fp32);
    const minus = stepped(x, -h, input.fp32);
    const [fPlus, fMinus] = await problem.evaluateAll([
      [[{ leaf, index, value: plus }], () => `${elementName(input, index)} + h`],
      [[{ leaf, index, value: minus }], () => `${elementName(input, index)} - h`],
    ]);
    return { leaf, index, values: quotient(fPlus, fMinus, plus - minus) };
  });
}

/** Forward: J[:, j] = (f(x + h e_j) - f(x)) / (x_j+ - x_j); n + 1 evaluations, error O(h). */
async function* forwardRows(problem: Problem, h: number): AsyncGenerator<Row> {
  const base = await problem.evaluate([], () => "the unperturbed inputs");
  const all = elements(problem);
  yield* completed(all.length, () => problem.concurrency, async (k) => {
    const { leaf, index } = all[k];
    const input = problem.leaves[leaf];
    const x = input.data[index];
    const plus = stepped(x, h, input.fp32);
    const fPlus = await problem.evaluate([{ leaf, index, value: plus }], () => `${elementName(input, index)} + h`);
    return { leaf, index, values: quotient(fPlus, base, plus - x) };
  });
}

/**
 * A Rademacher (+1/-1) generator reproducible from a 64-bit seed. Each 32-bit draw of xoroshiro128+
 * gives 16 signs from its upper half (its lowest bits are the generator's weakest).
 */
function rademacher(seed: bigint): () => number {
  const hi = Number((seed >> 32n) & 0xffffffffn) | 0;
  const lo = Number(seed & 0xffffffffn) | 0;
  const rng = xoroshiro128plusFromState([hi ^ 0x9e3779b9, ~lo, lo, hi]);
  let bits = 0;
  let left = 0;
  return () => {
    if (left === 0) {
      bits = rng.next() >>> 16;
      left = 16;
    }
    left--;
    const sign = bits & 1 ? 1 : -1;
    bits >>>= 1;
    return sign;
  };
}

/**
 * SPSA (Spall): for K random directions D in {-1, +1}^n,
 *   J[:, j] ~= (1/K) sum_k (f(x + h D_k) - f(x - h D_k)) / (x+_kj - x-_kj),
 * unbiased because the signs of the other elements' steps average out. 2K evaluations.
 * The K output differences and steps are kept; rows are formed after the last sample.
 */
async function* stochasticRows(problem: Problem, h: number, samples: number, seed: bigint): AsyncGenerator<Row> {
  const draw = rademacher(seed);
  const leaves = problem.leaves;
  const differences: Float64Array[][] = new Array(samples);
  const steps: Float64Array[][] = new Array(samples); // [sample][leaf][element]: x+ - x-
  /** Directions are drawn in sample order when each sample starts, so a seed gives one result. */
  const sample = async (k: number) => {
    const plus = leaves.map((l) => new Float64Array(l.size));
    const minus = leaves.map((l) => new Float64Array(l.size));
    const taken = leaves.map((l) => new Float64Array(l.size));
    leaves.forEach((input, leaf) => {
      for (let j = 0; j < input.size; j++) {
        const d = draw();
        plus[leaf][j] = stepped(input.data[j], d * h, input.fp32);
        minus[leaf][j] = stepped(input.data[j], -d * h, input.fp32);
        taken[leaf][j] = plus[leaf][j] - minus[leaf][j];
      }
    });
    const [fPlus, fMinus] = await problem.evaluateAll([
      [plus.map((values, leaf) => ({ leaf, values })), () => `stochastic sample ${k} (x + h D)`],
      [minus.map((values, leaf) => ({ leaf, values })), () => `stochastic sample ${k} (x - h D)`],
    ]);
    differences[k] = quotient(fPlus, fMinus, 1);
    steps[k] = taken;
  };
  // Each sample stores its own results; rows need all of them.
  for await (const _ of completed(samples, () => Math.ceil(problem.concurrency / 2), sample));
  for (const [leaf, input] of leaves.entries()) {
    for (let index = 0; index < input.size; index++) {
      const values = differences[0].map((d) => new Float64Array(d.length));
      for (let k = 0; k < samples; k++) {
        const weight = 1 / (samples * steps[k][leaf][index]);
        differences[k].forEach((diff, o) => {
          const row = values[o];
          for (let i = 0; i < diff.length; i++) row[i] += diff[i] * weight;
        });
      }
      yield { leaf, index, values };
    }
  }
}
