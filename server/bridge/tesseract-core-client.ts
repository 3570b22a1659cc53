/**
 * HTTP calls to tesseract-core runtimes (runtime-replicas.ts: undici pools, keep-alive connections,
 * AbortSignal): `POST /apply` with the inputs as tesseract-core JSON, arrays as base64 array
 * objects, answered in kind (`Accept: application/json+base64`), and `POST /abstract_eval` with
 * arrays as `{"shape", "dtype"}`. Calls go to the replica that would answer soonest (RuntimeReplicas.order); a call that cannot reach
 * its runtime (connection refused or reset) goes to the next (both endpoints are idempotent), and
 * when none could be reached, to those the host names resolve to now. Statuses: 422 →
 * INVALID_ARGUMENT with the detail's location and message; any other failure → UNKNOWN naming the
 * runtime and the status; no runtime reachable → UNAVAILABLE; an aborted call → the abort's reason
 * (the per-evaluation timeout's DEADLINE_EXCEEDED, the caller's cancellation), naming the request.
 * Answers are cast to the output message's declared datatypes (schema/output-casting.ts).
 */
import { setTimeout } from "node:timers/promises";
import * as protobuf from "protobufjs";
import { clip, invalidArgument, printable, quote, Code, isTesseractError, PydanticKind, RuntimeValidation, TesseractError } from "../../common/errors";
import { exactJson } from "../../common/exact-json";
import { parsePythonLiterals } from "../../common/python-json";
import { datatypeOfDtype, NUMPY_DTYPES } from "../../common/numpy-arrays";
import { isPlainObject } from "../../common/records";
import type { JobApply, RequestTimeout } from "../eval/concurrent";
import { withAbortingTimeout } from "../eval/timeout";
import type { InputLeaf } from "../eval/input-leaf";
import { castToDeclared, declaredDatatype, requireFields } from "../schema/output-casting";
import { inputsAny, isTensorField, messageJson, type EnumLiterals } from "../schema/json-messages";
import { JsonLeafReader } from "../schema/json-leaves";
import { fieldOfKey, jsonKey } from "../schema/json-keys";
import { formatPath, type Segment } from "../../common/paths";
import type { RequiredFields } from "../schema/openapi-proto";
import type { MessageSchema } from "../schema/schema";
import type { AbstractEvalAnswer, AbstractOutput } from "../tesseract";
import { ApplyBodies } from "./apply-bodies";
import { failureReason, notReached, type Replica, type ReplicaResponse, type RuntimeReplicas } from "./runtime-replicas";
import { MAX_DEPTH, nestedDeeper } from "../../common/nesting";
import { deadlineOf } from "../eval/deadlines";

/**
 * Sends of an evaluation again after every runtime answered busy (503, 429): the first wait
 * (doubling, ±50 %: about 6 s in all before it fails), or the runtime's Retry-After when that is
 * longer, up to MAX_RETRY_AFTER_S (longer: UNAVAILABLE at once, saying so). No wait goes past the
 * call's deadline or the evaluation's timeout. (Four sends within 0.7 s failed one Jacobian in four
 * against a runtime shedding 30 % of its load.)
 */
const BUSY_RESENDS = 5;
const BUSY_WAIT_MS = 200;
const MAX_RETRY_AFTER_S = 30;

/** The error for a request that `signal` aborted: its reason's code, naming the request. */
function abortedError(signal: AbortSignal, request: string, cause: unknown): TesseractError {
  const reason: unknown = signal.reason;
  if (isTesseractError(reason)) return new TesseractError(reason.code, `${reason.message}; ${request} was aborted`, { cause });
  return new TesseractError(Code.CANCELLED, `${request} was cancelled`, { cause });
}

