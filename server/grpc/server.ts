/** Starts a gRPC server for one Tesseract, with health checking and reflection. */
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { addHealth } from "./health";
import { DEFAULT_MAX_MESSAGE_BYTES, FLOW_CONTROL_WINDOW_BYTES, MAX_CONCURRENT_STREAMS } from "../../common/transport-defaults";
import { Code } from "../../common/errors";
import { DEFAULT_REPLICA_CONCURRENCY } from "../eval/concurrent";
import { loadTesseract } from "../loader";
import { givenUpHoldMs, isTesseractCoreUrl } from "../bridge/settings";
import { createLogger, silentLogger, type Logger } from "../log";
import type { TesseractRuntime } from "../runtime";
import { SERVICE_NAME } from "../schema/contract";
import { loadDefinition } from "./definition";
import { BearerTokens } from "../../common/bearer-tokens";
import { bearerTokenInterceptor, UNAUTHENTICATED_DETAILS } from "./auth";
import { CallRegistry, DEFAULT_LIMITS, type CallLimits } from "./calls";
import { refuseCompressedFlagWithoutEncoding } from "./compressed-flag";
import { keepIllegalTimeouts, refuseMalformedTimeouts } from "./timeout-header";
import { dropMessagesAfterEnd } from "./ended-stream";
import { sendFramedMessagesAsTheyAre } from "./framed-messages";
import { mergeSmallFrames } from "./small-frames";
import { watchHttp2Servers, watchHttp2Sessions } from "./http2-sessions";
import { ServerSockets } from "./server-sockets";
import { closeBrokenConnections } from "./broken-connections";
import { closeSilentConnections, closeSilentHandshakes, destroyClosedSessions, SILENT_CONNECTION_MS } from "./silent-connections";
import { closeBeforeResetGuard } from "./stream-resets";
import { endStalledStreams, HELD_MESSAGES_PER_LIMIT } from "./stalled-streams";
import { quoteUnknownMethods } from "./unknown-methods";
import { guardDeserializers, guardInterceptor } from "./guard";
import { createHandlers, type HandlerConfig } from "./handlers";
import { addReflection, ReflectionIndex, servedDescriptors } from "./reflection";
import { warmTransport } from "./warm-transport";

import { DEFAULT_LIMITS as DEFAULT_TENSOR_LIMITS, DEFAULT_MAX_MESSAGES } from "../../common/tensor-codec";
import { MIN_CHUNK_BYTES } from "./rows-stream";
import { serverCredentials, tlsMode, type ServerTls } from "./tls";

import { DEFAULT_CACHE_BYTES } from "../eval/evaluation-cache";
import { DEFAULT_WARM_UP_MS, warmUp } from "../warmup";

