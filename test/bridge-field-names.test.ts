/**
 * A bridged runtime's field names that protobuf cannot take as they are: keys whose default JSON
 * names meet (`foo_bar` beside `fooBar`), keys that are no protobuf identifier (`1x`, `a.b`, `été`,
 * `$type`), keys JavaScript objects hold already (`constructor`, `__proto__`), and a field named like
 * a map field's entry type. Each is served end to end against the fake runtime over HTTP: the .proto
 * `tesseract-grpc proto` writes compiles with buf, and each key's value reaches the runtime under
 * that key and comes back in its own field, over gRPC and the REST API.
 */
import { strict as assert } from "node:assert";
import { Algorithm } from "../client";
import { fieldNumbers, protoFromOpenApi } from "../server/schema/openapi-proto";
import { FakeValidationError, type FakeArray } from "./fixtures/tesseract-core/fake-tesseract-core";
import { arraySchema, fakeArray, model, openApiDoc, ref, serveSchema } from "./fixtures/tesseract-core/served-schemas";
import { clientRejects, f64, flat } from "./helpers";

const number = { type: "number" };
const CENTRAL = { algorithm: Algorithm.ALGORITHM_CENTRAL };
const arrayJson = (values: number[]) => ({ object_type: "array", shape: [values.length], dtype: "float64", data: { buffer: values, encoding: "json" } });

