/**
 * How far along a call's gradient job is, kept by the call's AbortSignal as deadlines.ts keeps its
 * deadline: the engine says where its evaluations stand, and the transport that owns the call reads
 * it for its log (a bridged Jacobian of a slow solver runs for hours, and its log said nothing
 * until the end), neither knowing of the other.
 */
export interface Progress {
  /** Evaluations made so far. */
  evaluations: number;
  /** Evaluations the job plans in all. */
  planned: number;
}

const sources = new WeakMap<AbortSignal, () => Progress>();

/** `source` tells how far the job that `signal` stops is. */
export function reportProgress(signal: AbortSignal | undefined, source: () => Progress): void {
  if (signal) sources.set(signal, source);
}

/** How far the job that `signal` stops is, when one has said. */
export function progressOf(signal: AbortSignal): Progress | undefined {
  return sources.get(signal)?.();
}