export interface ServeOptions {
  /** A loaded runtime, a bundled name, a module path, or tesseract-core runtimes' URLs (comma-separated). */
  tesseract: TesseractRuntime | string;
  /** Default 127.0.0.1: never exposed beyond this machine unless asked. */
  host?: string;
  /** Default 50051; 0 picks a free port. */
  port?: number;
  /** JacobianRows message budget; default 1 MiB, or the message limit where that is smaller. */
  streamChunkBytes?: number;
  /** Receive and send limit for every message; default 64 MiB. */
  maxMessageBytes?: number;
  /** Worker threads for apply: a count, 0 for inline, or "auto" (default; see eval/backends.ts). */
  workers?: number | "auto";
  /** gRPC target of apply replicas (other tesseract-grpc servers) to evaluate on instead. */
  replicas?: string;
  /**
   * The protobuf package of the types generated for a tesseract-core runtime's Tesseract (when
   * `tesseract` is its URL); default from its title, e.g. tesseract_core.mesh_stats.v1.
   */
  protoPackage?: string;
  /**
   * For a tesseract-core runtime's Tesseract: how often its runtimes' `/health` is polled (default
   * 2 s); health reports NOT_SERVING while none answers.
   */
  healthIntervalMs?: number;
  /**
   * For a tesseract-core runtime's Tesseract named by a host name: how often the name is resolved
   * again, each address being a replica (default 30 s; 0: only after connection failures).
   */
  dnsRefreshMs?: number;
  /**
   * For a tesseract-core runtime's Tesseract: how long the start waits for a runtime to resolve and
   * answer `GET /openapi.json` (a container still starting; default 0: the start stops at once).
   */
  runtimeWaitMs?: number;
  /**
   * For a tesseract-core runtime's Tesseract: how long an evaluation is sent again while no runtime
   * can be reached (connection refused, a proxy's 502 or 503: a container restarting) before the
   * call fails UNAVAILABLE (default DEFAULT_RUNTIME_RETRY_MS; 0: at once). The call's deadline and
   * cancellation end the wait sooner.
   */
  runtimeRetryMs?: number;
  /** Apply calls in flight per request on the replicas or the tesseract-core runtimes; default 16. */
  concurrency?: number;
  /**
   * For a tesseract-core runtime's Tesseract: how long an evaluation's HTTP request whose caller gave
   * up (cancelled, past its deadline or `evalTimeoutMs`) keeps its place among the `concurrency` per
   * runtime while the runtime still computes it; then its connection is closed and the place freed,
   * with a warning. Default: the larger of 60 s and `evalTimeoutMs`; 0: closed at once.
   */
  givenUpHoldMs?: number;
  /** For replicas that serve TLS or require a bearer token: the credentials and token to call them with. */
  replicaCredentials?: grpc.ChannelCredentials;
  replicaToken?: string;
  /** Gradient jobs at once, jobs waiting, default and maximum deadlines (calls.ts). */
  limits?: Partial<CallLimits>;
  /** Largest tensor a request may carry, in elements (default 2^28) and bytes (default: no limit but the message's). */
  maxTensorElements?: number;
  maxTensorBytes?: number;
  /** Most messages (tensors, map entries, nested messages) one request may hold; default 100 000. */
  maxRequestMessages?: number;
  /** Most rows one JacobianRows call may send (default 0: no limit). */
  maxRowsPerStream?: number;
  /**
   * How long a JacobianRows call may wait for its reader to take a message before it ends with
   * RESOURCE_EXHAUSTED, freeing its job slot (default 5 minutes; 0: forever).
   */
  streamStallMs?: number;
  /** How long one apply may take (default 0: no limit); see eval/timeout.ts for what it can stop. */
  evalTimeoutMs?: number;
  /**
   * Bytes of apply outputs kept for reuse by later requests on the same inputs (default 64 MiB; 0:
   * none); see eval/evaluation-cache.ts.
   */
  evalCacheBytes?: number;
  /**
   * Most milliseconds spent warming the engine up on the Tesseract's example inputs before serving
   * (default 1000; 0: no warm-up); see warmup.ts.
   */
  warmUpMs?: number;
  /**
   * Close each client connection (GOAWAY) after this many ms (default 0: never); calls in flight
   * finish. Clients then reconnect and re-resolve DNS, so an engine sees replicas added since.
   */
  maxConnectionAgeMs?: number;
  /**
   * A connection with no call for this long is closed (0: never; default DEFAULTS.maxConnectionIdleMs).
   * Without it, a connection whose client went quiet, or that broke an HTTP/2 rule (Node answers
   * GOAWAY and never closes its socket, even once the client has gone), held its socket for good:
   * 20 000 of them took every file descriptor, and no client could connect again.
   */
  maxConnectionIdleMs?: number;
  /** Close a connection whose client has sent no HTTP/2 preface after this many ms (default 10 000); each is also pinged every half of it, and closed when a ping goes unanswered that long (3 × this with calls on it). */
  silentConnectionMs?: number;
  /** Also serve tesseract-core's REST API on this port (0 picks a port; unset: no REST API); same host, tokens and TLS. */
  httpPort?: number;
  /** Serve Prometheus metrics at http://host:metricsPort/metrics (0 picks a port; unset: no metrics). */
  metricsPort?: number;
  /** Bearer tokens required on every call (the Tesseract service and reflection; health checks unless `authHealth`). */
  tokens?: string[];
  /** Health checks need a token too (default: exempt, for probes and load balancers). */
  authHealth?: boolean;
  /** TLS (PEM contents); with `clientCa`, mutual TLS. Unset: plaintext. Invalid PEM throws, naming the part. */
  tls?: ServerTls;
  logger?: Logger;
}

