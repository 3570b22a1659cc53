/**
 * The bytes of runtime answers being read, all requests together. Each answer is read whole before
 * it is parsed (up to MAX_ANSWER_BYTES), and every request in flight read its own: twelve answers of
 * 300 MB (refused, but only once read that far) took the server to 2.9 GB. Past the budget a reader
 * waits before taking more (its runtime held back by TCP meanwhile), except the one that began
 * first, which always reads: memory stays within the budget and one answer, and no reader waits on
 * readers that wait themselves.
 */
export class AnswerBudget {
  private held = 0;
  /** Readers in the order they began, with the bytes each holds. */
  private readonly readers = new Map<object, number>();
  private wake: (() => void)[] = [];

  constructor(readonly maxBytes: number) {}

  /** `reader` begins an answer. */
  begin(reader: object): void {
    this.readers.set(reader, 0);
  }

  /** Takes `bytes` for `reader`, once they fit (or it began first); rejects when `signal` aborts meanwhile. */
  async take(reader: object, bytes: number, signal?: AbortSignal): Promise<void> {
    while (this.held + bytes > this.maxBytes && this.readers.keys().next().value !== reader) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const done = () => {
          signal?.removeEventListener("abort", done);
          resolve();
        };
        this.wake.push(done);
        signal?.addEventListener("abort", done, { once: true });
      });
    }
    signal?.throwIfAborted();
    this.held += bytes;
    this.readers.set(reader, (this.readers.get(reader) ?? 0) + bytes);
  }

  /** `reader` is done (its answer read, refused or abandoned): its bytes go back, and the waiting look again. */
  end(reader: object): void {
    this.held -= this.readers.get(reader) ?? 0;
    this.readers.delete(reader);
    const waiting = this.wake;
    this.wake = [];
    for (const resolve of waiting) resolve();
  }
}