export class TesseractCoreClient {
  constructor(
    readonly replicas: RuntimeReplicas,
    private readonly inputs: MessageSchema,
    private readonly outputs: MessageSchema,
    private readonly enumLiterals: EnumLiterals,
    /** The fields each message's model requires (openapi-proto.ts). */
    private readonly requiredFields: RequiredFields = {},
    /** The required fields that may be null: unset, sent as null (openapi-proto.ts). */
    private readonly nullFields: RequiredFields = {},
  ) {}

  /** One evaluation: the inputs tree in, the outputs tree out, as if a gRPC Tesseract had returned it. */
  apply(tree: Record<string, unknown>, signal?: AbortSignal, timeout?: RequestTimeout): Promise<Record<string, unknown>> {
    return this.applyBody(exactJson({ inputs: this.inputsJson(tree, "base64") }), signal, undefined, timeout);
  }

  /** An inputs tree as tesseract-core's JSON, refused where it leaves out a field the runtime's schema requires (requireFields). */
  private inputsJson(tree: Record<string, unknown>, encoding: "base64" | "abstract"): Record<string, unknown> {
    const json = messageJson(this.inputs.type, tree, encoding, this.enumLiterals);
    requireFields(this.inputs.type, json, "inputs", this.requiredFields, this.nullFields);
    refuseNonFinite(json, "inputs");
    return json;
  }

  /** The evaluations of one job: its inputs encoded once, each evaluation's changes spliced in. */
  forJob(inputs: Record<string, unknown>, leaves: readonly InputLeaf[]): JobApply {
    const bodies = new ApplyBodies(this.inputs.type, this.inputsJson(inputs, "base64"), leaves);
    let reader: JsonLeafReader | undefined; // a job's differentiated outputs are the same in every answer
    return (perturbation, signal, only, timeout) => {
      if (only) reader ??= new JsonLeafReader(this.outputs.type, only, "outputs", this.requiredFields);
      return this.applyBody(bodies.body(perturbation), signal, only && reader, timeout);
    };
  }

  /** POST /apply: the outputs tree, or with `only`, a tree of just the leaves it reads. */
  private async applyBody(body: string, signal?: AbortSignal, only?: JsonLeafReader, timeout?: RequestTimeout): Promise<Record<string, unknown>> {
    const { text, url } = await this.post("apply", body, signal, timeout);
    return this.decodeOutputs(text, url, only);
  }

  /** The output shapes and datatypes for inputs whose tensors may be abstract ({ shape, datatype }), and the answer itself. */
  async abstractEval(tree: Record<string, unknown>, signal?: AbortSignal): Promise<AbstractEvalAnswer> {
    const body = exactJson({ inputs: this.inputsJson(tree, "abstract") });
    const { text, url } = await this.post("abstract_eval", body, signal);
    try {
      const answered = parseAnswer(text);
      return { outputs: abstractOutputs(this.outputs.type, answered, [], "outputs"), answered: answered as Record<string, unknown> };
    } catch (e) {
      const message = isTesseractError(e) || e instanceof SyntaxError ? e.message : String(e);
      throw new TesseractError(Code.UNKNOWN, `abstract_eval on ${url} answered outputs that do not match ${this.outputs.fullName}: ${clip(message)}`, { cause: e });
    }
  }

