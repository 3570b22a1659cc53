/**
 * `tesseract-grpc generate`: .proto files → buf → ts-proto → an app's folder. The strongest check is
 * that it reproduces this package's own generated/ byte for byte (same options, same names); the rest
 * is how files are named and found, ESM imports, and the messages for what goes wrong. With
 * `--address` the descriptors come from a running server by reflection, and give the same code.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { parse as parseYaml } from "yaml";
import { compileProtoFiles, locateProtoFiles } from "../cli/generate/proto-files";
import { findTool, TOOL_VERSIONS } from "../cli/generate/tools";
import { dependencyOrder, generateTypeScript, importedFrom, TS_PROTO_OPTIONS } from "../cli/generate/ts-proto";
import { moduleFormatAt, writeTypeScript } from "../cli/generate/command";
import { startServer } from "../index";
import { silentLogger } from "../server/log";
import { PROTO_DIR } from "../server/proto-dir";
import { CLI } from "./helpers";

const ROOT = path.join(__dirname, "../..");
const run = promisify(execFile);

/** Every file below `dir`, as relative paths, sorted. */
function listFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

/** The CLI's exit code and output, whether it succeeds or fails. */
function cli(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args], { cwd }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

const SPRINGS = `syntax = "proto3";
package acme.springs.v1;
import "tesseract/v1/tensor.proto";
import "units.proto";
message Inputs { tesseract.v1.Tensor stiffness = 1 [(tesseract.v1.differentiable) = true]; Unit unit = 2; }
message Outputs { tesseract.v1.Tensor force = 1 [(tesseract.v1.differentiable) = true]; }
`;
const UNITS = `syntax = "proto3";\npackage acme.springs.v1;\nenum Unit { UNIT_UNSPECIFIED = 0; UNIT_NEWTON = 1; }\n`;

