/**
 * Runs apply in the calling thread. Perturb-and-restore: the changed elements of the base inputs are
 * set in place, apply runs, the outputs are copied out, and the elements are put back; nothing else
 * is copied, so an evaluation costs what apply costs. One evaluation at a time: overlapping calls
 * wait their turn, since two perturbations of the same inputs cannot coexist.
 */
import type { OutputSelector } from "../fd/outputs";
import type { InputLeaf } from "../fd/problem";
import type { Evaluator, OutputInfo, Perturbation } from "./evaluator";

export class InlineEvaluator implements Evaluator {
  calls = 0;
  readonly concurrency = 1;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly apply: (inputs: unknown) => unknown,
    private readonly inputs: unknown,
    private readonly leaves: readonly InputLeaf[],
    private readonly selector: OutputSelector,
  ) {}

  get outputs(): OutputInfo[] | undefined {
    return this.selector.outputs;
  }

  evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    const result = this.turn.then(() => this.run(perturbation));
    this.turn = result.catch(() => undefined);
    return result;
  }

  private async run(perturbation: Perturbation): Promise<Float64Array[]> {
    const saved = perturbation.map((change) => {
      const data = this.leaves[change.leaf].data;
      if ("values" in change) {
        const before = data.slice();
        data.set(change.values);
        return () => data.set(before);
      }
      const before = data[change.index];
      data[change.index] = change.value;
      return () => (data[change.index] = before);
    });
    try {
      this.calls++;
      // Outputs are copied out before restoring: apply may return views of its inputs.
      return this.selector.select(await this.apply(this.inputs));
    } finally {
      for (const restore of saved) restore();
    }
  }
}
