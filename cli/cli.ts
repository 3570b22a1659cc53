#!/usr/bin/env node
/**
 * `tesseract-grpc`: `serve` a Tesseract, or call one (`apply`, `jacobian`, `jvp`, `vjp`,
 * `check-gradients`, `describe`, `health`, `proto`). Every flag has a TESSERACT_GRPC_<FLAG> environment variable,
 * except the client's certificate and key (TESSERACT_GRPC_CLIENT_TLS_CERT/KEY: the server's own
 * TESSERACT_GRPC_TLS_CERT/KEY are often set in the same container, where the health check runs).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { availableParallelism } from "node:os";
import { Command } from "commander";
import { addClientCommands, credentialsFromFlags, envOption as flag, readFlagFile } from "../client/cli-commands";
import { addProtoCommand } from "../client/proto-command";
import { DEFAULT_LIMITS } from "../server/grpc/calls";
import { DEFAULT_MAX_ELEMENTS, DEFAULT_MAX_MESSAGES } from "../common/tensor-codec";
import { MAX_TIMER_MS } from "../common/transport-defaults";
import { MIN_CHUNK_BYTES } from "../server/grpc/rows-stream";
import { startServer, DEFAULTS } from "../server/grpc/server";
import { DEFAULT_DNS_REFRESH_MS, DEFAULT_GIVEN_UP_HOLD_MS, DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_RUNTIME_RETRY_MS } from "../server/bridge/settings";
import { createLogger, logsWritten, type Logger } from "../server/log";
import { checkServerTls, type ServerTls } from "../server/grpc/tls";
import { explainServeError, routeGrpcLogs } from "./serve-messages";
import { addGenerateCommand } from "./generate/command";
import { integer } from "../client/options-json";

/** The largest TCP port. */
const MAX_PORT = 65535;
/** After the drain, how long the log lines still waiting for stderr may take to be written before the process exits. */
const LOGS_AT_EXIT_MS = 1000;

/** The package's version, from its package.json (two folders above dist/cli/cli.js). */
const VERSION: string = JSON.parse(fs.readFileSync(path.join(__dirname, "../../package.json"), "utf8")).version;

interface ServeFlags {
  host: string;
  port: number;
  streamChunkBytes?: number;
  maxMessageBytes: number;
  workers: number | "auto";
  replicas?: string;
  protoPackage?: string;
  healthIntervalMs: number;
  dnsRefreshMs: number;
  runtimeWaitMs: number;
  runtimeRetryMs: number;
  concurrency: number;
  givenUpHoldMs?: number;
  maxJobs: number;
  maxQueue: number;
  defaultDeadlineMs: number;
  maxDeadlineMs: number;
  progressLogMs: number;
  graceMs: number;
  maxTensorElements: number;
  maxTensorBytes: number;
  maxRequestMessages: number;
  maxRowsPerStream: number;
  streamStallMs: number;
  evalTimeoutMs: number;
  evalCacheMb: number;
  warmUpMs: number;
  metricsPort?: number;
  maxConnectionAgeMs: number;
  maxConnectionIdleMs: number;
  httpPort?: number;
  tokensFile?: string;
  authHealth?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  replicaToken?: string;
  replicaTlsCa?: string;
  replicaTlsCert?: string;
  replicaTlsKey?: string;
}

/** Tokens from a file (one per line) and/or a comma-separated variable; undefined when neither is set. */
function readTokens(file: string | undefined, variable: string | undefined): string[] | undefined {
  if (!file && !variable) return undefined;
  const fromFile = file ? fs.readFileSync(file, "utf8").split(/\r?\n/) : [];
  const fromVariable = variable ? variable.split(",") : [];
  return [...fromFile, ...fromVariable].map((t) => t.trim()).filter(Boolean);
}

