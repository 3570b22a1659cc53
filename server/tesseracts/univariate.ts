/** univariate: the Rosenbrock function (a - x)² + b (y - x²)² on FP32 scalars. */
import * as path from "node:path";
import ndarray, { type NdArray } from "ndarray";
import type { Inputs, Outputs } from "../../generated/tesseract/examples/univariate/v1/univariate";
import { invalidArgument, refusedAs } from "../../common/errors";
import { PROTO_DIR } from "../proto-dir";
import { DataType, dataTypeName, dataTypeOfArray, type TypedArray } from "../../common/tensor-codec";
import { sampleRosenbrockInputs } from "./samples";
import { defineTesseract } from "../tesseract";

function scalar(t: NdArray<TypedArray> | undefined, field: string, fallback?: number): number {
  if (!t) {
    if (fallback === undefined) throw refusedAs("missing", `${field} is missing: expected an FP32 scalar`);
    return fallback;
  }
  const dtype = dataTypeOfArray(t.data as never);
  if (dtype !== DataType.DATA_TYPE_FP32) throw invalidArgument(`${field} has datatype ${dataTypeName(dtype)}, expected DATA_TYPE_FP32`);
  if (t.shape.length !== 0) throw invalidArgument(`${field} has shape [${t.shape.join(", ")}], expected a scalar (shape [])`);
  return Number(t.get());
}

/** Evaluated in FP32, as the output type says. */
export function rosenbrock(x: number, y: number, a: number, b: number): number {
  const f = Math.fround;
  return f(f(f(a - x) ** 2) + f(b * f(f(y - f(x * x)) ** 2)));
}

export default defineTesseract<Inputs, Outputs>({
  name: "univariate",
  version: "1.0.0",
  description: "Rosenbrock function (a - x)² + b (y - x²)² of FP32 scalars x, y (a = 1, b = 100 by default).",
  inputType: "tesseract.examples.univariate.v1.Inputs",
  outputType: "tesseract.examples.univariate.v1.Outputs",
  protoFiles: [path.join(PROTO_DIR, "tesseract/examples/univariate/v1/univariate.proto")],

  validate(inputs) {
    scalar(inputs.x, "x");
    scalar(inputs.y, "y");
    scalar(inputs.a, "a", 1);
    scalar(inputs.b, "b", 100);
  },

  apply(inputs) {
    const value = rosenbrock(scalar(inputs.x, "x"), scalar(inputs.y, "y"), scalar(inputs.a, "a", 1), scalar(inputs.b, "b", 100));
    return { result: ndarray(Float32Array.of(value), []) };
  },

  // FP32 rounding (~6e-8 relative) over a 1e-4 step would cost ~1e-3 relative error; central's
  // error-optimal step for FP32 is about cbrt(6e-8) ~ 4e-3.
  finiteDifferences: { eps: 1e-3 },

  exampleInputs: () => sampleRosenbrockInputs(),

  // As validate checks the scalars, from their shapes alone (it answered a scalar for an x of shape
  // [3], which Apply refuses; a datatype other than FP32 is cast to it on the way in).
  abstractEval({ x, y, a, b }) {
    for (const [field, t, required] of [["x", x, true], ["y", y, true], ["a", a, false], ["b", b, false]] as const) {
      if (!t && required) throw refusedAs("missing", `${field} is missing: expected an FP32 scalar`);
      if (t && t.shape.length !== 0) throw invalidArgument(`${field} has shape [${t.shape.join(", ")}], expected a scalar (shape [])`);
    }
    return [{ path: "result", shape: [], datatype: DataType.DATA_TYPE_FP32 }];
  },
});
