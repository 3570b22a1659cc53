/**
 * The protobuf field name of each key of a bridged runtime's model. A key keeps its name where
 * protobuf, and the JavaScript code generated from the file, can take it; otherwise the field is
 * named after the key in snake_case (`fooBar` → `foo_bar`, `1x` → `field_1x`, `été` → `ete`), with
 * `_2`, `_3`… when that is taken, and carries the key in `(tesseract.v1.json_key)` (json-keys.ts).
 * A key cannot keep its name when:
 *
 * - it is no protobuf identifier (`1x`, `a.b`, `a b`, `été`, `$type`);
 * - protoc and buf would refuse it beside another: in proto3, two field names equal once
 *   lowercased without underscores (`foo_bar` and `fooBar`, `x1` and `x_1`; "message fields have the
 *   same JSON name", older protoc's stricter rule), of which the lowercase snake_case one keeps its
 *   name (then the first in code-unit order);
 * - it is a map field's entry type's name in the same message (`AEntry` beside a map `a`: protobuf
 *   declares `AEntry` there, and the file was refused for declaring it twice);
 * - JavaScript objects hold it already (`constructor`, `toString`, `__proto__`…): protobufjs cannot
 *   hold `__proto__`, and code that tests `message.constructor !== undefined` (ts-proto's encoders)
 *   read Object's own and sent NaN for a field that was never set.
 *
 * A renamed field's name is never another field's key, so that a REST path (keys) and a gRPC path
 * (names) never name two fields. Field numbers follow keys, not names (openapi-proto.ts).
 */
import { mapEntryName } from "./proto-compiler";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A name in lowercase snake_case: the style protobuf names fields in, which keeps its name where two meet. */
const SNAKE = /^[a-z][a-z0-9_]*$/;

/** Names every JavaScript object has (Object.prototype's), which generated code mistakes for set fields. */
const OBJECT_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));

/** The form protoc compares field names in: two names equal in it meet. */
const folded = (name: string): string => name.replace(/_/g, "").toLowerCase();

/** `key` in snake_case, an identifier: accents dropped, other characters `_`, a leading digit after `field_`. */
export function snakeName(key: string): string {
  const name = key
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z])([A-Z][a-z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .toLowerCase();
  if (name === "") return "field";
  return /^[0-9]/.test(name) ? `field_${name}` : name;
}

/** Keys in the order they are given names: lowercase snake_case first, then other identifiers, then the rest; each in code-unit order. */
function priority(keys: readonly string[]): string[] {
  const rank = (key: string) => (SNAKE.test(key) ? 0 : IDENTIFIER.test(key) ? 1 : 2);
  return [...keys].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The field name of each of a model's keys. `isMap(key)`: whether the key's field is a map (its
 * entry type takes a name in the message).
 */
export function protoFieldNames(keys: readonly string[], isMap: (key: string) => boolean): Map<string, string> {
  const renamed = new Set<string>();
  for (;;) {
    const names = assign(keys, renamed);
    // A field named like a map field's entry type: named otherwise, and names given again (its own may free another's).
    const entries = new Set(keys.filter(isMap).map((key) => mapEntryName(names.get(key)!)));
    const clash = keys.find((key) => !renamed.has(key) && entries.has(names.get(key)!));
    if (clash === undefined) return names;
    renamed.add(clash);
  }
}

/** Names for `keys`, those in `renamed` named otherwise whatever they are. */
function assign(keys: readonly string[], renamed: ReadonlySet<string>): Map<string, string> {
  const names = new Map<string, string>();
  const taken = new Set<string>();
  const ordered = priority(keys);
  for (const key of ordered) {
    if (renamed.has(key) || !IDENTIFIER.test(key) || OBJECT_NAMES.has(key) || taken.has(folded(key))) continue;
    names.set(key, key);
    taken.add(folded(key));
  }
  const allKeys = new Set(keys);
  for (const key of ordered) {
    if (names.has(key)) continue;
    const base = snakeName(key);
    let name = base;
    for (let n = 2; taken.has(folded(name)) || OBJECT_NAMES.has(name) || (allKeys.has(name) && name !== key); n++) name = `${base}_${n}`;
    names.set(key, name);
    taken.add(folded(name));
  }
  return names;
}
