/**
 * Picks the requested output leaves out of each apply result as flat FP64 arrays. The paths are
 * resolved against the first result (map keys are only known then); every later result must have
 * the same leaves with the same shapes.
 */
import type { NdArray } from "ndarray";
import { Code, TesseractError } from "../../common/errors";
import type { OutputInfo } from "./evaluator";
import type { MessageSchema } from "../schema/schema";
import { getAtPath, type Segment } from "../schema/paths";
import { dataTypeOfArray, isNdArray, isRowMajor, toFloat64 } from "../../common/tensor-codec";

export class OutputSelector {
  private resolved: { info: OutputInfo; segments: Segment[] }[] | undefined;
  /** The resolved paths alone, kept so that reading them per evaluation allocates nothing. */
  private resolvedSegments: Segment[][] | undefined;

  constructor(
    private readonly schema: MessageSchema,
    private readonly requested: readonly string[],
    private readonly field: string,
  ) {
    schema.checkDifferentiable(requested, field, "output");
  }

  get outputs(): OutputInfo[] | undefined {
    return this.resolved?.map((r) => r.info);
  }

  /** The selected leaves' paths in the outputs tree, once the first tree resolved them. */
  get segments(): readonly Segment[][] | undefined {
    return this.resolvedSegments;
  }

  select(outputTree: unknown): Float64Array[] {
    return this.leaves(outputTree).map((leaf, o) => {
      const values = toFloat64(leaf); // the engine's own copy: apply may reuse or alias its arrays
      checkFinite(values, 0, values.length, this.resolved![o].info.path);
      return values;
    });
  }

  /**
   * The selected outputs written one after the other into `target` from `offset` (a worker's batch
   * buffer), with the checks of `select`; returns how many values were written.
   */
  selectInto(outputTree: unknown, target: Float64Array, offset: number): number {
    let at = offset;
    this.leaves(outputTree).forEach((leaf, o) => {
      const start = at;
      if (leaf.data instanceof Float64Array && isRowMajor(leaf.shape, leaf.stride)) {
        target.set(leaf.data.subarray(leaf.offset, leaf.offset + leaf.size), at);
        at += leaf.size;
      } else {
        const values = toFloat64(leaf);
        target.set(values, at);
        at += values.length;
      }
      checkFinite(target, start, at, this.resolved![o].info.path);
    });
    return at - offset;
  }

  /** The requested output leaves of `outputTree`, resolved on the first tree, checked against it after. */
  private leaves(outputTree: unknown): NdArray[] {
    if (!this.resolved) {
      this.resolved = this.schema.resolveDifferentiable(outputTree, this.requested, this.field, "output").map((leaf) => ({
        info: { path: leaf.path, shape: [...leaf.array.shape], datatype: dataTypeOfArray(leaf.array.data) },
        segments: leaf.segments,
      }));
      this.resolvedSegments = this.resolved.map((r) => r.segments);
    }
    return this.resolved.map(({ info, segments }) => {
      const leaf = getAtPath(outputTree, segments);
      if (!isNdArray(leaf)) throw new TesseractError(Code.INTERNAL, `apply returned no tensor at output ${info.path}`);
      const shape = (leaf as NdArray).shape;
      if (shape.length !== info.shape.length || shape.some((d, i) => d !== info.shape[i])) {
        throw new TesseractError(Code.INTERNAL, `apply returned output ${info.path} with shape [${shape.join(", ")}], earlier [${info.shape.join(", ")}]`);
      }
      return leaf as NdArray;
    });
  }
}

/** Refuses NaN and ±Inf in values[start..end) of an output, naming the first. */
function checkFinite(values: Float64Array, start: number, end: number, path: string): void {
  // x - x is 0 exactly for finite x, NaN for NaN and ±Inf: one cheap pass.
  let check = 0;
  for (let i = start; i < end; i++) check += values[i] - values[i];
  if (check === 0) return;
  let i = start;
  while (Number.isFinite(values[i])) i++;
  throw new TesseractError(Code.FAILED_PRECONDITION, `apply returned ${values[i]} in output ${path} at flat index ${i - start}`);
}
