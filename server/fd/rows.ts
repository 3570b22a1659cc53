/**
 * The row producer every Jacobian-shaped result is built on. A row is the derivative of all requested
 * outputs with respect to one input element j, i.e. J[..., j]; rows come as an async iterable so
 * callers can stream, contract or assemble them, and stop (AbortSignal) between evaluations.
 * Each rule below states its formula and divides by the steps actually taken (steps.ts).
 */
import { Code, isTesseractError, TesseractError } from "../../common/errors";
import { checkFinite } from "./finite";
import { quotientAllFinite } from "../eval/finite-values";
import { pairNoise, PROBE_POINTS, PROBE_SPACING, type Pair } from "./noise";
import type { ResolvedOptions, StochasticEstimatorName } from "./options";
import { elementName, type InputLeaf } from "../eval/input-leaf";
import { leasedItem } from "../eval/result-lease";
import type { Perturbation, PerturbationPair } from "../eval/evaluator";
import type { Problem } from "./problem";
import { seededGenerator } from "./random";
import { ADAPTIVE_MULTIPLES, RICHARDSON_MULTIPLES, type StepRule } from "./steps";
import { ChunkWindow, completed } from "./window";

export interface Row {
  /** Index into problem.leaves. */
  leaf: number;
  /** Flat row-major index of the element within the leaf. */
  index: number;
  /** One flat FP64 array per output: d output / d x_j. */
  values: Float64Array[];
  /** Estimated absolute error of each value, for the rules that give one (Richardson, adaptive). */
  errors?: Float64Array[];
  /** The rounding of the outputs each value carries (stencilRounding), where asked for and no error estimate holds it. */
  rounding?: Float64Array[];
  /**
   * A sparse row (column grouping, grouped.ts): per output, the flat output indices `values[o]` and
   * `errors[o]` hold, ascending (every other entry is structurally zero); undefined: dense.
   */
  indices?: readonly (Uint32Array | undefined)[];
  /**
   * A lone column's (one near a domain bound, computed over whole outputs): where it is nonzero
   * outside the structure's cells. Verification fails on it, since its direction cannot move an
   * element that near a bound.
   */
  unstructured?: string;
  /** Its values were checked finite by the pass that computed them (quotientRow): finiteRows passes it on as it is. */
  checked?: true;
  /**
   * For the reader that reads the values no more (copied out, or sent by the stream from where they
   * are): their memory may go (result-lease.ts). Until then a row that has one is the reader's alone: nothing writes to it.
   */
  release?: () => void;
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

/**
 * Apply calls a Jacobian (or VJP) will make for n input elements. The rules with error estimates
 * add f(x) and the noise probe once per request (noise.ts): 1 + PROBE_POINTS = 9.
 */
export function plannedEvaluations(n: number, options: ResolvedOptions): number {
  const probe = n > 0 ? 1 + PROBE_POINTS : 0;
  switch (effectiveAlgorithm(n, options)) {
    case "central":
      return 2 * n;
    case "forward":
      return n + 1;
    case "stochastic":
      return 2 * (options.numSamples ?? defaultNumSamples(n));
    case "richardson":
      return 2 * RICHARDSON_MULTIPLES.length * n + probe;
    case "adaptive":
      return 2 * ADAPTIVE_MULTIPLES.length * n + probe;
  }
}

/** Whether the rule extrapolates over several steps (Richardson, adaptive): error estimates, f(x) and the noise probe. */
export function extrapolates(algorithm: ResolvedOptions["algorithm"]): boolean {
  return algorithm === "richardson" || algorithm === "adaptive";
}

/** Whether the rule evaluates f(x), once per request: forward, and the rules with error estimates. */
export function usesBase(n: number, options: ResolvedOptions): boolean {
  const algorithm = effectiveAlgorithm(n, options);
  return algorithm === "forward" || (n > 0 && extrapolates(algorithm));
}

/**
 * The rows of the Jacobian by the options' rule, each checked to be finite, in batches: the rows
 * whose evaluations came back together (one at a time when evaluations run one after the other).
 */
export function rows(problem: Problem, options: ResolvedOptions): AsyncGenerator<readonly Row[]> {
  return finiteRows(problem, ruleRows(problem, options));
}

function ruleRows(problem: Problem, options: ResolvedOptions): AsyncGenerator<readonly Row[]> {
  const steps = problem.stepRule(options);
  switch (effectiveAlgorithm(problem.size, options)) {
    case "central":
      return centralRows(problem, steps);
    case "forward":
      return forwardRows(problem, steps);
    case "stochastic":
      return stochasticRows(problem, steps, options.numSamples ?? defaultNumSamples(problem.size), options.seed, options.stochasticEstimator ?? "spsa");
    case "richardson":
      return extrapolatedRows(problem, steps, RICHARDSON_MULTIPLES);
    case "adaptive":
      return extrapolatedRows(problem, steps, ADAPTIVE_MULTIPLES);
  }
}

/** Passes rows on after checkRow. */
async function* finiteRows(problem: Problem, source: AsyncGenerator<readonly Row[]>): AsyncGenerator<readonly Row[]> {
  for await (const batch of source) {
    for (const row of batch) if (!row.checked) checkRow(problem, row);
    yield batch;
  }
}

/** checkFinite on a row's values and error estimates; the row itself. */
export function checkRow(problem: Problem, row: Row): Row {
  // Names (and the outputs) are looked up only for a refusal: this runs once per row.
  for (let o = 0; o < row.values.length; o++) {
    const entry = (i: number) => {
      const output = problem.outputs![o];
      return `d ${output.path}${output.shape.length ? ` (flat index ${row.indices?.[o]?.[i] ?? i})` : ""} / d ${elementName(problem.leaves[row.leaf], row.index)}`;
    };
    checkFinite(row.values[o], entry);
    if (row.errors) checkFinite(row.errors[o], (i) => `the error estimate of ${entry(i)}`);
  }
  return row;
}

/**
 * A row of (plus - minus) / step for every output element, written over `plus` (the engine's own
 * copy, used once) and checked finite in the same pass: a row of a big output is read once here,
 * not twice (checkRow then only names the first entry that is not).
 */
function quotientRow(problem: Problem, leaf: number, index: number, plus: Float64Array[], minus: readonly Float64Array[], step: number): Row {
  let finite = true;
  for (let o = 0; o < plus.length; o++) finite = quotientAllFinite(plus[o], minus[o], step) && finite;
  const row: Row = { leaf, index, values: plus, checked: true };
  if (!finite) checkRow(problem, row);
  return row;
}

/** Every differentiated element as (leaf, index), in leaf order. */
function elements(problem: Problem): { leaf: number; index: number }[] {
  return problem.leaves.flatMap((input, leaf) => Array.from({ length: input.size }, (_, index) => ({ leaf, index })));
}

/** Rows of one element each, `window` elements at a time, in the batches they complete in. */
function elementRows(problem: Problem, evaluationsPerRow: number, row: (leaf: number, index: number) => Promise<Row>): AsyncGenerator<readonly Row[]> {
  return chunkedRows(problem, elements(problem), evaluationsPerRow, (chunk) => Promise.all(chunk.map(({ leaf, index }) => row(leaf, index))));
}

/** Chunks in flight at once when the evaluator takes many pairs but has no tasks of its own size. */
const CHUNKS_IN_FLIGHT = 4;

/**
 * Items (elements, or column groups) per chunk when the evaluator takes many pairs at once: a worker
 * task's worth, so that each chunk is one task and every thread has chunks of its own (a chunk's
 * pairs go in one call, which one task takes whole: with chunks a fixed share of what may be in
 * flight, a 15-thread pool ran 3-5 tasks at once); without tasks, a CHUNKS_IN_FLIGHT-th of what may
 * be in flight.
 */
export function chunkItems(problem: Problem, evaluationsPerItem: number): number {
  const evaluations = problem.taskEvaluations ?? problem.concurrency / CHUNKS_IN_FLIGHT;
  return Math.max(1, Math.floor(evaluations / evaluationsPerItem));
}

/** Inline, a chunk runs about this long before the event loop gets a turn (Problem's own turns come between calls). */
const INLINE_CHUNK_MS = 0.5;
const MAX_INLINE_CHUNK = 64;

/**
 * Items per chunk of a problem's chunks: a worker task's worth where evaluations run in parallel
 * (chunkItems); inline, one until a chunk has been timed, then about INLINE_CHUNK_MS of them.
 */
export class ChunkSizer {
  private itemMs?: number;

