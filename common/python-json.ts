/**
 * JSON as Python's `json` module reads it: with the literals `NaN`, `Infinity` and `-Infinity`,
 * which its `json.dumps` writes for non-finite floats (FastAPI reads bodies with `json.loads`).
 * Standard JSON is parsed as it is; only text that JSON.parse refuses is scanned for the literals.
 */
import { randomUUID } from "node:crypto";

// A marker no caller's string can hold: it carries a random id of this process.
const MARK = `\u0000python-literal:${randomUUID()}:`;
const LITERALS: Readonly<Record<string, number>> = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };
const LITERAL_AT = /-?Infinity|NaN/y;

/** JSON.parse, taking Python's non-finite literals too; JSON.parse's error where the text has none. */
export function parsePythonJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const marked = markLiterals(text);
    if (marked === undefined) throw e;
    try {
      return JSON.parse(marked, (_key, value: unknown) => (typeof value === "string" && value.startsWith(MARK) ? LITERALS[value.slice(MARK.length)] : value));
    } catch {
      throw e; // positions in the caller's text, not the marked one's
    }
  }
}

/** `text` with each literal outside strings made a marked string; undefined where there is none. */
function markLiterals(text: string): string | undefined {
  const parts: string[] = [];
  let from = 0;
  for (let at = 0; at < text.length; at++) {
    const c = text[at];
    if (c === '"') {
      // Past the string: a backslash takes the next character as it is.
      for (at++; at < text.length && text[at] !== '"'; at++) if (text[at] === "\\") at++;
      continue;
    }
    if (c !== "N" && c !== "I" && c !== "-") continue;
    LITERAL_AT.lastIndex = at;
    const literal = LITERAL_AT.exec(text)?.[0];
    if (literal === undefined) continue;
    parts.push(text.slice(from, at), JSON.stringify(MARK + literal));
    from = at += literal.length;
    at--;
  }
  return parts.length === 0 ? undefined : parts.join("") + text.slice(from);
}
