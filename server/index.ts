/** The package's entry point for Tesseract authors and embedders. */
export { defineTesseract, Algorithm } from "./tesseract";
export type { Arrays, TesseractDefinition, FiniteDifferenceDefaults, AbstractOutput, AbstractTensor, AnalyticJacobian } from "./tesseract";
export { Code, TesseractError, invalidArgument } from "../common/errors";
export { DataType, decodeTensor, encodeTensor, toFloat64 } from "../common/tensor-codec";
export { loadTesseract, BUNDLED } from "./loader";
export { TesseractRuntime } from "./runtime";