/** TLS from --tls-cert and --tls-key (given together), mutual with --tls-client-ca; undefined when none is set. */
function readServerTls(cert: string | undefined, key: string | undefined, clientCa: string | undefined): ServerTls | undefined {
  if (!cert && !key && !clientCa) return undefined;
  if (!cert || !key) {
    const missing = [!cert && "--tls-cert", !key && "--tls-key"].filter(Boolean).join(" and ");
    throw new Error(`${missing} missing: TLS needs both --tls-cert and --tls-key${clientCa ? " (--tls-client-ca adds mutual TLS to them)" : ""}`);
  }
  const tls = { cert: readFlagFile("--tls-cert", cert), key: readFlagFile("--tls-key", key), clientCa: clientCa ? readFlagFile("--tls-client-ca", clientCa) : undefined };
  checkServerTls(tls, { cert: `--tls-cert ${cert}`, key: `--tls-key ${key}`, clientCa: `--tls-client-ca ${clientCa}` });
  return tls;
}

/**
 * --workers: "auto" or a count up to 4 threads a core (more only share the cores, at tens of MB
 * each: 64 threads on two cores took 1.35 GB and 13 s to answer a first Jacobian).
 */
function workerCount(value: string): number | "auto" {
  const most = 4 * Math.max(1, availableParallelism());
  return value === "auto" ? "auto" : integer(0, { max: most, alternative: '"auto" or ' })(value);
}

/**
 * A Tesseract's stray asynchronous failure — a promise its apply left to reject, a timer of its that
 * throws — reaches the process rather than any request (which got its answer). Node would end the
 * process, and every call with it; in a worker thread piscina replaces the thread. Here it is logged
 * and the server goes on serving.
 */
function keepServingThroughStrayFailures(logger: Logger): void {
  const log = (what: string) => (reason: unknown) =>
    logger.error({ err: reason instanceof Error ? reason : undefined, reason: reason instanceof Error ? undefined : String(reason) }, `${what} outside any request (a Tesseract's stray asynchronous code?); still serving`);
  process.on("unhandledRejection", log("a promise rejected with no handler"));
  process.on("uncaughtException", log("an exception was thrown"));
}

