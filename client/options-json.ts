/**
 * Finite-difference options as the CLI takes them: the payload's `"options"` object and the flags.
 * Enum values are written by short name (`"richardson"`, `"relative"`, `"least-squares"`), by their
 * proto name (`"ALGORITHM_RICHARDSON"`) or by number; per-path maps as `{"path": number}` objects or
 * repeated `--eps-by-path PATH=H` flags. Unknown keys and values are refused, naming what exists.
 */
import { InvalidArgumentError, Option } from "commander";
import { Algorithm, SparsityMode, StepMode, StochasticEstimator } from "../generated/tesseract/v1/algorithm";
import { FiniteDifferenceOptions } from "../generated/tesseract/v1/tesseract";
import { decimalNumber } from "../common/decimal";
import { clip, invalidArgument, quote, shown } from "../common/errors";

type Options = Partial<FiniteDifferenceOptions>;

/** An enum of the generated code: names to numbers, plus ts-proto's UNRECOGNIZED = -1. */
type GeneratedEnum = Record<string, string | number>;

/**
 * The enum-valued options: their generated enum, the prefix of its value names and the help of their
 * flag. An enum option added to the proto gets short names and a flag by one line here; until then
 * the payload takes its proto names and numbers.
 */
const ENUM_OPTIONS: Record<string, { values: GeneratedEnum; prefix: string; help: string }> = {
  algorithm: { values: Algorithm, prefix: "ALGORITHM_", help: "finite-difference rule" },
  step_mode: { values: StepMode, prefix: "STEP_MODE_", help: "absolute: h = eps; relative: h = eps * max(|x|, typical magnitude)" },
  stochastic_estimator: { values: StochasticEstimator, prefix: "STOCHASTIC_ESTIMATOR_", help: "stochastic: how the samples become a Jacobian" },
  sparsity_mode: { values: SparsityMode, prefix: "SPARSITY_MODE_", help: "dense: ignore every sparsity pattern; detect: verify the request's or the Tesseract's pattern, else reuse the structure of an earlier dense Jacobian, verified (default: the request's or the Tesseract's pattern, trusted)" },
};

/** `step_mode` -> `--step-mode`, and the camelCase key commander gives its value under. */
const flagOf = (field: string) => `--${field.replace(/_/g, "-")}`;
const flagKey = (field: string) => field.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Per-input-path options (`map<string, double>`), each with its flag. */
const PATH_OPTIONS: Record<string, string> = { eps_by_path: "--eps-by-path", typical_magnitude: "--typical-magnitude" };

/** Every field of FiniteDifferenceOptions, from the generated code (so that fields added later are known). */
const FIELDS = Object.keys(FiniteDifferenceOptions.fromPartial({}));

/** `ALGORITHM_LEAST_SQUARES` -> `least-squares`. */
const shortName = (full: string, prefix: string) => full.slice(prefix.length).toLowerCase().replace(/_/g, "-");

/** The short names of an enum's values, UNSPECIFIED and UNRECOGNIZED left out. */
export function enumNames(field: string): string[] {
  const { values, prefix } = ENUM_OPTIONS[field];
  return Object.keys(values)
    .filter((k) => k.startsWith(prefix) && values[k] !== 0)
    .map((k) => shortName(k, prefix));
}

function enumValue(field: string, value: unknown, where: string): number {
  const { values, prefix } = ENUM_OPTIONS[field];
  if (typeof value === "number" && Object.values(values).includes(value) && value >= 0) return value;
  if (typeof value === "string") {
    const upper = value.toUpperCase().replace(/-/g, "_");
    for (const key of [upper, prefix + upper]) if (key.startsWith(prefix) && typeof values[key] === "number") return values[key] as number;
  }
  throw invalidArgument(`${where}: unknown value ${clip(String(JSON.stringify(value)))}; expected one of ${enumNames(field).join(", ")}`);
}

function positive(value: unknown, where: string): number {
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) throw invalidArgument(`${where}: expected a positive number, got ${shown(value)}`);
  return value;
}

function pathNumbers(value: unknown, where: string): Record<string, number> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw invalidArgument(`${where}: expected an object {"input path": number}`);
  return Object.fromEntries(Object.entries(value).map(([path, v]) => [path, positive(v, `${where}.{${path}}`)]));
}

/** camelCase (proto3 JSON names) -> the field's snake_case name. */
const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The payload's "options" object as FiniteDifferenceOptions; `where` names it in errors. */
export function optionsFromJson(json: unknown, where = "options"): Options {
  if (json === undefined) return {};
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw invalidArgument(`${where}: expected an object such as {"algorithm": "richardson", "eps": 1e-6}`);
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const field = snake(key);
    const at = `${where}.${key}`;
    if (!FIELDS.includes(field)) throw invalidArgument(`${at}: no such option; options: ${FIELDS.join(", ")}`);
    if (field in ENUM_OPTIONS) options[field] = enumValue(field, value, at);
    else if (field in PATH_OPTIONS) options[field] = pathNumbers(value, at);
    else if (field === "eps") options[field] = positive(value, at);
    else if (field === "seed") options[field] = seedValue(value, at);
    else if (field === "num_samples") {
      const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value; // proto3 JSON also writes integers as strings
      if (!Number.isSafeInteger(n) || (n as number) < 1 || (n as number) > MAX_SAMPLES) throw invalidArgument(`${at}: expected a whole number from 1 to ${MAX_SAMPLES}, got ${JSON.stringify(value)}`);
      options[field] = n;
    }
    else {
      // Fields without a rule of their own (any added later): the generated parser, checked.
      const parsed = (FiniteDifferenceOptions.fromJSON({ [field]: value }) as unknown as Record<string, unknown>)[field];
      if (parsed === -1 || (typeof parsed === "number" && !Number.isFinite(parsed))) throw invalidArgument(`${at}: ${JSON.stringify(value)} is not a valid value`);
      options[field] = parsed;
    }
  }
  return options as Options;
}

