/**
 * Bounded concurrency for the engine: runs task() while `more()`, with at most `window()` in flight, and
 * yields results in batches as they complete (any order): each pull takes everything that settled
 * since the last one, so a worker's batch of evaluations comes out as one batch of results rather
 * than one await per result. The window is read each time a task may start, so an evaluator can
 * widen it once it knows how costly apply is. Nothing new starts while the consumer is not
 * pulling: a slow stream reader holds the engine back. Settled tasks queue up in order of
 * completion (no Promise.race over every task in flight, which costs the whole window per result).
 */
export async function* completed<T>(more: () => boolean, window: () => number, task: () => Promise<T>, paced = false): AsyncGenerator<T[]> {
  type Settled = { ok: true; value: T } | { ok: false; error: unknown };
  let settled: Settled[] = [];
  let head = 0; // settled[head..] are still to be yielded
  let wake: (() => void) | undefined;
  let running = 0;
  const pace = paced ? new ConsumerPace() : undefined;
  const finish = (outcome: Settled, started: number) => {
    running--;
    settled.push(outcome);
    pace?.settled(performance.now() - started);
    wake?.();
  };
  while (more() || running > 0 || head < settled.length) {
    // One at a time (inline evaluation): no bookkeeping, one task after the other.
    if (running === 0 && head === settled.length && window() <= 1) {
      yield [await task()];
      continue;
    }
    const limit = pace ? pace.limit(window()) : window();
    while (more() && running < Math.max(1, limit)) {
      running++;
      const started = pace ? performance.now() : 0;
      task().then(
        (value) => finish({ ok: true, value }, started),
        (error) => finish({ ok: false, error }, started),
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
    const away = performance.now();
    yield batch;
    pace?.consumed(performance.now() - away, batch.length);
  }
}

/**
 * Tasks in flight for a consumer that sets the pace (a stream's reader, and the thread writing to
 * it): as many as have a result ready each time it comes back for more, not the whole window. A
 * dense heat stream's writer takes about as long per result as a worker takes to make it, so the
 * window's 90 tasks kept every thread of a 15-thread pool started, each with its heap and dead
 * outputs (600 MB), for the pace of two.
 *
 * The most it keeps out is one more than take the quickest recent task's time (start to result) at
 * the consumer's pace: a task that waited for a thread still starting was slow for that, and more
 * tasks would only start more threads. It starts at two, drops to that most at once, and grows by one
 * at a time, once an epoch (as many results as tasks, at least EPOCH_RESULTS) has been taken since
 * the last change; a growth that did not raise the results taken per millisecond by GAIN is undone,
 * and none is tried for HOLD_EPOCHS. Task times alone kept growing it where the threads share the
 * cores with the consumer (each thread more makes every task slower): 16 threads on two cores sent
 * 13 tasks out and started 13 threads for the pace of three.
 */
export class ConsumerPace {
  /** Tasks in flight, never fewer than FEWEST_PACED. */
  private tasks = FEWEST_PACED;
  private readonly latencies = new Float64Array(RECENT_TASKS).fill(Infinity);
  private settledTasks = 0;
  /** The consumer's time away and results taken, recent ones weighing more (its pace is their ratio). */
  private awayMs = 0;
  private results = 0;
  /** The epoch under way: when it began, and the results taken in it. */
  private epochStart: number;
  private taken = 0;
  /** The rate (results a millisecond) of the epoch before the last growth, until the epoch after it is judged. */
  private rateBeforeGrowth?: number;
  /** Epochs left before another growth is tried. */
  private hold = 0;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.epochStart = now();
  }

  /** A task took `ms` from its start to its result. */
  settled(ms: number): void {
    this.latencies[this.settledTasks++ % RECENT_TASKS] = ms;
  }

  /**
   * The consumer took `ms` over `results` results before it came back for more. Its pace is a ratio
   * of sums, not an average of ratios: a writer's results go out at once until the transport's
   * buffer is full, then one waits for all of them (an average of the ratios read 0.2 ms a result
   * where the stream took 2.6).
   */
  consumed(ms: number, results: number): void {
    this.taken += results;
    this.awayMs = PACE_DECAY * this.awayMs + ms;
    this.results = PACE_DECAY * this.results + results;
  }

  /** The tasks to keep in flight, at most `window`. */
  limit(window: number): number {
    if (this.results > 0 && this.settledTasks >= MIN_TIMED_TASKS) {
      const consumerMs = Math.max(this.awayMs / this.results, MIN_CONSUMER_MS);
      const most = Math.ceil(Math.min(...this.latencies) / consumerMs) + 1;
      if (most < this.tasks) this.tasks = Math.max(FEWEST_PACED, most);
      if (this.taken >= Math.max(this.tasks, EPOCH_RESULTS)) this.endEpoch(most);
    }
    return Math.max(1, Math.min(window, this.tasks));
  }

  private endEpoch(most: number): void {
    const now = this.now();
    const rate = this.taken / Math.max(now - this.epochStart, MIN_CONSUMER_MS);
    [this.epochStart, this.taken] = [now, 0];
    const before = this.rateBeforeGrowth;
    this.rateBeforeGrowth = undefined;
    if (before !== undefined && rate < GAIN * before) {
      this.tasks = Math.max(FEWEST_PACED, this.tasks - 1);
      this.hold = HOLD_EPOCHS;
    } else if (this.hold > 0) this.hold--;
    else if (most > this.tasks) {
      this.tasks++;
      this.rateBeforeGrowth = rate;
    }
  }
}
/** Tasks timed for their quickest time, and timed before it counts; a floor on the consumer's time per result; the weight of its past. */
const RECENT_TASKS = 16;
const PACE_DECAY = 0.95;
const MIN_TIMED_TASKS = 4;
const MIN_CONSUMER_MS = 1e-3;
/**
 * Tasks a paced consumer keeps out at least: one running, one waiting. Four (two workers' worth)
 * peaked at 510-520 MB where two peaked at 230-310 (dense heat stream, 15 threads).
 */
const FEWEST_PACED = 2;
/** Results an epoch takes at least; the gain in rate a growth must bring; epochs without growth after one that brought none. */
const EPOCH_RESULTS = 8;
const GAIN = 1.05;
const HOLD_EPOCHS = 16;

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
