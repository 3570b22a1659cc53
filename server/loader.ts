/** Loads a Tesseract, by bundled name or module path, into a runtime. */
import { findTesseract } from "./find-tesseract";
import { TesseractRuntime } from "./runtime";

/** `spec`: a bundled name or a module path (findTesseract). */
export function loadTesseract(spec: string): TesseractRuntime {
  const { definition, moduleDir, source } = findTesseract(spec);
  return new TesseractRuntime(definition, moduleDir, source);
}
