/**
 * A Tesseract written in TypeScript: springs in series under one load. Served as it is
 * (`tesseract-grpc serve src/springs.ts`) or after `npm run build` (`tesseract-grpc serve dist/springs.js`).
 */
import ndarray from "ndarray";
import { defineTesseract, invalidArgument, toFloat64, type Arrays } from "tesseract-grpc";
import type { Inputs, Outputs } from "./generated/springs.js";

/** A Tensor field as `apply` gets it: an ndarray over the typed array of its datatype. */
type Tensor = Arrays<Inputs>["stiffness"];

/** The FP64 values of a tensor field, or INVALID_ARGUMENT naming it. */
function fp64(field: string, tensor: Tensor, rank: number): Float64Array {
  if (!tensor || !(tensor.data instanceof Float64Array) || tensor.shape.length !== rank) {
    throw invalidArgument(`${field}: expected an FP64 tensor of rank ${rank}`);
  }
  return toFloat64(tensor);
}

export default defineTesseract<Inputs, Outputs>({
  name: "springs",
  version: "1.0.0",
  description: "Springs in series under one load: extension = load / stiffness, and its sum.",
  inputType: "acme.springs.v1.Inputs",
  outputType: "acme.springs.v1.Outputs",
  // Relative to this module, and the same from src/ and from dist/: tsc does not copy .proto files.
  protoFiles: ["../proto/springs.proto"],
  validate(inputs) {
    const stiffness = fp64("stiffness", inputs.stiffness, 1);
    fp64("load", inputs.load, 0);
    if (!stiffness.every((k) => k > 0)) throw invalidArgument("stiffness: expected every element > 0");
  },
  apply(inputs) {
    const stiffness = fp64("stiffness", inputs.stiffness, 1);
    const [load] = fp64("load", inputs.load, 0);
    const extension = stiffness.map((k) => load / k);
    const total = extension.reduce((sum, x) => sum + x, 0);
    return { extension: ndarray(extension, [extension.length]), total: ndarray(Float64Array.of(total), []) };
  },
  finiteDifferences: { eps: 1e-6 },
  // Steps never reach stiffness ≤ 0 (one-sided differences near the bound).
  bounds: { stiffness: { lower: 0 } },
});