  /**
   * POSTs `body` to `/<endpoint>` of the next replica that can be reached; the answer's text on 2xx.
   * When every replica failed, the host names are resolved again and new replicas tried; when every
   * failure was one that passes (busy, or no runtime reached), it is sent again after a wait.
   * `timeout` (the per-evaluation timeout) bounds each request: one past it goes to the next replica
   * (a runtime that hangs), and when every replica let it pass, the evaluation is DEADLINE_EXCEEDED.
   */
  private async post(endpoint: string, body: string, signal?: AbortSignal, timeout?: RequestTimeout): Promise<{ text: string; url: string }> {
    let since: number | undefined; // when the first try failed (performance.now())
    for (let resend = 0; ; resend++) {
      const { answer, failures, busy, unreached, retryAfterS, timedOut } = await this.postOnce(endpoint, body, signal, timeout);
      if (answer) return answer;
      if (timedOut) {
        // Not sent again after a wait: the runtimes are slow or hang on these inputs; the requests are left to them (Replica.answerHead).
        const where = failures.length === 1 ? `; POST /${endpoint} on ${timedOut.replica} was aborted` : ` on any runtime (${failures.join("; ")})`;
        throw new TesseractError(Code.DEADLINE_EXCEEDED, `${timedOut.error.message}${where}`, { cause: timedOut.error });
      }
      since ??= performance.now();
      const { retryMs } = this.replicas;
      const leftMs = retryMs - (performance.now() - since);
      const unanswered = (why: string) => new TesseractError(Code.UNAVAILABLE, `no tesseract-core runtime answered POST /${endpoint} (${failures.join("; ") || this.replicas.describe()})${resend > 0 ? `, sent ${resend + 1} times` : ""}${why}`);
      const asked = retryAfterS === undefined ? "" : `; the runtime asked to retry after ${Math.ceil(retryAfterS)} s`;
      // Every runtime busy: sent again a few times, after a wait, before the whole request fails for
      // one evaluation (a Jacobian lost its work to one 503).
      const busyResend = busy && resend < BUSY_RESENDS;
      // No runtime reached (refused, a proxy's 502 or 503: a container restarting): sent again until
      // --runtime-retry-ms has passed. Nothing was computed, so nothing is computed twice.
      const restartResend = unreached && leftMs > 0;
      if (!busyResend && !restartResend) throw unanswered(unreached && retryMs > 0 ? `; none answered within --runtime-retry-ms (${retryMs} ms)` : asked);
      // Not waited for: a Retry-After longer than this server waits (six sends 30 s apart asked again
      // and again), or a wait that ends past the deadline (the call failed only when that came).
      if ((retryAfterS ?? 0) > MAX_RETRY_AFTER_S) throw unanswered(`${asked}, longer than this server waits (${MAX_RETRY_AFTER_S} s): retry later`);
      let waitMs = Math.max(BUSY_WAIT_MS * 2 ** Math.min(resend, BUSY_RESENDS - 1) * (0.5 + Math.random()), 1000 * (retryAfterS ?? 0));
      const deadline = deadlineOf(signal);
      // A runtime that named its time, or that is busy: a wait past the deadline fails now. A runtime
      // not reached may come back any time: waited for until the deadline, which then ends the call.
      if (restartResend && retryAfterS === undefined) {
        if (!busyResend) waitMs = Math.min(waitMs, leftMs); // the last try as the window ends
        this.replicas.unreachable(failures.join("; "));
      } else if (deadline !== undefined && Date.now() + waitMs >= deadline.at) {
        throw unanswered(`${asked || `; the next try would be in ${Math.ceil(waitMs)} ms`}, past ${deadline.what} (in ${Math.max(0, deadline.at - Date.now())} ms)`);
      }
      await setTimeout(waitMs, undefined, { signal }).catch(() => {
        throw abortedError(signal!, `POST /${endpoint}`, signal!.reason);
      });
    }
  }

