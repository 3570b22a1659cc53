/**
 * Paths: tesseract-core's syntax for addressing the leaves of a decoded input or output tree.
 *
 * A tree is plain JS: messages are plain objects keyed by snake_case field names, protobuf maps are
 * plain objects keyed by the map key, repeated fields are arrays, and everything else (ndarrays,
 * numbers, strings, ...) is a leaf. Only plain objects (prototype `Object.prototype` or `null`) and
 * arrays are stepped into, and only through their own properties.
 *
 * Grammar (positions in error messages are 0-based offsets into the path string, in UTF-16 code
 * units like JS string indices):
 *
 *     path     = segment *( "." segment )          ; the empty string is not a path
 *     segment  = field / index / key / "[]" / "{}"
 *     field    = [A-Za-z_] *[A-Za-z0-9_]           ; a message field, e.g. `mesh`
 *     index    = "[" ( "0" / [1-9] *[0-9] ) "]"     ; a list element, e.g. `[2]`; no sign,
 *                                                   ; no leading zeros, at most 2^53 - 1
 *     key      = "{" 1*keychar "}"                  ; a map entry, e.g. `{temperature}`
 *     keychar  = "\" any-character / any-character-but-"\"-or-"}"
 *
 * `[]` (any index) and `{}` (any key) are patterns; a path containing one is a pattern, which
 * `expandPattern` turns into concrete paths. Examples: `mesh.points`, `layers.[2].weights`,
 * `mesh.cell_data.{temperature}`, `mesh.cell_data.{}`, `blocks.[].w`.
 *
 * Keys. Everything between the braces is the key, dots, spaces, brackets, `{` and quotes included:
 * `m.{a.b c}` is key "a.b c". A backslash makes the next character literal, so `{a\}b}` is key
 * "a}b" and `{a\\b}` is key "a\b". Since `{}` is the any-key pattern, the empty key is written
 * `{""}`: brace content of exactly two unescaped double quotes means the empty key (a key made of
 * two double quotes is written `{\"\"}`; other quotes need no escaping).
 *
 * `formatPath` writes the canonical form: it escapes `\` and `}` in keys and nothing else, writes
 * the empty key as `{""}` and the key `""` as `{\"\"}`, so `parsePath(formatPath(s))` equals `s`.
 */
import { invalidArgument, quote } from "./errors";
import { isPlainObject } from "./records";
import { dataTypeOfArray, isFloatingPoint, isNdArray } from "./tensor-codec";

/** Far longer than any path a schema needs; longer ones are refused before they are parsed. */
export const MAX_PATH_LENGTH = 4096;

export type Segment =
  | { kind: "field"; name: string }
  | { kind: "index"; index: number }
  | { kind: "key"; key: string }
  | { kind: "anyIndex" }
  | { kind: "anyKey" };

