/**
 * The README and the docs/ pages as a newcomer copies them: every ```ts block compiles, each as its
 * own module of a strict app that installed the packed tarball and generated the types the blocks
 * import (meshstats, vectoradd, and the beam.proto of "Writing a Tesseract"), under CommonJS and ES
 * modules alike. Their generate commands and npm scripts are the examples' (which examples.test.ts
 * runs), the Dockerfile they show is the example's, every link reaches a file and a heading, the
 * README links every docs/ page, its first call runs as shown, and so does its plain JavaScript app.
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

/** A Markdown file of the repository: README.md, then every docs/*.md page. */
interface Doc {
  /** Its path from the repository root, as error messages name it. */
  file: string;
  text: string;
}

const DOCS: Doc[] = ["README.md", ...fs.readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)].map(
  (file) => ({ file, text: fs.readFileSync(path.join(ROOT, file), "utf8") }),
);
const README = DOCS[0].text;

interface Block {
  file: string;
  lang: string;
  /** Line of the opening fence in `file` (1-based); the code's line k is the file's line `line + k`. */
  line: number;
  code: string;
}

/** Every fenced block of the given files (all of them by default). */
function blocks(docs: Doc[] = DOCS): Block[] {
  return docs.flatMap(({ file, text }) =>
    [...text.matchAll(/^```(\w*)[^\n]*\n([\s\S]*?)^```$/gm)].map((m) => ({
      file,
      lang: m[1],
      line: text.slice(0, m.index).split("\n").length,
      code: m[2],
    })),
  );
}

const shellLines = () => blocks().filter((b) => b.lang === "sh").flatMap((b) => b.code.split("\n"));

/** GitHub's anchor of each heading of a Markdown text: lower case, punctuation but hyphens and underscores dropped, spaces as hyphens (outside code blocks). */
function anchors(text: string): Set<string> {
  const prose = text.replace(/^```[\s\S]*?^```$/gm, "");
  return new Set([...prose.matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1].toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/ /g, "-")));
}