/** Options with their enum values by proto name (`"ALGORITHM_UNSPECIFIED"`), for printing. */
export function optionsToJson(options: FiniteDifferenceOptions): Record<string, unknown> {
  const named = (field: string, value: unknown) => {
    const name = typeof value === "number" ? ENUM_OPTIONS[field]?.values[value] : undefined;
    return typeof name === "string" ? name : value;
  };
  return Object.fromEntries(Object.entries(options).map(([field, value]) => [field, named(field, value)]));
}

/** The flags as they come from commander (camelCase), for the options they set; enum flags by name. */
export interface OptionFlags {
  [enumFlag: string]: unknown;
  eps?: number;
  numSamples?: number;
  seed?: string;
  epsByPath?: Record<string, number>;
  typicalMagnitude?: Record<string, number>;
}

/** The payload's options, each overridden by its flag (per-path flags add to or replace entries). */
export function mergeOptionFlags(options: Options, flags: OptionFlags): Options {
  const merged: Options = { ...options };
  for (const field of Object.keys(ENUM_OPTIONS)) {
    const value = flags[flagKey(field)];
    if (value !== undefined) (merged as Record<string, unknown>)[field] = enumValue(field, value, flagOf(field));
  }
  if (flags.eps !== undefined) merged.eps = flags.eps;
  if (flags.numSamples !== undefined) merged.num_samples = flags.numSamples;
  if (flags.seed !== undefined) merged.seed = seedValue(flags.seed, "--seed");
  if (flags.epsByPath) merged.eps_by_path = { ...options.eps_by_path, ...flags.epsByPath };
  if (flags.typicalMagnitude) merged.typical_magnitude = { ...options.typical_magnitude, ...flags.typicalMagnitude };
  return merged;
}

/** `PATH=NUMBER`, repeatable: collected into one object. */
function pathNumberFlag(flag: string) {
  return (value: string, previous: Record<string, number> | undefined) => {
    const at = value.lastIndexOf("=");
    const n = decimalNumber(value.slice(at + 1)) ?? NaN;
    if (at <= 0 || !(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`expected INPUT_PATH=POSITIVE_NUMBER (e.g. ${flag} mesh.points=1e-6), got "${value}"`);
    return { ...previous, [value.slice(0, at)]: n };
  };
}

/** A flag's positive number, written in decimal. */
export function positiveNumber(value: string): number {
  const n = decimalNumber(value);
  if (n === undefined || !(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a positive number, got "${value}"`);
  return n;
}

/**
 * A flag's whole number from `min` to `max`, written in decimal (Number() also took "", "0x10" and
 * " 5": an empty --port was 0, a free port). `alternative` names another form the flag takes.
 */
export function integer(min: number, { max = Number.MAX_SAFE_INTEGER, alternative = "" } = {}) {
  const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
  return (value: string) => {
    const n = decimalNumber(value);
    if (n === undefined || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected ${alternative}a whole number ${range}, got ${quote(value)}`);
    return n;
  };
}

/** num_samples is a uint32 on the wire: a larger count failed in the client's serializer (INTERNAL). */
export const MAX_SAMPLES = 2 ** 32 - 1;

export const positiveInteger = integer(1);

/**
 * A seed: a whole number from 0 to 2^53 - 1 (a uint64 on the wire; beyond 2^53 a JSON number or a
 * flag's text would not say which one), as a number or its digits.
 */
export function seedValue(value: unknown, at: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw invalidArgument(`${at}: ${JSON.stringify(value)} is not a seed; expected a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`);
  return n;
}

/** The finite-difference flags, every one overriding the payload's "options"; `--seed` only when `seed`. */
export function optionFlags(seed: boolean, sparsity = true): Option[] {
  const enums = Object.entries(ENUM_OPTIONS)
    .filter(([field]) => sparsity || field !== "sparsity_mode")
    .map(([field, { help }]) => new Option(`${flagOf(field)} <name>`, help).choices(enumNames(field)));
  const flags = [
    ...enums,
    new Option("--eps <h>", "step (absolute), or relative step").argParser(positiveNumber),
    new Option("--eps-by-path <path=h>", "step for one input path (repeatable)").argParser(pathNumberFlag("--eps-by-path")),
    new Option("--typical-magnitude <path=m>", "relative steps: the magnitude below which steps stop shrinking, per input path (repeatable)").argParser(pathNumberFlag("--typical-magnitude")),
    new Option("--num-samples <k>", "stochastic: samples").argParser(integer(1, { max: MAX_SAMPLES })),
  ];
  return seed ? [...flags, new Option("--seed <seed>", "stochastic: seed of the directions")] : flags;
}
