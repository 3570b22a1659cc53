/**
 * tesseract-core's REST API for the served Tesseract, with fastify: `GET /health`, `GET
 * /openapi.json`, `POST /apply`, `/abstract_eval` (when the Tesseract has abstractEval), `/jacobian`,
 * `/jacobian_vector_product`, `/vector_jacobian_product`. Handlers call the runtime's public surface;
 * every request is tracked by the server's call registry, so gradient jobs share the gRPC side's
 * admission limits, deadlines and graceful shutdown, and are logged and counted the same way.
 */
import * as grpc from "@grpc/grpc-js";
import type * as http from "node:http";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import ndarray from "ndarray";
import type * as protobuf from "protobufjs";
import type { BearerTokens } from "../../common/bearer-tokens";
import { boundedDetails, Code, invalidArgument, isTesseractError, TesseractError } from "../../common/errors";
import { arrayObject, numpyDtype, refuseExtraArrayKeys, tensorFromArrayObject, type ArrayEncoding } from "../../common/numpy-arrays";
import { emptyRecord, isPlainObject } from "../../common/records";
import { exactJson } from "../../common/exact-json";
import { parsePythonLiterals } from "../../common/python-json";
import { strictUtf8, utf8Failure } from "../../common/utf8";
import { decodeTensor, tooManyMessages } from "../../common/tensor-codec";
import type { CallRegistry, TrackedCall } from "../grpc/calls";
import type { ServerTls } from "../grpc/tls";
import { ServerSockets } from "../grpc/server-sockets";
import { SILENT_CONNECTION_MS } from "../grpc/silent-connections";
import type { GradientRequest, TesseractRuntime } from "../runtime";
import type { AbstractEvalAnswer } from "../tesseract";
import { bracedKey, parsePath } from "../../common/paths";
import { checkBodyDepth, detailOf, firstEntries, httpStatusOf, valueError, type DetailEntry } from "./errors";
import { envelopeDetail, ENVELOPES } from "./envelopes";
import { inputsAny, messageJson } from "../schema/json-messages";
import { takesNull } from "../schema/nullable-fields";
import { jsonKeys, keyPath, keySegments, namePath } from "../schema/json-keys";
import { requireFields } from "../schema/output-casting";
import { openApiDocument, servedEndpoints } from "./openapi";
import { otherCallsTurn } from "./io-turn";
import { finiteDifferenceOptions } from "./options";

/** The most a request's headers and body may take to arrive (a 64 MiB body at half a MB/s). */
const REQUEST_TIMEOUT_MS = 120_000;
/** How often Node looks for requests past REQUEST_TIMEOUT_MS. */
const CONNECTIONS_CHECKING_MS = 5_000;

export interface RestServerOptions {
  runtime: TesseractRuntime;
  calls: CallRegistry;
  host: string;
  port: number;
  /** Largest request body, and the bound on a Jacobian's FP64 values. */
  maxMessageBytes: number;
  tokens?: BearerTokens;
  /** Health checks need a token too. */
  authHealth?: boolean;
  tls?: ServerTls;
  /** How long a TLS handshake may take (the gRPC port's silentConnectionMs). */
  silentConnectionMs?: number;
}

export interface RestServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The answer's array encoding from the Accept header (tesseract-core: json, json+base64,
 * json+binref): the supported type of highest quality, the first listed among equals; `q=0` says
 * "not this one" (it answered base64 to `application/json+base64;q=0, application/json`).
 */
export function encodingOf(accept: string | undefined): ArrayEncoding {
  if (!accept) return "json";
  const ranked = accept
    .split(",")
    .map((part, order) => {
      const [type, ...parameters] = part.split(";").map((p) => p.trim().toLowerCase());
      const q = parameters.find((p) => /^q\s*=/.test(p));
      return { type, quality: q === undefined ? 1 : Number(q.slice(q.indexOf("=") + 1)), order };
    })
    .filter(({ quality }) => quality > 0)
    .sort((a, b) => b.quality - a.quality || a.order - b.order);
  for (const { type } of ranked) {
    if (type === "*/*" || type === "application/*" || type === "application/json") return "json";
    if (type === "application/json+base64") return "base64";
  }
  if (/json\+binref/i.test(accept)) {
    throw new TesseractError(Code.INVALID_ARGUMENT, 'Accept: application/json+binref is not supported: binref writes arrays to files on the server\'s disk; use application/json or application/json+base64');
  }
  throw new TesseractError(Code.INVALID_ARGUMENT, `Accept: ${accept.slice(0, 100)} is not supported; use application/json or application/json+base64`);
}

