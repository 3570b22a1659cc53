/**
 * Names a bridged runtime's models and Literals take in the generated .proto, where protobuf's scopes
 * make them meet: a model named like a map field's entry type (`AEntry` beside a dict `a`), model
 * titles that are no protobuf name (`3D`, `Été`, `My-Model` beside `My_Model`), Literal values whose
 * enum value names meet across enums of the package or within one (`"auto"` in two models, `""`,
 * `"a-b"` beside `"a_b"`). Each is served end to end against the fake runtime: buf compiles the
 * .proto `tesseract-grpc proto` writes, and values round-trip over gRPC and the REST API.
 */
import { strict as assert } from "node:assert";
import { literalNumbers } from "../server/schema/openapi-proto";
import { arraySchema, model, openApiDoc, ref, serveSchema } from "./fixtures/tesseract-core/served-schemas";
import { f64 } from "./helpers";

const number = { type: "number" };

describe("tesseract-core bridge: model and Literal names protobuf's scopes make meet", function () {
  this.timeout(60_000);

  it("a model named like a map field's entry type (AEntry beside a dict a, of AEntry too) is that model, not the entry: buf compiles the .proto and values round-trip", async () => {
    const inputs = { a: { type: "object", additionalProperties: ref("Apply_AEntry") }, e: ref("Apply_AEntry"), w: arraySchema(true) };
    const doc = openApiDoc(inputs, { y: arraySchema(true), e: ref("Apply_AEntry") }, { Apply_AEntry: model({ z: number }) });
    const served = await serveSchema(doc, (given) => ({ y: given.w, e: given.e }));
    try {
      // protoc resolves AEntry inside Inputs to the entry type of `a` ("use of synthetic map entry type"), as did reflection's descriptor.
      const text = await served.protoText();
      assert.match(text, /\n {2}\.tesseract_core\.schema_shapes\.v1\.AEntry e = \d+;\n/);
      assert.match(text, /\n {2}map<string, \.tesseract_core\.schema_shapes\.v1\.AEntry> a = \d+;\n/);
      assert.deepEqual(Object.keys(served.root.lookupType("tesseract_core.schema_shapes.v1.AEntry").fields), ["z"]);
      const outputs = await served.client.apply({ a: { k: { z: 1 } }, e: { z: 2 }, w: f64([1]) });
      assert.deepEqual(served.seen[0].a, { k: { z: 1 } });
      assert.deepEqual(served.seen[0].e, { z: 2 });
      assert.deepEqual({ ...outputs.e }, { z: 2 });
    } finally {
      await served.stop();
    }
  });

  it("model titles that are no protobuf name (3D, Été, 日本) or meet once sanitised (My-Model and My_Model, Foo and foo) are messages of their own; a field may share its model's name", async () => {
    const titles = ["3D", "Été", "日本", "My-Model", "My_Model", "Foo", "foo"];
    const inputs = { ...Object.fromEntries(titles.map((t, i) => [`m${i}`, ref(`Apply_${t}`)])), Foo: ref("Apply_Foo") };
    const models = Object.fromEntries(titles.map((t, i) => [`Apply_${t}`, model({ [`v${i}`]: number })]));
    const served = await serveSchema(openApiDoc({ ...inputs, w: arraySchema(true) }, { y: arraySchema(true) }, models), (given) => ({ y: given.w }));
    try {
      const text = await served.protoText();
      const messages = [...text.matchAll(/^message (\w+) \{/gm)].map((m) => m[1]);
      assert.deepEqual(messages.sort(), ["Ete", "Foo", "Foo2", "Inputs", "Model", "Model3D", "MyModel", "MyModel2", "Outputs"].sort());
      assert.match(text, /\n {2}\.tesseract_core\.schema_shapes\.v1\.Foo Foo = \d+;\n/);
      const tree = Object.fromEntries(titles.map((_, i) => [`m${i}`, { [`v${i}`]: i + 1 }]));
      await served.client.apply({ ...tree, Foo: { v5: 9 }, w: f64([1]) });
      for (let i = 0; i < titles.length; i++) assert.deepEqual(served.seen[0][`m${i}`], { [`v${i}`]: i + 1 });
      assert.deepEqual(served.seen[0].Foo, { v5: 9 });
    } finally {
      await served.stop();
    }
  });

  it("Literals whose value names meet in the package's one scope (\"auto\" of two models' `mode`) or within one (\"\", \"a-b\" beside \"a_b\") keep each value its own, over gRPC and REST", async () => {
    const models = { Apply_M1: model({ mode: { enum: ["auto", "x"], type: "string" } }), Apply_M2: model({ mode: { enum: ["auto", "y"], type: "string" } }) };
    const doc = openApiDoc({ m1: ref("Apply_M1"), m2: ref("Apply_M2"), kind: { enum: ["", "a-b", "a_b"], type: "string" }, w: arraySchema(true) }, { y: arraySchema(true), kind: { enum: ["", "a-b", "a_b"], type: "string" } }, models);
    const served = await serveSchema(doc, (given) => ({ y: given.w, kind: given.kind }));
    try {
      const text = await served.protoText();
      const [auto1] = literalNumbers(["auto", "x"]);
      const [auto2] = literalNumbers(["auto", "y"]);
      assert.match(text, new RegExp(`\\n {2}MODE_VALUE_AUTO = ${auto1};\\n`));
      assert.match(text, new RegExp(`\\n {2}MODE_VALUE2_AUTO = ${auto2};\\n`));
      const [empty, dash, underscore] = literalNumbers(["", "a-b", "a_b"]);
      for (const [kind, value] of [[empty, ""], [dash, "a-b"], [underscore, "a_b"]] as const) {
        const outputs = await served.client.apply({ m1: { mode: auto1 }, m2: { mode: auto2 }, kind, w: f64([1]) });
        const sent = served.seen[served.seen.length - 1];
        assert.deepEqual([sent.m1, sent.m2, sent.kind], [{ mode: "auto" }, { mode: "auto" }, value]);
        assert.equal(outputs.kind, kind);
        const rest = await served.post("apply", { inputs: { m1: { mode: "auto" }, m2: { mode: "auto" }, kind: value, w: { shape: [1], dtype: "float64", data: { buffer: [1], encoding: "json" } } } });
        assert.equal(rest.status, 200, JSON.stringify(rest.json));
        assert.equal(rest.json.kind, value);
      }
    } finally {
      await served.stop();
    }
  });

  it("Literal values whose names meet once protoc strips the enum's prefix and PascalCases them (\"\" named VALUE_1 beside \"value1\"; \"unspecified2\") are named apart: buf compiles the .proto", async () => {
    const kinds = ["", "value1", "value_2", "unspecified", "unspecified2", "x"];
    const doc = openApiDoc({ kind: { enum: kinds, type: "string" }, w: arraySchema(true) }, { y: arraySchema(true) });
    const served = await serveSchema(doc, (given) => ({ y: given.w }));
    try {
      const text = await served.protoText();
      const names = [...text.matchAll(/^ {2}(KIND_VALUE_\w+) = (\d+);$/gm)];
      // protoc's rule: value names equal once the enum's prefix is stripped and the rest PascalCased (VALUE_1 and VALUE1 are both Value1) are refused.
      const pascal = (name: string) => name.slice("KIND_VALUE_".length).split("_").map((p) => p.charAt(0) + p.slice(1).toLowerCase()).join("");
      assert.equal(new Set(names.map((m) => pascal(m[1]))).size, names.length, names.map((m) => m[1]).join(" "));
      const numbers = literalNumbers(kinds);
      for (const [i, kind] of kinds.entries()) {
        await served.client.apply({ kind: numbers[i], w: f64([1]) });
        assert.equal(served.seen[served.seen.length - 1].kind, kind);
      }
    } finally {
      await served.stop();
    }
  });
});
