/** exactJson: JSON.stringify, but a bigint is written as its exact digits (as numpy writes int64). */
import { strict as assert } from "node:assert";
import { exactJson, jsonInteger } from "../common/exact-json";

describe("exact JSON integers", () => {
  it("writes bigints exactly and everything else as JSON.stringify does", () => {
    const value = { a: [1.5, 2n ** 53n + 1n, -(2n ** 63n)], s: "\u0000exact-integer:x:5", n: null, t: true };
    assert.equal(exactJson(value), '{"a":[1.5,9007199254740993,-9223372036854775808],"s":"\\u0000exact-integer:x:5","n":null,"t":true}');
    assert.equal(exactJson({ a: [1, "two"] }), JSON.stringify({ a: [1, "two"] }));
  });

  it("keeps numbers where they are exact", () => {
    assert.deepEqual([2n ** 53n - 1n, -(2n ** 53n) + 1n, 2n ** 53n, 0n].map(jsonInteger), [2 ** 53 - 1, -(2 ** 53) + 1, 2n ** 53n, 0]);
  });
});
