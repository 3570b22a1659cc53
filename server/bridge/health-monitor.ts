/**
 * Whether any tesseract-core runtime of a bridged Tesseract answers `GET /health`, polled every
 * `intervalMs` (every replica at once; a round starts when the previous one has ended), so that health
 * checks report NOT_SERVING while none does and SERVING again once one does. Polling stops on
 * close, and its timer never keeps the process alive.
 */
import { setMaxListeners } from "node:events";
import type { Readiness } from "../runtime";
import { DEFAULT_HEALTH_INTERVAL_MS } from "./settings";

export { DEFAULT_HEALTH_INTERVAL_MS };

/** A runtime slower than this to answer /health counts as not answering (at least; longer intervals wait longer). */
const MIN_HEALTH_TIMEOUT_MS = 5000;

/** What is polled: the runtimes (runtime-replicas.ts). */
export interface HealthTarget {
  /** One round of health checks; whether any runtime answered. Never rejects. */
  answersHealth(signal: AbortSignal): Promise<boolean>;
  /** The runtimes, for messages. */
  describe(): string;
}

export class HealthMonitor implements Readiness {
  private current = true;
  private readonly listeners = new Set<(ready: boolean) => void>();
  private timer?: NodeJS.Timeout;
  private round?: AbortController;
  private closed = false;

  /** Starts polling; `ready` is true until a round finds no runtime answering (the start just read /openapi.json). */
  constructor(
    readonly target: HealthTarget,
    readonly intervalMs = DEFAULT_HEALTH_INTERVAL_MS,
  ) {
    this.schedule();
  }

  get ready(): boolean {
    return this.current;
  }

  /** Whether a round is waiting or under way (false once closed). */
  get polling(): boolean {
    return this.timer !== undefined || this.round !== undefined;
  }

  /** A line for logs and health answers: which runtimes are polled. */
  describe(): string {
    return `no tesseract-core runtime answers GET /health (${this.target.describe()})`;
  }

  onChange(listener: (ready: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.round?.abort();
    this.round = undefined;
    this.listeners.clear();
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll();
    }, this.intervalMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    const round = (this.round = new AbortController());
    // Every replica's request listens to it: more than ten is no leak.
    setMaxListeners(0, round.signal);
    const timeout = setTimeout(() => round.abort(), Math.max(MIN_HEALTH_TIMEOUT_MS, this.intervalMs));
    const ready = await this.target.answersHealth(round.signal);
    clearTimeout(timeout);
    if (this.closed) return;
    this.round = undefined;
    if (ready !== this.current) {
      this.current = ready;
      for (const listener of this.listeners) listener(ready);
    }
    this.schedule();
  }
}
