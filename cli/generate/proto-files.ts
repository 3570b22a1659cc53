/**
 * Descriptors from .proto files on disk, compiled by buf exactly as protoc would. Names follow protoc:
 * a file's name is its path below the include folder (`--proto-path`) that holds it, and imports are
 * resolved against every include folder; the package's proto/ (`tesseract/v1/tensor.proto` …) is
 * always the last of them.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { isHostPort, nameLike } from "../../common/likely-meant";
import { PROTO_DIR } from "../../server/proto-dir";
import type { DescriptorSource } from "./ts-proto";

export interface ProtoFiles {
  /** Include folders, absolute, in the order imports are looked up. */
  roots: string[];
  /** The files to generate, as `[root index, name below that root]`. */
  files: [root: number, name: string][];
}

const isDirectory = (p: string) => fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;
const isFile = (p: string) => fs.statSync(p, { throwIfNoEntry: false })?.isFile() === true;

/** `root`-relative posix path of `file`, or undefined when it is not below `root`. */
function below(root: string, file: string): string | undefined {
  const rel = path.relative(fs.realpathSync(root), fs.realpathSync(file));
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel.split(path.sep).join("/") : undefined;
}

/** Every .proto file below `dir`, skipping node_modules and hidden folders. */
function protoFilesIn(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "node_modules" || entry.name.startsWith(".") ? [] : protoFilesIn(full);
    return entry.name.endsWith(".proto") ? [full] : [];
  });
}

/** Where a bundled Tesseract's messages are (meshstats: tesseract/examples/meshstats/v1/meshstats.proto). */
const bundledProto = (name: string) => `tesseract/examples/${name}/v1/${name}.proto`;

/** The bundled Tesseracts whose messages the contract's folder holds (heat, meshstats, …). */
function bundledNames(contractDir: string): string[] {
  const examples = path.join(contractDir, "tesseract/examples");
  return isDirectory(examples) ? fs.readdirSync(examples).filter((name) => isFile(path.join(contractDir, bundledProto(name)))).sort() : [];
}

/**
 * What an argument that names nothing most likely meant, as "; …": a server's address (its types
 * come by reflection, --address), a bundled name spelt otherwise, or a bundled .proto by its file
 * name alone (found by its path below proto/).
 */
function likelyMeant(arg: string, contractDir: string | undefined): string {
  if (isHostPort(arg)) return `; a running server's types come by reflection: --address ${arg}`;
  const names = contractDir === undefined ? [] : bundledNames(contractDir);
  const name = nameLike(arg, names) ?? names.find((n) => path.basename(arg) === `${n}.proto`);
  return name === undefined ? "" : `; did you mean ${name} (${bundledProto(name)})?`;
}

/**
 * The include folders and files for `args` (files, folders of them, names found on the include
 * path, or a bundled Tesseract's name). Without `--proto-path`, a file's own folder (a folder argument: itself) is its include
 * folder, unless an include folder found so far already holds it.
 */
export function locateProtoFiles(args: readonly string[], protoPaths: readonly string[], contractDir = PROTO_DIR): ProtoFiles {
  const includes = protoPaths.map((dir) => {
    if (!isDirectory(dir)) throw new Error(`--proto-path ${dir}: no such folder`);
    return path.resolve(dir);
  });
  // The contract's folder, unless an include folder already holds (a copy of) it.
  const contract = includes.some((root) => isFile(path.join(root, "tesseract/v1/tensor.proto"))) ? [] : [path.resolve(contractDir)];
  const defaults: string[] = [];
  const rootFor = (target: string): string => {
    const holds = (root: string) => path.resolve(root) === path.resolve(target) || below(root, target) !== undefined;
    const known = [...includes, ...defaults, ...contract].find(holds);
    if (known) return known;
    if (includes.length > 0) throw new Error(`${target} is not below any --proto-path (${protoPaths.join(", ")})`);
    defaults.push(path.resolve(isDirectory(target) ? target : path.dirname(target)));
    return defaults[defaults.length - 1];
  };
  const files: { root: string; name: string }[] = [];
  const add = (root: string, file: string) => {
    const name = below(root, file)!;
    if (!files.some((f) => f.name === name)) files.push({ root, name });
  };
  for (const arg of args) {
    if (isDirectory(arg)) {
      const found = protoFilesIn(arg);
      if (found.length === 0) throw new Error(`${arg}: no .proto files in this folder`);
      const root = rootFor(arg);
      for (const file of found) add(root, file);
    } else if (isFile(arg)) {
      add(rootFor(arg), arg);
    } else {
      // A bundled Tesseract's name, as `serve` takes it: its file in the contract's folder.
      const name = /^[a-z]\w*$/.test(arg) && contract.length && isFile(path.join(contract[0], bundledProto(arg))) ? bundledProto(arg) : arg;
      const root = [...includes, ...contract].find((r) => isFile(path.join(r, name)));
      if (!root) {
        // A bare name may have meant a bundled Tesseract: name them.
        const bundled = /^[a-z]\w*$/.test(arg) && contract.length ? `, nor a bundled Tesseract (${bundledNames(contract[0]).join(", ")})` : "";
        throw new Error(`${arg}: no such file${bundled}, nor on the include path (${[...includes, ...contract].join(", ")})${likelyMeant(arg, contract[0])}`);
      }
      add(root, path.join(root, name));
    }
  }
  const roots = [...includes, ...defaults, ...contract];
  return { roots, files: files.map((f) => [roots.indexOf(f.root), f.name]) };
}

/**
 * Compiles the files with buf (`bufScript`: @bufbuild/buf's bin/buf) in a throw-away workspace whose
 * modules are links to the include folders. Only the files named and what they import are read.
 */
export async function compileProtoFiles(protoFiles: ProtoFiles, bufScript: string): Promise<DescriptorSource> {
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-grpc-generate-"));
  const link = (i: number) => `root-${i}`;
  try {
    protoFiles.roots.forEach((root, i) => fs.symlinkSync(root, path.join(workspace, link(i)), "dir"));
    const modules = protoFiles.roots.map((_, i) => `  - path: ${link(i)}\n`).join("");
    fs.writeFileSync(path.join(workspace, "buf.yaml"), `version: v2\nmodules:\n${modules}`);
    const targets = protoFiles.files.flatMap(([root, name]) => ["--path", `${link(root)}/${name}`]);
    const bytes = await runBuf(bufScript, ["build", ".", "--as-file-descriptor-set", "-o", "-", ...targets], workspace, protoFiles.roots);
    return { set: fromBinary(FileDescriptorSetSchema, bytes), files: protoFiles.files.map(([, name]) => name) };
  } finally {
    fs.rmSync(workspace, { recursive: true, force: true });
  }
}

/** buf's stdout; its errors with the workspace's links replaced by the folders they stand for. */
function runBuf(bufScript: string, args: string[], cwd: string, roots: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [bufScript, ...args], { cwd, encoding: "buffer", maxBuffer: 1 << 30 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const message = stderr.toString("utf8").trim() || error.message;
      const readable = message.replace(/root-(\d+)\//g, (_, i: string) => `${path.relative(process.cwd(), roots[Number(i)]) || "."}/`);
      reject(new Error(`buf could not compile the .proto files:\n${readable}`));
    });
  });
}
