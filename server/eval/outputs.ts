/**
 * Picks the requested output leaves out of each apply result as flat FP64 arrays. The paths are
 * resolved against the first result (map keys are only known then); every later result must have
 * the same leaves with the same shapes, and a pattern (`m.{}`) must select no more of them. An output
 * whose field declares its datatype is read as Apply answers it (returned-outputs.ts): a float64
 * array of an FP32 output is rounded to float32, and its datatype, the engine's precision model's,
 * is the declared one.
 */
import type { NdArray } from "ndarray";
import { Code, TesseractError } from "../../common/errors";
import type { OutputInfo } from "./evaluator";
import { omitted, PRESENCE_FIXED, type MessageSchema } from "../schema/schema";
import { countMatches, expandPattern, formatPath, isPattern, type Segment } from "../../common/paths";
import { DataType, dataTypeName, dataTypeOfArray, isNdArray, isRowMajor, ndarrayExtentProblem, toFloat64 } from "../../common/tensor-codec";
import { allFinite, subtractAllFinite } from "./finite-values";

/** The property keys along a resolved path: field names, map keys, array indices. */
type Steps = readonly (string | number)[];

/** A selected output: what it is, and the keys that reach it in an outputs tree. */
type Resolved = { info: OutputInfo; steps: Steps; dataClass: unknown; toFp32: boolean };

export class OutputSelector {
  private resolved: Resolved[] | undefined;
  /** The resolved paths alone, kept so that reading them per evaluation allocates nothing. */
  private resolvedSegments: Segment[][] | undefined;
  /** The requested paths, parsed. */
  private readonly patterns: readonly Segment[][];
  /**
   * Each requested pattern (`m.{}`, `xs.[]`) and how many leaves it selected in the first tree;
   * undefined where the request names concrete paths only (a missing one is seen as its leaf is read).
   */
  private patternCounts: { pattern: readonly Segment[]; count: number }[] | undefined;

  constructor(
    private readonly schema: MessageSchema,
    private readonly requested: readonly string[],
    private readonly field: string,
    /**
     * Outputs of a remote runtime: those that break the schema are its faults (UNKNOWN, not
     * INTERNAL), and its schema may let it leave outputs out (ReturnedBy.mayOmit).
     */
    private readonly remote = false,
  ) {
    this.patterns = schema.checkDifferentiable(requested, field, "output");
  }

  /** The code of outputs that break the schema: INTERNAL for a Tesseract served here, UNKNOWN for a remote runtime's answers. */
  get faultCode(): Code {
    return this.remote ? Code.UNKNOWN : Code.INTERNAL;
  }

  /** A selector of the same request, resolved anew on the tree it first meets. */
  copy(): OutputSelector {
    return new OutputSelector(this.schema, this.requested, this.field, this.remote);
  }

  get outputs(): OutputInfo[] | undefined {
    return this.resolved?.map((r) => r.info);
  }

  /** The selected leaves' paths in the outputs tree, once the first tree resolved them. */
  get segments(): readonly Segment[][] | undefined {
    return this.resolvedSegments;
  }

  select(outputTree: unknown): Float64Array[] {
    const count = this.resolve(outputTree).length;
    const selected: Float64Array[] = new Array(count);
    for (let o = 0; o < count; o++) {
      const leaf = this.leaf(outputTree, o);
      if (!withinData(leaf)) this.checkExtent(leaf, this.resolved![o].info.path);
      const values = toFloat64(leaf); // the engine's own copy: apply may reuse or alias its arrays
      if (this.resolved![o].toFp32) this.roundToFp32(values, this.resolved![o].info.path);
      checkFinite(values, 0, values.length, this.resolved![o].info.path);
      selected[o] = values;
    }
    return selected;
  }

