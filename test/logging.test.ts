/**
 * The server's logs (JSON lines on stderr) never hold up calls: a reader of stderr that stops costs
 * log lines, said and counted once it reads again, never an answer or the shutdown.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { TesseractClient as GeneratedClient, type DescribeResponse } from "../generated/tesseract/v1/tesseract";
import { call } from "./helpers";

const DIST = path.join(__dirname, "..");
const CLI = path.join(DIST, "cli/cli.js");

/** The JSON lines a child wrote to stderr, read from now until it exits (each also shown to `seen`). */
function jsonLines(stream: NodeJS.ReadableStream, seen?: (line: Record<string, unknown>) => unknown): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  const reader = createInterface({ input: stream });
  reader.on("line", (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    seen?.(line);
  });
  return once(reader, "close").then(() => lines);
}

describe("logging", function () {
  this.timeout(60_000);

  /** A server whose stderr nobody reads, after CALLS Describe calls (their lines fill the pipe's 64 KiB: about 380). */
  const CALLS = 600;
  async function unreadServerAfterCalls() {
    const child = spawn(process.execPath, [CLI, "serve", "vectoradd", "--port", "0", "--warm-up-ms", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    child.stderr.pause();
    const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    const [first] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
    const address = /^listening on (\S+)$/.exec(first)?.[1];
    assert.ok(address, first);
    const client = new GeneratedClient(address, grpc.credentials.createInsecure());
    try {
      for (let i = 0; i < CALLS; i++) {
        // A deadline: a call held by the server fails the test with its number, not by mocha's timeout.
        await call<DescribeResponse>((cb) => client.describe({}, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, cb)).catch((e: Error) => assert.fail(`Describe ${i + 1} of ${CALLS}: ${e.message}`));
      }
    } finally {
      client.close();
    }
    return { child, exited };
  }

  it("a server whose stderr nobody reads answers every call; once read, every call's line is there, the shutdown's last (a full pipe stopped its event loop: calls hung from the ~380th)", async () => {
    const { child, exited } = await unreadServerAfterCalls();
    let described = 0;
    const logged = jsonLines(child.stderr, (line) => line.msg === "call" && line.rpc === "Describe" && ++described === CALLS && child.kill("SIGTERM"));
    assert.deepEqual(await exited, [0, null]);
    const lines = await logged;
    assert.equal(described, CALLS);
    assert.equal(lines.at(-1)?.msg, "shutting down");
  });

  it("a server whose stderr nobody reads stops on SIGTERM (what waits for stderr is given up)", async () => {
    const { child, exited } = await unreadServerAfterCalls();
    child.kill("SIGTERM");
    assert.deepEqual(await exited, [0, null]);
  });

  it("lines past the buffer are dropped, and the next line written says how many", async () => {
    const LINES = 2000;
    const script = `
      const log = require(${JSON.stringify(path.join(DIST, "server/log"))}).createLogger("info", 4096);
      for (let i = 0; i < ${LINES}; i++) log.info({ i }, "line");
      process.stdin.resume().on("end", () => process.exit(0));`;
    const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "ignore", "pipe"] });
    const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    const logged = jsonLines(child.stderr, (line) => (line.dropped_lines !== undefined || line.i === LINES - 1) && child.stdin.end());
    assert.deepEqual(await exited, [0, null]);
    const lines = await logged;
    const kept = lines.filter((l) => l.msg === "line").map((l) => l.i);
    const warnings = lines.filter((l) => l.dropped_lines !== undefined);
    assert.equal(warnings.length, 1, "one warning");
    const dropped = warnings[0].dropped_lines as number;
    // The loop runs before any write completes: the first lines fill the buffer, the rest are dropped;
    // the child exits once it has said so.
    assert.ok(dropped > 0 && kept.length > 0, `kept ${kept.length}, dropped ${dropped}`);
    assert.deepEqual(kept, [...Array(kept.length).keys()]);
    assert.equal(kept.length + dropped, LINES);
    assert.match(warnings[0].msg as string, new RegExp(`^stderr was not read for a while: ${dropped} log lines were dropped \\(more than 4096 bytes waited\\)$`));
  });
});
