/**
 * The four-sum passes of finite-values.ts against one plain loop each, on every length (the unrolled
 * part and the rest), ranges that start and end anywhere, and a NaN or ±Inf at any place: the same
 * values written, the same answer about finiteness.
 */
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { allFinite, divideAllFinite, divideByWidths, quotientAllFinite, subtractAllFinite } from "../server/eval/finite-values";

/** Doubles, finite or not, with a not-finite one now and then. */
const values = fc.array(fc.oneof({ weight: 12, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) }, { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) }), { maxLength: 23 });
const allFiniteLoop = (v: ArrayLike<number>, from = 0, to = v.length) => Array.from(v).slice(from, to).every(Number.isFinite);

describe("finite-value passes", () => {
  it("allFinite tells whether values[start..end) are finite, wherever a NaN or Inf sits", () => {
    fc.assert(
      fc.property(values, fc.nat(), fc.nat(), (v, a, b) => {
        const data = Float64Array.from(v);
        const [start, end] = [a % (v.length + 1), b % (v.length + 1)].sort((x, y) => x - y);
        assert.equal(allFinite(data, start, end), allFiniteLoop(v, start, end));
        assert.equal(allFinite(data), allFiniteLoop(v));
      }),
      { numRuns: 2000 },
    );
    assert.equal(allFinite(Float64Array.of(1, 2, 3, 4, NaN), 0, 4), true, "the end is excluded");
    assert.equal(allFinite(Float64Array.of(1, 2, 3, 4, 5, 6, 7, -Infinity)), false, "a last value in the unrolled part");
  });

  it("subtractAllFinite subtracts data's range from target's at an offset and tells whether data's values were finite", () => {
    fc.assert(
      fc.property(values, fc.nat(5), fc.nat(5), (v, from, at) => {
        const data = Float64Array.from([...Array(from).fill(7), ...v]);
        const target = Float64Array.from({ length: at + v.length + 2 }, (_, i) => i / 3);
        const expected = Float64Array.from(target);
        for (let i = 0; i < v.length; i++) expected[at + i] -= v[i];
        assert.equal(subtractAllFinite(data, from, v.length, target, at), allFiniteLoop(v));
        assert.deepEqual(target, expected);
      }),
      { numRuns: 2000 },
    );
  });

  it("quotientAllFinite writes (values - minus) / step and tells whether the quotients are finite", () => {
    fc.assert(
      fc.property(values, fc.double({ noNaN: true, min: -1e3, max: 1e3 }), (v, step) => {
        const minus = Float64Array.from(v, (x, i) => (Number.isFinite(x) ? x / 2 + i : 1));
        const expected = Float64Array.from(v, (x, i) => (x - minus[i]) / step);
        const data = Float64Array.from(v);
        assert.equal(quotientAllFinite(data, minus, step), allFiniteLoop(expected));
        assert.deepEqual(data, expected);
      }),
      { numRuns: 2000 },
    );
    assert.equal(quotientAllFinite(Float64Array.of(1e308, 1, 1, 1, 1), Float64Array.of(-1e308, 0, 0, 0, 0), 1), false, "a difference that overflows");
  });

  it("divideAllFinite divides values[start..end) in place and tells whether the quotients are finite", () => {
    fc.assert(
      fc.property(values, fc.nat(), fc.nat(), fc.double({ noNaN: true, min: -1e3, max: 1e3 }), (v, a, b, divisor) => {
        const [start, end] = [a % (v.length + 1), b % (v.length + 1)].sort((x, y) => x - y);
        const expected = Float64Array.from(v, (x, i) => (i >= start && i < end ? x / divisor : x));
        const data = Float64Array.from(v);
        assert.equal(divideAllFinite(data, start, end, divisor), allFiniteLoop(expected, start, end));
        assert.deepEqual(data, expected);
      }),
      { numRuns: 2000 },
    );
    assert.equal(divideAllFinite(Float64Array.of(1e300, 1, 1, 1), 0, 4, 1e-10), false, "a quotient that overflows");
  });

  it("divideByWidths divides each item's values by its width and checks them all, those of width 1 too; unchecked without widths", () => {
    const pairs = (widths?: number[]) => widths && Float64Array.from(widths);
    const data = Float64Array.of(2, 4, 6, 9);
    assert.equal(divideByWidths(pairs([2, 1]), data, 2), true);
    assert.deepEqual([...data], [1, 2, 6, 9]);
    assert.equal(divideByWidths(pairs([2, 1]), Float64Array.of(2, 4, 6, NaN), 2), false, "a NaN in a pair of width 1");
    assert.equal(divideByWidths(pairs([1e-310, 1]), Float64Array.of(1, 1, 1, 1), 2), false, "a quotient that overflows");
    assert.equal(divideByWidths(pairs(), Float64Array.of(1, 2), 2), false);
  });
});
