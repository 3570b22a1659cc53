/**
 * Bearer-token authentication: the Tesseract service and reflection need a valid token; health checks
 * do not, unless the server says so. Refused calls are logged like any other. The CLI sends the token
 * (reflection included).
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { bearerToken, TesseractClient, TesseractClientError } from "../client";
import { Inputs, Outputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { BearerTokens } from "../common/bearer-tokens";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { fetchRoot } from "../client/reflection-schema";
import { CLI, LogLines, serveProcess } from "./helpers";

describe("bearer tokens", () => {
  let server: RunningServer;
  const logs = new LogLines();
  before(async () => {
    server = await startServer({ tesseract: "meshstats", port: 0, tokens: ["s3cret", "other-token"], logger: logs.logger });
  });
  after(() => server.close(0));

  const client = (token?: string) => new TesseractClient<Inputs, Outputs>(server.address, { inputs: Inputs, outputs: Outputs }, { token });

  it("a refused call is logged with its RPC and code", async () => {
    const logged = logs.nextCall("Describe");
    const c = client("wrong");
    await assert.rejects(c.describe());
    c.close();
    const line = await logged;
    assert.equal(line.code, 16);
    assert.match(String(line.details), /bearer token/);
  });

  it("reflection needs the token too", async () => {
    const symbols = ["tesseract.examples.meshstats.v1.Inputs"];
    await assert.rejects(fetchRoot(server.address, grpc.credentials.createInsecure(), symbols), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED);
    const root = await fetchRoot(server.address, grpc.credentials.createInsecure(), symbols, { interceptors: [bearerToken("s3cret")] });
    assert.ok(root.lookupType(symbols[0]));
  });

  it("refuses a call without a token or with a wrong one: UNAUTHENTICATED", async () => {
    for (const token of [undefined, "s3cre", "s3cret!", ""]) {
      const c = client(token);
      await assert.rejects(c.describe(), (e: TesseractClientError) => e.codeName === "UNAUTHENTICATED" && /a valid bearer token is required/.test(e.details));
      c.close();
    }
  });

  it("accepts any of the configured tokens (the SDK sends it with every call)", async () => {
    for (const token of ["s3cret", "other-token"]) {
      const c = client(token);
      assert.equal((await c.describe()).name, "meshstats");
      c.close();
    }
  });

  it("health checks need no token", async () => {
    assert.equal(await client().health(), "SERVING");
  });

  it("compares whole tokens only", () => {
    const tokens = new BearerTokens(["abc"]);
    assert.equal(tokens.accepts("Bearer abc"), true);
    assert.equal(tokens.accepts("bearer abc"), true);
    for (const bad of ["Bearer ab", "Bearer abcd", "abc", "Basic abc", "Bearer  abc"]) assert.equal(tokens.accepts(bad), false, bad);
    assert.throws(() => new BearerTokens(["", ""]), /no bearer tokens/);
  });

  it("accepts exactly the configured tokens, whatever the header (property, fixed seed)", () => {
    const configured = ["s3cret", "other-token"];
    const tokens = new BearerTokens(configured);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.constantFrom(...configured).map((t) => `Bearer ${t}`), fc.string().map((t) => `Bearer ${t}`)), (header) => {
        const match = /^Bearer (.+)$/i.exec(header);
        assert.equal(tokens.accepts(header), match !== null && configured.includes(match[1]), JSON.stringify(header));
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it("authHealth: health checks need the token too", async () => {
    const strict = await startServer({ tesseract: "meshstats", port: 0, tokens: ["s3cret"], authHealth: true, logger: silentLogger });
    const open = new TesseractClient<Inputs, Outputs>(strict.address, { inputs: Inputs, outputs: Outputs });
    const withToken = new TesseractClient<Inputs, Outputs>(strict.address, { inputs: Inputs, outputs: Outputs }, { token: "s3cret" });
    try {
      await assert.rejects(open.health(), (e: TesseractClientError) => e.codeName === "UNAUTHENTICATED");
      assert.equal(await withToken.health(), "SERVING");
    } finally {
      open.close();
      withToken.close();
      await strict.close(0);
    }
  });
});

describe("bearer tokens in the CLI", function () {
  this.timeout(30_000);
  const run = promisify(execFile);

  it("serve --tokens-file; apply --token (reflection included) works, without it exits 1 UNAUTHENTICATED naming the flag", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tokens-"));
    const file = path.join(dir, "tokens");
    fs.writeFileSync(file, "first-token\n\nsecond-token\n");
    const server = await serveProcess(["vectoradd", "--port", "0", "--tokens-file", file]);
    try {
      const { address } = server;
      const payload = JSON.stringify({ inputs: { a: [1, 2], b: [10, 20], s: 3, normalize: false } });
      const ok = await run(process.execPath, [CLI, "apply", payload, "--address", address, "--token", "second-token"]);
      assert.deepEqual(JSON.parse(ok.stdout).result, [13, 26]);
      const refused = await run(process.execPath, [CLI, "apply", payload, "--address", address]).then(
        () => assert.fail("apply without a token succeeded"),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /UNAUTHENTICATED: a valid bearer token is required .* — pass it with --token \(or TESSERACT_GRPC_TOKEN\)\n$/);
    } finally {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