  /**
   * The selected outputs written one after the other into `target` from `offset` (a worker's batch
   * buffer), with the checks of `select`; returns how many values were written. Runs once per
   * evaluation in a worker: no allocation on the common path (contiguous FP64 outputs).
   */
  selectInto(outputTree: unknown, target: Float64Array, offset: number): number {
    return this.write(outputTree, target, offset, false);
  }

  /**
   * The selected outputs subtracted from `target` from `offset` (where a pair's first side was
   * written), with the same checks, in one pass: a pair's second side is never copied anywhere.
   */
  subtractFrom(outputTree: unknown, target: Float64Array, offset: number): number {
    return this.write(outputTree, target, offset, true);
  }

  private write(outputTree: unknown, target: Float64Array, offset: number, subtract: boolean): number {
    const count = this.resolve(outputTree).length;
    let at = offset;
    for (let o = 0; o < count; o++) {
      const leaf = this.leaf(outputTree, o);
      const { info, toFp32 } = this.resolved![o];
      const path = info.path;
      const data = leaf.data;
      if (data instanceof Float64Array && !toFp32 && isRowMajor(leaf.shape, leaf.stride)) {
        const size = leaf.size;
        const from = leaf.offset;
        if (!(from >= 0 && from + size <= data.length)) this.checkExtent(leaf, path); // row-major already: the bounds alone
        if (subtract) subtractChecked(data, from, size, target, at, path);
        else {
          // A loop beats subarray + set (an object each) for the few values outputs often have.
          if (size <= SMALL_COPY) for (let i = 0; i < size; i++) target[at + i] = data[from + i];
          else target.set(data.subarray(from, from + size), at);
          checkFinite(target, at, at + size, path);
        }
        at += size;
      } else {
        this.checkExtent(leaf, path);
        const values = toFloat64(leaf);
        if (toFp32) this.roundToFp32(values, path);
        checkFinite(values, 0, values.length, path);
        if (subtract) for (let i = 0; i < values.length; i++) target[at + i] -= values[i];
        else target.set(values, at);
        at += values.length;
      }
    }
    return at - offset;
  }

  /** The resolved outputs, resolving the paths on the first tree. */
  private resolve(outputTree: unknown): Resolved[] {
    if (this.resolved) {
      // A map key that appeared was left out of the differences, and positions matched to another evaluation's slipped.
      if (this.patternCounts) this.checkNoneAdded(outputTree);
      return this.resolved;
    }
    this.schema.checkDeclared(outputTree);
    const leaves = this.schema.resolveDifferentiable(outputTree, this.requested, this.field, "output", { by: "apply", code: this.faultCode, mayOmit: this.remote });
    // Every later tree is held to these shapes, and sizes and batches are planned from them: a shape
    // [NaN] made a worker pool's batch size NaN (every later job waited for good), [1.5] or [-1]
    // were read as data before anything refused them.
    for (const leaf of leaves) this.checkExtent(leaf.array as NdArray, leaf.path);
    this.resolved = leaves.map((leaf) => {
      const returned = dataTypeOfArray(leaf.array.data);
      const declared = this.schema.declaredDatatypeAt(leaf.segments) ?? returned;
      const info: OutputInfo = { path: leaf.path, shape: [...leaf.array.shape], datatype: declared };
      // float32 values of an output declared FP64 keep float32's rounding, which the precision model must know.
      if (returned === DataType.DATA_TYPE_FP32 && declared === DataType.DATA_TYPE_FP64) info.precision = returned;
      return {
        info,
        steps: leaf.segments.map(stepOf),
        // Compared per evaluation: a class is one load, where naming the datatype walks the table.
        dataClass: (leaf.array.data as object).constructor,
        toFp32: declared === DataType.DATA_TYPE_FP32 && returned !== DataType.DATA_TYPE_FP32,
      };
    });
    this.resolvedSegments = leaves.map((leaf) => leaf.segments);
    const patterns = this.patterns.filter((p) => isPattern(p));
    if (patterns.length > 0) this.patternCounts = patterns.map((pattern) => ({ pattern, count: countMatches(outputTree, pattern) }));
    return this.resolved;
  }

