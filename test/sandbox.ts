/**
 * This package as an app gets it, once per test run: `npm pack` of this checkout, then `npm ci
 * --offline` of the tarball in a temporary folder. The lockfile is made from this project's own
 * (the tarball's dependency closure, with registry URLs and integrities), so npm takes every package
 * from its cache and nothing is downloaded. An app's build tools (typescript, ts-proto, buf,
 * @types/node, the versions this project pins) are linked from this project rather than installed.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import type * as TypeScript from "typescript";

const ROOT = path.join(__dirname, "../..");
const execFileAsync = promisify(execFile);
/** The registry the lockfile's packages came from (npm sets the variable for `npm test`). */
const REGISTRY = (process.env.npm_config_registry ?? "https://registry.npmjs.org/").replace(/\/?$/, "/");

/** The build tools an app adds as devDependencies, linked (with their commands) from this project. */
export const BUILD_TOOLS: Record<string, string[]> = { typescript: ["tsc"], "@types/node": [], "ts-proto": [], "@bufbuild/buf": ["buf"] };

interface LockEntry {
  version?: string;
  resolved?: string;
  link?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [key: string]: unknown;
}
interface PackageJson {
  name: string;
  version: string;
  license: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  [key: string]: unknown;
}

export interface Sandbox {
  /** The app folder: the tarball, package.json, package-lock.json, node_modules. */
  dir: string;
  /** The tarball's file name (in `dir`), as `npm pack` names it. */
  tarball: string;
  /** Every path in the tarball. */
  packedFiles: string[];
  /** Runs a command in the sandbox (default: its folder), with its node_modules/.bin on the PATH. */
  run(command: string, args: string[], cwd?: string): Promise<{ stdout: string; stderr: string }>;
}

export const readPackageJson = (dir = ROOT): PackageJson => JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as PackageJson;

/** The lock entry Node would load for `name` required from the package at `from` (a lock key, "" = the root). */
function resolveInLock(packages: Record<string, LockEntry>, from: string, name: string): string | undefined {
  for (let base = from; ; base = base.includes("/node_modules/") ? base.slice(0, base.lastIndexOf("/node_modules/")) : "") {
    const key = `${base ? `${base}/` : ""}node_modules/${name}`;
    if (packages[key]) return key;
    if (!base) return undefined;
  }
}

