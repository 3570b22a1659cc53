/**
 * Requests in flight to a Tesseract's runtimes, all calls together: at most `--concurrency` per
 * runtime (a slow or single-threaded solver had 96 requests at once from six Jacobians, 40 from 40
 * Applies). An evaluation takes a slot before its per-evaluation timeout starts, so that time spent
 * waiting for one is not counted against it (three Jacobians of 1 s applies failed their 2.5 s
 * timeout waiting their turn); one cancelled while it waits leaves the queue without reaching a
 * runtime.
 *
 * Waiting callers take turns by owner: each gradient job is one, the Apply calls together another,
 * and a free slot goes to the waiting owner served longest ago (each owner's own callers in order).
 * In one queue, a storm of Applies starved a Jacobian (n = 6: 43 s under 8 Applies a second against
 * a runtime that served 4), as a big job did every smaller one behind it. (Turns by the order of
 * arrival were not enough: a job asks for its next evaluation only once one is back, and so always
 * came in behind the Applies.) Apply calls waiting are bounded (WAITING_APPLIES_PER_SLOT a slot):
 * each holds its inputs, and past what the runtimes can work off soon the caller is better told to
 * retry.
 */
import { Code, TesseractError } from "../../common/errors";
import { plural } from "../../common/plural";

/** The owner of Apply calls' requests (`take`'s default). */
export const APPLY_CALLS = Object.freeze({ owner: "Apply calls" });
const WAITING_APPLIES_PER_SLOT = 16;
const MIN_WAITING_APPLIES = 64;

interface Waiting {
  resolve(): void;
}

export class RuntimeSlots {
  private busy = 0;
  /** Waiting callers by owner, owners in the order they came (Map keeps it). */
  private readonly waiting = new Map<object, Waiting[]>();
  /** Slots handed out so far, and the count when each owner was last given one. */
  private handedOut = 0;
  private readonly lastServed = new WeakMap<object, number>();

  /** `capacity()`: slots now (per runtime × runtimes, as names resolve to more or fewer). */
  constructor(private readonly capacity: () => number) {}

  /**
   * Waits for a slot for `owner` (a gradient job's object; by default the Apply calls); resolves to its
   * release (call it once). Rejects when `signal` aborts while it waits, and at once with
   * RESOURCE_EXHAUSTED when too many Apply calls wait already.
   */
  async take(signal?: AbortSignal, owner: object = APPLY_CALLS): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.busy < this.capacity() && this.waiting.size === 0) this.handOut(owner);
    else {
      const queue = this.waiting.get(owner) ?? [];
      const most = Math.max(MIN_WAITING_APPLIES, WAITING_APPLIES_PER_SLOT * this.capacity());
      if (owner === APPLY_CALLS && queue.length >= most) {
        throw new TesseractError(Code.RESOURCE_EXHAUSTED, `${plural(queue.length, "Apply call")} ${queue.length === 1 ? "is" : "are"} waiting for the tesseract-core runtimes (${plural(this.capacity(), "request")} at once: --concurrency per runtime), the most this server queues; retry in a few seconds`);
      }
      // Woken by `next`, which counts the slot it hands over.
      await new Promise<void>((resolve, reject) => {
        const entry: Waiting = {
          resolve: () => {
            signal?.removeEventListener("abort", leave);
            resolve();
          },
        };
        const leave = () => {
          const mine = this.waiting.get(owner);
          const at = mine ? mine.indexOf(entry) : -1;
          if (at >= 0) mine!.splice(at, 1);
          if (mine?.length === 0) this.waiting.delete(owner);
          reject(signal!.reason);
        };
        queue.push(entry);
        if (!this.waiting.has(owner)) this.waiting.set(owner, queue);
        signal?.addEventListener("abort", leave, { once: true });
      });
    }
    return this.releaser();
  }

  /**
   * A slot for a request its caller gave up on while the runtime still computes it (runtime-replicas.ts keeps
   * such an exchange open until it answers, or for --given-up-hold-ms at most): taken over from the
   * caller's own slot, which it releases just after, so it is counted at once, over the capacity if
   * need be; the release (call it once) gives it back. Only a request that took a slot holds one.
   */
  hold(): () => void {
    this.busy++;
    return this.releaser();
  }

  /** Gives a counted slot back, once however often it is called. */
  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.busy--;
      this.next();
    };
  }

  /** Hands free slots out, each to the waiting owner served longest ago (never: first; ties: first come). */
  private next(): void {
    while (this.waiting.size > 0 && this.busy < this.capacity()) {
      let owner: object | undefined;
      let least = Infinity;
      for (const waiting of this.waiting.keys()) {
        const served = this.lastServed.get(waiting) ?? -1;
        if (served < least) [owner, least] = [waiting, served];
      }
      const queue = this.waiting.get(owner!)!;
      const entry = queue.shift()!;
      if (queue.length === 0) this.waiting.delete(owner!);
      this.handOut(owner!);
      entry.resolve();
    }
  }

  private handOut(owner: object): void {
    this.busy++;
    this.lastServed.set(owner, this.handedOut++);
  }
}
