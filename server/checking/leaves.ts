/** The input and output leaves a check compares: requested paths, or every differentiable one present. */
import { Code, invalidArgument, isTesseractError, TesseractError, thrownCause, thrownMessage } from "../../common/errors";
import { elementCount } from "../../common/tensor-codec";
import { omittedOutputError, type MessageSchema, type ResolvedLeaf, type ReturnedBy } from "../schema/schema";

/** An input or output tensor by its concrete path. */
export interface Leaf {
  path: string;
  shape: number[];
  size: number;
}

/** `requested`'s leaves in `tree`; none requested: every differentiable leaf there, and at least one. */
export function resolveLeaves(schema: MessageSchema, tree: unknown, requested: readonly string[] | undefined, field: string, side: "input" | "output", returnedBy?: ReturnedBy): ResolvedLeaf[] {
  const paths = requested?.length ? requested : schema.differentiablePaths(tree);
  if (paths.length === 0) {
    throw invalidArgument(`${field} is empty and the ${side}s hold no differentiable tensor; differentiable ${side} paths: ${schema.differentiablePatternNames().join(", ") || "(none)"}`);
  }
  return schema.resolveDifferentiable(tree, paths, field, side, returnedBy);
}

/** The output leaves of apply's result at the unperturbed inputs. */
export function outputLeaves(schema: MessageSchema, outputs: unknown, requested: readonly string[] | undefined): Leaf[] {
  try {
    return resolveLeaves(schema, outputs, requested, "output_paths", "output", { by: "apply", code: Code.INTERNAL }).map((o) => ({ path: o.path, shape: [...o.array.shape], size: elementCount(o.array.shape) }));
  } catch (e) {
    // These are f(x)'s outputs: a requested one they leave out is the request's mistake.
    if (isTesseractError(e)) throw omittedOutputError(e) ?? e;
    // Reading them ran the Tesseract's code (a getter), which threw: its failure, as apply's own.
    throw new TesseractError(Code.UNKNOWN, `apply failed: ${thrownMessage(e)}`, { cause: thrownCause(e) });
  }
}
