/**
 * TypeScript from descriptors: a FileDescriptorSet (from .proto files, or a server's reflection) goes
 * to ts-proto's protoc plugin as a CodeGeneratorRequest, with the options the SDK needs; the files it
 * answers come back. Wherever the descriptors come from, this step is the same.
 */
import { spawn } from "node:child_process";
import * as path from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  CodeGeneratorRequestSchema,
  CodeGeneratorResponseSchema,
  type FileDescriptorProto,
  type FileDescriptorSet,
} from "@bufbuild/protobuf/wkt";

export type ModuleFormat = "esm" | "commonjs";

/**
 * The options this package's own types are generated with (buf.gen.yaml), which the SDK relies on:
 * field names as in the .proto (paths use them), optional sub-messages, int64 as number, and each
 * message object's full name (`Inputs.$type`).
 */
export const TS_PROTO_OPTIONS = [
  "snakeToCamel=false",
  "outputServices=grpc-js",
  "env=node",
  "esModuleInterop=true",
  "useOptionals=messages",
  "forceLong=number",
  "useExactTypes=false",
  "outputTypeAnnotations=static-only",
] as const;

/** ES modules need the extension in relative imports (`./tensor.js`, which TypeScript maps to tensor.ts). */
export function tsProtoParameter(module: ModuleFormat): string {
  return [...TS_PROTO_OPTIONS, ...(module === "esm" ? ["importSuffix=.js"] : [])].join(",");
}

export interface DescriptorSource {
  /** Every file needed: the ones to generate and all they import (well-known types included). */
  set: FileDescriptorSet;
  /** Names (as in `import "…"`) of the files to generate; the files they import are generated too. */
  files: string[];
}

export interface GeneratedFile {
  /** Path relative to the output folder, e.g. `tesseract/v1/tensor.ts`. */
  name: string;
  content: string;
}

/** The set's files, each after the files it imports, as protoc plugins expect; a missing import is named. */
export function dependencyOrder(files: readonly FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const ordered: FileDescriptorProto[] = [];
  const placed = new Set<string>();
  const place = (file: FileDescriptorProto, importedBy: string[]) => {
    if (placed.has(file.name)) return;
    if (importedBy.includes(file.name)) throw new Error(`import cycle: ${[...importedBy, file.name].join(" -> ")}`);
    for (const dependency of file.dependency) {
      const imported = byName.get(dependency);
      if (!imported) throw new Error(`${file.name} imports "${dependency}", which the descriptors do not include`);
      place(imported, [...importedBy, file.name]);
    }
    placed.add(file.name);
    ordered.push(file);
  };
  for (const file of files) place(file, []);
  return ordered;
}

/**
 * The files reached from `roots` by relative imports. ts-proto also writes every imported .proto
 * file, even one imported only for its options (google/protobuf/descriptor.proto, 270 kB that no
 * code uses and every build of the app would compile).
 */
export function importedFrom(files: readonly GeneratedFile[], roots: readonly string[]): GeneratedFile[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const reached = new Set<string>();
  const visit = (name: string) => {
    const file = byName.get(name);
    if (!file || reached.has(name)) return;
    reached.add(name);
    for (const [, specifier] of file.content.matchAll(/^(?:import|export)\b[^;]*?\bfrom "(\.\.?\/[^"]+)";/gm)) {
      visit(path.posix.join(path.posix.dirname(name), `${specifier.replace(/\.js$/, "")}.ts`));
    }
  };
  roots.forEach(visit);
  return files.filter((f) => reached.has(f.name));
}

/** Runs ts-proto (`plugin`: its protoc-gen-ts_proto script) on the descriptors; resolves with the files the requested ones need. */
export async function generateTypeScript(source: DescriptorSource, options: { module: ModuleFormat; plugin: string }): Promise<GeneratedFile[]> {
  const names = new Set(source.set.file.map((f) => f.name));
  const absent = source.files.filter((name) => !names.has(name));
  if (absent.length > 0) throw new Error(`no descriptor for ${absent.map((n) => `"${n}"`).join(", ")}`);
  const request = create(CodeGeneratorRequestSchema, {
    fileToGenerate: source.files,
    parameter: tsProtoParameter(options.module),
    protoFile: dependencyOrder(source.set.file),
  });
  const output = await runPlugin(options.plugin, toBinary(CodeGeneratorRequestSchema, request));
  const response = fromBinary(CodeGeneratorResponseSchema, output);
  if (response.error) throw new Error(`ts-proto: ${response.error}`);
  const files = response.file.map((f) => ({ name: f.name, content: f.content }));
  return importedFrom(files, source.files.map((name) => name.replace(/\.proto$/, ".ts")));
}

/** The protoc plugin protocol: a CodeGeneratorRequest on stdin, a CodeGeneratorResponse on stdout. */
function runPlugin(plugin: string, request: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [plugin], { stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(Buffer.concat(stdout));
      else reject(new Error(`ts-proto (${plugin}) exited with code ${code}: ${Buffer.concat(stderr).toString("utf8").trim().slice(-2000)}`));
    });
    child.stdin.end(request);
  });
}
