/**
 * A start that fails (the gRPC or REST port in use) closes what it had started, the runtime
 * included: a bridged runtime's health polling stops and its temporary .proto folder goes, and the
 * CLI exits 1 at once with a message naming the address.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { startServer } from "../index";
import type { HealthMonitor } from "../server/bridge/health-monitor";
import { loadTesseractCore } from "../server/bridge/tesseract-core";
import { silentLogger } from "../server/log";
import { startFakeTesseractCore, type RunningFake } from "./fixtures/tesseract-core/fake-tesseract-core";
import { meshStats } from "./fixtures/tesseract-core/mesh-stats";
import { CLI } from "./helpers";

/** A port that something listens on, on 127.0.0.1. */
async function occupiedPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Runs `body` with os.tmpdir() a fresh folder (TMPDIR); returns the folder, for the test to look into and remove. */
async function withTmpdir(body: (dir: string) => Promise<void>): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "start-failure-"));
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    await body(dir);
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
  return dir;
}

describe("a start that fails closes what it started", function () {
  this.timeout(20000);
  let fake: RunningFake;
  let taken: Awaited<ReturnType<typeof occupiedPort>>;

  before(async () => {
    fake = await startFakeTesseractCore(meshStats());
    taken = await occupiedPort();
  });
  after(async () => {
    await fake.close();
    await taken.close();
  });

  it("the gRPC port in use: startServer rejects naming the address; the bridged runtime's polling has stopped and its .proto folder is gone", async () => {
    const runtime = await loadTesseractCore(fake.url, { healthIntervalMs: 1 });
    const readiness = runtime.readiness as HealthMonitor;
    const protoDir = path.dirname(runtime.definition.protoFiles![0]);
    assert.ok(readiness.polling && fs.existsSync(protoDir));
    await assert.rejects(startServer({ tesseract: runtime, port: taken.port, logger: silentLogger }), new RegExp(`^Error: gRPC could not listen on 127\\.0\\.0\\.1:${taken.port}: listen EADDRINUSE: address already in use`));
    assert.ok(!readiness.polling, "health polling stopped");
    assert.ok(!fs.existsSync(protoDir), "the generated .proto's folder removed");
  });

  it("the REST port in use: the same, and the gRPC port is free again", async () => {
    const runtime = await loadTesseractCore(fake.url, { healthIntervalMs: 1 });
    const free = await occupiedPort();
    await free.close();
    await assert.rejects(startServer({ tesseract: runtime, port: free.port, httpPort: taken.port, logger: silentLogger }), new RegExp(`the REST API could not listen on 127\\.0\\.0\\.1:${taken.port}`));
    assert.ok(!(runtime.readiness as HealthMonitor).polling);
    const server = await startServer({ tesseract: "vectoradd", port: free.port, workers: 0, logger: silentLogger });
    await server.close(0);
  });

  it("given the URL: startServer rejects and leaves no temporary folder behind", async () => {
    const dir = await withTmpdir(async () => {
      await assert.rejects(startServer({ tesseract: fake.url, port: taken.port, logger: silentLogger }), /gRPC could not listen/);
    });
    try {
      assert.deepEqual(fs.readdirSync(dir), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the CLI's serve of a tesseract-core URL on a port in use exits 1 with the reason, leaving no temporary folder", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "start-failure-"));
    try {
      const run = promisify(execFile);
      const env = { ...process.env, TMPDIR: dir };
      await assert.rejects(run(process.execPath, [CLI, "serve", fake.url, "--port", String(taken.port)], { env }), (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr, new RegExp(`^tesseract-grpc: 127\\.0\\.0\\.1:${taken.port} is already in use \\(another server\\?\\) — stop it, or choose another port with --port`, "m"));
        return true;
      });
      assert.deepEqual(fs.readdirSync(dir), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
