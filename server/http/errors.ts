/**
 * HTTP answers for errors, as tesseract-core's REST API gives them: bad input is 422 with
 * `{"detail": [{"type", "loc", "msg", "input"}]}` (`loc` starts with "body" and follows the request's
 * JSON, as FastAPI's validation errors do), a failure of the Tesseract is 500 with a text body, and
 * the other gRPC codes map to the HTTP status that says the same.
 */
import { boundedDetails, Code, invalidArgument, jsonPreview, previewLength, PydanticKind, runtimeValidationOf, wholeCharacters, type TesseractError } from "../../common/errors";
import { plural } from "../../common/plural";
import { MAX_DEPTH, nestedDeeper } from "../../common/nesting";
import { withNumpyDtypes } from "../../common/numpy-arrays";

export type Loc = (string | number)[];

/** One entry of a 422 answer: what tesseract-core's SDK turns back into a pydantic ValidationError. */
export interface DetailEntry {
  type: string;
  loc: Loc;
  msg: string;
  input?: unknown;
  /** What the type's message template needs (value_error: `error`; json_invalid: `error`). */
  ctx?: Record<string, unknown>;
}

/**
 * A `value_error` entry as pydantic writes one: msg "Value error, <message>" and ctx.error. tesseract-core's
 * SDK raises a pydantic ValidationError from a 422's entries — its types must be pydantic's (a JSON-schema
 * keyword such as "minItems" made it fail with KeyError), and it takes a value error's text from
 * ctx.error or from msg after "Value error, " (without that prefix, users read "Value error, " alone).
 */
export function valueError(loc: Loc, message: string, input?: unknown): DetailEntry {
  const error = boundedDetails(message);
  return { type: "value_error", loc, msg: `Value error, ${error}`, ...(input === undefined ? {} : { input }), ctx: { error } };
}

/** The most entries a 422 answer lists; past them, one more entry counts the rest. */
export const MAX_DETAIL_ENTRIES = 100;

/** The last entry of a 422 answer with more errors than it lists. */
export function moreErrors(count: number): DetailEntry {
  return valueError(["body"], `${plural(count, "more error")} not listed: the first ${MAX_DETAIL_ENTRIES} are`);
}

/**
 * A 422's entries: those of the first MAX_DETAIL_ENTRIES errors, and one that counts the rest. pydantic lists
 * every error: a 2.3 MB body of 200 000 keys no request has was answered with 18 MB of entries, in
 * 1.7 s of the event loop.
 */
export function firstEntries(entries: readonly DetailEntry[]): DetailEntry[] {
  const more = entries.length - MAX_DETAIL_ENTRIES;
  return more > 0 ? [...entries.slice(0, MAX_DETAIL_ENTRIES), moreErrors(more)] : [...entries];
}

/** pydantic's msg for a `missing` entry. */
export const MISSING_MSG = "Field required";

/** Longest quoted `input` text in a 422 entry. */
const MAX_INPUT = 100;

/** The caller's value, shortened: a 422 answer never echoes a big input back (nor writes all of it to cut it). */
export function shortInput(value: unknown): unknown {
  if (value === undefined) return undefined;
  const preview = jsonPreview(value);
  if (preview === undefined) return undefined;
  if (preview.complete && preview.text.length <= MAX_INPUT) return value;
  return `${wholeCharacters(preview.text, MAX_INPUT)}… (${previewLength(preview)} characters)`;
}

/** The request fields a message may start with, beside the input message's own fields. */
const ENVELOPE_FIELDS = new Set(["inputs", "jac_inputs", "jac_outputs", "jvp_inputs", "jvp_outputs", "vjp_inputs", "vjp_outputs", "tangent_vector", "cotangent_vector", "options"]);

/**
 * Where an INVALID_ARGUMENT message points: ["query", name] for a query parameter; its leading path,
 * under "body" when it names a request field and under ["body", "inputs"] when it names an input
 * field; ["body"] when it names neither.
 */
export function locOf(message: string, inputFields: ReadonlySet<string>): Loc {
  // A query parameter's refusal (options.ts), where FastAPI puts it.
  const parameter = /^query parameter ("(?:[^"\\]|\\.)*"|\S+?)(?=[\s:…]|$)/.exec(message);
  if (parameter) return ["query", parameter[1].startsWith('"') ? (JSON.parse(parameter[1]) as string) : parameter[1]];
  const items = leadingPath(message);
  if (!items) return ["body"];
  if (ENVELOPE_FIELDS.has(String(items[0]))) return ["body", ...items];
  if (inputFields.has(String(items[0]))) return ["body", "inputs", ...items];
  return ["body"];
}

