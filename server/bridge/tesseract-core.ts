/**
 * A Tesseract that a tesseract-core runtime serves over HTTP (`serve http://host:port[,http://…]`),
 * served here through the same engine: the schema comes from the runtime's `/openapi.json`
 * (schema/openapi-proto.ts); every evaluation is one `POST /apply` and AbstractEval one `POST
 * /abstract_eval` when the runtime lists that path (tesseract-core-client.ts); evaluations run up to
 * `--concurrency` at once (eval/concurrent.ts), each to the replica that would answer soonest (runtime-replicas.ts:
 * one per URL, or per address of a host name, re-resolved); health follows the
 * runtimes' `/health` (health-monitor.ts). The generated .proto is written to a temporary folder
 * for reflection and the gRPC service definition, removed when the runtime closes. Not forwarded:
 * the runtime's own gradient endpoints (gradients are this server's finite differences).
 */
import * as fs from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import * as os from "node:os";
import * as path from "node:path";
import * as protobuf from "protobufjs";
import { clip, isTesseractError, printable, quote } from "../../common/errors";
import { isPlainObject } from "../../common/records";
import { protoFromOpenApi, shortPart, UNDIFFERENTIABLE_DTYPES } from "../schema/openapi-proto";
import { loadRootFromText } from "../schema/schema";
import { jsonKey } from "../schema/json-keys";
import { TesseractRuntime } from "../runtime";
import type { AnyTesseract } from "../tesseract";
import { DEFAULT_HEALTH_INTERVAL_MS, HealthMonitor } from "./health-monitor";
import { failureReason, NoRuntimeYet, noRuntimeThere, RuntimeReplicas, type Lookup, type ReplicaResponse } from "./runtime-replicas";
import { TesseractCoreClient } from "./tesseract-core-client";
import { isTesseractCoreUrl } from "./settings";
import { MAX_DEPTH, nestedDeeper } from "../../common/nesting";
import type { Logger } from "../log";

export { TesseractCoreClient, validationDetail } from "./tesseract-core-client";

export { isTesseractCoreUrl };

/** The URLs of `spec`, without trailing slashes. */
export function parseUrls(spec: string): string[] {
  const urls = spec
    .split(",")
    .map((u) => u.trim().replace(/\/+$/, ""))
    .filter(Boolean);
  for (const u of urls) {
    if (!isTesseractCoreUrl(u)) throw new Error(`${quote(u)} is not an http:// or https:// URL of a tesseract-core runtime`);
    new URL(u); // throws naming what is wrong
  }
  if (urls.length === 0) throw new Error(`${quote(spec)} names no tesseract-core runtime URL`);
  return urls;
}

/** How long the start may wait for `/openapi.json`. */
const OPENAPI_TIMEOUT_MS = 10_000;