/** An HTTP request as the call registry's call: its x-request-id, and "cancelled" when the client goes away first. */
function trackedCall(calls: CallRegistry, request: FastifyRequest, reply: FastifyReply, route: string): TrackedCall {
  const metadata = new grpc.Metadata();
  const id = request.headers["x-request-id"];
  // Only a value grpc-js takes (it threw on a byte past ASCII, answered as a 500); the registry replaces one that is no sane token.
  if (typeof id === "string" && /^[\x20-\x7e]*$/.test(id)) metadata.set("x-request-id", id);
  return calls.track(
    {
      metadata,
      on: (_event, listener) => reply.raw.on("close", () => reply.raw.writableFinished || listener()),
      getDeadline: () => Infinity,
    },
    `REST ${route}`,
  );
}

type Body = Record<string, unknown>;

/** The body's array objects (tangent or cotangent vectors) as ndarrays, keyed by path (of `type`'s field names: json-keys.ts). */
function vectors(runtime: TesseractRuntime, body: Body, field: string, type: protobuf.Type) {
  const value = body[field] as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => {
      const where = `${field}.${bracedKey(key)}`;
      if (!isPlainObject(v)) throw invalidArgument(`${where} is not an array object {"shape", "dtype", "data"}`);
      refuseExtraArrayKeys(v, where);
      return [namePath(type, key), decodeTensor(tensorFromArrayObject(v, where), where, runtime.decodeLimits)];
    }),
  );
}

/**
 * Refuses an envelope with more messages than --max-request-messages, counted as the gRPC decoder
 * counts them (a path list's strings; a vector map's entries, each a map entry and a tensor), before
 * any is read; `inputs` is counted as it is converted (json-messages.ts).
 */
function checkEnvelopeMessages(body: Body, limit: number | undefined): void {
  if (limit === undefined) return;
  let messages = 0;
  for (const [field, value] of Object.entries(body)) {
    if (Array.isArray(value)) messages += value.length;
    else if (field.endsWith("_vector") && isPlainObject(value)) messages += 2 * Object.keys(value).length;
    if (messages > limit) throw tooManyMessages(limit, field);
  }
}

/**
 * 422 with a validation-error body, 401 with its challenge, 5xx as text, others as `{"detail": ...}`;
 * a message cut as a gRPC status's is (an apply's error of a megabyte was answered whole).
 */
function sendError(reply: FastifyReply, status: number, error: { message: string }, detail?: DetailEntry[]) {
  if (status === 422) return reply.code(422).type("application/json").send({ detail: detail ?? [valueError(["body"], error.message)] });
  if (status === 401) reply.header("www-authenticate", "Bearer");
  const message = boundedDetails(error.message);
  if (status >= 500) return reply.code(status).type("text/plain; charset=utf-8").send(message);
  return reply.code(status).type("application/json").send({ detail: message });
}

const INVALID_UTF8 = "TESSERACT_GRPC_INVALID_UTF8";

/**
 * JSON bodies, strictly: UTF-8 that does not decode is refused (never read with replacement
 * characters), and keys such as `__proto__` are ordinary keys (JSON.parse makes them own data
 * properties; fastify's default parser refuses the body as if it were not JSON).
 */
