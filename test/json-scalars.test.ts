import { strict as assert } from "node:assert";
import { jsonScalar } from "../common/json-scalars";

describe("JSON scalars (REST bodies, the bridge's JSON, the CLI's payloads)", () => {
  it("a double or float takes a number or a decimal string, as protobuf's JSON and pydantic do (\"0.5\" was refused where \"4\" was taken for an integer)", () => {
    for (const [v, n] of [[0.5, 0.5], ["0.5", 0.5], ["-1e3", -1000], [".5", 0.5], ["5.", 5], ["+2", 2]] as const) assert.equal(jsonScalar("double", v, "dt"), n, String(v));
    assert.equal(jsonScalar("float", "0.25", "dt"), 0.25);
    for (const v of ["0x10", " 1", "", "-", "Infinity", "NaN", "1e", null, true, [1]]) assert.throws(() => jsonScalar("double", v, "dt"), /^TesseractError: dt is .*, expected a number$/, JSON.stringify(v));
    assert.throws(() => jsonScalar("double", "1e400", "dt"), /^TesseractError: dt is "1e400", expected a finite number$/);
  });

  it("a float field refuses a value beyond FP32's range (1e39 went on the wire as Infinity, answered 200 with null)", () => {
    for (const v of [1e39, "-1e39", 3.5e38]) assert.throws(() => jsonScalar("float", v, "f32"), /^TesseractError: f32 is .*, beyond the range of a float field \(FP32, ±3\.4028235e38\)$/, String(v));
    assert.equal(jsonScalar("float", 3.4e38, "f32"), 3.4e38);
    assert.equal(jsonScalar("double", 1e39, "f64"), 1e39);
  });

  it("a bool takes pydantic's words and 0 or 1 besides true and false (a tesseract-core client's 1 was refused)", () => {
    for (const v of [true, 1, "1", "true", "True", "t", "yes", "Y", "on"]) assert.equal(jsonScalar("bool", v, "normalize"), true, String(v));
    for (const v of [false, 0, "0", "false", "FALSE", "f", "no", "n", "off"]) assert.equal(jsonScalar("bool", v, "normalize"), false, String(v));
    for (const v of [2, -1, 0.5, "2", "", "truthy", null, {}]) assert.throws(() => jsonScalar("bool", v, "normalize"), /^TesseractError: normalize is .*, expected true or false$/, JSON.stringify(v));
  });

  it("an integer takes a number or a string of digits within its type's range", () => {
    assert.equal(jsonScalar("int32", "4", "n"), 4);
    assert.equal(jsonScalar("uint64", "9007199254740991", "n"), Number.MAX_SAFE_INTEGER);
    for (const v of ["4.0", "0x4", 2 ** 31, -1.5]) assert.throws(() => jsonScalar("int32", v, "n"), /^TesseractError: n is .*, expected an integer from -2147483648 to 2147483647 \(int32\)$/, String(v));
  });
});
