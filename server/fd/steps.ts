/**
 * Step rules. Every difference quotient divides by the step actually taken: the perturbed value is
 * rounded to the input's precision (FP32 or FP64), so for FP32 inputs or large |x| the real step
 * differs from the nominal h (tesseract-core divides by h and is wrong there).
 */

const scratch = new DataView(new ArrayBuffer(8));

/** The neighbour of x one unit in the last place towards `up` (true: +inf), in FP32 or FP64. */
export function nextAfter(x: number, up: boolean, fp32: boolean): number {
  if (Number.isNaN(x)) return x;
  if (x === 0) return (up ? 1 : -1) * (fp32 ? 2 ** -149 : Number.MIN_VALUE);
  // For IEEE floats, adding one to the bit pattern moves away from zero.
  const away = (x > 0) === up;
  if (fp32) {
    scratch.setFloat32(0, x);
    scratch.setInt32(0, scratch.getInt32(0) + (away ? 1 : -1));
    return scratch.getFloat32(0);
  }
  scratch.setFloat64(0, x);
  scratch.setBigInt64(0, scratch.getBigInt64(0) + (away ? 1n : -1n));
  return scratch.getFloat64(0);
}

/** fl(x + h) in the input's precision; one ulp further when that rounds back to x (never a zero step). */
export function stepped(x: number, h: number, fp32: boolean): number {
  const y = fp32 ? Math.fround(x + h) : x + h;
  return y !== x ? y : nextAfter(x, h > 0, fp32);
}
