/** exactJson: JSON.stringify, but a bigint is written as its exact digits (as numpy writes int64), and −0 as -0.0 (as Python writes it). */
import { strict as assert } from "node:assert";
import { exactJson, holdsNegativeZero, jsonFloat, jsonInteger } from "../common/exact-json";

describe("exact JSON integers", () => {
  it("writes bigints exactly and everything else as JSON.stringify does", () => {
    const value = { a: [1.5, 2n ** 53n + 1n, -(2n ** 63n)], s: "\u0000exact-integer:x:5", n: null, t: true };
    assert.equal(exactJson(value), '{"a":[1.5,9007199254740993,-9223372036854775808],"s":"\\u0000exact-integer:x:5","n":null,"t":true}');
    assert.equal(exactJson({ a: [1, "two"] }), JSON.stringify({ a: [1, "two"] }));
  });

  it("writes a marked −0 as -0.0, beside bigints too, and reads back as −0 (JSON.stringify wrote 0)", () => {
    const floats = Float64Array.from([1.5, -0, 0, -2]);
    assert.deepEqual([holdsNegativeZero(floats), holdsNegativeZero(Float64Array.from([0, 1]))], [true, false]);
    const text = exactJson({ a: Array.from(floats, jsonFloat), b: jsonFloat(-0), c: 2n ** 53n + 1n });
    assert.equal(text, '{"a":[1.5,-0.0,0,-2],"b":-0.0,"c":9007199254740993}');
    assert.ok(Object.is(JSON.parse(text).a[1], -0));
  });

  it("keeps numbers where they are exact", () => {
    assert.deepEqual([2n ** 53n - 1n, -(2n ** 53n) + 1n, 2n ** 53n, 0n].map(jsonInteger), [2 ** 53 - 1, -(2 ** 53) + 1, 2n ** 53n, 0]);
  });
});
