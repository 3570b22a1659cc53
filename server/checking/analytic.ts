/** The Tesseract's analytic Jacobian: required, called once, its entries checked against the shapes. */
import { Code, isTesseractError, TesseractError, thrownCause, thrownMessage } from "../../common/errors";
import { isNdArray, toFloat64 } from "../../common/tensor-codec";
import type { AnalyticJacobian } from "../tesseract";
import type { Leaf } from "./leaves";

/** What the check needs of a Tesseract's definition. */
export interface AnalyticDefinition {
  readonly name: string;
  readonly gradients?: { jacobian?: AnalyticJacobian<any> };
}

/** The Tesseract's analytic Jacobian, or UNIMPLEMENTED: there is nothing to check without one. */
export function requireAnalyticJacobian(source: { readonly definition: AnalyticDefinition }): AnalyticJacobian<any> {
  const jacobian = source.definition.gradients?.jacobian;
  if (!jacobian) {
    throw new TesseractError(
      Code.UNIMPLEMENTED,
      `Tesseract "${source.definition.name}" has no analytic gradients (a TypeScript Tesseract declares them as gradients.jacobian; a tesseract-core runtime's own gradient endpoints are not used), so there is nothing to check against finite differences; its gradients here are finite differences already`,
    );
  }
  return jacobian;
}

/**
 * Refuses (RESOURCE_EXHAUSTED) a check whose analytic Jacobian, every output × input pair in FP64,
 * would take more than `maxBytes`, before the Tesseract is asked for it: its author's function builds
 * it whole, and a request of two 20 000-element vectors had it allocate 6.4 GB (and loop for hours).
 */
export function checkAnalyticSize(outputs: readonly { size: number }[], leaves: readonly { size: number }[], maxBytes: number | undefined): void {
  if (maxBytes === undefined) return;
  const values = outputs.reduce((n, o) => n + o.size, 0) * leaves.reduce((n, l) => n + l.size, 0);
  if (8 * values <= maxBytes) return;
  throw new TesseractError(
    Code.RESOURCE_EXHAUSTED,
    `checking these paths takes the analytic Jacobian whole: ${values} FP64 values (${8 * values} bytes), over the ${maxBytes}-byte message limit (--max-message-bytes); check fewer or smaller paths (input_paths, output_paths)`,
  );
}

/** An entry of the analytic Jacobian, flat [output, input] row-major, or why it cannot be used. */
export type AnalyticEntry = (out: Leaf, leaf: Leaf) => Float64Array | string;

/** Calls the analytic Jacobian once for every pair; a throw that is not a TesseractError is UNKNOWN. */
export function analyticEntries(jacobian: AnalyticJacobian<any>, inputs: Record<string, unknown>, leaves: readonly Leaf[], outputs: readonly Leaf[]): AnalyticEntry {
  let result: Record<string, Record<string, unknown> | undefined>;
  try {
    result = jacobian(inputs, leaves.map((l) => l.path), outputs.map((o) => o.path)) ?? {};
  } catch (e) {
    if (isTesseractError(e)) throw e;
    throw new TesseractError(Code.UNKNOWN, `the analytic jacobian failed: ${thrownMessage(e)}`, { cause: thrownCause(e) });
  }
  const entries = new Map<string, Map<string, Float64Array | string>>();
  for (const out of outputs) {
    entries.set(out.path, new Map(leaves.map((leaf) => [leaf.path, usable(result[out.path]?.[leaf.path], out, leaf)])));
  }
  return (out, leaf) => entries.get(out.path)!.get(leaf.path)!;
}

function usable(value: unknown, out: Leaf, leaf: Leaf): Float64Array | string {
  const expected = [...out.shape, ...leaf.shape];
  const entry = `the analytic jacobian's entry d ${out.path} / d ${leaf.path}`;
  if (value === undefined || value === null) return `the analytic jacobian has no entry [${JSON.stringify(out.path)}][${JSON.stringify(leaf.path)}]`;
  // A plain list was reported as no entry at all.
  if (!isNdArray(value)) return `${entry} is ${Array.isArray(value) ? "a plain list" : typeof value}, expected an ndarray of shape [${expected.join(", ")}] (output shape, then input shape)`;
  if (value.shape.length !== expected.length || value.shape.some((d, i) => d !== expected[i])) {
    return `${entry} has shape [${value.shape.join(", ")}], expected [${expected.join(", ")}] (output shape, then input shape)`;
  }
  // Data shorter than its shape read as undefined, 0 or NaN, compared as if they were values.
  const values = toFloat64(value);
  if (values.length !== value.size || values.some((v) => !Number.isFinite(v))) {
    const at = values.findIndex((v) => !Number.isFinite(v));
    return values.length !== value.size ? `${entry} has ${values.length} values for its shape's ${value.size}` : `${entry} holds ${values[at]} at flat index ${at}`;
  }
  return values;
}
