/**
 * A loaded Tesseract: its definition, its schema, and every endpoint as a method over decoded trees
 * (ndarray leaves). The gRPC layer converts to and from the wire; tests and embedders call this.
 */
import * as path from "node:path";
import ndarray, { type NdArray } from "ndarray";
import { Code, invalidArgument, TesseractError } from "./errors";
import { InlineEvaluator } from "./eval/inline";
import { jacobian, type JacobianEntry } from "./fd/jacobian";
import { jvp } from "./fd/jvp";
import { resolveOptions, type RequestOptions, type ResolvedOptions } from "./fd/options";
import { OutputSelector } from "./fd/outputs";
import { inputLeaf, Problem } from "./fd/problem";
import { vjp } from "./fd/vjp";
import { isPattern, parsePath } from "./schema/paths";
import { loadRoot, TesseractSchema, type AnyMessage } from "./schema/schema";
import { DataType, dataTypeName, dataTypeOfArray, toFloat64 } from "./tensor/codec";
import type { AbstractOutput, AnyTesseract } from "./tesseract";

export interface EvaluationStats {
  apply_calls: number;
  wall_seconds: number;
}

/** Common arguments of the gradient endpoints. */
export interface GradientRequest {
  inputs: Record<string, unknown>;
  inputPaths: readonly string[];
  outputPaths: readonly string[];
  options?: RequestOptions | null;
  signal?: AbortSignal;
}

/** Field names used in error messages, so they match the RPC being served. */
interface Fields {
  inputs: string;
  outputs: string;
}

export class TesseractRuntime {
  readonly schema: TesseractSchema;

  /** `moduleDir` anchors the definition's relative .proto paths. */
  constructor(readonly definition: AnyTesseract, moduleDir: string) {
    const resolve = (p: string) => path.resolve(moduleDir, p);
    const root = loadRoot(definition.protoFiles.map(resolve), (definition.protoIncludeDirs ?? []).map(resolve));
    this.schema = new TesseractSchema(root, definition.inputType, definition.outputType);
  }

  /** Any -> tree, then the Tesseract's own validation. */
  decodeInputs(any: AnyMessage | null | undefined, field = "inputs"): Record<string, unknown> {
    const inputs = this.schema.inputs.decodeAny(any, field);
    this.definition.validate?.(inputs);
    return inputs;
  }

  encodeOutputs(outputs: unknown): AnyMessage {
    return this.schema.outputs.encodeAny(outputs);
  }

  async apply(inputs: Record<string, unknown>): Promise<unknown> {
    return this.definition.apply(inputs);
  }

  abstractEval(inputs: Record<string, unknown>): AbstractOutput[] {
    if (!this.definition.abstractEval) throw new TesseractError(Code.UNIMPLEMENTED, `Tesseract ${this.definition.name} does not define abstractEval`);
    return this.definition.abstractEval(inputs);
  }

  /** Options after precedence: request > Tesseract defaults > engine defaults. */
  options(inputs: Record<string, unknown>, request?: RequestOptions | null): ResolvedOptions {
    return resolveOptions(request, this.definition.finiteDifferences, inputs);
  }

  /** Resolves paths and options and sets up an inline evaluator over the base inputs. */
  private setup(req: GradientRequest, fields: Fields) {
    const leaves = this.schema.inputs.resolveDifferentiable(req.inputs, req.inputPaths, fields.inputs, "input").map((l) => inputLeaf(l, fields.inputs));
    const selector = new OutputSelector(this.schema.outputs, req.outputPaths, fields.outputs);
    const options = this.options(req.inputs, req.options);
    const evaluator = new InlineEvaluator((i) => this.definition.apply(i), req.inputs, leaves, selector);
    const problem = new Problem(leaves, evaluator, req.signal);
    return { leaves, options, evaluator, problem, started: performance.now() };
  }

  private stats(problem: Problem, started: number): EvaluationStats {
    return { apply_calls: problem.calls, wall_seconds: (performance.now() - started) / 1000 };
  }

