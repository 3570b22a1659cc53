/**
 * JSON as Python's `json` module reads it: with the literals `NaN`, `Infinity` and `-Infinity`,
 * which its `json.dumps` writes for non-finite floats (FastAPI reads bodies with `json.loads`).
 * Standard JSON is parsed by JSON.parse; only text it refuses is scanned for the literals, here.
 */
import { randomUUID } from "node:crypto";

// A marker no caller's string can hold: it carries a random id of this process.
const MARK = `\u0000python-literal:${randomUUID()}:`;
const LITERALS: Readonly<Record<string, number>> = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };
const LITERAL_AT = /Infinity|NaN/y;

/**
 * `text`, which JSON.parse refused with `error`, read with Python's literals; `error` where it
 * still is no JSON. (A step of its own: the refusal may have taken as long as a whole parse.)
 */
export function parsePythonLiterals(text: string, error: unknown): unknown {
  const marked = markLiterals(text);
  if (marked === undefined) throw error;
  let value: unknown;
  try {
    value = JSON.parse(marked);
  } catch {
    throw error; // positions in the caller's text, not the marked one's
  }
  // A literal where a key belongs ({NaN: 1}) is no JSON, as Python's json reads it (it was taken,
  // and the key answered as this process's marker).
  if (!restoreLiterals(value)) throw error;
  return literalOf(value) ?? value;
}

const literalOf = (v: unknown) => (typeof v === "string" && v.startsWith(MARK) ? LITERALS[v.slice(MARK.length)] : undefined);

/**
 * Puts the numbers back for the marked strings, in place, in one walk without recursion; false where
 * a key is marked. (A JSON.parse reviver does it too, but calls back for every value: 1.8 s for a
 * body of 3 million numbers, where the walk takes a tenth of it.)
 */
function restoreLiterals(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (Array.isArray(item)) {
      for (let i = 0; i < item.length; i++) {
        const v: unknown = item[i];
        if (typeof v === "object" && v !== null) stack.push(v);
        else {
          const n = literalOf(v);
          if (n !== undefined) item[i] = n;
        }
      }
    } else if (typeof item === "object" && item !== null) {
      const record = item as Record<string, unknown>;
      for (const key in record) {
        if (key.startsWith(MARK)) return false;
        const v = record[key];
        if (typeof v === "object" && v !== null) stack.push(v);
        else {
          const n = literalOf(v);
          if (n !== undefined) record[key] = n;
        }
      }
    }
  }
  return true;
}

/** A run of characters that start neither a string nor a literal (a class loop: no backtracking). */
const PLAIN_RUN = /[^"NI]*/y;

/**
 * `text` with each literal outside strings made a marked string; undefined where there is none.
 * Skips what cannot hold one with a regular expression and strings with indexOf: a character at a
 * time in JavaScript took 0.3-0.6 s for 60 MB.
 */
function markLiterals(text: string): string | undefined {
  const parts: string[] = [];
  let from = 0;
  for (let at = 0; at < text.length; ) {
    PLAIN_RUN.lastIndex = at;
    PLAIN_RUN.exec(text);
    at = PLAIN_RUN.lastIndex;
    if (at >= text.length) break;
    if (text[at] === '"') {
      at = stringEnd(text, at);
      continue;
    }
    LITERAL_AT.lastIndex = at;
    const literal = LITERAL_AT.exec(text)?.[0];
    if (literal === undefined) {
      at++;
      continue;
    }
    // A minus before Infinity is the literal's.
    const start = literal === "Infinity" && text[at - 1] === "-" && at - 1 >= from ? at - 1 : at;
    parts.push(text.slice(from, start), JSON.stringify(MARK + text.slice(start, at + literal.length)));
    from = at += literal.length;
  }
  return parts.length === 0 ? undefined : parts.join("") + text.slice(from);
}

/** Where the string opening at `open` ends (after its closing quote: one not escaped by an odd run of backslashes), or the text's end. */
function stringEnd(text: string, open: number): number {
  for (let at = open + 1; ; ) {
    const quote = text.indexOf('"', at);
    if (quote < 0) return text.length;
    let backslashes = 0;
    while (text[quote - 1 - backslashes] === "\\") backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    at = quote + 1;
  }
}
