/**
 * A connection lost while a call is on it — the server's process killed, or its socket closed or
 * reset — as the SDK and the CLI report it: the connection to the address was lost during the call,
 * after what (the header and so many rows of a stream), and what to do. grpc-js says "Connection
 * dropped" or "read ECONNRESET", which the SDK left bare and the CLI took for no server listening.
 */
import { strict as assert } from "node:assert";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { Algorithm, SparsityMode, TesseractClient } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { TesseractRuntime } from "../server/runtime";
import meshstats from "../server/tesseracts/meshstats";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { reflectedClient } from "./fixtures/tesseract-core/bridge-clients";
import { CLI, clientRejects, f64, serveProcess, type ServeProcess } from "./helpers";

const POLYNOMIAL = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
const BARY = "statistics.barycenter";
/** What the SDK and the CLI say after grpc-js's words, `progress` being what had arrived of a stream. */
const lost = (address: string, progress?: string) => `the connection to ${address} was lost during the call${progress ? `, ${progress}` : ""}: retry it (the server may have restarted or crashed: its log says which)`;
/** grpc-js's words for a killed process's connection: closed, or reset when the process left bytes unread. */
const DROPPED = /^(Connection dropped|read ECONNRESET)$/;

/** x of polynomial's Jacobian rows: each row is d f / d x_j, n values (40 kB for n = 5000). */
const polynomialRequest = (n: number) => ({ x: Array.from({ length: n }, (_, i) => i / n), y: 0.25 });

/**
 * A TCP relay to 127.0.0.1:`port`: `cut("close")` closes the client's side of every connection, as a
 * server that destroys its socket; `cut("reset")` resets it (RST).
 */
async function relay(port: number) {
  const pairs: [net.Socket, net.Socket][] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    client.pipe(upstream).pipe(client);
    client.on("error", () => {});
    upstream.on("error", () => {});
    pairs.push([client, upstream]);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut(how: "close" | "reset") {
      for (const [client, upstream] of pairs.splice(0)) {
        if (how === "reset") client.resetAndDestroy();
        else client.destroy();
        upstream.destroy();
      }
    },
    close: () => server.close(),
  };
}

/** meshstats whose apply, past `free` calls, waits until `close()`: `parked` resolves once one does. */
async function parkedMeshServer(free: number) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let park!: () => void;
  const parked = new Promise<void>((resolve) => (park = resolve));
  let calls = 0;
  const runtime = new TesseractRuntime(
    {
      ...meshstats,
      async apply(inputs: unknown) {
        if (++calls > free) {
          park();
          await gate;
        }
        return meshstats.apply(inputs as never);
      },
    },
    __dirname,
  );
  // No warm-up and no f(x) cache: every apply is the request's.
  const server: RunningServer = await startServer({ tesseract: runtime, host: "127.0.0.1", port: 0, workers: 0, warmUpMs: 0, evalCacheBytes: 0, logger: silentLogger });
  return {
    server,
    parked,
    async close() {
      release();
      await server.close(0);
    },
  };
}

