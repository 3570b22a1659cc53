/** Bearer-token authentication: the Tesseract service needs a valid token; health checks do not. */
import { strict as assert } from "node:assert";
import * as grpc from "@grpc/grpc-js";
import { TesseractClient, TesseractClientError } from "../client";
import { Inputs, Outputs } from "../client/generated/tesseract/examples/meshstats/v1/meshstats";
import { BearerTokens } from "../server/grpc/calls";
import { startServer, type RunningServer } from "../server/grpc/server";
import { silentLogger } from "../server/log";

describe("bearer tokens", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ tesseract: "meshstats", port: 0, tokens: ["s3cret", "other-token"], logger: silentLogger });
  });
  after(() => server.close(0));

  const client = (token?: string) => new TesseractClient<Inputs, Outputs>(server.address, { inputs: Inputs, outputs: Outputs }, { token });

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
    const md = (value: string) => {
      const m = new grpc.Metadata();
      m.set("authorization", value);
      return m;
    };
    assert.equal(tokens.accepts(md("Bearer abc")), true);
    assert.equal(tokens.accepts(md("bearer abc")), true);
    for (const bad of ["Bearer ab", "Bearer abcd", "abc", "Basic abc", "Bearer  abc"]) assert.equal(tokens.accepts(md(bad)), false, bad);
    assert.throws(() => new BearerTokens(["", ""]), /no bearer tokens/);
  });
});
