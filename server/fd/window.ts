/**
 * Bounded concurrency for the engine: runs task(0..count-1) with at most `window()` in flight and
 * yields results as they complete (any order). The window is read each time a task may start, so an
 * evaluator can widen it once it knows how costly apply is. Nothing new starts while the consumer
 * is not pulling: a slow stream reader holds the engine back. Settled tasks queue up in order of
 * completion (no Promise.race over every task in flight, which costs the whole window per result).
 */
export async function* completed<T>(count: number, window: () => number, task: (i: number) => Promise<T>): AsyncGenerator<T> {
  type Settled = { ok: true; value: T } | { ok: false; error: unknown };
  let settled: Settled[] = [];
  let head = 0; // settled[head..] are still to be yielded
  let wake: (() => void) | undefined;
  let running = 0;
  let next = 0;
  const finish = (outcome: Settled) => {
    running--;
    settled.push(outcome);
    wake?.();
  };
  while (next < count || running > 0 || head < settled.length) {
    // One at a time (inline evaluation): no bookkeeping, one task after the other.
    if (running === 0 && head === settled.length && window() <= 1) {
      yield await task(next++);
      continue;
    }
    while (next < count && running < Math.max(1, window())) {
      running++;
      task(next++).then(
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
    // Tasks still running after an error or an early return settle on their own; their results are
    // dropped. The AbortSignal the caller holds is what stops queued evaluations.
    const outcome = settled[head++];
    if (!outcome.ok) throw outcome.error;
    yield outcome.value;
  }
}
