/**
 * The shapes of pydantic schemas a tesseract-core runtime publishes, each either served end to end
 * (start, Describe, Apply over gRPC and REST, a Jacobian where differentiable, the .proto compiled
 * with buf) or refused at start with an error naming the property and what it is: never a crash,
 * never a field mapped to something else.
 */
import { strict as assert } from "node:assert";
import { Algorithm } from "../client";
import { startServer } from "../index";
import { silentLogger } from "../server/log";
import ndarray from "ndarray";
import { literalNumbers, protoFromOpenApi } from "../server/schema/openapi-proto";
import { startFakeTesseractCore, type FakeArray } from "./fixtures/tesseract-core/fake-tesseract-core";
import { ARRAY_DATA_MODELS, arrayModel, arraySchema, dtypeArraySchema, fakeArray, model, openApiDoc, ref, serveSchema } from "./fixtures/tesseract-core/served-schemas";
import { clientRejects, f32, f64, flat } from "./helpers";

const number = { type: "number" };
const CENTRAL = { algorithm: Algorithm.ALGORITHM_CENTRAL };
const arrayJson = (values: number[]) => ({ object_type: "array", shape: [values.length], dtype: "float64", data: { buffer: values, encoding: "json" } });
const round = (values: number[]) => values.map((v) => Math.round(v * 1e6) / 1e6);

