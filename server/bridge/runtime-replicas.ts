/**
 * The tesseract-core runtimes behind `serve`'s URLs, as replicas of one Tesseract. A URL whose host
 * is an IP address is one replica; a host name is one replica per address it resolves to
 * (`dns.promises.lookup(host, { all: true })`), resolved again every `refreshMs`, after a
 * connection failure, and when a request has failed on every replica: addresses that appear become
 * replicas, and those that disappear take no more requests and close once their requests in flight
 * have ended. Each replica is its own undici Pool (keep-alive connections) that connects to its
 * address while speaking to the host name: the Host header, and for https the TLS server name, so
 * certificates verify. A replica whose connection failed, or that did not answer `/health`, is
 * down: requests try it last until it answers again. An evaluation's POST whose caller gives up
 * after it was sent is left to its answer, holding a request slot until then or until its hold ends
 * (--given-up-hold-ms); one not yet sent is never sent (Replica.answerHead).
 */
import { promises as dns } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { Client, Pool, type Dispatcher } from "undici";
import { Code, TesseractError } from "../../common/errors";
import { MAX_TIMER_MS } from "../../common/transport-defaults";
import { DEFAULT_ANSWER_STALL_MS, DEFAULT_DNS_REFRESH_MS, DEFAULT_GIVEN_UP_HOLD_MS, DEFAULT_RUNTIME_RETRY_MS } from "./settings";
import { silentLogger, type Logger } from "../log";
import type { HealthTarget } from "./health-monitor";
import { AnswerBudget } from "./answer-budget";
import { RuntimeSlots } from "./runtime-slots";
import { ContentCodingError, decodeContent } from "./content-coding";
import { strictUtf8, utf8Failure } from "../../common/utf8";

/** A resolver like `dns.promises.lookup` with `{ all: true }` (tests inject their own). */
export type Lookup = (hostname: string, options: { all: true }) => Promise<{ address: string; family: number }[]>;

/** A resolution slower than this counts as failed (the replicas stay as they were). */
const LOOKUP_TIMEOUT_MS = 10_000;

/** Failures of the connection itself: the runtime is not there (as opposed to a reset mid-answer). */
const CONNECT_FAILURES = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT"]);

/** A connection closed under a request (as opposed to one that could not be made). */
const CLOSED_UNDER = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);

/** Whether a request failed because its connection closed under it (the runtime may be restarting, or shedding load). */
function closedUnder(e: unknown): boolean {
  return CLOSED_UNDER.has(errorCode(e) ?? "");
}

/**
 * What a runtime answered that undici closes the connection over (UND_ERR_SOCKET, as if it had
 * closed under the request), in words; undefined for any other failure. undici passes 102 and 103
 * over, but not a 100 Continue, which answers a request sent with Expect: 100-continue only.
 */
function unreadable(e: unknown): string | undefined {
  if (errorCode(e) !== "UND_ERR_SOCKET") return undefined;
  const message = (e as Error).message;
  if (message === "bad response") return `"100 Continue", which the bridge did not ask for (it sends no Expect: 100-continue) and its HTTP client cannot read past, or other bytes that answer no request`;
  if (message === "bad upgrade") return `"101 Switching Protocols" to a request that asked for no upgrade`;
  return undefined;
}

/**
 * An answer to an evaluation that is not HTTP/1.1 (a chunk size that is no number, a header line
 * broken off, a head too long), in words; undefined for any other failure. The runtime answered
 * HTTP before (its /openapi.json), so this is its fault, not a runtime missing: it was UNAVAILABLE,
 * "it does not answer HTTP/1.1 (a gRPC port …)", which callers retry. At the start, such bytes do
 * mean no HTTP/1.1 server there, and failureReason says so.
 */
function malformed(e: unknown): string | undefined {
  const code = errorCode(e);
  if (!code || !(code.startsWith("HPE_") || MALFORMED.has(code))) return undefined;
  // One line: an assertion's message spans several.
  return `malformed HTTP (${code}: ${String((e as Error).message ?? "").replace(/\s+/g, " ").trim()})`;
}

/**
 * undici's other codes for an answer it cannot take: a head over its 16 KiB, a body at odds with its
 * Content-Length (or with Transfer-Encoding beside it), and its assertions on the parsed answer (a
 * status below 100 fails one).
 */
const MALFORMED = new Set(["UND_ERR_HEADERS_OVERFLOW", "UND_ERR_RES_CONTENT_LENGTH_MISMATCH", "ERR_ASSERTION"]);

/** A socket or undici error's code (ECONNREFUSED); not a DOMException's number (a timeout's abort is 23). */
function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown })?.code ?? (e as { cause?: { code?: unknown } })?.cause?.code;
  return typeof code === "string" ? code : undefined;
}

/** Whether a request failed before it reached a runtime (no connection could be made): sending it again cannot compute it twice. */
export function notReached(e: unknown): boolean {
  return CONNECT_FAILURES.has(errorCode(e) ?? "");
}

