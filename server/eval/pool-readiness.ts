/**
 * Health of a Tesseract whose evaluations all run in worker threads (`--workers N`): ready until the
 * pool finds it cannot run the Tesseract (a thread died loading it or warming up on its example
 * inputs, pool.ts). Every Apply and gradient request then fails, so health checks report
 * NOT_SERVING (an orchestrator restarts the replica or takes it out of rotation) instead of SERVING
 * a server that answers nothing. Under `auto` the event loop goes on evaluating: it stays ready.
 */
export class PoolReadiness {
  private why?: string;
  private readonly listeners = new Set<(ready: boolean) => void>();

  get ready(): boolean {
    return this.why === undefined;
  }

  /** Why it is not ready, for logs and health answers. */
  describe(): string {
    return this.why ?? "the worker threads run the Tesseract";
  }

  onChange(listener: (ready: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The pool cannot run the Tesseract, for `why`: not ready from now on (the first reason is kept). */
  cannotRun(why: string): void {
    if (this.why !== undefined) return;
    this.why = why;
    for (const listener of this.listeners) listener(false);
  }

  /** A new pool replaces the one that could not run it: ready again. */
  renewed(): void {
    if (this.why === undefined) return;
    this.why = undefined;
    for (const listener of this.listeners) listener(true);
  }
}
