/**
 * One error type for everything a caller can be told, modelled on connect-es' ConnectError:
 * a gRPC status code and a message meant for the caller. The numbers are gRPC's own, so the
 * transport maps them one to one; nothing in here depends on gRPC.
 */
import { inspect, types } from "node:util";
export enum Code {
  /** The call was cancelled, usually by the caller. */
  CANCELLED = 1,
  /** Something went wrong that the caller could not have caused. */
  UNKNOWN = 2,
  /** The request is malformed: a bad path, tensor, option or input value. */
  INVALID_ARGUMENT = 3,
  /** The deadline passed before the work finished. */
  DEADLINE_EXCEEDED = 4,
  /** A size or quota limit would be exceeded. */
  RESOURCE_EXHAUSTED = 8,
  /** The inputs are well-formed but the Tesseract cannot evaluate them (e.g. apply failed). */
  FAILED_PRECONDITION = 9,
  /** The Tesseract does not offer this endpoint. */
  UNIMPLEMENTED = 12,
  /** A bug on the server side; details are logged, not sent. */
  INTERNAL = 13,
  /** The server is shutting down or a dependency is unreachable; retrying may help. */
  UNAVAILABLE = 14,
  /** The call carries no valid credentials. */
  UNAUTHENTICATED = 16,
}

/** Marks TesseractErrors of every copy of this package (a registry symbol is the same in all). */
const BRAND = Symbol.for("tesseract-grpc.TesseractError");