/** Whether a request failed for want of a runtime there (no connection, or no answer in time), not for what one answered. */
export function noRuntimeThere(e: unknown): boolean {
  return (e as { name?: unknown })?.name === "TimeoutError" || CONNECT_FAILURES.has(errorCode(e) ?? "") || closedUnder(e);
}

/** Why a request failed, shortly: the socket error's code (ECONNREFUSED) and what it means where it is no runtime's fault, a timeout, or the message. */
export function failureReason(e: unknown): string {
  if ((e as { name?: unknown })?.name === "TimeoutError") return "timed out";
  const code = errorCode(e);
  if (code === undefined) return e instanceof Error ? e.message : String(e);
  const meaning = CODE_MEANINGS.find(([pattern]) => pattern.test(code))?.[1];
  return meaning ? `${code}: ${meaning}` : code;
}

/** What the codes of a URL that names no tesseract-core runtime, or of one that closed under a request, mean (HPE_INVALID_CONSTANT or UND_ERR_SOCKET alone said nothing). */
const CODE_MEANINGS: [RegExp, string][] = [
  [/^HPE_/, "it does not answer HTTP/1.1 (a gRPC port, such as a tesseract-grpc server's, answers HTTP/2 only)"],
  [/^(UND_ERR_SOCKET|ECONNRESET)$/, "the connection closed before a whole answer came (the runtime may crash on these inputs)"],
  [/^ERR_SSL_WRONG_VERSION_NUMBER$/, "it does not answer TLS: use http://"],
  [/^ERR_TLS_CERT_ALTNAME_INVALID$/, "its certificate does not name this host"],
  [/^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?)$/, "its certificate is not trusted: NODE_EXTRA_CA_CERTS=<file> adds the CA that signed it"],
  [/^CERT_HAS_EXPIRED$/, "its certificate has expired"],
];

