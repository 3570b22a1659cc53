/**
 * The per-evaluation timeout (`--eval-timeout-ms`). A worker thread or a replica call can be stopped
 * when apply overruns it; in the event loop only an asynchronous apply can be given up on (a
 * synchronous one that never returns holds the thread, which is why untrusted or possibly hanging
 * Tesseracts belong in worker threads).
 */
import { Code, TesseractError } from "../../common/errors";

export function evalTimeoutError(ms: number, where: string): TesseractError {
  return new TesseractError(Code.DEADLINE_EXCEEDED, `apply did not return within the per-evaluation timeout of ${ms} ms (--eval-timeout-ms)${where}`);
}

/** `work`, or DEADLINE_EXCEEDED once `ms` have passed (0: no limit). The work itself is not stopped. */
export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  if (!(ms > 0)) return work;
  let timer: NodeJS.Timeout;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(evalTimeoutError(ms, "")), ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
