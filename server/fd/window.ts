/**
 * Bounded concurrency for the engine: runs task(0..count-1) with at most `window()` in flight and
 * yields results as they complete (any order). The window is read each time a task may start, so an
 * evaluator can widen it once it knows how costly apply is. Nothing new starts while the consumer
 * is not pulling: a slow stream reader holds the engine back.
 */
export async function* completed<T>(count: number, window: () => number, task: (i: number) => Promise<T>): AsyncGenerator<T> {
  type Settled = { id: number; ok: true; value: T } | { id: number; ok: false; error: unknown };
  const running = new Map<number, Promise<Settled>>();
  let next = 0;
  try {
    while (next < count || running.size > 0) {
      // One at a time (inline evaluation): no bookkeeping, one task after the other.
      if (running.size === 0 && window() <= 1) {
        yield await task(next++);
        continue;
      }
      while (next < count && running.size < Math.max(1, window())) {
        const id = next++;
        running.set(
          id,
          task(id).then(
            (value): Settled => ({ id, ok: true, value }),
            (error): Settled => ({ id, ok: false, error }),
          ),
        );
      }
      const settled = await Promise.race(running.values());
      running.delete(settled.id);
      if (!settled.ok) throw settled.error;
      yield settled.value;
    }
  } finally {
    // Tasks still running (after an error or an early return) settle on their own; their results
    // are dropped. The AbortSignal the caller holds is what stops queued evaluations.
    running.clear();
  }
}