const isIdentStart = (c: string): boolean => (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_";
const isIdentChar = (c: string): boolean => isIdentStart(c) || (c >= "0" && c <= "9");
const isIdentifier = (s: string): boolean => s !== "" && isIdentStart(s[0]!) && [...s].every(isIdentChar);

/** A map key as a path writes it: `{key}`, with `\` and `}` escaped. */
export function bracedKey(key: string): string {
  return `{${key.replace(/[\\}]/g, "\\$&")}}`;
}

/** A key as one segment of a path in a message: a plain name as it is, any other braced (`größe`, `a.b`). */
export function keySegment(key: string): string {
  return isIdentifier(key) ? key : bracedKey(key);
}
/** The character at `i` as a quoted string, whole code point (for messages). */
const charAt = (s: string, i: number): string => JSON.stringify(String.fromCodePoint(s.codePointAt(i)!));

export function parsePath(path: string): Segment[] {
  const fail = (what: string, pos: number): never => {
    throw invalidArgument(`bad path ${quote(path)}: ${what} at position ${pos}`);
  };
  if (path === "") throw invalidArgument(`bad path "": empty path`);
  if (path.length > MAX_PATH_LENGTH) throw invalidArgument(`bad path ${quote(path)}: longer than the ${MAX_PATH_LENGTH} characters a path may have`);
  const segments: Segment[] = [];
  let i = 0;
  for (;;) {
    const start = i;
    const c = path[i];
    if (c === undefined || c === ".") {
      fail("empty segment", start);
    } else if (c === "[") {
      const close = path.indexOf("]", i + 1);
      if (close < 0) fail('unterminated "["', start);
      const digits = path.slice(i + 1, close);
      if (digits === "") {
        segments.push({ kind: "anyIndex" });
      } else {
        const wellFormed = [...digits].every((d) => d >= "0" && d <= "9") && (digits === "0" || digits[0] !== "0");
        if (!wellFormed) fail(`bad index ${quote(digits)} (want a non-negative integer without sign or leading zeros)`, start);
        const index = Number(digits);
        if (!Number.isSafeInteger(index)) fail(`index ${digits} too large`, start);
        segments.push({ kind: "index", index });
      }
      i = close + 1;
    } else if (c === "{") {
      let key = "";
      let j = i + 1;
      for (; j < path.length && path[j] !== "}"; j++) key += path[j] === "\\" ? path[++j] ?? "" : path[j];
      if (j >= path.length) fail('unterminated "{"', start);
      const raw = path.slice(i + 1, j);
      segments.push(raw === "" ? { kind: "anyKey" } : { kind: "key", key: raw === '""' ? "" : key });
      i = j + 1;
    } else if (isIdentStart(c)) {
      while (i < path.length && isIdentChar(path[i]!)) i++;
      segments.push({ kind: "field", name: path.slice(start, i) });
    } else {
      fail(`unexpected ${charAt(path, i)} (want a field name, "[" or "{")`, i);
    }
    if (i === path.length) return segments;
    if (path[i] !== ".") fail(`unexpected ${charAt(path, i)} (want "." or end of path)`, i);
    i++;
  }
}

export function formatPath(segments: readonly Segment[]): string {
  return segments
    .map((s) => {
      switch (s.kind) {
        case "field":
          if (!isIdentifier(s.name)) throw invalidArgument(`bad field name ${quote(s.name)} in a path`);
          return s.name;
        case "index":
          if (!Number.isSafeInteger(s.index) || s.index < 0) throw invalidArgument(`bad list index ${s.index} in a path`);
          return `[${s.index}]`;
        case "key":
          if (s.key === "") return '{""}';
          if (s.key === '""') return '{\\"\\"}';
          return bracedKey(s.key);
        case "anyIndex":
          return "[]";
        case "anyKey":
          return "{}";
      }
    })
    .join(".");
}

export function isPattern(segments: readonly Segment[]): boolean {
  return segments.some((s) => s.kind === "anyIndex" || s.kind === "anyKey");
}

type Container = Record<string, unknown> | unknown[];

/** The child of `node` at a concrete segment, or undefined when absent or `node` is the wrong kind. */
function child(node: unknown, s: Segment): unknown {
  if (s.kind === "index") {
    return Array.isArray(node) && Object.hasOwn(node, s.index) ? node[s.index] : undefined;
  }
  const n = name(s);
  return n !== undefined && isPlainObject(node) && Object.hasOwn(node, n) ? node[n] : undefined;
}

/** The property name a field or key segment steps through. */
function name(s: Segment): string | undefined {
  return s.kind === "field" ? s.name : s.kind === "key" ? s.key : undefined;
}

function requireConcrete(segments: readonly Segment[], what: string): void {
  if (isPattern(segments)) {
    throw invalidArgument(`bad path ${quote(formatPath(segments))}: ${what} needs a concrete path, not a pattern`);
  }
}

/** Leaf at a concrete path, or undefined when any step is missing (field absent, index out of range, key absent, wrong container kind). Own properties only (never prototype props like "constructor"/"__proto__"). */
export function getAtPath(tree: unknown, segments: readonly Segment[]): unknown {
  requireConcrete(segments, "reading a leaf");
  let node = tree;
  for (const s of segments) {
    node = child(node, s);
    if (node === undefined) return undefined;
  }
  return node;
}

/** Those of `paths` (differentiable ones) whose tensors in `tree` are floating point: the ones a Jacobian can take. */
export function floatingPaths(paths: readonly string[], tree: unknown): string[] {
  return paths.filter((p) => {
    const leaf = getAtPath(tree, parsePath(p));
    return isNdArray(leaf) && isFloatingPoint(dataTypeOfArray(leaf.data as never));
  });
}

/** Sets an own, enumerable data property, never invoking setters such as `__proto__`. */
function define(obj: object, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

function shallowCopy(node: Container): Container {
  if (Array.isArray(node)) return node.slice();
  const copy = Object.create(Object.getPrototypeOf(node) as object | null) as Record<string, unknown>;
  for (const k of Object.keys(node)) define(copy, k, node[k]);
  return copy;
}

/** Copy-on-write: a new tree in which the leaf at `segments` is `value`; every object/array along the path is shallow-copied, everything else is shared. Throws invalidArgument naming the path if a container on the way is missing. */
export function withLeaf<T>(tree: T, segments: readonly Segment[], value: unknown): T {
  requireConcrete(segments, "setting a leaf");
  const set = (node: unknown, depth: number): unknown => {
    if (depth === segments.length) return value;
    const s = segments[depth]!;
    const fail = (what: string): never => {
      const where = depth === 0 ? "the root" : quote(formatPath(segments.slice(0, depth)));
      throw invalidArgument(`cannot set ${quote(formatPath(segments))}: ${where} ${what}`);
    };
    if (node === undefined) fail("is missing");
    if (s.kind === "index") {
      if (!Array.isArray(node)) fail("is not a list");
      const list = node as unknown[];
      if (!Object.hasOwn(list, s.index)) fail(`has no element ${s.index} (length ${list.length})`);
    } else if (!isPlainObject(node)) {
      fail("is not a message or map");
    }
    const copy = shallowCopy(node as Container);
    const next = set(child(node, s), depth + 1);
    define(copy, String(s.kind === "index" ? s.index : name(s)), next);
    return copy;
  };
  return set(tree, 0) as T;
}

/** Whether a concrete path matches a pattern (same length; field=field by name; index matches index or anyIndex; key matches key or anyKey). */
export function matchesPattern(concrete: readonly Segment[], pattern: readonly Segment[]): boolean {
  return (
    concrete.length === pattern.length &&
    pattern.every((p, i) => {
      const c = concrete[i]!;
      switch (p.kind) {
        case "field":
          return c.kind === "field" && c.name === p.name;
        case "index":
          return c.kind === "index" && c.index === p.index;
        case "key":
          return c.kind === "key" && c.key === p.key;
        case "anyIndex":
          return c.kind === "index" || c.kind === "anyIndex";
        case "anyKey":
          return c.kind === "key" || c.kind === "anyKey";
      }
    })
  );
}

/** All concrete paths in `tree` matching `pattern` whose leaf exists, in tree order (array order; object key insertion order). */
// (JS own-key order: integer-like keys first, ascending, then the others in insertion order.)
export function expandPattern(tree: unknown, pattern: readonly Segment[]): Segment[][] {
  const out: Segment[][] = [];
  const walk = (node: unknown, depth: number, prefix: Segment[]): void => {
    if (node === undefined) return;
    if (depth === pattern.length) {
      out.push(prefix);
      return;
    }
    const p = pattern[depth]!;
    let steps: Segment[];
    if (p.kind === "anyIndex") {
      steps = Array.isArray(node) ? Array.from(node.keys(), (index) => ({ kind: "index", index })) : [];
    } else if (p.kind === "anyKey") {
      steps = isPlainObject(node) ? Object.keys(node).map((key) => ({ kind: "key", key })) : [];
    } else {
      steps = [{ ...p }];
    }
    for (const s of steps) walk(child(node, s), depth + 1, [...prefix, s]);
  };
  walk(tree, 0, []);
  return out;
}

/** How many paths expandPattern(tree, pattern) gives, without making them: it runs once per evaluation. */
export function countMatches(tree: unknown, pattern: readonly Segment[], depth = 0): number {
  if (tree === undefined) return 0;
  if (depth === pattern.length) return 1;
  const p = pattern[depth]!;
  let count = 0;
  if (p.kind === "anyIndex") {
    if (Array.isArray(tree)) for (let i = 0; i < tree.length; i++) count += countMatches(Object.hasOwn(tree, i) ? tree[i] : undefined, pattern, depth + 1);
  } else if (p.kind === "anyKey") {
    if (isPlainObject(tree)) for (const key in tree) if (Object.hasOwn(tree, key)) count += countMatches(tree[key], pattern, depth + 1);
  } else count = countMatches(child(tree, p), pattern, depth + 1);
  return count;
}