const isNameStart = (c: string | undefined) => c !== undefined && ((c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_");
const isNameChar = (c: string | undefined) => isNameStart(c) || (c !== undefined && c >= "0" && c <= "9");
const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";

/**
 * The path a message starts with (`mesh.points has …`, `tangent_vector.{a\}b}: …`), as loc items:
 * names, `[i]` indices and `{key}` map keys (backslash escapes), joined by dots, maybe an element's
 * index (`a[0, 2]`, left out), and followed by a space, a colon or the end; undefined when the message starts otherwise. Read in one pass: a
 * message may hold a caller's key of megabytes, and a regular expression with an alternation per
 * key character overflowed its backtracking stack on one of 9 MB (a 500 for a body's mistake).
 */
export function leadingPath(message: string): Loc | undefined {
  const items: Loc = [];
  let at = 0;
  const name = (): boolean => {
    if (!isNameStart(message[at])) return false;
    const start = at;
    while (isNameChar(message[++at]));
    items.push(message.slice(start, at));
    return true;
  };
  if (!name()) return undefined;
  while (message[at] === ".") {
    at++;
    if (message[at] === "[") {
      const start = ++at;
      while (isDigit(message[at])) at++;
      if (at === start || message[at] !== "]") return undefined;
      items.push(Number(message.slice(start, at++)));
    } else if (message[at] === "{") {
      const parts: string[] = [];
      let from = ++at;
      // A vector's key is itself a path, braces and all (`cotangent_vector.{named.{k}}`): balanced
      // braces stay in the key (the loc stopped at the body).
      for (let depth = 0; message[at] !== "}" || depth > 0; at++) {
        const c = message[at];
        if (c === undefined) return undefined;
        if (c === "{") depth++;
        else if (c === "}") depth--;
        if (c !== "\\") continue;
        // An escape takes the next character as it is (not a line break, as `.` would not).
        if (message[at + 1] === undefined || /[\n\r\u2028\u2029]/.test(message[at + 1])) return undefined;
        parts.push(message.slice(from, at));
        from = ++at;
      }
      parts.push(message.slice(from, at++));
      items.push(parts.join(""));
    } else if (!name()) return undefined;
  }
  // A key that is no plain name, quoted after the path (`inputs: "ä" is not a field of Inputs`): one
  // more item, unless cut short (`"kkk"… (5000 characters)`); the loc stopped at its object.
  if (message.startsWith(': "', at)) {
    const end = closingQuote(message, at + 2);
    if (end !== undefined && message[end + 1] !== "…") {
      items.push(JSON.parse(message.slice(at + 2, end + 1)) as string);
      at = end + 1;
    }
  }
  // An element of the array the path names (`a[0]`, `mesh.points[3, 1]`): the loc is the array's, as pydantic's for an array.
  if (message[at] === "[") {
    const start = ++at;
    while (isDigit(message[at]) || message[at] === "," || message[at] === " ") at++;
    if (at === start || message[at++] !== "]") return undefined;
  }
  return at === message.length || /[\s:]/.test(message[at]) ? items : undefined;
}

/** The index of the quote that ends the JSON string opening at `open`; undefined where it does not end. */
function closingQuote(text: string, open: number): number | undefined {
  for (let at = open + 1; at < text.length; at++) {
    if (text[at] === "\\") at++;
    else if (text[at] === '"') return at;
  }
  return undefined;
}

/**
 * The caller's value at `loc` in the request (its body or query), as FastAPI quotes it in `input`;
 * for a missing field, the object that lacks it (pydantic's). Undefined where `loc` is the whole
 * body (a failed evaluation, not a value of the caller's) or names nothing there.
 */
function inputAt(loc: Loc, missing: boolean, request: { body?: unknown; query?: unknown }): unknown {
  const [where, ...keys] = loc;
  if (keys.length === 0 || (where !== "body" && where !== "query")) return undefined;
  let value: unknown = where === "body" ? request.body : request.query;
  for (const key of missing ? keys.slice(0, -1) : keys) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return shortInput(value);
}

/** The one entry of a 422 answer for an INVALID_ARGUMENT error, located by its message, quoting the caller's value there. */
export function detailOf(error: TesseractError, inputFields: ReadonlySet<string>, request: { body?: unknown; query?: unknown } = {}): DetailEntry[] {
  // A bridged runtime's own entries, as it wrote them, where it refused the caller's inputs: their loc
  // is in the same request body. Its refusal of a perturbed point (FAILED_PRECONDITION) is no fault
  // of the inputs at that loc: the message says which evaluation failed.
  const runtime = error.code === Code.INVALID_ARGUMENT ? runtimeValidationOf(error) : undefined;
  if (runtime) return runtime as unknown as DetailEntry[];
  const loc = locOf(error.message, inputFields);
  // pydantic's type; a missing key with pydantic's msg too, "Field required" (its loc names the key,
  // its input the object that lacks it, as pydantic's), an extra one with our message (which lists the keys taken).
  if (error.cause instanceof PydanticKind) {
    const missing = error.cause.kind === "missing";
    const input = inputAt(loc, missing, request);
    return [{ type: error.cause.kind, loc, msg: missing ? MISSING_MSG : boundedDetails(error.message), ...(input === undefined ? {} : { input }) }];
  }
  return [valueError(loc, withNumpyDtypes(error.message), inputAt(loc, false, request))];
}

/** The HTTP status for a gRPC code; RESOURCE_EXHAUSTED is 413 (too big) unless `busy` (429, a full queue). */
export function httpStatusOf(code: number, busy = false): number {
  switch (code) {
    case Code.INVALID_ARGUMENT:
    case Code.FAILED_PRECONDITION:
      // The second: the request's differences cannot be taken at its inputs (a step leaving the
      // domain, NaN at a perturbed point) — the caller's to change, not the server's failure.
      return 422;
    case Code.UNAUTHENTICATED:
      return 401;
    case Code.UNIMPLEMENTED:
      return 404;
    case Code.RESOURCE_EXHAUSTED:
      return busy ? 429 : 413;
    case Code.UNAVAILABLE:
      return 503;
    case Code.DEADLINE_EXCEEDED:
      return 504;
    case Code.CANCELLED:
      return 499;
    default:
      // UNKNOWN (apply failed), INTERNAL (a bug): the server's failure.
      return 500;
  }
}

/** Refuses a body nested more than MAX_DEPTH deep (as deep as the gRPC side decodes), before anything recurses over it (common/nesting.ts). */
export function checkBodyDepth(body: unknown): void {
  if (nestedDeeper(body)) throw invalidArgument(`the body is nested more than ${MAX_DEPTH} deep`);
}
