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

const PACKAGE_NAME = "tesseract-grpc";
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
    if (code === "MODULE_NOT_FOUND") {
      const missing = moduleNotFound(e as NodeJS.ErrnoException & { requireStack?: string[] });
      if (missing) throw new Error(missing);
    }
    // Node reads a .js file as CommonJS unless its package.json says "type": "module"; its own error names neither fix.
    if (e instanceof SyntaxError && /^(Cannot use import statement outside a module|Unexpected token 'export')$/.test(e.message)) {
      throw new Error(
        `${file} is written as an ES module (import/export), but Node.js reads it as CommonJS: name it .mjs, ` +
          `or set "type": "module" in ${nearestPackageJson(path.dirname(file)) ?? "a package.json beside it"}`,
      );
    }
    throw e;
  }
}

/**
 * What a module (the Tesseract's or one it imports) needs and lacks, said with the fix; Node's own
 * message is followed by the require stack of the server's internals. Undefined: the module itself
 * is not there (the caller checked), or Node's message has another form.
 */
function moduleNotFound(e: Error & { requireStack?: string[] }): string | undefined {
  const specifier = /^Cannot find module '([^']+)'/.exec(e.message)?.[1];
  const importer = e.requireStack?.[0];
  if (specifier === undefined || importer === undefined) return undefined;
  if (specifier.startsWith(".") || path.isAbsolute(specifier)) {
    const generated = /(^|\/)generated\//.test(specifier)
      ? `: if it is the generated types, write them first (npx tesseract-grpc generate <its .proto> --out <that folder>), or import them with "import type", which needs nothing at run time`
      : "";
    return `${importer} imports "${specifier}", which is not at ${path.resolve(path.dirname(importer), specifier)}${generated}`;
  }
  const name = specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0];
  // Not on the registry yet: the README installs it from the tarball npm pack writes in a clone.
  const install = name === PACKAGE_NAME ? `npm install <your clone>/${PACKAGE_NAME}-<version>.tgz (the tarball npm pack writes there)` : `npm install ${name}`;
  return `${importer} imports the package "${specifier}", which is not installed where it can be found: ${install} in its project`;
}

/** The package.json that decides how Node.js reads a .js file: the nearest one above it. */
function nearestPackageJson(dir: string): string | undefined {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const candidate = path.join(at, "package.json");
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(at) === at) return undefined;
  }
}

/** Named exports that look like a definition (an object with a name and an apply function). */
function definitionLikeExports(exports: Record<string, unknown>): string[] {
  return Object.keys(exports).filter((key) => {
    const value = exports[key] as Partial<AnyTesseract> | undefined;
    return key !== "default" && typeof value === "object" && value !== null && typeof value.apply === "function";
  });
}

/** ES module exports: Node's namespace object (require(esm)), or CommonJS that tsc or a bundler compiled from one. */
function isEsModule(exports: Record<string, unknown> | undefined): boolean {
  return exports !== undefined && exports !== null && ((exports as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === "Module" || exports.__esModule === true);
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
    // A CommonJS module has no `export` statement to end with: name its own form.
    const ending = /\.c?js$/i.test(file) && !isEsModule(exports) ? `"module.exports = defineTesseract({ ... })"` : `"export default defineTesseract({ ... })"`;
    throw new Error(`${file} has no default export${hint}: end it with ${ending}`);
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
