/**
 * CheckGradients: a Tesseract's analytic gradients against the engine's finite differences, on
 * sampled rows, within a bound on apply calls (tesseract-core's `check-gradients`).
 *
 * What is compared, for each differentiated input path x and output path y:
 *   jacobian  J[y][x][:, j] (analytic) against the FD column d y / d x_j, for sampled elements j;
 *   jvp       J[y][x]·v (analytic, v a seeded random tangent on x) against the engine's FD JVP along v;
 *   vjp       (wᵀ·J[y][x])_j (analytic, w a seeded random cotangent on y) against wᵀ·(FD column j).
 * A Tesseract ships at most an analytic Jacobian (`gradients.jacobian`), so its JVP and VJP are the
 * contractions of that Jacobian; they are checked against finite-difference JVPs and VJPs all the same.
 *
 * A value passes when |analytic − fd| ≤ atol + rtol·|fd|. Defaults, rtol 1e-4 and atol 1e-6: central
 * differences with the default step (1e-4) are off by h²·|f'''|/6 (~1e-9 relative for O(1)-scaled
 * smooth functions) plus rounding ε·|f|/h (~1e-12), so 1e-4 leaves room for badly scaled functions
 * while any real gradient bug (a missing factor, a wrong sign, a transposed index) is O(1) relative;
 * atol judges entries near zero, where a relative test means nothing. Forward differences are only
 * O(h) accurate (~1e-4 relative): check them with a looser rtol (1e-3). FP32 inputs make the JVP's
 * steps round per element (up to ~6e-4·|x| relative for eps 1e-4): use a larger eps or rtol there.
 *
 * The work, and its bound max_evals (default 1000, or the least that checks every input path once):
 *   1 apply, to find the output paths and their shapes;
 *   jvp:         one FD JVP per input path (2 evaluations with central differences);
 *   jacobian/vjp: one FD column per sampled element (2 evaluations each), shared by both checks.
 * Elements are sampled with the seed (one per input path first, so every path is checked, then
 * uniformly among the rest) until the budget is spent; all of them when it allows.
 *
 * Why columns are FD JVPs along unit tangents e_j (runtime.jvp) rather than the engine's row
 * producer: a JVP along e_j takes the step only in x_j and divides by the step actually taken, which
 * is exactly the engine's column rule for that element, and it costs the sampled elements only (the
 * row producer walks every element of a path, 2n evaluations). It goes through the runtime's public
 * API, so paths, options, evaluation backends and cancellation behave as in every other RPC, and
 * nothing is added to the engine. The VJP check contracts those same columns with the cotangent:
 * that is how the engine's VJP is formed for central and forward differences (rows contracted with
 * the cotangent), restricted to the sampled elements, at no extra evaluation.
 *
 * Engine calls run one after another: they share the request's input tree, which evaluations perturb
 * in place (perturb-and-restore), so two at once would see each other's steps.
 */
import ndarray, { type NdArray } from "ndarray";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";
import { Code, invalidArgument, isTesseractError, TesseractError } from "./errors";
import type { RequestOptions } from "./fd/options";
import { plannedEvaluations } from "./fd/rows";
import type { TesseractRuntime } from "./runtime";
import { DataType, dataTypeName, dataTypeOfArray, isNdArray, toFloat64 } from "./tensor/codec";
import type { AnalyticJacobian } from "./tesseract";

export const CHECK_DEFAULTS = Object.freeze({ rtol: 1e-4, atol: 1e-6, maxEvals: 1000 });

export type CheckEndpoint = "jacobian" | "jvp" | "vjp";

/** Accepted endpoint names (tesseract-core's long names too), in the order checks are reported. */
const ENDPOINT_NAMES: Record<string, CheckEndpoint> = {
  jacobian: "jacobian",
  jvp: "jvp",
  jacobian_vector_product: "jvp",
  vjp: "vjp",
  vector_jacobian_product: "vjp",
};
const ENDPOINT_ORDER: CheckEndpoint[] = ["jacobian", "jvp", "vjp"];

