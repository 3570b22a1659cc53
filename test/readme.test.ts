/**
 * The README as a newcomer copies it: every ```ts block compiles, each as its own module of a strict
 * app that installed the packed tarball and generated the types the blocks import (meshstats,
 * vectoradd, and the beam.proto of "Writing a Tesseract"), under CommonJS and ES modules alike. Its
 * generate commands and npm scripts are the examples' (which examples.test.ts runs), the
 * Dockerfile it shows is the example's, and its first call runs as shown.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { TOOL_VERSIONS } from "../cli/generate/tools";
import { parseDockerfile } from "./container-files";
import { serveProcess } from "./helpers";
import { readPackageJson, sandbox, typeChecker, type Sandbox } from "./sandbox";

const ROOT = path.join(__dirname, "../..");
const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

interface Block {
  lang: string;
  /** README line of the opening fence (1-based); the code's line k is README line `line + k`. */
  line: number;
  code: string;
}

/** Every fenced block of the README. */
function blocks(): Block[] {
  return [...README.matchAll(/^```(\w*)[^\n]*\n([\s\S]*?)^```$/gm)].map((m) => ({
    lang: m[1],
    line: README.slice(0, m.index).split("\n").length,
    code: m[2],
  }));
}

const shellLines = () => blocks().filter((b) => b.lang === "sh").flatMap((b) => b.code.split("\n"));

