/**
 * vectoradd: result = s·a + b, divided by its 2-norm when `normalize`. Ships its analytic Jacobian
 * (the optional author-supplied gradient) so finite differences can be checked against it.
 */
import * as path from "node:path";
import ndarray, { type NdArray } from "ndarray";
import type { Inputs, Outputs } from "../../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { invalidArgument, refusedAs } from "../../common/errors";
import { PROTO_DIR } from "../proto-dir";
import { DataType, dataTypeName, dataTypeOfArray, isFloatingPoint, toFloat64, type TypedArray } from "../../common/tensor-codec";
import { sampleVectorInputs } from "./samples";
import { defineTesseract, type Arrays } from "../tesseract";

type In = Arrays<Inputs>;

function checkFloat(t: NdArray<TypedArray>, field: string): void {
  const dtype = dataTypeOfArray(t.data as never);
  if (!isFloatingPoint(dtype)) {
    throw invalidArgument(`${field} has datatype ${dataTypeName(dtype)}, expected DATA_TYPE_FP32 or DATA_TYPE_FP64`);
  }
}

const scale = (inputs: In) => (inputs.s ? Number(inputs.s.get()) : 1);

/** u = s·a + b (FP64), and its 2-norm. */
function affine(inputs: In): { u: Float64Array; norm: number } {
  const a = toFloat64(inputs.a!);
  const b = toFloat64(inputs.b!);
  const s = scale(inputs);
  const u = new Float64Array(a.length);
  for (let i = 0; i < u.length; i++) u[i] = s * a[i] + b[i];
  return { u, norm: norm2(u) };
}

/**
 * The 2-norm, its squares taken of the values over the largest magnitude: squared as they are,
 * components of 1e200 overflowed (normalised to 0, answered OK) and of 1e-200 underflowed (refused
 * as the zero vector).
 */
function norm2(u: Float64Array): number {
  let largest = 0;
  for (let i = 0; i < u.length; i++) largest = Math.max(largest, Math.abs(u[i]));
  if (largest === 0 || !Number.isFinite(largest)) return largest;
  let squares = 0;
  for (let i = 0; i < u.length; i++) squares += (u[i] / largest) ** 2;
  return largest * Math.sqrt(squares);
}

