/**
 * `tesseract-grpc proto --address HOST:PORT --out DIR` writes the served Tesseract's .proto files under
 * their real names, for every kind of Tesseract (bundled, a module, a bridged tesseract-core one), and
 * they compile with buf to exactly the descriptors reflection served: any language can generate its
 * stubs from them. All servers write into one folder (their contract files are the same text), built
 * once with buf.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { writeProtoFiles } from "../client/proto-command";
import { fetchDescriptors } from "../client/reflection-schema";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { assertSameDescriptor, bufBuild, protoFilesUnder } from "./buf-build";
import { startFakeTesseractCore, type RunningFake } from "./fixtures/tesseract-core/fake-tesseract-core";
import { meshStats } from "./fixtures/tesseract-core/mesh-stats";
import { CLI } from "./helpers";

const run = promisify(execFile);
const ACME = path.join(__dirname, "../../test/fixtures/acme-solver/solver.js");
const insecure = grpc.credentials.createInsecure();

describe("tesseract-grpc proto: the served .proto files, compiled back to the same descriptors", function () {
  this.timeout(60_000);
  let out: string;
  let fake: RunningFake;
  const servers: RunningServer[] = [];
  /** File name -> the descriptor bytes reflection served (the same from every server that serves it). */
  const served = new Map<string, Uint8Array>();
  const written: Record<string, string[]> = {};
  let cli: { stdout: string; stderr: string };

  before(async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-proto-"));
    fake = await startFakeTesseractCore(meshStats());
    for (const tesseract of ["meshstats", "vectoradd", "univariate", "heat", ACME, fake.url]) {
      const server = await startServer({ tesseract, port: 0, workers: 0, logger: silentLogger });
      servers.push(server);
      const described = server.runtime.definition;
      const { files } = await fetchDescriptors(server.address, insecure, ["tesseract.v1.Tesseract", described.inputType, described.outputType]);
      for (const file of files) {
        const bytes = toBinary(FileDescriptorProtoSchema, file);
        const before = served.get(file.name!);
        if (before) assert.ok(Buffer.from(before).equals(Buffer.from(bytes)), `${file.name} is served the same by every server`);
        served.set(file.name!, bytes);
      }
      const name = path.basename(tesseract);
      // The module through the CLI itself; the others through the function it runs.
      if (tesseract === ACME) {
        cli = await run(process.execPath, [CLI, "proto", "--address", server.address, "--out", out]);
        written[name] = cli.stdout.trim().split("\n");
      } else {
        written[name] = await writeProtoFiles(server.address, insecure, out);
      }
    }
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await fake?.close();
    if (out) fs.rmSync(out, { recursive: true, force: true });
  });

  const relative = (files: string[]) => files.map((f) => path.relative(out, f).split(path.sep).join("/")).sort();

  it("writes the contract and the Tesseract's own files under their real names, not the well-known types", () => {
    const contract = ["tesseract/v1/algorithm.proto", "tesseract/v1/tensor.proto", "tesseract/v1/tesseract.proto"];
    assert.deepEqual(relative(written.meshstats), [...contract, "tesseract/examples/meshstats/v1/meshstats.proto", "tesseract/mesh/v1/mesh.proto"].sort());
    assert.deepEqual(relative(written.vectoradd), [...contract, "tesseract/examples/vectoradd/v1/vectoradd.proto"].sort());
    assert.deepEqual(relative(written["solver.js"]), [...contract, "acme/geometry/v1/shapes.proto", "acme/solver/v2/solver.proto", "acme/units/v1/units.proto"].sort());
    assert.deepEqual(relative(written[path.basename(fake.url)]), [...contract, "tesseract_core/mesh_stats/v1/tesseract.proto"].sort());
    assert.equal(cli.stderr, "");
  });

  it("what it wrote compiles with buf to exactly the served descriptors", () => {
    const built = bufBuild({ out: protoFilesUnder(out) });
    const names = [...served.keys()].filter((n) => !n.startsWith("google/protobuf/"));
    assert.equal(names.length, 12);
    for (const name of names) assertSameDescriptor(name, served.get(name), built.get(name));
  });

  it("is readable .proto: maps, optional, oneofs, options and imports as a person writes them", () => {
    const solver = fs.readFileSync(path.join(out, "acme/solver/v2/solver.proto"), "utf8");
    assert.match(solver, /^syntax = "proto3";\n\npackage acme\.solver\.v2;\n\nimport "acme\/geometry\/v1\/shapes\.proto";\n/);
    assert.match(solver, /\n {2}option \(\.acme\.units\.v1\.annotation\) = \{ author: "acme" tags: "solver" tags: "test" \};\n/);
    assert.match(solver, /\n {2}map<string, \.acme\.solver\.v2\.Inputs\.Settings> overrides = 5;\n/);
    assert.match(solver, /\n {4}oneof mode \{\n {6}string preset = 2;\n {6}int32 level = 3;\n {4}\}\n {4}optional double damping = 4;\n/);
    assert.match(solver, /\n {2}\.tesseract\.v1\.Tensor x = 2 \[\(\.tesseract\.v1\.differentiable\) = true\];\n/);
  });

  it("a server that cannot be reached: exit 1 naming the status", async () => {
    const closed = servers[0].address.replace(/:\d+$/, ":1");
    await assert.rejects(run(process.execPath, [CLI, "proto", "--address", closed, "--out", out]), (e: Error & { code: number; stderr: string }) => {
      assert.equal(e.code, 1);
      assert.equal(e.stderr, `tesseract-grpc proto: UNAVAILABLE: no server at ${closed} (connection refused) — start one with \`tesseract-grpc serve meshstats\` (or your own Tesseract), or point --address at a running one\n`);
      return true;
    });
  });
});
