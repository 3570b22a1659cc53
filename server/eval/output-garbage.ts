/**
 * A worker thread's dead output buffers, collected as they pile up. Every evaluation's outputs are
 * fresh typed arrays whose bytes lie outside V8's heap; V8 frees them only when a scavenge finds
 * them dead, and it scavenges when its young generation fills with objects, not with these bytes.
 * A worker evaluating big outputs thus held up to ~32 MB of them (V8's own trigger), and every thread
 * its own: a dense heat stream (n = 8 000) on 8 threads peaked at 645 MB in-process, 480 MB with a
 * minor collection every 8 MB of outputs. A collection is not free (~0.3 ms, and V8's helper threads
 * compete with the pool's), so each thread collects at its share of POOL_GARBAGE_BYTES: one thread
 * leaves it to V8, two collect every 16 MB (served dense heat stream on two cores, n = 23 200, four
 * alternating pairs: peak RSS 280-297 -> 258-269 MB at the same throughput; at 8 MB 248-253, and
 * an earlier build lost 10-15 % there).
 * A thread quiet for IDLE_COLLECT_MS within a task (a long apply) collects what is left; a thread
 * waiting for its next task runs no timer (piscina's Atomics.wait): an idle pool is tidied by the
 * pool itself (pool.ts, IDLE_TIDY_MS), which kept them for good before.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Dead output bytes the whole pool may hold, about; a thread collects at least every MIN_COLLECT_EVERY_BYTES. */
export const POOL_GARBAGE_BYTES = 32 * 1024 * 1024;
export const MIN_COLLECT_EVERY_BYTES = 8 * 1024 * 1024;
/** Quiet time after which a thread collects what its last evaluations left. */
export const IDLE_COLLECT_MS = 200;

/** Output bytes each of a pool's `threads` lets pile up before it collects them. */
export function collectEvery(threads: number): number {
  return Math.max(MIN_COLLECT_EVERY_BYTES, POOL_GARBAGE_BYTES / Math.max(1, threads));
}

type Collect = () => void;

/**
 * V8's minor collection (a scavenge) as a function, or undefined where it cannot be had. The flag
 * exposes `gc` only to contexts made after it is set (the one made here), not to the thread's own.
 */
export function minorCollection(): Collect | undefined {
  const gc = exposedGc();
  return gc && (() => gc({ type: "minor" }));
}

/**
 * V8's full collection, likewise: what a young-generation one leaves, long-lived buffers included.
 * `gc()` without options: Node 20's V8 knows no `type: "major"` and runs a minor collection for it
 * (performance "gc" entries: kind minor), which left an idle pool's dead job inputs (32 MB) allocated.
 */
export function fullCollection(): Collect | undefined {
  const gc = exposedGc();
  return gc && (() => gc());
}

function exposedGc(): ((options?: { type: "minor" }) => void) | undefined {
  try {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as ((options?: { type: "minor" }) => void) | undefined;
    return typeof gc === "function" ? gc : undefined;
  } catch {
    return undefined;
  }
}

/** Counts the output bytes evaluations made and collects after every `every` of them, and once quiet for `idleMs`. */
export class OutputGarbage {
  private bytes = 0;
  private idle?: NodeJS.Timeout;

  constructor(
    private readonly collect: Collect | undefined,
    private readonly every: number,
    private readonly idleMs = IDLE_COLLECT_MS,
  ) {}

  /** After evaluations whose outputs took `bytes`. */
  made(bytes: number): void {
    if (!this.collect) return;
    this.bytes += bytes;
    if (this.bytes >= this.every) this.collectNow();
    // One timer, rescheduled after every batch (no new timer each time); it collects only what is left.
    if (this.idle) this.idle.refresh();
    else this.idle = setTimeout(() => this.bytes > 0 && this.collectNow(), this.idleMs).unref();
  }

  private collectNow(): void {
    this.bytes = 0;
    this.collect!();
  }
}