/** The lockfile of an app depending on the tarball alone: its dependency closure, copied from this project's lockfile. */
function sandboxLock(pkg: PackageJson, app: PackageJson, tarball: string, integrity: string): object {
  const project = (JSON.parse(fs.readFileSync(path.join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> }).packages;
  const { name, version, license, dependencies, peerDependencies, peerDependenciesMeta, bin, engines } = pkg;
  const packages: Record<string, LockEntry> = {
    "": { name: app.name, version: app.version, dependencies: app.dependencies },
    "node_modules/tesseract-grpc": { name, version, resolved: `file:${tarball}`, integrity, license, dependencies, peerDependencies, peerDependenciesMeta, bin, engines },
  };
  const queue: [string, Record<string, string>][] = [["", pkg.dependencies]];
  for (let next = queue.shift(); next; next = queue.shift()) {
    const [from, deps] = next;
    for (const dep of Object.keys(deps)) {
      const key = resolveInLock(project, from, dep);
      if (!key) throw new Error(`package-lock.json has no ${dep} (needed by ${from || "tesseract-grpc"})`);
      if (packages[key]) continue;
      // Flags describe this project's tree, not the app's; npm works them out again.
      const { dev: _dev, devOptional: _devOptional, peer: _peer, ...entry } = project[key];
      // This project's lockfile leaves registry URLs out (npm rebuilds them); offline, npm needs them.
      const packageName = key.slice(key.lastIndexOf("node_modules/") + "node_modules/".length);
      if (!entry.resolved && !entry.link) entry.resolved = `${REGISTRY}${packageName}/-/${packageName.split("/").pop()}-${entry.version}.tgz`;
      packages[key] = entry;
      queue.push([key, { ...entry.dependencies, ...entry.optionalDependencies }]);
    }
  }
  return { name: app.name, version: app.version, lockfileVersion: 3, requires: true, packages };
}

/** The build tools and their commands, linked into the sandbox's node_modules. */
function linkBuildTools(dir: string): void {
  const bin = path.join(dir, "node_modules/.bin");
  fs.mkdirSync(bin, { recursive: true });
  for (const [tool, commands] of Object.entries(BUILD_TOOLS)) {
    const target = path.join(dir, "node_modules", tool);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    // Some come with the package's dependencies already (protobufjs depends on @types/node).
    if (!fs.existsSync(target)) fs.symlinkSync(path.join(ROOT, "node_modules", tool), target, "dir");
    const manifest = readPackageJson(target) as { bin?: Record<string, string> };
    for (const command of commands) fs.symlinkSync(path.join("..", tool, manifest.bin![command]), path.join(bin, command));
  }
}

async function makeSandbox(): Promise<Sandbox> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-grpc-app-"));
  process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env, PATH: `${path.join(dir, "node_modules/.bin")}${path.delimiter}${process.env.PATH}` };
  const run = (command: string, args: string[], cwd = dir) => execFileAsync(command, args, { cwd, env, maxBuffer: 64 << 20 });
  // dist/ is built already (npm test builds first): pack it as it is, without running `prepare`.
  const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], ROOT);
  const [packed] = JSON.parse(stdout) as { filename: string; integrity: string; files: { path: string }[] }[];
  const app = { name: "app", version: "1.0.0", license: "UNLICENSED", dependencies: { "tesseract-grpc": `file:${packed.filename}` }, devDependencies: {} };
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify(app, null, 2));
  fs.writeFileSync(path.join(dir, "package-lock.json"), JSON.stringify(sandboxLock(readPackageJson(), app, packed.filename, packed.integrity), null, 2));
  await run("npm", ["ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]);
  linkBuildTools(dir);
  return { dir, tarball: packed.filename, packedFiles: packed.files.map((f) => f.path), run };
}

let made: Promise<Sandbox> | undefined;

/** The sandbox, made on first use and shared by every test file of the run (removed when the process exits). */
export function sandbox(): Promise<Sandbox> {
  made ??= makeSandbox();
  return made;
}

let checker: TypeChecker | undefined;

/** One TypeChecker for the run, so that every test file shares its parsed declarations. */
export function typeChecker(box: Sandbox): TypeChecker {
  checker ??= new TypeChecker(box);
  return checker;
}

/**
 * Type-checks (and, with `emit`, compiles) TypeScript projects with the sandbox's own compiler,
 * in-process, sharing parsed files between projects (a consumer's 300 declaration files are read once).
 */
export class TypeChecker {
  private readonly ts: typeof TypeScript;
  private readonly parsed = new Map<string, TypeScript.SourceFile | undefined>();

  constructor(box: Sandbox) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    this.ts = require(path.join(box.dir, "node_modules/typescript")) as typeof TypeScript;
  }

  /** Whether `specifier`, imported by `fromFile` (CommonJS, node16 resolution), finds declarations: TS7016 otherwise. */
  resolvesToTypes(specifier: string, fromFile: string): boolean {
    const ts = this.ts;
    const options = { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 };
    const resolved = ts.resolveModuleName(specifier, fromFile, options, ts.sys).resolvedModule;
    return resolved !== undefined && [".d.ts", ".d.cts", ".d.mts"].includes(resolved.extension);
  }

  /** The project's errors, formatted as tsc prints them (an empty list when it compiles). */
  check(tsconfig: string, { emit = false } = {}): string[] {
    const ts = this.ts;
    const config = ts.getParsedCommandLineOfConfigFile(tsconfig, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
    if (!config) throw new Error(`${tsconfig}: not a tsconfig`);
    const host = ts.createCompilerHost(config.options);
    const read = host.getSourceFile.bind(host);
    host.getSourceFile = (file, languageVersion, ...rest) => {
      const key = `${file}\0${JSON.stringify(languageVersion)}`;
      if (!this.parsed.has(key)) this.parsed.set(key, read(file, languageVersion, ...rest));
      return this.parsed.get(key);
    };
    const program = ts.createProgram({ rootNames: config.fileNames, options: config.options, host, projectReferences: config.projectReferences });
    const diagnostics = [...config.errors, ...ts.getPreEmitDiagnostics(program), ...(emit ? program.emit().diagnostics : [])];
    return diagnostics.map((d) => ts.formatDiagnostic(d, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => path.dirname(tsconfig), getNewLine: () => "\n" }).trim());
  }
}
