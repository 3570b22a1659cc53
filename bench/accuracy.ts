/**
 * `npm run bench:accuracy`: the accuracy suite. For each test function of
 * bench/fixtures/testfunctions (known derivatives, each chosen to defeat some step rule), the Jacobian
 * from every algorithm × step mode of the engine, next to tesseract-core's rule computed in the same
 * program, all against the analytic Jacobian.
 *
 * Error measure (the accuracy target's "max relative error"): for the computed Ĵ and analytic J,
 *
 *     e_ij = |Ĵ_ij − J_ij| / |J_ij|   where J_ij ≠ 0,
 *     e_ij = |Ĵ_ij − J_ij|            where J_ij = 0 (absolute error: the exact value has no scale),
 *     error = max_ij e_ij.
 *
 * A failed evaluation (NaN, an unsupported option, any thrown error) is a result, shown as
 * "failed: <message>", never a crash.
 *
 * Columns (one per algorithm/mode):
 *   algorithms  central, forward, stochastic (seed 42, num_samples = max(1, n − 1), so that SPSA
 *               really runs where n ≥ 2; with K ≥ n the engine falls back to central, as at n = 1),
 *               richardson, adaptive;
 *   modes       abs    STEP_MODE_ABSOLUTE, eps unset (this Tesseract sets none: the engine's 1e-4);
 *               rel    STEP_MODE_RELATIVE, eps unset (the engine's default relative step), typical
 *                      magnitude unset (1);
 *               rel|x| STEP_MODE_RELATIVE, eps unset, typical_magnitude = min_j |x_j| of the case, so
 *                      that every element's step scales with its own |x_j|.
 * Each cell: error, apply calls, and — where the algorithm returns an error estimate — whether it
 * bounds the true error: max_ij |Ĵ_ij − J_ij| / estimate_ij ≤ 1.
 *
 * tesseract-core's rule (its experimental finite-difference helper, reproduced here, no engine):
 * absolute eps = 1e-4, central difference (f(x + eps e_j) − f(x − eps e_j)) / (2 eps), dividing by
 * the NOMINAL step, apply called directly on the perturbed inputs. Its apply-call count is what its
 * helper makes: 2n·m + 1 for m output paths (one call per output path per perturbation, plus the base
 * point); m = 1 here.
 *
 * The table printed has one row per case; bench/results/accuracy.json has every cell.
 */
import * as path from "node:path";
import type { NdArray } from "ndarray";
import { loadTesseract } from "../index";
import type { RequestOptions } from "../server/fd/options";
import type { TesseractRuntime } from "../server/runtime";
import { DataType } from "../common/tensor-codec";
import { report } from "./report";
import type { TestCase } from "./fixtures/testfunctions/test-case";

const MODULE = path.join(__dirname, "../../bench/fixtures/testfunctions/testfunctions.js");

// tesseract.v1.Algorithm and StepMode numbers (proto/tesseract/v1/algorithm.proto).
const ALGORITHMS = { central: 1, forward: 2, stochastic: 3, richardson: 4, adaptive: 5 } as const;
const STEP_MODE_ABSOLUTE = 1;
const STEP_MODE_RELATIVE = 2;
const MODES = ["abs", "rel", "rel|x|"] as const;
type Mode = (typeof MODES)[number];

const SEED = 42;
const TESSERACT_CORE_EPS = 1e-4;

/** FiniteDifferenceOptions as the wire decodes them (written against the contract, section 2). */
interface WireOptions {
  algorithm: number;
  eps?: number;
  num_samples?: number;
  seed?: number;
  step_mode?: number;
  eps_by_path?: Record<string, number>;
  typical_magnitude?: Record<string, number>;
}

function options(c: TestCase, algorithm: keyof typeof ALGORITHMS, mode: Mode): WireOptions {
  const n = c.point.length;
  const o: WireOptions = { algorithm: ALGORITHMS[algorithm] };
  if (algorithm === "stochastic") Object.assign(o, { seed: SEED, num_samples: Math.max(1, n - 1) });
  o.step_mode = mode === "abs" ? STEP_MODE_ABSOLUTE : STEP_MODE_RELATIVE;
  if (mode === "rel|x|") o.typical_magnitude = { [c.input]: Math.min(...c.point.map(Math.abs)) };
  return o;
}

interface Cell {
  /** max_ij e_ij (see the header). */
  max_rel_error: number;
  max_abs_error: number;
  apply_calls: number;
  /** e_ij per entry, row-major like the Jacobian. */
  entry_errors: number[];
  values: number[];
  /** Only where the algorithm returned error estimates. */
  error_estimate?: { values: number[]; max_ratio: number; bounds: boolean };
  adjusted_steps?: string[];
  /** Set when the result equals another mode's bit for bit (e.g. the option was ignored). */
  note?: string;
}
type Result = Cell | { failed: string };

const isCell = (r: Result | undefined): r is Cell => r !== undefined && !("failed" in r);