/** net.connect's lookup, answering `address` whatever the name (one or all addresses, as asked). */
function pinnedLookup(address: string, family: number): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) (callback as unknown as (e: null, all: { address: string; family: number }[]) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

export interface ReplicaResponse {
  status: number;
  text: string;
  /** A redirect's Location header (the bridge does not follow redirects). */
  location?: string;
  /** A busy answer's Retry-After, in seconds (a date is read as the seconds until it). */
  retryAfterS?: number;
}

/** Retry-After as seconds: a number of them, or an HTTP date; undefined when neither. */
function retryAfterSeconds(value: unknown): number | undefined {
  if (typeof value !== "string" || value.trim() === "") return undefined;
  const seconds = /^\s*\d+\s*$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(0, seconds) : undefined;
}

/** Answers uncompressed (content-coding.ts). */
const GET_HEADERS = { accept: "application/json", "accept-encoding": "identity" };
const POST_HEADERS = { ...GET_HEADERS, "content-type": "application/json" };
/** Asks for arrays as base64 in the answer. */
const APPLY_HEADERS = { ...POST_HEADERS, accept: "application/json+base64" };

/**
 * The longest answer read from a runtime: an OpenAPI document, and any other answer (an apply's
 * outputs in base64 JSON: 256 MiB holds about 24 million FP64 values). Read whole, an answer costs
 * several times its size in memory (bytes, text, parsed tree), and a runtime answering gigabytes took
 * the server to 6 GB and down; beyond these it is refused, unread (UNKNOWN, naming the runtime).
 */
export const MAX_OPENAPI_BYTES = 16 << 20;
export const MAX_ANSWER_BYTES = 256 << 20;

/** What the replicas of one Tesseract share: connections per runtime, and the answers being read. */
export interface ReplicaLimits {
  /**
   * Connections to one runtime (more requests wait for one). Evaluations are bounded across calls
   * by runtime-slots.ts before they get here; this keeps one runtime to its share when others are
   * down and its turn comes round more often.
   */
  connections: number;
  answers: AnswerBudget;
  /** Requests in flight to these runtimes, all calls together (runtime-slots.ts): `connections` per replica. */
  slots: RuntimeSlots;
  /** POSTs sent to the runtimes so far, resends included (the metrics' tesseract_grpc_runtime_requests_total). */
  posts: { count: number };
  /** Evaluations' requests given up on that hold their slots now, while their runtimes compute them (Replica.answerHead). */
  held: { count: number };
  /** How long such a request may hold its slot before its connection is closed (0: closed at once). */
  holdMs: number;
  /** Where a hold that ran out, and a runtime whose connections are all held, are logged. */
  log: Logger;
  /** How long an answer's body may bring no byte once its head has come (settings.ts; 0: no bound). */
  answerStallMs: number;
  /** Told as each POST ends, answered or not (RuntimeReplicas.firstTiming waits for one). */
  postEnded?: () => void;
}

export const DEFAULT_RUNTIME_CONNECTIONS = 16;

/** `replicas()`: how many replicas there are now (the slots follow it). */
export function replicaLimits(connections = DEFAULT_RUNTIME_CONNECTIONS, replicas: () => number = () => 1, holdMs = DEFAULT_GIVEN_UP_HOLD_MS, log: Logger = silentLogger, answerStallMs = DEFAULT_ANSWER_STALL_MS): ReplicaLimits {
  const slots = new RuntimeSlots(() => connections * Math.max(1, replicas()));
  return { connections, answers: new AnswerBudget(MAX_ANSWER_BYTES), slots, posts: { count: 0 }, held: { count: 0 }, holdMs, log, answerStallMs };
}

/** The longest a fresh server's first evaluations wait for a replica's first timing (RuntimeReplicas.firstTiming): at most one apply's time, and no more than this. */
const FIRST_TIMING_WAIT_MS = 5000;

/** The weight of each new apply's time in a replica's average (older ones fade by 1 - this each time). */
const APPLY_MS_WEIGHT = 0.3;

/** One tesseract-core runtime: its URL (with the address a host name resolved to) and its connections. */
export class Replica {
  /** For messages: the URL, and the address when the host is a name (`http://tesseract:8000 (10.0.0.7)`). */
  readonly name: string;
  /** False after a connection failure or an unanswered /health, until it answers again. */
  up = true;
  /** When it last answered an evaluation (performance.now()). */
  answeredAt = -Infinity;
  /** Evaluations' connections, at most `limits.connections`; GETs (health, the document) have their own, never queued behind a slow apply. */
  private readonly pool: Pool;
  private readonly checks: Pool;
  /** The URL's scheme, host and port (`http://tesseract:8000`). */
  readonly origin: string;
  private readonly options: Pool.Options;
  /** The URL's path without trailing slashes, put before every endpoint (`/tesseract` behind a proxy); "" for none. */
  readonly basePath: string;
  /** The resends' connections of their own (request), each until it has closed (the promise): retire waits for them, destroy ends them. */
  private readonly fresh = new Map<Client, Promise<void>>();
  /** Requests given up on that hold a connection of this runtime now (answerHead). */
  private held = 0;
  /** POSTs sent and not yet answered or given up on (send). */
  private posting = 0;
  /** How long its applies take, from sent to answered: a moving average (undefined until one has answered). */
  applyMs?: number;

  /** The POSTs this runtime is working on now: those awaited, and those given up on that it still holds. */
  get load(): number {
    return this.posting + this.held;
  }

  /** Whether every connection of this runtime is held by requests given up on. */
  get allHeld(): boolean {
    return this.held >= this.limits.connections;
  }

  /**
   * Whether a connection to this runtime has stayed open since the last call of `changed`: the
   * GETs' kept connection (the start's /openapi.json, then /health every round). A runtime
   * restarted or redeployed closes it as its process ends (a host gone without closing it fails the
   * next round's request on it), and a new one is opened to whatever answers now, so while one is
   * open the runtime answering is the one that answered since it opened.
   */
  get witnessed(): boolean {
    return this.checks.stats.connected > 0;
  }

  constructor(
    url: URL,
    address?: { address: string; family: number },
    private readonly limits: ReplicaLimits = replicaLimits(),
    /** Called when the GETs' connection opens or closes (witnessed): the runtime may have been replaced. */
    changed?: () => void,
  ) {
    const base = `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
    this.name = address ? `${base} (${address.address})` : base;
    this.basePath = url.pathname.replace(/\/+$/, "");
    this.origin = url.origin;
    // No headers or body timeout: an apply may take hours. What bounds a request is its caller's
    // deadline, cancellation or --eval-timeout-ms, and once its caller gave up, its hold (answerHead).
    this.options = { connect: address ? { lookup: pinnedLookup(address.address, address.family) } : {}, headersTimeout: 0, bodyTimeout: 0 };
    this.pool = new Pool(url.origin, { ...this.options, connections: limits.connections });
    this.checks = new Pool(url.origin, { ...this.options, connections: 2 });
    if (changed) this.checks.on("connect", changed).on("disconnect", changed);
  }

  /**
   * One request, and once more on a connection of its own when the one it went on was closed under
   * it: a runtime that closes idle keep-alive connections (gunicorn after 2 s, a proxy) can do so as
   * a request leaves, which then fails with no answer, and a second pooled connection may be closing
   * as well. Every request to a runtime is idempotent.
   */
  async request(method: "GET" | "POST", endpoint: string, body: string | undefined, signal?: AbortSignal, slotted = false): Promise<ReplicaResponse> {
    try {
      return await this.send(method === "GET" ? this.checks : this.pool, method, endpoint, body, signal, slotted);
    } catch (e) {
      const unread = unreadable(e) ?? (method === "POST" ? malformed(e) : undefined);
      if (unread) throw new TesseractError(Code.UNKNOWN, `${method} /${endpoint} on ${this.name} answered ${unread}`, { cause: e });
      if (signal?.aborted || !closedUnder(e)) throw e;
      const fresh = new Client(this.origin, this.options);
      let closed!: () => void;
      this.fresh.set(fresh, new Promise<void>((resolve) => (closed = resolve)));
      try {
        return await this.send(fresh, method, endpoint, body, signal, slotted);
      } finally {
        // Closed once its request has ended (one given up on may be held); `destroy` ends it sooner.
        void fresh
          .close()
          .catch(() => {})
          .then(() => (this.fresh.delete(fresh), closed()));
      }
    }
  }

  /** `slotted`: the caller holds a request slot for it (runtime-slots.ts), which it may keep once given up on. */
  private async send(dispatcher: Dispatcher, method: "GET" | "POST", endpoint: string, body: string | undefined, signal: AbortSignal | undefined, slotted: boolean): Promise<ReplicaResponse> {
    const headers = body === undefined ? GET_HEADERS : endpoint === "apply" ? APPLY_HEADERS : POST_HEADERS;
    signal?.throwIfAborted();
    if (method === "POST") this.limits.posts.count++, this.posting++;
    // Not the caller's signal: a request given up on once sent may be left to its answer (answerHead).
    const exchange = new Exchange();
    try {
      const options: Dispatcher.RequestOptions & { exchange: Exchange } = { path: `${this.basePath}/${endpoint}`, method, headers, body, exchange };
      const sent = tracked(dispatcher).request(options);
      const response = await this.answerHead(sent, exchange, `${method} /${endpoint}`, () => (slotted && method === "POST" ? exchange.writtenAt : undefined), signal);
      if (endpoint === "apply" && response.statusCode >= 200 && response.statusCode < 300 && exchange.writtenAt !== undefined) this.timed(performance.now() - exchange.writtenAt);
      // Once answered the runtime's work is done: an abort now just stops reading.
      const abort = () => exchange.abort(signal!.reason);
      signal?.addEventListener("abort", abort, { once: true });
      try {
        return await this.read(response, method, endpoint, signal);
      } finally {
        signal?.removeEventListener("abort", abort);
      }
    } finally {
      if (method === "POST") this.posting--, this.limits.postEnded?.();
    }
  }

  /** A request it did not answer within `ms` (the per-evaluation timeout): it counts as at least that slow, so that others go first. */
  unansweredFor(ms: number): void {
    this.timed(Math.max(ms, this.applyMs ?? 0));
  }

  /** One more apply answered `ms` after it was sent: the average's new value. */
  private timed(ms: number): void {
    this.applyMs = this.applyMs === undefined ? ms : this.applyMs + APPLY_MS_WEIGHT * (ms - this.applyMs);
  }

  /**
   * The answer's head, or at once the caller's abort (its reason) when `signal` aborts first. Then a
   * request not yet written (queued for one of the pool's connections) is aborted, never sent, and so
   * is one that holds no slot (`heldSince()` undefined: a GET, an AbstractEval). An evaluation's
   * request already sent (`heldSince()`: when it was written) is not closed: that would not stop the
   * work (tesseract-core's uvicorn goes on computing a request whose client went away), only hide
   * it, and cancel-and-retry piled requests up on a slow runtime. It is left to run, holding a slot
   * (runtime-slots.ts) until it is answered (its answer unread) or its connection ends, but at most
   * `limits.holdMs`: a runtime that hangs on some inputs would otherwise keep every slot, and every
   * later call would wait for one until its deadline.
   */
  private answerHead(sent: Promise<Dispatcher.ResponseData>, exchange: Exchange, request: string, heldSince: () => number | undefined, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    if (!signal) return sent;
    return new Promise((resolve, reject) => {
      const giveUp = () => {
        const since = heldSince();
        if (since === undefined || !(this.limits.holdMs > 0)) exchange.abort(signal.reason);
        else this.hold(sent, exchange, request, since);
        reject(signal.reason);
      };
      signal.addEventListener("abort", giveUp, { once: true });
      sent.then(resolve, reject).finally(() => signal.removeEventListener("abort", giveUp));
    });
  }

  /** Holds a slot for `sent` (its caller gave up) until it is answered or its connection ends, or `holdMs` passes: then its exchange is aborted. */
  private hold(sent: Promise<Dispatcher.ResponseData>, exchange: Exchange, request: string, writtenAt: number): void {
    const { slots, held, holdMs, connections, log } = this.limits;
    const release = slots.hold();
    held.count++;
    this.held++;
    if (this.held === connections) {
      log.warn({ runtime: this.name, request, held: this.held, concurrency: connections, holdMs }, "every connection of a tesseract-core runtime is held by requests given up on that it has not answered; it takes no other request until it answers them or their hold ends (--given-up-hold-ms)");
    }
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      held.count--;
      this.held--;
      release();
    };
    const timer = setTimeout(() => {
      const sentMs = Math.round(performance.now() - writtenAt);
      log.warn({ runtime: this.name, request, holdMs, sentMs }, "a request given up on was not answered by its tesseract-core runtime within its hold (--given-up-hold-ms); its connection was closed and its slot freed");
      exchange.abort(new Error(`given up on, and not answered ${sentMs} ms after it was sent`));
      end();
    }, Math.min(holdMs, MAX_TIMER_MS));
    timer.unref();
    sent.then((response) => response.body.on("error", () => undefined).destroy(), () => undefined).finally(end);
  }

  /** The answer read whole (at most its endpoint's limit, through the answer budget), as text. */
  private async read(response: Dispatcher.ResponseData, method: "GET" | "POST", endpoint: string, signal?: AbortSignal): Promise<ReplicaResponse> {
    const limit = endpoint === "openapi.json" ? MAX_OPENAPI_BYTES : MAX_ANSWER_BYTES;
    const tooLong = () => {
      // Its abort is an 'error' event: unheard, it would end the process.
      response.body.on("error", () => undefined).destroy();
      return new TesseractError(Code.UNKNOWN, `${method} /${endpoint} on ${this.name} answered more than ${limit} bytes, the most this server reads of a runtime's answer`);
    };
    const declared = Number(response.headers["content-length"]);
    if (declared > limit) throw tooLong();
    // 204 and 304 end at their headers, whatever Content-Length says (RFC 9112 §6.3): reading a body
    // waited for bytes that never came, until the runtime closed the connection, and was sent again.
    if (response.statusCode === 204 || response.statusCode === 304) {
      response.body.on("error", () => undefined).destroy();
      return { status: response.statusCode, text: "" };
    }
    // Health is told by the status alone, so its body is not kept: read whole, a runtime answering
    // /health with 250 MiB took the server past 2 GB a round (four replicas), outside the answers' budget.
    if (endpoint === "health") {
      await response.body.dump();
      return { status: response.statusCode, text: "" };
    }
    const location = response.headers.location;
    if (response.statusCode >= 300 && response.statusCode < 400 && location !== undefined) {
      response.body.on("error", () => undefined).destroy();
      return { status: response.statusCode, text: "", location: String(location) };
    }
    const chunks: Buffer[] = [];
    let length = 0;
    const reader = {};
    // Timed only while waiting for the runtime's bytes, not while this reader waits for the budget.
    let stall: NodeJS.Timeout | undefined;
    const watch = () => {
      if (!(this.limits.answerStallMs > 0)) return; // 0: no bound
      stall = setTimeout(() => {
        const ms = this.limits.answerStallMs;
        response.body.destroy(new TesseractError(Code.UNKNOWN, `${method} /${endpoint} on ${this.name} answered its head, then no byte of its body for ${ms} ms: given up`));
      }, Math.min(this.limits.answerStallMs, MAX_TIMER_MS));
    };
    // Health and the document are read outside the budget: a health check never waits on answers.
    const answers = method === "POST" ? this.limits.answers : undefined;
    answers?.begin(reader);
    let bytes: Buffer;
    try {
      try {
        watch();
        for await (const chunk of response.body) {
          clearTimeout(stall);
          length += (chunk as Buffer).length;
          if (length > limit) throw tooLong();
          await answers?.take(reader, (chunk as Buffer).length, signal);
          chunks.push(chunk as Buffer);
          watch();
        }
      } catch (e) {
        response.body.on("error", () => undefined).destroy();
        throw e;
      } finally {
        clearTimeout(stall);
      }
      // Decoded within the budget too, while the encoded bytes are still held.
      bytes = await decodeContent(Buffer.concat(chunks, length), response.headers["content-encoding"], limit, async (n) => answers?.take(reader, n, signal));
    } catch (e) {
      if (e instanceof ContentCodingError) throw new TesseractError(Code.UNKNOWN, `${method} /${endpoint} on ${this.name} ${e.message}`);
      throw e;
    } finally {
      answers?.end(reader);
    }
    const text = strictUtf8(bytes);
    if (text === undefined) throw new TesseractError(Code.UNKNOWN, `${method} /${endpoint} on ${this.name} answered text that is not UTF-8: ${utf8Failure(bytes)}`);
    const retryAfterS = response.statusCode === 503 || response.statusCode === 429 ? retryAfterSeconds(response.headers["retry-after"]) : undefined;
    return { status: response.statusCode, text, ...(retryAfterS === undefined ? {} : { retryAfterS }) };
  }

  /** Takes no more requests; settles once those in flight have finished. */
  retire(): Promise<void> {
    return Promise.all([this.pool.close(), this.checks.close(), ...this.fresh.values()]).then(
      () => {},
      () => {},
    );
  }

  /** Ends every connection now, requests in flight included. */
  destroy(): void {
    this.pool.destroy().catch(() => {});
    this.checks.destroy().catch(() => {});
    for (const fresh of this.fresh.keys()) fresh.destroy().catch(() => {});
  }
}

