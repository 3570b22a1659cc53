/**
 * Which finite-difference rule runs, with which step. Precedence, field by field:
 * the request's options > the Tesseract's defaults (possibly computed from the inputs) > ENGINE_DEFAULTS.
 */
import { clip, Code, invalidArgument, listed, quote, TesseractError } from "../../common/errors";
import { recordFrom } from "../../common/records";
import { Algorithm, type FiniteDifferenceDefaults, type PerInputs } from "../tesseract";

export type AlgorithmName = "central" | "forward" | "stochastic" | "richardson" | "adaptive";
export type StepModeName = "absolute" | "relative";
export type StochasticEstimatorName = "spsa" | "least-squares";
/** Where column grouping takes the Jacobian's structure from (sparsity-plan.ts). */
export type SparsityModeName = "default" | "dense" | "detect";

/** FiniteDifferenceOptions as decoded from the wire; unset optional fields are null or undefined. */
export interface RequestOptions {
  algorithm?: number | null;
  eps?: number | null;
  num_samples?: number | null;
  seed?: number | bigint | string | null;
  eps_by_path?: Record<string, number> | null;
  step_mode?: number | null;
  typical_magnitude?: Record<string, number> | null;
  stochastic_estimator?: number | null;
  sparsity_mode?: number | null;
}

export interface ResolvedOptions {
  algorithm: AlgorithmName;
  /** The step (absolute) or relative step; undefined: the default for the step mode (steps.ts). */
  eps?: number;
  /** Per input path, overriding `eps`. */
  epsByPath?: Record<string, number>;
  stepMode?: StepModeName;
  /** Per input path: relative steps are eps * max(|x|, typical); default 1. */
  typical?: Record<string, number>;
  /** Stochastic only; undefined means max(10, floor(sqrt(n))). */
  numSamples?: number;
  /** Stochastic only; the directions are a function of this seed. */
  seed: bigint;
  /** Stochastic only; default SPSA. */
  stochasticEstimator?: StochasticEstimatorName;
  /** The request's pattern, else the Tesseract's ("default"); none ("dense"); or detected ("detect"). */
  sparsityMode?: SparsityModeName;
}

/** The engine's default algorithm; the default step belongs to the step rule (steps.ts, defaultEps). */
export const ENGINE_DEFAULTS = { algorithm: Algorithm.ALGORITHM_CENTRAL } as const;

const NAMES: Record<number, AlgorithmName> = {
  [Algorithm.ALGORITHM_CENTRAL]: "central",
  [Algorithm.ALGORITHM_FORWARD]: "forward",
  [Algorithm.ALGORITHM_STOCHASTIC]: "stochastic",
  [Algorithm.ALGORITHM_RICHARDSON]: "richardson",
  [Algorithm.ALGORITHM_ADAPTIVE]: "adaptive",
};

const STEP_MODES: Record<number, StepModeName | undefined> = { 0: undefined, 1: "absolute", 2: "relative" };
const ESTIMATORS: Record<number, StochasticEstimatorName | undefined> = { 0: undefined, 1: "spsa", 2: "least-squares" };
const SPARSITY_MODES: Record<number, SparsityModeName> = { 0: "default", 1: "dense", 2: "detect" };

function authorValue<I, V>(value: PerInputs<I, V> | undefined, inputs: I): V | undefined {
  return typeof value === "function" ? (value as (i: I) => V | undefined)(inputs) : value;
}

function isSet<T>(v: T | null | undefined): v is T {
  return v !== null && v !== undefined;
}

function algorithmName(value: number, source: string, err: (m: string) => Error): AlgorithmName {
  const name = NAMES[value];
  if (!name) throw err(`${source}: unknown algorithm ${value}; expected one of ${Object.keys(NAMES).join(", ")} (ALGORITHM_CENTRAL, ALGORITHM_FORWARD, ALGORITHM_STOCHASTIC, ALGORITHM_RICHARDSON, ALGORITHM_ADAPTIVE)`);
  return name;
}

function checkEps(eps: number, source: string, err: (m: string) => Error): number {
  if (!Number.isFinite(eps) || eps <= 0) throw err(`${source} must be a positive finite number, got ${eps}`);
  return eps;
}

function checkSamples(n: number, source: string, err: (m: string) => Error): number {
  if (!Number.isInteger(n) || n < 1) throw err(`${source} must be a whole number of at least 1, got ${n}`);
  return n;
}

/** A request's eps, refused naming `field` (a query parameter's as one: it was refused as options.eps). */
export const requestEps = (eps: number, field: string): number => checkEps(eps, field, invalidArgument);

/** A request's num_samples, refused naming `field`. */
export const requestSamples = (n: number, field: string): number => checkSamples(n, field, invalidArgument);

