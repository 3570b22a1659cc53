/**
 * What a CheckGradients request asks for, validated before the first evaluation: the endpoints, the
 * tolerances, the seed and the bound on apply calls.
 *
 * A value passes when |analytic − fd| ≤ atol + rtol·|fd|. Defaults, rtol 1e-4 and atol 1e-6: central
 * differences with the default step (1e-4) are off by h²·|f'''|/6 (~1e-9 relative for O(1)-scaled
 * smooth functions) plus rounding ε·|f|/h (~1e-12), so 1e-4 leaves room for badly scaled functions
 * while any real gradient bug (a missing factor, a wrong sign, a transposed index) is O(1) relative;
 * atol judges entries near zero, where a relative test means nothing. Forward differences are only
 * O(h) accurate (~1e-4 relative): check them with a looser rtol (1e-3). On top, each value is allowed
 * what the engine reports it may be off by (source.ts: its error estimate, or its outputs' rounding,
 * ~ulp(f)/h, large for FP32 outputs) and, for a JVP, what its direction's stray from the tangent
 * explains (tally.ts, compareJvp).
 */
import { CHECK_DEFAULTS } from "../../common/check-defaults";
import { invalidArgument, quote } from "../../common/errors";
import { toSeed, type RequestOptions } from "../fd/options";

export { CHECK_DEFAULTS };

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
  /** The most bytes the analytic Jacobian of the checked paths may take, FP64 (the server's message limit); unset: no bound. */
  maxBytes?: number;
}

export interface CheckSettings {
  /** The checks to make, in report order. */
  endpoints: readonly CheckEndpoint[];
  /** Whether FD columns are needed (jacobian or vjp) and whether FD JVPs are. */
  columns: boolean;
  jvp: boolean;
  rtol: number;
  atol: number;
  seed: bigint;
}

/** The request's endpoints, tolerances and seed, and the form of max_evals; INVALID_ARGUMENT otherwise. */
export function checkSettings(req: CheckGradientsRequest): CheckSettings {
  const requested = new Map<CheckEndpoint, string>();
  for (const name of req.endpoints ?? []) {
    // Own names only: "constructor" or "__proto__" named an Object member, and the request checked nothing and passed.
    const endpoint = Object.hasOwn(ENDPOINT_NAMES, name) ? ENDPOINT_NAMES[name] : undefined;
    if (!endpoint) throw invalidArgument(`endpoints: unknown endpoint ${quote(name)}; expected jacobian, jvp or vjp (or jacobian_vector_product, vector_jacobian_product)`);
    // As a path listed twice is refused: the request says one thing twice, or two things meaning one.
    if (requested.has(endpoint)) throw invalidArgument(`endpoints: ${quote(name)} is listed more than once (as ${quote(requested.get(endpoint)!)} before)`);
    requested.set(endpoint, name);
  }
  const endpoints = requested.size ? ENDPOINT_ORDER.filter((e) => requested.has(e)) : ENDPOINT_ORDER;
  const rtol = tolerance(req.rtol, "rtol", CHECK_DEFAULTS.rtol);
  const atol = tolerance(req.atol, "atol", CHECK_DEFAULTS.atol);
  const seed = toSeed(req.seed ?? CHECK_DEFAULTS.seed, "seed");
  if (req.maxEvals !== undefined && (!Number.isInteger(req.maxEvals) || req.maxEvals < 0)) {
    throw invalidArgument(`max_evals must be a whole number (0: the default), got ${req.maxEvals}`);
  }
  const columns = endpoints.includes("jacobian") || endpoints.includes("vjp");
  return { endpoints, columns, jvp: endpoints.includes("jvp"), rtol, atol, seed };
}

function tolerance(value: number | undefined, field: string, fallback: number): number {
  if (value === undefined || value === null || value === 0) return fallback;
  if (!Number.isFinite(value) || value < 0) throw invalidArgument(`${field} must be a non-negative finite number (0: the default ${fallback}), got ${value}`);
  return value;
}

/**
 * The bound on apply calls: the request's, or the default (1000, or the least that checks every
 * input path once). `perRow` is what one FD column or JVP costs; a request below that least is refused.
 */
export function maxEvalsFor(requested: number | undefined, perRow: number, paths: number, settings: CheckSettings): number {
  const minimum = 1 + perRow * paths * (Number(settings.columns) + Number(settings.jvp));
  const maxEvals = requested ? requested : Math.max(CHECK_DEFAULTS.maxEvals, minimum);
  if (maxEvals < minimum) {
    throw invalidArgument(
      `max_evals ${maxEvals} is too small: checking ${paths} input path${paths === 1 ? "" : "s"} (${settings.endpoints.join(", ")}) takes at least ${minimum} apply calls (1 to find the outputs, ${perRow} per finite-difference column or JVP)`,
    );
  }
  return maxEvals;
}