describe("tesseract-core bridge: the schema shapes pydantic writes", function () {
  this.timeout(60_000);

  it("serves dict[str, Model] with arrays, a recursive model, Optional with defaults, Enum classes, one-value Literals (const), constraints, allOf and type lists", async () => {
    const models = {
      Apply_Part: model({ w: arraySchema(true), label: { type: "string", maxLength: 8 } }),
      Apply_Node: model({ v: number, children: { type: "array", items: ref("Apply_Node"), default: [] } }),
      Apply_Color: { title: "Color", enum: ["red", "green"], type: "string" },
      Apply_Level: { title: "Level", enum: [1, 2], type: "integer" },
    };
    const inputs = {
      parts: { type: "object", additionalProperties: ref("Apply_Part") },
      tree: ref("Apply_Node"),
      scale: { anyOf: [number, { type: "null" }], default: 3 },
      extra: { anyOf: [ref("Apply_Part"), { type: "null" }], default: null },
      color: ref("Apply_Color"),
      level: { allOf: [ref("Apply_Level")], default: 1 },
      version: { const: "v1", type: "string", default: "v1" },
      mode: { const: "fast" },
      count: { type: "integer", minimum: 0, maximum: 10 },
      offset: { type: ["number", "null"], default: null },
    };
    const outputs = { y: arraySchema(true), total: number, mode: { const: "fast" } };
    const sum = (node: { v: number; children?: unknown[] }): number => node.v + (node.children ?? []).reduce((s: number, c) => s + sum(c as typeof node), 0);
    const served = await serveSchema(openApiDoc(inputs, outputs, models), (given) => {
      const scale = (given.scale as number | undefined) ?? 3;
      const part = (given.parts as Record<string, { w: FakeArray }>).a.w;
      return { y: fakeArray(part.values.map((v) => scale * v)), total: sum(given.tree as { v: number }) + ((given.offset as number | null | undefined) ?? 0), mode: given.mode };
    });
    try {
      const text = await served.protoText();
      assert.match(text, /\n {2}map<string, \.tesseract_core\.schema_shapes\.v1\.Part> parts = \d+;\n/);
      assert.match(text, /\n {2}repeated \.tesseract_core\.schema_shapes\.v1\.Node children = \d+;\n/);
      assert.match(text, /\n {2}optional double scale = \d+;\n/);
      assert.match(text, /\n {2}optional \.tesseract_core\.schema_shapes\.v1\.LevelValue level = \d+;\n/);
      assert.match(text, /\n {2}optional string version = \d+;\n/);
      assert.match(text, /\n {2}optional \.tesseract_core\.schema_shapes\.v1\.ModeValue mode = \d+;\n/);
      assert.match(text, /\n {2}optional double offset = \d+;\n/);
      assert.deepEqual(served.described.differentiable_inputs, ["parts.{}.w", "extra.w"]);

      const [red] = literalNumbers(["red", "green"]);
      const [fast] = literalNumbers(["fast"]);
      const tree = { v: 1, children: [{ v: 2, children: [{ v: 3 }] }] };
      const given = { parts: { a: { w: f64([1, 2]), label: "x" } }, tree, color: red, mode: fast, count: 4 };
      const answer = await served.client.apply(given);
      // Unset fields with defaults are left out (the runtime applies its defaults); a list is sent as it is, empty too.
      const sentTree = { v: 1, children: [{ v: 2, children: [{ v: 3, children: [] }] }] };
      assert.deepEqual(served.seen[0], { parts: { a: { w: fakeArray([1, 2]), label: "x" } }, tree: sentTree, color: "red", mode: "fast", count: 4 });
      assert.deepEqual([flat(answer.y), answer.total, answer.mode], [[3, 6], 6, fast]);
      const jacobian = await served.client.jacobian({ inputs: given, inputPaths: ["parts.{a}.w"], outputPaths: ["y"], options: CENTRAL });
      assert.deepEqual(round(flat(jacobian.block("y", "parts.{a}.w"))), [3, 0, 0, 3]);

      const rest = await served.post("apply", { inputs: { parts: { a: { w: arrayJson([1, 2]), label: "x" } }, tree, scale: 2, color: "red", level: 2, mode: "fast", count: 4, offset: 0.5 } });
      assert.equal(rest.status, 200, JSON.stringify(rest.json));
      assert.deepEqual([rest.json.y.data.buffer, rest.json.total, rest.json.mode], [[2, 4], 6.5, "fast"]);
      assert.deepEqual([served.seen[served.seen.length - 1].level, served.seen[served.seen.length - 1].scale], [2, 2]);
    } finally {
      await served.stop();
    }
  });

  it("an any-dtype array (Array[shape, None]: every dtype in its enum, \"float64\" the example; or a differentiable_arrays dtype of null) declares none: the caller's dtype reaches the runtime and the runtime's comes back (int32 indices and uint8 counts were sent as float64: a 500, or OK with another number)", async () => {
    const inputs = { x: arraySchema(true), idx: dtypeArraySchema(null), counts: dtypeArraySchema(null), u: dtypeArraySchema(null, true), v: arraySchema(true) };
    const outputs = { y: arraySchema(true), doubled: dtypeArraySchema(null), z: dtypeArraySchema(null, true) };
    const doc = openApiDoc(inputs, outputs);
    // v's schema gives "float64" as its example and no enum, but its entry says it takes any dtype.
    doc.components.schemas.ApplyInputSchema.differentiable_arrays = { x: { shape: [null], dtype: "float64" }, u: { shape: [null], dtype: null }, v: { shape: [null], dtype: null } };
    doc.components.schemas.ApplyOutputSchema.differentiable_arrays = { y: { shape: [null], dtype: "float64" }, z: { shape: [null], dtype: null } };
    const served = await serveSchema(doc, (given) => {
      const [x, idx, counts, u, v] = ["x", "idx", "counts", "u", "v"].map((k) => given[k] as FakeArray);
      // numpy indexes with integers only, and doubles uint8 in uint8 (200 + 200 wraps to 144).
      if (!/int/.test(idx.dtype)) throw new Error(`IndexError('arrays used as indices must be of integer (or boolean) type')`);
      const doubled = counts.values.map((c) => (counts.dtype === "uint8" ? (2 * c) & 0xff : 2 * c));
      return { y: fakeArray(idx.values.map((i) => 2 * x.values[i])), doubled: { ...counts, values: doubled }, z: { ...u, values: u.values.map((w, i) => 3 * w + v.values[i]) } };
    });
    try {
      const text = await served.protoText();
      for (const key of ["idx", "counts"]) assert.match(text, new RegExp(`\\n {2}\\.tesseract\\.v1\\.Tensor ${key} = \\d+;\\n`));
      for (const key of ["u", "v", "z"]) assert.match(text, new RegExp(`\\n {2}\\.tesseract\\.v1\\.Tensor ${key} = \\d+ \\[\\(\\.tesseract\\.v1\\.differentiable\\) = true\\];\\n`));
      assert.match(text, /\n {2}\.tesseract\.v1\.Tensor x = \d+ \[\(\.tesseract\.v1\.differentiable\) = true, \(\.tesseract\.v1\.datatype\) = DATA_TYPE_FP64\];\n/);

      const given = { x: f64([0.1, 0.2, 0.3]), idx: ndarray(Int32Array.from([2, 0])), counts: ndarray(Uint8Array.from([200, 7])), u: f32([1.5, 2]), v: f32([0.25, 0.5]) };
      const answer = await served.client.apply(given);
      assert.deepEqual(["idx", "counts", "u", "v"].map((k) => (served.seen[0][k] as FakeArray).dtype), ["int32", "uint8", "float32", "float32"]);
      assert.deepEqual([flat(answer.y), answer.doubled.data, answer.z.data], [[0.6, 0.2], Uint8Array.from([144, 14]), Float32Array.from([4.75, 6.5])]);

      const rest = await served.post("apply", {
        inputs: {
          ...Object.fromEntries(["x", "u", "v"].map((k) => [k, arrayJson(flat(given[k as "x"]))])),
          idx: { shape: [2], dtype: "int32", data: { buffer: [2, 0], encoding: "json" } },
          counts: { shape: [2], dtype: "uint8", data: { buffer: [200, 7], encoding: "json" } },
        },
      });
      assert.equal(rest.status, 200, JSON.stringify(rest.json));
      assert.deepEqual([served.seen[1].idx, rest.json.doubled.dtype, rest.json.doubled.data.buffer], [{ shape: [2], dtype: "int32", values: [2, 0] }, "uint8", [144, 14]]);
      const openapi = (await (await fetch(`${served.rest}/openapi.json`)).json()) as { components: { schemas: Record<string, any> } };
      assert.deepEqual(openapi.components.schemas.ApplyInputSchema.differentiable_arrays.u, { shape: [null], dtype: null });

      // Differentiated, an FP32 input is perturbed in FP32 (the runtime is sent float32 points); an integer one is refused, as for any Tesseract.
      const before = served.seen.length;
      const jacobian = await served.client.jacobian({ inputs: given, inputPaths: ["u", "v"], outputPaths: ["z"], options: CENTRAL });
      assert.deepEqual([round(flat(jacobian.block("z", "u"))), round(flat(jacobian.block("z", "v")))].map((b) => b.map((e) => Math.round(e * 100) / 100)), [[3, 0, 0, 3], [1, 0, 0, 1]]);
      assert.deepEqual([...new Set(served.seen.slice(before).flatMap((s) => [(s.u as FakeArray).dtype, (s.v as FakeArray).dtype]))], ["float32"]);
      const integer = { ...given, u: ndarray(Int32Array.from([1, 2])) };
      await clientRejects(served.client.jacobian({ inputs: integer, inputPaths: ["u"], outputPaths: ["z"], options: CENTRAL }), "INVALID_ARGUMENT", /^inputPaths \(jac_inputs\): input path "u" has datatype DATA_TYPE_INT32; only DATA_TYPE_FP32 and DATA_TYPE_FP64 inputs can be differentiated$/);
    } finally {
      await served.stop();
    }
  });

  it("a declared dtype stays declared: tesseract-core's Array[shape, float32] and Array[shape, int32] list the dtypes numpy casts to it same_kind (float64 and int64 among them), which the enum check keeps", () => {
    const text = protoFromOpenApi(openApiDoc({ f: dtypeArraySchema("float32", true), i: dtypeArraySchema("int32"), b: dtypeArraySchema("bool") }, { y: dtypeArraySchema("float64", true) })).text;
    for (const [key, datatype] of [["f", "FP32"], ["i", "INT32"], ["b", "BOOL"], ["y", "FP64"]]) assert.match(text, new RegExp(`\\n {2}\\.?tesseract\\.v1\\.Tensor ${key} = \\d+ \\[.*\\(\\.?tesseract\\.v1\\.datatype\\) = DATA_TYPE_${datatype}\\];\\n`), text);
  });

  it("arrays as pydantic writes them, a $ref to an EncodedArrayModel__… component (object_type a const), are arrays: as a field, Optional, a dict's values, a list's items, in a model and as outputs (the start failed: \"x.shape: a tuple (items by position) has no protobuf form\")", async () => {
    const A = "EncodedArrayModel__any_1__float64__DIFFERENTIABLE";
    const F = "EncodedArrayModel__any_1__float32";
    const models = { [A]: arrayModel(true), [F]: arrayModel(false, "float32"), ...ARRAY_DATA_MODELS, Apply_Part: model({ w: ref(A) }) };
    const inputs = {
      x: { ...ref(A), description: "x" },
      opt: { anyOf: [ref(A), { type: "null" }], default: null },
      d: { type: "object", additionalProperties: ref(A) },
      l: { type: "array", items: ref(A) },
      part: ref("Apply_Part"),
      scale: ref(F),
    };
    const served = await serveSchema(openApiDoc(inputs, { y: ref(A), parts: { type: "object", additionalProperties: ref("Apply_Part") } }, models), (given) => {
      const [x, opt, part, scale] = [given.x, given.opt, (given.part as { w: FakeArray }).w, given.scale] as FakeArray[];
      const [d, l] = [(given.d as Record<string, FakeArray>).k, (given.l as FakeArray[])[0]];
      const y = x.values.map((v, i) => scale.values[0] * v + 2 * opt.values[i] + 3 * d.values[i] + 4 * l.values[i] + 5 * part.values[i]);
      return { y: fakeArray(y), parts: { p: { w: fakeArray(y) } } };
    });
    try {
      const text = await served.protoText();
      const fp64 = "[(.tesseract.v1.differentiable) = true, (.tesseract.v1.datatype) = DATA_TYPE_FP64]";
      for (const line of [`.tesseract.v1.Tensor x`, `.tesseract.v1.Tensor opt`, `map<string, .tesseract.v1.Tensor> d`, `repeated .tesseract.v1.Tensor l`, `.tesseract.v1.Tensor w`, `.tesseract.v1.Tensor y`]) {
        assert.ok(new RegExp(`\\n {2}${line.replace(/[.[\]()]/g, "\\$&")} = \\d+ ${fp64.replace(/[.[\]()]/g, "\\$&")};\\n`).test(text), `${line} in\n${text}`);
      }
      assert.match(text, /\n {2}\.tesseract\.v1\.Tensor scale = \d+ \[\(\.tesseract\.v1\.datatype\) = DATA_TYPE_FP32\];\n/);
      assert.deepEqual(served.described.differentiable_inputs, ["x", "opt", "d.{}", "l.[]", "part.w"]);
      assert.deepEqual(served.described.differentiable_outputs, ["y", "parts.{}.w"]);

      const given = { x: f64([1, 2]), opt: f64([0, 1]), d: { k: f64([1, 1]) }, l: [f64([0, 2])], part: { w: f64([1, 0]) }, scale: f64([0.5]) };
      const answer = await served.client.apply(given);
      assert.deepEqual(flat(answer.y), [0.5 + 0 + 3 + 0 + 5, 1 + 2 + 3 + 8 + 0]);
      assert.equal((served.seen[0].scale as FakeArray).dtype, "float32");
      const jacobian = await served.client.jacobian({ inputs: given, inputPaths: ["opt", "l.[0]", "part.w"], outputPaths: ["y"], options: CENTRAL });
      assert.deepEqual(["opt", "l.[0]", "part.w"].map((p) => round(flat(jacobian.block("y", p)))), [[2, 0, 0, 2], [4, 0, 0, 4], [5, 0, 0, 5]]);

      // The REST API's document repeats the runtime's rank, from the component.
      const openapi = (await (await fetch(`${served.rest}/openapi.json`)).json()) as { components: { schemas: Record<string, any> } };
      assert.deepEqual(openapi.components.schemas.Apply_InputSchema.properties.x.properties.shape, models[A].properties.shape);
      assert.deepEqual(openapi.components.schemas.Apply_InputSchema.properties.x.array_flags, ["DIFFERENTIABLE"]);
    } finally {
      await served.stop();
    }
  });

  it("a model of the user's with fields named object_type and shape is a model, not an array (it was taken for one: its message was a Tensor and every answer UNKNOWN, 'object_type is …, expected \"array\"')", async () => {
    const body = model({ object_type: { enum: ["sphere", "box"], title: "Object Type", type: "string" }, shape: { items: { type: "number" }, title: "Shape", type: "array" }, size: arraySchema(true) });
    const served = await serveSchema(openApiDoc({ body: ref("Apply_Body") }, { y: arraySchema(true), body: ref("Apply_Body") }, { Apply_Body: body }), (given) => {
      const b = given.body as { object_type: string; shape: number[]; size: FakeArray };
      return { y: fakeArray(b.size.values.map((v, i) => v * b.shape[i])), body: b };
    });
    try {
      const text = await served.protoText();
      assert.match(text, /\nmessage Body \{\n(?:.*\n)*? {2}repeated double shape = \d+;\n/);
      assert.match(text, /\n {2}\.tesseract_core\.schema_shapes\.v1\.Body body = \d+;\n/);
      assert.deepEqual(served.described.differentiable_inputs, ["body.size"]);

      const [sphere] = literalNumbers(["sphere", "box"]);
      const given = { body: { object_type: sphere, shape: [2, 3], size: f64([1, 1]) } };
      const answer = await served.client.apply(given);
      assert.deepEqual(served.seen[0], { body: { object_type: "sphere", shape: [2, 3], size: fakeArray([1, 1]) } });
      assert.deepEqual([flat(answer.y), answer.body.object_type, answer.body.shape, flat(answer.body.size)], [[2, 3], sphere, [2, 3], [1, 1]]);
      const jacobian = await served.client.jacobian({ inputs: given, inputPaths: ["body.size"], outputPaths: ["y"], options: CENTRAL });
      assert.deepEqual(round(flat(jacobian.block("y", "body.size"))), [2, 0, 0, 3]);
    } finally {
      await served.stop();
    }
  });

  it("root schemas as pydantic before 2.9 writes them, the inputs' and the outputs' $ref wrapped in allOf beside tesseract-core's description, are served (the start failed: 'ApplyInputSchema.properties.inputs and ApplyOutputSchema must be $refs to models')", async () => {
    const doc = openApiDoc({ x: arraySchema(true) }, { y: arraySchema(true) });
    const schemas = doc.components.schemas;
    schemas.ApplyInputSchema.properties.inputs = { allOf: [ref("Apply_InputSchema")], description: "The input data to apply the Tesseract to." };
    schemas.ApplyOutputSchema = { allOf: [ref("Apply_OutputSchema")], description: "The output data from applying the Tesseract.", title: "ApplyOutputSchema", differentiable_arrays: { y: { shape: [null], dtype: "float64" } } };
    const served = await serveSchema(doc, (given) => ({ y: fakeArray((given.x as FakeArray).values.map((v) => 3 * v)) }));
    try {
      assert.deepEqual([served.described.differentiable_inputs, served.described.differentiable_outputs], [["x"], ["y"]]);
      const answer = await served.client.apply({ x: f64([1, 2]) });
      assert.deepEqual(flat(answer.y), [3, 6]);
      const jacobian = await served.client.jacobian({ inputs: { x: f64([1, 2]) }, inputPaths: ["x"], outputPaths: ["y"], options: CENTRAL });
      assert.deepEqual(round(flat(jacobian.block("y", "x"))), [3, 0, 0, 3]);
    } finally {
      await served.stop();
    }
  });

  it("models under keys every JavaScript object has (toString, constructor, valueOf), with no field_order (tesseract-core's before it wrote one) or a malformed one, are served in the properties' order (the start failed: 'function is not iterable')", async () => {
    const inner = model({ w: arraySchema(true) });
    const models = { Apply_A: inner, Apply_B: inner, Apply_C: inner };
    const doc = openApiDoc({ toString: ref("Apply_A"), constructor: ref("Apply_B"), valueOf: ref("Apply_C") }, { y: arraySchema(true) }, models);
    const sum = (given: Record<string, unknown>) => ["toString", "constructor", "valueOf"].map((k) => (given[k] as { w: FakeArray }).w.values[0]).reduce((a, b) => a + b, 0);
    for (const fieldOrder of [undefined, { "": ["valueOf", "toString", "constructor"], toString: 5 }]) {
      if (fieldOrder) doc.components.schemas.ApplyInputSchema.field_order = fieldOrder;
      const served = await serveSchema(doc, (given) => ({ y: fakeArray([sum(given)]) }));
      try {
        assert.deepEqual(served.described.differentiable_inputs, fieldOrder ? ["value_of.w", "to_string.w", "constructor_2.w"] : ["to_string.w", "constructor_2.w", "value_of.w"]);
        const given = Object.fromEntries(served.described.differentiable_inputs.map((p, i) => [p.split(".")[0], { w: f64([i + 1]) }]));
        assert.deepEqual(flat((await served.client.apply(given)).y), [6]);
      } finally {
        await served.stop();
      }
    }
  });

  it("serves a model of 12 000 fields, built in linear time (protobufjs rebuilt its field index at each field: 77 s to start at 10 000 fields, 7 minutes at 20 000)", async () => {
    const inputs: Record<string, unknown> = { x: arraySchema(true) };
    for (let i = 0; i < 12_000; i++) inputs[`f${i}`] = { anyOf: [number, { type: "null" }], default: null };
    const served = await serveSchema(openApiDoc(inputs, { y: arraySchema(true) }), (given) => ({ y: fakeArray((given.x as FakeArray).values.map((v) => v * (given.f11999 as number))) }));
    try {
      assert.deepEqual(served.described.differentiable_inputs, ["x"]);
      const answer = await served.client.apply({ x: f64([1, 2]), f11999: 3 });
      assert.deepEqual(flat(answer.y), [3, 6]);
      assert.deepEqual(served.seen[0], { x: fakeArray([1, 2]), f11999: 3 });
    } finally {
      await served.stop();
    }
  });

  /** The start's error for a runtime serving `openapi` (one fake, its document swapped per case). */
  async function startError(openapi: Record<string, unknown>): Promise<string> {
    const fake = await startFakeTesseractCore({ openapi, apply: () => ({}) });
    try {
      const server = await startServer({ tesseract: fake.url, port: 0, logger: silentLogger }).catch((e: Error) => e);
      if (!(server instanceof Error)) {
        await server.close(0);
        return "started";
      }
      return server.message.replace(`${fake.url}/openapi.json: `, "");
    } finally {
      await fake.close();
    }
  }

  it("refuses at start what has no protobuf form, naming the property and what it is", async () => {
    const cat = model({ kind: { const: "cat", type: "string" }, a: number });
    const dog = model({ kind: { const: "dog", type: "string" }, b: number });
    const doc = (property: Record<string, unknown>, models: Record<string, unknown> = {}) => openApiDoc({ p: property }, { y: arraySchema(true) }, { Apply_Cat: cat, Apply_Dog: dog, ...models });
    const discriminated = { oneOf: [ref("Apply_Cat"), ref("Apply_Dog")], discriminator: { propertyName: "kind", mapping: { cat: "#/components/schemas/Apply_Cat", dog: "#/components/schemas/Apply_Dog" } } };
    const cases: [Record<string, unknown>, string][] = [
      [doc(discriminated), `p: a union (Cat | Dog, discriminated by "kind") has no protobuf form here: a field has one type; use one model with Optional fields, or a field per alternative`],
      [doc({ anyOf: [ref("Apply_Cat"), ref("Apply_Dog"), { type: "null" }], default: null }), "p: a union (Cat | Dog | None) has no protobuf form here: a field has one type; use one model with Optional fields, or a field per alternative"],
      [doc({ anyOf: [number, { type: "string" }] }), "p: a union (number | string) has no protobuf form here: a field has one type; use one model with Optional fields, or a field per alternative"],
      [doc({ type: "array", prefixItems: [number, { type: "string" }], minItems: 2, maxItems: 2 }), "p: a tuple (items by position) has no protobuf form; use a list or a model"],
      [doc({ type: "array", items: { type: "array", items: number } }), "p: a list of lists has no protobuf form (list[list[number]]); wrap the inner list in a model"],
      [doc({ type: "object", additionalProperties: { type: "array", items: number } }), "p: a dict of lists has no protobuf form (dict[str, list[number]]); wrap the inner list in a model"],
      [doc({ type: "array", items: { type: "object", additionalProperties: number } }), "p: a list of dicts has no protobuf form (list[dict[str, number]]); wrap the inner dict in a model"],
      [doc({ type: "object", additionalProperties: { type: "object", additionalProperties: number } }), "p: a dict of dicts has no protobuf form (dict[str, dict[str, number]]); wrap the inner dict in a model"],
      [doc({ type: "array", items: { anyOf: [number, { type: "null" }] } }), "p: a list of Optional values (None among its items) has no protobuf form: a repeated or map field cannot hold None; use a default value, or wrap the value in a model"],
      [doc({}), "p: a value of any type (Any, or no type) has no protobuf form; declare its type"],
      [doc({ type: "object" }), "p: a dict whose values have no schema (dict, dict[str, Any]) has no protobuf form; declare the values' type"],
      [doc({ type: "null" }), "p: a field that can only be None has no protobuf form"],
      [
        doc(ref("Apply_Node"), { Apply_Node: model({ w: arraySchema(true), children: { type: "array", items: ref("Apply_Node"), default: [] } }) }),
        "p.children.[]: tesseract_core.schema_shapes.v1.Node holds itself here and holds differentiable tensors, whose paths would have no end: differentiable paths are listed (Describe, patterns), so a recursive message cannot hold them; move them out of the recursion",
      ],
    ];
    for (const [openapi, expected] of cases) assert.equal(await startError(openapi), expected);
  });

  it("start errors quote the runtime's names, $refs and unions cut short, however long (they were repeated whole: 100 000 characters of $ref, 170 000 of union)", async () => {
    const long = "X".repeat(100_000);
    const doc = (inputs: Record<string, unknown>, models: Record<string, unknown> = {}) => openApiDoc(inputs, { y: arraySchema(true) }, models);
    const noSchema = doc({ q: number });
    ((noSchema.components as { schemas: Record<string, { properties: Record<string, unknown> }> }).schemas.Apply_InputSchema.properties)[long] = 1;
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["a $ref to no schema", doc({ p: { $ref: `#/components/schemas/${long}` } }), /^p: #\/components\/schemas\/X+… \(100021 characters\) is not in components\.schemas$/],
      ["a $ref to itself", doc({ p: ref(`Apply_${long}`) }, { [`Apply_${long}`]: ref(`Apply_${long}`) }), /^p: #\/components\/schemas\/Apply_X+… \(100027 characters\) refers to itself \(Apply_X+… \(\d+ characters\)\)$/],
      ["a key without a schema", noSchema, /^X{200}… \(100000 characters\): no schema for this field$/],
      ["a key holding a union", doc({ [long]: { anyOf: [number, { type: "string" }] } }), /^X{200}… \(100000 characters\): a union \(number \| string\) has no protobuf form here/],
      ["a union of 20 000 types", doc({ p: { anyOf: Array.from({ length: 20_000 }, (_, i) => ({ type: `t${i}` })) } }), /^p: a union \(t0 \| t1 \| .*… \(\d+ characters\)\) has no protobuf form here/],
      ["a type list of 20 000 types", doc({ p: { type: Array.from({ length: 20_000 }, (_, i) => `t${i}`) } }), /^p: a union of types \(t0 \| t1 \| .*… \(\d+ characters\)\) has no protobuf form here/],
      ["a discriminator", doc({ p: { oneOf: [number, { type: "string" }], discriminator: { propertyName: long } } }), /^p: a union \(number \| string, discriminated by "X{200}"… \(100000 characters\)\) has no protobuf form here/],
      ["a key with a control character", doc({ [`${long}\u0001`]: number }), /^X{200}… \(100001 characters\): the key "X{200}"… \(100001 characters\) cannot be written in a \.proto/],
      ["a list of lists", doc({ [long]: { type: "array", items: { type: "array", items: number } } }), /^X{200}… \(100000 characters\): a list of lists has no protobuf form/],
      ["a tuple", doc({ [long]: { type: "array", prefixItems: [] } }), /^X{200}… \(100000 characters\): a tuple/],
      ["a recursive model", doc({ p: ref(`Apply_N${long}`) }, { [`Apply_N${long}`]: model({ w: arraySchema(true), children: { type: "array", items: ref(`Apply_N${long}`), default: [] } }) }), /^p\.children\.\[\]: tesseract_core\.schema_shapes\.v1\.NX+… \(\d+ characters\) holds itself here/],
    ];
    for (const [what, openapi, expected] of cases) {
      const message = await startError(openapi);
      assert.match(message, expected, `${what}: ${message.slice(0, 300)}`);
      assert.ok(message.length < 1_000, `${what}: ${message.length} characters`);
    }
  });
});