  async jacobian(req: GradientRequest): Promise<{ entries: JacobianEntry[]; stats: EvaluationStats }> {
    const { problem, options, started } = this.setup(req, { inputs: "jac_inputs", outputs: "jac_outputs" });
    const entries = await jacobian(problem, options);
    return { entries, stats: this.stats(problem, started) };
  }

  /** `tangent` is keyed by input path, each shaped like its input. Result keyed by output path. */
  async jvp(req: GradientRequest & { tangent: Record<string, NdArray> }): Promise<{ result: Record<string, NdArray<Float64Array>>; stats: EvaluationStats }> {
    const { problem, leaves, options, started } = this.setup(req, { inputs: "jvp_inputs", outputs: "jvp_outputs" });
    const tangent = matchVectors("tangent_vector", req.tangent, leaves, "jvp_inputs");
    const values = await jvp(problem, tangent, options);
    const result = Object.fromEntries(problem.outputs!.map((o, i) => [o.path, ndarray(values[i], o.shape)]));
    return { result, stats: this.stats(problem, started) };
  }

  /** `cotangent` is keyed by output path, each shaped like its output. Result keyed by input path. */
  async vjp(req: GradientRequest & { cotangent: Record<string, NdArray> }): Promise<{ result: Record<string, NdArray<Float64Array>>; stats: EvaluationStats }> {
    const field = "cotangent_vector";
    const { problem, leaves, options, evaluator, started } = this.setup(req, { inputs: "vjp_inputs", outputs: "vjp_outputs" });
    const cotangent = Object.entries(req.cotangent).map(([key, array]) => {
      checkFloating(field, key, array);
      return { path: key, shape: [...array.shape], values: toFloat64(array) };
    });
    const paths = new Set(req.outputPaths);
    const patternFree = req.outputPaths.every((p) => !isPattern(parsePath(p)));
    if (patternFree) {
      // Key mistakes are caught before evaluating; shapes are checked once the outputs are known.
      for (const c of cotangent) if (!paths.has(c.path)) throw invalidArgument(`${field} has key "${c.path}", which is not in vjp_outputs (${req.outputPaths.join(", ")})`);
      for (const p of paths) if (!(p in req.cotangent)) throw invalidArgument(`${field} is missing output "${p}"`);
    }
    const values = await vjp(problem, evaluator, cotangent, options, field, req.signal);
    const result = Object.fromEntries(leaves.map((leaf, i) => [leaf.path, ndarray(values[i], leaf.shape)]));
    return { result, stats: this.stats(problem, started) };
  }
}

function checkFloating(field: string, key: string, array: NdArray): void {
  const dtype = dataTypeOfArray(array.data as never);
  if (dtype !== DataType.DATA_TYPE_FP64 && dtype !== DataType.DATA_TYPE_FP32) {
    throw invalidArgument(`${field}.{${key}} has datatype ${dataTypeName(dtype)}, expected DATA_TYPE_FP32 or DATA_TYPE_FP64`);
  }
}

/** Tangents in leaf order: exactly one per differentiated input, same shape, floating point. */
function matchVectors(field: string, vectors: Record<string, NdArray>, leaves: { path: string; shape: number[] }[], pathsField: string): Float64Array[] {
  for (const key of Object.keys(vectors)) {
    if (!leaves.some((l) => l.path === key)) {
      throw invalidArgument(`${field} has key "${key}", which is not in ${pathsField} (${leaves.map((l) => l.path).join(", ")})`);
    }
  }
  return leaves.map((leaf) => {
    const v = vectors[leaf.path];
    if (!v) throw invalidArgument(`${field} is missing input "${leaf.path}" (shape [${leaf.shape.join(", ")}])`);
    checkFloating(field, leaf.path, v);
    if (v.shape.length !== leaf.shape.length || v.shape.some((d, i) => d !== leaf.shape[i])) {
      throw invalidArgument(`${field}.{${leaf.path}} has shape [${v.shape.join(", ")}], expected [${leaf.shape.join(", ")}] like the input`);
    }
    return toFloat64(v);
  });
}