export interface RunningServer {
  host: string;
  port: number;
  /** host:port, with IPv6 hosts bracketed. */
  address: string;
  server: grpc.Server;
  health: HealthImplementation;
  runtime: TesseractRuntime;
  calls: CallRegistry;
  /** The metrics port, when metrics are served. */
  metricsPort?: number;
  /** The port of tesseract-core's REST API, when it is served. */
  httpPort?: number;
  /**
   * Graceful shutdown: health turns NOT_SERVING, new calls get UNAVAILABLE, calls in flight get
   * `graceMs` (default 5 s) and are then ended with UNAVAILABLE.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * The parts a server may go without, required on first use: one that serves no tesseract-core
 * runtime, no REST API and no metrics never loads undici, fastify or prom-client (a smaller heap to
 * collect, a quicker start).
 */
const optional = {
  bridge: () => require("../bridge/tesseract-core") as typeof import("../bridge/tesseract-core"),
  rest: () => require("../http/rest-server") as typeof import("../http/rest-server"),
  metrics: () => require("./metrics") as typeof import("./metrics"),
};

/** Every serve default, decided here once; the CLI and Describe read them from here. */
export const DEFAULTS = {
  host: "127.0.0.1",
  port: 50051,
  streamChunkBytes: 1 << 20,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  concurrency: DEFAULT_REPLICA_CONCURRENCY,
  graceMs: 5000,
  evalCacheBytes: DEFAULT_CACHE_BYTES,
  warmUpMs: DEFAULT_WARM_UP_MS,
  streamStallMs: 300_000,
  maxConnectionIdleMs: 60_000,
} as const;

/** A JacobianRows budget must fit one value next to long paths and stay within the message limit. */
export function checkStreamChunkBytes(streamChunkBytes: number, maxMessageBytes: number): void {
  // The limit named first when it is the one at fault (--max-message-bytes 100 was refused as the default chunk's fault).
  if (!(maxMessageBytes >= MIN_CHUNK_BYTES)) throw new Error(`the max message bytes (--max-message-bytes) is ${maxMessageBytes}: expected at least ${MIN_CHUNK_BYTES}, what a JacobianRows message needs for one value beside its paths`);
  if (!(streamChunkBytes >= MIN_CHUNK_BYTES && streamChunkBytes <= maxMessageBytes)) {
    throw new Error(`the stream chunk bytes (--stream-chunk-bytes) is ${streamChunkBytes}: expected ${MIN_CHUNK_BYTES} to the max message bytes (${maxMessageBytes})`);
  }
}

export function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The Tesseract `options.tesseract` names, loaded (a tesseract-core runtime's: replica changes logged). */
async function loadedRuntime(options: ServeOptions, log: Logger): Promise<TesseractRuntime> {
  if (typeof options.tesseract !== "string") return options.tesseract;
  if (!isTesseractCoreUrl(options.tesseract)) return loadTesseract(options.tesseract);
  const onReplicasChange = (replicas: string[]) => log.info({ replicas }, "tesseract-core replicas");
  return optional.bridge().loadTesseractCore(options.tesseract, {
    protoPackage: options.protoPackage,
    healthIntervalMs: options.healthIntervalMs,
    dnsRefreshMs: options.dnsRefreshMs,
    runtimeWaitMs: options.runtimeWaitMs,
    runtimeRetryMs: options.runtimeRetryMs,
    onReplicasChange,
    connections: options.concurrency,
    givenUpHoldMs: givenUpHoldMs(options.givenUpHoldMs, options.evalTimeoutMs),
    logger: log,
  });
}

/** Sets the runtime's request limits and evaluation (inline, workers, replicas) as the options say. */
async function configureRuntime(runtime: TesseractRuntime, options: ServeOptions, maxMessageBytes: number, log: Logger): Promise<void> {
  if (runtime.remoteApply && typeof options.workers === "number" && options.workers > 0) {
    log.info({ workers: options.workers }, "worker threads are not used for a tesseract-core runtime's Tesseract: its evaluations are HTTP requests, up to --concurrency at once");
  }
  runtime.decodeLimits = {
    ...DEFAULT_TENSOR_LIMITS,
    maxElements: options.maxTensorElements ?? DEFAULT_TENSOR_LIMITS.maxElements,
    maxBytes: options.maxTensorBytes ?? 0,
    maxMessages: options.maxRequestMessages ?? DEFAULT_MAX_MESSAGES,
  };
  await runtime.useEvaluation({
    workers: options.workers ?? "auto",
    replicas: options.replicas,
    concurrency: options.concurrency,
    maxMessageBytes,
    evalTimeoutMs: options.evalTimeoutMs ?? 0,
    replicaCredentials: options.replicaCredentials,
    replicaToken: options.replicaToken,
    cacheBytes: options.evalCacheBytes ?? DEFAULTS.evalCacheBytes,
  });
}

/**
 * Before the port is bound: the engine's warm-up (warmup.ts), then the transport's with what is left
 * of `warmUpMs` (warm-transport.ts). An error is logged, never thrown: the server starts regardless.
 */
async function warmUpServer(runtime: TesseractRuntime, service: grpc.ServiceDefinition, config: HandlerConfig, options: ServeOptions, log: Logger): Promise<void> {
  const budgetMs = options.warmUpMs ?? DEFAULTS.warmUpMs;
  const engine = await warmUp(runtime, budgetMs);
  if (engine.error) return void log.warn({ error: engine.error, ms: Math.round(engine.ms) }, "the warm-up on the example inputs failed; serving without it");
  const started = performance.now();
  const privateServer = (calls: CallRegistry) => guardedGrpcServer({ tesseract: runtime }, calls, undefined, config.maxMessageBytes, silentLogger);
  await warmTransport(runtime, service, engine, privateServer, config, budgetMs - engine.ms);
  runtime.forgetMeasurements(); // the transport's warm-up requests measured too
  const { inputPaths, outputPaths, ...report } = engine;
  log.debug({ ...report, ms: Math.round(engine.ms), transportMs: Math.round(performance.now() - started) }, "warm-up");
}

/** A grpc-js server with the guards (deserializers, statuses, framing) and, with tokens, their check. */
function guardedGrpcServer(options: ServeOptions, calls: CallRegistry, tokens: BearerTokens | undefined, maxMessageBytes: number, log: Logger): grpc.Server {
  const rpcName = (path: string) => path.slice(path.lastIndexOf("/") + 1);
  const onRefused = (path: string) => calls.refused(rpcName(path), Code.UNAUTHENTICATED, UNAUTHENTICATED_DETAILS);
  if (!refuseCompressedFlagWithoutEncoding()) log.warn("this grpc-js has no decompressMessage to wrap: messages flagged compressed without grpc-encoding are not refused");
  if (!refuseMalformedTimeouts()) log.warn("this grpc-js has no handleTimeoutHeader to wrap: a malformed grpc-timeout is answered INTERNAL");
  if (!dropMessagesAfterEnd()) log.warn("this grpc-js has no sendMessage to wrap: a stream whose deadline passes may be left without its status");
  if (!sendFramedMessagesAsTheyAre()) log.warn("this grpc-js has no serializeMessage to wrap: JacobianRows copies each row once more");
  if (!mergeSmallFrames()) log.warn("this grpc-js has no handleDataFrame to wrap: a request message in tiny DATA frames holds ~115 bytes of heap per frame");
  // Every service added later (the Tesseract's, health, reflection) gets deserializers that never throw.
  const connectionIdleMs = options.maxConnectionIdleMs ?? DEFAULTS.maxConnectionIdleMs;
  const server = guardDeserializers(
    new grpc.Server({
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
      // Big inputs arrive faster with a wider HTTP/2 window than the 64 KiB default.
      "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
      "grpc.max_concurrent_streams": MAX_CONCURRENT_STREAMS,
      ...(options.maxConnectionAgeMs ? { "grpc.max_connection_age_ms": options.maxConnectionAgeMs } : {}),
      ...(connectionIdleMs > 0 ? { "grpc.max_connection_idle_ms": connectionIdleMs } : {}),
      interceptors: [
        guardInterceptor((path, status, metadata) => calls.refused(rpcName(path), status.code, status.details, metadata)),
        ...(tokens ? [bearerTokenInterceptor(tokens, { authHealth: options.authHealth, onRefused })] : []),
      ],
    }),
  );
  const stalled = endStalledStreams(HELD_MESSAGES_PER_LIMIT * maxMessageBytes, options.streamStallMs ?? DEFAULTS.streamStallMs, (why) => log.warn({ why }, "a stream ended"), takesRequestStream(server, log));
  const silentMs = options.silentConnectionMs ?? SILENT_CONNECTION_MS;
  if (!watchHttp2Sessions(server, keepIllegalTimeouts, closeBeforeResetGuard, closeSilentConnections(silentMs), closeBrokenConnections(silentMs), destroyClosedSessions(silentMs), stalled) || !watchHttp2Servers(server, closeSilentHandshakes(silentMs))) {
    log.warn("this grpc-js has no createHttp2Server to wrap: a connection that cancels ~1000 calls is ended, and its other calls fail; a silent one is kept, and so are the bytes of streams that stall");
  }
  if (!quoteUnknownMethods(server)) log.warn("this grpc-js has no _respondWithError to wrap: a call to an unknown method is answered with its whole path");
  return server;
}

/**
 * Whether the method at a path takes a stream of requests (a client or bidi stream: reflection's),
 * by the handlers grpc-js has registered when it is asked; an unknown path takes one. Without
 * grpc-js's handler map every method is taken to (no stream is ended for a request that does not end).
 */
function takesRequestStream(server: grpc.Server, log: Logger): (path: string) => boolean {
  const handlers = (server as unknown as { handlers?: unknown }).handlers;
  if (!(handlers instanceof Map)) {
    log.warn("this grpc-js has no handler map to read: a stream whose request never ends is kept");
    return () => true;
  }
  return (path) => {
    const type = (handlers.get(path) as { type?: string } | undefined)?.type;
    return type === "clientStream" || type === "bidi";
  };
}

/**
 * Health follows a Tesseract that can be unready (a tesseract-core runtime's, while none of its
 * runtimes answers /health): NOT_SERVING then, SERVING again once it is ready. Returns the stop.
 */
function followReadiness(runtime: TesseractRuntime, health: HealthImplementation, log: Logger): () => void {
  const { readiness } = runtime;
  if (!readiness) return () => {};
  const follow = (ready: boolean) => {
    const status = ready ? "SERVING" : "NOT_SERVING";
    health.setStatus("", status);
    health.setStatus(SERVICE_NAME, status);
    if (ready) log.info({ tesseract: runtime.definition.name }, "the Tesseract's runtimes answer again: SERVING");
    else log.warn({ tesseract: runtime.definition.name }, `${readiness.describe()}: NOT_SERVING`);
  };
  if (!readiness.ready) follow(false);
  return readiness.onChange(follow);
}

/** Binds the gRPC server; a refusal (the port in use, say) names the address and why. */
function bindGrpc(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (err, bound) => {
      // grpc-js says "No address added out of total 1 resolved errors: [listen EADDRINUSE: …]"; the bracket is the why.
      if (err) reject(new Error(`gRPC could not listen on ${address}: ${/errors: \[(.+)\]\s*$/s.exec(err.message)?.[1] ?? err.message}`));
      else resolve(bound);
    }),
  );
}

