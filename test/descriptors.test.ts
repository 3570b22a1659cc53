/**
 * The descriptors reflection serves are the ones buf writes, byte for byte (source info excluded):
 * the contract, every bundled Tesseract, health and reflection, a module Tesseract's own files
 * (test/fixtures/acme-solver: packages importing each other, proto2 with groups and defaults, maps
 * between nested types, a message-valued custom option), a bridged Tesseract's generated file, and
 * the well-known types they import. One `buf build` of all of them is the reference.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { getOption, type DescField } from "@bufbuild/protobuf";
import { protoPath as HEALTH_PROTO } from "grpc-health-check";
import { loadTesseract } from "../index";
import { servedDescriptors } from "../server/grpc/reflection";
import { PROTO_DIR } from "../server/proto-dir";
import { compileDescriptorSet, type DescriptorSet } from "../server/schema/descriptor-set";
import { protoFromOpenApi } from "../server/schema/openapi-proto";
import { assertSameDescriptor, bufBuild, protoFilesUnder } from "./buf-build";

const FIXTURES = path.join(__dirname, "../../test/fixtures");
const ACME = path.join(FIXTURES, "acme-solver");
const HEALTH = "grpc/health/v1/health.proto";
const bridged = protoFromOpenApi(JSON.parse(fs.readFileSync(path.join(FIXTURES, "tesseract-core/meshstats-openapi.json"), "utf8")));
const BRIDGED = `${bridged.packageName.split(".").join("/")}/tesseract.proto`;

describe("descriptors: what protoc and buf write", function () {
  this.timeout(60_000);
  const contract = protoFilesUnder(PROTO_DIR);
  const acme = protoFilesUnder(path.join(ACME, "protos"));
  let buf: Map<string, Uint8Array>;
  let ours: DescriptorSet;

  before(() => {
    buf = bufBuild({ contract, health: { [HEALTH]: fs.readFileSync(HEALTH_PROTO, "utf8") }, acme, bridged: { [BRIDGED]: bridged.text } });
    const bridgedDir = fs.mkdtempSync(path.join(require("node:os").tmpdir(), "tesseract-bridged-"));
    fs.mkdirSync(path.dirname(path.join(bridgedDir, BRIDGED)), { recursive: true });
    fs.writeFileSync(path.join(bridgedDir, BRIDGED), bridged.text);
    try {
      ours = compileDescriptorSet({ files: [...Object.keys(contract), HEALTH, ...Object.keys(acme), BRIDGED], includeDirs: [path.join(ACME, "protos"), bridgedDir], named: { [HEALTH]: HEALTH_PROTO } });
    } finally {
      fs.rmSync(bridgedDir, { recursive: true, force: true });
    }
  });

  const same = (names: string[]) => {
    assert.ok(names.length > 0);
    for (const name of names) assertSameDescriptor(name, ours.bytes.get(name), buf.get(name));
  };

  it("the contract, the bundled Tesseracts, and the reflection protocol (proto/)", () => {
    same(Object.keys(contract));
    assert.ok(Object.keys(contract).includes("tesseract/examples/heat/v1/heat.proto"));
  });

  it("the health protocol, under its real name", () => same([HEALTH]));

  it("a module's own files: nested packages, proto2, groups, defaults, maps among nested types, its own custom option", () => same(Object.keys(acme)));

  it("a bridged Tesseract's generated file", () => same([BRIDGED]));

  it("the well-known types they import, as buf has them", () => {
    const imported = [...buf.keys()].filter((n) => n.startsWith("google/protobuf/"));
    assert.deepEqual(imported.sort(), ["google/protobuf/any.proto", "google/protobuf/descriptor.proto", "google/protobuf/timestamp.proto"]);
    same(imported);
  });

  it("what a server serves for each bundled Tesseract and the module: the same files", () => {
    for (const source of ["meshstats", "vectoradd", "univariate", "heat", path.join(ACME, "solver.js")]) {
      const served = servedDescriptors(loadTesseract(source));
      for (const file of served.files) assertSameDescriptor(`${file.name} (${path.basename(source)})`, served.bytes.get(file.name!), buf.get(file.name!));
    }
  });

  it("maps are nested entry types, names are fully qualified, proto3 optional has its synthetic oneof, differentiable is set", () => {
    const grid = ours.registry.getMessage("acme.geometry.v1.Grid")!;
    assert.deepEqual(grid.proto.nestedType.map((n) => n.name), ["Cell", "CellsEntry", "Origin", "LayersEntry"]);
    assert.equal(grid.proto.nestedType[1].options?.mapEntry, true);
    assert.equal(grid.field.cells.fieldKind, "map");
    assert.equal(grid.field.label.proto.proto3Optional, true);
    assert.deepEqual(grid.proto.oneofDecl.map((o) => o.name), ["_label"]);
    assert.equal(grid.field.label.jsonName, "gridLabel");
    assert.equal(grid.field.origin.proto.typeName, ".acme.geometry.v1.Grid.Origin");
    const differentiable = ours.registry.getExtension("tesseract.v1.differentiable")!;
    const marked = (fields: DescField[]) => fields.filter((f) => getOption(f, differentiable)).map((f) => f.name);
    assert.deepEqual(marked(grid.nestedMessages[0].fields), ["weights"]);
    assert.deepEqual(marked(ours.registry.getMessage("tesseract.mesh.v1.VolumetricMeshData")!.fields), ["points"]);
    assert.deepEqual(marked(ours.registry.getMessage("acme.solver.v2.Outputs")!.fields), ["energy", "per_cell"]);
  });

  it("a file that does not compile is an error naming it, and the line for grammar errors", () => {
    const dir = fs.mkdtempSync(path.join(require("node:os").tmpdir(), "tesseract-bad-proto-"));
    const compile = (text: string) => {
      fs.writeFileSync(path.join(dir, "bad.proto"), text);
      return () => compileDescriptorSet({ files: [path.join(dir, "bad.proto")], includeDirs: [dir] });
    };
    try {
      assert.throws(compile('syntax = "proto3";\nmessage A {\n  int32 x = ;\n}\n'), /bad\.proto.*line 3/);
      assert.throws(compile('syntax = "proto3";\nmessage A { Missing x = 1; }\n'), /bad\.proto: A\.x: type "Missing" is not defined/);
      assert.throws(compile('syntax = "proto3";\nimport "nowhere/x.proto";\n'), /bad\.proto: import "nowhere\/x\.proto" not found/);
      assert.throws(compile('syntax = "proto3";\nimport "tesseract/v1/tensor.proto";\nmessage A { int32 x = 1 [(tesseract.v1.nope) = true]; }\n'), /bad\.proto: A\.x: option "tesseract\.v1\.nope" is not defined/);
      assert.throws(compile('edition = "2023";\nmessage A {}\n'), /bad\.proto: edition "2023" files are not supported/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