/** A URL whose host is a name, and the replicas at the addresses it resolved to last. */
interface NamedHost {
  url: URL;
  byAddress: Map<string, Replica>;
  /** Why the last resolution failed, if it did. */
  error?: string;
}

export interface RuntimeReplicasOptions {
  /** Default `dns.promises.lookup`. */
  lookup?: Lookup;
  /** How often host names are resolved again (default 30 s; 0: only after failures). */
  refreshMs?: number;
  /** Called with every replica's name when replicas were added or removed. */
  onChange?: (replicas: string[]) => void;
  /** Requests in flight to each runtime at once (default DEFAULT_RUNTIME_CONNECTIONS). */
  connections?: number;
  /** How long a request given up on may hold its slot while its runtime computes it (default DEFAULT_GIVEN_UP_HOLD_MS; 0: closed at once). */
  givenUpHoldMs?: number;
  /** Where holds that ran out, and runtimes whose connections are all held, are logged (warn). */
  log?: Logger;
  /** How long an answer's body may bring no byte once its head has come (default DEFAULT_ANSWER_STALL_MS; 0: no bound). */
  answerStallMs?: number;
  /** How long an evaluation is sent again while no runtime can be reached (default DEFAULT_RUNTIME_RETRY_MS; 0: UNAVAILABLE at once). */
  retryMs?: number;
}