export interface CheckGradientsRequest {
  inputs: Record<string, unknown>;
  /** Empty: every differentiable path present in the inputs. Patterns allowed. */
  inputPaths?: readonly string[];
  /** Empty: every differentiable path present in the outputs. Patterns allowed. */
  outputPaths?: readonly string[];
  /** "jacobian", "jvp", "vjp"; empty: all three. */
  endpoints?: readonly string[];
  /** 0 or unset: the defaults (CHECK_DEFAULTS). */
  rtol?: number;
  atol?: number;
  maxEvals?: number;
  /** Which elements are sampled and which random tangents/cotangents are used (default 0). */
  seed?: number | bigint | string | null;
  options?: RequestOptions | null;
  signal?: AbortSignal;
}

/** tesseract.v1.GradientCheck. */
export interface GradientCheck {
  endpoint: CheckEndpoint;
  input_path: string;
  output_path: string;
  max_abs_error: number;
  /** Largest |analytic − fd| / |fd| over values with fd ≠ 0 (values with fd = 0 are judged by atol). */
  max_rel_error: number;
  /** jacobian and vjp: sampled elements of the input; jvp: tangent directions. */
  rows_checked: number;
  /** Rows with at least one value beyond atol + rtol·|fd|. */
  failures: number;
  message: string;
}

export interface CheckGradientsResult {
  passed: boolean;
  checks: GradientCheck[];
  /** Apply calls made, all included (never more than max_evals). */
  apply_calls: number;
  max_evals: number;
}

/** The Tesseract's analytic Jacobian, or UNIMPLEMENTED: there is nothing to check without one. */
export function requireAnalyticJacobian(runtime: TesseractRuntime): AnalyticJacobian<any> {
  const jacobian = runtime.definition.gradients?.jacobian;
  if (!jacobian) {
    throw new TesseractError(
      Code.UNIMPLEMENTED,
      `Tesseract "${runtime.definition.name}" has no analytic gradients (gradients.jacobian in its definition), so there is nothing to check against finite differences; its gradients are finite differences already`,
    );
  }
  return jacobian;
}

interface Leaf {
  path: string;
  shape: number[];
  size: number;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** "result[2]", "mesh.points[3, 1]", or the bare path for a scalar. */
function elementName(leaf: Leaf, flat: number): string {
  if (leaf.shape.length === 0) return leaf.path;
  const index: number[] = [];
  for (let d = leaf.shape.length - 1, rest = flat; d >= 0; d--) {
    index.unshift(rest % leaf.shape[d]);
    rest = Math.floor(rest / leaf.shape[d]);
  }
  return `${leaf.path}[${index.join(", ")}]`;
}

const show = (x: number) => (Number.isFinite(x) ? String(Number(x.toPrecision(7))) : String(x));

function tolerance(value: number | undefined, field: string, fallback: number): number {
  if (value === undefined || value === null || value === 0) return fallback;
  if (!Number.isFinite(value) || value < 0) throw invalidArgument(`${field} must be a non-negative finite number (0: the default ${fallback}), got ${value}`);
  return value;
}

function toSeed(seed: CheckGradientsRequest["seed"]): bigint {
  if (seed === undefined || seed === null || seed === "") return 0n;
  try {
    const value = BigInt(seed);
    if (value < 0n || value >= 1n << 64n) throw new RangeError();
    return value;
  } catch {
    throw invalidArgument(`seed must be an unsigned 64-bit integer, got ${String(seed)}`);
  }
}

/** A generator per purpose (sampling, tangents, cotangents), each a function of the seed alone. */
function generator(seed: bigint, stream: number) {
  const hi = Number((seed >> 32n) & 0xffffffffn) | 0;
  const lo = Number(seed & 0xffffffffn) | 0;
  return xoroshiro128plusFromState([hi ^ 0x9e3779b9, ~lo, lo ^ Math.imul(stream + 1, 0x85ebca6b), hi ^ (0x27d4eb2f * (stream + 1))]);
}

/** Seeded values in ±[0.5, 1): no component so small that its step vanishes in rounding. */
function randomVector(rng: ReturnType<typeof generator>, n: number): Float64Array {
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = uniformFloat64(rng);
    v[i] = (u < 0.5 ? -1 : 1) * (0.5 + Math.abs(u - 0.5));
  }
  return v;
}