describe("README and docs/", function () {
  this.timeout(180_000);
  let box: Sandbox;

  before(async () => {
    box = await sandbox();
  });

  it("every TypeScript block compiles in a strict app, as CommonJS and as an ES module", async () => {
    const tsBlocks = blocks().filter((b) => b.lang === "ts");
    assert.ok(tsBlocks.length >= 4, `${tsBlocks.length} TypeScript blocks`);
    assert.ok(tsBlocks.filter((b) => b.file === "README.md").length >= 2, "the README's SDK app and Writing a Tesseract's module");
    const dirs = { commonjs: path.join(box.dir, "readme/commonjs"), esm: path.join(box.dir, "readme/esm") };
    for (const [format, dir] of Object.entries(dirs)) {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ private: true, ...(format === "esm" ? { type: "module" } : {}) }));
      const compilerOptions = { target: "ES2022", module: "node16", moduleResolution: "node16", strict: true, esModuleInterop: true, skipLibCheck: true, noEmit: true, types: ["node"] };
      fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, include: ["*.ts", "generated"] }));
    }
    // The .proto files the blocks write (their first line names them), then every type the blocks import.
    for (const proto of blocks().filter((b) => b.lang === "proto")) {
      const name = /^\/\/ (\S+\.proto)\b/.exec(proto.code)?.[1];
      assert.ok(name, `${proto.file}:${proto.line + 1}: a proto block whose first line does not name its file`);
      fs.writeFileSync(path.join(dirs.commonjs, name), proto.code);
    }
    const generate = ["generate", "tesseract/examples/meshstats/v1/meshstats.proto", "tesseract/examples/vectoradd/v1/vectoradd.proto", "beam.proto", "--module", "esm"];
    await box.run("tesseract-grpc", generate, dirs.commonjs);
    fs.cpSync(path.join(dirs.commonjs, "generated"), path.join(dirs.esm, "generated"), { recursive: true });

    // Each block is a module named after its file and line: docs_sdk_md-L120.ts is docs/sdk.md's block at line 120.
    const moduleName = (b: Block) => `${b.file.replace(/[/.-]/g, "_")}-L${b.line}`;
    const files = new Map(tsBlocks.map((b) => [b.file.replace(/[/.-]/g, "_"), b.file]));
    for (const [format, dir] of Object.entries(dirs)) {
      for (const block of tsBlocks) fs.writeFileSync(path.join(dir, `${moduleName(block)}.ts`), block.code);
      // Errors at the Markdown files' lines: README_md-L120.ts(5,3) is README.md:125:3.
      const errors = typeChecker(box)
        .check(path.join(dir, "tsconfig.json"))
        .map((e) => e.replace(/(\w+)-L(\d+)\.ts\((\d+),(\d+)\)/g, (whole, name: string, line: string, k: string, col: string) => (files.has(name) ? `${files.get(name)}:${Number(line) + Number(k)}:${col}` : whole)));
      assert.deepEqual(errors, [], `as ${format}`);
    }
  });

  it("their generate commands are the examples' (run by examples.test.ts)", () => {
    const scripts = ["typescript", "tesseract-ts"].map((name) => (readPackageJson(path.join(ROOT, "examples", name)) as { scripts?: Record<string, string> }).scripts?.generate);
    const commands = shellLines().flatMap((line) => /\bnpx (tesseract-grpc generate [^#]*?)\s*(#|$)/.exec(line)?.[1] ?? []);
    assert.ok(commands.length >= 2, commands.join("\n"));
    for (const command of commands) assert.ok(scripts.includes(command), `${command} is not an example's generate script (${scripts.join(" | ")})`);
  });

  it("every `npm run SCRIPT` they show is a script of this package or of an example", () => {
    const scripts = new Set(
      ["", "examples/typescript", "examples/tesseract-ts"].flatMap((dir) => Object.keys((readPackageJson(path.join(ROOT, dir)) as { scripts?: object }).scripts ?? {})),
    );
    const used = shellLines().flatMap((line) => [...line.matchAll(/\bnpm run ([\w:-]+)/g)].map((m) => m[1]));
    assert.ok(used.includes("serve:built"), used.join(", "));
    assert.deepEqual(used.filter((script) => !scripts.has(script)), []);
  });

  it("name the tarball npm pack writes and the generators' versions generate asks for", () => {
    const { name, version } = readPackageJson();
    for (const { file, text } of DOCS) {
      const tarballs = new Set(text.match(/\btesseract-grpc-\d[^\s/]*\.tgz\b/g));
      assert.deepEqual([...tarballs].filter((t) => t !== `${name}-${version}.tgz`), [], file);
    }
    assert.ok(README.includes(`${name}-${version}.tgz`), "README names the tarball");
    const install = `npm install --save-dev --save-exact ${Object.entries(TOOL_VERSIONS).map(([tool, v]) => `${tool}@${v}`).join(" ")}`;
    assert.ok(README.includes(install), `README lacks "${install}"`);
    for (const { file, text } of DOCS) {
      for (const line of text.match(/npm install --save-dev --save-exact ts-proto\S*.*/g) ?? []) assert.ok(line.startsWith(install), `${file}: ${line}`);
    }
  });

  it("the Dockerfile of 'Containerise your own Tesseract' is examples/tesseract-ts/Dockerfile", () => {
    const shown = blocks().filter((b) => b.lang === "dockerfile");
    assert.equal(shown.length, 1, shown.map((b) => `${b.file}:${b.line}`).join(", "));
    const instructions = (text: string) => parseDockerfile(text).flatMap((stage) => [`FROM ${stage.image}`, ...stage.instructions.map((i) => `${i.keyword} ${i.args}`)]);
    assert.deepEqual(instructions(shown[0].code), instructions(fs.readFileSync(path.join(ROOT, "examples/tesseract-ts/Dockerfile"), "utf8")));
  });

  it("'A first call' runs as shown and prints what it says (the clone's CLI against npm start's meshstats)", async () => {
    const block = blocks([DOCS[0]]).find((b) => b.lang === "sh" && b.code.startsWith("node dist/cli/cli.js jacobian "));
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

  it("'From plain JavaScript' runs as shown: its tsc command compiles the generated types, and app.mjs prints what its comments say", async () => {
    const [code] = blocks([DOCS[0]]).filter((b) => b.lang === "js");
    assert.ok(code, "the README's plain JavaScript app");
    const compile = shellLines().find((line) => /^npx tsc --outDir generated-js /.test(line));
    assert.ok(compile, "the README's command that compiles the generated types");
    const generate = shellLines().flatMap((line) => /^npx (tesseract-grpc generate tesseract\/examples\/meshstats\S* --out src\/generated)\s*(#|$)/.exec(line)?.[1] ?? [])[0];
    assert.ok(generate, "the README's generate command for meshstats");
    // The app made by `npm init -y` (CommonJS), inside the sandbox that installed the tarball; npx's tools are the sandbox's.
    const app = path.join(box.dir, "readme/plain-js");
    fs.mkdirSync(app, { recursive: true });
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "my-app", version: "1.0.0", type: "commonjs" }));
    await box.run("sh", ["-c", generate], app);
    await box.run("sh", ["-c", compile.replace(/^npx /, "")], app);
    const expected = code.code.split("\n").flatMap((line) => (/^console\.log\(/.test(line) ? [/\/\/ (.+)$/.exec(line)?.[1] ?? assert.fail(`no comment saying what it prints: ${line}`)] : []));
    assert.ok(expected.length >= 3, expected.join("\n"));
    const server = await serveProcess(["meshstats", "--port", "0"]);
    try {
      fs.writeFileSync(path.join(app, "app.mjs"), code.code.replaceAll("127.0.0.1:50051", server.address));
      const { stdout } = await box.run("node", ["app.mjs"], app);
      assert.deepEqual(stdout.trimEnd().split("\n"), expected);
    } finally {
      await server.stop();
    }
  });

  it("every link reaches a file of the repository, and a link to a section (#anchor) a heading, as GitHub spells its anchor", () => {
    const bad: string[] = [];
    let sections = 0;
    for (const { file, text } of DOCS) {
      const prose = text.replace(/^```[\s\S]*?^```$/gm, "");
      for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target)) continue; // https:, mailto:
        const [to, anchor] = target.split("#");
        const resolved = to ? path.join(path.dirname(path.join(ROOT, file)), to) : path.join(ROOT, file);
        if (!fs.existsSync(resolved)) {
          bad.push(`${file}: (${target}): no such file`);
        } else if (anchor !== undefined) {
          sections++;
          if (!resolved.endsWith(".md") || !anchors(fs.readFileSync(resolved, "utf8")).has(anchor)) bad.push(`${file}: (${target}): no such heading`);
        }
      }
    }
    assert.ok(sections > 20, `${sections} links to sections`);
    assert.deepEqual(bad, []);
  });

  it("the README's Reference links every docs/ page", () => {
    const reference = README.slice(README.indexOf("\n## Reference\n"));
    assert.ok(reference.length > 20, "the README has a Reference section");
    const pages = DOCS.slice(1).map((d) => d.file);
    assert.ok(pages.length >= 10, pages.join(", "));
    assert.deepEqual(pages.filter((page) => !reference.includes(`](${page})`)), []);
  });
});
