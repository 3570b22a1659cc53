/** numpy's float16, read into float32: values of half-precision bits, and JSON numbers rounded as numpy's astype(float16) rounds them (expected values from Python's struct 'e' format). */
import { strict as assert } from "node:assert";
import { halfValue, roundToHalf } from "../common/float16";

describe("float16", () => {
  it("reads subnormals, normals, the largest value, signed zero and infinities from their bits", () => {
    const bits = [0x0001, 0x03ff, 0x0400, 0x7bff, 0x8000, 0xfc00, 0x7c00, 0x3c00, 0xc000];
    assert.deepEqual(bits.map(halfValue), [5.960464477539063e-8, 6.097555160522461e-5, 6.103515625e-5, 65504, -0, -Infinity, Infinity, 1, -2]);
    assert.ok(Number.isNaN(halfValue(0x7e00)));
  });

  it("rounds to the nearest float16, ties to even, subnormals included; past 65504 is infinite", () => {
    const given = [1e-7, 3e-8, 6e-8, 2.9802322387695312e-8, 0.1, 1 / 3, 2049, 2051, 4097, -65504, 65519.99, 1e-5, 6.1035e-5];
    const numpy = [1.1920928955078125e-7, 5.960464477539063e-8, 5.960464477539063e-8, 0, 0.0999755859375, 0.333251953125, 2048, 2052, 4096, -65504, 65504, 1.0013580322265625e-5, 6.103515625e-5];
    assert.deepEqual(given.map(roundToHalf), numpy);
    assert.deepEqual([roundToHalf(65520), roundToHalf(-1e6)], [Infinity, -Infinity]);
  });
});
