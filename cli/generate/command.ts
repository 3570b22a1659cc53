/**
 * `tesseract-grpc generate`: typed ts-proto messages for a Tesseract's .proto files, written into an
 * app's folder with the options the SDK needs. Descriptors → ts-proto → files; the descriptors come
 * from .proto files (compiled by buf), and any other source of a FileDescriptorSet plugs in before
 * `writeTypeScript`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Command, Option } from "commander";
import { compileProtoFiles, locateProtoFiles } from "./proto-files";
import { findTool } from "./tools";
import { generateTypeScript, type DescriptorSource, type ModuleFormat } from "./ts-proto";

interface GenerateFlags {
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

const collect = (value: string, previous: string[]) => [...previous, value];

export function addGenerateCommand(program: Command): void {
  program
    .command("generate")
    .description("write typed TypeScript messages (ts-proto, with the options the SDK needs) for a Tesseract's .proto files into your project")
    .argument("<protos...>", ".proto files, folders of them, or names on the include path (tesseract/examples/meshstats/v1/meshstats.proto)")
    .addOption(
      new Option("-I, --proto-path <dir>", "a folder imports are resolved from, repeatable; the package's proto/ is always on the path")
        .argParser(collect)
        .default([], "each file's own folder"),
    )
    .option("--out <dir>", "folder to write the .ts files to", "generated")
    .addOption(new Option("--module <format>", 'import style of the generated code (esm: relative imports end in .js); default: esm where package.json says "type": "module"').choices(["esm", "commonjs"]))
    .action(async (protos: string[], flags: GenerateFlags) => {
      const source = await compileProtoFiles(locateProtoFiles(protos, flags.protoPath), findTool("@bufbuild/buf"));
      const module = flags.module ?? moduleFormatAt(flags.out);
      const written = await writeTypeScript(source, flags.out, module);
      process.stdout.write(`wrote ${written.length} files (${module}) to ${flags.out}: ${written.join(", ")}\n`);
    });
}
