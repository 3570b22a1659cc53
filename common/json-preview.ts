/**
 * The start of a value's JSON text, as JSON.stringify writes it, written no further than a message
 * needs. Messages show 40 to 100 characters of a caller's value, and JSON.stringify of a list of
 * millions of numbers, only to cut it, held the event loop for seconds (a 6 MB body: 2 s).
 */

/** How much of a value's JSON a preview writes; past it, its length is not known (nor worked out). */
export const PREVIEW_LIMIT = 65_536;

/** Deeper than this, a preview stops (it recurses; JSON.parse'd bodies may nest 100 000 deep). */
const PREVIEW_DEPTH = 200;

export interface JsonPreview {
  /** The JSON text, cut somewhere past `PREVIEW_LIMIT` characters when not complete. */
  text: string;
  /** Whether `text` is the whole of the value's JSON (then at most PREVIEW_LIMIT characters). */
  complete: boolean;
}

/**
 * `value`'s JSON text up to PREVIEW_LIMIT characters; undefined where JSON has none (undefined, a
 * function). Non-finite numbers are `null` as JSON.stringify writes them, or with `literalNonFinite`
 * `Infinity`, `-Infinity` and `NaN` (what a caller's Python sent).
 */
export function jsonPreview(value: unknown, { literalNonFinite = false } = {}): JsonPreview | undefined {
  const parts: string[] = [];
  let length = 0;
  let cut = false;
  const put = (s: string) => {
    parts.push(s);
    length += s.length;
  };
  const full = () => cut || length > PREVIEW_LIMIT;
  /** Writes `v` (false where JSON.stringify writes nothing for it: left out of an object, null in a list). */
  const write = (v: unknown, key: string, depth: number): boolean => {
    if (v !== null && typeof v === "object" && typeof (v as { toJSON?: unknown }).toJSON === "function") v = (v as { toJSON(key: string): unknown }).toJSON(key);
    switch (typeof v) {
      case "string":
        // Only as much of a long string as can be shown (its escapes take at least a character each).
        put(JSON.stringify(v.length > PREVIEW_LIMIT - length ? v.slice(0, PREVIEW_LIMIT - length + 1) : v));
        return true;
      case "number":
        put(Number.isFinite(v) || literalNonFinite ? String(v) : "null");
        return true;
      case "boolean":
      case "bigint":
        put(String(v));
        return true;
      case "object":
        if (v === null) put("null");
        else if (depth >= PREVIEW_DEPTH) cut = true;
        else if (Array.isArray(v)) {
          put("[");
          for (let i = 0; i < v.length && !full(); i++) {
            if (i > 0) put(",");
            if (!write(v[i], String(i), depth + 1)) put("null");
          }
          put("]");
        } else {
          put("{");
          let first = true;
          for (const k in v) {
            if (full()) break;
            if (!Object.hasOwn(v, k)) continue;
            const item = (v as Record<string, unknown>)[k];
            if (item === undefined || typeof item === "function" || typeof item === "symbol") continue;
            put(`${first ? "" : ","}${JSON.stringify(k.length > PREVIEW_LIMIT ? k.slice(0, PREVIEW_LIMIT + 1) : k)}:`);
            first = false;
            write(item, k, depth + 1);
          }
          put("}");
        }
        return true;
      default:
        return false; // undefined, a function, a symbol
    }
  };
  if (!write(value, "", 0)) return undefined;
  const text = parts.join("");
  return { text, complete: !full() };
}
