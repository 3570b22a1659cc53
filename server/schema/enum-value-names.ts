/**
 * The value names of the enum a bridged runtime's Literal becomes: `<ENUM>_<VALUE>` after
 * common/enum-names.ts (`MethodValue`, "central" → METHOD_VALUE_CENTRAL), `<ENUM>_UNSPECIFIED` for
 * 0 (unset), and `<ENUM>_VALUE_<i>` (its place in the Literal, from 1) for a value whose own name
 * cannot be used:
 *
 * - it has none ("", "-");
 * - values of this enum spell it alike ("Linear" and "linear", "a-b" and "a_b"): all of them are
 *   named by place, since the JSON readers match a short name whatever its case and separators,
 *   and sent "linear" as "Linear" when the first took the name;
 * - the package has it already: enum values share the package's scope (`mode: "value_a"` and
 *   `mode_value: "a"` both spell MODE_VALUE_VALUE_A; protoc refused the file);
 * - protoc would refuse it beside another value of this enum: once the enum's prefix is stripped
 *   and the rest PascalCased, proto3 value names must differ ("" named VALUE_1 beside "value1":
 *   both are `Value1`, "enum values have the same name with the prefix removed").
 *
 * A name by place that is taken in turn takes `_2`, `_3`….
 */
import { enumValueName, screamingSnake } from "../../common/enum-names";

/** protoc's form of a value name with its enum's prefix stripped (`VALUE_1` → `Value1`), which must differ within an enum. */
function pascalForm(suffix: string): string {
  return suffix
    .split("_")
    .filter(Boolean)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1).toLowerCase())
    .join("");
}

/**
 * The names of enum `enumName`'s unset value and of each of `literals` (the Literal's values as
 * short names, literalName), in order. `packageNames`: the value names the package has so far, to
 * which these are added.
 */
export function enumValueNames(enumName: string, literals: readonly string[], packageNames: Set<string>): { unset: string; values: string[] } {
  const forms = new Set<string>();
  const taken = (suffix: string) => packageNames.has(enumValueName(enumName, suffix)) || forms.has(pascalForm(screamingSnake(suffix)));
  const take = (preferred: string, fallback: (n: number) => string): string => {
    let suffix = preferred;
    for (let n = 2; taken(suffix); n++) suffix = fallback(n);
    packageNames.add(enumValueName(enumName, suffix));
    forms.add(pascalForm(screamingSnake(suffix)));
    return enumValueName(enumName, suffix);
  };
  const spellings = new Map<string, number>();
  for (const v of literals) spellings.set(screamingSnake(v), (spellings.get(screamingSnake(v)) ?? 0) + 1);
  const unset = take("UNSPECIFIED", (n) => `UNSPECIFIED_${n}`);
  const values = literals.map((v, k) => {
    const i = k + 1;
    const own = screamingSnake(v) !== "" && spellings.get(screamingSnake(v))! === 1 && !taken(v);
    return take(own ? v : `VALUE_${i}`, (n) => `VALUE_${i}_${n}`);
  });
  return { unset, values };
}