describe("a connection lost during a call", function () {
  this.timeout(60_000);

  describe("the server's socket closed or reset while the server works on the call", () => {
    for (const how of ["close", "reset"] as const) {
      const words = how === "close" ? "Connection dropped" : "read ECONNRESET";

      it(`${how}, a unary Jacobian: UNAVAILABLE '${words}', saying the connection to the address was lost during the call and to retry`, async () => {
        const mesh = await parkedMeshServer(0);
        const via = await relay(mesh.server.port);
        const client = new TesseractClient<MeshInputs, MeshOutputs>(via.address, { inputs: MeshInputs, outputs: MeshOutputs });
        try {
          const answer = client.jacobian({ inputs: sampleMeshInputs(3), inputPaths: ["mesh.points"], outputPaths: [BARY] });
          await mesh.parked;
          via.cut(how);
          const e = await clientRejects(answer, "UNAVAILABLE", new RegExp(`^${words}$`));
          assert.equal(e.message, `UNAVAILABLE: ${words} — ${lost(via.address)}`);
          assert.deepEqual(e.call, { address: via.address });
        } finally {
          client.close();
          via.close();
          await mesh.close();
        }
      });

      it(`${how}, JacobianRows after the header and some rows: the iterator throws UNAVAILABLE '${words}', saying after how many`, async () => {
        // Central differences, 2 evaluations a row: at most 5 rows before the 11th evaluation waits.
        const mesh = await parkedMeshServer(10);
        const via = await relay(mesh.server.port);
        const client = new TesseractClient<MeshInputs, MeshOutputs>(via.address, { inputs: MeshInputs, outputs: MeshOutputs });
        try {
          let rows = 0;
          const reading = (async () => {
            const request = { inputs: sampleMeshInputs(300), inputPaths: ["mesh.points"], outputPaths: [BARY], options: { algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
            // Rows received before the cut still come out of the iterator; none can come after it.
            for await (const event of client.jacobianRows(request)) if (event.row && ++rows === 1) via.cut(how);
          })();
          const e = await clientRejects(reading, "UNAVAILABLE", new RegExp(`^${words}$`));
          assert.ok(rows >= 1 && rows <= 5, `${rows} rows`);
          assert.equal(e.message, `UNAVAILABLE: ${words} — ${lost(via.address, `after the header and ${rows} of the 900 rows`)}`);
        } finally {
          client.close();
          via.close();
          await mesh.close();
        }
      });
    }
  });

  describe("the server's process killed mid-stream", () => {
    let server: ServeProcess | undefined;
    afterEach(async () => {
      server?.child.kill("SIGKILL");
      await server?.stop();
      server = undefined;
    });

    it("SDK: JacobianRows whose server is killed after 5 rows: UNAVAILABLE naming the rows that came (it was 'Connection dropped' alone)", async () => {
      server = await serveProcess([POLYNOMIAL, "--port", "0", "--workers", "0", "--warm-up-ms", "0"]);
      const { client } = await reflectedClient(server.address);
      const { x, y } = polynomialRequest(5000);
      let rows = 0;
      try {
        // Rows of 40 kB: the stream's flow control holds the server to a few hundred rows ahead of the reader.
        const reading = (async () => {
          for await (const event of client.jacobianRows({ inputs: { x: f64(x), y: f64([y], []) }, inputPaths: ["x"], outputPaths: ["f"] })) {
            if (event.row && ++rows === 5) server!.child.kill("SIGKILL");
          }
        })();
        const e = await clientRejects(reading, "UNAVAILABLE", DROPPED);
        assert.ok(rows >= 5 && rows < 5000, `${rows} rows`);
        assert.equal(e.message, `UNAVAILABLE: ${e.details} — ${lost(server.address, `after the header and ${rows} of the 5000 rows`)}`);
      } finally {
        client.close();
      }
    });

    it("CLI: jacobian --stream whose server is killed after a row: the lines that came, then the connection lost after them, exit 1 (it asked whether a server listened, with TLS if and only if asked)", async () => {
      server = await serveProcess([POLYNOMIAL, "--port", "0", "--workers", "0", "--warm-up-ms", "0"]);
      const payload = JSON.stringify({ inputs: polynomialRequest(5000), jac_inputs: ["x"], jac_outputs: ["f"] });
      const child = spawn(process.execPath, [CLI, "jacobian", payload, "--address", server.address, "--stream"], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = once(child, "exit") as Promise<[number]>;
      const lines: string[] = [];
      for await (const line of createInterface({ input: child.stdout! })) {
        lines.push(line);
        if (lines.length === 2) server.child.kill("SIGKILL");
      }
      const [code] = await exited;
      assert.equal(code, 1, stderr);
      assert.ok(JSON.parse(lines[0]).header && JSON.parse(lines[lines.length - 1]).row, "the header and rows, no stats");
      const rows = lines.length - 1;
      const words = /^tesseract-grpc jacobian: UNAVAILABLE: (.*?) — /.exec(stderr)?.[1] ?? "";
      assert.match(words, DROPPED, stderr);
      assert.equal(stderr, `tesseract-grpc jacobian: UNAVAILABLE: ${words} — ${lost(server.address, `after the header and ${rows} of the 5000 rows`)}\n`);
    });

    it("CLI: jacobian --out whose server crashes mid-stream: the connection lost after what came, and --out left as it was", async () => {
      // The fixture ends its own process at its 41st apply, rows sent before it or not.
      server = await serveProcess([POLYNOMIAL, "--port", "0", "--workers", "0", "--warm-up-ms", "0"], { ...process.env, POLYNOMIAL_EXIT_AFTER: "41" });
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lost-npy-"));
      try {
        const payload = JSON.stringify({ inputs: polynomialRequest(50), jac_inputs: ["x"], jac_outputs: ["f"] });
        const result = await promisify(execFile)(process.execPath, [CLI, "jacobian", payload, "--address", server.address, "--out", path.join(dir, "J.npy")]).then(
          () => assert.fail("exit 0"),
          (e: { code: number; stdout: string; stderr: string }) => e,
        );
        assert.equal(result.code, 1);
        assert.equal(result.stdout, "");
        const [, words, progress] = /^tesseract-grpc jacobian: UNAVAILABLE: (.*?) — the connection to \S+ was lost during the call, (.*?): retry/.exec(result.stderr) ?? [];
        assert.match(words ?? "", DROPPED, result.stderr);
        assert.match(progress ?? "", /^(before any message|after the header( and \d+ of the 50 rows)?)$/, result.stderr);
        assert.equal(result.stderr, `tesseract-grpc jacobian: UNAVAILABLE: ${words} — ${lost(server.address, progress)}\n`);
        assert.deepEqual(fs.readdirSync(dir), [], "no J.npy, and no partial file");
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
