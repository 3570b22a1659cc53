/**
 * The README's recipes, run as a newcomer runs them, against the packed tarball installed in a
 * temporary app folder: examples/typescript (a strict app: generate its types, build, call every RPC
 * of a served meshstats) and examples/tesseract-ts (a Tesseract in TypeScript: served from its source,
 * built and served from dist/, and laid out as its Dockerfile lays it out in the image).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import ndarray from "ndarray";
import type { MessageFns } from "../client/index";
import { argv, last, options, parseDockerfile } from "./container-files";
import { serveProcess, type ServeProcess } from "./helpers";
import { BUILD_TOOLS, readPackageJson, sandbox, type Sandbox } from "./sandbox";

const ROOT = path.join(__dirname, "../..");

/** An example's files, without what its own install and build make. */
function copyExample(name: string, to: string): string {
  const dir = path.join(to, "examples", name);
  const made = /(^|\/)(node_modules|dist|generated)(\/|$)/;
  fs.cpSync(path.join(ROOT, "examples", name), dir, { recursive: true, filter: (src) => !made.test(path.relative(path.join(ROOT, "examples", name), src)) });
  return dir;
}

/** Springs' messages, as far as this test needs to know them. */
type Springs = Record<string, { datatype: number; shape: number[]; data: Uint8Array } | undefined>;

/** Springs' Jacobian at stiffness k and load F: extension_i = F / k_i, total = Σ extension_i. */
function springsJacobian(k: number[], F: number) {
  return {
    extension: { stiffness: k.map((ki, i) => k.map((_, j) => (i === j ? -F / ki ** 2 : 0))), load: k.map((ki) => 1 / ki) },
    total: { stiffness: k.map((ki) => -F / ki ** 2), load: k.reduce((sum, ki) => sum + 1 / ki, 0) },
  };
}

