/**
 * The per-evaluation timeout (`--eval-timeout-ms`). A worker thread, a replica call or a
 * tesseract-core runtime's HTTP request can be stopped when apply overruns it; in the event loop only an asynchronous apply can be given up on (a
 * synchronous one that never returns holds the thread, which is why untrusted or possibly hanging
 * Tesseracts belong in worker threads).
 */
import { Code, TesseractError } from "../../common/errors";
import { derive, setDeadline } from "./deadlines";

export function evalTimeoutError(ms: number, where: string, what = "apply"): TesseractError {
  return new TesseractError(Code.DEADLINE_EXCEEDED, `${what} did not return within the per-evaluation timeout of ${ms} ms (--eval-timeout-ms)${where}`);
}

/** `work` (of apply, or `what`), or DEADLINE_EXCEEDED once `ms` have passed (0: no limit). The work itself is not stopped. */
export function withTimeout<T>(work: Promise<T>, ms: number, what?: string): Promise<T> {
  if (!(ms > 0)) return work;
  let timer: NodeJS.Timeout;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(evalTimeoutError(ms, "", what)), ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

/**
 * `work(signal)` under the per-evaluation timeout, for work that stops when its signal aborts (an
 * HTTP request): after `ms` the signal aborts with DEADLINE_EXCEEDED naming `where` (e.g. the
 * evaluation), and that error is the answer. `signal` (the request's) aborts it too, with its own
 * reason. 0: no limit.
 */
export async function withAbortingTimeout<T>(ms: number, signal: AbortSignal | undefined, work: (signal?: AbortSignal) => Promise<T>, where = ""): Promise<T> {
  if (!(ms > 0)) return work(signal);
  const controller = new AbortController();
  derive(controller.signal, signal);
  setDeadline(controller.signal, Date.now() + ms, `the per-evaluation timeout of ${ms} ms (--eval-timeout-ms)`);
  const expired = evalTimeoutError(ms, where);
  const timer = setTimeout(() => controller.abort(expired), ms);
  const forward = () => controller.abort(signal!.reason);
  if (signal?.aborted) forward();
  else signal?.addEventListener("abort", forward, { once: true });
  try {
    return await work(controller.signal);
  } catch (e) {
    // The work's own error names the request that was aborted; either way the code is DEADLINE_EXCEEDED.
    if (controller.signal.reason === expired && !(e instanceof TesseractError && e.code === Code.DEADLINE_EXCEEDED)) throw expired;
    throw e;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", forward);
  }
}