/** Not one runtime resolved, or answered: a start may wait for one (a container still starting). */
export class NoRuntimeYet extends Error {}

export class RuntimeReplicas implements HealthTarget {
  private current: Replica[] = [];
  /** Replicas whose address went away, finishing their requests in flight. */
  private readonly retiring = new Set<Replica>();
  private next = 0;
  private refreshing?: Promise<boolean>;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private readonly fixed = new Map<URL, Replica>();
  private readonly named: NamedHost[] = [];
  private readonly lookup: Lookup;
  readonly limits: ReplicaLimits;
  /** Told when a runtime may have been replaced (onReplaced). */
  private readonly replacedListeners = new Set<() => void>();
  /** How long an evaluation is sent again while no runtime can be reached (tesseract-core-client.ts). */
  readonly retryMs: number;
  /** Since when evaluations wait for a runtime to come back (performance.now()), while they do: logged as it begins and ends. */
  private unreachableSince?: number;
  /** Evaluations waiting for a first timing (firstTiming), woken as a POST ends. */
  private readonly untimedWaiters = new Set<() => void>();

  private constructor(
    private readonly urls: readonly URL[],
    private readonly options: RuntimeReplicasOptions,
  ) {
    this.lookup = options.lookup ?? ((hostname, opts) => dns.lookup(hostname, opts));
    this.retryMs = options.retryMs ?? DEFAULT_RUNTIME_RETRY_MS;
    this.limits = replicaLimits(options.connections, () => this.current.length, options.givenUpHoldMs, options.log, options.answerStallMs);
    this.limits.postEnded = () => {
      for (const wake of this.untimedWaiters) wake();
    };
    for (const url of urls) {
      const host = url.hostname.replace(/^\[|\]$/g, "");
      if (isIP(host)) this.fixed.set(url, new Replica(url, undefined, this.limits, () => this.replaced()));
      else this.named.push({ url, byAddress: new Map() });
    }
  }