describe("tesseract-core bridge: field names protobuf cannot take as they are", function () {
  this.timeout(60_000);

  it("keys whose default JSON names meet (foo_bar and fooBar, a_b and aB, x1 and x_1) get fields of their own, numbered by the key: buf compiles the .proto, values and gradients round-trip over gRPC and REST", async () => {
    const keys = ["foo_bar", "fooBar", "a_b", "aB", "x1", "x_1"];
    const scalars = Object.fromEntries(keys.map((k) => [k, number]));
    const doc = openApiDoc({ w_v: arraySchema(true), wV: arraySchema(true), ...scalars }, { y: arraySchema(true), ...scalars });
    // y = foo_bar · w_v + fooBar · wV: each coefficient is its own key's, so a swap shows.
    const served = await serveSchema(doc, (inputs) => {
      const [wv, wV] = [inputs.w_v as FakeArray, inputs.wV as FakeArray];
      const y = wv.values.map((v, i) => (inputs.foo_bar as number) * v + (inputs.fooBar as number) * wV.values[i]);
      return { y: fakeArray(y), ...Object.fromEntries(keys.map((k) => [k, inputs[k]])) };
    });
    try {
      // The snake_case key keeps its name; the other takes its key in snake_case and a number, its key in an option.
      const text = await served.protoText();
      const numbers = fieldNumbers(["w_v", "wV", ...keys]);
      for (const [name, key] of [["foo_bar_2", "fooBar"], ["a_b_2", "aB"], ["x_1_2", "x_1"]]) {
        assert.ok(text.includes(`\n  optional double ${name} = ${numbers.get(key)} [(.tesseract.v1.json_key) = "${key}"];\n`), `${name} in\n${text}`);
      }
      assert.ok(text.includes(`\n  .tesseract.v1.Tensor w_v_2 = ${numbers.get("wV")} [(.tesseract.v1.differentiable) = true, (.tesseract.v1.datatype) = DATA_TYPE_FP64, (.tesseract.v1.json_key) = "wV"];\n`), text);
      for (const kept of ["foo_bar", "a_b", "x1", "w_v"]) assert.match(text, new RegExp(`\\n {2}(optional double|\\.tesseract\\.v1\\.Tensor) ${kept} = ${numbers.get(kept)}( \\[\\(\\.tesseract\\.v1\\.differentiable\\)[^\\]]*\\])?;\\n`));
      assert.deepEqual(served.described.differentiable_inputs, ["w_v", "w_v_2"]);

      const inputs = { w_v: f64([1, 2]), w_v_2: f64([10, 20]), foo_bar: 1, foo_bar_2: 2, a_b: 3, a_b_2: 4, x1: 5, x_1_2: 6 };
      const outputs = await served.client.apply(inputs);
      // Each key's value reached the runtime under that key, and came back in its own field.
      const sent = served.seen[0];
      assert.deepEqual(Object.fromEntries(keys.map((k) => [k, sent[k]])), { foo_bar: 1, fooBar: 2, a_b: 3, aB: 4, x1: 5, x_1: 6 });
      assert.deepEqual(Object.keys(sent).sort(), ["a_b", "aB", "foo_bar", "fooBar", "w_v", "wV", "x1", "x_1"].sort());
      assert.deepEqual([outputs.foo_bar, outputs.foo_bar_2, outputs.a_b, outputs.a_b_2, outputs.x1, outputs.x_1_2], [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(flat(outputs.y), [1 * 1 + 2 * 10, 1 * 2 + 2 * 20]);
      const jacobian = await served.client.jacobian({ inputs, inputPaths: ["w_v_2"], outputPaths: ["y"], options: CENTRAL });
      assert.deepEqual(Object.keys(jacobian.jacobian.y), ["w_v_2"]);
      assert.deepEqual(flat(jacobian.block("y", "w_v_2")).map((v: number) => Math.round(v * 1e6) / 1e6), [2, 0, 0, 2]);

      // The REST API speaks the runtime's keys, paths included, as tesseract-core does.
      const restInputs = { w_v: arrayJson([1, 2]), wV: arrayJson([10, 20]), foo_bar: 1, fooBar: 2, a_b: 3, aB: 4, x1: 5, x_1: 6 };
      const applied = await served.post("apply", { inputs: restInputs });
      assert.equal(applied.status, 200, JSON.stringify(applied.json));
      assert.deepEqual(Object.keys(applied.json), ["y", ...keys]);
      assert.deepEqual(keys.map((k) => applied.json[k]), [1, 2, 3, 4, 5, 6]);
      const rest = await served.post("jacobian", { inputs: restInputs, jac_inputs: ["wV"], jac_outputs: ["y"] });
      assert.equal(rest.status, 200, JSON.stringify(rest.json));
      assert.deepEqual(Object.keys(rest.json.y), ["wV"]);
      assert.deepEqual(rest.json.y.wV.data.buffer.flat().map((v: number) => Math.round(v * 1e6) / 1e6), [2, 0, 0, 2]);
      const vjp = await served.post("vector_jacobian_product", { inputs: restInputs, vjp_inputs: ["wV"], vjp_outputs: ["y"], cotangent_vector: { y: arrayJson([1, 1]) } });
      assert.equal(vjp.status, 200, JSON.stringify(vjp.json));
      assert.deepEqual(Object.keys(vjp.json), ["wV"]);
      const openapi = (await (await fetch(`${served.rest}/openapi.json`)).json()) as { components: { schemas: Record<string, any> } };
      assert.deepEqual(Object.keys(openapi.components.schemas.Apply_InputSchema.properties).sort(), ["w_v", "wV", ...keys].sort());
      assert.deepEqual(Object.keys(openapi.components.schemas.ApplyInputSchema.differentiable_arrays), ["w_v", "wV"]);
    } finally {
      await served.stop();
    }
  });

  it("keys that are no protobuf identifier (1x, a.b, a b, été, $type, a quote), that JavaScript objects hold (constructor, toString, __proto__), or that name a map's entry type (AEntry beside a): served under names of their own, the key in (tesseract.v1.json_key)", async () => {
    // key -> the field's name
    const renamed: Record<string, string> = { "1x": "field_1x", "a b": "a_b", "a.b": "a_b_2", "été": "ete", $type: "type", 'say "hi"': "say_hi", constructor: "constructor_2", toString: "to_string", ["__proto__"]: "proto", AEntry: "a_entry" };
    // Keys protobuf and JavaScript take as they are, protobuf's keywords among them.
    const kept = ["option", "message", "package", "syntax", "enum", "reserved", "optional", "repeated", "toJSON"];
    const keys = [...Object.keys(renamed), ...kept];
    const properties = Object.fromEntries([...keys.map((k) => [k, number]), ["a", { type: "object", additionalProperties: number }], ["w", arraySchema(true)], ["w.v", arraySchema(true)]]);
    const y = (inputs: Record<string, unknown>) => fakeArray((inputs.w as FakeArray).values.map((v, i) => 3 * v + 5 * (inputs["w.v"] as FakeArray).values[i]));
    const doc = openApiDoc(properties, { ...properties, y: arraySchema(true) });
    doc.components.schemas.ApplyInputSchema.differentiable_arrays = { w: { shape: [null], dtype: "float64" }, "w.v": { shape: [2], dtype: "float64" } };
    const served = await serveSchema(doc, (inputs) => ({ ...inputs, y: y(inputs) }));
    try {
      const text = await served.protoText();
      const numbers = fieldNumbers([...keys, "a", "w"]);
      for (const [key, name] of Object.entries(renamed)) {
        assert.ok(text.includes(`\n  optional double ${name} = ${numbers.get(key)} [(.tesseract.v1.json_key) = ${JSON.stringify(key)}];\n`), `${key} as ${name} in\n${text}`);
      }
      for (const key of kept) assert.ok(text.includes(`\n  optional double ${key} = ${numbers.get(key)};\n`), `${key} in\n${text}`);
      assert.ok(text.includes(`\n  map<string, double> a = ${numbers.get("a")};\n`), text);

      const names = [...Object.values(renamed), ...kept];
      const inputs: Record<string, unknown> = { w: f64([1, 2]), w_v: f64([0, 0]), a: { k: 0.5 }, ...Object.fromEntries(names.map((name, i) => [name, i + 1])) };
      const outputs = await served.client.apply(inputs);
      // Each value reached the runtime under its key, and came back in its own field.
      const sent = served.seen[0];
      assert.deepEqual(keys.map((k) => (Object.hasOwn(sent, k) ? sent[k] : `no ${k}`)), keys.map((_, i) => i + 1));
      assert.deepEqual(sent.a, { k: 0.5 });
      assert.deepEqual(names.map((name) => outputs[name]), names.map((_, i) => i + 1));
      assert.deepEqual(flat(outputs.y), [3, 6]);
      const jacobian = await served.client.jacobian({ inputs, inputPaths: ["w", "w_v"], outputPaths: ["y"], options: CENTRAL });
      assert.deepEqual(flat(jacobian.block("y", "w")).map((v: number) => Math.round(v * 1e6) / 1e6), [3, 0, 0, 3]);
      assert.deepEqual(flat(jacobian.block("y", "w_v")).map((v: number) => Math.round(v * 1e6) / 1e6), [5, 0, 0, 5]);

      // The REST API reads and answers the keys themselves, "__proto__" too.
      const body = `{"inputs": {"w": ${JSON.stringify(arrayJson([1, 2]))}, "w.v": ${JSON.stringify(arrayJson([0, 0]))}, "a": {"k": 0.5}, ${keys.map((k, i) => `${JSON.stringify(k)}: ${i + 1}`).join(", ")}}}`;
      const res = await fetch(`${served.rest}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body });
      const text2 = await res.text();
      assert.equal(res.status, 200, text2);
      const answer = JSON.parse(text2) as Record<string, unknown>;
      assert.deepEqual(keys.map((k) => (Object.hasOwn(answer, k) ? answer[k] : `no ${k}`)), keys.map((_, i) => i + 1));
      // A bad value at a key that is no plain name is located at that key, and so is an unknown key
      // (the loc stopped before "été" and "ä", and split "a.b" in two).
      for (const key of ["été", "a.b", "ä"]) {
        const bad = await served.post("apply", { inputs: { ...JSON.parse(body).inputs, [key]: "zz" } });
        assert.deepEqual([bad.status, bad.json.detail[0].loc], [422, ["body", "inputs", key]], JSON.stringify(bad.json));
      }
      // A key no path can spell ("w.v" is two segments) is named in REST paths by its field's name.
      const restJacobian = await served.post("jacobian", { inputs: JSON.parse(body).inputs, jac_inputs: ["w_v"], jac_outputs: ["y"] });
      assert.equal(restJacobian.status, 200, JSON.stringify(restJacobian.json));
      assert.deepEqual(Object.keys(restJacobian.json.y), ["w_v"]);
      // /openapi.json lists those paths in differentiable_arrays too, as its gradient requests enumerate them ("w.v" was listed: a 422).
      const openapi = (await (await fetch(`${served.rest}/openapi.json`)).json()) as { components: { schemas: Record<string, any> } };
      const { ApplyInputSchema, ApplyOutputSchema, JacobianInputSchema } = openapi.components.schemas;
      const enumerated = (list: string) => JacobianInputSchema.properties[list].items.anyOf.map((p: { const: string }) => p.const);
      assert.deepEqual([Object.keys(ApplyInputSchema.differentiable_arrays), Object.keys(ApplyOutputSchema.differentiable_arrays)], [enumerated("jac_inputs"), enumerated("jac_outputs")]);
      assert.deepEqual(Object.keys(ApplyOutputSchema.differentiable_arrays), ["w", "w_v", "y"]);
      assert.deepEqual(ApplyInputSchema.differentiable_arrays.w_v, { shape: [2], dtype: "float64" });
    } finally {
      await served.stop();
    }
  });

  it("a key's field number follows the key: the runtime's next version adding foo_bar beside fooBar renames fooBar's field, not its number", () => {
    const before = protoFromOpenApi(openApiDoc({ fooBar: number }, { y: arraySchema(true) }));
    const after = protoFromOpenApi(openApiDoc({ fooBar: number, foo_bar: number }, { y: arraySchema(true) }));
    const number1 = /optional double fooBar = (\d+);/.exec(before.text)?.[1];
    assert.ok(number1, before.text);
    assert.match(after.text, new RegExp(`optional double foo_bar_2 = ${number1} \\[\\(tesseract\\.v1\\.json_key\\) = "fooBar"\\];`));
  });
});

describe("tesseract-core bridge: a runtime's 422 located in this server's paths", function () {
  this.timeout(60_000);

  it("its loc under inputs names fields (fooBar is foo_bar_2), dict keys in braces and list indices in brackets, over gRPC; REST callers get the runtime's entries as written (inputs.data.a.b read as a path to another place)", async () => {
    const doc = openApiDoc(
      { fooBar: number, foo_bar: number, data: { type: "object", additionalProperties: arraySchema(true) }, layers: { type: "array", items: ref("Layer") }, x: arraySchema(true) },
      { y: arraySchema(true) },
      { Layer: model({ "w.v": arraySchema(true) }) },
    );
    let refuseAt: (string | number)[] = [];
    const served = await serveSchema(doc, () => {
      throw new FakeValidationError(refuseAt, "Value error, refused here");
    });
    try {
      const inputs = { foo_bar: 1, foo_bar_2: 2, data: { "a.b": f64([1]) }, layers: [{ w_v: f64([1]) }], x: f64([1, 2]) };
      const cases: [(string | number)[], string][] = [
        [["inputs", "fooBar"], "inputs.foo_bar_2"],
        [["inputs", "data", "a.b"], "inputs.data.{a.b}"],
        [["inputs", "data", "a.b", "shape", 0], "inputs.data.{a.b}.shape.[0]"],
        [["inputs", "layers", 1, "w.v", "data", "buffer"], "inputs.layers.[1].w_v.data.buffer"],
        [["inputs"], "inputs"],
      ];
      for (const [loc, path] of cases) {
        refuseAt = loc;
        await clientRejects(served.client.apply(inputs), "INVALID_ARGUMENT", new RegExp(`refused the inputs: ${path.replace(/[.[\]{}]/g, "\\$&")}: Value error, refused here$`));
      }
      // A key the schema does not know is the runtime's changed schema, not the caller's mistake; shown as written.
      refuseAt = ["inputs", "nope", "deeper"];
      await clientRejects(served.client.apply(inputs), "UNKNOWN", /refused the inputs over a field its schema and this server's disagree on: inputs\.nope\.deeper: Value error, refused here; /);
      refuseAt = ["inputs", "data", "a.b"];
      const rest = await served.post("apply", { inputs: { foo_bar: 1, fooBar: 2, data: { "a.b": arrayJson([1]) }, layers: [], x: arrayJson([1, 2]) } });
      assert.equal(rest.status, 422);
      assert.deepEqual(rest.json.detail[0].loc, ["body", "inputs", "data", "a.b"]);
    } finally {
      await served.stop();
    }
  });
});

describe("tesseract-core bridge: differentiated outputs named otherwise", function () {
  this.timeout(60_000);

  it("an output whose key is renamed (y.z as y_z, fooBar as foo_bar_2) is read by its key in every evaluation of a job, not only the first: the Jacobian has its values", async () => {
    const doc = openApiDoc({ w: arraySchema(true) }, { "y.z": arraySchema(true), foo_bar: arraySchema(true), fooBar: arraySchema(true) });
    const served = await serveSchema(doc, (inputs) => {
      const w = (inputs.w as FakeArray).values;
      return { "y.z": fakeArray(w.map((v) => 2 * v)), foo_bar: fakeArray(w.map((v) => 3 * v)), fooBar: fakeArray(w.map((v) => 7 * v)) };
    });
    // Enough elements that evaluations go on after the first answer: those read only the differentiated leaves.
    const n = 64;
    const w = Array.from({ length: n }, (_, i) => i + 1);
    const diagonal = (values: number[], k: number) => values.every((v, i) => Math.abs(v - (Math.floor(i / n) === i % n ? k : 0)) < 1e-6);
    try {
      assert.deepEqual(served.described.differentiable_outputs, ["y_z", "foo_bar", "foo_bar_2"]);
      const jacobian = await served.client.jacobian({ inputs: { w: f64(w) }, inputPaths: ["w"], outputPaths: ["y_z", "foo_bar_2"], options: CENTRAL });
      assert.ok(served.seen.length > 10, `${served.seen.length} evaluations`);
      assert.ok(diagonal(flat(jacobian.block("y_z", "w")), 2));
      assert.ok(diagonal(flat(jacobian.block("foo_bar_2", "w")), 7));
      const rest = await served.post("jacobian", { inputs: { w: arrayJson(w) }, jac_inputs: ["w"], jac_outputs: ["fooBar", "y_z"] });
      assert.equal(rest.status, 200, JSON.stringify(rest.json));
      assert.ok(diagonal(rest.json.fooBar.w.data.buffer.flat(), 7));
      assert.ok(diagonal(rest.json.y_z.w.data.buffer.flat(), 2));
    } finally {
      await served.stop();
    }
  });
});

describe("tesseract-core bridge: a differentiable array keyed __proto__", function () {
  this.timeout(60_000);

  it("the REST Jacobian answers it under its key, on either side, and leaves Object.prototype alone (its entries went onto Object.prototype); /openapi.json lists it", async () => {
    const doc = openApiDoc({ ["__proto__"]: arraySchema(true), w: arraySchema(true) }, { ["__proto__"]: arraySchema(true) });
    const served = await serveSchema(doc, (inputs) => {
      const [p, w] = [(inputs["__proto__"] as FakeArray).values, (inputs.w as FakeArray).values];
      return { ["__proto__"]: fakeArray(p.map((v, i) => 2 * v + 3 * w[i])) };
    });
    try {
      const inputs = JSON.parse(`{"__proto__": ${JSON.stringify(arrayJson([1, 2]))}, "w": ${JSON.stringify(arrayJson([3, 4]))}}`);
      const rest = await served.post("jacobian", { inputs, jac_inputs: ["__proto__", "w"], jac_outputs: ["__proto__"] });
      assert.equal(rest.status, 200, JSON.stringify(rest.json));
      assert.ok(!Object.hasOwn(Object.prototype, "w"), "Object.prototype untouched");
      assert.ok(Object.hasOwn(rest.json, "__proto__"), JSON.stringify(rest.json));
      const block = rest.json["__proto__"];
      assert.deepEqual(Object.keys(block), ["__proto__", "w"]);
      assert.deepEqual(block.w.data.buffer.flat().map((v: number) => Math.round(v * 1e6) / 1e6), [3, 0, 0, 3]);
      assert.deepEqual(block["__proto__"].data.buffer.flat().map((v: number) => Math.round(v * 1e6) / 1e6), [2, 0, 0, 2]);
      // /openapi.json lists it too.
      const openapi = (await (await fetch(`${served.rest}/openapi.json`)).json()) as { components: { schemas: Record<string, any> } };
      assert.deepEqual(Object.keys(openapi.components.schemas.ApplyInputSchema.differentiable_arrays), ["__proto__", "w"]);
      assert.deepEqual(Object.keys(openapi.components.schemas.ApplyOutputSchema.differentiable_arrays), ["__proto__"]);
    } finally {
      delete (Object.prototype as Record<string, unknown>).w;
      await served.stop();
    }
  });
});