function parseJsonBody(request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
  // A path or method not served is 404 or 405 whatever its body, as FastAPI routes before it reads one.
  if (request.is404) return done(null, undefined);
  // A compressed body was read as JSON text ("not valid UTF-8 at byte 1"): the 415 of RFC 7694 says what to send.
  const encoding = request.headers["content-encoding"];
  if (encoding !== undefined && !/^\s*(identity)?\s*$/i.test(String(encoding))) {
    return done(Object.assign(new Error(`the body has Content-Encoding ${JSON.stringify(String(encoding).slice(0, 60))}, which this server does not decode: send it uncompressed`), { statusCode: 415 }));
  }
  // Node decodes chunked alone and hands on the body of "gzip, chunked" still compressed (a 422 at
  // its byte 1 followed); HTTP/1.1 answers a transfer coding it does not decode with 501.
  const transfer = request.headers["transfer-encoding"];
  if (transfer !== undefined && String(transfer).split(",").some((coding) => !/^\s*(chunked|identity)\s*$/i.test(coding))) {
    return done(Object.assign(new Error(`the body has Transfer-Encoding ${JSON.stringify(String(transfer).slice(0, 60))}, which this server does not decode: send it with Transfer-Encoding: chunked alone, or a Content-Length`), { statusCode: 501 }));
  }
  const text = strictUtf8(body as Buffer);
  if (text === undefined) {
    return done(Object.assign(new Error(`the body is not valid UTF-8: ${utf8Failure(body as Buffer)}; JSON is read as UTF-8 only`), { code: INVALID_UTF8 }));
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (refusal) {
    // Python's literals are read after a turn for other calls: the refusal took up to a whole parse.
    void otherCallsTurn().then(() => {
      try {
        value = parsePythonLiterals(text, refusal);
      } catch (e) {
        return done(e as Error);
      }
      done(null, value);
    });
    return;
  }
  done(null, value);
}

/** The fastify app: limits, TLS, tesseract-core's error bodies, and the bearer-token check. */
function createApp(options: RestServerOptions): FastifyInstance {
  const { calls, tokens } = options;
  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: options.maxMessageBytes,
    // A request must arrive whole within REQUEST_TIMEOUT_MS (a body that never ends held its
    // connection for good), and closing ends every connection left after the calls' grace (one
    // that never sent a whole request kept SIGTERM from ever finishing).
    requestTimeout: REQUEST_TIMEOUT_MS,
    forceCloseConnections: true,
    // Node checks requestTimeout every 30 s by default: a request cut short was closed after up to 150 s.
    http: { connectionsCheckingInterval: CONNECTIONS_CHECKING_MS },
    // A path that is not valid percent-encoding (`/apply%`) names no route: 404 as FastAPI answers
    // (Python's unquote keeps a bad escape), not fastify's 400 echoing the whole URL.
    frameworkErrors: (error: Error & { code?: string }, _request: unknown, reply: { code(n: number): { type(t: string): { send(body: unknown): void } } }) =>
      error.code === "FST_ERR_BAD_URL" ? reply.code(404).type("application/json").send({ detail: "Not Found" }) : reply.code(400).type("application/json").send({ detail: "Bad Request" }),
    // `/apply/` is `/apply`: FastAPI redirects it there (307, which clients follow with the same POST); it was a 404.
    routerOptions: { ignoreTrailingSlash: true },
    // HEAD on /health or /openapi.json is 405 with Allow: GET, as FastAPI's GET routes answer it
    // (fastify made a HEAD route of each, 200).
    exposeHeadRoutes: false,
    // A handshake not finished within the gRPC port's silence is given up (Node's default: 2 minutes).
    ...(options.tls ? { https: { connectionsCheckingInterval: CONNECTIONS_CHECKING_MS, handshakeTimeout: options.silentConnectionMs ?? SILENT_CONNECTION_MS, cert: options.tls.cert, key: options.tls.key, ...(options.tls.clientCa ? { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) } } : {}),
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    // pydantic's json_invalid ("Invalid JSON: {error}") needs ctx.error, as FastAPI sends it.
    const jsonInvalid = (msg: string, why: string): DetailEntry[] => [{ type: "json_invalid", loc: ["body"], msg, ctx: { error: why } }];
    if (error.code === INVALID_UTF8) return sendError(reply, 422, error, jsonInvalid(error.message, error.message));
    if (error.code === "FST_ERR_CTP_INVALID_JSON_BODY" || error instanceof SyntaxError) {
      const why = error.message.slice(0, 200);
      return sendError(reply, 422, error, jsonInvalid(`JSON decode error: ${why}`, why));
    }
    // A Content-Type fastify cannot parse at all (";charset=utf-8"): the same 415 as another type's.
    if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return sendError(reply, 415, { message: notJson(request.headers["content-type"]) });
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      // Answered once the rest of the body is read: closed before, the connection was reset under a
      // client that writes its whole body before reading (Python's), which then saw a broken pipe
      // instead of the 413 (tesseract-core's client raised a ConnectionError).
      return discardBody(request.raw, DISCARDED_BODY_BYTES).then(() => sendError(reply, 413, { message: tooLarge(options.maxMessageBytes) }));
    }
    return sendError(reply, error.statusCode ?? 500, error);
  });
  // fastify reads text/plain as a string (a 422 "must be object" followed); here it is another type, 415.
  app.removeContentTypeParser(["application/json", "text/plain"]);
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, parseJsonBody);
  // application/<anything>+json is JSON too, as FastAPI reads it (application/vnd.api+json was a 415).
  app.addContentTypeParser(/^application\/[\w.!#$&^+-]*\+json(\s*;.*)?$/i, { parseAs: "buffer" }, parseJsonBody);
  // A body without a Content-Type is read as JSON, as FastAPI reads it; another type is refused saying what to send.
  app.addContentTypeParser("*", { parseAs: "buffer" }, (request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => {
    const type = request.headers["content-type"];
    if (type === undefined || request.is404) return parseJsonBody(request, body, done);
    done(Object.assign(new Error(notJson(type)), { statusCode: 415 }));
  });
  // A path served under another method is 405 with Allow, as FastAPI answers; any other is 404.
  app.setNotFoundHandler((request, reply) => {
    const url = request.url.split("?")[0];
    const allowed = ["GET", "POST"].filter((method) => app.hasRoute({ method, url } as never));
    if (allowed.length > 0) return reply.code(405).header("allow", allowed.join(", ")).type("application/json").send({ detail: "Method Not Allowed" });
    return reply.code(404).type("application/json").send({ detail: "Not Found" });
  });
  // An empty Content-Type is none, as FastAPI reads it (fastify answered a bare 415 before any parser).
  app.addHook("onRequest", async (request) => {
    if (typeof request.headers["content-type"] === "string" && request.headers["content-type"].trim() === "") delete request.headers["content-type"];
  });
  app.addHook("onRequest", async (request, reply) => {
    // The path alone decides (a query string, `/health?probe=1`, asked for a token).
    if (!tokens || (/^\/health\/?$/.test(request.url.split("?")[0]) && !options.authHealth)) return;
    if (tokens.accepts(request.headers.authorization)) return;
    const details = "a valid bearer token is required (header Authorization: Bearer <token>)";
    calls.refused(`REST ${request.url.split("?")[0]}`, Code.UNAUTHENTICATED, details);
    return sendError(reply, 401, { message: details });
  });
  return app;
}

/** The 413's message for a body over the limit. */
const tooLarge = (maxMessageBytes: number) => `the body is larger than this server's limit of ${maxMessageBytes} bytes (--max-message-bytes)`;

/** The most of a refused body read before its 413 is sent (past it, the connection is closed as the 413 leaves). */
const DISCARDED_BODY_BYTES = 256 << 20;

/** Reads and drops the rest of a request's body, up to `maxBytes` (within the request's timeout). */
function discardBody(raw: http.IncomingMessage, maxBytes: number): Promise<void> {
  if (raw.complete || raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let read = 0;
    const done = () => {
      raw.off("data", counted).off("end", done).off("close", done);
      resolve();
    };
    const counted = (chunk: Buffer) => (read += chunk.length) > maxBytes && done();
    raw.on("data", counted).once("end", done).once("close", done).resume();
  });
}

/**
 * A request sent with `Expect: 100-continue` (curl's for big bodies) is told to send its body only
 * if its Content-Length is within the limit; else it is answered 413 at once (Node sent 100 Continue
 * to every one, and the body was then refused as it came).
 */
function continueWithinLimit(server: http.Server, maxMessageBytes: number): void {
  server.on("checkContinue", (request: http.IncomingMessage, response: http.ServerResponse) => {
    if (Number(request.headers["content-length"]) > maxMessageBytes) {
      response.writeHead(413, { "content-type": "application/json", connection: "close" }).end(JSON.stringify({ detail: tooLarge(maxMessageBytes) }));
      return;
    }
    response.writeContinue();
    server.emit("request", request, response);
  });
}

/** The 415's message for a body of another Content-Type than JSON. */
function notJson(type: string | undefined): string {
  return `the body must be JSON: send Content-Type: application/json (got ${JSON.stringify((type ?? "").slice(0, 60))})`;
}

/**
 * One endpoint's work in two steps: reading the body (inputs converted and validated, vectors and
 * options read; it throws the body's 422s), then, given the call's signal, the call itself.
 */
type EndpointBody = (request: Body, encoding: ArrayEncoding, query: Record<string, unknown>) => (signal: AbortSignal) => Promise<unknown>;

/** One endpoint: tracked, admitted (gradient jobs), raced against its abort, errors mapped. */
function route(app: FastifyInstance, options: RestServerOptions, endpoint: string, job: boolean, body: EndpointBody): void {
  const { calls, runtime } = options;
  // Messages name fields by their keys (the JSON's) or their names (the engine's paths).
  const inputType = runtime.schema.inputs.type;
  const inputFields = new Set([...inputType.fieldsArray.map((f) => f.name), ...jsonKeys(inputType)]);
  app.post(`/${endpoint}`, async (request, reply) => {
    // Before the call is tracked, as a request model's refusal is before FastAPI's endpoint runs.
    const refused = envelopeDetail(request.body, ENVELOPES[endpoint]);
    if (refused) return sendError(reply, 422, { message: "" }, refused);
    const t = trackedCall(calls, request, reply, `/${endpoint}`);
    let busy = false;
    try {
      if (t.refusal) throw t.refusal;
      checkBodyDepth(request.body);
      checkEnvelopeMessages(request.body as Body, runtime.decodeLimits.maxMessages);
      const encoding = encodingOf(request.headers.accept);
      const work = (async () => {
        await otherCallsTurn();
        // The body is read before a job slot is asked for: a malformed request is its 422 even while
        // the queue is full, as FastAPI validates the request model before its endpoint runs (it was a 429).
        const call = body(request.body as Body, encoding, request.query as Record<string, unknown>);
        if (job) await t.admit().catch((e) => ((busy = true), Promise.reject(e)));
        await otherCallsTurn();
        return call(t.signal);
      })();
      const answer = await t.race(work);
      t.finish();
      await otherCallsTurn();
      const text = exactJson(answer);
      // Writing it out (tens of MB) is a step of its own.
      await otherCallsTurn();
      return reply.type("application/json").send(text);
    } catch (e) {
      const status = t.finish(e);
      const code = status?.code ?? Code.INTERNAL;
      const error = isTesseractError(e) && e.code === code ? e : new TesseractError(code as Code, status?.details ?? "internal error");
      const http = httpStatusOf(code, busy);
      return sendError(reply, http, error, http === 422 ? firstEntries(detailOf(error, inputFields, request)) : undefined);
    }
  });
}

/** The Tesseract's endpoints, tesseract-core's shapes in and out, over the runtime's public surface. */
function addEndpoints(app: FastifyInstance, options: RestServerOptions): void {
  const { runtime } = options;
  // A bridged Tesseract's enums read and write as its own strings (tesseract-core's Literals).
  const { enumLiterals } = runtime;
  // A bridged runtime's required list or dict left out of the body: once converted, it would be an
  // empty one (protobuf cannot tell them apart) and the runtime would compute with it. Others require none.
  const requiresFields = Object.keys(runtime.requiredFields).length > 0;
  const inputs = (json: unknown, abstract = false) => {
    if (requiresFields) requireFields(runtime.schema.inputs.type, json, "inputs", runtime.requiredFields);
    return inputsAny(runtime.schema.inputs, json, abstract, { enumLiterals, maxMessages: runtime.decodeLimits.maxMessages, strictArrays: true, takesNull: (field) => takesNull(field, runtime) });
  };
  // Paths come and go in keys, as tesseract-core writes them; the engine's are in field names (json-keys.ts).
  const [inputType, outputType] = [runtime.schema.inputs.type, runtime.schema.outputs.type];
  const gradient = (body: Body, inPaths: string, outPaths: string, query: Record<string, unknown>): Omit<GradientRequest, "signal"> => ({
    inputs: runtime.decodeInputs(inputs(body.inputs)),
    inputPaths: (body[inPaths] as string[]).map((p) => namePath(inputType, p)),
    outputPaths: (body[outPaths] as string[]).map((p) => namePath(outputType, p)),
    options: finiteDifferenceOptions(query, body.options),
  });
  const keyed = (result: Record<string, ndarray.NdArray<Float64Array>>, encoding: ArrayEncoding, type: protobuf.Type) =>
    Object.fromEntries(Object.entries(result).map(([path, a]) => [keyPath(type, path), arrayObject(a, encoding)]));

  route(app, options, "apply", false, (body, encoding) => {
    const message = inputs(body.inputs);
    return async (signal) => {
      const outputs = await runtime.applyMessage(message, signal);
      await otherCallsTurn();
      const json = messageJson(runtime.schema.outputs.type, runtime.schema.outputs.decodeAny(outputs, "outputs"), encoding, enumLiterals, "outputs");
      // A bridged runtime's required Optional output answered null, which its model still lists (it was left out).
      requireFields(runtime.schema.outputs.type, json, "outputs", {}, runtime.nullFields);
      return json;
    };
  });
  if (servedEndpoints(runtime).includes("abstract_eval")) {
    route(app, options, "abstract_eval", false, (body) => {
      const abstract = runtime.decodeAbstractInputs(inputs(body.inputs, true));
      return async (signal) => abstractOutputs(await runtime.abstractEvalAnswer(abstract, signal), outputType);
    });
  }
  route(app, options, "jacobian", true, (body, encoding, query) => {
    const request = gradient(body, "jac_inputs", "jac_outputs", query);
    return async (signal) => {
      const { entries } = await runtime.jacobian({ ...request, signal, maxBytes: options.maxMessageBytes });
      // Keyed by paths in the runtime's keys, "__proto__" among them: objects without a prototype
      // (a plain one took it as its prototype's, and the entry went onto Object.prototype).
      const answer = emptyRecord<Record<string, unknown>>();
      for (const e of entries) (answer[keyPath(outputType, e.outputPath)] ??= emptyRecord())[keyPath(inputType, e.inputPath)] = arrayObject(ndarray(e.values, e.shape), encoding);
      return answer;
    };
  });
  route(app, options, "jacobian_vector_product", true, (body, encoding, query) => {
    const tangent = vectors(runtime, body, "tangent_vector", inputType);
    const request = gradient(body, "jvp_inputs", "jvp_outputs", query);
    return async (signal) => keyed((await runtime.jvp({ ...request, signal, tangent })).result, encoding, outputType);
  });
  route(app, options, "vector_jacobian_product", true, (body, encoding, query) => {
    const cotangent = vectors(runtime, body, "cotangent_vector", outputType);
    const request = gradient(body, "vjp_inputs", "vjp_outputs", query);
    return async (signal) => keyed((await runtime.vjp({ ...request, signal, cotangent })).result, encoding, inputType);
  });
}

export async function startRestServer(options: RestServerOptions): Promise<RestServer> {
  const app = createApp(options);
  // A Tesseract that can be unready (its tesseract-core runtimes do not answer) says so, as gRPC health does.
  const { readiness } = options.runtime;
  // Unavailable while shutting down too, as gRPC health is: a balancer stops sending calls that would be refused.
  app.get("/health", async (_request, reply) => {
    if (options.calls.shuttingDown) return reply.code(503).send({ status: "unavailable", detail: "the server is shutting down" });
    return readiness && !readiness.ready ? reply.code(503).send({ status: "unavailable", detail: readiness.describe() }) : { status: "ok" };
  });
  const openapi = openApiDocument(options.runtime);
  app.get("/openapi.json", async () => openapi);
  addEndpoints(app, options);
  // Every socket, from its TCP connection on: one whose TLS handshake has not finished is no HTTP
  // connection yet, which closing (forceCloseConnections) does not end, and a client that opened one
  // and sent nothing (or half a ClientHello) held the shutdown for Node's handshake timeout, 2 minutes.
  const sockets = new ServerSockets();
  sockets.track(app.server);
  continueWithinLimit(app.server as http.Server, options.maxMessageBytes);
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    port,
    close: () => {
      const closed = app.close();
      sockets.destroyAll();
      return closed;
    },
  };
}

/**
 * abstractEval's `{path, shape, datatype}` list as the output object, arrays as `{"shape", "dtype"}`;
 * over a bridged runtime's own answer, so that its other outputs stay (tesseract-core answers the
 * whole output model: they were left out), each array in the datatype Apply answers it in.
 */
function abstractOutputs({ outputs, answered }: AbstractEvalAnswer, type: protobuf.Type): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(answered ?? {});
  for (const { path, shape, datatype } of outputs) {
    const keys = keySegments(type, parsePath(path)).map((s) => (s.kind === "field" ? s.name : s.kind === "key" ? s.key : s.kind === "index" ? s.index : ""));
    let node = out as Record<string | number, unknown>;
    // Keys may be a caller's map keys: "__proto__" is set as a key, never read or set as the prototype.
    const put = (key: string | number, value: unknown) => Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
    keys.forEach((key, i) => {
      if (i === keys.length - 1) put(key, { shape, dtype: numpyDtype(datatype) });
      else {
        if (!Object.hasOwn(node, key) || node[key] == null) put(key, typeof keys[i + 1] === "number" ? [] : emptyRecord());
        node = node[key] as Record<string | number, unknown>;
      }
    });
  }
  return out;
}