  /** The replicas of `urls` (each http(s), without a trailing slash), host names resolved; fails when none resolves. */
  static async start(urls: readonly string[], options: RuntimeReplicasOptions = {}): Promise<RuntimeReplicas> {
    const replicas = new RuntimeReplicas(
      urls.map((u) => new URL(u)),
      options,
    );
    await replicas.refresh();
    if (replicas.current.length === 0) {
      const reasons = replicas.named.map((h) => `${h.url.origin}: ${h.error}`).join("; ");
      replicas.close();
      throw new NoRuntimeYet(`no tesseract-core runtime address could be resolved (${reasons})`);
    }
    replicas.schedule();
    return replicas;
  }

  /** Every replica now, in the URLs' order. */
  get all(): readonly Replica[] {
    return this.current;
  }

  /**
   * The replicas to try for one request, in order: those up, the one that would answer soonest
   * first (round-robin among equals), then those down. Round-robin alone sent a replica ten times
   * slower than the other its half of a Jacobian's evaluations, and the Jacobian took as long as that
   * half took it (2.4 s, where the fast replica alone took 0.5 s).
   */
  order(): Replica[] {
    const n = this.current.length;
    if (n === 0) return [];
    const start = this.next++ % n;
    const rotated = [...this.current.slice(start), ...this.current.slice(0, start)];
    const wait = expectedWaits(rotated);
    // A stable sort: equals keep their round-robin order (two Infinity are equal too).
    rotated.sort((a, b) => wait.get(a)! - wait.get(b)! || 0);
    // One whose every connection is held by requests given up on takes a request only after the
    // others: it would wait there for the runtime's answer or a hold's end (a minute), another free.
    return [...rotated.filter((r) => r.up && !r.allHeld), ...rotated.filter((r) => r.up && r.allHeld), ...rotated.filter((r) => !r.up)];
  }

