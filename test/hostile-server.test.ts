/**
 * The SDK and the CLI against a server that answers what no tesseract-grpc server would: a raw
 * grpc-js server on 127.0.0.1:0 with the Tesseract service, its Describe told what to say, and no
 * reflection service; and a server offering reflection v1alpha alone, as servers built before v1 do.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import ndarray from "ndarray";
import { TesseractClient } from "../client";
import { ReflectionStream } from "../client/reflection-schema";
import { ServerReflectionService as ReflectionV1 } from "../generated/grpc/reflection/v1/reflection";
import { Inputs, Outputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { DescribeResponse, TesseractService } from "../generated/tesseract/v1/tesseract";
import { startServer } from "../index";
import { silentLogger } from "../server/log";
import { CLI, clientRejects } from "./helpers";

async function hostileServer(describe: Partial<DescribeResponse>): Promise<{ address: string; close(): void }> {
  const server = new grpc.Server();
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const name of Object.keys(TesseractService)) handlers[name] = (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback({ code: grpc.status.UNIMPLEMENTED, details: "not here" });
  handlers.describe = (_call: unknown, callback: grpc.sendUnaryData<DescribeResponse>) => callback(null, DescribeResponse.fromPartial(describe));
  server.addService(TesseractService, handlers);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { address: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

const VECTORADD = { name: "vectoradd", input_type: "tesseract.examples.vectoradd.v1.Inputs", output_type: "tesseract.examples.vectoradd.v1.Outputs" };

describe("a hostile server", () => {
  it("a Describe of 200 000-character names: FAILED_PRECONDITION quoting them clipped (the message was 400 KB)", async () => {
    const long = "x".repeat(200_000);
    const server = await hostileServer({ name: long, input_type: `other.${long}`, output_type: "other.Out" });
    const client = new TesseractClient<Inputs, Outputs>(server.address, { inputs: Inputs, outputs: Outputs });
    try {
      const e = await clientRejects(client.apply({ a: ndarray(Float64Array.of(1)), b: ndarray(Float64Array.of(1)) } as never), "FAILED_PRECONDITION", /serves x{200}… \(200000 characters\) \(other\.x{194}… \(200006 characters\) -> other\.Out\), but this client was made for tesseract\.examples\.vectoradd\.v1\.Inputs/);
      assert.ok(e.message.length < 1000, `${e.message.length} characters`);
    } finally {
      client.close();
      server.close();
    }
  });

  it("the CLI against a server without reflection: UNIMPLEMENTED saying what reflection is for and what to do, exit 1 (grpc-js's words alone before)", async () => {
    const server = await hostileServer(VECTORADD);
    try {
      const result = await promisify(execFile)(process.execPath, [CLI, "apply", '{"inputs": {"a": [1], "b": [2]}}', "--address", server.address]).then(
        () => assert.fail("exit 0"),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "");
      assert.equal(
        result.stderr,
        `tesseract-grpc apply: UNIMPLEMENTED: the server at ${server.address} offers no gRPC server reflection (grpc.reflection.v1 or v1alpha), which the CLI reads tesseract.examples.vectoradd.v1.Inputs and tesseract.examples.vectoradd.v1.Outputs from: call a tesseract-grpc server (it offers reflection), or this one from the SDK with its .proto files\n`,
      );
      // `proto` (and `generate --address`, through the same reflection) said grpc-js's words alone.
      const proto = await promisify(execFile)(process.execPath, [CLI, "proto", "--address", server.address, "--out", os.tmpdir()]).then(
        () => assert.fail("exit 0"),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(proto.code, 1);
      assert.match(proto.stderr, new RegExp(`UNIMPLEMENTED: the server at ${server.address.replace(/\./g, "\\.")} offers no gRPC server reflection \\(grpc\\.reflection\\.v1 or v1alpha\\), which \`proto\` and \`generate --address\` read the Tesseract's \\.proto files from: generate the SDK from the server's own \\.proto files \\(generate <file\\.proto>\\)\n$`));
    } finally {
      server.close();
    }
  });

  it("the CLI against a server offering reflection v1alpha alone (older grpc-java, grpc-go, grpcio): apply and proto read its types through v1alpha (they were UNIMPLEMENTED, 'offers no gRPC server reflection')", async () => {
    // A tesseract-grpc server of vectoradd without its v1 service: v1 is UNIMPLEMENTED there, v1alpha answers.
    const server = await startServer({ tesseract: "vectoradd", host: "127.0.0.1", port: 0, logger: silentLogger });
    server.server.removeService(ReflectionV1);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "v1alpha-protos-"));
    try {
      const v1 = new ReflectionStream(server.address, grpc.credentials.createInsecure());
      await assert.rejects(v1.ask({ list_services: "" }), (e: grpc.ServiceError) => e.code === grpc.status.UNIMPLEMENTED);
      v1.close();
      const run = promisify(execFile);
      const applied = await run(process.execPath, [CLI, "apply", '{"inputs": {"a": [1, 2], "b": [3, 4]}}', "--address", server.address]);
      assert.deepEqual(JSON.parse(applied.stdout), { result: [4, 6] });
      const written = await run(process.execPath, [CLI, "proto", "--address", server.address, "--out", out]);
      assert.ok(written.stdout.split("\n").includes(path.join(out, "tesseract/examples/vectoradd/v1/vectoradd.proto")), written.stdout);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
      await server.close(0);
    }
  });
});