export default defineTesseract<Inputs, Outputs>({
  name: "vectoradd",
  version: "1.0.0",
  description: "s·a + b, optionally normalised to unit 2-norm; ships an analytic Jacobian.",
  inputType: "tesseract.examples.vectoradd.v1.Inputs",
  outputType: "tesseract.examples.vectoradd.v1.Outputs",
  protoFiles: [path.join(PROTO_DIR, "tesseract/examples/vectoradd/v1/vectoradd.proto")],

  validate(inputs) {
    const { a, b, s } = inputs;
    if (!a) throw refusedAs("missing", "a is missing: expected a 1-D FP32 or FP64 tensor");
    if (!b) throw refusedAs("missing", "b is missing: expected a tensor shaped like a");
    checkFloat(a, "a");
    checkFloat(b, "b");
    if (a.shape.length !== 1) throw invalidArgument(`a has shape [${a.shape.join(", ")}], expected 1-D`);
    if (b.shape.length !== 1 || b.shape[0] !== a.shape[0]) throw invalidArgument(`b has shape [${b.shape.join(", ")}], expected [${a.shape[0]}] like a`);
    if (s) {
      checkFloat(s, "s");
      if (s.shape.length !== 0) throw invalidArgument(`s has shape [${s.shape.join(", ")}], expected a scalar (shape [])`);
    }
    // Here, not only in apply: a gradient's central differences never evaluate f(x) itself, and
    // would answer a Jacobian (1/eps) at inputs where the function is undefined.
    if (inputs.normalize && affine(inputs).norm === 0) throw invalidArgument("normalize is set but s·a + b is the zero vector");
  },

  apply(inputs) {
    const { u, norm } = affine(inputs);
    if (inputs.normalize) {
      if (norm === 0) throw invalidArgument("normalize is set but s·a + b is the zero vector");
      u.forEach((x, i) => (u[i] = x / norm));
    }
    return { result: ndarray(u, [u.length]) };
  },

  // As validate checks the arrays, from their shapes and datatypes alone (Apply refused what this answered).
  abstractEval(inputs) {
    const { a, b, s } = inputs;
    if (!a) throw refusedAs("missing", "a is missing: expected a 1-D tensor");
    if (a.shape.length !== 1) throw invalidArgument("a must be a 1-D tensor");
    if (!b) throw refusedAs("missing", `b is missing: expected a tensor of shape [${a.shape[0]}] like a`);
    if (b.shape.length !== 1 || b.shape[0] !== a.shape[0]) throw invalidArgument(`b has shape [${b.shape.join(", ")}], expected [${a.shape[0]}] like a`);
    for (const [field, t] of [["a", a], ["b", b], ["s", s]] as const) {
      if (t && !isFloatingPoint(t.datatype)) throw invalidArgument(`${field} has datatype ${dataTypeName(t.datatype)}, expected DATA_TYPE_FP32 or DATA_TYPE_FP64`);
    }
    if (s && s.shape.length !== 0) throw invalidArgument(`s has shape [${s.shape.join(", ")}], expected a scalar (shape [])`);
    return [{ path: "result", shape: [a.shape[0]], datatype: DataType.DATA_TYPE_FP64 }];
  },

  exampleInputs: () => sampleVectorInputs(100),

  // Without normalisation result_i = s·a_i + b_i: d result / d a and d result / d b are diagonal
  // (d result / d s is dense), so all of a, then all of b, then s: three groups. Normalised, every
  // result depends on every input: no declaration, dense.
  sparsity(inputs) {
    if (inputs.normalize) return [];
    const diagonal = Uint32Array.from({ length: inputs.a!.shape[0] }, (_, i) => i);
    return ["a", "b"].map((input_path) => ({ output_path: "result", input_path, output_index: diagonal, input_index: diagonal }));
  },

  gradients: {
    /**
     * u = s·a + b: du/da = s·I, du/db = I, du/ds = a.
     * With normalisation r = u/|u|: dr/du = (I - r rᵀ)/|u|, chained onto the above.
     */
    jacobian(inputs, jacInputs, jacOutputs) {
      const { u, norm } = affine(inputs);
      const n = u.length;
      const a = toFloat64(inputs.a!);
      const s = scale(inputs);
      const r = u.map((x) => x / norm);
      // dr/du (n × n), or the identity without normalisation.
      const outer = (i: number, k: number) => (inputs.normalize ? ((i === k ? 1 : 0) - r[i] * r[k]) / norm : i === k ? 1 : 0);
      // du/da and du/db are diagonal, so dr/da = s·dr/du and dr/db = dr/du, filled in O(n²); du/ds = a,
      // so dr/ds = (a - r (r·a))/|u|, or a, in O(n). (Multiplied out as dense matrices, a check of
      // 2 000 elements took a minute on the event loop.)
      const ra = r.reduce((sum, ri, k) => sum + ri * a[k], 0);
      const entry = (input: string): NdArray<Float64Array> => {
        if (input === "s") return ndarray(Float64Array.from(a, (ak, i) => (inputs.normalize ? (ak - r[i] * ra) / norm : ak)), [n]);
        const d = input === "a" ? s : 1;
        const values = new Float64Array(n * n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) values[i * n + j] = outer(i, j) * d;
        return ndarray(values, [n, n]);
      };
      const result: Record<string, Record<string, NdArray<Float64Array>>> = {};
      for (const out of jacOutputs) {
        result[out] = {};
        for (const input of jacInputs) result[out][input] = entry(input);
      }
      return result;
    },
  },
});