  /**
   * Waits, while no replica that takes requests has been timed and each has one in flight (a fresh
   * server's first burst), for one of those requests to end, at most FIRST_TIMING_WAIT_MS: the
   * burst was split evenly, and a replica ten times slower than the other queued its half, which the
   * Jacobian then waited for (1.9 s where the next took 0.7 s). Once one is timed, an untimed replica
   * with a request in flight goes last (expectedWaits), so each is sent one request until it answers.
   * With one replica there is no choice to make, and nothing waits.
   */
  async firstTiming(signal?: AbortSignal): Promise<void> {
    const until = performance.now() + FIRST_TIMING_WAIT_MS;
    while (!signal?.aborted && this.untimedBusy()) {
      const leftMs = until - performance.now();
      if (leftMs <= 0) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.untimedWaiters.delete(wake);
          signal?.removeEventListener("abort", wake);
          resolve();
        };
        const timer = setTimeout(wake, leftMs);
        this.untimedWaiters.add(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
    }
  }

  /** Whether two replicas or more take requests, none has been timed, and each has one in flight (firstTiming would wait). */
  untimedBusy(): boolean {
    const taking = this.current.filter((r) => r.up && !r.allHeld);
    return taking.length > 1 && taking.every((r) => r.applyMs === undefined && r.load > 0);
  }

  /**
   * `listener` is called whenever a runtime may have been replaced by another (a restart, a
   * redeploy): a replica that was up stopped answering, replicas were added or removed, or a
   * replica's kept connection opened or closed (Replica.witnessed: a runtime redeployed between two
   * health rounds). What was computed by the runtimes before is then no longer theirs (the
   * evaluation cache).
   */
  onReplaced(listener: () => void): void {
    this.replacedListeners.add(listener);
  }

  private replaced(): void {
    if (this.closed) return;
    for (const listener of this.replacedListeners) listener();
  }

  /**
   * Whether every replica's runtime is one that has answered on a connection still open (Replica.
   * witnessed), so that outputs computed now are the runtimes' until `onReplaced` says otherwise.
   */
  witnessed(): boolean {
    return this.current.length > 0 && this.current.every((r) => r.witnessed);
  }

  /** `replica` is up or down by what it answered (or failed to): a fall is a possible replacement (onReplaced). */
  private mark(replica: Replica, up: boolean): void {
    if (replica.up && !up) this.replaced();
    replica.up = up;
  }

  /** A request to `replica` failed: down if it could not connect; names are resolved again (in the background). */
  failed(replica: Replica, error: unknown): void {
    if (notReached(error)) this.mark(replica, false);
    void this.refresh();
  }

  answered(replica: Replica): void {
    replica.up = true;
    replica.answeredAt = performance.now();
  }

  /** `replica` answered an evaluation (not busy, not a proxy's 502): evaluations waiting for a runtime to come back are told so (unreachable). */
  served(replica: Replica): void {
    if (this.unreachableSince !== undefined) {
      const downMs = Math.round(performance.now() - this.unreachableSince);
      this.unreachableSince = undefined;
      this.limits.log.info({ runtime: replica.name, down_ms: downMs }, "a tesseract-core runtime answered again");
    }
  }

  /**
   * An evaluation will be sent again for want of a runtime that can be reached (`why`: each
   * runtime's failure): logged once, as the first evaluation begins to wait, and again with how long
   * it lasted once one answers (served), so that a call held by a runtime restarting says so.
   */
  unreachable(why: string): void {
    if (this.unreachableSince !== undefined) return;
    this.unreachableSince = performance.now();
    this.limits.log.warn({ why, retry_ms: this.retryMs }, "a tesseract-core runtime could not be reached; evaluations are sent again until it answers (--runtime-retry-ms)");
  }

  /**
   * One round of `GET /health` on every replica: each is up or down by its answer, or up where it
   * answered an evaluation during the round (a runtime whose workers are all busy answers /health
   * late: it flapped NOT_SERVING while serving); whether any is up.
   */
  async answersHealth(signal: AbortSignal): Promise<boolean> {
    const started = performance.now();
    const replicas = [...this.current];
    const answers = await Promise.all(
      replicas.map((r) =>
        r.request("GET", "health", undefined, signal).then(
          ({ status }) => status >= 200 && status < 300,
          () => false,
        ),
      ),
    );
    replicas.forEach((r, i) => this.mark(r, answers[i] || r.answeredAt >= started));
    if (answers.includes(false)) void this.refresh();
    return replicas.some((r) => r.up);
  }

  /** The replicas, for messages: `http://a:8000, http://b:8000 (10.0.0.7)`. */
  describe(): string {
    return this.current.map((r) => r.name).join(", ") || this.urls.map((u) => u.origin).join(", ");
  }