  /**
   * One try on every replica (and on new ones, when names resolve elsewhere now). `busy`: every
   * failure was a busy answer (503, 429); `unreached`: every failure was one that passes, and one at
   * least said no runtime was reached (a refused connection, a proxy's 502 or 503).
   */
  private async postOnce(endpoint: string, body: string, signal?: AbortSignal, timeout?: RequestTimeout): Promise<{ answer?: { text: string; url: string }; failures: string[]; busy: boolean; unreached: boolean; retryAfterS?: number; timedOut?: { error: Error; replica: string } }> {
    const failures: string[] = [];
    let timedOut: { error: Error; replica: string } | undefined;
    let busy = true;
    let passing = true;
    let unreached = false;
    let retryAfterS: number | undefined;
    // A busy replica that named no time may take it again soon, whatever another asked.
    let soon = false;
    const tried = new Set<Replica>();
    // Each replica is timed by a first request before it is sent a burst (RuntimeReplicas.firstTiming).
    // Checked and sent in one turn: an await between them let a whole burst pass the check unsent.
    if (endpoint === "apply" && this.replicas.untimedBusy()) await this.replicas.firstTiming(signal);
    for (let round = 0; round < 2; round++) {
      for (const replica of this.replicas.order()) {
        if (tried.has(replica)) continue;
        tried.add(replica);
        let answer: ReplicaResponse;
        try {
          // Every apply is sent within a request slot (eval/concurrent.ts inSlot), which a request given
          // up on may keep while the runtime computes it; an abstract_eval takes none, and keeps none.
          const slotted = endpoint === "apply";
          answer = await (timeout ? withAbortingTimeout(timeout.ms, signal, (aborting) => replica.request("POST", endpoint, body, aborting, slotted), timeout.where) : replica.request("POST", endpoint, body, signal, slotted));
        } catch (e) {
          if (signal?.aborted) throw abortedError(signal, `POST /${endpoint} on ${replica.name}`, e);
          if (timeout && isTesseractError(e) && e.code === Code.DEADLINE_EXCEEDED) {
            // Past the per-evaluation timeout on this runtime (hung, or far slower than it should be):
            // the next replica gets it, and this one counts as at least that slow (RuntimeReplicas.order).
            failures.push(`${replica.name}: no answer within ${timeout.ms} ms`);
            timedOut ??= { error: e, replica: replica.name };
            replica.unansweredFor(timeout.ms);
            busy = false;
            passing = false;
            continue;
          }
          if (isTesseractError(e)) throw e; // it answered, too long or malformed: not a replica that is down
          // Not reached or reset: idempotent, the next replica gets it. Sent again after a wait only when
          // it reached no runtime: a connection closed under it twice (the replica resent it on a fresh
          // one) may be a runtime that crashes on these inputs, which eight sends would crash eight times.
          failures.push(`${replica.name}: ${failureReason(e)}`);
          busy = false;
          if (notReached(e)) unreached = true;
          else passing = false;
          this.replicas.failed(replica, e);
          continue;
        }
        this.replicas.answered(replica);
        // Busy or not ready (a proxy's 503, a rate limit's 429): another replica may take it, else UNAVAILABLE, which callers retry.
        if (answer.status === 503 || answer.status === 429) {
          failures.push(`${replica.name}: HTTP ${answer.status} ${clip(printable(answer.text.trim()))}`.trimEnd());
          if (answer.retryAfterS !== undefined) retryAfterS = Math.min(retryAfterS ?? Infinity, answer.retryAfterS);
          else soon = true;
          if (answer.status === 503) unreached = true; // a proxy's "no runtime behind me" as much as a busy one
          continue;
        }
        // A proxy that could not reach its runtime (502: one restarting) is a refused connection one hop
        // on: another replica may take it, else UNAVAILABLE, which callers retry (it was UNKNOWN).
        if (answer.status === 502) {
          failures.push(`${replica.name}: HTTP 502 ${clip(printable(answer.text.trim()))}`.trimEnd());
          busy = false;
          unreached = true;
          continue;
        }
        this.replicas.served(replica);
        return { answer: { text: checkedAnswer(endpoint, replica.name, answer, this.inputs.type), url: replica.name }, failures, busy, unreached };
      }
      if (round === 0 && !(await this.replicas.refresh())) break; // the names may point elsewhere now
    }
    const failed = failures.length > 0;
    return { failures, busy: busy && failed, unreached: passing && unreached && failed, retryAfterS: soon ? undefined : retryAfterS, timedOut };
  }

