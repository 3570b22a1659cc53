/**
 * `tesseract-grpc generate`: typed ts-proto messages for a Tesseract's .proto files, written into an
 * app's folder with the options the SDK needs. Descriptors → ts-proto → files; the descriptors come
 * from .proto files (compiled by buf) or from a running server (reflection, `--address`), and any
 * other source of a FileDescriptorSet plugs in before `writeTypeScript`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Command, Option } from "commander";
import { withDefaultPort } from "../../client/address";
import { connectionOptions, serverAddress } from "../../client/cli-commands";
import { connectionFrom, failureLine, fetchTesseractFiles, type ConnectionFlags } from "../../client/proto-command";
import { compileProtoFiles, locateProtoFiles } from "./proto-files";
import { findTool } from "./tools";
import { plural } from "../../common/plural";
import { generateTypeScript, type DescriptorSource, type ModuleFormat } from "./ts-proto";

interface GenerateFlags extends ConnectionFlags {
  address?: string;
  protoPath: string[];
  out: string;
  module?: ModuleFormat;
}

/** ESM when the package.json nearest to `dir` says `"type": "module"`, else CommonJS (Node's own rule). */
export function moduleFormatAt(dir: string): ModuleFormat {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const file = path.join(at, "package.json");
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, "utf8")) as { type?: string }).type === "module" ? "esm" : "commonjs";
    if (path.dirname(at) === at) return "commonjs";
  }
}

/** Generates TypeScript for `source` into `out`; resolves with the paths written, relative to `out`. */
export async function writeTypeScript(source: DescriptorSource, out: string, module: ModuleFormat): Promise<string[]> {
  const files = await generateTypeScript(source, { module, plugin: findTool("ts-proto") });
  for (const file of files) {
    const target = path.resolve(out, file.name);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, file.content);
  }
  return files.map((f) => f.name);
}

/** The served Tesseract's message files (its input and output types' files), with every file they import. */
export async function descriptorsFromServer(address: string, credentials: grpc.ChannelCredentials, options: grpc.ClientOptions = {}): Promise<DescriptorSource> {
  const { files, messageFiles } = await fetchTesseractFiles(address, credentials, options);
  return { set: create(FileDescriptorSetSchema, { file: files }), files: messageFiles };
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function addGenerateCommand(program: Command): void {
  const command = program
    .command("generate")
    .description("write typed TypeScript messages (ts-proto, with the options the SDK needs) for a Tesseract's .proto files, or a running server's (--address), into your project")
    .argument("[protos...]", ".proto files, folders of them, or names on the include path (tesseract/examples/meshstats/v1/meshstats.proto)")
    .addOption(
      new Option("-I, --proto-path <dir>", "a folder imports are resolved from, repeatable; the package's proto/ is always on the path")
        .argParser(collect)
        .default([], "each file's own folder"),
    )
    .option("--address <host:port>", "instead of .proto files: the server whose Tesseract's messages to generate, read by reflection (port 50051 when none is given)", serverAddress);
  for (const option of connectionOptions()) command.addOption(option);
  command
    .option("--out <dir>", "folder to write the .ts files to", "generated")
    .addOption(new Option("--module <format>", 'import style of the generated code (esm: relative imports end in .js); default: esm where package.json says "type": "module"').choices(["esm", "commonjs"]))
    .action(async (protos: string[], flags: GenerateFlags) => {
      if (protos.length === 0 && flags.address === undefined) command.error("error: give the .proto files to generate, or --address HOST:PORT of a running server");
      if (protos.length > 0 && flags.address !== undefined) command.error("error: give either .proto files or --address, not both");
      const module = flags.module ?? moduleFormatAt(flags.out);
      if (flags.address === undefined) {
        const source = await compileProtoFiles(locateProtoFiles(protos, flags.protoPath), findTool("@bufbuild/buf"));
        return reportWritten(await writeTypeScript(source, flags.out, module), module, flags.out);
      }
      const address = withDefaultPort(flags.address);
      try {
        const { credentials, options } = connectionFrom(flags);
        const source = await descriptorsFromServer(address, credentials, options);
        reportWritten(await writeTypeScript(source, flags.out, module), module, flags.out);
      } catch (e) {
        process.stderr.write(`tesseract-grpc generate: ${failureLine(e, address)}\n`);
        process.exitCode = 1;
      }
    });
}

function reportWritten(written: string[], module: ModuleFormat, out: string): void {
  process.stdout.write(`wrote ${plural(written.length, "file")} (${module}) to ${out}: ${written.join(", ")}\n`);
}
