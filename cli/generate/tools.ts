/**
 * The code generators `generate` runs: ts-proto and buf. They are optional peer dependencies (an app
 * that only calls or serves does not carry them), found in the app's own node_modules first.
 */

/** The versions this package's own code is generated with (package.json: devDependencies, and ^ them as peerDependencies). */
export const TOOL_VERSIONS = { "ts-proto": "2.18.0", "@bufbuild/buf": "1.75.0" } as const;

type Tool = keyof typeof TOOL_VERSIONS;

/** The entry point of each tool: ts-proto's protoc plugin, buf's command. */
const ENTRY: Record<Tool, string> = { "ts-proto": "ts-proto/protoc-gen-ts_proto", "@bufbuild/buf": "@bufbuild/buf/bin/buf" };

/** The tool's entry script, resolved from the current folder (the app) and then from this package. */
export function findTool(tool: Tool, from = [process.cwd(), __dirname]): string {
  try {
    return require.resolve(ENTRY[tool], { paths: from });
  } catch {
    const install = Object.entries(TOOL_VERSIONS).map(([name, version]) => `${name}@${version}`).join(" ");
    throw new Error(`tesseract-grpc generate needs ${tool} in your project: npm install --save-dev --save-exact ${install}`);
  }
}
