/**
 * IEEE 754 half precision (numpy's float16), which tesseract.v1.DataType does not have: its values
 * are read into float32, which holds every one of them exactly. Node 20 has no Float16Array.
 */

/** The number whose half-precision bits are `bits`. */
export function halfValue(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  // Subnormals (exponent 0) are mantissa · 2^-24.
  return sign * (exponent ? 2 ** (exponent - 15) * (1 + mantissa / 1024) : mantissa * 2 ** -24);
}

/** `v` rounded to the nearest half-precision value, ties to even, as numpy's astype(float16): ±Infinity past 65504. */
export function roundToHalf(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  const magnitude = Math.abs(v);
  // The spacing of float16 values around `magnitude`: 2^(e - 10) for normals, 2^-24 below 2^-14.
  const exponent = Math.max(Math.floor(Math.log2(magnitude)), -14);
  // log2 may be off by one near powers of two: the binade is the one that holds `magnitude`.
  const binade = 2 ** exponent > magnitude ? exponent - 1 : 2 ** (exponent + 1) <= magnitude ? exponent + 1 : exponent;
  const ulp = 2 ** (Math.max(binade, -14) - 10);
  const scaled = magnitude / ulp;
  let units = Math.round(scaled);
  if (units - scaled === 0.5 && units % 2 === 1) units -= 1; // a tie goes to the even neighbour
  const rounded = units * ulp;
  return Math.sign(v) * (rounded > 65504 ? Infinity : rounded);
}
