/**
 * The one seeded random generator of the server: xoroshiro128+ whose state is a function of a
 * 64-bit seed and a stream number, so that each purpose (SPSA's directions, the gradient check's
 * samples, tangents and cotangents) draws its own reproducible sequence from the same seed.
 */
import { xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";

export type SeededGenerator = ReturnType<typeof xoroshiro128plusFromState>;

/** Stream 0 is SPSA's (rows.ts); other purposes take other streams. */
export function seededGenerator(seed: bigint, stream = 0): SeededGenerator {
  const hi = Number((seed >> 32n) & 0xffffffffn) | 0;
  const lo = Number(seed & 0xffffffffn) | 0;
  return xoroshiro128plusFromState([hi ^ 0x9e3779b9, ~lo, lo ^ Math.imul(stream, 0x85ebca6b), hi ^ (0x27d4eb2f * stream)]);
}