/**
 * Elements in the order they are checked: one per leaf first (so every input path is checked
 * whenever the budget allows one column per path), then the rest uniformly, without repetition. A
 * partial Fisher-Yates shuffle over the global element indices, kept sparse: O(count), whatever n.
 */
function sampleElements(leaves: readonly Leaf[], count: number, seed: bigint): { leaf: number; index: number }[] {
  const offsets: number[] = [];
  let total = 0;
  for (const leaf of leaves) {
    offsets.push(total);
    total += leaf.size;
  }
  const locate = (g: number) => {
    let l = leaves.length - 1;
    while (offsets[l] > g) l--;
    return { leaf: l, index: g - offsets[l] };
  };
  if (count >= total) return Array.from({ length: total }, (_, g) => locate(g));
  const rng = generator(seed, 0);
  const at = new Map<number, number>(); // position -> element (identity when absent)
  const where = new Map<number, number>(); // element -> position (identity when absent)
  const get = (p: number) => at.get(p) ?? p;
  const swap = (p: number, q: number) => {
    const a = get(p);
    const b = get(q);
    at.set(p, b);
    at.set(q, a);
    where.set(b, p);
    where.set(a, q);
  };
  let position = 0;
  for (let l = 0; l < leaves.length && position < count; l++, position++) {
    const element = offsets[l] + uniformInt(rng, 0, leaves[l].size - 1);
    swap(position, where.get(element) ?? element);
  }
  for (; position < count; position++) swap(position, uniformInt(rng, position, total - 1));
  return Array.from({ length: count }, (_, p) => locate(get(p)));
}

/** Running comparison of analytic values with finite differences for one check. */
class Tally {
  rows = 0;
  failedRows = 0;
  values = 0;
  failedValues = 0;
  maxAbs = 0;
  maxRel = 0;
  private rowFailed = false;
  private worst?: { score: number; where: () => string; analytic: number; fd: number };

  constructor(
    readonly rtol: number,
    readonly atol: number,
  ) {}

  value(analytic: number, fd: number, where: () => string): void {
    this.values++;
    let abs = Math.abs(analytic - fd);
    if (Number.isNaN(abs)) abs = Infinity;
    const allowed = this.atol + this.rtol * Math.abs(fd);
    const score = abs / allowed;
    if (abs > allowed) {
      this.failedValues++;
      this.rowFailed = true;
    }
    this.maxAbs = Math.max(this.maxAbs, abs);
    if (fd !== 0) this.maxRel = Math.max(this.maxRel, abs / Math.abs(fd));
    if (!this.worst || score > this.worst.score) this.worst = { score, where, analytic, fd };
  }

  endRow(): void {
    this.rows++;
    if (this.rowFailed) this.failedRows++;
    this.rowFailed = false;
  }

  message(rowWord: string): string {
    const w = this.worst;
    const worst = w ? `; worst at ${w.where()}: analytic ${show(w.analytic)}, finite differences ${show(w.fd)}` : "";
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
    if (this.failedRows === 0) return `ok: ${plural(this.rows, rowWord)}, ${plural(this.values, "value")} within atol + rtol·|fd|${worst}`;
    return `${this.failedRows} of ${plural(this.rows, rowWord)} failed (${this.failedValues} of ${plural(this.values, "value")} beyond atol ${this.atol} + rtol ${this.rtol}·|fd|)${worst}`;
  }
}

/** The analytic Jacobian, flat per (output, input), or why an entry cannot be used. */
type AnalyticEntries = Map<string, Map<string, Float64Array | string>>;

