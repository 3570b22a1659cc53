/** Finds a Tesseract's definition by bundled name or module path (loader.ts loads it into a runtime; a worker thread, eval/worker.ts, to evaluate). */
import * as fs from "node:fs";
import * as path from "node:path";
import type { AnyTesseract } from "./tesseract";
import { isHostPort, nameLike } from "../common/likely-meant";
import { checkProtoFiles, requireTesseractModule } from "./tesseract-module";
import heat from "./tesseracts/heat";
import meshstats from "./tesseracts/meshstats";
import univariate from "./tesseracts/univariate";
import vectoradd from "./tesseracts/vectoradd";

export const BUNDLED: Record<string, AnyTesseract> = { meshstats, vectoradd, univariate, heat };

/** A definition found, with the folder its relative .proto paths start from. */
export interface FoundTesseract {
  definition: AnyTesseract;
  moduleDir: string;
  /** What found it: a bundled name or a module path (worker threads find the same Tesseract by it). */
  source: string;
}

/**
 * `spec` is a bundled name (meshstats, vectoradd, univariate, heat) or a path to a module that
 * default-exports a definition: JavaScript, or TypeScript (compiled on load by tsx).
 */
export function findTesseract(spec: string): FoundTesseract {
  if (Object.hasOwn(BUNDLED, spec)) return { definition: BUNDLED[spec], moduleDir: __dirname, source: spec };
  const file = path.resolve(spec);
  if (!fs.existsSync(file)) {
    const hint = likelyMeant(spec);
    throw new Error(`"${spec}" is neither a bundled Tesseract (${Object.keys(BUNDLED).join(", ")}) nor an existing module path${hint ? `; ${hint}` : ""}`);
  }
  if (fs.statSync(file).isDirectory() && !resolvable(file)) {
    const modules = moduleFilesIn(file);
    const some = modules.length > 0 ? ` (in it: ${modules.slice(0, 3).map((name) => inFolder(spec, name)).join(", ")})` : "";
    throw new Error(`"${spec}" is a folder: serve takes the module file (.ts or .js) that default-exports the Tesseract's definition${some}`);
  }
  const definition = requireTesseractModule(file);
  checkProtoFiles(file, definition);
  return { definition, moduleDir: path.dirname(file), source: file };
}

const MODULE_EXTENSIONS = [".ts", ".js", ".mjs", ".cjs", ".mts", ".cts"];

/** A folder require() can load (an index module, or package.json's "main"). */
function resolvable(folder: string): boolean {
  try {
    require.resolve(folder);
    return true;
  } catch {
    return false;
  }
}

/** The module files in `folder`; none where it cannot be read (the hint then says nothing, the error stays). */
function moduleFilesIn(folder: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(folder);
  } catch {
    return [];
  }
  const isFile = (name: string) => fs.statSync(path.join(folder, name), { throwIfNoEntry: false })?.isFile() === true;
  return names.filter((name) => MODULE_EXTENSIONS.includes(path.extname(name)) && !name.endsWith(".d.ts") && isFile(name));
}

/** `name` in `folder`, written as the caller wrote the folder (`.` -> `./beam.ts`). */
function inFolder(folder: string, name: string): string {
  const joined = path.join(folder, name);
  return folder.startsWith(".") && !joined.startsWith(".") ? `./${joined}` : joined;
}

/**
 * What a spec that names nothing most likely meant, said as the fix: a runtime's HOST:PORT without
 * its http://, a bundled name misspelt, or a module path without its extension or in another case
 * (Node's require() would add the extension; serve names the file itself).
 */
function likelyMeant(spec: string): string | undefined {
  if (isHostPort(spec)) return `a tesseract-core runtime is served by its URL: http://${spec}`;
  const bundled = nameLike(spec, Object.keys(BUNDLED));
  if (bundled) return `did you mean ${bundled}?`;
  const folder = path.dirname(path.resolve(spec));
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) return undefined;
  const base = path.basename(spec).toLowerCase();
  const files = moduleFilesIn(folder).filter((name) => name.toLowerCase() === base || path.basename(name, path.extname(name)).toLowerCase() === base);
  return files.length > 0 ? `did you mean ${files.map((name) => inFolder(path.dirname(spec), name)).join(" or ")}?` : undefined;
}
