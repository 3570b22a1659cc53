/**
 * Evaluation through an asynchronous apply that runs elsewhere and may run many times at once (a
 * tesseract-core runtime over HTTP): each evaluation builds its own inputs, copy-on-write — the base
 * tree with the perturbed leaves replaced — so evaluations in flight never share a perturbation, and
 * passes an AbortSignal that gives up on the evaluation in flight (its HTTP request: see
 * bridge/runtime-replicas.ts) when the request is cancelled or the evaluation overruns the
 * per-evaluation timeout. A remote apply that prepares a
 * job's inputs once (`forJob`: a tesseract-core runtime's encoded body) is given each evaluation's
 * perturbation instead of a tree.
 */
import ndarray from "ndarray";
import { withLeaf, type Segment } from "../../common/paths";
import type { OutputSelector } from "./outputs";
import type { InputLeaf } from "./input-leaf";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";
import { withAbortingTimeout } from "./timeout";

/** Evaluations in flight per request, on replicas or a remote apply, unless `--concurrency` says otherwise. */
export const DEFAULT_REPLICA_CONCURRENCY = 16;

/** A differentiated leaf's row-major storage. */
export type LeafData = Float64Array | Float32Array;

/**
 * One job's evaluations, each given by its perturbation of the job's inputs, which it reads before
 * it returns (the engine may reuse the arrays). With `only` (the output leaves the job
 * differentiates, once known), the outputs tree may hold just those.
 */
export type JobApply = (perturbation: Perturbation, signal?: AbortSignal, only?: readonly Segment[][], timeout?: RequestTimeout) => Promise<unknown>;

/** The per-evaluation timeout, for a remote apply that times each of its requests itself (RemoteApply.timesRequests). */
export interface RequestTimeout {
  ms: number;
  /** Which evaluation it is, for messages (` (the evaluation perturbing mesh.points[4])`). */
  where: string;
}

export interface RemoteApply {
  /** Inputs tree in, outputs tree out; `signal` aborts it. */
  apply(inputs: Record<string, unknown>, signal?: AbortSignal, timeout?: RequestTimeout): Promise<unknown>;
  /**
   * Whether the apply takes the per-evaluation timeout (`timeout`) and applies it to each request
   * it sends, so that one past it on a runtime that hangs can go to another; else the timeout is
   * put over the whole evaluation.
   */
  timesRequests?: boolean;
  /**
   * Waits for a request slot (the runtimes take so many at once), before the evaluation's timeout
   * starts; resolves to its release. Waiting owners (a job; by default the Apply calls) take turns.
   */
  slot?(signal?: AbortSignal, owner?: object): Promise<() => void>;
  /** Evaluations of one job's inputs and leaves, for an apply that prepares what they share. */
  forJob?(inputs: Record<string, unknown>, leaves: readonly InputLeaf[]): JobApply;
  /** Whether outputs computed now are known to be the runtimes' from now on (evaluation-cache.ts); absent: always. */
  witnessed?(): boolean;
}

/**
 * `work` under the per-evaluation timeout of `ms` (0: none): handed to a remote apply that times each
 * of its requests (RemoteApply.timesRequests), else over the whole of it (withAbortingTimeout).
 */
export function underTimeout<T>(apply: RemoteApply, ms: number, signal: AbortSignal | undefined, where: string, work: (signal?: AbortSignal, timeout?: RequestTimeout) => Promise<T>): Promise<T> {
  if (apply.timesRequests && ms > 0) return work(signal, { ms, where });
  return withAbortingTimeout(ms, signal, (aborting) => work(aborting), where);
}

/** `work` once `apply` has a slot for it (so its timeout starts then: waiting is not counted), the slot given back after. */
export async function inSlot<T>(apply: RemoteApply, signal: AbortSignal | undefined, work: () => Promise<T>, owner?: object): Promise<T> {
  const release = await apply.slot?.(signal, owner);
  try {
    return await work();
  } finally {
    release?.();
  }
}

/** Each leaf's changed copy of its data (the base is not touched); undefined for leaves left alone. */
export function perturbedData(leaves: readonly InputLeaf[], perturbation: Perturbation): (LeafData | undefined)[] {
  const perturbed: (LeafData | undefined)[] = new Array(leaves.length);
  for (const change of perturbation) {
    const data = leaves[change.leaf].data.slice();
    if ("indices" in change) change.indices.forEach((i, k) => (data[i] = change.points[k]));
    else if ("values" in change) data.set(change.values);
    else data[change.index] = change.value;
    perturbed[change.leaf] = data;
  }
  return perturbed;
}

/** The base inputs with each perturbed leaf replaced by a changed copy (the base is not touched). */
export function perturbedTree(inputs: Record<string, unknown>, leaves: readonly InputLeaf[], perturbation: Perturbation): Record<string, unknown> {
  let tree = inputs;
  perturbedData(leaves, perturbation).forEach((data, i) => {
    if (data) tree = withLeaf(tree, leaves[i].segments, ndarray(data, leaves[i].shape));
  });
  return tree;
}

export class ConcurrentEvaluator implements Evaluator {
  calls = 0;
  private readonly jobApply?: JobApply;

  constructor(
    private readonly apply: RemoteApply,
    private readonly inputs: Record<string, unknown>,
    private readonly leaves: readonly InputLeaf[],
    private readonly selector: OutputSelector,
    /** Evaluations in flight at once. */
    readonly concurrency: number,
    private readonly signal?: AbortSignal,
    private readonly timeoutMs = 0,
  ) {
    this.jobApply = apply.forJob?.(inputs, leaves);
  }

  get outputs(): OutputInfo[] | undefined {
    return this.selector.outputs;
  }

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    const evaluation = this.evaluation(perturbation);
    this.calls++;
    const where = this.timeoutMs > 0 ? ` (the evaluation ${this.describe(perturbation)})` : ""; // only a timeout names it
    // This job's evaluations wait their turn as one owner among the calls waiting for a runtime.
    return this.selector.select(await inSlot(this.apply, this.signal, () => underTimeout(this.apply, this.timeoutMs, this.signal, where, evaluation), this));
  }

  /** The work of one evaluation, its inputs built now. */
  private evaluation(perturbation: Perturbation): (signal?: AbortSignal, timeout?: RequestTimeout) => Promise<unknown> {
    const jobApply = this.jobApply;
    if (jobApply) {
      const only = this.selector.segments;
      return (signal, timeout) => jobApply(perturbation, signal, only, timeout);
    }
    const tree = perturbedTree(this.inputs, this.leaves, perturbation);
    return (signal, timeout) => this.apply.apply(tree, signal, timeout);
  }

  /** Which evaluation this is, for messages: `at the base inputs`, `perturbing mesh.points[4]`, … */
  private describe(perturbation: Perturbation): string {
    if (perturbation.length === 0) return "at the base inputs";
    const changes = perturbation.map((c) => ("index" in c ? `${this.leaves[c.leaf].path}[${c.index}]` : this.leaves[c.leaf].path));
    return `perturbing ${changes.slice(0, 3).join(", ")}${changes.length > 3 ? ", …" : ""}`;
  }
}
