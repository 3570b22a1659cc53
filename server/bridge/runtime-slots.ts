/**
 * Requests in flight to a Tesseract's runtimes, all calls together: at most `--concurrency` per
 * runtime (a slow or single-threaded solver had 96 requests at once from six Jacobians, 40 from 40
 * Applies). An evaluation takes a slot before its per-evaluation timeout starts, so that time spent
 * waiting for one is not counted against it (three Jacobians of 1 s applies failed their 2.5 s
 * timeout waiting their turn); waiting callers are served in order, and one cancelled while it waits
 * leaves the queue without reaching a runtime.
 */
export class RuntimeSlots {
  private busy = 0;
  private readonly queue: { resolve: () => void }[] = [];

  /** `capacity()`: slots now (per runtime × runtimes, as names resolve to more or fewer). */
  constructor(private readonly capacity: () => number) {}

  /** Waits for a slot; resolves to its release (call it once). Rejects when `signal` aborts while it waits. */
  async take(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.busy < this.capacity() && this.queue.length === 0) this.busy++;
    else {
      // Woken by `next`, which counts the slot it hands over.
      await new Promise<void>((resolve, reject) => {
        const entry = {
          resolve: () => {
            signal?.removeEventListener("abort", leave);
            resolve();
          },
        };
        const leave = () => {
          const at = this.queue.indexOf(entry);
          if (at >= 0) this.queue.splice(at, 1);
          reject(signal!.reason);
        };
        this.queue.push(entry);
        signal?.addEventListener("abort", leave, { once: true });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.busy--;
      this.next();
    };
  }

  /** Hands free slots to the longest waiting. */
  private next(): void {
    while (this.queue.length > 0 && this.busy < this.capacity()) {
      this.busy++;
      this.queue.shift()!.resolve();
    }
  }
}
