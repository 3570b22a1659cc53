#!/usr/bin/env node
/**
 * `tesseract-grpc`: `serve` a Tesseract, or call one (`apply`, `jacobian`, `jvp`, `vjp`,
 * `abstract-eval`, `describe`, `health`). Every flag has a TESSERACT_GRPC_<FLAG> environment variable.
 */
import * as fs from "node:fs";
import { Command, InvalidArgumentError } from "commander";
import { addClientCommands, envOption as flag } from "../client/cli-commands";
import { DEFAULT_LIMITS } from "./grpc/calls";
import { startServer, DEFAULTS } from "./grpc/server";
import { createLogger } from "./log";

export function integer(min: number) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number of at least ${min}, got "${value}"`);
    return n;
  };
}

interface ServeFlags {
  host: string;
  port: number;
  streamChunkBytes: number;
  maxMessageBytes: number;
  workers: number | "auto";
  replicas?: string;
  concurrency: number;
  maxJobs: number;
  maxQueue: number;
  defaultDeadlineMs: number;
  maxDeadlineMs: number;
  graceMs: number;
  tokensFile?: string;
}

/** Tokens from a file (one per line) and/or a comma-separated variable; undefined when neither is set. */
function readTokens(file: string | undefined, variable: string | undefined): string[] | undefined {
  if (!file && !variable) return undefined;
  const fromFile = file ? fs.readFileSync(file, "utf8").split(/\r?\n/) : [];
  const fromVariable = variable ? variable.split(",") : [];
  return [...fromFile, ...fromVariable].map((t) => t.trim()).filter(Boolean);
}

function workerCount(value: string): number | "auto" {
  return value === "auto" ? "auto" : integer(0)(value);
}

export function buildProgram(): Command {
  const program = new Command("tesseract-grpc")
    .description("Serve a Tesseract over gRPC with finite-difference gradients, or call one.")
    .showHelpAfterError();

  program
    .command("serve")
    .description("serve a Tesseract: a bundled name (meshstats, vectoradd, univariate, heat) or a module path")
    .argument("<tesseract>", "bundled name or path to a module that default-exports a definition")
    .addOption(flag("--host <host>", "address to bind").default(DEFAULTS.host))
    .addOption(flag("--port <port>", "port to bind; 0 picks a free one").default(DEFAULTS.port).argParser(integer(0)))
    .addOption(flag("--stream-chunk-bytes <bytes>", "JacobianRows message budget").default(DEFAULTS.streamChunkBytes).argParser(integer(1)))
    .addOption(flag("--max-message-bytes <bytes>", "largest message received or sent").default(DEFAULTS.maxMessageBytes).argParser(integer(1)))
    .addOption(flag("--workers <n>", 'worker threads for apply: a count, 0 for inline, or "auto" (inline until apply takes 1 ms)').default("auto").argParser(workerCount))
    .addOption(flag("--replicas <target>", "evaluate apply on these tesseract-grpc servers (gRPC target, e.g. dns:///apply:50051 or ipv4:host1:port,host2:port)"))
    .addOption(flag("--concurrency <n>", "apply calls in flight per request on the replicas").default(16).argParser(integer(1)))
    .addOption(flag("--max-jobs <n>", "gradient jobs running at once").default(DEFAULT_LIMITS.maxJobs).argParser(integer(1)))
    .addOption(flag("--max-queue <n>", "gradient jobs waiting for a slot; more get RESOURCE_EXHAUSTED").default(DEFAULT_LIMITS.maxQueue).argParser(integer(0)))
    .addOption(flag("--default-deadline-ms <ms>", "deadline for calls that set none (0: none)").default(0).argParser(integer(0)))
    .addOption(flag("--max-deadline-ms <ms>", "longest any call may run (0: no cap)").default(0).argParser(integer(0)))
    .addOption(flag("--grace-ms <ms>", "on SIGTERM/SIGINT, how long calls in flight may finish").default(5000).argParser(integer(0)))
    .addOption(flag("--tokens-file <path>", "require a bearer token from this file (one per line) on every call; TESSERACT_GRPC_TOKENS (comma-separated) works too"))
    .action(async (tesseract: string, opts: ServeFlags) => {
      const logger = createLogger();
      const { maxJobs, maxQueue, defaultDeadlineMs, maxDeadlineMs, graceMs, tokensFile, ...rest } = opts;
      const tokens = readTokens(tokensFile, process.env.TESSERACT_GRPC_TOKENS);
      const server = await startServer({ tesseract, logger, ...rest, tokens, limits: { maxJobs, maxQueue, defaultDeadlineMs, maxDeadlineMs } });
      process.stdout.write(`listening on ${server.address}\n`);
      const stop = (signal: string) => {
        logger.info({ signal }, "shutting down");
        server.close(graceMs).then(() => process.exit(0));
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });

  addClientCommands(program);
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
