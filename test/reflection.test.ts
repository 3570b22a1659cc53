/**
 * Server reflection as strict clients use it: for every bundled Tesseract, a module Tesseract outside
 * the source tree (test/fixtures/acme-solver: packages importing each other, maps, proto2, a
 * well-known type) and a bridged tesseract-core Tesseract, the files reflection returns load into
 * @bufbuild/protobuf's validating registry, the `differentiable` option is on the right fields, and
 * Apply and Jacobian called with messages built only from those types (inputs in the Any's JSON form,
 * as grpcurl -d sends them) give the analytic values. Then the protocol itself, v1 and v1alpha.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, fromJson, getOption, toBinary, toJson, type DescMethod, type FileRegistry, type JsonObject, type Message } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { ReflectionStream } from "../client/reflection-schema";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { ACME, assertValues, CASES, tensorValues, type Served } from "./reflection-cases";

const insecure = grpc.credentials.createInsecure();

/** Asks for `symbols`, follows every declared import by name, and loads the lot into a validating registry. */
async function reflectedRegistry(stream: ReflectionStream, symbols: string[], files = new Map<string, FileDescriptorProto>()): Promise<FileRegistry> {
  const take = (bytes: Uint8Array[]) => bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b)).forEach((f) => files.set(f.name!, f));
  for (const symbol of symbols) {
    const answer = await stream.ask({ file_containing_symbol: symbol });
    assert.equal(answer.error_response, undefined, `${symbol}: ${answer.error_response?.error_message}`);
    take(answer.file_descriptor_response!.file_descriptor_proto);
  }
  for (let missing = [...files.values()].flatMap((f) => f.dependency).filter((d) => !files.has(d)); missing.length; missing = [...files.values()].flatMap((f) => f.dependency).filter((d) => !files.has(d))) {
    for (const name of missing) take((await stream.ask({ file_by_filename: name })).file_descriptor_response!.file_descriptor_proto);
  }
  // A FileDescriptorSet lists each file after its imports.
  const ordered: FileDescriptorProto[] = [];
  const place = (name: string) => {
    const file = files.get(name)!;
    if (ordered.includes(file)) return;
    file.dependency.forEach(place);
    ordered.push(file);
  };
  [...files.keys()].forEach(place);
  return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
}

/** Calls a method of the reflected service with a request built from JSON by the reflected types. */
function call(client: grpc.Client, registry: FileRegistry, method: DescMethod, json: JsonObject): Promise<JsonObject> {
  const request = fromJson(method.input, json, { registry });
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      `/${method.parent.typeName}/${method.name}`,
      (m: Message) => Buffer.from(toBinary(method.input, m)),
      (b: Buffer) => fromBinary(method.output, b),
      request,
      (error, response) => (error ? reject(error) : resolve(toJson(method.output, response!, { registry, useProtoFieldName: true }) as JsonObject)),
    ),
  );
}

