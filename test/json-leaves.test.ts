/**
 * Reading only the differentiated leaves of a tesseract-core answer (server/schema/json-leaves.ts):
 * the same arrays, in the same declared datatypes, as decoding the whole answer; and the same
 * refusals, naming the path, for a leaf that is missing, not an array or not castable.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import type { NdArray } from "ndarray";
import { JsonLeafReader } from "../server/schema/json-leaves";
import { inputsAny } from "../server/schema/json-messages";
import { protoFromOpenApi } from "../server/schema/openapi-proto";
import { castToDeclared } from "../server/schema/output-casting";
import { parsePath } from "../common/paths";
import { loadRootFromText, MessageSchema } from "../server/schema/schema";

const DOC = JSON.parse(fs.readFileSync(path.join(__dirname, "../../test/fixtures/tesseract-core/meshstats-openapi.json"), "utf8"));
// The Mesh Stats inputs message has leaves at every depth: a field, a map entry, a list element's field.
const generated = protoFromOpenApi(DOC);
const schema = new MessageSchema(loadRootFromText(generated.text).lookupType(generated.inputType));
const PATHS = ["mesh.points", "mesh.cell_data.{a}", "layers.[1].weights"];
const reader = new JsonLeafReader(schema.type, PATHS.map(parsePath), "outputs");

const base64 = (a: Float64Array | Float32Array) => Buffer.from(a.buffer).toString("base64");
function answer() {
  return {
    mesh: {
      n_points: 2,
      points: { object_type: "array", shape: [2, 3], dtype: "float64", data: { buffer: base64(Float64Array.from([1, 2, 3, 4, 5, 6.5])), encoding: "base64" } },
      cell_data: { a: { shape: [2], dtype: "float64", data: { buffer: base64(Float64Array.from([0.5, -1])), encoding: "base64" } } },
    },
    layers: [
      { weights: { shape: [1], dtype: "float32", data: { buffer: [7], encoding: "json" } }, name: "first" },
      { weights: [0.25, 3], name: "bare list" }, // a bare JSON list, cast to FP32
    ],
  };
}
const at = (tree: unknown, p: string) => parsePath(p).reduce((node: any, s: any) => node[s.kind === "field" ? s.name : s.kind === "key" ? s.key : s.index], tree) as NdArray;

describe("reading an answer's differentiated leaves only", () => {
  it("gives the arrays, datatypes and shapes the whole decode gives", () => {
    const only = reader.read(answer());
    const whole = schema.decodeAny(inputsAny(schema, castToDeclared(schema.type, answer(), "outputs"), false, { field: "outputs" }), "outputs");
    for (const p of PATHS) {
      const [a, b] = [at(only, p), at(whole, p)];
      assert.equal(a.data.constructor, b.data.constructor, p);
      assert.deepEqual(a.shape, b.shape, p);
      assert.deepEqual(Array.from(a.data as ArrayLike<number>), Array.from(b.data as ArrayLike<number>), p);
    }
    assert.deepEqual(Array.from(at(only, "mesh.cell_data.{a}").data as Float64Array), [0.5, -1]);
    assert.ok(at(only, "layers.[1].weights").data instanceof Float32Array);
    assert.equal(Object.keys(only.mesh as object).length, 2, "nothing but the leaves (points, cell_data)");
  });

  it("leaves out a leaf the answer may leave out (under a field the schema does not require: an Optional output that is None); one it requires is refused", () => {
    const required = { ...generated.requiredFields, [`${generated.packageName}.Mesh`]: ["n_points", "points"] };
    const lenient = new JsonLeafReader(schema.type, PATHS.map(parsePath), "outputs", required);
    const withoutCellData = answer() as any;
    delete withoutCellData.mesh.cell_data;
    const only = lenient.read(withoutCellData) as any;
    assert.deepEqual(Object.keys(only.mesh), ["points"]);
    assert.throws(() => reader.read(withoutCellData), /outputs\.mesh\.cell_data\.\{a\} is missing/);
    const withoutPoints = answer() as any;
    withoutPoints.mesh.points = null;
    assert.throws(() => lenient.read(withoutPoints), /outputs\.mesh\.points is missing/);
  });

  it("refuses a missing leaf, a non-array and a value the declared datatype cannot hold, naming the path", () => {
    const missing = answer();
    missing.layers.pop();
    assert.throws(() => reader.read(missing), /outputs\.layers\.\[1\]\.weights is missing/);
    const scalar = answer() as any;
    scalar.mesh.points = "1,2,3";
    assert.throws(() => reader.read(scalar), /outputs\.mesh\.points is "1,2,3", expected an array object/);
    // A differentiated leaf in integers or a narrower float than declared: cast, its differences were rounding jumps.
    for (const dtype of ["int64", "float32"]) {
      const narrow = answer() as any;
      const values = dtype === "int64" ? BigInt64Array.from([1n, 2n]) : Float32Array.from([1, 2]);
      narrow.mesh.cell_data.a = { shape: [2], dtype, data: { buffer: Buffer.from(values.buffer).toString("base64"), encoding: "base64" } };
      assert.throws(() => reader.read(narrow), new RegExp(`outputs\\.mesh\\.cell_data\\.\\{a\\} is ${dtype}, a differentiable output declared float64: finite differences need its declared precision`));
    }
    const huge = answer();
    huge.layers[1].weights = [1e300, 0];
    assert.throws(() => reader.read(huge), /outputs\.layers\.\[1\]\.weights has 1e\+300 at flat index 0 .*float32 cannot hold/);
    const short = answer() as any;
    short.mesh.points.data.buffer = base64(Float64Array.from([1, 2]));
    assert.throws(() => reader.read(short), /outputs\.mesh\.points.*16 bytes, expected 48/);
  });

  it("refuses to plan a path that is not an array field", () => {
    assert.throws(() => new JsonLeafReader(schema.type, [parsePath("mesh.n_points")], "outputs"), /outputs\.mesh\.n_points is not an array field/);
  });

  it("a required float answered null says pydantic writes NaN and infinities so (it read as if the runtime had left it out)", () => {
    const type = loadRootFromText('syntax = "proto3"; package t; message Out { double spread = 1; optional int64 count = 2; }').lookupType("t.Out");
    const required = { "t.Out": ["spread", "count"] };
    assert.throws(() => castToDeclared(type, { spread: null, count: 1 }, "outputs", required), { message: "outputs.spread is null (pydantic writes a NaN or infinite float as null); the runtime's schema requires it" });
    assert.throws(() => castToDeclared(type, { spread: 1.5, count: null }, "outputs", required), { message: "outputs.count is null; the runtime's schema requires it" });
  });
});