export class TesseractError extends Error {
  override name = "TesseractError";
  readonly [BRAND] = true;
  constructor(
    readonly code: Code,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /**
   * A Tesseract module may load its own copy of tesseract-grpc (a dependency of its project, npm
   * link, a global CLI): its `invalidArgument(...)` is then another class's instance, which plain
   * `instanceof` did not know, and the caller got INTERNAL. Recognised by the brand instead.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    try {
      return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
    } catch {
      return false; // a Proxy whose traps throw, thrown by a Tesseract: no error of ours
    }
  }
}

/**
 * A tesseract-core runtime's own 422 entries (FastAPI's `detail` list), carried as the cause of the
 * INVALID_ARGUMENT the bridge raises, so that the REST API answers them as the runtime wrote them.
 */
export class RuntimeValidation extends Error {
  override name = "RuntimeValidation";
  constructor(readonly entries: readonly Record<string, unknown>[]) {
    super("the runtime's validation errors");
  }
}

/** The runtime's 422 entries somewhere in `e`'s chain of causes, if any. */
export function runtimeValidationOf(e: unknown): readonly Record<string, unknown>[] | undefined {
  for (let at = e, depth = 0; at instanceof Error && depth < 8; at = at.cause, depth++) if (at instanceof RuntimeValidation) return at.entries;
  return undefined;
}

/**
 * What pydantic would call a refusal, where it has a type of its own ("missing", "extra_forbidden"),
 * carried as its cause so that the REST API's 422 entry has that type, as tesseract-core's has (a
 * client reading `errors()[i]["type"]` got "value_error").
 */
export class PydanticKind extends Error {
  override name = "PydanticKind";
  constructor(readonly kind: "missing" | "extra_forbidden") {
    super(kind);
  }
}

/** An INVALID_ARGUMENT that pydantic would report as `kind`. */
export function refusedAs(kind: PydanticKind["kind"], message: string): TesseractError {
  return new TesseractError(Code.INVALID_ARGUMENT, message, { cause: new PydanticKind(kind) });
}

/** Shorthand for the most common error: bad input, with a message naming the field or path. */
export function invalidArgument(message: string): TesseractError {
  return new TesseractError(Code.INVALID_ARGUMENT, message);
}

export function isTesseractError(e: unknown): e is TesseractError {
  return e instanceof TesseractError;
}

/**
 * What a thrown value says: an Error's message, a string as it is, an object's string `message`
 * (`throw { message: "…" }` read "[object Object]"), else the value inspected, clipped. Never throws:
 * a Tesseract may throw anything, a `message` getter that throws or a Proxy whose traps do (reading
 * it threw again, and the caller got INTERNAL with no word of the evaluation).
 */
export function thrownMessage(e: unknown): string {
  return messageOf(e, true);
}

function messageOf(e: unknown, again: boolean): string {
  if (typeof e === "string") return e;
  let message: unknown;
  try {
    message = e !== null && (typeof e === "object" || typeof e === "function") ? (e as { message?: unknown }).message : undefined;
  } catch (failure) {
    // An Error inspected prints its stack: "an Error" says enough.
    return `${types.isNativeError(e) ? "an Error" : inspected(e)} (reading its message threw${again ? `: ${messageOf(failure, false)}` : ""})`;
  }
  if (typeof message === "string") return message;
  // An Error whose message is no string: that value (inspecting the Error would print its stack).
  return inspected(message !== undefined && types.isNativeError(e) ? message : e);
}

/** A value inspected, clipped; inspection runs no getter or Proxy trap, but a custom inspect method may throw. */
function inspected(value: unknown): string {
  try {
    return clip(inspect(value, { depth: 2, breakLength: Infinity }));
  } catch {
    return "a value that cannot be shown";
  }
}

/**
 * A value a Tesseract threw, as the cause of the error it becomes: only a native Error (not a
 * Proxy), which `instanceof` and the loggers can look at without running the Tesseract's code.
 */
export function thrownCause(e: unknown): Error | undefined {
  return types.isNativeError(e) && !types.isProxy(e) ? e : undefined;
}

/** How much caller-supplied text an error message repeats. */
export const QUOTE_LIMIT = 200;

/** Caller text cut to QUOTE_LIMIT characters, with the original length when cut: no message repeats it without limit. */
export function clip(text: string): string {
  return text.length <= QUOTE_LIMIT ? text : `${wholeCharacters(text, QUOTE_LIMIT)}… (${text.length} characters)`;
}

/** The first `units` UTF-16 units of `text`, less a lone half of a pair cut there (an emoji cut in two left a lone surrogate, which strict JSON decoders refuse). */
export function wholeCharacters(text: string, units: number): string {
  const code = text.charCodeAt(units - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? units - 1 : units);
}

/**
 * Text from elsewhere (a runtime's answer, a server's message) with its control characters escaped
 * (\u001b), newlines and tabs kept: printed raw, an ESC sequence would drive the reader's terminal.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Caller text in double quotes, escaped as JSON (lone surrogates included) and clipped to
 * QUOTE_LIMIT characters as escaped (200 control characters escape to 1 200: the quote, its length
 * and the rest of the message went past the status cap).
 */
export function quote(text: string): string {
  const whole = JSON.stringify(text.length <= QUOTE_LIMIT ? text : wholeCharacters(text, QUOTE_LIMIT));
  if (whole.length <= QUOTE_LIMIT + 2) return text.length <= QUOTE_LIMIT ? whole : `${whole}… (${text.length} characters)`;
  // Escapes make it long: as many characters as fit escaped, none cut in the middle of its escape.
  let shown = "";
  for (const c of text) {
    const escaped = JSON.stringify(c).slice(1, -1);
    if (shown.length + escaped.length > QUOTE_LIMIT) break;
    shown += escaped;
  }
  return `"${shown}"… (${text.length} characters)`;
}

/** A caller's field, key or parameter name in a message: as it is when a plain identifier, else quoted and clipped. */
export function nameOf(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name) ? name : quote(name);
}

/** A caller's key below `where` in a message: `where.key` for a plain identifier, else `where: "key"` quoted and clipped. */
export function keyAt(where: string, key: string): string {
  const name = nameOf(key);
  return name === key ? `${where}.${key}` : `${where}: ${name}`;
}

/*
 * The start of a value's JSON text, as JSON.stringify writes it, written no further than a message
 * needs (kept in this module: a copy of it alone, another copy of the package's, must load). Messages
 * show 40 to 100 characters of a caller's value, and JSON.stringify of a list of millions of numbers,
 * only to cut it, held the event loop for seconds (a 6 MB body: 2 s).
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

/** How much of a caller's non-string JSON value (a list, an object) a message shows. */
const SHOWN_LIMIT = 40;

/**
 * A caller's JSON value in a message: a string quoted (`quote`), anything else as JSON cut to
 * SHOWN_LIMIT characters with its length (cut inside a string, a value read `"xxxx` with no end);
 * only the start of a big value is written (jsonPreview).
 */
export function shown(value: unknown): string {
  if (typeof value === "string") return quote(value);
  // JSON has no infinities: a JSON.parse'd one was a literal beyond FP64's range (JSON.stringify shows null).
  if (typeof value === "number" && !Number.isFinite(value) && !Number.isNaN(value)) return `${value} (a number beyond ±1.8e308)`;
  // Infinities inside a list or an object too (as numbers, not the null JSON.stringify writes).
  const preview = jsonPreview(value, { literalNonFinite: true });
  if (preview === undefined) return String(value);
  return preview.complete && preview.text.length <= SHOWN_LIMIT ? preview.text : `${wholeCharacters(preview.text, SHOWN_LIMIT)}… (${previewLength(preview)} characters)`;
}

/** A preview's length for a message: exact when complete, else a lower bound. */
export function previewLength({ text, complete }: JsonPreview): string {
  return complete ? String(text.length) : `more than ${Math.min(text.length, PREVIEW_LIMIT)}`;
}

/** Most UTF-8 bytes of a status message (percent-encoded on the wire: at most three times as many). */
export const MAX_DETAILS_BYTES = 1024;
const CUT_MARK = "… (message cut)";

/**
 * A message safe to send whatever it quotes: lone surrogates replaced (grpc-js percent-encodes status
 * messages with encodeURI, which throws on one) and cut to MAX_DETAILS_BYTES of UTF-8 (HTTP/2 stacks
 * drop a connection over a long header; gRPC C-core refuses more than 16 KiB).
 */
export function boundedDetails(details: string): string {
  const text = String(details).replace(/\p{Cs}/gu, "\uFFFD");
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= MAX_DETAILS_BYTES) return text;
  // A cut inside a character decodes to one U+FFFD at the end: drop it.
  return bytes.subarray(0, MAX_DETAILS_BYTES - Buffer.byteLength(CUT_MARK)).toString("utf8").replace(/\uFFFD$/, "") + CUT_MARK;
}

/** Names for a message (paths, keys): at most `max` of them, each clipped, then how many more. */
export function listed(names: readonly string[], max = 20): string {
  if (names.length === 0) return "(none)";
  const shown = names.slice(0, max).map(clip).join(", ");
  return names.length > max ? `${shown}, … and ${names.length - max} more` : shown;
}
