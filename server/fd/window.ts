/**
 * Bounded concurrency for the engine: runs task() while `more()`, with at most `window()` in flight, and
 * yields results in batches as they complete (any order): each pull takes everything that settled
 * since the last one, so a worker's batch of evaluations comes out as one batch of results rather
 * than one await per result. The window is read each time a task may start, so an evaluator can
 * widen it once it knows how costly apply is. Nothing new starts while the consumer is not
 * pulling: a slow stream reader holds the engine back. Settled tasks queue up in order of
 * completion (no Promise.race over every task in flight, which costs the whole window per result).
 */
export async function* completed<T>(more: () => boolean, window: () => number, task: () => Promise<T>): AsyncGenerator<T[]> {
  type Settled = { ok: true; value: T } | { ok: false; error: unknown };
  let settled: Settled[] = [];
  let head = 0; // settled[head..] are still to be yielded
  let wake: (() => void) | undefined;
  let running = 0;
  const finish = (outcome: Settled) => {
    running--;
    settled.push(outcome);
    wake?.();
  };
  while (more() || running > 0 || head < settled.length) {
    // One at a time (inline evaluation): no bookkeeping, one task after the other.
    if (running === 0 && head === settled.length && window() <= 1) {
      yield [await task()];
      continue;
    }
    while (more() && running < Math.max(1, window())) {
      running++;
      task().then(
        (value) => finish({ ok: true, value }),
        (error) => finish({ ok: false, error }),
      );
    }
    if (head === settled.length) {
      settled = [];
      head = 0;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    // What settled, up to a failure: that is thrown once the results before it are passed on. Tasks
    // still running after an error or an early return settle on their own; their results are
    // dropped. The AbortSignal the caller holds is what stops queued evaluations.
    const batch: T[] = [];
    for (; head < settled.length; head++) {
      const outcome = settled[head];
      if (!outcome.ok) {
        if (batch.length === 0) throw outcome.error;
        break;
      }
      batch.push(outcome.value);
    }
    yield batch;
  }
}

/**
 * Chunks of `count` items for `completed`: each sized by `size()` as it starts, let out while the
 * evaluations of those in flight (`evaluationsPerItem` an item) are fewer than `capacity()`. It
 * counts evaluations, not chunks, because sizes change from chunk to chunk (a pool's task size
 * follows its measured costs): a window of chunks computed for the small ones let out as many
 * large ones, past the evaluator's bound on results in flight.
 */
export class ChunkWindow {
  private next = 0;
  private itemsOut = 0;
  private chunksOut = 0;

  constructor(
    private readonly count: number,
    private readonly evaluationsPerItem: number,
    private readonly size: () => number,
    private readonly capacity: () => number,
  ) {}

  readonly more = (): boolean => this.next < this.count;

  /** For `completed`: the chunks out, and as many more of the next size as the room left takes (the last one may overfill it). */
  readonly window = (): number => {
    const room = this.capacity() - this.itemsOut * this.evaluationsPerItem;
    return this.chunksOut + Math.max(0, Math.ceil(room / (this.size() * this.evaluationsPerItem)));
  };

  /** `task` on the next chunk of items [from, to), counted out while it runs. */
  async take<T>(task: (from: number, to: number) => Promise<T>): Promise<T> {
    const from = this.next;
    const to = (this.next = Math.min(this.count, from + this.size()));
    this.itemsOut += to - from;
    this.chunksOut++;
    try {
      return await task(from, to);
    } finally {
      this.itemsOut -= to - from;
      this.chunksOut--;
    }
  }
}