describe("tesseract-grpc generate", () => {
  let tmp: string;
  let protoDir: string;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-grpc-generate-test-"));
    protoDir = path.join(tmp, "app", "proto");
    fs.mkdirSync(protoDir, { recursive: true });
    fs.writeFileSync(path.join(protoDir, "springs.proto"), SPRINGS);
    fs.writeFileSync(path.join(protoDir, "units.proto"), UNITS);
  });

  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("run on proto/, writes exactly this package's generated/ (the SDK's ts-proto options, the same names)", async () => {
    const out = path.join(tmp, "contract");
    const { stdout } = await run(process.execPath, [CLI, "generate", "proto", "--out", out], { cwd: ROOT });
    // All but descriptor.ts, which ts-proto writes for tensor.proto's option although no code imports it.
    const expected = listFiles(path.join(ROOT, "generated")).filter((f) => f !== "google/protobuf/descriptor.ts");
    assert.match(stdout, new RegExp(`^wrote ${expected.length} files \\(commonjs\\) to ${out}: `));
    assert.deepEqual(listFiles(out), expected);
    for (const file of expected) {
      assert.equal(fs.readFileSync(path.join(out, file), "utf8"), fs.readFileSync(path.join(ROOT, "generated", file), "utf8"), file);
    }
  });

  it("names an app's files below their own folder, and generates the contract files they import", async () => {
    const located = locateProtoFiles([path.join(protoDir, "springs.proto")], []);
    assert.deepEqual(located, { roots: [protoDir, PROTO_DIR], files: [[0, "springs.proto"]] });
    const source = await compileProtoFiles(located, findTool("@bufbuild/buf"));
    assert.deepEqual(source.files, ["springs.proto"]);
    assert.deepEqual(source.set.file.map((f) => f.name).sort(), ["google/protobuf/descriptor.proto", "springs.proto", "tesseract/v1/tensor.proto", "units.proto"]);
    // The custom option survives (ts-proto does not need it, but other consumers of the set do).
    const springs = source.set.file.find((f) => f.name === "springs.proto")!;
    assert.equal(springs.messageType[0].field[0].typeName, ".tesseract.v1.Tensor");

    const esm = await generateTypeScript(source, { module: "esm", plugin: findTool("ts-proto") });
    // descriptor.proto is imported (for the differentiable option) but no generated code uses it.
    assert.deepEqual(esm.map((f) => f.name).sort(), ["springs.ts", "tesseract/v1/tensor.ts", "units.ts"]);
    const springsTs = esm.find((f) => f.name === "springs.ts")!.content;
    assert.match(springsTs, /^import \{ Tensor \} from "\.\/tesseract\/v1\/tensor\.js";$/m);
    assert.match(springsTs, /^import \{ Unit, unitFromJSON, unitToJSON \} from "\.\/units\.js";$/m);
    assert.match(springsTs, /^export interface Inputs \{\n  stiffness\?: Tensor \| undefined;\n  unit: Unit;\n\}$/m);
    // ESM: every relative import names its .js file.
    for (const file of esm) {
      for (const [, spec] of file.content.matchAll(/from "(\.[^"]+)"/g)) assert.match(spec, /\.js$/, `${file.name} imports ${spec}`);
    }
    // CommonJS (no suffix): the first test, which reproduces generated/.
  });

  it("writes only the files the requested ones import, transitively", () => {
    const file = (name: string, ...imports: string[]) => ({ name, content: imports.map((i) => `import { X } from "${i}";`).join("\n") });
    const files = [file("a/app.ts", "../lib/b.js", "@bufbuild/protobuf/wire"), file("lib/b.ts"), file("lib/c.ts"), file("lib/d.ts"), file("unused.ts", "./lib/c")];
    // Imports over several lines, as ts-proto writes long ones.
    files[1].content = `import {\n  C,\n  D,\n} from "./c";\nexport { E } from "./d";\n`;
    assert.deepEqual(importedFrom(files, ["a/app.ts"]).map((f) => f.name), ["a/app.ts", "lib/b.ts", "lib/c.ts", "lib/d.ts"]);
  });

  it("finds files by folder, by name on the include path, and below a --proto-path", () => {
    assert.deepEqual(locateProtoFiles([protoDir], []), { roots: [protoDir, PROTO_DIR], files: [[0, "springs.proto"], [0, "units.proto"]] });
    assert.deepEqual(locateProtoFiles(["tesseract/examples/meshstats/v1/meshstats.proto"], []), {
      roots: [PROTO_DIR],
      files: [[0, "tesseract/examples/meshstats/v1/meshstats.proto"]],
    });
    assert.deepEqual(locateProtoFiles([path.join(protoDir, "springs.proto")], [path.join(tmp, "app")]), {
      roots: [path.join(tmp, "app"), PROTO_DIR],
      files: [[0, "proto/springs.proto"]],
    });
    // A file inside the contract's folder keeps its contract name (not a second copy below its own folder).
    assert.deepEqual(locateProtoFiles([path.join(PROTO_DIR, "tesseract/v1/tensor.proto")], []), { roots: [PROTO_DIR], files: [[0, "tesseract/v1/tensor.proto"]] });
    // A bundled Tesseract by the name `serve` takes ("heat: no such file" before).
    assert.deepEqual(locateProtoFiles(["heat", "meshstats"], []), {
      roots: [PROTO_DIR],
      files: [[0, "tesseract/examples/heat/v1/heat.proto"], [0, "tesseract/examples/meshstats/v1/meshstats.proto"]],
    });
    assert.throws(() => locateProtoFiles(["nope"], []), { message: `nope: no such file, nor a bundled Tesseract (heat, meshstats, univariate, vectoradd), nor on the include path (${PROTO_DIR})` });
    // What a name that matches nothing most likely meant: a bundled name spelt otherwise, or by its file name alone; a server's address.
    const meant = "; did you mean meshstats (tesseract/examples/meshstats/v1/meshstats.proto)?";
    assert.throws(() => locateProtoFiles(["mesh_stats"], []), { message: `mesh_stats: no such file, nor a bundled Tesseract (heat, meshstats, univariate, vectoradd), nor on the include path (${PROTO_DIR})${meant}` });
    assert.throws(() => locateProtoFiles(["meshstats.proto"], []), { message: `meshstats.proto: no such file, nor on the include path (${PROTO_DIR})${meant}` });
    assert.throws(() => locateProtoFiles(["localhost:50051"], []), {
      message: `localhost:50051: no such file, nor on the include path (${PROTO_DIR}); a running server's types come by reflection: --address localhost:50051`,
    });
  });

  it("says what is wrong: no such file, outside every --proto-path, an empty folder, buf's errors at the real paths", async () => {
    assert.throws(() => locateProtoFiles(["nope.proto"], []), { message: `nope.proto: no such file, nor on the include path (${PROTO_DIR})` });
    assert.throws(() => locateProtoFiles([path.join(protoDir, "springs.proto")], [path.join(tmp, "elsewhere")]), { message: `--proto-path ${path.join(tmp, "elsewhere")}: no such folder` });
    fs.mkdirSync(path.join(tmp, "other"), { recursive: true });
    assert.throws(() => locateProtoFiles([path.join(protoDir, "springs.proto")], [path.join(tmp, "other")]), {
      message: `${path.join(protoDir, "springs.proto")} is not below any --proto-path (${path.join(tmp, "other")})`,
    });
    assert.throws(() => locateProtoFiles([path.join(tmp, "other")], []), { message: `${path.join(tmp, "other")}: no .proto files in this folder` });

    const broken = path.join(tmp, "broken");
    fs.mkdirSync(broken);
    fs.writeFileSync(path.join(broken, "broken.proto"), `syntax = "proto3";\nmessage M { Missing m = 1; }\n`);
    const { code, stdout, stderr } = await run(process.execPath, [CLI, "generate", "broken/broken.proto", "--out", "out"], { cwd: tmp }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.deepEqual([code, stdout], [1, ""]);
    // buf's own wording, at the path the user gave (not the throw-away workspace's link).
    assert.match(stderr, /^tesseract-grpc: buf could not compile the \.proto files:\nbroken\/broken\.proto:2:13:[^\n]*`Missing`[^\n]*\n$/);
  });

  it("takes any FileDescriptorSet (the seam for descriptors from elsewhere): imports first, a missing one named", async () => {
    const file = (name: string, dependency: string[] = []) => create(FileDescriptorProtoSchema, { name, dependency, syntax: "proto3" });
    assert.deepEqual(dependencyOrder([file("c.proto", ["b.proto"]), file("a.proto"), file("b.proto", ["a.proto"])]).map((f) => f.name), ["a.proto", "b.proto", "c.proto"]);
    assert.throws(() => dependencyOrder([file("c.proto", ["b.proto"])]), { message: `c.proto imports "b.proto", which the descriptors do not include` });
    assert.throws(() => dependencyOrder([file("a.proto", ["b.proto"]), file("b.proto", ["a.proto"])]), { message: "import cycle: a.proto -> b.proto -> a.proto" });
    const set = create(FileDescriptorSetSchema, { file: [file("a.proto")] });
    await assert.rejects(generateTypeScript({ set, files: ["z.proto"] }, { module: "esm", plugin: findTool("ts-proto") }), { message: `no descriptor for "z.proto"` });
  });

  describe("--address: a running server's Tesseract, by reflection", function () {
    this.timeout(60_000);
    const ACME = path.join(ROOT, "test/fixtures/acme-solver");

    /**
     * What `generate <protos>` writes, from descriptors without source info: reflection serves
     * descriptors as protoc and buf write them without it (as gRPC servers do), so the .proto
     * comments, which ts-proto copies into the code, do not come through.
     */
    async function generatedFromFiles(protos: string[], protoPaths: string[], out: string): Promise<string[]> {
      const source = await compileProtoFiles(locateProtoFiles(protos, protoPaths), findTool("@bufbuild/buf"));
      for (const file of source.set.file) file.sourceCodeInfo = undefined;
      return writeTypeScript(source, out, "esm");
    }

    for (const [tesseract, protos, protoPaths] of [
      ["meshstats", ["tesseract/examples/meshstats/v1/meshstats.proto"], []],
      [path.join(ACME, "solver.js"), ["acme/solver/v2/solver.proto"], [path.join(ACME, "protos")]],
    ] as const) {
      it(`${path.basename(tesseract)}: the same files as generating its .proto files`, async () => {
        const server = await startServer({ tesseract, port: 0, workers: 0, logger: silentLogger });
        try {
          const reflected = path.join(tmp, `reflected-${path.basename(tesseract)}`);
          const { code, stdout, stderr } = await cli(["generate", "--address", server.address, "--out", reflected, "--module", "esm"]);
          assert.deepEqual([code, stderr], [0, ""]);
          const fromFiles = path.join(tmp, `from-files-${path.basename(tesseract)}`);
          const expected = await generatedFromFiles([...protos], [...protoPaths], fromFiles);
          assert.equal(stdout, `wrote ${expected.length} files (esm) to ${reflected}: ${expected.join(", ")}\n`);
          assert.deepEqual(listFiles(reflected), listFiles(fromFiles));
          for (const file of listFiles(fromFiles)) {
            assert.equal(fs.readFileSync(path.join(reflected, file), "utf8"), fs.readFileSync(path.join(fromFiles, file), "utf8"), file);
          }
        } finally {
          await server.close();
        }
      });
    }

    it("no server at the address: exit 1 saying how to start one; neither files nor --address: a usage error", async () => {
      // A port nothing listens on: one just bound and closed.
      const probe = net.createServer().listen(0, "127.0.0.1");
      await once(probe, "listening");
      const closed = `127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
      await new Promise((resolve) => probe.close(resolve));
      const out = path.join(tmp, "unreachable");
      const refused = await cli(["generate", "--address", closed, "--out", out]);
      assert.deepEqual([refused.code, refused.stdout], [1, ""]);
      assert.equal(refused.stderr, `tesseract-grpc generate: UNAVAILABLE: no server at ${closed} (connection refused) — start one with \`tesseract-grpc serve meshstats\` (or your own Tesseract), or point --address at a running one\n`);
      assert.equal(fs.existsSync(out), false);

      const usage = await cli(["generate", "--out", out]);
      assert.equal(usage.code, 1);
      assert.match(usage.stderr, /^error: give the \.proto files to generate, or --address HOST:PORT of a running server\n/);
      const both = await cli(["generate", "proto", "--address", closed, "--out", out]);
      assert.equal(both.code, 1);
      assert.match(both.stderr, /^error: give either \.proto files or --address, not both\n/);
    });
  });

  it("picks ESM where the nearest package.json says type module, else CommonJS", () => {
    const esmApp = path.join(tmp, "esm-app");
    fs.mkdirSync(path.join(esmApp, "src"), { recursive: true });
    fs.writeFileSync(path.join(esmApp, "package.json"), JSON.stringify({ type: "module" }));
    assert.equal(moduleFormatAt(path.join(esmApp, "src/generated")), "esm");
    assert.equal(moduleFormatAt(ROOT), "commonjs");
  });

  it("says how to install ts-proto and buf where they are missing", () => {
    const install = "npm install --save-dev --save-exact ts-proto@2.18.0 @bufbuild/buf@1.75.0";
    assert.throws(() => findTool("ts-proto", [os.tmpdir()]), { message: `tesseract-grpc generate needs ts-proto in your project: ${install}` });
    assert.throws(() => findTool("@bufbuild/buf", [os.tmpdir()]), { message: `tesseract-grpc generate needs @bufbuild/buf in your project: ${install}` });
  });

  it("uses the options and tool versions this package builds with (buf.gen.yaml, package.json)", () => {
    const config = parseYaml(fs.readFileSync(path.join(ROOT, "buf.gen.yaml"), "utf8")) as { plugins: { local: string[]; opt: string[] }[] };
    assert.deepEqual(config.plugins[0].opt, [...TS_PROTO_OPTIONS]);
    assert.deepEqual(config.plugins[0].local, ["node", "node_modules/ts-proto/protoc-gen-ts_proto"]);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as Record<string, Record<string, string>>;
    for (const [tool, version] of Object.entries(TOOL_VERSIONS)) {
      assert.equal(pkg.devDependencies[tool], version, `devDependencies.${tool}`);
      assert.equal(pkg.peerDependencies[tool], `^${version}`, `peerDependencies.${tool}`);
      assert.deepEqual(pkg.peerDependenciesMeta[tool], { optional: true }, `peerDependenciesMeta.${tool}`);
    }
  });
});
