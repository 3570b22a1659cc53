/**
 * Evaluation through an asynchronous apply that runs elsewhere and may run many times at once (a
 * tesseract-core runtime over HTTP): each evaluation builds its own inputs, copy-on-write — the base
 * tree with the perturbed leaves replaced — so evaluations in flight never share a perturbation, and
 * passes an AbortSignal that aborts the evaluation in flight (its HTTP request) when the request is
 * cancelled or the evaluation overruns the per-evaluation timeout.
 */
import ndarray from "ndarray";
import { withLeaf } from "../schema/paths";
import type { OutputSelector } from "./outputs";
import type { InputLeaf } from "./input-leaf";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";
import { withAbortingTimeout } from "./timeout";

/** Inputs tree in, outputs tree out; `signal` aborts it. */
export type RemoteApply = (inputs: Record<string, unknown>, signal?: AbortSignal) => Promise<unknown>;

/** The base inputs with each perturbed leaf replaced by a changed copy (the base is not touched). */
export function perturbedTree(inputs: Record<string, unknown>, leaves: readonly InputLeaf[], perturbation: Perturbation): Record<string, unknown> {
  let tree = inputs;
  for (const change of perturbation) {
    const leaf = leaves[change.leaf];
    const data = leaf.data.slice();
    if ("indices" in change) change.indices.forEach((i, k) => (data[i] = change.points[k]));
    else if ("values" in change) data.set(change.values);
    else data[change.index] = change.value;
    tree = withLeaf(tree, leaf.segments, ndarray(data, leaf.shape));
  }
  return tree;
}

export class ConcurrentEvaluator implements Evaluator {
  calls = 0;

  constructor(
    private readonly apply: RemoteApply,
    private readonly inputs: Record<string, unknown>,
    private readonly leaves: readonly InputLeaf[],
    private readonly selector: OutputSelector,
    /** Evaluations in flight at once. */
    readonly concurrency: number,
    private readonly signal?: AbortSignal,
    private readonly timeoutMs = 0,
  ) {}

  get outputs(): OutputInfo[] | undefined {
    return this.selector.outputs;
  }

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    const tree = perturbedTree(this.inputs, this.leaves, perturbation);
    this.calls++;
    const where = ` (the evaluation ${this.describe(perturbation)})`;
    return this.selector.select(await withAbortingTimeout(this.timeoutMs, this.signal, (signal) => this.apply(tree, signal), where));
  }

  /** Which evaluation this is, for messages: `at the base inputs`, `perturbing mesh.points[4]`, … */
  private describe(perturbation: Perturbation): string {
    if (perturbation.length === 0) return "at the base inputs";
    const changes = perturbation.map((c) => ("index" in c ? `${this.leaves[c.leaf].path}[${c.index}]` : this.leaves[c.leaf].path));
    return `perturbing ${changes.slice(0, 3).join(", ")}${changes.length > 3 ? ", …" : ""}`;
  }
}