function errors(computed: ArrayLike<number>, exact: readonly number[]) {
  const entry = exact.map((j, i) => {
    const d = Math.abs(computed[i] - j);
    return j === 0 ? d : d / Math.abs(j);
  });
  const abs = exact.map((j, i) => Math.abs(computed[i] - j));
  if (entry.some(Number.isNaN)) return undefined;
  return { entry, maxRel: Math.max(...entry), maxAbs: Math.max(...abs), abs };
}

/** The estimate bounds the true error where max_ij |Ĵ_ij − J_ij| / estimate_ij ≤ 1 (0/0 counts 0). */
function estimateRatio(abs: number[], estimate: ArrayLike<number>): number {
  let worst = 0;
  abs.forEach((err, i) => {
    const est = estimate[i];
    const r = err === 0 ? 0 : est > 0 ? err / est : Infinity;
    worst = Math.max(worst, Number.isNaN(r) ? Infinity : r);
  });
  return worst;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ");

function inputsFor(runtime: TesseractRuntime, c: TestCase): Record<string, unknown> {
  const data = Float64Array.from(c.point);
  const tensor = { datatype: DataType.DATA_TYPE_FP64, shape: c.inputShape, data: new Uint8Array(data.buffer) };
  const any = { type_url: runtime.schema.inputs.typeUrl, value: runtime.schema.inputs.type.encode({ [c.input]: tensor }).finish() };
  return runtime.decodeInputs(any);
}

function flat(a: NdArray<any>): number[] {
  const n = a.shape.reduce((p: number, d: number) => p * d, 1);
  if (a.shape.length === 0) return [Number(a.get())];
  const out: number[] = [];
  const idx = new Array<number>(a.shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    out.push(Number(a.get(...idx)));
    for (let j = idx.length - 1; j >= 0 && ++idx[j] === a.shape[j]; j--) idx[j] = 0;
  }
  return out;
}

async function engine(runtime: TesseractRuntime, c: TestCase, o: WireOptions, exact: number[]): Promise<Result> {
  try {
    // Fresh inputs each run: a failed run must not leave a perturbed leaf behind.
    const inputs = inputsFor(runtime, c);
    const { entries, stats } = await runtime.jacobian({ inputs, inputPaths: [c.input], outputPaths: [c.output], options: o as RequestOptions });
    if (entries.length !== 1) return { failed: `expected 1 Jacobian entry, got ${entries.length}` };
    const entry = entries[0] as (typeof entries)[number] & { errors?: Float64Array; errorEstimate?: Float64Array };
    const e = errors(entry.values, exact);
    if (!e) return { failed: "NaN in the result" };
    const cell: Cell = { max_rel_error: e.maxRel, max_abs_error: e.maxAbs, apply_calls: stats.apply_calls, entry_errors: e.entry, values: [...entry.values] };
    const estimate = entry.errors ?? entry.errorEstimate;
    if (estimate && estimate.length === exact.length) {
      const ratio = estimateRatio(e.abs, estimate);
      cell.error_estimate = { values: [...estimate], max_ratio: ratio, bounds: ratio <= 1 };
    }
    const adjusted = (stats as { adjusted_steps?: string[] }).adjusted_steps;
    if (adjusted?.length) cell.adjusted_steps = adjusted;
    return cell;
  } catch (err) {
    return { failed: message(err) };
  }
}

/** tesseract-core's central rule: absolute eps, nominal divisor, apply called directly. */
async function tesseractCore(runtime: TesseractRuntime, c: TestCase, exact: number[]): Promise<Result> {
  const n = c.point.length;
  const m = 1; // output paths
  try {
    const inputs = inputsFor(runtime, c);
    const leaf = (inputs[c.input] as NdArray<Float64Array>).data;
    const evaluate = async () => flat((await runtime.apply(inputs) as Record<string, NdArray<any>>)[c.output]);
    const size = exact.length / n;
    const jac = new Array<number>(exact.length);
    for (let j = 0; j < n; j++) {
      const x = leaf[j];
      leaf[j] = x + TESSERACT_CORE_EPS;
      const plus = await evaluate();
      leaf[j] = x - TESSERACT_CORE_EPS;
      const minus = await evaluate();
      leaf[j] = x;
      for (let p = 0; p < size; p++) jac[p * n + j] = (plus[p] - minus[p]) / (2 * TESSERACT_CORE_EPS);
    }
    const e = errors(jac, exact);
    if (!e) return { failed: "NaN: apply returned NaN at x ± 1e-4 (tesseract-core would return the NaN)" };
    return { max_rel_error: e.maxRel, max_abs_error: e.maxAbs, apply_calls: 2 * n * m + 1, entry_errors: e.entry, values: jac };
  } catch (err) {
    return { failed: message(err) };
  }
}

const fmt = (x: number) => (x === 0 ? "0" : x.toExponential(1));

/** A failure in a few words for the tables (the JSON and the list under the tables have it whole). */
function label(failure: string): string {
  if (/\bNaN\b/.test(failure)) return "failed: NaN";
  if (/\b(-?Infinity|Inf)\b/.test(failure)) return "failed: Inf";
  if (/unknown (algorithm|step mode)|not (yet )?(supported|implemented)/i.test(failure)) return "failed: unsupported";
  return `failed: ${failure.length > 24 ? `${failure.slice(0, 23)}…` : failure}`;
}
const show = (r: Result | undefined) => (r === undefined ? "-" : isCell(r) ? fmt(r.max_rel_error) : label(r.failed));
/** Matrix cell: error (apply calls), then ✓ / ✗ where an error estimate does / does not bound the error, = when identical to abs. */
function matrixCell(r: Result): string {
  if (!isCell(r)) return label(r.failed);
  const bound = r.error_estimate ? (r.error_estimate.bounds ? " ✓" : " ✗") : "";
  return `${fmt(r.max_rel_error)} (${r.apply_calls})${bound}${r.note ? " =" : ""}`;
}

/** Smallest error wins; ties go to fewer apply calls. */
function best(cells: Record<string, Result>): [string, Cell] | undefined {
  let winner: [string, Cell] | undefined;
  for (const [key, r] of Object.entries(cells)) {
    if (!isCell(r)) continue;
    if (!winner || r.max_rel_error < winner[1].max_rel_error || (r.max_rel_error === winner[1].max_rel_error && r.apply_calls < winner[1].apply_calls)) {
      winner = [key, r];
    }
  }
  return winner;
}

/** Marks a mode's result that is bit-identical to the absolute one (e.g. step_mode not honoured yet). */
function markIdentical(cells: Record<string, Result>, algorithm: string): void {
  const abs = cells[`${algorithm}/abs`];
  for (const mode of MODES.slice(1)) {
    const r = cells[`${algorithm}/${mode}`];
    if (isCell(abs) && isCell(r) && r.values.every((v, i) => Object.is(v, abs.values[i]))) {
      r.note = "identical to abs, bit for bit: was the step mode honoured?";
    }
  }
}

async function main() {
  const runtime = loadTesseract(MODULE);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cases = (require(MODULE) as { cases: TestCase[] }).cases;
  const summary: Record<string, unknown>[] = [];
  const matrix: Record<string, string>[] = [];
  const failures = new Map<string, string[]>();

  for (const c of cases) {
    const exact = c.jacobian(c.point);
    const core = await tesseractCore(runtime, c, exact);
    const cells: Record<string, Result> = {};
    for (const algorithm of Object.keys(ALGORITHMS) as (keyof typeof ALGORITHMS)[]) {
      for (const mode of MODES) cells[`${algorithm}/${mode}`] = await engine(runtime, c, options(c, algorithm, mode), exact);
      markIdentical(cells, algorithm);
    }
    for (const [key, r] of Object.entries({ "tesseract-core": core, ...cells })) {
      if (!isCell(r)) failures.set(r.failed, [...(failures.get(r.failed) ?? []), `${c.name} ${key}`]);
    }

    const top = best(cells);
    const coreError = isCell(core) ? core.max_rel_error : Infinity; // a failed rule is beaten by any result
    const estimate = top?.[1].error_estimate;
    const row = {
      case: c.name,
      "n×m": `${c.point.length}×${exact.length / c.point.length}`,
      "tesseract-core": show(core),
      "central/abs": show(cells["central/abs"]),
      best: top ? top[0] : "none",
      "best error": top ? fmt(top[1].max_rel_error) : "-",
      "best calls": top ? top[1].apply_calls : "-",
      "≤ core": top ? top[1].max_rel_error <= coreError : false,
      "estimate bounds": estimate ? `${estimate.bounds} (${fmt(estimate.max_ratio)})` : "-",
    };
    // The table shows the summary; the JSON (via toJSON) carries every cell.
    Object.defineProperty(row, "toJSON", {
      enumerable: false,
      value: () => ({
        case: c.name,
        input: c.input,
        output: c.output,
        point: c.point,
        jacobian_shape: [...c.outputShape, ...c.inputShape],
        exact,
        summary: { ...row },
        tesseract_core: core,
        results: cells,
      }),
    });
    summary.push(row);
    matrix.push({ case: c.name, ...Object.fromEntries(Object.entries(cells).map(([k, r]) => [k, matrixCell(r)])) });
  }

  console.log("Max relative error per entry vs the analytic Jacobian (absolute where the exact entry is 0); see bench/accuracy.ts.");
  console.log("Every algorithm/mode: error (apply calls); ✓/✗ the error estimate bounds / does not bound the true error; = bit-identical to abs:");
  console.table(matrix);
  for (const [why, where] of failures) console.log(`failed: ${why}\n    in ${where.join(", ")}`);
  report("accuracy", summary);
  await runtime.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
