/**
 * A Tesseract defined OUTSIDE the source tree (a user's project in a temporary folder, with its own
 * node_modules), loaded by path exactly like a bundled one.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { NdArray } from "ndarray";
import { Code, loadTesseract, TesseractError } from "../index";
import { PROTO_DIR } from "../server/proto-dir";
import type { TesseractRuntime } from "../server/runtime";
import { DataType } from "../common/tensor-codec";
import { flat } from "./helpers";

const repoRoot = path.join(__dirname, "../..");
const fixtureDir = path.join(repoRoot, "test/fixtures/polynomial");

const bytes = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const fp64 = (values: number[], shape = [values.length]) => ({ datatype: DataType.DATA_TYPE_FP64, shape, data: bytes(Float64Array.from(values)) });


function close(actual: ArrayLike<number>, expected: readonly number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    assert.ok(err <= tol, `${what}[${i}] = ${actual[i]}, expected ${expected[i]} (error ${err} > ${tol})`);
  }
}

describe("a Tesseract module outside the source tree", () => {
  let tmpDir: string;
  let modulePath: string;
  let runtime: TesseractRuntime;
  let calls: () => number;

  before(() => {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-grpc-external-"));
    for (const file of ["polynomial.js", "polynomial.proto"]) fs.copyFileSync(path.join(fixtureDir, file), path.join(tmpDir, file));
    // A user project has its own dependencies installed; ours stand in for them.
    fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(tmpDir, "node_modules"), "dir");
    modulePath = path.join(tmpDir, "polynomial.js");
    runtime = loadTesseract(modulePath);
    // The same module instance the loader required (same resolved path), so its counter is the one apply bumps.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    calls = (require(modulePath) as { calls: () => number }).calls;
  });

  after(() => {
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  const inputsAny = (message: Record<string, unknown>) => ({
    type_url: runtime.schema.inputs.typeUrl,
    value: runtime.schema.inputs.type.encode(message).finish(),
  });

  it("is loaded from the temporary folder, not from the fixture", () => {
    assert.ok(!modulePath.startsWith(repoRoot), `${modulePath} lies outside ${repoRoot}`);
    const files = runtime.schema.root.files;
    assert.ok(files.includes(path.join(tmpDir, "polynomial.proto")), `proto loaded from the module's folder: ${files.join(", ")}`);
    assert.ok(!files.some((f) => f.startsWith(fixtureDir)), `nothing loaded from the fixture: ${files.join(", ")}`);
    // The import "tesseract/v1/tensor.proto" comes from the contract's proto/ folder.
    assert.ok(files.includes(path.join(PROTO_DIR, "tesseract/v1/tensor.proto")), `tensor.proto from ${PROTO_DIR}: ${files.join(", ")}`);
    assert.equal(require.resolve(modulePath), modulePath);
  });

  it("describes itself like a bundled Tesseract", () => {
    const d = runtime.definition;
    assert.equal(d.name, "polynomial");
    assert.equal(d.version, "0.0.1");
    assert.equal(d.description, "Test functions with known derivatives.");
    assert.equal(runtime.schema.inputs.fullName, "tesseract.testing.polynomial.v1.Inputs");
    assert.equal(runtime.schema.outputs.fullName, "tesseract.testing.polynomial.v1.Outputs");
    assert.equal(runtime.schema.inputs.typeUrl, "type.googleapis.com/tesseract.testing.polynomial.v1.Inputs");
    assert.deepEqual(runtime.schema.inputs.differentiablePatternNames(), ["x", "y", "params.{}", "blocks.[].w"]);
    assert.deepEqual(runtime.schema.outputs.differentiablePatternNames(), ["f", "named.{}", "g"]);
    const options = runtime.options({});
    assert.equal(options.algorithm, "central");
    assert.equal(options.eps, 1e-5);
  });

  it("applies to decoded inputs and its outputs encode", async () => {
    const x = [0.5, -1, 2];
    const y = 0.25;
    const inputs = runtime.decodeInputs(inputsAny({ x: fp64(x), y: fp64([y], []), params: { "a.b": fp64([1, -2]) }, blocks: [{ w: fp64([3]) }, { w: fp64([1, 2]) }] }));
    const before = calls();
    const out = (await runtime.apply(inputs)) as Record<string, unknown>;
    assert.equal(calls() - before, 1);
    const sum = x.reduce((a, b) => a + b, 0);
    assert.deepEqual(flat(out.f), x.map((v) => v ** 3 + y * Math.sin(v)));
    assert.deepEqual(Object.keys(out.named as object), ["a.b"]);
    assert.deepEqual(flat((out.named as Record<string, unknown>)["a.b"]), [1 * sum, 4 * sum]);
    assert.deepEqual(flat(out.g), [9 + 1 + 4 + Math.exp(y)]);
    const back = runtime.schema.outputs.decodeAny(runtime.encodeOutputs(out), "outputs");
    assert.deepEqual(flat(back.f), flat(out.f));
    assert.deepEqual(flat(back.g), flat(out.g));
    assert.deepEqual(flat(back.count_out), [3]);
    assert.ok((back.count_out as NdArray).data instanceof Int32Array);
  });

  it("computes the Jacobian of f and g w.r.t. x and y with the module's defaults, in exactly 2n apply calls", async () => {
    const x = [0.3, -1.2, 2.0, 0.75];
    const y = 0.7;
    const n = x.length + 1; // x's elements plus the scalar y
    const inputs = runtime.decodeInputs(inputsAny({ x: fp64(x), y: fp64([y], []), params: { p: fp64([2]) }, blocks: [{ w: fp64([0.5, 1.5]) }] }));
    const before = calls();
    const { entries, stats } = await runtime.jacobian({ inputs, inputPaths: ["x", "y"], outputPaths: ["f", "g"] });

    // Central differences: 2 evaluations per input element, none for the base point.
    assert.equal(stats.apply_calls, 2 * n);
    assert.equal(calls() - before, 2 * n);
    assert.ok(stats.wall_seconds >= 0);

    assert.deepEqual(
      entries.map((e) => [e.outputPath, e.inputPath, e.shape]),
      [
        ["f", "x", [4, 4]],
        ["f", "y", [4]],
        ["g", "x", [4]],
        ["g", "y", []],
      ],
    );
    const [fx, fy, gx, gy] = entries;

    // Error of central differences with h = 1e-5 (the module's eps): truncation h²/6·|f'''| with
    // |∂³f_i/∂x_i³| = |6 - y cos x_i| ≤ 6.7 and |∂³f_i/∂y³| = 0, |∂³g/∂y³| = e^y ≈ 2, i.e. ≤ 1.2e-10;
    // plus rounding of f(x±h) (|f| ≤ 9 here, |g| ≤ 5) ≈ 2·1.1e-16·|f|/h ≤ 2e-10. The quotient divides
    // by the step actually taken, so the step's representation adds nothing. 1e-8 leaves a 30× margin
    // and still fails for a forward difference (error h/2·|f''| ≈ 6e-5) or a wrong step.
    const tol = 1e-8;
    const dfdx: number[] = [];
    x.forEach((xi, i) => x.forEach((_, j) => dfdx.push(i === j ? 3 * xi * xi + y * Math.cos(xi) : 0)));
    close(fx!.values, dfdx, tol, "df/dx");
    close(fy!.values, x.map(Math.sin), tol, "df/dy");
    close(gy!.values, [Math.exp(y)], tol, "dg/dy");
    // f_i does not depend on x_j (j ≠ i) and g not on x at all: those differences are exactly zero.
    x.forEach((_, i) => x.forEach((__, j) => i !== j && assert.equal(fx!.values[i * x.length + j], 0, `df${i}/dx${j}`)));
    assert.deepEqual([...gx!.values], [0, 0, 0, 0]);

    // The base inputs are restored after perturbing.
    assert.deepEqual(flat(inputs.x), x);
    assert.deepEqual(flat(inputs.y), [y]);
  });

  it("rejects a path that does not exist", () => {
    const missing = path.join(tmpDir, "missing.js");
    assert.throws(
      () => loadTesseract(missing),
      (e: Error) => e.message === `"${missing}" is neither a bundled Tesseract (meshstats, vectoradd, univariate, heat) nor an existing module path`,
    );
  });

  it("says what a spec naming nothing most likely meant: a runtime's HOST:PORT without http://, a bundled name misspelt, a module without its extension or in another case, a folder", () => {
    const neither = (spec: string) => `"${spec}" is neither a bundled Tesseract (meshstats, vectoradd, univariate, heat) nor an existing module path`;
    const folder = fs.mkdtempSync(path.join(tmpDir, "hints-"));
    fs.writeFileSync(path.join(folder, "springs.ts"), "");
    fs.writeFileSync(path.join(folder, "springs.d.ts"), "");
    // A link to nothing is no module (stat would throw ENOENT, in place of the message).
    fs.symlinkSync(path.join(folder, "gone.ts"), path.join(folder, "dangling.ts"));
    const cases: [string, string][] = [
      ["localhost:8000", `${neither("localhost:8000")}; a tesseract-core runtime is served by its URL: http://localhost:8000`],
      ["mesh_stats", `${neither("mesh_stats")}; did you mean meshstats?`],
      ["VectorAdd", `${neither("VectorAdd")}; did you mean vectoradd?`],
      [path.join(folder, "springs"), `${neither(path.join(folder, "springs"))}; did you mean ${path.join(folder, "springs.ts")}?`],
      [path.join(folder, "Springs.ts"), `${neither(path.join(folder, "Springs.ts"))}; did you mean ${path.join(folder, "springs.ts")}?`],
      [folder, `"${folder}" is a folder: serve takes the module file (.ts or .js) that default-exports the Tesseract's definition (in it: ${path.join(folder, "springs.ts")})`],
    ];
    for (const [spec, message] of cases) assert.throws(() => loadTesseract(spec), (e: Error) => e.message === message, spec);
  });

  it("rejects a default export that is not a whole definition, naming the file and the missing key", () => {
    const cases: [string, string, string][] = [
      ["bad-partial.js", `module.exports = { default: { name: "bad", version: "1", apply() { return {}; } } };`, "inputType"],
      ["bad-noproto.js", `exports.default = { name: "p", inputType: "a.B", outputType: "a.C", apply() {} };`, "protoFiles"],
    ];
    for (const [file, source, key] of cases) {
      const badPath = path.join(tmpDir, file);
      fs.writeFileSync(badPath, source);
      assert.throws(
        () => loadTesseract(badPath),
        (e: Error) => e.message === `${badPath} does not default-export a Tesseract definition: "${key}" is missing`,
        file,
      );
    }
  });

  it("tells a module without a default export how to end, in its own module system (module.exports = … in CommonJS, export default … in an ES module)", () => {
    const [commonJs, esm] = [`"module.exports = defineTesseract({ ... })"`, `"export default defineTesseract({ ... })"`];
    const cases: [string, string, string, string][] = [
      ["none-empty.js", `module.exports = {};`, "", commonJs],
      ["none-number.js", `module.exports = 42;`, "", commonJs],
      ["none-named.js", `exports.springs = { name: "s", apply() {} }; exports.helper = () => 1;`, ` (it exports "springs": make that the default export)`, commonJs],
      ["none-named.cjs", `exports.helper = () => 1;`, "", commonJs],
      // tsc's CommonJS output of an ES module's source: the source has export statements.
      ["none-compiled.js", `Object.defineProperty(exports, "__esModule", { value: true }); exports.helper = () => 1;`, "", esm],
      ["none-named.mjs", `export const springs = { name: "s", apply() {} };`, ` (it exports "springs": make that the default export)`, esm],
    ];
    for (const [file, source, hint, ending] of cases) {
      const badPath = path.join(tmpDir, file);
      fs.writeFileSync(badPath, source);
      assert.throws(
        () => loadTesseract(badPath),
        (e: Error) => e.message === `${badPath} has no default export${hint}: end it with ${ending}`,
        file,
      );
    }
  });

  it("an ES module in a .js file that Node.js reads as CommonJS: says to name it .mjs or set \"type\": \"module\" in the package.json that decides", () => {
    const dir = fs.mkdtempSync(path.join(tmpDir, "commonjs-package-"));
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "app", type: "commonjs" }));
    for (const [file, source] of [
      ["imports.js", `import { defineTesseract } from "tesseract-grpc";\nexport default defineTesseract({});`],
      ["exports.js", `export default { name: "esm" };`],
    ]) {
      const given = path.join(dir, file);
      fs.writeFileSync(given, source);
      assert.throws(
        () => loadTesseract(given),
        (e: Error) =>
          e.message === `${given} is written as an ES module (import/export), but Node.js reads it as CommonJS: name it .mjs, or set "type": "module" in ${path.join(dir, "package.json")}`,
        file,
      );
    }
  });

  it("a module whose import is missing: names the importer, the import and the fix (Node's message trailed the server's require stack)", () => {
    const dir = fs.mkdtempSync(path.join(tmpDir, "imports-"));
    const cases: [string, string, (file: string) => string][] = [
      ["types.js", `const { Inputs } = require("./generated/layer.js");`, (file) => `${file} imports "./generated/layer.js", which is not at ${path.join(dir, "generated/layer.js")}: if it is the generated types, write them first (npx tesseract-grpc generate <its .proto> --out <that folder>), or import them with "import type", which needs nothing at run time`],
      ["helper.js", `require("./solver.js");`, (file) => `${file} imports "./solver.js", which is not at ${path.join(dir, "solver.js")}`],
      ["package.js", `require("ndarrayy/lib");`, (file) => `${file} imports the package "ndarrayy/lib", which is not installed where it can be found: npm install ndarrayy in its project`],
      ["unlinked.js", `require("tesseract-grpc");`, (file) => `${file} imports the package "tesseract-grpc", which is not installed where it can be found: npm install <your clone>/tesseract-grpc-<version>.tgz (the tarball npm pack writes there) in its project`],
      ["scoped.js", `require("@acme/solver/fast");`, (file) => `${file} imports the package "@acme/solver/fast", which is not installed where it can be found: npm install @acme/solver in its project`],
    ];
    for (const [file, source, message] of cases) {
      const given = path.join(dir, file);
      fs.writeFileSync(given, source);
      assert.throws(() => loadTesseract(given), (e: Error) => e.message === message(given), file);
    }
    // Missing in a file the module imports: that file is the one named.
    const importer = path.join(dir, "solver.js");
    fs.writeFileSync(importer, `require("./kernel.js");`);
    const top = path.join(dir, "top.js");
    fs.writeFileSync(top, `require("./solver.js");`);
    assert.throws(() => loadTesseract(top), (e: Error) => e.message === `${importer} imports "./kernel.js", which is not at ${path.join(dir, "kernel.js")}`);
  });

  it("a .proto or .json file given for the module: says what serve takes (it was a JavaScript parse error of the file)", () => {
    for (const file of ["springs.proto", "payload.json"]) {
      const given = path.join(tmpDir, file);
      fs.writeFileSync(given, file.endsWith(".proto") ? 'syntax = "proto3";\npackage probe.roots.v1;\n' : "{}");
      assert.throws(
        () => loadTesseract(given),
        (e: Error) => e.message === `${given} is a ${path.extname(file).slice(1)} file: serve takes the module (.js or .ts) that default-exports the Tesseract's definition, whose protoFiles name its .proto files`,
        file,
      );
    }
  });

  it("names a .proto file that is not where the module says, and why tsc builds lose them", () => {
    const modulePath = path.join(tmpDir, "lost-proto.js");
    fs.writeFileSync(modulePath, `exports.default = { name: "p", inputType: "a.B", outputType: "a.C", protoFiles: ["p.proto"], apply() {} };`);
    assert.throws(
      () => loadTesseract(modulePath),
      (e: Error) =>
        e.message.startsWith(`${modulePath} names the .proto file "p.proto", which is not at ${path.join(tmpDir, "p.proto")}: protoFiles are relative to the module's folder, and tsc does not copy .proto files`) &&
        e.message.includes(`"../proto/p.proto"`),
    );
  });

  it("loads an ES module, and explains why one with a top-level await cannot be", () => {
    fs.copyFileSync(path.join(fixtureDir, "polynomial.proto"), path.join(tmpDir, "esm.proto"));
    const esm = path.join(tmpDir, "esm.mjs");
    fs.writeFileSync(esm, `export default { name: "esm", inputType: "tesseract.testing.polynomial.v1.Inputs", outputType: "tesseract.testing.polynomial.v1.Outputs", protoFiles: ["esm.proto"], apply() { return {}; } };`);
    assert.equal(loadTesseract(esm).definition.name, "esm");
    const awaiting = path.join(tmpDir, "await.mjs");
    fs.writeFileSync(awaiting, `await Promise.resolve();\nexport default {};`);
    assert.throws(
      () => loadTesseract(awaiting),
      (e: Error) => e.message === `${awaiting} is an ES module with a top-level await, which require() cannot load: await inside apply (or a function it calls) instead`,
    );
  });
});

describe("a Tesseract module written in TypeScript", () => {
  let tmpDir: string;

  before(() => {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-grpc-ts-module-"));
    fs.copyFileSync(path.join(fixtureDir, "polynomial.proto"), path.join(tmpDir, "polynomial.proto"));
    fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(tmpDir, "node_modules"), "dir");
    // ES syntax, a type annotation, an import of a sibling .ts by its .js name, and a package import.
    fs.writeFileSync(path.join(tmpDir, "cube.ts"), "export function cube(x: number): number {\n  return x ** 3;\n}\n");
    fs.writeFileSync(
      path.join(tmpDir, "polynomial.ts"),
      [
        `import ndarray from "ndarray";`,
        `import { cube } from "./cube.js";`,
        // As a module imports tesseract-grpc: the server's own copy (here, this checkout's).
        `import { invalidArgument } from ${JSON.stringify(path.join(repoRoot, "dist/common/errors.js"))};`,
        `interface Leaf { size: number; get(i: number): number }`,
        `export default {`,
        `  name: "cubes", version: "1.0.0", description: "f = x^3",`,
        `  inputType: "tesseract.testing.polynomial.v1.Inputs", outputType: "tesseract.testing.polynomial.v1.Outputs",`,
        `  protoFiles: ["polynomial.proto"],`,
        `  validate(inputs: { x: Leaf }) {`,
        `    if (inputs.x.size === 0) throw invalidArgument("x: expected at least one element");`,
        `  },`,
        `  apply(inputs: { x: Leaf }) {`,
        `    const f = new Float64Array(inputs.x.size).map((_, i) => cube(inputs.x.get(i)));`,
        `    return { f: ndarray(f, [f.length]) };`,
        `  },`,
        `};`,
      ].join("\n"),
    );
  });

  after(() => {
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  it("is compiled on load and differentiated like a JavaScript one", async () => {
    const runtime = loadTesseract(path.join(tmpDir, "polynomial.ts"));
    assert.equal(runtime.definition.name, "cubes");
    const inputs = runtime.decodeInputs({ type_url: runtime.schema.inputs.typeUrl, value: runtime.schema.inputs.type.encode({ x: fp64([1, -2]) }).finish() });
    const { entries, stats } = await runtime.jacobian({ inputs, inputPaths: ["x"], outputPaths: ["f"] });
    assert.deepEqual(entries.map((e) => [e.outputPath, e.inputPath, e.shape]), [["f", "x", [2, 2]]]);
    close(entries[0].values, [3, 0, 0, 12], 1e-6, "df/dx");
    assert.equal(stats.apply_calls, 4);
  });

  it("shares the server's copy of tesseract-grpc: its invalidArgument is INVALID_ARGUMENT", () => {
    const runtime = loadTesseract(path.join(tmpDir, "polynomial.ts"));
    const empty = { type_url: runtime.schema.inputs.typeUrl, value: runtime.schema.inputs.type.encode({ x: fp64([]) }).finish() };
    assert.throws(() => runtime.decodeInputs(empty), (e: unknown) => e instanceof TesseractError && e.code === Code.INVALID_ARGUMENT && e.message === "x: expected at least one element");
  });

  it("is the same module instance when loaded again (worker threads load it by the same path)", () => {
    const file = path.join(tmpDir, "polynomial.ts");
    assert.equal(loadTesseract(file).definition, loadTesseract(file).definition);
  });
});
