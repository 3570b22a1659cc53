/**
 * The exact FileDescriptorProtos of a set of .proto files and everything they import, as protoc and
 * buf would write them (without source info): the files found on the include path are compiled
 * (proto-compiler.ts), the well-known types (google/protobuf/*.proto) come from the build's
 * `buf build` of them (well-known-types.proto). What reflection serves and the `proto` command prints.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { create, createFileRegistry, fromBinary, toBinary, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { PROTO_DIR } from "../proto-dir";
import { compileProto } from "./proto-compiler";
import { readLayout } from "./proto-layout";

/** Written by `npm run build` beside this module. */
const WELL_KNOWN_TYPES = path.join(__dirname, "well-known-types.binpb");

let wellKnown: Map<string, FileDescriptorProto> | undefined;

/** The well-known types' descriptors, by file name. */
export function wellKnownTypes(): Map<string, FileDescriptorProto> {
  if (!wellKnown) {
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(WELL_KNOWN_TYPES);
    } catch {
      throw new Error(`${WELL_KNOWN_TYPES} is missing: run npm run build`);
    }
    const set = fromBinary(FileDescriptorSetSchema, bytes);
    wellKnown = new Map(set.file.filter((f) => f.name!.startsWith("google/protobuf/")).map((f) => [f.name!, f]));
  }
  return wellKnown;
}

/**
 * Compiled files by name and source, with the imports they were compiled against: servers started in
 * one process (tests, benchmarks) compile the contract once. Entries are never modified.
 */
const compiledBefore = new Map<string, { dependencies: FileDescriptorProto[]; file: FileDescriptorProto }>();
const encoded = new WeakMap<FileDescriptorProto, Uint8Array>();

/** The same file compiled against the same (identical) imports is the same descriptor. */
function compileOnce(name: string, source: string, dependencies: FileDescriptorProto[]): FileDescriptorProto {
  const key = `${name}\0${source}`;
  const before = compiledBefore.get(key);
  if (before && before.dependencies.length === dependencies.length && before.dependencies.every((d, i) => d === dependencies[i])) return before.file;
  const file = compileProto(name, source, dependencies);
  compiledBefore.set(key, { dependencies, file });
  return file;
}

function bytesOf(file: FileDescriptorProto): Uint8Array {
  let bytes = encoded.get(file);
  if (!bytes) encoded.set(file, (bytes = toBinary(FileDescriptorProtoSchema, file)));
  return bytes;
}

export interface DescriptorSet {
  /** Every file, each after the files it imports. */
  files: FileDescriptorProto[];
  /** The same files, validated. */
  registry: FileRegistry;
  /** Each file's serialized FileDescriptorProto, by name. */
  bytes: Map<string, Uint8Array>;
}

export interface ProtoSources {
  /** Files to compile: absolute paths (named relative to the include folder that holds them) or import names. */
  files: readonly string[];
  /** Where imports are looked up, in order, before the contract's proto/ folder. */
  includeDirs?: readonly string[];
  /** Files known by an import name that no include folder gives (e.g. grpc/health/v1/health.proto): name -> path. */
  named?: Readonly<Record<string, string>>;
}

/** Compiles `sources.files` and their imports; throws, naming the file, when one does not compile or validate. */
export function compileDescriptorSet(sources: ProtoSources): DescriptorSet {
  const includeDirs = [...(sources.includeDirs ?? []), PROTO_DIR].map((d) => path.resolve(d));
  const named = sources.named ?? {};
  const compiled = new Map<string, FileDescriptorProto>();
  const inProgress = new Set<string>();

  const locate = (name: string, importedBy?: string): string => {
    if (named[name]) return named[name];
    for (const dir of includeDirs) {
      const candidate = path.join(dir, name);
      if (fs.existsSync(candidate)) return candidate;
    }
    throw new Error(`${importedBy ? `${importedBy}: import ` : ""}"${name}" not found in ${includeDirs.join(", ")}`);
  };
  const load = (name: string, file?: string, importedBy?: string): void => {
    if (compiled.has(name)) return;
    const known = wellKnownTypes().get(name);
    if (known) return void compiled.set(name, known);
    if (inProgress.has(name)) throw new Error(`${name}: imports itself (through ${[...inProgress].join(" -> ")})`);
    inProgress.add(name);
    const source = fs.readFileSync(file ?? locate(name, importedBy), "utf8");
    const imports = readLayout(source).imports.map((i) => i.name);
    for (const dependency of imports) load(dependency, undefined, name);
    compiled.set(name, compileOnce(name, source, transitive(imports, compiled)));
    inProgress.delete(name);
  };
  for (const file of sources.files) {
    if (path.isAbsolute(file)) load(importName(file, includeDirs, named), file);
    else load(file);
  }
  const files = [...compiled.values()];
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: files }));
  return { files, registry, bytes: new Map(files.map((f) => [f.name!, bytesOf(f)])) };
}

/** The compiled files `imports` name and everything they import, each once. */
function transitive(imports: readonly string[], compiled: Map<string, FileDescriptorProto>): FileDescriptorProto[] {
  const seen = new Map<string, FileDescriptorProto>();
  const visit = (name: string) => {
    const file = compiled.get(name);
    if (!file || seen.has(name)) return;
    seen.set(name, file);
    file.dependency.forEach(visit);
  };
  imports.forEach(visit);
  return [...seen.values()];
}

/**
 * A file's import name: its path relative to the include folder that holds it, the deepest folder
 * winning (imports name files from the folder their package starts in), as protoc names its inputs.
 */
function importName(file: string, includeDirs: readonly string[], named: Readonly<Record<string, string>>): string {
  const absolute = path.resolve(file);
  const byName = Object.entries(named).find(([, p]) => path.resolve(p) === absolute);
  if (byName) return byName[0];
  const holders = includeDirs.filter((dir) => absolute.startsWith(dir + path.sep)).sort((a, b) => b.length - a.length);
  if (holders.length === 0) return path.basename(absolute);
  return path.relative(holders[0], absolute).split(path.sep).join("/");
}