function analyticEntries(jacobian: AnalyticJacobian<any>, inputs: Record<string, unknown>, leaves: readonly Leaf[], outputs: readonly Leaf[]): AnalyticEntries {
  let result: Record<string, Record<string, unknown> | undefined>;
  try {
    result = jacobian(inputs, leaves.map((l) => l.path), outputs.map((o) => o.path)) ?? {};
  } catch (e) {
    if (isTesseractError(e)) throw e;
    throw new TesseractError(Code.UNKNOWN, `the analytic jacobian failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const entries: AnalyticEntries = new Map();
  for (const out of outputs) {
    const row = new Map<string, Float64Array | string>();
    entries.set(out.path, row);
    for (const leaf of leaves) {
      const value = result[out.path]?.[leaf.path];
      const expected = [...out.shape, ...leaf.shape];
      if (!isNdArray(value)) {
        row.set(leaf.path, `the analytic jacobian has no entry [${JSON.stringify(out.path)}][${JSON.stringify(leaf.path)}]`);
      } else if (value.shape.length !== expected.length || value.shape.some((d, i) => d !== expected[i])) {
        row.set(leaf.path, `the analytic jacobian's entry d ${out.path} / d ${leaf.path} has shape [${value.shape.join(", ")}], expected [${expected.join(", ")}] (output shape, then input shape)`);
      } else {
        row.set(leaf.path, toFloat64(value));
      }
    }
  }
  return entries;
}

/** The request's FD options for one input path: the per-path maps cut down to its own entry. */
function optionsFor(options: RequestOptions | null | undefined, leaf: Leaf): RequestOptions | null | undefined {
  if (!options) return options;
  const pick = (map: Record<string, number> | null | undefined) => (map && leaf.path in map ? { [leaf.path]: map[leaf.path] } : {});
  return { ...options, eps_by_path: pick(options.eps_by_path), typical_magnitude: pick(options.typical_magnitude) };
}

/** Keys of the per-path option maps must name an input path being checked (as in the other RPCs). */
function checkPathKeys(options: RequestOptions | null | undefined, leaves: readonly Leaf[]): void {
  for (const field of ["eps_by_path", "typical_magnitude"] as const) {
    for (const key of Object.keys(options?.[field] ?? {})) {
      if (!leaves.some((l) => l.path === key)) {
        throw invalidArgument(`options.${field} has key "${key}", which is not an input path being checked (${leaves.map((l) => l.path).join(", ")})`);
      }
    }
  }
}

