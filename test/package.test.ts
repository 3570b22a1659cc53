/**
 * The package an app depends on: what `npm pack` ships, and strict consumers type-checked against the
 * installed tarball under every module resolution TypeScript offers (node10, node16 CommonJS and ESM,
 * bundler), then run, so `tesseract-grpc/client` and the named exports resolve for real.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { builtinModules } from "node:module";
import { promisify } from "node:util";
import { readPackageJson, sandbox, typeChecker, type TypeChecker, type Sandbox } from "./sandbox";

const run = promisify(execFile);

/** The same consumer for every resolution: the SDK subpath, the entry, ndarray (typed by @types/ndarray). */
const CONSUMER = `import ndarray from "ndarray";
import { TesseractClient, TesseractClientError, assembleJacobian, toFloat64, StepMode, StochasticEstimator, type Arrays } from "tesseract-grpc/client";
import { Code, defineTesseract, invalidArgument, startServer } from "tesseract-grpc";

interface Inputs { x?: { datatype: number; shape: number[]; data: Uint8Array } }
const inputs: Arrays<Inputs> = { x: ndarray(Float64Array.of(1, 2), [2]) };
const values: Float64Array = toFloat64(inputs.x!);
const error = invalidArgument("x: expected a number");
console.log(JSON.stringify({
  values: Array.from(values),
  invalidArgument: error.code === Code.INVALID_ARGUMENT,
  functions: [TesseractClient, TesseractClientError, assembleJacobian, defineTesseract, startServer].map((f) => typeof f),
  // Every option enum the docs name (sdk.md): StepMode and StochasticEstimator were not exported.
  enums: [StepMode.STEP_MODE_RELATIVE, StochasticEstimator.STOCHASTIC_ESTIMATOR_SPSA],
}));
`;

/** ESM only: every name the CommonJS modules export is a named export of the ES module view (Node's CJS interop). */
const NAMED_EXPORTS = `import { createRequire } from "node:module";
import * as client from "tesseract-grpc/client";
import * as entry from "tesseract-grpc";

const require = createRequire(import.meta.url);
const missing = (esm: object, specifier: string) => Object.keys(require(specifier)).filter((name) => !(name in esm)).map((name) => specifier + ": " + name);
console.log(JSON.stringify([...missing(client, "tesseract-grpc/client"), ...missing(entry, "tesseract-grpc")]));
`;

const strict = { target: "ES2022", strict: true, esModuleInterop: true, skipLibCheck: true, types: ["node"], outDir: "dist", rootDir: "." };

interface Consumer {
  name: string;
  compilerOptions: Record<string, unknown>;
  type?: "module";
  files?: Record<string, string>;
}

// skipLibCheck, as `tsc --init` sets it: checking every library's declarations would cost seconds per
// consumer; what a consumer needs of ours (the types our declarations import) is checked on its own.
const CONSUMERS: Consumer[] = [
  { name: "node10", compilerOptions: { module: "commonjs", moduleResolution: "node10" } },
  { name: "node16-commonjs", compilerOptions: { module: "node16", moduleResolution: "node16" } },
  { name: "node16-esm", type: "module", compilerOptions: { module: "node16", moduleResolution: "node16" }, files: { "named-exports.ts": NAMED_EXPORTS } },
  { name: "bundler", type: "module", compilerOptions: { module: "esnext", moduleResolution: "bundler" } },
];

