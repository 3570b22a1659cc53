/**
 * The floors of docs/architecture.md, checked from the sources' own imports: every module imports
 * only from its floor or below, the SDK never imports server code and the server never imports the
 * SDK, and there is no import cycle. The arrows allowed up: a worker thread's entry point finds and
 * loads the Tesseract it evaluates.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.join(__dirname, "../..");

/** Floor of each source module, by path prefix (longest first wins); see docs/architecture.md. The SDK (client/) stands beside the server on common/ and generated/: the CLI and the package entry may import it. */
const FLOORS: [prefix: string, floor: number][] = [
  ["generated/", 0],
  ["common/", 1],
  ["server/log.ts", 1],
  ["server/proto-dir.ts", 1],
  ["server/schema/", 2],
  ["server/tesseract.ts", 2],
  ["server/eval/", 3],
  ["server/fd/", 4],
  ["server/checking/", 5],
  ["server/runtime.ts", 6],
  ["server/warmup.ts", 6],
  ["server/loader.ts", 6],
  ["server/find-tesseract.ts", 6],
  ["server/loaded-tesseract.ts", 6],
  ["server/tesseract-module.ts", 6],
  ["server/bridge/", 6],
  ["server/tesseracts/", 6],
  ["server/grpc/", 7],
  ["server/http/", 7],
  ["server/demo.ts", 8],
  ["client/", 8],
  ["cli/", 8],
  ["index.ts", 9],
];
const ALLOWED_UPWARD = new Set(["server/eval/worker.ts -> server/find-tesseract.ts", "server/eval/worker.ts -> server/loaded-tesseract.ts"]);

function floorOf(file: string): number {
  const match = FLOORS.filter(([prefix]) => file.startsWith(prefix)).sort((a, b) => b[0].length - a[0].length)[0];
  assert.ok(match, `${file} has no floor in test/architecture.test.ts (and docs/architecture.md)`);
  return match[1];
}

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) return sources(rel);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [rel] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*["'](\.[^"']+)["']|require\(\s*["'](\.[^"']+)["']\s*\)/g;

/** The repository-relative .ts files a module imports (relative imports only). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), "utf8");
  return [...text.matchAll(IMPORT)].flatMap((m) => {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), (m[1] ?? m[2]).replace(/\.js$/, "")));
    const candidates = [`${target}.ts`, `${target}/index.ts`];
    return candidates.filter((c) => fs.existsSync(path.join(ROOT, c))).slice(0, 1);
  });
}

describe("architecture: the floors", () => {
  const server = [...sources("server"), ...sources("common"), ...sources("cli"), "index.ts"];
  const client = sources("client").filter((f) => !f.startsWith("client/generated/"));
  const graph = new Map([...server, ...client].map((f) => [f, importsOf(f)]));

  it("every server module imports only from its floor or below (one worker entry point excepted)", () => {
    const upward: string[] = [];
    for (const file of server) {
      for (const target of graph.get(file)!) {
        if (target.startsWith("generated/")) continue;
        const arrow = `${file} -> ${target}`;
        if (floorOf(target) > floorOf(file) && !ALLOWED_UPWARD.has(arrow)) upward.push(`${arrow} (floor ${floorOf(file)} -> ${floorOf(target)})`);
      }
    }
    assert.deepEqual(upward, []);
  });

  it("the SDK imports only the SDK, common/ and generated code; server code never imports the SDK", () => {
    const crossing = [
      ...client.flatMap((f) => graph.get(f)!.filter((t) => !/^(client|common|generated)\//.test(t)).map((t) => `${f} -> ${t}`)),
      ...[...sources("server"), ...sources("common")].flatMap((f) => graph.get(f)!.filter((t) => t.startsWith("client/")).map((t) => `${f} -> ${t}`)),
    ];
    assert.deepEqual(crossing, []);
  });

  it("has no import cycle", () => {
    const cycles: string[] = [];
    const state = new Map<string, "visiting" | "done">();
    const visit = (file: string, stack: string[]) => {
      if (state.get(file) === "done") return;
      if (state.get(file) === "visiting") {
        cycles.push([...stack.slice(stack.indexOf(file)), file].join(" -> "));
        return;
      }
      state.set(file, "visiting");
      for (const target of graph.get(file) ?? []) visit(target, [...stack, file]);
      state.set(file, "done");
    };
    for (const file of graph.keys()) visit(file, []);
    assert.deepEqual(cycles, []);
  });
});
