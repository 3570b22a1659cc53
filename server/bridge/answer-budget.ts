/**
 * The bytes of runtime answers being read, all requests together. Each answer is read whole before
 * it is parsed (up to MAX_ANSWER_BYTES), and every request in flight read its own: twelve answers of
 * 300 MB (refused, but only once read that far) took the server to 2.9 GB. Past the budget a reader
 * waits before taking more (its runtime held back by TCP meanwhile), except:
 * - the reader that holds the most, which always reads (it cannot be overtaken while the others
 *   wait, so one reader always moves, and the one that frees the most when it ends): memory stays
 *   within the budget, one answer, and the small allowances;
 * - a reader's first FREE_BYTES: small answers never wait behind big ones (a health check and a
 *   small Apply hung behind a slow answer's budget).
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

  /** Takes `bytes` for `reader`, once they fit; rejects when `signal` aborts meanwhile. */
  async take(reader: object, bytes: number, signal?: AbortSignal): Promise<void> {
    while (!this.fits(reader, bytes)) {
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

  private fits(reader: object, bytes: number): boolean {
    const own = this.readers.get(reader) ?? 0;
    return this.held + bytes <= this.maxBytes || own + bytes <= FREE_BYTES || this.largest() === reader;
  }

  /** The reader that holds the most (the earliest of those that hold as much). */
  private largest(): object | undefined {
    let found: object | undefined;
    let most = -1;
    for (const [reader, bytes] of this.readers) if (bytes > most) [found, most] = [reader, bytes];
    return found;
  }
}

/** What each answer may hold without waiting: an apply's outputs of ordinary size, a health answer. */
export const FREE_BYTES = 1 << 20;
