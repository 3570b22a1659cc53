/** Finds a Tesseract's definition by bundled name or module path (loader.ts loads it into a runtime; a worker thread, eval/worker.ts, to evaluate). */
import * as fs from "node:fs";
import * as path from "node:path";
import type { AnyTesseract } from "./tesseract";
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
    throw new Error(`"${spec}" is neither a bundled Tesseract (${Object.keys(BUNDLED).join(", ")}) nor an existing module path`);
  }
  const definition = requireTesseractModule(file);
  checkProtoFiles(file, definition);
  return { definition, moduleDir: path.dirname(file), source: file };
}
