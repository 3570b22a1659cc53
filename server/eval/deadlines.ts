/**
 * When the work an AbortSignal stops must end, where its owner knows it (a call's deadline, an
 * evaluation's timeout): work that would wait past it (a runtime's Retry-After) can give up at
 * once, saying why, rather than be aborted when it comes. Signals derived from one (a job's, an
 * evaluation's) carry its deadline on (`derive`).
 */
export interface Deadline {
  /** Date.now() milliseconds. */
  at: number;
  /** What sets it, for messages: "the call's deadline", "--eval-timeout-ms". */
  what: string;
}

const deadlines = new WeakMap<AbortSignal, Deadline>();

/** `signal` must be done by `at` (Date.now() milliseconds), or by the deadline it has already if sooner. */
export function setDeadline(signal: AbortSignal, at: number, what: string): void {
  const known = deadlines.get(signal);
  if (Number.isFinite(at) && (known === undefined || at < known.at)) deadlines.set(signal, { at, what });
}

/** `derived` ends by `from`'s deadline too. */
export function derive(derived: AbortSignal, from: AbortSignal | undefined): void {
  const known = from && deadlines.get(from);
  if (known !== undefined) setDeadline(derived, known.at, known.what);
}

/** When `signal`'s work must be done, and what says so, if known. */
export function deadlineOf(signal: AbortSignal | undefined): Deadline | undefined {
  return signal && deadlines.get(signal);
}
