/**
 * When the work an AbortSignal stops must end, where its owner knows it (a call's deadline, an
 * evaluation's timeout): work that would wait past it (a runtime's Retry-After) can give up at
 * once, saying why, rather than be aborted when it comes. Signals derived from one (a job's, an
 * evaluation's) carry its deadline on (`derive`).
 */
const deadlines = new WeakMap<AbortSignal, number>();

/** `signal` must be done by `at` (Date.now() milliseconds), or by the deadline it has already if sooner. */
export function setDeadline(signal: AbortSignal, at: number): void {
  const known = deadlines.get(signal);
  if (Number.isFinite(at)) deadlines.set(signal, known === undefined ? at : Math.min(known, at));
}

/** `derived` ends by `from`'s deadline too. */
export function derive(derived: AbortSignal, from: AbortSignal | undefined): void {
  const at = from && deadlines.get(from);
  if (at !== undefined) setDeadline(derived, at);
}

/** When `signal`'s work must be done, if known. */
export function deadlineOf(signal: AbortSignal | undefined): number | undefined {
  return signal && deadlines.get(signal);
}
