/**
 * Counts in messages agree with their nouns: "1 element", "2 elements" (messages read "1 elements",
 * "1 bytes", "its 1 characters are"), through the one helper in common/plural.ts.
 */
import { strict as assert } from "node:assert";
import ndarray from "ndarray";
import { plural } from "../common/plural";
import { flattenLists, tensorFromArrayObject } from "../common/numpy-arrays";
import { DataType, decodeTensor, ndarrayExtentProblem } from "../common/tensor-codec";

describe("counts in messages", () => {
  it("plural: the count and the noun that agrees with it, irregular plurals given", () => {
    assert.equal(plural(1, "row"), "1 row");
    assert.equal(plural(0, "row"), "0 rows");
    assert.equal(plural(3, "row"), "3 rows");
    assert.equal(plural(1, "entry", "entries"), "1 entry");
    assert.equal(plural(2, "entry", "entries"), "2 entries");
  });

  it("nested lists, array objects and tensors say 1 element, 1 value, 1 byte, 1 character", () => {
    assert.throws(() => flattenLists([[1], [2, 3]], "x"), /^TesseractError: x: ragged nested list at \[1\], expected 1 element$/);
    assert.throws(() => flattenLists([[1, 2], [3]], "x"), /expected 2 elements$/);
    const object = (shape: number[], buffer: unknown, encoding = "json") => ({ shape, dtype: "float64", data: { buffer, encoding } });
    assert.throws(() => tensorFromArrayObject(object([2], [1]), "x"), /x\.data\.buffer has 1 value, expected 2 for shape \[2\]$/);
    assert.throws(() => tensorFromArrayObject(object([1], [1, 2]), "x"), /x\.data\.buffer has 2 values, expected 1 for shape \[1\]$/);
    assert.throws(() => tensorFromArrayObject(object([1], "A", "base64"), "x"), /is not valid base64: its 1 character is 1 more than a multiple of 4$/);
    assert.throws(() => tensorFromArrayObject(object([1], "AAAAA", "base64"), "x"), /its 5 characters are 1 more than a multiple of 4$/);
    assert.throws(() => decodeTensor({ datatype: DataType.DATA_TYPE_UINT8, shape: [2], data: new Uint8Array(1) }, "x"), /^TesseractError: x: data has 1 byte, expected 2 \(/);
    assert.throws(() => decodeTensor({ datatype: DataType.DATA_TYPE_UINT8, shape: [1], data: new Uint8Array(2) }, "x"), /^TesseractError: x: data has 2 bytes, expected 1 \(/);
    assert.equal(ndarrayExtentProblem(ndarray(new Float64Array(0), [1])), "has shape [1], which needs 1 element, but its data holds 0");
  });
});
