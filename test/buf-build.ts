/**
 * `buf build` (the devDependency's binary, no downloads) as the reference for descriptors: a
 * temporary buf workspace of the given modules, built once, each file's FileDescriptorProto bytes
 * exactly as buf writes them (source info excluded).
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fromBinary, toJson } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

export const BUF = path.join(__dirname, "../../node_modules/.bin/buf");

/** Module folder -> file name -> .proto text. */
export type Workspace = Record<string, Record<string, string>>;

/** Builds `workspace` with buf; returns each file's bytes by name (imports included). */
export function bufBuild(workspace: Workspace): Map<string, Uint8Array> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-buf-"));
  try {
    for (const [module, files] of Object.entries(workspace)) {
      for (const [name, text] of Object.entries(files)) {
        const file = path.join(dir, module, name);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, text);
      }
    }
    fs.writeFileSync(path.join(dir, "buf.yaml"), `version: v2\nmodules:\n${Object.keys(workspace).map((m) => `  - path: ${m}\n`).join("")}`);
    const out = path.join(dir, "image.binpb");
    execFileSync(BUF, ["build", dir, "--exclude-source-info", "--as-file-descriptor-set", "-o", out], { stdio: ["ignore", "ignore", "pipe"] });
    return filesOf(fs.readFileSync(out));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A FileDescriptorSet's files (field 1), their bytes untouched, by name. */
function filesOf(set: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const reader = new BinaryReader(set);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no !== 1 || wireType !== WireType.LengthDelimited) throw new Error(`unexpected field ${no} in a FileDescriptorSet`);
    const bytes = reader.bytes();
    files.set(fromBinary(FileDescriptorProtoSchema, bytes).name!, bytes);
  }
  return files;
}

/** The .proto files under `dir`, by their names relative to it. */
export function protoFilesUnder(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { recursive: true }) as string[]) {
    if (entry.endsWith(".proto")) files[entry.split(path.sep).join("/")] = fs.readFileSync(path.join(dir, entry), "utf8");
  }
  return files;
}

/** Equal bytes, or a failure that shows the first differences in JSON form. */
export function assertSameDescriptor(name: string, actual: Uint8Array | undefined, expected: Uint8Array | undefined): void {
  assert.ok(expected, `buf wrote no ${name}`);
  assert.ok(actual, `no descriptor for ${name}`);
  if (Buffer.compare(Buffer.from(actual), Buffer.from(expected)) === 0) return;
  const json = (bytes: Uint8Array) => JSON.stringify(toJson(FileDescriptorProtoSchema, fromBinary(FileDescriptorProtoSchema, bytes)), null, 1).split("\n");
  const [a, b] = [json(actual), json(expected)];
  const diffs = a.flatMap((line, i) => (line === b[i] ? [] : [`line ${i}: ours ${line.trim()} / buf ${b[i]?.trim()}`])).slice(0, 8);
  assert.fail(`${name} differs from buf's (${actual.length} vs ${expected.length} bytes): ${diffs.join("; ") || "same JSON, different bytes"}`);
}