  /**
   * Refuses a tree in which a requested pattern selects a leaf the first tree did not have. Counts
   * suffice: every leaf of the first tree is checked to be there as it is read.
   */
  private checkNoneAdded(outputTree: unknown): void {
    for (const { pattern, count } of this.patternCounts!) {
      if (countMatches(outputTree, pattern) <= count) continue;
      const earlier = new Set(this.resolved!.map((r) => r.info.path));
      const added = expandPattern(outputTree, pattern).map(formatPath).find((path) => !earlier.has(path));
      if (added !== undefined) throw new TesseractError(this.faultCode, `apply returned output ${added} here, which an earlier evaluation did not return: ${PRESENCE_FIXED}`);
    }
  }

  /**
   * An output declared FP32 that apply returned in another datatype, in float32 as Apply answers it;
   * a finite value beyond float32's range is refused as Apply refuses it (castReturnedArray).
   */
  private roundToFp32(values: Float64Array, path: string): void {
    for (let i = 0; i < values.length; i++) {
      const rounded = Math.fround(values[i]);
      if (!Number.isFinite(rounded) && Number.isFinite(values[i])) {
        throw new TesseractError(this.faultCode, `apply returned output ${path} with ${values[i]} at flat index ${i} (float64), which its declared dtype float32 cannot hold`);
      }
      values[i] = rounded;
    }
  }

  /** Refuses a leaf whose shape, strides and offset reach outside its data (ndarrayExtentProblem). */
  private checkExtent(leaf: NdArray, path: string): void {
    const problem = ndarrayExtentProblem(leaf);
    if (problem) throw new TesseractError(this.faultCode, `apply returned output ${path} that ${problem}`);
  }

  /** Output o's leaf in `outputTree`, checked against the first tree's: a tensor of the same shape. */
  private leaf(outputTree: unknown, o: number): NdArray {
    const { info, steps, dataClass } = this.resolved![o];
    const leaf = leafAt(outputTree, steps);
    if (!isNdArray(leaf)) {
      const error = new TesseractError(this.faultCode, `apply returned no output ${info.path} here, which an earlier evaluation returned: ${PRESENCE_FIXED}`);
      // None here, there at the first evaluation: f(x) tells whose it is (Problem's failure).
      throw this.remote && leaf == null ? omitted(error, this.field, "output", info.path) : error;
    }
    const shape = (leaf as NdArray).shape;
    let same = shape.length === info.shape.length;
    for (let d = 0; same && d < shape.length; d++) same = shape[d] === info.shape[d];
    if (!same) throw new TesseractError(this.faultCode, `apply returned output ${info.path} with shape [${shape.join(", ")}] here, [${info.shape.join(", ")}] at an earlier evaluation: ${SHAPES_FIXED}`);
    // An output whose datatype changes (float64, then int64 or float32) was differenced as if it had not: wrong numbers, answered OK.
    if (((leaf as NdArray).data as object).constructor !== dataClass) {
      throw new TesseractError(this.faultCode, `apply returned output ${info.path} as ${dataTypeName(dataTypeOfArray((leaf as NdArray).data as never))} here, ${dataTypeName(info.datatype)} at an earlier evaluation: an output's datatype must not change between evaluations`);
    }
    return leaf as NdArray;
  }
}

/** Why an output whose shape changes between evaluations is refused (which evaluation is the odd one out, neither can tell). */
export const SHAPES_FIXED = "an output's shape must not depend on the values of the differentiated inputs (differences are taken element by element)";

/**
 * Refuses outputs of two evaluations that selectors of their own resolved (a cached f(x), another
 * worker's, inline's and the pool's) unless they are the same paths, in the same order, with the same
 * shapes and datatypes: values are combined by position. `here` and `earlier` name the two in messages.
 */