describe("reflection: strict clients load every served Tesseract and call it", function () {
  this.timeout(60_000);

  for (const c of CASES) {
    describe(c.name, () => {
      let served: Served;
      let server: RunningServer;
      let stream: ReflectionStream;
      let registry: FileRegistry;
      let client: grpc.Client;
      let inputType: string;
      let outputType: string;

      before(async () => {
        served = await c.serve();
        server = served.server;
        stream = new ReflectionStream(server.address, insecure);
        client = new grpc.Client(server.address, insecure);
        const contract = await reflectedRegistry(stream, ["tesseract.v1.Tesseract"]);
        const described = await call(client, contract, contract.getService("tesseract.v1.Tesseract")!.methods.find((m) => m.name === "Describe")!, {});
        [inputType, outputType] = [described.input_type as string, described.output_type as string];
        registry = await reflectedRegistry(stream, ["tesseract.v1.Tesseract", inputType, outputType]);
      });

      after(async () => {
        stream?.close();
        client?.close();
        await served?.close();
      });

      it("the reflected files load into the validating registry, under their real names", () => {
        const names = [...registry.files].map((f) => f.name);
        for (const name of ["tesseract/v1/tesseract", "tesseract/v1/tensor", "google/protobuf/any", "google/protobuf/descriptor"]) assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
        assert.ok(registry.getMessage(inputType) && registry.getMessage(outputType));
      });

      it("finds the differentiable option on the right fields", () => {
        const option = registry.getExtension("tesseract.v1.differentiable")!;
        assert.equal(option.extendee.typeName, "google.protobuf.FieldOptions");
        const own = [...registry.files].filter((f) => !/^(tesseract\/v1|google|grpc)\//.test(f.name));
        const marked: Record<string, string[]> = {};
        const visit = (message: ReturnType<FileRegistry["getMessage"]> & object) => {
          const fields = message.fields.filter((f) => getOption(f, option)).map((f) => f.name);
          if (fields.length) marked[message.typeName] = fields;
          message.nestedMessages.forEach(visit);
        };
        own.forEach((f) => f.messages.forEach(visit));
        assert.deepEqual(marked, c.differentiable);
      });

      it("Apply with inputs built from the reflected types (the Any's JSON form) gives the outputs", async () => {
        const apply = registry.getService("tesseract.v1.Tesseract")!.methods.find((m) => m.name === "Apply")!;
        const response = await call(client, registry, apply, { inputs: { "@type": `type.googleapis.com/${inputType}`, ...c.inputs } });
        const outputs = response.outputs as JsonObject;
        assert.equal(outputs["@type"], `type.googleapis.com/${outputType}`);
        for (const [outputPath, expected] of Object.entries(c.apply)) {
          const value = outputPath.split(".").reduce<unknown>((node, key) => (node as JsonObject)[key.replace(/^\{(.*)\}$/, "$1")], outputs);
          assertValues(tensorValues(value).values, expected, c.tolerance, outputPath);
        }
      });

      it("Jacobian with a request built from the reflected types gives the analytic derivatives", async () => {
        const jacobian = registry.getService("tesseract.v1.Tesseract")!.methods.find((m) => m.name === "Jacobian")!;
        const response = await call(client, registry, jacobian, {
          inputs: { "@type": `type.googleapis.com/${inputType}`, ...c.inputs },
          jac_inputs: c.jacobian.inputs,
          jac_outputs: c.jacobian.outputs,
          options: { algorithm: "ALGORITHM_CENTRAL" },
        });
        const entries = response.entries as Array<{ output_path: string; input_path: string; value: unknown }>;
        assert.deepEqual(entries.map((e) => `${e.output_path}|${e.input_path}`).sort(), Object.keys(c.jacobian.expected).sort());
        for (const entry of entries) {
          const expected = c.jacobian.expected[`${entry.output_path}|${entry.input_path}`];
          const { shape, values } = tensorValues(entry.value);
          assert.deepEqual(shape, expected.shape, `${entry.output_path} / ${entry.input_path}: shape`);
          assertValues(values, expected.values, c.tolerance, `d ${entry.output_path} / d ${entry.input_path}`);
        }
      });
    });
  }
});

describe("reflection: the protocol, v1 and v1alpha", function () {
  this.timeout(30_000);
  let server: RunningServer;

  before(async () => {
    server = await startServer({ tesseract: ACME, port: 0, workers: 0, logger: silentLogger });
  });
  after(() => server?.close());

  for (const version of ["v1", "v1alpha"] as const) {
    describe(version, () => {
      let stream: ReflectionStream;
      before(() => (stream = new ReflectionStream(server.address, insecure, {}, version)));
      after(() => stream?.close());

      const names = (response: Awaited<ReturnType<ReflectionStream["ask"]>>) => {
        assert.equal(response.error_response, undefined, response.error_response?.error_message);
        return response.file_descriptor_response!.file_descriptor_proto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name!);
      };

      it("list_services: the Tesseract, health and reflection, echoing the request", async () => {
        const answer = await stream.ask({ host: "h", list_services: "*" });
        assert.deepEqual(answer.list_services_response!.service.map((s) => s.name), ["tesseract.v1.Tesseract", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);
        assert.equal(answer.valid_host, "h");
        assert.equal(answer.original_request?.list_services, "*");
      });

      it("file_by_filename: the file first, then every file it imports, each once", async () => {
        const files = names(await stream.ask({ file_by_filename: "acme/solver/v2/solver.proto" }));
        assert.equal(files[0], "acme/solver/v2/solver.proto");
        assert.deepEqual([...files].sort(), ["acme/geometry/v1/shapes.proto", "acme/solver/v2/solver.proto", "acme/units/v1/units.proto", "google/protobuf/descriptor.proto", "google/protobuf/timestamp.proto", "tesseract/v1/tensor.proto"]);
      });

      it("file_containing_symbol: services, methods, messages, nested types, enums, values, fields, map entries, extensions", async () => {
        const declaring: Record<string, string> = {
          "tesseract.v1.Tesseract": "tesseract/v1/tesseract.proto",
          "tesseract.v1.Tesseract.JacobianRows": "tesseract/v1/tesseract.proto",
          "tesseract.v1.FiniteDifferenceOptions.eps": "tesseract/v1/tesseract.proto",
          "grpc.health.v1.Health": "grpc/health/v1/health.proto",
          "grpc.reflection.v1alpha.ServerReflection": "grpc/reflection/v1alpha/reflection.proto",
          "acme.solver.v2.Inputs": "acme/solver/v2/solver.proto",
          ".acme.solver.v2.Inputs.Settings": "acme/solver/v2/solver.proto",
          "acme.solver.v2.Inputs.Method": "acme/solver/v2/solver.proto",
          "acme.solver.v2.Inputs.METHOD_FAST": "acme/solver/v2/solver.proto",
          "acme.solver.v2.Inputs.Settings.mode": "acme/solver/v2/solver.proto",
          "acme.geometry.v1.Grid.cells": "acme/geometry/v1/shapes.proto",
          "acme.geometry.v1.Grid.CellsEntry": "acme/geometry/v1/shapes.proto",
          "acme.units.v1.annotation": "acme/units/v1/units.proto",
          "tesseract.v1.differentiable": "tesseract/v1/tensor.proto",
          "google.protobuf.Timestamp": "google/protobuf/timestamp.proto",
        };
        for (const [symbol, file] of Object.entries(declaring)) assert.equal(names(await stream.ask({ file_containing_symbol: symbol }))[0], file, symbol);
      });

      it("file_containing_extension and all_extension_numbers_of_type make differentiable discoverable", async () => {
        const extensionFile = async (containing_type: string, extension_number: number) => names(await stream.ask({ file_containing_extension: { containing_type, extension_number } }))[0];
        assert.equal(await extensionFile("google.protobuf.FieldOptions", 50001), "tesseract/v1/tensor.proto");
        assert.equal(await extensionFile("google.protobuf.FieldOptions", 50002), "tesseract/v1/tensor.proto");
        assert.equal(await extensionFile("google.protobuf.MessageOptions", 51234), "acme/units/v1/units.proto");
        assert.equal(await extensionFile("acme.units.v1.Quantity", 100), "acme/units/v1/units.proto");
        const numbers = async (type: string) => (await stream.ask({ all_extension_numbers_of_type: type })).all_extension_numbers_response;
        assert.deepEqual(await numbers("google.protobuf.FieldOptions"), { base_type_name: "google.protobuf.FieldOptions", extension_number: [50001, 50002, 50003] });
        assert.deepEqual(await numbers("acme.units.v1.Quantity"), { base_type_name: "acme.units.v1.Quantity", extension_number: [100] });
        assert.deepEqual(await numbers("acme.solver.v2.Inputs"), { base_type_name: "acme.solver.v2.Inputs", extension_number: [] });
      });

      it("what is not there is error_response NOT_FOUND with a message, and the stream goes on", async () => {
        const error = async (request: Parameters<ReflectionStream["ask"]>[0]) => (await stream.ask(request)).error_response;
        assert.deepEqual(await error({ file_by_filename: "nope.proto" }), { error_code: grpc.status.NOT_FOUND, error_message: 'file "nope.proto" is not served' });
        assert.deepEqual(await error({ file_containing_symbol: "acme.Nope" }), { error_code: grpc.status.NOT_FOUND, error_message: 'symbol "acme.Nope" not found' });
        assert.deepEqual(await error({ file_containing_extension: { containing_type: "google.protobuf.FieldOptions", extension_number: 7 } }), { error_code: grpc.status.NOT_FOUND, error_message: 'no extension 7 of "google.protobuf.FieldOptions"' });
        assert.deepEqual(await error({ all_extension_numbers_of_type: "acme.Nope" }), { error_code: grpc.status.NOT_FOUND, error_message: 'message type "acme.Nope" not found' });
        const empty = await error({});
        assert.equal(empty?.error_code, grpc.status.INVALID_ARGUMENT);
        assert.match(empty!.error_message, /asks nothing/);
        assert.equal(names(await stream.ask({ file_containing_symbol: "acme.solver.v2.Outputs" }))[0], "acme/solver/v2/solver.proto");
      });
    });
  }
});

describe("reflection: the grpcurl request of docs/reflection.md (linked from the README)", () => {
  it("its Any JSON form, resolved by reflection alone, is a valid Jacobian request with the right answer", async () => {
    const doc = fs.readFileSync(path.join(__dirname, "../../docs/reflection.md"), "utf8");
    const match = /grpcurl -plaintext -d '(\{"inputs"[\s\S]*?\})' \\\n\s*localhost:50051 tesseract\.v1\.Tesseract\/Jacobian/.exec(doc);
    assert.ok(match, "docs/reflection.md's grpcurl Jacobian example");
    assert.match(fs.readFileSync(path.join(__dirname, "../../README.md"), "utf8"), /\(docs\/reflection\.md\)/, "the README links docs/reflection.md");
    const server = await startServer({ tesseract: "vectoradd", port: 0, workers: 0, logger: silentLogger });
    const stream = new ReflectionStream(server.address, insecure);
    const client = new grpc.Client(server.address, insecure);
    try {
      const registry = await reflectedRegistry(stream, ["tesseract.v1.Tesseract", "tesseract.examples.vectoradd.v1.Inputs"]);
      const jacobian = registry.getService("tesseract.v1.Tesseract")!.methods.find((m) => m.name === "Jacobian")!;
      const response = await call(client, registry, jacobian, JSON.parse(match[1]) as JsonObject);
      const [entry] = response.entries as Array<{ output_path: string; input_path: string; value: unknown }>;
      assert.equal(`${entry.output_path}|${entry.input_path}`, "result|a");
      // result = s a + b with s = 2.
      assertValues(tensorValues(entry.value).values, [2, 0, 0, 0, 2, 0, 0, 0, 2], 1e-8, "d result / d a");
    } finally {
      stream.close();
      client.close();
      await server.close();
    }
  });
});