/**
 * Serves a Tesseract. Whatever fails on the way (a port in use, say) closes what was started before
 * rejecting, the runtime included: a bridged runtime's temporary folder, health polling and
 * connections go with it, and no worker or timer keeps the process alive.
 */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULTS.maxMessageBytes;
  // Unset, the chunk follows a smaller message limit (--max-message-bytes 100000 was refused for the default chunk of 1 MiB).
  const streamChunkBytes = options.streamChunkBytes ?? Math.min(DEFAULTS.streamChunkBytes, maxMessageBytes);
  checkStreamChunkBytes(streamChunkBytes, maxMessageBytes);
  // Before any worker starts: a bad certificate or key fails here, naming the option.
  const credentials = serverCredentials(options.tls);
  const log = options.logger ?? createLogger();
  const runtime = await loadedRuntime(options, log);
  const started: (() => unknown)[] = [() => runtime.close()];
  try {
    await configureRuntime(runtime, options, maxMessageBytes, log);
    return await serveRuntime(runtime, options, { streamChunkBytes, maxMessageBytes, credentials, log }, started);
  } catch (e) {
    // Last started first; a failure to close is not the news.
    for (const close of started.reverse()) await Promise.resolve().then(close).catch(() => {});
    throw e;
  }
}

interface Settings {
  streamChunkBytes: number;
  maxMessageBytes: number;
  credentials: grpc.ServerCredentials;
  log: Logger;
}

