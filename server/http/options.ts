/**
 * Finite-difference options for the REST gradient endpoints, an extension (tesseract-core's REST API
 * has none): query parameters `algorithm`, `eps`, `num_samples`, `seed`, `sparsity_mode`, and a body
 * field `options` with the same keys (FiniteDifferenceOptions); the body's win. `algorithm` is a name
 * (`central`, `forward`, `stochastic`, `richardson`, `adaptive`, or `ALGORITHM_CENTRAL`…) or its
 * number; `sparsity_mode` likewise (`dense`, `detect`, `SPARSITY_MODE_DENSE`…). Unset, the
 * Tesseract's and then the engine's defaults apply, as over gRPC. Results are dense whatever the mode.
 */
import { decimalNumber } from "../../common/decimal";
import { invalidArgument, keyAt, nameOf, shown } from "../../common/errors";
import { isPlainObject } from "../../common/records";
import { Algorithm, SparsityMode } from "../tesseract";
import type { GradientRequest } from "../runtime";
import { requestEps, requestSamples, toSeed } from "../fd/options";

type RequestOptions = NonNullable<GradientRequest["options"]>;

const KEYS = ["algorithm", "eps", "num_samples", "seed", "sparsity_mode"] as const;
/** tesseract-core's optional query parameter (a run's name for its logs): accepted, ignored here. */
const RUN_ID = "run_id";

function algorithmOf(value: unknown, where: string): number {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  const name = String(value).toUpperCase();
  const number = (Algorithm as unknown as Record<string, number>)[name.startsWith("ALGORITHM_") ? name : `ALGORITHM_${name}`];
  if (typeof value !== "string" || typeof number !== "number") {
    throw invalidArgument(`${where} is ${shown(value)}, expected central, forward, stochastic, richardson or adaptive`);
  }
  return number;
}

function sparsityModeOf(value: unknown, where: string): number {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  const name = String(value).toUpperCase();
  const number = (SparsityMode as unknown as Record<string, number>)[name.startsWith("SPARSITY_MODE_") ? name : `SPARSITY_MODE_${name}`];
  if (typeof value !== "string" || typeof number !== "number") throw invalidArgument(`${where} is ${shown(value)}, expected dense or detect`);
  return number;
}

function numberOf(value: unknown, where: string, integer: boolean): number {
  const n = typeof value === "string" ? decimalNumber(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n) || (integer && !Number.isSafeInteger(n))) throw invalidArgument(`${where} is ${shown(value)}, expected ${integer ? "an integer" : "a number"}`);
  // "1e-400" reads as 0: say so, rather than let the step rule refuse a 0 the caller never wrote.
  if (n === 0 && typeof value === "string" && /[1-9]/.test(value.replace(/[eE].*$/, ""))) throw invalidArgument(`${where} is ${shown(value)}, below the smallest FP64 number (it reads as 0)`);
  return n;
}

/** A seed: any unsigned 64-bit integer, as gRPC takes it (a decimal string beyond 2^53, which a JSON number cannot hold). */
function seedOf(value: unknown, where: string): bigint {
  // Refused here, naming where it came from (a query's -1 was refused later as options.seed).
  return toSeed(typeof value === "string" && /^\d{1,20}$/.test(value) ? value : numberOf(value, where, true), where);
}

/** The request's options, or undefined when it sets none. */
export function finiteDifferenceOptions(query: Record<string, unknown>, body: unknown): RequestOptions | undefined {
  const options: RequestOptions = {};
  const read = (source: Record<string, unknown>, where: string) => {
    for (const key of KEYS) {
      const v = source[key];
      if (v === undefined || v === null) continue;
      if (key === "algorithm") options.algorithm = algorithmOf(v, `${where}${key}`);
      // Checked here, where it was given: a query parameter's 0 was refused as options.eps, located in the body.
      else if (key === "eps") options.eps = requestEps(numberOf(v, `${where}${key}`, false), `${where}${key}`);
      else if (key === "num_samples") options.num_samples = requestSamples(numberOf(v, `${where}${key}`, true), `${where}${key}`);
      else if (key === "sparsity_mode") options.sparsity_mode = sparsityModeOf(v, `${where}${key}`);
      else options.seed = seedOf(v, `${where}${key}`);
    }
  };
  // A misspelt parameter (?algoritm=forward) would leave the defaults in place without a word;
  // tesseract-core's own `run_id` is taken and ignored.
  const unknownParameter = Object.keys(query).find((k) => k !== RUN_ID && !(KEYS as readonly string[]).includes(k));
  if (unknownParameter !== undefined) throw invalidArgument(`query parameter ${nameOf(unknownParameter)} is not an option; options: ${KEYS.join(", ")}`);
  read(query, "query parameter ");
  if (body !== undefined) {
    if (!isPlainObject(body)) throw invalidArgument("options must be an object");
    const unknown = Object.keys(body).filter((k) => !(KEYS as readonly string[]).includes(k));
    if (unknown.length > 0) throw invalidArgument(`${keyAt("options", unknown[0])} is not an option; options: ${KEYS.join(", ")}`);
    read(body, "options.");
  }
  return Object.keys(options).length > 0 ? options : undefined;
}
