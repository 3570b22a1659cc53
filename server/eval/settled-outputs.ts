/**
 * apply's result, settled. apply may return its outputs or a Promise of them; anything with a `then`
 * method is awaited as a Promise would be. A thenable that is no Promise is asked for its value once,
 * here: one that settles with another such thenable (itself, say) would be adopted for ever, each
 * step a microtask, and no timer, socket or other call would run again (`--eval-timeout-ms`
 * included). Such a value is apply's failure.
 */

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value instanceof Promise || typeof (value as PromiseLike<unknown>)?.then === "function";
}

/** A thenable apply returned, as a Promise of the outputs it settles with. */
export function settledOutputs(result: PromiseLike<unknown>): Promise<unknown> {
  if (result instanceof Promise) return result;
  return new Promise((resolve, reject) => {
    const settle = (value: unknown) => {
      try {
        if (!isThenable(value) || value instanceof Promise) return resolve(value);
        reject(new TypeError("apply returned a thenable that settled with another thenable (itself?), which would be awaited for ever: return the outputs, or a Promise of them"));
      } catch (e) {
        reject(e); // a Proxy whose traps throw
      }
    };
    try {
      result.then(settle, reject);
    } catch (e) {
      reject(e);
    }
  });
}