  /** tesseract-core's outputs JSON -> the outputs tree (or its leaves at `only`), arrays in their declared datatypes. */
  private decodeOutputs(text: string, url: string, only?: JsonLeafReader): Record<string, unknown> {
    try {
      if (only) return only.read(parseAnswer(text));
      const json = castToDeclared(this.outputs.type, parseAnswer(text), "outputs", this.requiredFields);
      const any = inputsAny(this.outputs, json, false, { field: "outputs", enumLiterals: this.enumLiterals });
      return this.outputs.decodeAny(any, "outputs");
    } catch (e) {
      const message = isTesseractError(e) || e instanceof SyntaxError ? e.message : String(e);
      // An output this server's schema lacks: the runtime was redeployed with another schema since the start.
      const extra = isTesseractError(e) && e.cause instanceof PydanticKind && e.cause.kind === "extra_forbidden" ? `; ${SCHEMA_CHANGED}` : "";
      throw new TesseractError(Code.UNKNOWN, `apply on ${url} answered outputs that do not match ${this.outputs.fullName}: ${clip(printable(message))}${extra}`, { cause: e });
    }
  }
}

/**
 * An answer's JSON, with Python's NaN, Infinity and -Infinity (json.dumps writes them, and
 * tesseract-core's client reads them: it was refused as "not valid JSON"); refused when nested deeper
 * than the bridge reads (its readers recurse).
 */
function parseAnswer(text: string): unknown {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (refusal) {
    json = parsePythonLiterals(text, refusal);
  }
  if (nestedDeeper(json)) throw new TesseractError(Code.UNKNOWN, `JSON nested more than ${MAX_DEPTH} deep`);
  return json;
}

/** What a runtime's answer at odds with the schema read at start says to do. */
const SCHEMA_CHANGED = "its /openapi.json has changed since this server read it at start: restart this server to serve the new one";

/**
 * The answer's text when 2xx; a 422 is INVALID_ARGUMENT with its details (locations in paths of
 * `inputs`' fields), UNKNOWN when they show the runtime's schema changed; any other status UNKNOWN.
 */
function checkedAnswer(endpoint: string, url: string, { status, text, location }: ReplicaResponse, inputs?: protobuf.Type): string {
  if (location !== undefined) {
    throw new TesseractError(Code.UNKNOWN, `${endpoint} on ${url} answered HTTP ${status}, a redirect to ${quote(clip(printable(location)))}, which the bridge does not follow: serve the runtime's own URL`);
  }
  if (status === 422) {
    const entries = detailEntries(text);
    if (entries && inputs && schemaChanged(entries, inputs)) {
      throw new TesseractError(Code.UNKNOWN, `tesseract-core (${url}) refused the inputs over a field its schema and this server's disagree on: ${validationDetail(text, inputs)}; ${SCHEMA_CHANGED}`);
    }
    throw new TesseractError(Code.INVALID_ARGUMENT, `tesseract-core (${url}) refused the inputs: ${validationDetail(text, inputs)}`, entries ? { cause: new RuntimeValidation(entries) } : undefined);
  }
  if (status < 200 || status >= 300) throw new TesseractError(Code.UNKNOWN, `${endpoint} on ${url} failed with HTTP ${status}: ${clip(printable(text.trim()))}`);
  // V8 said only "Unexpected end of JSON input".
  if (text.trim() === "") throw new TesseractError(Code.UNKNOWN, `${endpoint} on ${url} answered HTTP ${status} with no body, where JSON was expected`);
  return text;
}

/**
 * A 422 body's `detail`, or undefined when the body is not JSON or nests deeper than the bridge reads
 * any answer: its entries are shown (JSON.stringify) and sent on to REST callers, both recursing (a
 * `loc` item nested 100 000 deep failed the call as "apply failed: Maximum call stack size exceeded").
 */
function detailOf(text: string): { detail?: unknown } | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  return nestedDeeper(body) ? undefined : (body as { detail?: unknown } | null) ?? undefined;
}