/** The transports over a configured runtime; each part started is added to `started`, to close on a failure. */
async function serveRuntime(runtime: TesseractRuntime, options: ServeOptions, { streamChunkBytes, maxMessageBytes, credentials, log }: Settings, started: (() => unknown)[]): Promise<RunningServer> {
  const host = options.host ?? DEFAULTS.host;
  const { service } = loadDefinition(runtime.decodeLimits.maxMessages);
  const reflection = new ReflectionIndex(servedDescriptors(runtime));
  const evalTimeoutMs = options.evalTimeoutMs ?? 0;
  const maxRowsPerStream = options.maxRowsPerStream ?? 0;
  const streamStallMs = options.streamStallMs ?? DEFAULTS.streamStallMs;
  const handlerConfig: HandlerConfig = { streamChunkBytes, maxMessageBytes, maxRowsPerStream, evalTimeoutMs, streamStallMs };
  await warmUpServer(runtime, service, handlerConfig, options, log);
  const calls = new CallRegistry(log, { ...DEFAULT_LIMITS, ...options.limits });
  const tokens = options.tokens && new BearerTokens(options.tokens);
  const server = guardedGrpcServer(options, calls, tokens, maxMessageBytes, log);
  const sockets = new ServerSockets();
  if (!sockets.watch(server)) log.warn("this grpc-js has no createHttp2Server to wrap: closing leaves open the sockets that never spoke HTTP/2 (a TLS handshake not finished)");
  started.push(() => {
    server.forceShutdown();
    sockets.destroyAll();
  });
  server.addService(service, createHandlers(runtime, handlerConfig, calls, service));
  const health = new HealthImplementation({ "": "SERVING", [SERVICE_NAME]: "SERVING" });
  addHealth(server, health, ["", SERVICE_NAME]);
  const stopFollowing = followReadiness(runtime, health, log);
  started.push(stopFollowing);
  addReflection(server, reflection);
  const metrics =
    options.metricsPort === undefined
      ? undefined
      : await new (optional.metrics().ServerMetrics)(runtime, calls).listen(host, options.metricsPort).catch((e: Error) => {
          throw new Error(`metrics could not listen on ${formatAddress(host, options.metricsPort!)}: ${e.message}`);
        });
  if (metrics) started.push(() => metrics.close());

  const port = await bindGrpc(server, formatAddress(host, options.port ?? DEFAULTS.port), credentials);
  const rest =
    options.httpPort === undefined
      ? undefined
      : await optional.rest().startRestServer({ runtime, calls, host, port: options.httpPort, maxMessageBytes, tokens, authHealth: options.authHealth, tls: options.tls, silentConnectionMs: options.silentConnectionMs }).catch((e: Error) => {
          throw new Error(`the REST API could not listen on ${formatAddress(host, options.httpPort!)}: ${e.message}`);
        });
  log.info({ tesseract: runtime.definition.name, host, port, httpPort: rest?.port, streamChunkBytes, maxMessageBytes, workers: options.workers ?? "auto", replicas: options.replicas, tls: tlsMode(options.tls), metricsPort: metrics?.port }, "serving");

  return {
    host,
    port,
    address: formatAddress(host, port),
    server,
    health,
    runtime,
    calls,
    metricsPort: metrics?.port,
    httpPort: rest?.port,
    async close(graceMs: number = DEFAULTS.graceMs) {
      stopFollowing();
      health.setStatus("", "NOT_SERVING");
      health.setStatus(SERVICE_NAME, "NOT_SERVING");
      await calls.drain(graceMs);
      const restClosed = rest?.close();
      await new Promise<void>((resolve) => {
        // Calls were given their grace; what is left (idle connections, health watchers) goes now.
        // A socket that never began HTTP/2 (a TLS handshake not finished, no preface) is no session
        // grpc-js can end, and would keep the shutdown waiting: a second later every socket is
        // ended, and should one still hold it, closing goes on without it a second after that.
        const force = setTimeout(() => {
          server.forceShutdown();
          sockets.destroyAll();
          setTimeout(resolve, 1000).unref();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await Promise.all([restClosed, runtime.close(), metrics?.close()]);
    },
  };
}