export function checkSameOutputs(outputs: readonly OutputInfo[], earlierOutputs: readonly OutputInfo[], code: Code, here = "here", earlier = "an earlier evaluation"): void {
  const fault = (message: string) => new TesseractError(code, `apply returned ${message}`);
  let o = 0;
  for (; o < outputs.length && o < earlierOutputs.length; o++) {
    const [out, first] = [outputs[o], earlierOutputs[o]];
    if (out.path !== first.path) break;
    if (out.shape.join() !== first.shape.join()) throw fault(`output ${out.path} with shape [${out.shape.join(", ")}] ${here}, [${first.shape.join(", ")}] at ${earlier}: ${SHAPES_FIXED}`);
    if (out.datatype !== first.datatype) throw fault(`output ${out.path} as ${dataTypeName(out.datatype)} ${here}, ${dataTypeName(first.datatype)} at ${earlier}: an output's datatype must not change between evaluations`);
  }
  if (o === outputs.length && o === earlierOutputs.length) return;
  const paths = new Set(outputs.map((out) => out.path));
  const earlierPaths = new Set(earlierOutputs.map((out) => out.path));
  const missing = earlierOutputs.find((out) => !paths.has(out.path));
  if (missing) throw fault(`no output ${missing.path} ${here}, which ${earlier} returned: ${PRESENCE_FIXED}`);
  const added = outputs.find((out) => !earlierPaths.has(out.path));
  if (added) throw fault(`output ${added.path} ${here}, which ${earlier} did not return: ${PRESENCE_FIXED}`);
  if (outputs.some((out, o) => out.path !== earlierOutputs[o].path)) {
    const list = (outs: readonly OutputInfo[]) => outs.map((out) => out.path).join(", ");
    throw fault(`outputs ${list(outputs)} in this order ${here}, ${list(earlierOutputs)} at ${earlier}: a map output's keys must come in the same order at every evaluation`);
  }
}

/** The property key a segment of a resolved (concrete) path steps through. */
function stepOf(s: Segment): string | number {
  if (s.kind === "index") return s.index;
  if (s.kind === "field") return s.name;
  if (s.kind === "key") return s.key;
  throw new Error("a resolved output path has no patterns");
}

/**
 * The value at `steps` in `tree`, own properties only, like getAtPath, but without its checks of the
 * path itself (made once, when the first tree resolved it): this runs per output per evaluation.
 */
function leafAt(tree: unknown, steps: Steps): unknown {
  let node = tree;
  for (let i = 0; i < steps.length; i++) {
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, steps[i])) return undefined;
    node = (node as Record<string | number, unknown>)[steps[i]];
  }
  return node;
}

/**
 * The common case at a glance (per evaluation): row-major, inside its data. Else ndarrayExtentProblem
 * looks closer (strides, shapes), off the hot path.
 */
function withinData(leaf: NdArray): boolean {
  const { offset, size } = leaf;
  return isRowMajor(leaf.shape, leaf.stride) && offset >= 0 && offset + size <= (leaf.data as { length: number }).length;
}

/** Outputs up to this many values are copied by a loop rather than by TypedArray.set. */
const SMALL_COPY = 32;

/** target[at + i] -= data[from + i] for i < size, refusing NaN and ±Inf among data's values as checkFinite does, in the same pass. */
function subtractChecked(data: Float64Array, from: number, size: number, target: Float64Array, at: number, path: string): void {
  if (!subtractAllFinite(data, from, size, target, at)) checkFinite(data, from, from + size, path);
}

/** Refuses NaN and ±Inf in values[start..end) of an output, naming the first. */
function checkFinite(values: Float64Array, start: number, end: number, path: string): void {
  if (allFinite(values, start, end)) return;
  let i = start;
  while (Number.isFinite(values[i])) i++;
  throw new TesseractError(Code.FAILED_PRECONDITION, `apply returned ${values[i]} in output ${path} at flat index ${i - start}`);
}
