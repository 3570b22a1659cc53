/** Finds a Tesseract by bundled name or module path and loads it into a runtime. */
import * as fs from "node:fs";
import * as path from "node:path";
import { TesseractRuntime } from "./runtime";
import type { AnyTesseract } from "./tesseract";
import { checkProtoFiles, requireTesseractModule } from "./tesseract-module";
import heat from "./tesseracts/heat";
import meshstats from "./tesseracts/meshstats";
import univariate from "./tesseracts/univariate";
import vectoradd from "./tesseracts/vectoradd";

export const BUNDLED: Record<string, AnyTesseract> = { meshstats, vectoradd, univariate, heat };

/**
 * `spec` is a bundled name (meshstats, vectoradd, univariate, heat) or a path to a module that
 * default-exports a definition: JavaScript, or TypeScript (compiled on load by tsx).
 */
export function loadTesseract(spec: string): TesseractRuntime {
  if (Object.hasOwn(BUNDLED, spec)) return new TesseractRuntime(BUNDLED[spec], __dirname, spec);
  const file = path.resolve(spec);
  if (!fs.existsSync(file)) {
    throw new Error(`"${spec}" is neither a bundled Tesseract (${Object.keys(BUNDLED).join(", ")}) nor an existing module path`);
  }
  const definition = requireTesseractModule(file);
  checkProtoFiles(file, definition);
  return new TesseractRuntime(definition, path.dirname(file), file);
}