describe("README", function () {
  this.timeout(180_000);
  let box: Sandbox;

  before(async () => {
    box = await sandbox();
  });

  it("every TypeScript block compiles in a strict app, as CommonJS and as an ES module", async () => {
    const tsBlocks = blocks().filter((b) => b.lang === "ts");
    assert.ok(tsBlocks.length >= 4, `${tsBlocks.length} TypeScript blocks`);
    const dirs = { commonjs: path.join(box.dir, "readme/commonjs"), esm: path.join(box.dir, "readme/esm") };
    for (const [format, dir] of Object.entries(dirs)) {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ private: true, ...(format === "esm" ? { type: "module" } : {}) }));
      const compilerOptions = { target: "ES2022", module: "node16", moduleResolution: "node16", strict: true, esModuleInterop: true, skipLibCheck: true, noEmit: true, types: ["node"] };
      fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, include: ["*.ts", "generated"] }));
    }
    // The .proto files the README writes (their first line names them), then every type the blocks import.
    for (const proto of blocks().filter((b) => b.lang === "proto")) {
      const name = /^\/\/ (\S+\.proto)\b/.exec(proto.code)?.[1];
      assert.ok(name, `README.md:${proto.line + 1}: a proto block whose first line does not name its file`);
      fs.writeFileSync(path.join(dirs.commonjs, name), proto.code);
    }
    const generate = ["generate", "tesseract/examples/meshstats/v1/meshstats.proto", "tesseract/examples/vectoradd/v1/vectoradd.proto", "beam.proto", "--module", "esm"];
    await box.run("tesseract-grpc", generate, dirs.commonjs);
    fs.cpSync(path.join(dirs.commonjs, "generated"), path.join(dirs.esm, "generated"), { recursive: true });

    for (const [format, dir] of Object.entries(dirs)) {
      for (const block of tsBlocks) fs.writeFileSync(path.join(dir, `readme-L${block.line}.ts`), block.code);
      // Errors at README lines: readme-L120.ts(5,3) is README.md:125:3.
      const errors = typeChecker(box)
        .check(path.join(dir, "tsconfig.json"))
        .map((e) => e.replace(/readme-L(\d+)\.ts\((\d+),(\d+)\)/g, (_, line: string, k: string, col: string) => `README.md:${Number(line) + Number(k)}:${col}`));
      assert.deepEqual(errors, [], `as ${format}`);
    }
  });

  it("its generate commands are the examples' (run by examples.test.ts)", () => {
    const scripts = ["typescript", "tesseract-ts"].map((name) => (readPackageJson(path.join(ROOT, "examples", name)) as { scripts?: Record<string, string> }).scripts?.generate);
    const commands = shellLines().flatMap((line) => /\bnpx (tesseract-grpc generate [^#]*?)\s*(#|$)/.exec(line)?.[1] ?? []);
    assert.ok(commands.length >= 2, commands.join("\n"));
    for (const command of commands) assert.ok(scripts.includes(command), `README: ${command} is not an example's generate script (${scripts.join(" | ")})`);
  });

  it("every `npm run SCRIPT` it shows is a script of this package or of an example", () => {
    const scripts = new Set(
      ["", "examples/typescript", "examples/tesseract-ts"].flatMap((dir) => Object.keys((readPackageJson(path.join(ROOT, dir)) as { scripts?: object }).scripts ?? {})),
    );
    const used = shellLines().flatMap((line) => [...line.matchAll(/\bnpm run ([\w:-]+)/g)].map((m) => m[1]));
    assert.ok(used.includes("serve:built"), used.join(", "));
    assert.deepEqual(used.filter((script) => !scripts.has(script)), []);
  });

  it("names the tarball npm pack writes and the generators' versions generate asks for", () => {
    const { name, version } = readPackageJson();
    const tarballs = new Set(README.match(/\btesseract-grpc-\d[^\s/]*\.tgz\b/g));
    assert.deepEqual([...tarballs], [`${name}-${version}.tgz`]);
    const install = `npm install --save-dev --save-exact ${Object.entries(TOOL_VERSIONS).map(([tool, v]) => `${tool}@${v}`).join(" ")}`;
    assert.ok(README.includes(install), `README lacks "${install}"`);
  });

  it("the Dockerfile of 'Containerise your own Tesseract' is examples/tesseract-ts/Dockerfile", () => {
    const shown = blocks().filter((b) => b.lang === "dockerfile");
    assert.equal(shown.length, 1);
    const instructions = (text: string) => parseDockerfile(text).flatMap((stage) => [`FROM ${stage.image}`, ...stage.instructions.map((i) => `${i.keyword} ${i.args}`)]);
    assert.deepEqual(instructions(shown[0].code), instructions(fs.readFileSync(path.join(ROOT, "examples/tesseract-ts/Dockerfile"), "utf8")));
  });

  it("'A first call' runs as shown and prints what it says (the clone's CLI against npm start's meshstats)", async () => {
    const block = blocks().find((b) => b.lang === "sh" && b.code.startsWith("node dist/cli/cli.js jacobian "));
    assert.ok(block, "'A first call' shows a Jacobian");
    // The shell's own reading of the block (its quotes span lines), with this test's server instead of port 50051.
    const server = await serveProcess(["meshstats", "--port", "0"]);
    try {
      const { stdout, stderr } = await promisify(execFile)("sh", ["-c", `${block.code.trim()} --address ${server.address}`], { cwd: ROOT });
      const d = JSON.parse(stdout)["statistics.barycenter"]["mesh.points"] as number[][][];
      // d barycenter[c] / d points[i, c'] = 1/2 where c = c', for both points.
      d.forEach((rows, c) => rows.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - (k === c ? 0.5 : 0)) < 1e-8, `[${c}][${i}][${k}] = ${v}`))));
      assert.match(stderr, /^stats: 4 apply calls in .*; 2 column groups \(sparsity: tesseract\)$/m);
    } finally {
      await server.stop();
    }
  });

  it("every link to a section (#anchor) names a heading, as GitHub spells its anchor", () => {
    // GitHub: lower case, punctuation but hyphens and underscores dropped, spaces as hyphens (outside code blocks).
    const prose = README.replace(/^```[\s\S]*?^```$/gm, "");
    const anchors = new Set([...prose.matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1].toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/ /g, "-")));
    const links = [...prose.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]);
    assert.ok(links.length > 10, `${links.length} links`);
    assert.deepEqual(links.filter((l) => !anchors.has(l)), []);
  });
});