export async function checkGradients(runtime: TesseractRuntime, req: CheckGradientsRequest): Promise<CheckGradientsResult> {
  const jacobian = requireAnalyticJacobian(runtime);
  const { inputs, signal } = req;

  // Everything that can be validated is, before the first evaluation.
  const requested = new Set<CheckEndpoint>();
  for (const name of req.endpoints ?? []) {
    const endpoint = ENDPOINT_NAMES[name];
    if (!endpoint) throw invalidArgument(`endpoints: unknown endpoint "${name}"; expected jacobian, jvp or vjp (or jacobian_vector_product, vector_jacobian_product)`);
    requested.add(endpoint);
  }
  const endpoints = requested.size ? ENDPOINT_ORDER.filter((e) => requested.has(e)) : ENDPOINT_ORDER;
  const rtol = tolerance(req.rtol, "rtol", CHECK_DEFAULTS.rtol);
  const atol = tolerance(req.atol, "atol", CHECK_DEFAULTS.atol);
  const seed = toSeed(req.seed);
  if (req.maxEvals !== undefined && (!Number.isInteger(req.maxEvals) || req.maxEvals < 0)) {
    throw invalidArgument(`max_evals must be a whole number (0: the default), got ${req.maxEvals}`);
  }

  const schema = runtime.schema;
  const inputPaths = req.inputPaths?.length ? req.inputPaths : schema.inputs.differentiablePaths(inputs);
  if (inputPaths.length === 0) {
    throw invalidArgument(`input_paths is empty and the inputs hold no differentiable tensor; differentiable input paths: ${schema.inputs.differentiablePatternNames().join(", ") || "(none)"}`);
  }
  const leaves: Leaf[] = schema.inputs.resolveDifferentiable(inputs, inputPaths, "input_paths", "input").map((l) => {
    const dtype = dataTypeOfArray(l.array.data);
    if (dtype !== DataType.DATA_TYPE_FP64 && dtype !== DataType.DATA_TYPE_FP32) {
      throw invalidArgument(`input_paths: input path "${l.path}" has datatype ${dataTypeName(dtype)}; only DATA_TYPE_FP32 and DATA_TYPE_FP64 inputs can be differentiated`);
    }
    return { path: l.path, shape: [...l.array.shape], size: sizeOf(l.array.shape) };
  });
  if (req.outputPaths?.length) schema.outputs.checkDifferentiable(req.outputPaths, "output_paths", "output");
  const resolvedOptions = runtime.options(inputs, req.options);
  checkPathKeys(req.options, leaves);

  // The budget. `perRow` is what one FD column or JVP costs by the engine's own count (2 for central
  // differences); the first call's actual count corrects it should the engine's JVP cost more.
  let perRow = plannedEvaluations(1, resolvedOptions);
  const wantColumns = endpoints.includes("jacobian") || endpoints.includes("vjp");
  const wantJvp = endpoints.includes("jvp");
  const minimum = 1 + perRow * leaves.length * (Number(wantColumns) + Number(wantJvp));
  const maxEvals = req.maxEvals ? req.maxEvals : Math.max(CHECK_DEFAULTS.maxEvals, minimum);
  if (maxEvals < minimum) {
    throw invalidArgument(
      `max_evals ${maxEvals} is too small: checking ${leaves.length} input path${leaves.length === 1 ? "" : "s"} (${endpoints.join(", ")}) takes at least ${minimum} apply calls (1 to find the outputs, ${perRow} per finite-difference column or JVP)`,
    );
  }
  let used = 0;
  const aborted = () => {
    if (signal?.aborted) throw signal.reason ?? new TesseractError(Code.CANCELLED, "the call was cancelled");
  };

  // One apply: the output paths present and their shapes.
  aborted();
  used++;
  const base = await runtime.apply(inputs);
  const outputPaths = req.outputPaths?.length ? req.outputPaths : schema.outputs.differentiablePaths(base);
  if (outputPaths.length === 0) {
    throw invalidArgument(`output_paths is empty and the outputs hold no differentiable tensor; differentiable output paths: ${schema.outputs.differentiablePatternNames().join(", ") || "(none)"}`);
  }
  const outputs: Leaf[] = schema.outputs.resolveDifferentiable(base, outputPaths, "output_paths", "output").map((o) => ({
    path: o.path,
    shape: [...o.array.shape],
    size: sizeOf(o.array.shape),
  }));
  const concreteOutputs = outputs.map((o) => o.path);

  const analytic = analyticEntries(jacobian, inputs, leaves, outputs);
  const entry = (out: Leaf, leaf: Leaf) => analytic.get(out.path)!.get(leaf.path)!;

  /** One FD JVP through the runtime: results keyed by output path. */
  const fdJvp = async (leaf: Leaf, tangent: Float64Array) => {
    aborted();
    const { result, stats } = await runtime.jvp({
      inputs,
      inputPaths: [leaf.path],
      outputPaths: concreteOutputs,
      options: optionsFor(req.options, leaf),
      tangent: { [leaf.path]: ndarray(tangent, leaf.shape) },
      signal,
    });
    const calls = Number(stats.apply_calls);
    used += calls;
    perRow = Math.max(perRow, calls);
    return result as Record<string, NdArray<Float64Array>>;
  };

  const tallies = new Map<string, Tally>();
  const tally = (endpoint: CheckEndpoint, leaf: Leaf, out: Leaf) => {
    const key = `${endpoint}\u0000${leaf.path}\u0000${out.path}`;
    let t = tallies.get(key);
    if (!t) tallies.set(key, (t = new Tally(rtol, atol)));
    return t;
  };

  // jvp: J·v along one seeded random tangent per input path.
  if (wantJvp) {
    const rng = generator(seed, 1);
    for (const leaf of leaves) {
      const v = randomVector(rng, leaf.size);
      if (used + perRow > maxEvals) break;
      const fd = await fdJvp(leaf, v);
      for (const out of outputs) {
        const J = entry(out, leaf);
        if (typeof J === "string") continue;
        const t = tally("jvp", leaf, out);
        const values = fd[out.path].data;
        for (let i = 0; i < out.size; i++) {
          let sum = 0;
          for (let j = 0; j < leaf.size; j++) sum += J[i * leaf.size + j] * v[j];
          t.value(sum, values[i], () => `${elementName(out, i)} along a random tangent of ${leaf.path}`);
        }
        t.endRow();
      }
    }
  }

  // jacobian and vjp: FD columns of sampled elements.
  if (wantColumns) {
    const cotangents = new Map<string, Float64Array>();
    const rng = generator(seed, 2);
    for (const out of outputs) cotangents.set(out.path, randomVector(rng, out.size));
    const total = leaves.reduce((n, l) => n + l.size, 0);
    const planned = Math.min(total, Math.floor((maxEvals - used) / perRow));
    for (const { leaf: l, index: j } of sampleElements(leaves, planned, seed)) {
      if (used + perRow > maxEvals) break;
      const leaf = leaves[l];
      const unit = new Float64Array(leaf.size);
      unit[j] = 1;
      const fd = await fdJvp(leaf, unit);
      for (const out of outputs) {
        const J = entry(out, leaf);
        if (typeof J === "string") continue;
        const column = fd[out.path].data;
        if (endpoints.includes("jacobian")) {
          const t = tally("jacobian", leaf, out);
          for (let i = 0; i < out.size; i++) t.value(J[i * leaf.size + j], column[i], () => `${elementName(out, i)} w.r.t. ${elementName(leaf, j)}`);
          t.endRow();
        }
        if (endpoints.includes("vjp")) {
          const w = cotangents.get(out.path)!;
          let analyticSum = 0;
          let fdSum = 0;
          for (let i = 0; i < out.size; i++) {
            analyticSum += w[i] * J[i * leaf.size + j];
            fdSum += w[i] * column[i];
          }
          const t = tally("vjp", leaf, out);
          t.value(analyticSum, fdSum, () => `${elementName(leaf, j)} for a random cotangent of ${out.path}`);
          t.endRow();
        }
      }
    }
  }

  const checks: GradientCheck[] = [];
  for (const endpoint of endpoints) {
    for (const leaf of leaves) {
      for (const out of outputs) {
        const base = { endpoint, input_path: leaf.path, output_path: out.path };
        const J = entry(out, leaf);
        if (typeof J === "string") {
          checks.push({ ...base, max_abs_error: 0, max_rel_error: 0, rows_checked: 0, failures: 1, message: J });
          continue;
        }
        const t = tallies.get(`${endpoint}\u0000${leaf.path}\u0000${out.path}`);
        if (!t) {
          // Only when an engine call cost more than planned and spent the budget early.
          checks.push({ ...base, max_abs_error: 0, max_rel_error: 0, rows_checked: 0, failures: 0, message: `not checked: max_evals ${maxEvals} was spent before this input path's turn` });
          continue;
        }
        const rowWord = endpoint === "jvp" ? "tangent" : "row";
        checks.push({ ...base, max_abs_error: t.maxAbs, max_rel_error: t.maxRel, rows_checked: t.rows, failures: t.failedRows, message: t.message(rowWord) });
      }
    }
  }
  // Passed: every check ran and none failed.
  return { passed: checks.every((c) => c.failures === 0 && c.rows_checked > 0), checks, apply_calls: used, max_evals: maxEvals };
}
