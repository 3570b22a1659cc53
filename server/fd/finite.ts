/**
 * Keeping the engine's own arithmetic inside FP64's range. apply's outputs are finite (outputs.ts
 * refuses NaN and Inf as they arrive), so any NaN or Inf in a result is an overflow of the engine's
 * making: scaled away where the true value is representable, refused where it is not.
 */
import { Code, TesseractError } from "../../common/errors";
import { allFinite } from "../eval/finite-values";

/**
 * 2^e with 2^e ≤ max_i |v_i| < 2^(e+1) over all the arrays (about that, where log2 rounds), 0 when
 * every v_i is 0. Dividing by a power of two is exact, so v / 2^e is v rescaled to max |v_i| ≈ 1:
 * sums of its squares or products neither overflow nor underflow (as BLAS dnrm2 scales).
 */
export function binaryScale(vectors: readonly ArrayLike<number>[]): number {
  let largest = 0;
  for (const v of vectors) for (let i = 0; i < v.length; i++) largest = Math.max(largest, Math.abs(v[i]));
  return largest === 0 ? 0 : 2 ** Math.floor(Math.log2(largest));
}

/** Refuses (FAILED_PRECONDITION) a NaN or Inf the engine computed; `what(i)` names value i. */
export function checkFinite(values: Float64Array, what: (i: number) => string): void {
  if (allFinite(values)) return;
  const i = values.findIndex((v) => !Number.isFinite(v));
  throw new TesseractError(
    Code.FAILED_PRECONDITION,
    `${what(i)} came out ${values[i]} although every output of apply was finite: the finite-difference arithmetic overflowed FP64 (the value, or a difference it is formed from, is beyond ±${Number.MAX_VALUE.toPrecision(2)})`,
  );
}