/** A 422 body's `detail` when it is FastAPI's list of entries (objects with type, loc and msg), at most 20 of them. */
function detailEntries(text: string): Record<string, unknown>[] | undefined {
  const detail = detailOf(text)?.detail;
  const entry = (d: unknown) => isPlainObject(d) && typeof d.type === "string" && Array.isArray(d.loc) && typeof d.msg === "string";
  return Array.isArray(detail) && detail.length > 0 && detail.every(entry) ? (detail.slice(0, 20) as Record<string, unknown>[]) : undefined;
}

/**
 * A 422 `loc` (after "body") as this server's paths write it: under `inputs`, the runtime's keys
 * become the fields' names (`fooBar` is field `foo_bar_2` here), a dict's key `{key}` and a list's
 * index `[i]` (`inputs.data.{a.b}`, which read `inputs.data.a.b`, a path to another place); what
 * lies inside an array object (`shape`, `data`), or past what the schema knows, follows as the
 * runtime wrote it.
 */
function locPath(loc: readonly unknown[], shown: (x: unknown) => string, inputs?: protobuf.Type): string {
  const { segments, at } = walkLoc(loc, inputs);
  const rest = loc.slice(at).map((x) => (typeof x === "number" ? `[${x}]` : shown(x)));
  return [...(at > 0 ? ["inputs"] : []), ...(segments.length ? [formatPath(segments)] : []), ...rest].join(".");
}

/**
 * A 422 `loc` (after "body") walked through `inputs`' fields: the segments it names, where the walk
 * stopped, and whether it stopped at a key that is no field of the model it reached (`unknown`).
 */
function walkLoc(loc: readonly unknown[], inputs?: protobuf.Type): { segments: Segment[]; at: number; unknown: boolean } {
  const segments: Segment[] = [];
  let at = 0;
  if (!inputs || loc[0] !== "inputs") return { segments, at, unknown: false };
  at = 1;
  let message: protobuf.Type | undefined = inputs;
  while (message && at < loc.length) {
    if (typeof loc[at] !== "string") break;
    const field = fieldOfKey(message, loc[at] as string);
    if (!field) return { segments, at, unknown: true };
    segments.push({ kind: "field", name: field.name });
    at++;
    if (field.map && typeof loc[at] === "string") segments.push({ kind: "key", key: loc[at++] as string });
    else if (field.repeated && Number.isSafeInteger(loc[at]) && (loc[at] as number) >= 0) segments.push({ kind: "index", index: loc[at++] as number });
    else if (field.map || field.repeated) break;
    message = field.resolvedType instanceof protobuf.Type && !isTensorField(field) ? field.resolvedType : undefined;
  }
  return { segments, at, unknown: false };
}

/**
 * Whether a 422's entries name an input this server's schema does not have (a new required field),
 * or refuse as extra one it has (a field dropped; this server sends only its schema's fields): the
 * runtime's schema changed since this server read its /openapi.json at start, which no caller can
 * mend (it was INVALID_ARGUMENT, "inputs.tolerance: Field required", for a field no stub has).
 */
function schemaChanged(entries: readonly Record<string, unknown>[], inputs: protobuf.Type): boolean {
  return entries.some((d) => {
    const loc = (d.loc as unknown[]).filter((x, i) => !(i === 0 && x === "body"));
    const { segments, at, unknown } = walkLoc(loc, inputs);
    return unknown || (d.type === "extra_forbidden" && segments.length > 0 && at === loc.length && segments.at(-1)!.kind === "field");
  });
}