  /** Resolves the host names again (one resolution at a time; callers share it); whether replicas changed. */
  refresh(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    this.refreshing ??= this.resolveAll().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Stops resolving and ends every connection. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const replica of new Set([...this.current, ...this.fixed.values(), ...this.retiring])) replica.destroy();
    this.current = [];
    this.retiring.clear();
  }

  private async resolveAll(): Promise<boolean> {
    const changes = await Promise.all(this.named.map((host) => this.resolve(host)));
    if (this.closed) return false;
    this.current = this.urls.flatMap((url) => this.fixed.get(url) ?? [...this.named.find((h) => h.url === url)!.byAddress.values()]);
    const changed = changes.includes(true);
    if (changed) {
      this.options.onChange?.(this.current.map((r) => r.name));
      this.replaced();
    }
    return changed;
  }

  /** Resolves one host name; replicas for new addresses, retired ones for addresses gone. Whether any changed. */
  private async resolve(host: NamedHost): Promise<boolean> {
    let addresses: { address: string; family: number }[];
    try {
      addresses = await withTimeout(this.lookup(host.url.hostname, { all: true }), LOOKUP_TIMEOUT_MS, `no answer in ${LOOKUP_TIMEOUT_MS} ms`);
      if (addresses.length === 0) throw new Error("no address");
    } catch (e) {
      host.error = failureReason(e); // a failed resolution keeps the replicas it had: stale beats none
      return false;
    }
    host.error = undefined;
    if (this.closed) return false;
    const seen = new Set(addresses.map((a) => a.address));
    let changed = false;
    for (const [address, replica] of host.byAddress) {
      if (seen.has(address)) continue;
      host.byAddress.delete(address);
      this.retiring.add(replica);
      void replica.retire().then(() => this.retiring.delete(replica));
      changed = true;
    }
    for (const a of addresses) {
      if (host.byAddress.has(a.address)) continue;
      host.byAddress.set(a.address, new Replica(host.url, a, this.limits, () => this.replaced()));
      changed = true;
    }
    return changed;
  }

  private schedule(): void {
    const refreshMs = this.options.refreshMs ?? DEFAULT_DNS_REFRESH_MS;
    if (this.closed || this.named.length === 0 || refreshMs <= 0) return;
    this.timer = setTimeout(() => void this.refresh().finally(() => this.schedule()), refreshMs);
    this.timer.unref();
  }
}

/**
 * How long each replica would take to answer one more apply, as it is seen now: its average apply
 * time times the applies it would then be working on (a runtime's workers take them in turn;
 * "peak EWMA", as Finagle and Linkerd balance). A replica with no time yet counts as fast as the
 * fastest while it has nothing in flight (it is tried, and timed), and as slower than any once it
 * has (one request at a time until it answers: it may be ten times slower); with none timed, the
 * load alone decides.
 */
function expectedWaits(replicas: readonly Replica[]): Map<Replica, number> {
  const timed = replicas.flatMap((r) => (r.applyMs === undefined ? [] : [r.applyMs]));
  const fastest = timed.length > 0 ? Math.min(...timed) : 1;
  const untimedBusy = (r: Replica) => r.applyMs === undefined && r.load > 0 && timed.length > 0;
  return new Map(replicas.map((r) => [r, untimedBusy(r) ? Infinity : (r.load + 1) * Math.max(r.applyMs ?? fastest, 1e-3)]));
}

/**
 * One request's handle: when undici wrote it to its connection, and its end. A request that waits
 * for one of the pool's connections is ended as it gets one, never sent. (An AbortController and an
 * interceptor composed for each request cost a tenth of a fast runtime's round trip.)
 */
class Exchange {
  /** performance.now() as the request went out (its handler's onConnect, just before its head and body). */
  writtenAt?: number;
  private end?: (reason: Error) => void;
  private reason?: Error;

  connected(end: (reason: Error) => void): void {
    this.writtenAt = performance.now();
    if (this.reason) end(this.reason);
    else this.end = end;
  }

  abort(reason: unknown): void {
    if (this.reason) return;
    this.reason = reason instanceof Error ? reason : new Error(String(reason));
    this.end?.(this.reason);
  }
}

/** Each dispatcher with the interceptor that tells a request's Exchange (its options' `exchange`) of its connection. */
const trackedDispatchers = new WeakMap<Dispatcher, Dispatcher>();

function tracked(dispatcher: Dispatcher): Dispatcher {
  let composed = trackedDispatchers.get(dispatcher);
  if (!composed) {
    composed = dispatcher.compose((dispatch) => (options, handler) => {
      const exchange = (options as { exchange?: Exchange }).exchange;
      if (exchange) {
        // undici passes a context beside `end` too, which its types leave out.
        const connect = handler.onConnect!.bind(handler) as (...args: unknown[]) => void;
        handler.onConnect = (...args: unknown[]) => {
          exchange.connected(args[0] as (reason: Error) => void);
          connect(...args);
        };
      }
      return dispatch(options, handler);
    });
    trackedDispatchers.set(dispatcher, composed);
  }
  return composed;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
