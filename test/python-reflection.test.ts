/**
 * A reflection-only Python client (test/fixtures/python/reflection_client.py: grpcio and protobuf,
 * nothing generated, no .proto files) loads every served Tesseract's files into protobuf's validating
 * DescriptorPool, finds the differentiable option on the right fields, and calls Apply and Jacobian with
 * messages built only from the reflected types: every bundled Tesseract, a module with packages, maps
 * and imports of its own, and a bridged tesseract-core one (test/reflection-cases.ts). Skipped, with
 * the Debian packages to install, where /usr/bin/python3 lacks grpc and protobuf.
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import * as path from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { assertValues, CASES, tensorValues, type Served } from "./reflection-cases";

const PYTHON = "/usr/bin/python3";
const CLIENT = path.join(__dirname, "../../test/fixtures/python/reflection_client.py");

interface Result {
  name: string;
  services: string[];
  files: string[];
  input_type: string;
  differentiable: Record<string, string[]>;
  outputs_type_url: string;
  outputs: JsonObject;
  jacobian: Array<{ output_path: string; input_path: string; value: unknown }>;
}

function runClient(input: object): Promise<{ results: Result[] }> {
  return new Promise((resolve, reject) => {
    // Asynchronous: the servers answering it run in this process's event loop.
    const child = spawn(PYTHON, [CLIENT], { stdio: ["pipe", "pipe", "pipe"] });
    const [out, err]: Buffer[][] = [[], []];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`reflection_client.py exited ${code}:\n${Buffer.concat(err).toString()}`));
      resolve(JSON.parse(Buffer.concat(out).toString()));
    });
    child.stdin.end(JSON.stringify(input));
  });
}

describe("Python reflection-only client (grpcio, protobuf's DescriptorPool)", function () {
  this.timeout(120_000);
  const served: Served[] = [];
  const results = new Map<string, Result>();

  before(async function () {
    const imports = spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { encoding: "utf8" });
    if (imports.status !== 0) {
      console.log(`      skipped: ${PYTHON} cannot import grpc and google.protobuf; install the Debian packages python3-grpcio python3-protobuf`);
      this.skip();
    }
    for (const c of CASES) served.push(await c.serve());
    const cases = CASES.map((c, i) => ({ name: c.name, address: served[i].server.address, inputs: c.inputs, jac_inputs: c.jacobian.inputs, jac_outputs: c.jacobian.outputs }));
    for (const result of (await runClient({ cases })).results) results.set(result.name, result);
  });

  after(async () => {
    await Promise.all(served.map((s) => s.close()));
  });

  for (const c of CASES) {
    it(`${c.name}: loads the reflected files, finds differentiable, calls Apply and Jacobian`, () => {
      const result = results.get(c.name)!;
      assert.deepEqual(result.services, ["tesseract.v1.Tesseract", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);
      for (const file of ["google/protobuf/descriptor.proto", "google/protobuf/any.proto", "tesseract/v1/tensor.proto", "tesseract/v1/tesseract.proto"]) assert.ok(result.files.includes(file), `${file} in ${result.files.join(", ")}`);
      assert.deepEqual(result.differentiable, c.differentiable);
      // Every Tesseract here names its types Inputs and Outputs.
      assert.equal(result.outputs_type_url, `type.googleapis.com/${result.input_type.replace(/Inputs$/, "Outputs")}`);
      for (const [outputPath, expected] of Object.entries(c.apply)) {
        const value = outputPath.split(".").reduce<unknown>((node, key) => (node as JsonObject)[key.replace(/^\{(.*)\}$/, "$1")], result.outputs);
        assertValues(tensorValues(value).values, expected, c.tolerance, `Apply: ${outputPath}`);
      }
      assert.deepEqual(result.jacobian.map((e) => `${e.output_path}|${e.input_path}`).sort(), Object.keys(c.jacobian.expected).sort());
      for (const entry of result.jacobian) {
        const expected = c.jacobian.expected[`${entry.output_path}|${entry.input_path}`];
        const { shape, values } = tensorValues(entry.value);
        assert.deepEqual(shape, expected.shape);
        assertValues(values, expected.values, c.tolerance, `Jacobian: d ${entry.output_path} / d ${entry.input_path}`);
      }
    });
  }
});
