/**
 * How noisy f is near x, measured rather than assumed: an apply that integrates, iterates or sums
 * rounds many times, so its outputs scatter about the smooth function by tens of ulps, not one. The
 * error estimates of the Richardson and adaptive rules (rows.ts) need that level, and the adaptive
 * rule balances it against truncation when it picks a step.
 *
 * ECnoise (Moré and Wild, "Estimating computational noise", SIAM J. Sci. Comput. 33, 2011): sample f
 * at m + 1 equally spaced points x + i p along a short direction p, i = 0..m, and form differences.
 * For noise of level σ (independent, mean zero), the k-th differences Δ^k f have mean square
 * σ² (2k)! / (k!)², while the smooth part of Δ^k shrinks like |p|^k f^(k); so
 *   σ_k = sqrt(γ_k · mean_i (Δ^k f_i)²),  γ_k = (k!)² / (2k)!,
 * estimates σ once k is large enough for the smooth part to vanish. As ECnoise, σ is σ_k for the
 * first k whose σ_k, σ_k+1, σ_k+2 agree within a factor 4 and whose differences change sign.
 * One probe per request (m = PROBE_POINTS evaluations besides f(x)): noise is a property of f near x,
 * shared by every element's differences.
 */

/** Evaluations of the probe besides f(x): f at x + i p, i = 1..8 (ECnoise's usual m = 8). */
export const PROBE_POINTS = 8;

/**
 * |p_j| in units of element j's step h_j: the adaptive rule's smallest step, h/64, short enough that
 * the smooth part of the differences is far below the noise wherever the rules' steps are not too long.
 */
export const PROBE_SPACING = 1 / 64;

/** The highest difference order formed; ECnoise's. */
const MAX_ORDER = 6;

/**
 * σ from samples of f at equally spaced points (the formula above); undefined when f did not change
 * over at least half of them (it is flat or quantised at this spacing: no noise to see). When no order
 * qualifies (f is not smooth at this spacing), the smallest σ_k: every σ_k estimates σ from above,
 * the smooth part only adding to it.
 */
export function noiseLevel(samples: readonly number[]): number | undefined {
  const distinct = new Set(samples).size;
  if (distinct <= samples.length / 2) return undefined;
  const levels: number[] = [];
  const signChange: boolean[] = [];
  let differences = [...samples];
  let gamma = 1;
  for (let k = 1; k <= Math.min(MAX_ORDER, samples.length - 1); k++) {
    differences = differences.slice(1).map((v, i) => v - differences[i]);
    gamma *= k / (2 * (2 * k - 1)); // (k!)² / (2k)! from its value at k - 1
    levels.push(Math.sqrt((gamma * differences.reduce((sum, d) => sum + d * d, 0)) / differences.length));
    signChange.push(differences.some((d) => d > 0) && differences.some((d) => d < 0));
  }
  if (levels.length === 0) return undefined;
  for (let k = 0; k + 2 < levels.length; k++) {
    const three = levels.slice(k, k + 3);
    if (Math.max(...three) <= 4 * Math.min(...three) && signChange[k]) return levels[k];
  }
  return Math.min(...levels);
}

/** A central pair of evaluations: half-width a and the mean (f(x + a) + f(x - a)) / 2 of each output value. */
export interface Pair {
  halfWidth: number;
  mean: Float64Array[];
}

/**
 * One more sample of σ per output value, where a row's differences were actually taken: with f(x)
 * and two central pairs at half-widths a < b, the even parts e(t) = (f(x+t) + f(x-t)) / 2 - f(x)
 * = f⁽²⁾ t²/2 + f⁽⁴⁾ t⁴/24 + ... + noise, and e(b) - e(a) / r², r = a / b, cancels the t² term;
 * what is left is noise of standard deviation σ sqrt(1/2 + 1/(2r⁴) + (1/r² - 1)²) (the t⁴ term only
 * adds to it). For b = 2a it is the 4th difference of f over x - 2a .. x + 2a (ECnoise's k = 4).
 */
export function pairNoise(f0: readonly Float64Array[], near: Pair, far: Pair): Float64Array[] {
  const r2 = (near.halfWidth / far.halfWidth) ** 2;
  const deviation = Math.sqrt(0.5 + 0.5 / (r2 * r2) + (1 / r2 - 1) ** 2);
  return f0.map((base, o) => base.map((f, i) => Math.abs(far.mean[o][i] - f - (near.mean[o][i] - f) / r2) / deviation));
}

/** Per output value, σ from the probe's evaluations ([point][output]); 0 where no noise was seen. */
export function noiseLevels(evaluations: readonly Float64Array[][]): Float64Array[] {
  return evaluations[0].map((values, o) => values.map((_, i) => noiseLevel(evaluations.map((e) => e[o][i])) ?? 0));
}