  constructor(
    private readonly problem: Problem,
    private readonly evaluationsPerItem: number,
    /** Milliseconds (a clock of their own for tests). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  readonly size = (): number => {
    if (this.problem.concurrency > 1) return chunkItems(this.problem, this.evaluationsPerItem);
    return this.itemMs === undefined ? 1 : Math.max(1, Math.min(MAX_INLINE_CHUNK, Math.floor(INLINE_CHUNK_MS / this.itemMs)));
  };

  /** `run` on a chunk of `items`, timed when inline. */
  async timed<T>(items: number, run: () => Promise<T>): Promise<T> {
    const started = this.now();
    const result = await run();
    if (this.problem.concurrency === 1 && items > 0) this.itemMs = (this.now() - started) / items;
    return result;
  }
}

/**
 * The rows of `items` (elements, or column groups) by `task`, over chunks of items, with as many
 * evaluations in flight as the evaluator can use. A chunk is one item, unless the evaluator takes
 * many pairs at once: then, in worker threads, a worker's task (chunkItems), so that its pairs go in
 * one call with one promise, and as many chunks as fit in the evaluator's concurrency keep every
 * worker busy; inline, about INLINE_CHUNK_MS of items (a call per item cost cheap applies as much
 * again as their evaluations). Rows come in the batches they complete in.
 */
export async function* chunkedRows<T>(problem: Problem, items: readonly T[], evaluationsPerItem: number, task: (chunk: readonly T[]) => Promise<Row[] | LazyRows>): AsyncGenerator<readonly Row[]> {
  const sizer = new ChunkSizer(problem, evaluationsPerItem);
  const size = () => (problem.takesPairs ? sizer.size() : 1);
  const chunks = new ChunkWindow(items.length, evaluationsPerItem, size, () => problem.concurrency);
  const chunkRows = () => chunks.take((from, to) => sizer.timed(to - from, () => task(items.slice(from, to))));
  for await (const done of completed(chunks.more, chunks.window, chunkRows, problem.paced)) {
    if (done.every((d) => Array.isArray(d))) {
      yield done.length === 1 ? (done[0] as Row[]) : (done as Row[][]).flat();
      continue;
    }
    for (const d of done) {
      if (Array.isArray(d)) yield d;
      else for (let from = 0; from < d.count; from += ROWS_PER_BATCH) yield d.slice(from, Math.min(d.count, from + ROWS_PER_BATCH));
    }
  }
}

/** The most rows made at once from one chunk's evaluations (a column group's may be many: LazyRows). */
export const ROWS_PER_BATCH = 4096;

/**
 * A chunk's rows made on demand, ROWS_PER_BATCH at a time, from the evaluations it keeps (whole
 * outputs): a column group of many columns made every row at once, 300 000 rows of a diagonal
 * (466 MB in a server streaming them).
 */
export interface LazyRows {
  count: number;
  /** Rows [from, to), each checked finite. */
  slice(from: number, to: number): Row[];
}

/** Rows `at(t)` for t < count, all at once where there are few, else on demand (LazyRows). */
export function rowsOf(count: number, at: (t: number) => Row): Row[] | LazyRows {
  if (count <= ROWS_PER_BATCH) return Array.from({ length: count }, (_, t) => at(t));
  return { count, slice: (from: number, to: number) => Array.from({ length: to - from }, (_, t) => at(from + t)) };
}

/**
 * Over the engine's own copies of f(x+) and f(x-) (used once): D = (f+ - f-) / width into `plus`, and
 * the pair's mean (f+ + f-) / 2, for noise.ts's pairNoise, into `minus`.
 */
export function centralQuotient(plus: Float64Array[], minus: Float64Array[], width: number): { values: Float64Array[]; mean: Float64Array[] } {
  plus.forEach((p, o) => {
    const m = minus[o];
    for (let i = 0; i < p.length; i++) {
      const fp = p[i];
      const fm = m[i];
      p[i] = (fp - fm) / width;
      m[i] = (fp + fm) / 2;
    }
  });
  return { values: plus, mean: minus };
}

/**
 * A central difference at `multiple` times the step: D = (f(x + mh) - f(x - mh)) / (x+ - x-); noise
 * of level σ in f reaches D as σ · √2 / |x+ - x-|. With `estimate`, also the rounding it carries.
 */
export async function central(problem: Problem, steps: StepRule, leaf: number, index: number, multiple: number, estimate = false): Promise<CentralDifference> {
  if (!steps.inside(leaf, index, multiple) || !steps.inside(leaf, index, -multiple)) return oneSided(problem, steps, leaf, index, multiple, estimate);
  const input = problem.leaves[leaf];
  const plus = steps.perturbed(leaf, index, multiple);
  const minus = steps.perturbed(leaf, index, -multiple);
  const plusChange: Perturbation = [{ leaf, index, value: plus }];
  const minusChange: Perturbation = [{ leaf, index, value: minus }];
  const whatPlus = () => `${elementName(input, index)} + ${multiple === 1 ? "" : multiple}h`;
  const whatMinus = () => `${elementName(input, index)} - ${multiple === 1 ? "" : multiple}h`;
  const width = plus - minus;
  const spread = Math.SQRT2 / Math.abs(width);
  if (!estimate) {
    const [quotient] = await problem.differences([[plusChange, minusChange]], (_, side) => (side ? whatMinus() : whatPlus()), Float64Array.of(width));
    return { values: quotient, halfWidth: width / 2, spread, rounding: [] };
  }
  const [fPlus, fMinus] = await problem.evaluateAll([
    [plusChange, whatPlus],
    [minusChange, whatMinus],
  ]);
  const rounding = stencilRounding(problem, [1 / width, -1 / width], [fPlus, fMinus]);
  const { values, mean } = centralQuotient(fPlus, fMinus, width);
  return { values, mean, halfWidth: width / 2, spread, rounding };
}

/**
 * The rounding a stencil D = sum_p c_p f_p carries: sum_p |c_p| r_p per output value, r_p the rounding
 * of f_p's values (Problem.rounding: half an ulp of each, or a contraction's own account).
 */
export function stencilRounding(problem: Problem, coefficients: readonly number[], evaluations: readonly Float64Array[][]): Float64Array[] {
  const roundings = evaluations.map((f) => problem.rounding(f));
  return roundings[0].map((first, o) => first.map((_, i) => coefficients.reduce((sum, c, p) => sum + Math.abs(c) * roundings[p][o][i], 0)));
}

/**
 * Near a domain bound: the one-sided second-order stencil on the side with room, through f at
 * x, x1 = x + s h and x2 = x + 2 s h (s = ±1; the points actually taken):
 *   f'(x) ~= -(h1 + h2) / (h1 h2) f(x) + h2 / (h1 (h2 - h1)) f(x1) - h1 / (h2 (h2 - h1)) f(x2),
 * with h1 = x1 - x, h2 = x2 - x (for h2 = 2 h1: (-3 f(x) + 4 f(x1) - f(x2)) / 2h1), written
 * c0 = -(1/h1 + 1/h2), c1 = (1/h1) h2 / (h2 - h1), c2 = -(1/h2) h1 / (h2 - h1) so that no product of
 * steps overflows or underflows. Error O(h^2); noise σ in f reaches it as σ · sqrt(c0² + c1² + c2²).
 * f(x) is evaluated once per request.
 */
async function oneSided(problem: Problem, steps: StepRule, leaf: number, index: number, multiple: number, estimate: boolean): Promise<CentralDifference> {
  const input = problem.leaves[leaf];
  const side = steps.oneSided(leaf, index, multiple);
  const x = input.data[index];
  if (side === 0) {
    throw new TesseractError(
      Code.FAILED_PRECONDITION,
      `${elementName(input, index)} = ${x}: its domain ${steps.describeBounds(leaf)} leaves no room for two steps of ${multiple * steps.size(leaf, x)} on either side; use a smaller eps`,
    );
  }
  steps.noteOneSided(leaf, index, side);
  const x1 = steps.perturbed(leaf, index, side * multiple);
  const x2 = steps.perturbed(leaf, index, 2 * side * multiple);
  const [f0, [f1, f2]] = await Promise.all([
    problem.base(),
    problem.evaluateAll([
      [[{ leaf, index, value: x1 }], () => `${elementName(input, index)} ${side > 0 ? "+" : "-"} h (one-sided)`],
      [[{ leaf, index, value: x2 }], () => `${elementName(input, index)} ${side > 0 ? "+" : "-"} 2h (one-sided)`],
    ]),
  ]);
  const [h1, h2] = [x1 - x, x2 - x];
  const [c0, c1, c2] = [-(1 / h1 + 1 / h2), (1 / h1) * (h2 / (h2 - h1)), -(1 / h2) * (h1 / (h2 - h1))];
  const rounding = estimate ? stencilRounding(problem, [c0, c1, c2], [f0, f1, f2]) : [];
  // c0 = -(c1 + c2): written as differences from f(x), an output that does not move gives exactly 0
  // (c0 f0 + c1 f1 + c2 f2 left ulp(f)/h there: 393216 for d exp(40) / dz).
  f1.forEach((v, o) => {
    for (let i = 0; i < v.length; i++) v[i] = c1 * (v[i] - f0[o][i]) + c2 * (f2[o][i] - f0[o][i]);
  });
  return { values: f1, halfWidth: Math.abs(h1), spread: Math.hypot(c0, c1, c2), rounding };
}

/**
 * Central: J[:, j] = (f(x + h e_j) - f(x - h e_j)) / (x_j+ - x_j-); 2n evaluations, error O(h^2).
 * A chunk's pairs go in one call (chunkedRows), divided by their widths where they are evaluated (a
 * worker thread's share, where there are workers); elements near a bound go one-sided, alone.
 */
function centralRows(problem: Problem, steps: StepRule): AsyncGenerator<readonly Row[]> {
  return chunkedRows(problem, elements(problem), 2, async (chunk) => {
    const lone = chunk.filter(({ leaf, index }) => !steps.inside(leaf, index, 1) || !steps.inside(leaf, index, -1));
    const paired = lone.length ? chunk.filter((m) => !lone.includes(m)) : chunk;
    const points = paired.map(({ leaf, index }) => [steps.perturbed(leaf, index, 1), steps.perturbed(leaf, index, -1)]);
    const pairs = paired.map(({ leaf, index }, k): PerturbationPair => [[{ leaf, index, value: points[k][0] }], [{ leaf, index, value: points[k][1] }]]);
    const what = (k: number, side: number) => `${elementName(problem.leaves[paired[k].leaf], paired[k].index)} ${side ? "-" : "+"} h`;
    const widths = Float64Array.from(points, ([plus, minus]) => plus - minus);
    const [quotients, loneRows] = await Promise.all([
      pairs.length ? problem.differences(pairs, what, widths) : [],
      Promise.all(lone.map(async ({ leaf, index }) => ({ leaf, index, values: (await central(problem, steps, leaf, index, 1)).values }))),
    ]);
    const pairRow = ({ leaf, index }: { leaf: number; index: number }, k: number): Row => {
      // A worker's rows: released by the stream once written, and maybe checked finite there (result-lease.ts).
      const item = leasedItem(quotients[k]);
      return { leaf, index, values: quotients[k], checked: item?.checked || undefined, release: item?.release };
    };
    return [...paired.map(pairRow), ...loneRows];
  });
}

/** Forward: J[:, j] = (f(x + h e_j) - f(x)) / (x_j+ - x_j); n + 1 evaluations, error O(h). */
async function* forwardRows(problem: Problem, steps: StepRule): AsyncGenerator<readonly Row[]> {
  const base = await problem.base();
  yield* elementRows(problem, 1, (leaf, index) => forwardRow(problem, steps, base, leaf, index));
}

/** One element's forward difference; with `estimate`, the rounding it carries too. */
async function forwardRow(problem: Problem, steps: StepRule, base: Float64Array[], leaf: number, index: number, estimate = false): Promise<Row> {
  const input = problem.leaves[leaf];
  // Near an upper bound, the backward difference (f(x) - f(x - h)) / (x - x-): the same formula.
  const side = steps.inside(leaf, index, 1) ? 1 : steps.inside(leaf, index, -1) ? -1 : 0;
  if (side === 0) throw new TesseractError(Code.FAILED_PRECONDITION, `${elementName(input, index)}: its domain ${steps.describeBounds(leaf)} leaves no room for a step; use a smaller eps`);
  if (side < 0) steps.noteOneSided(leaf, index, -1);
  const plus = steps.perturbed(leaf, index, side);
  const fPlus = await problem.evaluate([{ leaf, index, value: plus }], () => `${elementName(input, index)} ${side > 0 ? "+" : "-"} h`);
  const step = plus - input.data[index];
  const rounding = estimate ? stencilRounding(problem, [1 / step, -1 / step], [fPlus, base]) : undefined;
  // A worker's evaluation, divided here in place: the row is the whole item, the stream's to release.
  const row = quotientRow(problem, leaf, index, fPlus, base, step);
  row.release = leasedItem(fPlus)?.release;
  row.rounding = rounding;
  return row;
}

/**
 * One element's row alone, by the request's rule as its own rows take it, one-sided stencils near a
 * domain bound included (a JVP along a single element: CheckGradients' columns); `withRounding`, with
 * the rounding it carries where it has no error estimate. Stochastic steps along one element are
 * central differences.
 */
export async function elementRow(problem: Problem, options: ResolvedOptions, leaf: number, index: number, withRounding: boolean): Promise<Row> {
  const steps = problem.stepRule(options);
  switch (effectiveAlgorithm(problem.size, options)) {
    case "forward":
      return forwardRow(problem, steps, await problem.base(), leaf, index, withRounding);
    case "richardson":
      return extrapolatedRow(problem, steps, RICHARDSON_MULTIPLES, leaf, index);
    case "adaptive":
      return extrapolatedRow(problem, steps, ADAPTIVE_MULTIPLES, leaf, index);
    default: {
      const { values, rounding } = await central(problem, steps, leaf, index, 1, withRounding);
      return { leaf, index, values, rounding: withRounding ? rounding : undefined };
    }
  }
}

/**
 * Richardson extrapolation over central differences at decreasing steps m_0 h > m_1 h > ...:
 *   R_k = D_k + (D_k - D_{k-1}) / (q_k - 1),  q_k = (a_{k-1} / a_k)^2,
 * with a_k the half-widths actually taken (exactly 2 apart: R = (4 D_k - D_{k-1}) / 3, the 4-evaluation
 * 5-point stencil, error O(h^4)). Each R_k's error is estimated as truncation + NOISE_DEVIATIONS · noise:
 * - noise, the standard deviation of what reaches R_k from f: with N_k = σ s_k + r_k for D_k (σ the
 *   noise level of f, measured: noise.ts and rowNoise; s_k the spread of D_k's stencil; r_k the
 *   rounding of the values it was formed from), ν_k = sqrt((q_k N_k)^2 + N_{k-1}^2) / (q_k - 1);
 * - with one extrapolation (ALGORITHM_RICHARDSON): truncation |R - D_1|, the O(h^2) term it removed;
 *   noise ν;
 * - with several (ALGORITHM_ADAPTIVE): truncation |R_k - R_{k-1}| + 2 |R_k - R_{k+1}|, noise
 *   ν_k + ν_{k+1} (each term where that neighbour exists). While the steps resolve the function,
 *   R_{k-1} is off by about (a_{k-1}/a_k)^4 = 256 times R_k's truncation and R_{k+1} by 1/256 of it:
 *   the finer disagreement measures R_k's own truncation (through R_{k+1}'s noise as well as R_k's,
 *   so both count; doubled for margin), and the coarser one is large exactly where the steps are too
 *   long for the function. ALGORITHM_ADAPTIVE keeps per entry the R_k of smallest estimate: the step
 *   that balances truncation against the function's measured noise.
 */

/**
 * Noise counts in the error estimates at this many standard deviations: a bound, not a typical size,
 * with room for σ itself being measured from a few samples (a factor ~2 either way).
 */
const NOISE_DEVIATIONS = 4;

function extrapolatedRows(problem: Problem, steps: StepRule, multiples: readonly number[]): AsyncGenerator<readonly Row[]> {
  return elementRows(problem, 2 * multiples.length, (leaf, index) => extrapolatedRow(problem, steps, multiples, leaf, index));
}

async function extrapolatedRow(problem: Problem, steps: StepRule, multiples: readonly number[], leaf: number, index: number): Promise<Row> {
  const adaptive = multiples.length > 2;
  const differences: CentralDifference[] = [];
  // Richardson's two steps take one kind of stencil: one-sided both where either would leave the
  // domain (a central h and a one-sided 2h extrapolated to second order, its estimate 1.33× short).
  const sided = !adaptive && multiples.some((m) => !steps.inside(leaf, index, m) || !steps.inside(leaf, index, -m));
  for (const m of multiples) {
    if (adaptive && steps.leavesOut(leaf, index, m)) continue;
    try {
      differences.push(await (sided ? oneSided(problem, steps, leaf, index, m, true) : central(problem, steps, leaf, index, m, true)));
    } catch (e) {
      // The adaptive rule drops a step that leaves the function's domain (apply failed or gave
      // NaN there) as long as two others remain; Richardson has no step to spare.
      if (!adaptive || !isTesseractError(e) || (e.code !== Code.FAILED_PRECONDITION && e.code !== Code.UNKNOWN)) throw e;
      steps.noteSkipped(leaf, index, m, e.message);
    }
  }
  if (differences.length < 2) throw new TesseractError(Code.FAILED_PRECONDITION, `${elementName(problem.leaves[leaf], index)}: fewer than two of the adaptive steps could be evaluated (see adjusted_steps)`);
  const noise = await problem.noise(() => steps.probe(PROBE_SPACING, PROBE_POINTS));
  return { leaf, index, ...extrapolate(differences, rowNoise(noise, differences, await problem.base())) };
}

/**
 * σ for one row: the request's probe, or the sample its own two smallest central pairs and f(x)
 * give (noise.ts's pairNoise), whichever is larger: the probe sees the noise near x with several
 * samples, the pairs see it where this row's differences were taken.
 */
export function rowNoise(probe: Float64Array[], differences: readonly CentralDifference[], base: Float64Array[]): Float64Array[] {
  const pairs = differences.filter((d): d is CentralDifference & Pair => d.mean !== undefined).sort((a, b) => Math.abs(a.halfWidth) - Math.abs(b.halfWidth));
  if (pairs.length < 2) return probe;
  const local = pairNoise(base, pairs[0], pairs[1]);
  return probe.map((p, o) => p.map((s, i) => Math.max(s, local[o][i])));
}

/** A difference quotient at one step, for `extrapolate`. */
export interface CentralDifference {
  values: Float64Array[];
  halfWidth: number;
  /** sqrt(sum of its stencil's coefficients squared): noise σ in f becomes σ · spread in D. */
  spread: number;
  /** The rounding of the f values it was formed from, carried into D (stencilRounding). */
  rounding: Float64Array[];
  /** (f(x+) + f(x-)) / 2, for a central pair (not a one-sided stencil). */
  mean?: Float64Array[];
}

/** R_k per output value, with ν_k, its noise's standard deviation. */
interface Extrapolation {
  values: Float64Array[];
  noise: Float64Array[];
}

/**
 * Richardson over consecutive differences, with their error estimates (formulas above), σ being the
 * noise level of each output value; per entry, the R_k of smallest estimate.
 */
export function extrapolate(differences: readonly CentralDifference[], sigma: readonly Float64Array[]): { values: Float64Array[]; errors: Float64Array[] } {
  const extrapolations: Extrapolation[] = [];
  for (let k = 1; k < differences.length; k++) {
    const [coarse, fine] = [differences[k - 1], differences[k]];
    const q = (coarse.halfWidth / fine.halfWidth) ** 2;
    // Noise in D_k: N_k = σ s_k + its rounding; in R_k: sqrt((q N_k)^2 + N_{k-1}^2) / (q - 1).
    const noise = (d: CentralDifference, o: number, i: number) => sigma[o][i] * d.spread + d.rounding[o][i];
    extrapolations.push({
      values: fine.values.map((d, o) => d.map((v, i) => v + (v - coarse.values[o][i]) / (q - 1))),
      noise: fine.values.map((d, o) => d.map((_, i) => Math.hypot(q * noise(fine, o, i), noise(coarse, o, i)) / (q - 1))),
    });
  }
  const values = differences[0].values.map((v) => new Float64Array(v.length));
  const errors = differences[0].values.map((v) => new Float64Array(v.length));
  extrapolations.forEach((R, k) => {
    const [coarser, finer] = [extrapolations[k - 1], extrapolations[k + 1]];
    R.values.forEach((r, o) => {
      for (let i = 0; i < r.length; i++) {
        const truncation =
          extrapolations.length === 1
            ? Math.abs(r[i] - differences[1].values[o][i])
            : (coarser ? Math.abs(r[i] - coarser.values[o][i]) : 0) + (finer ? 2 * Math.abs(r[i] - finer.values[o][i]) : 0);
        const noise = R.noise[o][i] + (finer ? finer.noise[o][i] : 0);
        const error = truncation + NOISE_DEVIATIONS * noise;
        if (k === 0 || error < errors[o][i]) {
          values[o][i] = r[i];
          errors[o][i] = error;
        }
      }
    });
  });
  return { values, errors };
}

/**
 * A Rademacher (+1/-1) generator reproducible from a 64-bit seed. Each 32-bit draw of xoroshiro128+
 * gives 16 signs from its upper half (its lowest bits are the generator's weakest).
 */
function rademacher(seed: bigint): () => number {
  const rng = seededGenerator(seed);
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
async function* stochasticRows(problem: Problem, steps: StepRule, samples: number, seed: bigint, estimator: StochasticEstimatorName): AsyncGenerator<readonly Row[]> {
  const draw = rademacher(seed);
  const leaves = problem.leaves;
  leaves.forEach((input, leaf) => {
    for (let j = 0; j < input.size; j++) {
      if (!steps.inside(leaf, j, 1) || !steps.inside(leaf, j, -1)) {
        throw new TesseractError(Code.FAILED_PRECONDITION, `${elementName(input, j)}: a stochastic step would leave its domain ${steps.describeBounds(leaf)}; use a smaller eps or the central rule (one-sided near bounds)`);
      }
    }
  });
  const differences: Float64Array[][] = new Array(samples); // [sample][output]: f(x+) - f(x-)
  const taken: Float64Array[][] = new Array(samples); // [sample][leaf][element]: x+ - x-
  /** Directions are drawn in sample order when each sample starts, so a seed gives one result. */
  let started = 0;
  const sample = async () => {
    const k = started++;
    const plus = leaves.map((l) => new Float64Array(l.size));
    const minus = leaves.map((l) => new Float64Array(l.size));
    const widths = leaves.map((l) => new Float64Array(l.size));
    leaves.forEach((input, leaf) => {
      for (let j = 0; j < input.size; j++) {
        const d = draw();
        plus[leaf][j] = steps.perturbed(leaf, j, d);
        minus[leaf][j] = steps.perturbed(leaf, j, -d);
        widths[leaf][j] = plus[leaf][j] - minus[leaf][j];
      }
    });
    const pair = [plus.map((values, leaf) => ({ leaf, values })), minus.map((values, leaf) => ({ leaf, values }))] as const;
    [differences[k]] = await problem.differences([pair], (_, side) => `stochastic sample ${k} (x ${side ? "-" : "+"} h D)`);
    taken[k] = widths;
  };
  // Each sample stores its own results; rows need all of them.
  for await (const _ of completed(() => started < samples, () => Math.ceil(problem.concurrency / 2), sample));
  for (const row of estimator === "least-squares" ? leastSquaresRows(leaves, differences, taken) : spsaRows(leaves, differences, taken)) yield [row];
}

/**
 * SPSA rows: J[:, j] = mean_k s_k with s_k = (f(x+) - f(x-))_k / (x+ - x-)_kj, and the sample
 * standard error sqrt(sum_k (s_k - mean)^2 / (K (K - 1))) as each entry's error estimate (K >= 2).
 */
function* spsaRows(leaves: readonly InputLeaf[], differences: Float64Array[][], taken: Float64Array[][]): Generator<Row> {
  const K = differences.length;
  for (const [leaf, input] of leaves.entries()) {
    for (let index = 0; index < input.size; index++) {
      const values = differences[0].map((d) => new Float64Array(d.length));
      const squares = differences[0].map((d) => new Float64Array(d.length));
      for (let k = 0; k < K; k++) {
        const width = taken[k][leaf][index];
        differences[k].forEach((diff, o) => {
          for (let i = 0; i < diff.length; i++) {
            const s = diff[i] / width;
            values[o][i] += s / K;
            squares[o][i] += s * s;
          }
        });
      }
      // One sample has no spread to measure: no standard error then.
      const errors = K > 1 ? values.map((mean, o) => mean.map((m, i) => Math.sqrt(Math.max(0, squares[o][i] - K * m * m) / (K * (K - 1))))) : undefined;
      yield { leaf, index, values, errors };
    }
  }
}

/**
 * Least-squares rows: with W the K × n matrix of the steps taken (rows (x+ - x-)_k) and G the
 * K × m output differences, the minimum-norm J with J W^T = G^T is J = G^T (W W^T)^-1 W. For a
 * linear f that is the true Jacobian projected onto the span of the directions: never further
 * from it than zero is (SPSA can be). (W W^T) is K × K, solved once by Cholesky.
 */
function* leastSquaresRows(leaves: readonly InputLeaf[], differences: Float64Array[][], taken: Float64Array[][]): Generator<Row> {
  const K = differences.length;
  const W = taken.map((byLeaf) => {
    const flat = new Float64Array(byLeaf.reduce((n, l) => n + l.length, 0));
    let at = 0;
    for (const l of byLeaf) flat.set(l, (at += l.length) - l.length);
    return flat;
  });
  const gram = W.map((a) => W.map((b) => a.reduce((sum, v, j) => sum + v * b[j], 0)));
  const coefficients = choleskySolve(gram, W); // K × n: (W W^T)^-1 W
  let column = 0;
  for (const [leaf, input] of leaves.entries()) {
    for (let index = 0; index < input.size; index++, column++) {
      const values = differences[0].map((d) => new Float64Array(d.length));
      for (let k = 0; k < K; k++) {
        const c = coefficients[k][column];
        differences[k].forEach((diff, o) => {
          for (let i = 0; i < diff.length; i++) values[o][i] += c * diff[i];
        });
      }
      yield { leaf, index, values };
    }
  }
}

/**
 * Solves A X = B for symmetric positive semi-definite A (K × K) by Cholesky, with a ridge of
 * 1e-12 of A's mean diagonal so that repeated directions (possible when n is small) stay solvable.
 */
function choleskySolve(A: number[][], B: Float64Array[]): Float64Array[] {
  const K = A.length;
  const ridge = (1e-12 * A.reduce((sum, row, i) => sum + row[i], 0)) / K;
  const L = A.map(() => new Float64Array(K));
  for (let i = 0; i < K; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = A[i][j] + (i === j ? ridge : 0);
      for (let p = 0; p < j; p++) sum -= L[i][p] * L[j][p];
      L[i][j] = i === j ? Math.sqrt(Math.max(sum, ridge)) : sum / L[j][j];
    }
  }
  // Forward then backward substitution, column by column of B.
  const X = B.map((b) => Float64Array.from(b));
  for (let i = 0; i < K; i++) {
    for (let p = 0; p < i; p++) for (let c = 0; c < X[i].length; c++) X[i][c] -= L[i][p] * X[p][c];
    for (let c = 0; c < X[i].length; c++) X[i][c] /= L[i][i];
  }
  for (let i = K - 1; i >= 0; i--) {
    for (let p = i + 1; p < K; p++) for (let c = 0; c < X[i].length; c++) X[i][c] -= L[p][i] * X[p][c];
    for (let c = 0; c < X[i].length; c++) X[i][c] /= L[i][i];
  }
  return X;
}
