/**
 * A Tesseract definition from a module path: JavaScript through `require`, TypeScript (`.ts`, `.cts`,
 * `.mts`) through tsx's require hook, registered on first need. The hook compiles TypeScript only;
 * JavaScript, this package included, loads as before, so the module and the server share one copy of
 * tesseract-grpc (its errors keep their codes). Mistakes a first module makes get a message that
 * says what to write instead.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { AnyTesseract } from "./tesseract";

const TYPESCRIPT = /\.[cm]?tsx?$/;
const REQUIRED = ["name", "inputType", "outputType", "protoFiles", "apply"] as const;

let typeScriptRegistered = false;

/** tsx's CommonJS hook for .ts files, in this thread (each worker thread registers its own). */
function registerTypeScript(): void {
  if (typeScriptRegistered) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require("tsx/cjs/api") as typeof import("tsx/cjs/api")).register();
  typeScriptRegistered = true;
}

/** ES modules load too (require(esm), Node.js 20.19 and later), except those with a top-level await. */
function requireModule(file: string): unknown {
  // Read as JavaScript, a schema file failed with "Unexpected identifier" from its package line.
  const extension = path.extname(file).toLowerCase();
  if (extension === ".proto" || extension === ".json") {
    throw new Error(`${file} is a ${extension.slice(1)} file: serve takes the module (.js or .ts) that default-exports the Tesseract's definition, whose protoFiles name its .proto files`);
  }
  try {
    if (TYPESCRIPT.test(file)) registerTypeScript();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ERR_REQUIRE_ASYNC_MODULE") {
      throw new Error(`${file} is an ES module with a top-level await, which require() cannot load: await inside apply (or a function it calls) instead`);
    }
    if (code === "ERR_REQUIRE_ESM") {
      throw new Error(`${file} is an ES module, which Node.js ${process.version} cannot require(): use Node.js 20.19 or later, or compile it to CommonJS`);
    }
    throw e;
  }
}

/** Named exports that look like a definition (an object with a name and an apply function). */
function definitionLikeExports(exports: Record<string, unknown>): string[] {
  return Object.keys(exports).filter((key) => {
    const value = exports[key] as Partial<AnyTesseract> | undefined;
    return key !== "default" && typeof value === "object" && value !== null && typeof value.apply === "function";
  });
}

/** The definition a module exports by default (`export default` or `module.exports =`). */
export function requireTesseractModule(file: string): AnyTesseract {
  const exports = requireModule(file) as Record<string, unknown> | undefined;
  const definition = (exports?.default ?? exports) as Partial<AnyTesseract> | undefined;
  const missing = REQUIRED.filter((key) => definition?.[key] === undefined);
  if (missing.length === 0) return definition as AnyTesseract;
  if (exports?.default === undefined && missing.length === REQUIRED.length) {
    const named = exports ? definitionLikeExports(exports) : [];
    const hint = named.length > 0 ? ` (it exports ${named.map((n) => `"${n}"`).join(", ")}: make that the default export)` : "";
    throw new Error(`${file} has no default export${hint}: end it with "export default defineTesseract({ ... })"`);
  }
  throw new Error(`${file} does not default-export a Tesseract definition: "${missing[0]}" is missing`);
}

/**
 * Fails early, naming the module, when a .proto file it names is not there. tsc does not copy .proto
 * files: a module compiled to another folder must name them by a path that holds from there too.
 */
export function checkProtoFiles(file: string, definition: AnyTesseract): void {
  const dir = path.dirname(file);
  for (const proto of definition.protoFiles) {
    const resolved = path.resolve(dir, proto);
    if (fs.existsSync(resolved)) continue;
    throw new Error(
      `${file} names the .proto file "${proto}", which is not at ${resolved}: protoFiles are relative to the module's ` +
        `folder, and tsc does not copy .proto files to its output; keep them beside both the source and the build ` +
        `(e.g. "../proto/${path.basename(proto)}" from src/ and dist/ alike) or copy them in your build`,
    );
  }
}