function assertNested(actual: unknown, expected: unknown, tolerance: number, where: string): void {
  if (typeof expected === "number") {
    assert.ok(typeof actual === "number" && Math.abs(actual - expected) <= tolerance, `${where}: ${String(actual)}, expected ${expected}`);
  } else if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual) && actual.length === expected.length, `${where}: ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
    expected.forEach((e, i) => assertNested(actual[i], e, tolerance, `${where}[${i}]`));
  } else {
    for (const [key, e] of Object.entries(expected as object)) assertNested((actual as Record<string, unknown>)?.[key], e, tolerance, `${where}.${key}`);
  }
}

describe("the README's recipes, from the packed tarball", function () {
  this.timeout(180_000);
  let box: Sandbox;
  let cli: string;

  before(async () => {
    box = await sandbox();
    cli = path.join(box.dir, "node_modules/tesseract-grpc/dist/cli/cli.js");
  });

  /** The app's own client command (node_modules/.bin/tesseract-grpc) against a server. */
  async function call(command: string, payload: object, address: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return box.run("tesseract-grpc", [command, JSON.stringify(payload), "--address", address]).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  }

  /**
   * Springs served by `args`, called through the installed SDK with the example's generated types:
   * the Jacobian against its formula, bad input refused with the module's own message and code.
   */
  async function assertSpringsServed(args: string[], where: { cli?: string; cwd: string }, check?: (address: string) => Promise<void>): Promise<void> {
    const server: ServeProcess = await serveProcess([...args, "--port", "0"], process.env, { cli, ...where });
    const sdk = require(path.join(box.dir, "node_modules/tesseract-grpc/dist/client/index.js")) as typeof import("../client/index");
    const types = require(path.join(box.dir, "examples/tesseract-ts/dist/generated/springs.js")) as { Inputs: MessageFns<Springs>; Outputs: MessageFns<Springs> };
    const client = new sdk.TesseractClient<Springs, Springs>(server.address, { inputs: types.Inputs, outputs: types.Outputs });
    try {
      const [k, F] = [[1, 2, 4], 2];
      const inputs = { stiffness: ndarray(Float64Array.from(k)), load: ndarray(Float64Array.of(F), []) };
      const { jacobian } = await client.jacobian({ inputs, inputPaths: ["stiffness", "load"], outputPaths: ["extension", "total"] });
      for (const [output, byInput] of Object.entries(springsJacobian(k, F))) {
        for (const [input, expected] of Object.entries(byInput)) {
          assertNested(Array.from(jacobian[output][input].data), [expected].flat(2), 1e-7, `d ${output} / d ${input}`);
        }
      }
      // The module's invalidArgument keeps its code: it is the server's own package, not a copy.
      const refused = await client.apply({ ...inputs, stiffness: ndarray(Float64Array.of(1, -1)) }).then(() => undefined, (e: unknown) => e);
      assert.ok(sdk.isTesseractClientError(refused), String(refused));
      assert.equal(refused.message, "INVALID_ARGUMENT: stiffness: expected every element > 0");
      await check?.(server.address);
    } finally {
      client.close();
      assert.equal(await server.stop(), 0);
    }
  }

  it("the examples depend on the tarball `npm pack` writes at the repository root, on this project's versions of the rest, and build by generate then tsc", () => {
    const project = readPackageJson();
    const versions = { ...project.devDependencies, ...project.dependencies };
    for (const name of ["typescript", "tesseract-ts"]) {
      const { dependencies, devDependencies, scripts } = readPackageJson(path.join(ROOT, "examples", name)) as ReturnType<typeof readPackageJson> & { scripts: Record<string, string> };
      assert.equal(scripts.build, `${scripts.generate} && tsc`, `examples/${name}: build is generate, then tsc`);
      assert.equal(dependencies["tesseract-grpc"], `file:../../${box.tarball}`, `examples/${name}: the tarball npm pack names`);
      for (const [dep, version] of Object.entries({ ...dependencies, ...devDependencies })) {
        if (dep !== "tesseract-grpc") assert.equal(version, versions[dep], `examples/${name}: ${dep}`);
      }
      assert.deepEqual(Object.keys(devDependencies).sort(), Object.keys(BUILD_TOOLS).sort(), `examples/${name}: the build tools the sandbox provides`);
    }
  });

  it("examples/typescript: `npm run build` generates its types and compiles; `npm start` calls apply, jacobian, jvp, vjp and jacobianRows", async () => {
    const app = copyExample("typescript", box.dir);
    const build = await box.run("npm", ["run", "build"], app);
    assert.match(build.stdout, /wrote \d+ files \(esm\) to src\/generated: /);
    const server = await serveProcess(["meshstats", "--port", "0"], process.env, { cli });
    try {
      const { stdout } = await box.run("npm", ["start", "--silent", "--", server.address], app);
      assert.deepEqual(stdout.trim().split("\n"), [
        "apply: barycenter [0.25, 0.5, 0.75]",
        "jacobian: shape [3, 4, 3], 8 apply calls", // 2 per column group: meshstats declares its structure (4 points)
        "jvp: [1, 0, 0]",
        "vjp: [0.25, 0.5, 0.75, 0.25, 0.5, 0.75, 0.25, 0.5, 0.75, 0.25, 0.5, 0.75]",
        "jacobianRows: 12 rows",
      ]);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  describe("examples/tesseract-ts", () => {
    let example: string;

    before(() => {
      example = copyExample("tesseract-ts", box.dir);
    });

    it("`npm run build` generates its types and compiles it (no .proto copied)", async () => {
      const build = await box.run("npm", ["run", "build"], example);
      assert.match(build.stdout, /wrote 2 files \(commonjs\) to src\/generated: tesseract\/v1\/tensor\.ts, springs\.ts/);
      assert.ok(fs.existsSync(path.join(example, "dist/springs.js")));
      assert.ok(!fs.readdirSync(path.join(example, "dist")).some((f) => f.endsWith(".proto")));
    });

    it("is served from its TypeScript source (tsx), on worker threads too, and differentiated; the README's CLI call works", async () => {
      await assertSpringsServed(["src/springs.ts", "--workers", "2"], { cwd: example }, async (address) => {
        const readme = fs.readFileSync(path.join(example, "README.md"), "utf8");
        const payload = /npx tesseract-grpc jacobian '([^']+)'/.exec(readme)?.[1];
        assert.ok(payload, "the README's jacobian command");
        const { code, stdout, stderr } = await call("jacobian", JSON.parse(payload) as object, address);
        assert.equal(code, 0, stderr);
        assertNested(JSON.parse(stdout), springsJacobian([1, 2, 4], 2), 1e-7, "CLI jacobian");
      });
    });

    it("is served the same from its build, dist/springs.js", async () => {
      await assertSpringsServed(["dist/springs.js"], { cwd: example });
    });

    it("laid out as its Dockerfile lays it out in the image, the image's own CLI serves it (tesseract-grpc by self-reference)", async () => {
      // The image: the package at /app with its dependencies in /app/node_modules (not itself).
      const image = path.join(box.dir, "image");
      const installed = path.join(box.dir, "node_modules/tesseract-grpc");
      const base = parseDockerfile(fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8")).pop()!;
      const workdir = last(base, "WORKDIR")!.args;
      const at = (inImage: string) => path.join(image, path.posix.resolve(workdir, inImage));
      fs.mkdirSync(at("node_modules"), { recursive: true });
      for (const entry of ["package.json", "dist", "proto"]) fs.cpSync(path.join(installed, entry), at(entry), { recursive: true });
      for (const dep of fs.readdirSync(path.join(box.dir, "node_modules")).filter((d) => d !== "tesseract-grpc" && d !== ".bin")) {
        fs.symlinkSync(path.join(box.dir, "node_modules", dep), at(`node_modules/${dep}`));
      }
      // The example's Dockerfile, instruction by instruction.
      const [stage] = parseDockerfile(fs.readFileSync(path.join(example, "Dockerfile"), "utf8"));
      for (const copy of stage.instructions.filter((i) => i.keyword === "COPY")) {
        const [source, dest] = options(copy.args).rest.split(/\s+/);
        fs.cpSync(path.join(example, source), at(dest), { recursive: true });
      }
      const entrypoint = argv(last(base, "ENTRYPOINT")!.args);
      const cmd = argv(last(stage, "CMD")!.args);
      assert.deepEqual(entrypoint.slice(0, 1), ["node"]);
      assert.equal(cmd[0], "serve");
      await assertSpringsServed(cmd.slice(1), { cli: at(entrypoint.at(-1)!), cwd: at(".") });
    });
  });
});