/** A 422 body's first details as `location: message`, clipped; locations under `inputs` in paths of its fields (locPath). */
export function validationDetail(text: string, inputs?: protobuf.Type): string {
  const body = detailOf(text);
  if (body === undefined) return clip(printable(text.trim()));
  const { detail } = body;
  if (!Array.isArray(detail)) return clip(printable(typeof detail === "string" ? detail : text.trim()));
  if (detail.length === 0) return "(an empty detail)";
  // FastAPI's loc items are strings and numbers, msg a string; anything else is shown as JSON.
  const shown = (x: unknown) => (typeof x === "string" ? x : JSON.stringify(x) ?? String(x));
  const items = detail.slice(0, 3).map((d) => {
    const loc = Array.isArray(d?.loc) ? (d.loc as unknown[]).filter((x, i) => !(i === 0 && x === "body")) : [];
    const where = locPath(loc, shown, inputs);
    return `${clip(printable(where || "(request)"))}: ${clip(printable(shown(d?.msg ?? "invalid")))}`;
  });
  return items.join("; ") + (detail.length > 3 ? `; … and ${detail.length - 3} more` : "");
}

/**
 * abstract_eval's answer (the outputs, every array as `{"shape", "dtype"}`) as AbstractEval's list:
 * one entry per array, by path, with the declared datatype where the schema has one (what Apply
 * answers after casting), else the answered dtype. Other values are not shapes and are skipped.
 */
function abstractOutputs(type: protobuf.Type, json: unknown, at: Segment[], where: string): AbstractOutput[] {
  if (!isPlainObject(json)) throw new TesseractError(Code.INVALID_ARGUMENT, `${where} is ${JSON.stringify(json)?.slice(0, 40)}, expected an object (${type.name})`);
  const found: AbstractOutput[] = [];
  for (const field of type.fieldsArray) {
    const key = jsonKey(field);
    const value = Object.hasOwn(json, key) ? json[key] : undefined;
    if (value === undefined || value === null) continue;
    const element = (x: unknown, segments: Segment[]) => {
      const path = formatPath(segments);
      if (isTensorField(field)) found.push(shapeOf(x, path, declaredDatatype(field)));
      else if (field.resolvedType instanceof protobuf.Type) found.push(...abstractOutputs(field.resolvedType, x, segments, `outputs.${path}`));
    };
    const here: Segment[] = [...at, { kind: "field", name: field.name }];
    if (field.map && isPlainObject(value)) for (const [key, x] of Object.entries(value)) element(x, [...here, { kind: "key", key }]);
    else if (field.repeated && Array.isArray(value)) value.forEach((x, index) => element(x, [...here, { kind: "index", index }]));
    else if (!field.map && !field.repeated) element(value, here);
  }
  return found;
}

/** One `{"shape", "dtype"}` as an AbstractOutput. */
function shapeOf(value: unknown, path: string, declared: number | undefined): AbstractOutput {
  const { shape, dtype } = (isPlainObject(value) ? value : {}) as { shape?: unknown; dtype?: unknown };
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new TesseractError(Code.INVALID_ARGUMENT, `outputs.${path} is ${JSON.stringify(value)?.slice(0, 60)}, expected {"shape": [non-negative integers], "dtype"}`);
  const answered = datatypeOfDtype(dtype);
  if (declared === undefined && answered === undefined) throw new TesseractError(Code.INVALID_ARGUMENT, `outputs.${path}.dtype is ${JSON.stringify(dtype)?.slice(0, 40)}; expected one of ${Object.keys(NUMPY_DTYPES).join(", ")}`);
  return { path, shape, datatype: declared ?? answered! };
}

/**
 * Refuses a number JSON cannot carry (a gRPC double may be ±Infinity or NaN): written as null, the
 * runtime took its default or None for it (`scale: Infinity` was answered OK, computed with 1).
 */
function refuseNonFinite(json: unknown, where: string): void {
  if (typeof json === "number") {
    if (!Number.isFinite(json)) throw invalidArgument(`${where} is ${json}, which the runtime cannot be sent: it reads JSON, whose numbers are finite`);
  } else if (Array.isArray(json)) json.forEach((v, i) => refuseNonFinite(v, `${where}.[${i}]`));
  else if (json !== null && typeof json === "object") for (const [k, v] of Object.entries(json)) refuseNonFinite(v, `${where}.${k}`);
}