export function buildProgram(): Command {
  const program = new Command("tesseract-grpc")
    .description("Serve a Tesseract over gRPC with finite-difference gradients, or call one.")
    .version(VERSION)
    .showHelpAfterError("(add --help for usage)");

  program
    .command("serve")
    .description("serve a Tesseract: a bundled name (meshstats, vectoradd, univariate, heat), a module path, or the URL of a tesseract-core runtime")
    .argument("<tesseract>", "bundled name, path to a module that default-exports a definition, or http://HOST:PORT[,http://HOST2:PORT2...] of tesseract-core runtimes serving the same Tesseract (each address of a host name is one)")
    .addOption(flag("--host <host>", "address to bind").default(DEFAULTS.host))
    .addOption(flag("--port <port>", "port to bind; 0 picks a free one").default(DEFAULTS.port).argParser(integer(0, { max: MAX_PORT })))
    .addOption(flag("--stream-chunk-bytes <bytes>", `JacobianRows message budget (default: ${DEFAULTS.streamChunkBytes}, or --max-message-bytes where that is smaller)`).argParser(integer(MIN_CHUNK_BYTES)))
    .addOption(flag("--max-message-bytes <bytes>", "largest message received or sent").default(DEFAULTS.maxMessageBytes).argParser(integer(1)))
    .addOption(flag("--workers <n>", 'worker threads for apply: a count (0 for inline, at most 4 per core), or "auto" (inline until the measured costs favour the pool)').default("auto").argParser(workerCount))
    .addOption(flag("--replicas <target>", "evaluate apply on these tesseract-grpc servers (gRPC target, e.g. dns:///apply:50051 or ipv4:host1:port,host2:port)"))
    .addOption(flag("--proto-package <name>", "protobuf package of the types generated for a tesseract-core runtime's Tesseract (default from its title)"))
    .addOption(flag("--health-interval-ms <ms>", "how often a tesseract-core runtime's /health is polled; health is NOT_SERVING while none answers").default(DEFAULT_HEALTH_INTERVAL_MS).argParser(integer(1, { max: MAX_TIMER_MS })))
    .addOption(flag("--runtime-wait-ms <ms>", "how long the start waits for a tesseract-core URL's runtime to resolve and answer /openapi.json (a container still starting; 0: stop at once)").default(0).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--runtime-retry-ms <ms>", "how long an evaluation is sent again while no tesseract-core runtime can be reached (connection refused, a proxy's 502 or 503: a container restarting), before the call fails UNAVAILABLE; the call's deadline still ends it (0: fail at once)").default(DEFAULT_RUNTIME_RETRY_MS).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--dns-refresh-ms <ms>", "how often a tesseract-core URL's host name is resolved again, each address a replica (0: only after connection failures)").default(DEFAULT_DNS_REFRESH_MS).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--concurrency <n>", "apply calls in flight per request on the replicas or the tesseract-core runtimes, and to each tesseract-core runtime across requests").default(DEFAULTS.concurrency).argParser(integer(1)))
    .addOption(flag("--given-up-hold-ms <ms>", `how long a tesseract-core runtime's request whose caller gave up (cancelled, past its deadline or --eval-timeout-ms) keeps its --concurrency slot while the runtime computes it, before its connection is closed (0: closed at once; default: the larger of ${DEFAULT_GIVEN_UP_HOLD_MS} and --eval-timeout-ms)`).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--replica-token <token>", "bearer token sent to replicas that require one (prefer the environment variable: command lines are visible to other users)"))
    .addOption(flag("--replica-tls-ca <path>", "call the replicas over TLS, trusting this CA (PEM)"))
    .addOption(flag("--replica-tls-cert <path>", "client certificate (PEM) for replicas that require mutual TLS; needs --replica-tls-key"))
    .addOption(flag("--replica-tls-key <path>", "the private key (PEM) of --replica-tls-cert"))
    .addOption(flag("--max-jobs <n>", "gradient jobs running at once").default(DEFAULT_LIMITS.maxJobs).argParser(integer(1)))
    .addOption(flag("--max-queue <n>", "gradient jobs waiting for a slot; more get RESOURCE_EXHAUSTED").default(DEFAULT_LIMITS.maxQueue).argParser(integer(0)))
    .addOption(flag("--default-deadline-ms <ms>", "deadline for calls that set none (0: none)").default(0).argParser(integer(0)))
    .addOption(flag("--max-deadline-ms <ms>", "longest any call may run (0: no cap)").default(0).argParser(integer(0)))
    .addOption(flag("--progress-log-ms <ms>", "how often a gradient call still running logs its evaluations done and planned (0: never)").default(DEFAULT_LIMITS.progressLogMs).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--grace-ms <ms>", "on SIGTERM/SIGINT, how long calls in flight may finish").default(DEFAULTS.graceMs).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--max-tensor-elements <n>", "largest tensor a request may carry, in elements").default(DEFAULT_MAX_ELEMENTS).argParser(integer(1)))
    .addOption(flag("--max-request-messages <n>", "most messages one request may hold (every tensor, map entry, nested message and listed string counts)").default(DEFAULT_MAX_MESSAGES).argParser(integer(1)))
    .addOption(flag("--max-tensor-bytes <bytes>", "largest tensor a request may carry, in bytes (0: only the message limit)").default(0).argParser(integer(0)))
    .addOption(flag("--max-rows-per-stream <n>", "most rows one JacobianRows call may send (0: no limit)").default(0).argParser(integer(0)))
    .addOption(flag("--stream-stall-ms <ms>", "end a JacobianRows call whose reader has taken no message for this long, freeing its job slot, and a call whose request stops arriving for this long (0: wait forever)").default(DEFAULTS.streamStallMs).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--eval-timeout-ms <ms>", "fail a request whose apply takes longer than this (0: no limit); a synchronous apply can only be stopped in worker threads (--workers N)").default(0).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--eval-cache-mb <mb>", "MiB of apply outputs kept for reuse by later requests on the same inputs (0: none)").default(DEFAULTS.evalCacheBytes / 2 ** 20).argParser(integer(0)))
    .addOption(flag("--warm-up-ms <ms>", "most time spent warming the engine up on the Tesseract's example inputs before serving (0: none)").default(DEFAULTS.warmUpMs).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--max-connection-idle-ms <ms>", "close a client connection with no call for this long (0: never); clients reconnect at their next call").default(DEFAULTS.maxConnectionIdleMs).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--max-connection-age-ms <ms>", "close each client connection after this long, calls in flight finishing (0: never); clients reconnect and re-resolve DNS, so an engine sees new replicas").default(0).argParser(integer(0, { max: MAX_TIMER_MS })))
    .addOption(flag("--http-port <port>", "also serve tesseract-core's REST API on this port (0 picks a port, logged); same host, tokens and TLS").argParser(integer(0, { max: MAX_PORT })))
    .addOption(flag("--metrics-port <port>", "serve Prometheus metrics at http://HOST:PORT/metrics (0 picks a port, logged)").argParser(integer(0, { max: MAX_PORT })))
    .addOption(flag("--tls-cert <path>", "serve TLS with this certificate (chain), PEM; needs --tls-key"))
    .addOption(flag("--tls-key <path>", "the private key of --tls-cert, PEM"))
    .addOption(flag("--tls-client-ca <path>", "mutual TLS: clients must present a certificate signed by a CA in this PEM file (needs --tls-cert, --tls-key)"))
    .addOption(flag("--auth-health", "health checks need a bearer token too (default: exempt, for probes)"))
    .addOption(flag("--tokens-file <path>", "require a bearer token from this file (one per line) on every call; TESSERACT_GRPC_TOKENS (comma-separated) works too"))
    .action(async (tesseract: string, opts: ServeFlags) => {
      const logger = createLogger();
      routeGrpcLogs(logger);
      const { maxJobs, maxQueue, defaultDeadlineMs, maxDeadlineMs, progressLogMs, graceMs, tokensFile, tlsCert, tlsKey, tlsClientCa, replicaTlsCa, replicaTlsCert, replicaTlsKey, evalCacheMb, ...rest } = opts;
      const tokens = readTokens(tokensFile, process.env.TESSERACT_GRPC_TOKENS);
      const tls = readServerTls(tlsCert, tlsKey, tlsClientCa);
      const replicaCredentials = credentialsFromFlags("--replica-tls", { ca: replicaTlsCa, cert: replicaTlsCert, key: replicaTlsKey });
      const limits = { maxJobs, maxQueue, defaultDeadlineMs, maxDeadlineMs, progressLogMs };
      const server = await startServer({ tesseract, logger, ...rest, evalCacheBytes: evalCacheMb * 2 ** 20, tokens, tls, replicaCredentials, limits }).catch((e: Error) => {
        throw explainServeError(e, rest.host, rest);
      });
      let stopping = false;
      const stop = (signal: string) => {
        // A signal may come twice (`npm start` passes its own on, and a terminal's Ctrl-C reaches
        // both): the second, handled by Node's default, killed the drain with 143 or 130.
        if (stopping) return void logger.info({ signal, grace_ms: graceMs }, "shutting down already: calls in flight have the grace to finish (SIGKILL stops at once)");
        stopping = true;
        logger.info({ signal }, "shutting down");
        server
          .close(graceMs)
          .then(() => logsWritten(logger, LOGS_AT_EXIT_MS))
          .then(() => process.exit(0));
      };
      process.on("SIGTERM", stop);
      process.on("SIGINT", stop);
      keepServingThroughStrayFailures(logger);
      // Only now: a supervisor may signal as soon as it reads the line (the pipe's write can reach it
      // before the next statement runs, and SIGTERM then killed the process without its drain).
      process.stdout.write(`listening on ${server.address}\n`);
    });

  addClientCommands(program);
  addProtoCommand(program);
  addGenerateCommand(program);
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((e: Error) => {
      process.stderr.write(`tesseract-grpc: ${e.message}\n`);
      process.exit(1);
    });
}
