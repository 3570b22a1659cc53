/**
 * Enum values by their short names. protobuf enum values share their package's scope, so each is
 * prefixed with its enum's name in SCREAMING_SNAKE_CASE (`MethodValue` → `METHOD_VALUE_FORWARD`,
 * `Algorithm` → `ALGORITHM_CENTRAL`); the short name is what follows (`forward`, `central`). The
 * generator of a tesseract-core Tesseract's .proto names its Literal values by this rule, and the
 * JSON readers (the CLI's, the REST API's) accept short names by it.
 */

/**
 * A tesseract-core Literal as an enum: its values (strings, numbers, booleans or null, sent and read
 * as themselves) in the schema's order, and the enum value number of each (0 is unset).
 */
export interface LiteralEnum {
  readonly values: readonly unknown[];
  readonly numbers: readonly number[];
}

/** SCREAMING_SNAKE_CASE: `MethodValue` → `METHOD_VALUE`, `semi-implicit` → `SEMI_IMPLICIT`. */
export function screamingSnake(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .toUpperCase();
}

/** The value name that the short name `value` has in the enum named `enumName` (its simple name). */
export function enumValueName(enumName: string, value: string): string {
  return `${screamingSnake(enumName)}_${screamingSnake(value)}`;
}

/**
 * The number of an enum value given by its full name or its short name (case and separators
 * ignored), or undefined. `values` is the enum's name → number table.
 */
export function enumNumber(enumName: string, values: Readonly<Record<string, number>>, name: string): number | undefined {
  if (Object.hasOwn(values, name)) return values[name];
  if (screamingSnake(name) === "") return undefined;
  const full = enumValueName(enumName, name);
  return Object.hasOwn(values, full) ? values[full] : undefined;
}

/** The short names of an enum's values (`forward` for METHOD_VALUE_FORWARD), the unspecified 0 left out; a value without the prefix keeps its name. */
export function shortNames(enumName: string, values: Readonly<Record<string, number>>): string[] {
  const prefix = `${screamingSnake(enumName)}_`;
  return Object.entries(values)
    .filter(([, number]) => number !== 0)
    .map(([name]) => (name.startsWith(prefix) ? name.slice(prefix.length).toLowerCase() : name));
}

/**
 * The short name of a Literal value (enumValueName's `value`): a string as it is; a number, boolean
 * or None spelt so that none collide and each reads back (-1 → MINUS_1, 0.5 → 0_POINT_5, None →
 * NULL): -1 was named as 1, and 1 of Literal[-1, 0, 1] reached the runtime as -1.
 */
export function literalName(value: unknown): string {
  if (typeof value !== "number") return String(value);
  return String(value).replace(/^-/, "minus_").replace(".", "_point_").replace("e-", "e_minus_").replace("e+", "e");
}

/** Whether an enum names values for numbers (a bridged Literal of numbers): a bare number is one of its values there, never a value number. */
export function namesNumbers(enumName: string, values: Readonly<Record<string, number>>): boolean {
  const prefix = `${screamingSnake(enumName)}_`;
  return Object.keys(values).some((name) => name.startsWith(prefix) && /^(MINUS_)?\d/.test(name.slice(prefix.length)));
}

