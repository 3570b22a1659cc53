/**
 * The one seeded random generator of the server: xoroshiro128+ whose state is a function of a
 * 64-bit seed and a stream number, so that each purpose (SPSA's directions, the gradient check's
 * samples, tangents and cotangents) draws its own reproducible sequence from the same seed.
 *
 * The state is drawn from SplitMix64 over the seed and the stream, as xoroshiro's authors seed it:
 * set from the seed's bits directly, nearby seeds started from nearby states, and SPSA's first
 * direction began with the same 16 signs for every seed from 0 to 9999 (averages over seeds 0..499
 * of an off-diagonal entry whose value is 0 came to 0.5).
 */
import { xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";

export type SeededGenerator = ReturnType<typeof xoroshiro128plusFromState>;

const MASK_64 = (1n << 64n) - 1n;

/** SplitMix64: the next state and its output. */
function splitMix64(state: bigint): [bigint, bigint] {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK_64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK_64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK_64;
  return [next, z ^ (z >> 31n)];
}

/** Stream 0 is SPSA's (rows.ts); other purposes take other streams. */
export function seededGenerator(seed: bigint, stream = 0): SeededGenerator {
  // Each stream starts SplitMix64 elsewhere (an odd multiplier: distinct streams, distinct starts).
  let state = (BigInt.asUintN(64, seed) ^ ((BigInt(stream) * 0xd1b54a32d192ed03n) & MASK_64)) & MASK_64;
  const words: number[] = [];
  for (let k = 0; k < 2; k++) {
    let out: bigint;
    [state, out] = splitMix64(state);
    words.push(Number(out >> 32n) | 0, Number(out & 0xffffffffn) | 0);
  }
  // xoroshiro's state must not be all zero; SplitMix64 gives that for no pair of consecutive outputs in practice, but say so.
  if (!words.some((w) => w !== 0)) words[0] = 1;
  return xoroshiro128plusFromState(words as [number, number, number, number]);
}