/** A seed as an unsigned 64-bit integer; `field` names it in the refusal. */
export function toSeed(seed: NonNullable<RequestOptions["seed"]>, field = "options.seed"): bigint {
  try {
    const value = BigInt(seed);
    if (value < 0n || value >= 1n << 64n) throw new RangeError();
    return value;
  } catch {
    throw invalidArgument(`${field} must be an unsigned 64-bit integer, got ${String(seed)}`);
  }
}

/**
 * A bad fixed default is the author's mistake (INTERNAL); a bad default computed from the inputs
 * comes from the caller's own inputs (INVALID_ARGUMENT).
 */
function defaultError(value: unknown): (m: string) => Error {
  if (typeof value === "function") return (m) => invalidArgument(`${m} (the Tesseract's default, computed from the inputs: fix the inputs or set the option in the request)`);
  return (m) => new TesseractError(Code.INTERNAL, `Tesseract default ${m}`);
}

export function resolveOptions<I>(request: RequestOptions | null | undefined, defaults: FiniteDifferenceDefaults<I> | undefined, inputs: I): ResolvedOptions {
  const req = request ?? {};
  let algorithm: AlgorithmName;
  if (isSet(req.algorithm) && req.algorithm !== Algorithm.ALGORITHM_UNSPECIFIED) {
    algorithm = algorithmName(req.algorithm, "options.algorithm", invalidArgument);
  } else {
    const fromAuthor = authorValue(defaults?.algorithm, inputs);
    algorithm = algorithmName(isSet(fromAuthor) && fromAuthor !== Algorithm.ALGORITHM_UNSPECIFIED ? fromAuthor : ENGINE_DEFAULTS.algorithm, "algorithm", defaultError(defaults?.algorithm));
  }

  const authorEps = authorValue(defaults?.eps, inputs);
  const eps = isSet(req.eps) ? checkEps(req.eps, "options.eps", invalidArgument) : isSet(authorEps) ? checkEps(authorEps, "eps", defaultError(defaults?.eps)) : undefined;
  const byPath = (field: "eps_by_path" | "typical_magnitude") =>
    recordFrom(Object.entries(req[field] ?? {}).map(([path, v]) => [path, checkEps(v, `options.${field}.{${clip(path)}}`, invalidArgument)]));
  if (isSet(req.step_mode) && !(req.step_mode in STEP_MODES)) {
    throw invalidArgument(`options.step_mode: unknown step mode ${req.step_mode}; expected 0, 1 or 2 (STEP_MODE_UNSPECIFIED, STEP_MODE_ABSOLUTE, STEP_MODE_RELATIVE)`);
  }
  const stepMode = STEP_MODES[req.step_mode ?? 0] ?? "absolute";
  if (isSet(req.stochastic_estimator) && !(req.stochastic_estimator in ESTIMATORS)) {
    throw invalidArgument(`options.stochastic_estimator: unknown estimator ${req.stochastic_estimator}; expected 0, 1 or 2 (STOCHASTIC_ESTIMATOR_UNSPECIFIED, _SPSA, _LEAST_SQUARES)`);
  }
  const stochasticEstimator = ESTIMATORS[req.stochastic_estimator ?? 0] ?? "spsa";
  if (isSet(req.sparsity_mode) && !(req.sparsity_mode in SPARSITY_MODES)) {
    throw invalidArgument(`options.sparsity_mode: unknown sparsity mode ${req.sparsity_mode}; expected 0, 1 or 2 (SPARSITY_MODE_UNSPECIFIED, SPARSITY_MODE_DENSE, SPARSITY_MODE_DETECT)`);
  }
  const sparsityMode = SPARSITY_MODES[req.sparsity_mode ?? 0];

  const authorSamples = authorValue(defaults?.numSamples, inputs);
  const numSamples = isSet(req.num_samples)
    ? checkSamples(req.num_samples, "options.num_samples", invalidArgument)
    : isSet(authorSamples)
      ? checkSamples(authorSamples, "numSamples", defaultError(defaults?.numSamples))
      : undefined;

  const seed = isSet(req.seed) ? toSeed(req.seed) : BigInt(Math.floor(Math.random() * 2 ** 32));
  return { algorithm, eps, epsByPath: byPath("eps_by_path"), stepMode, typical: byPath("typical_magnitude"), numSamples, seed, stochasticEstimator, sparsityMode };
}

/**
 * Keys of the per-path option maps must name a differentiated input path: `where` says which, as
 * "in jvp_inputs" or "an input path being checked".
 */
export function checkPathKeys(options: ResolvedOptions, leaves: readonly { path: string }[], where: string): void {
  for (const [option, map] of [["eps_by_path", options.epsByPath], ["typical_magnitude", options.typical]] as const) {
    for (const key of Object.keys(map ?? {})) {
      if (!leaves.some((l) => l.path === key)) {
        throw invalidArgument(`options.${option} has key ${quote(key)}, which is not ${where} (${listed(leaves.map((l) => l.path))})`);
      }
    }
  }
}