/** The modules a declaration file imports (`from "x"`, `import("x")`, `/// <reference types="x" />`), Node's built-ins left out. */
function importedModules(declarations: string): string[] {
  const specifiers = [...declarations.matchAll(/(?:from\s+|import\(\s*|<reference\s+types=)"([^"]+)"/g)].map((m) => m[1]);
  return specifiers.filter((s) => !s.startsWith(".") && !s.startsWith("node:") && !builtinModules.includes(s));
}

const packageName = (specifier: string) => specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/");

describe("the package as an app installs it (npm pack, then npm ci of the tarball)", function () {
  this.timeout(180_000);
  let box: Sandbox;
  let checker: TypeChecker;

  before(async () => {
    box = await sandbox();
    checker = typeChecker(box);
  });

  it("ships only dist of server, common, client, cli, generated and the entry, proto/, README, docs/, LICENSE and package.json", () => {
    // Below those dist/ folders, whatever the build puts there (a descriptor set, say), but no source maps.
    const shipped = /^(package\.json|README\.md|LICENSE|proto\/.+\.proto|docs\/[\w-]+\.md|dist\/index\.(js|d\.ts)|dist\/(server|common|client|cli|generated)\/.+(?<!\.map))$/;
    assert.deepEqual(box.packedFiles.filter((f) => !shipped.test(f)), []);
    for (const file of ["LICENSE", "README.md", "dist/index.d.ts", "dist/cli/cli.js", "dist/client/index.d.ts", "dist/server/eval/worker.js", "proto/tesseract/v1/tesseract.proto"]) {
      assert.ok(box.packedFiles.includes(file), `${file} is not in the tarball`);
    }
    assert.ok(!box.packedFiles.some((f) => /^dist\/(test|bench)\//.test(f)), "tests or benchmarks in the tarball");
    // Every contract file, and every compiled module of the shipped folders.
    for (const proto of fs.readdirSync(path.join(__dirname, "../../proto"), { recursive: true }).map(String).filter((f) => f.endsWith(".proto"))) {
      assert.ok(box.packedFiles.includes(`proto/${proto}`), `proto/${proto} is not in the tarball`);
    }
    // The docs/ pages the README's Reference links, so that its links hold in node_modules/tesseract-grpc too.
    const linked = [...fs.readFileSync(path.join(__dirname, "../../README.md"), "utf8").matchAll(/\]\((docs\/[^)#]+\.md)[)#]/g)].map((m) => m[1]);
    assert.ok(linked.length >= 10, linked.join(", "));
    for (const page of [...linked, ...fs.readdirSync(path.join(__dirname, "../../docs")).map((f) => `docs/${f}`)]) {
      assert.ok(box.packedFiles.includes(page), `${page} is not in the tarball`);
    }
  });

  it("is Apache-2.0 with the license's text, and installs its runtime type dependencies (@types/ndarray)", () => {
    const pkg = readPackageJson(path.join(box.dir, "node_modules/tesseract-grpc"));
    assert.equal(pkg.license, "Apache-2.0");
    const license = fs.readFileSync(path.join(box.dir, "node_modules/tesseract-grpc/LICENSE"), "utf8");
    assert.match(license, /^\s+Apache License\n\s+Version 2\.0, January 2004\n/);
    assert.match(license, /END OF TERMS AND CONDITIONS/);
    // Installed by npm because the package depends on it (not linked like the app's build tools).
    assert.equal(pkg.dependencies["@types/ndarray"], readPackageJson().dependencies["@types/ndarray"]);
    assert.ok(fs.lstatSync(path.join(box.dir, "node_modules/@types/ndarray")).isDirectory());
  });

  it("every package its declaration files import is a dependency, with types (no TS7016 in a strict app)", () => {
    const installed = path.join(box.dir, "node_modules/tesseract-grpc");
    const { name, dependencies } = readPackageJson(installed);
    const imports = new Map<string, string>(); // specifier -> a declaration file importing it
    for (const file of box.packedFiles.filter((f) => f.endsWith(".d.ts"))) {
      for (const specifier of importedModules(fs.readFileSync(path.join(installed, file), "utf8"))) imports.set(specifier, path.join(installed, file));
    }
    assert.ok(imports.has("ndarray") && imports.has("@grpc/grpc-js"), `imports found: ${[...imports.keys()].join(", ")}`);
    for (const [specifier, from] of imports) {
      if (packageName(specifier) === name) continue;
      assert.ok(dependencies[packageName(specifier)] !== undefined, `the declarations import ${specifier}, whose package is not a dependency`);
      assert.ok(checker.resolvesToTypes(specifier, from), `${specifier} (imported by ${path.relative(installed, from)}) resolves to no declarations`);
    }
  });

  for (const consumer of CONSUMERS) {
    it(`a strict ${consumer.name} consumer type-checks and runs`, async () => {
      const dir = path.join(box.dir, "consumers", consumer.name);
      const files = { "main.ts": CONSUMER, ...consumer.files };
      fs.mkdirSync(dir, { recursive: true });
      for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ private: true, ...(consumer.type ? { type: consumer.type } : {}) }));
      const tsconfig = path.join(dir, "tsconfig.json");
      fs.writeFileSync(tsconfig, JSON.stringify({ compilerOptions: { ...strict, ...consumer.compilerOptions }, include: Object.keys(files) }));
      assert.deepEqual(checker.check(tsconfig, { emit: true }), []);

      const { stdout } = await run(process.execPath, [path.join(dir, "dist/main.js")], { cwd: dir });
      assert.deepEqual(JSON.parse(stdout), { values: [1, 2], invalidArgument: true, functions: ["function", "function", "function", "function", "function"], enums: [2, 1] });
      if (consumer.files?.["named-exports.ts"]) {
        const missing = await run(process.execPath, [path.join(dir, "dist/named-exports.js")], { cwd: dir });
        assert.deepEqual(JSON.parse(missing.stdout), [], "CommonJS exports an ES module import does not see");
      }
    });
  }

  it("puts the tesseract-grpc command on the app's PATH (node_modules/.bin)", async () => {
    const { stdout } = await box.run("tesseract-grpc", ["--help"]);
    for (const command of ["serve", "generate", "apply", "jacobian"]) assert.match(stdout, new RegExp(`^  ${command} `, "m"));
  });
});