/** GET `/openapi.json` from the first replica that answers. */
async function fetchOpenApi(replicas: RuntimeReplicas): Promise<{ url: string; doc: unknown }> {
  const failures: string[] = [];
  let notThere = true;
  for (const replica of replicas.all) {
    const url = replica.name;
    let answer: ReplicaResponse;
    try {
      answer = await replica.request("GET", "openapi.json", undefined, AbortSignal.timeout(OPENAPI_TIMEOUT_MS));
    } catch (e) {
      if (isTesseractError(e)) throw new Error(e.message); // it answered, too long
      failures.push(`${url}: ${failureReason(e)}`);
      notThere &&= noRuntimeThere(e);
      continue;
    }
    const redirect = answer.location === undefined ? "" : ` (a redirect to ${quote(clip(printable(answer.location)))}, which the bridge does not follow: serve the runtime's own URL)`;
    // Named as the runtime's other requests are ("GET /openapi.json on URL (address)"): "URL (address)/openapi.json" read as a broken URL.
    const get = `GET /openapi.json on ${url}`;
    if (answer.status < 200 || answer.status >= 300) {
      // A URL copied with an endpoint's path (…/apply, …/docs): that path is put before every endpoint.
      const pathHint = answer.status === 404 && replica.basePath !== "" ? `: the URL's path, ${replica.basePath}, comes before every endpoint; a runtime is named by its URL without a path, ${replica.origin}` : "";
      throw new Error(`${get} answered HTTP ${answer.status}${redirect}; expected a tesseract-core runtime's OpenAPI document${pathHint}`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(answer.text);
    } catch {
      throw new Error(`${get} answered no JSON; expected a tesseract-core runtime's OpenAPI document`);
    }
    if (nestedDeeper(doc)) throw new Error(`${get} answered JSON nested more than ${MAX_DEPTH} deep; expected a tesseract-core runtime's OpenAPI document`);
    return { url, doc };
  }
  // Why each failed (ECONNREFUSED is not a slow runtime): the time each is given to answer comes last.
  // Only a runtime not there yet may come (a gRPC port, or one without TLS, will not change).
  const NotAnswered = notThere ? NoRuntimeYet : Error;
  throw new NotAnswered(`no tesseract-core runtime answered GET /openapi.json (${failures.join("; ")}; each is given up to ${OPENAPI_TIMEOUT_MS / 1000} s to answer)`);
}

export interface TesseractCoreOptions {
  /** The generated schema's protobuf package (default: from `info.title`, e.g. tesseract_core.mesh_stats.v1). */
  protoPackage?: string;
  /** Between two rounds of `GET /health` on the runtimes (default 2 s). */
  healthIntervalMs?: number;
  /** How often host names are resolved again for their replicas (default 30 s; 0: only after failures). */
  dnsRefreshMs?: number;
  /** Resolves host names, like `dns.promises.lookup` with `{ all: true }` (tests inject their own). */
  lookup?: Lookup;
  /** Called with every replica's name when host names resolved to other addresses (for logs). */
  onReplicasChange?: (replicas: string[]) => void;
  /** Requests in flight to each runtime at once, all calls together (`--concurrency`; default 16). */
  connections?: number;
  /**
   * How long an evaluation's request whose caller gave up keeps its slot while the runtime computes it,
   * before its connection is closed (`--given-up-hold-ms`; default 60 s; 0: closed at once).
   */
  givenUpHoldMs?: number;
  /** Where the bridge's warnings go (a hold that ran out; a runtime whose connections are all held). */
  logger?: Logger;
  /** How long the start waits for a runtime to resolve and answer /openapi.json (`--runtime-wait-ms`; default 0: not at all). */
  runtimeWaitMs?: number;
  /** How long an evaluation is sent again while no runtime can be reached (`--runtime-retry-ms`; default DEFAULT_RUNTIME_RETRY_MS; 0: UNAVAILABLE at once). */
  runtimeRetryMs?: number;
  /** How long an answer's body may bring no byte once its head has come (default 60 s; 0: no bound): then UNKNOWN naming the runtime. */
  answerStallMs?: number;
}

/** Between two tries of a start that waits for its runtime. */
const RUNTIME_WAIT_RETRY_MS = 1000;

/** Whether the OpenAPI document lists `path` (tesseract-core lists only the endpoints a Tesseract has). */
function listsPath(doc: unknown, path: string): boolean {
  const paths = isPlainObject(doc) && isPlainObject(doc.paths) ? doc.paths : {};
  return Object.hasOwn(paths, path);
}

/**
 * Writes the generated .proto where reflection and proto-loader can read it, at its package's path
 * (a part too long for a file name, from --proto-package, shortened); returns the folder and file.
 */
function writeProto(packageName: string, text: string): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-grpc-bridge-"));
  try {
    const file = path.join(dir, ...packageName.split(".").map((part) => (Buffer.byteLength(part) > 255 ? shortPart(part) : part)), "tesseract.proto");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    return { dir, file };
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Loads the Tesseract that tesseract-core serves at `spec` (one URL or several, comma-separated; a
 * host name stands for every address it resolves to): its schema from the first replica that
 * answers, evaluations on all of them.
 */
export async function loadTesseractCore(spec: string, options: TesseractCoreOptions = {}): Promise<TesseractRuntime> {
  const urls = parseUrls(spec);
  const deadline = performance.now() + (options.runtimeWaitMs ?? 0);
  for (let waited = false; ; waited = true) {
    try {
      return await loadOnce(urls, options);
    } catch (e) {
      const waitMs = Math.min(RUNTIME_WAIT_RETRY_MS, deadline - performance.now());
      if (!(e instanceof NoRuntimeYet) || waitMs <= 0) throw waited && e instanceof NoRuntimeYet ? new Error(`${e.message}, after waiting ${options.runtimeWaitMs} ms (--runtime-wait-ms)`) : e;
      if (!waited) options.logger?.warn({ why: e.message, waitMs: options.runtimeWaitMs }, "waiting for a tesseract-core runtime to answer (--runtime-wait-ms)");
      await delay(waitMs);
    }
  }
}

/** The runtimes resolved, and the Tesseract they serve loaded; NoRuntimeYet where none resolves or answers. */
async function loadOnce(urls: string[], options: TesseractCoreOptions): Promise<TesseractRuntime> {
  const replicas = await RuntimeReplicas.start(urls, {
    lookup: options.lookup,
    refreshMs: options.dnsRefreshMs,
    onChange: options.onReplicasChange,
    connections: options.connections,
    givenUpHoldMs: options.givenUpHoldMs,
    log: options.logger,
    answerStallMs: options.answerStallMs,
    retryMs: options.runtimeRetryMs,
  });
  try {
    return await bridgedRuntime(urls, replicas, options);
  } catch (e) {
    replicas.close();
    throw e;
  }
}

/** The most paths along which a root's models may be reached (a model held by several fields counts at each). */
const MAX_MESSAGE_PATHS = 100_000;

/**
 * How many levels a field's value takes below its model's object in a request's JSON: a list or
 * dict one, a model one more, an array three more (its object, `data`, and `buffer` as a JSON list).
 */
function jsonLevels(field: protobuf.Field): number {
  const container = field.map || field.repeated ? 1 : 0;
  if (field.resolvedType?.fullName === ".tesseract.v1.Tensor") return container + 3;
  return container + (field.resolvedType instanceof protobuf.Type ? 1 : 0);
}

/**
 * Why the models below `type` cannot be served: reached along more than MAX_MESSAGE_PATHS paths, or
 * along a path whose values nest deeper in JSON than MAX_DEPTH, or undefined. Depth alone
 * (openapi-proto.ts) does not bound the paths: each of n models holding the next twice makes 2^n
 * paths, which the schema's walks (the differentiable paths, field_order) list one by one; 40 took
 * days to start, 18 holding an array overflowed the stack. Counted the way those walk (a model
 * holding itself stops at the repeat), giving up past the limit. Depth is checked along every path
 * (openapi-proto.ts checks it only where it first writes a model), counted as a request's JSON nests
 * (jsonLevels, below `{"inputs": …}`), the limit the REST API, the CLI and a runtime's answers are
 * read with: counted in models, chains 97 to 100 deep were served that no request could reach.
 */
function manyPaths(type: protobuf.Type, which: "inputs" | "outputs"): string | undefined {
  let count = 0;
  let tooDeep: { path: string; level: number } | undefined;
  const onPath = new Set<protobuf.Type>();
  const keys: string[] = [];
  const visit = (t: protobuf.Type, level: number): boolean => {
    if (onPath.has(t)) return true;
    if (++count > MAX_MESSAGE_PATHS) return false;
    onPath.add(t);
    const within = t.fieldsArray.every((f) => {
      keys.push(jsonKey(f) + (f.map ? ".{}" : f.repeated ? ".[]" : ""));
      const below = level + jsonLevels(f);
      if (below > MAX_DEPTH) tooDeep = { path: keys.join("."), level: below };
      const ok = below <= MAX_DEPTH && (!(f.resolvedType instanceof protobuf.Type) || f.resolvedType.fullName === ".tesseract.v1.Tensor" || visit(f.resolvedType, below));
      keys.pop();
      return ok;
    });
    onPath.delete(t);
    return within;
  };
  if (visit(type, which === "inputs" ? 1 : 0)) return undefined;
  if (tooDeep) {
    const json = which === "inputs" ? `a request's JSON nests ${tooDeep.level} deep here ("inputs", each model, list and dict` : `an answer's JSON nests ${tooDeep.level} deep here (each model, list and dict`;
    return `${clip(tooDeep.path)}: ${json}, and an array's object, "data" and "buffer" list are a level each), deeper than a request or answer may nest (${MAX_DEPTH})`;
  }
  return `the ${which}' models are reached along more than ${MAX_MESSAGE_PATHS} paths (a model held by several fields counts at each): every path is listed (field_order, the differentiable paths); hold such a model once`;
}

/**
 * Arrays the runtime flags DIFFERENTIABLE that are served as not differentiable (a float16 or complex
 * dtype: UNDIFFERENTIABLE_DTYPES): a gradient request naming one is refused saying why, and the start
 * warns of them, since Describe leaves them out of the differentiable paths the runtime lists.
 */
function explainUndifferentiable(runtime: TesseractRuntime, root: protobuf.Root, undifferentiable: Record<string, Record<string, string>>, logger?: Logger): void {
  const arrays: string[] = [];
  for (const [message, fields] of Object.entries(undifferentiable)) {
    const type = root.lookupType(message);
    for (const [name, dtype] of Object.entries(fields)) {
      const field = type.fields[name];
      const why = `the tesseract-core runtime declares it ${dtype} ${UNDIFFERENTIABLE_DTYPES[dtype]}`;
      runtime.schema.inputs.explainNotDifferentiable(field, why);
      runtime.schema.outputs.explainNotDifferentiable(field, why);
      arrays.push(`${type.name}.${name} (${dtype})`);
    }
  }
  if (arrays.length > 0) logger?.warn({ arrays }, "arrays the tesseract-core runtime flags DIFFERENTIABLE are served as not differentiable: float16 and complex values cannot be differentiated here (docs/bridge.md)");
}

/** The runtime over `replicas`: its schema from their /openapi.json; on close, the replicas close too. */
async function bridgedRuntime(urls: string[], replicas: RuntimeReplicas, options: TesseractCoreOptions): Promise<TesseractRuntime> {
  const { url, doc } = await fetchOpenApi(replicas);
  let generated: ReturnType<typeof protoFromOpenApi>;
  try {
    generated = protoFromOpenApi(doc, { packageName: options.protoPackage });
  } catch (e) {
    throw new Error(`${url}/openapi.json: ${(e as Error).message}`);
  }
  const root = loadRootFromText(generated.text);
  for (const [name, which] of [[generated.inputType, "inputs"], [generated.outputType, "outputs"]] as const) {
    const problem = manyPaths(root.lookupType(name), which);
    if (problem) throw new Error(`${url}/openapi.json: ${problem}`);
  }
  const info = isPlainObject((doc as { info?: unknown }).info) ? (doc as { info: Record<string, unknown> }).info : {};
  const hasAbstractEval = listsPath(doc, "/abstract_eval");
  const { dir, file } = writeProto(generated.packageName, generated.text);
  let client: TesseractCoreClient | undefined;
  const definition: AnyTesseract = {
    name: String(info.title ?? "Tesseract"),
    version: String(info.version ?? ""),
    description: String(info.description ?? `served by tesseract-core at ${urls.join(", ")}`),
    inputType: generated.inputType,
    outputType: generated.outputType,
    protoFiles: [file],
    apply: (inputs: Record<string, unknown>) => client!.apply(inputs),
    ...(hasAbstractEval ? { abstractEval: async (inputs: unknown, signal?: AbortSignal) => (await client!.abstractEval(inputs as Record<string, unknown>, signal)).outputs } : {}),
  };
  const health = new HealthMonitor(replicas, options.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS);
  const slots = replicas.limits.slots;
  try {
    const runtime = TesseractRuntime.fromRoot(definition, {
      root,
      protoFiles: [file],
      protoIncludeDirs: [dir],
      remoteApply: { apply: (inputs, signal, timeout) => client!.apply(inputs, signal, timeout), timesRequests: true, forJob: (inputs, leaves) => client!.forJob(inputs, leaves), slot: (signal, owner) => slots.take(signal, owner), witnessed: () => replicas.witnessed() },
      enumLiterals: generated.enumLiterals,
      requiredFields: generated.requiredFields,
      nullFields: generated.nullFields,
      documented: generated.documented,
      requestsSent: () => replicas.limits.posts.count,
      requestsHeld: () => replicas.limits.held.count,
      readiness: health,
      abstractEvalAnswer: (inputs, signal) => client!.abstractEval(inputs as Record<string, unknown>, signal),
      unimplemented: hasAbstractEval ? {} : { AbstractEval: `the tesseract-core runtime at ${url} has no /abstract_eval (its /openapi.json does not list it), so AbstractEval is not available` },
      release: () => {
        health.close();
        replicas.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    });
    explainUndifferentiable(runtime, root, generated.undifferentiable, options.logger);
    client = new TesseractCoreClient(replicas, runtime.schema.inputs, runtime.schema.outputs, generated.enumLiterals, generated.requiredFields, generated.nullFields);
    // Outputs cached from a runtime that went away are not its successor's (a redeploy changes them):
    // an Apply answered them unasked, and a forward Jacobian set them against the new runtime's
    // (evaluation-cache.ts says what is seen of a replacement, and what is not).
    replicas.onReplaced(() => runtime.evaluationCache?.clear());
    return runtime;
  } catch (e) {
    health.close();
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
