/**
 * A tesseract-core runtime whose schema holds every kind of value a Tesseract's may: nested models,
 * dicts and lists of arrays, an Optional array, 0-d arrays, arrays of bool, int8, uint8, int64,
 * float16, float32 and complex128, dimensions of unknown size, inputs with defaults, and outputs that
 * are plain numbers, strings, integers and booleans. Apply, Describe and the Jacobian (gRPC and REST)
 * give the runtime's values and the analytic derivatives; what cannot be differentiated here is
 * refused naming the field.
 */
import { strict as assert } from "node:assert";
import ndarray from "ndarray";
import { Algorithm, BoolArray } from "../client";
import { startServer } from "../index";
import { LogLines, assertClose, clientRejects, f32, f64, flat } from "./helpers";
import { reflectedClient } from "./fixtures/tesseract-core/bridge-clients";
import { startFakeTesseractCore, type FakeArray } from "./fixtures/tesseract-core/fake-tesseract-core";
import { dtypeArraySchema, model, openApiDoc, ref, serveSchema } from "./fixtures/tesseract-core/served-schemas";

type Json = Record<string, any>;

/** tesseract-core's schema of `Array[shape, dtype]` (None: a dimension of any size), DIFFERENTIABLE or not. */
function array(dtype: string, shape: (number | null)[], differentiable = false): Json {
  const schema = dtypeArraySchema(dtype, differentiable);
  const dim = (d: number | null): Json => (d === null ? { type: "integer", exclusiveMinimum: 0 } : { enum: [1, d], type: "integer" });
  const shapeSchema = { type: "array", minItems: shape.length, maxItems: shape.length, ...(shape.length ? { prefixItems: shape.map(dim) } : {}) };
  return { ...schema, properties: { ...schema.properties, shape: shapeSchema } };
}

const CENTRAL = { algorithm: Algorithm.ALGORITHM_CENTRAL };
const values = (a: unknown) => (a as FakeArray).values;
const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
const arrayJson = (dtype: string, shape: number[], buffer: unknown) => ({ shape, dtype, data: { buffer, encoding: "json" } });

describe("tesseract-core bridge: a schema of every value kind and dtype", function () {
  this.timeout(60_000);

  const models = { Apply_Nested: model({ m: array("float64", [null, 2], true), label: { type: "string" } }) };
  const inputs = {
    x: array("float32", [null], true),
    s: array("float64", [], true),
    mask: array("bool", [null]),
    small: array("int8", [null]),
    counts: array("uint8", [null]),
    big: array("int64", []),
    nested: ref("Apply_Nested"),
    parts: { type: "object", additionalProperties: array("float64", [null], true) },
    layers: { type: "array", items: array("float64", [2], true) },
    opt: { anyOf: [array("float64", [null], true), { type: "null" }], default: null },
    k: { type: "number", default: 2 },
    z: array("complex128", [null]),
  };
  const outputs = {
    y: array("float64", [null], true),
    w: array("float64", [], true),
    total: { type: "number" },
    label: { type: "string" },
    n: { type: "integer" },
    ok: { type: "boolean" },
  };
  /**
   * y = k·s·x² + Σ mask·small·counts (elementwise in x), n = len(x) + big, w = Σ nested.m + Σ_key Σ parts[key]²
   * + Σ_i (i + 1)·Σ layers[i] + 3·Σ opt: d y_j/d x_j = 2k·s·x_j, d y/d s = k·x², d w/d m = 1,
   * d w/d parts[key] = 2·parts[key], d w/d layers[i] = i + 1, d w/d opt = 3.
   */
  const apply = (given: Record<string, unknown>) => {
    const k = (given.k as number | undefined) ?? 2;
    const s = values(given.s)[0];
    const x = values(given.x);
    const offset = sum(values(given.mask).map((m, i) => m * values(given.small)[i] * values(given.counts)[i]));
    const nested = given.nested as { m: FakeArray; label: string };
    const parts = Object.values(given.parts as Record<string, FakeArray>).map((p) => sum(p.values.map((v) => v * v)));
    const layers = (given.layers as FakeArray[]).map((l, i) => (i + 1) * sum(l.values));
    const opt = given.opt ? 3 * sum(values(given.opt)) : 0;
    return {
      y: { shape: [x.length], dtype: "float64", values: x.map((v) => k * s * v * v + offset) },
      w: { shape: [], dtype: "float64", values: [sum(nested.m.values) + sum(parts) + sum(layers) + opt] },
      total: sum(x),
      label: `${nested.label}!`,
      n: x.length + values(given.big)[0],
      ok: values(given.mask).every(Boolean),
    };
  };
  const doc = openApiDoc(inputs, outputs, models);
  doc.components.schemas.ApplyInputSchema.differentiable_arrays = {
    x: { shape: [null], dtype: "float32" },
    s: { shape: [], dtype: "float64" },
    "nested.m": { shape: [null, 2], dtype: "float64" },
    "parts.{}": { shape: [null], dtype: "float64" },
    "layers.[]": { shape: [2], dtype: "float64" },
    opt: { shape: [null], dtype: "float64" },
  };
  doc.components.schemas.ApplyOutputSchema.differentiable_arrays = { y: { shape: [null], dtype: "float64" }, w: { shape: [], dtype: "float64" } };

  const given = {
    x: f32([0.5, -1.5, 2]),
    s: ndarray(Float64Array.of(1.25), []),
    mask: ndarray(BoolArray.of(1, 0, 1), [3]),
    small: ndarray(Int8Array.of(-3, 100, 7), [3]),
    counts: ndarray(Uint8Array.of(200, 1, 2), [3]),
    big: ndarray(BigInt64Array.of(2n ** 40n), []),
    nested: { m: f64([1, 2, 3, 4], [2, 2]), label: "mesh" },
    parts: { a: f64([0.5, 1]), "b.c": f64([-2]) },
    layers: [f64([1, 2]), f64([3, 4])],
    opt: f64([0.25, 0.75]),
    z: f64([1, -1]),
  };
  const offset = -3 * 200 + 7 * 2;
  const yOf = (k: number) => [0.5, -1.5, 2].map((v) => k * 1.25 * v * v + offset);
  const W = 10 + (0.25 + 1 + 4) + (3 + 2 * 7) + 3;

  it("Apply and Describe: every value reaches the runtime in its dtype and comes back, plain numbers, strings, integers and booleans among the outputs", async () => {
    const served = await serveSchema(doc, apply);
    try {
      assert.deepEqual(served.described.differentiable_inputs, ["x", "s", "nested.m", "parts.{}", "layers.[]", "opt"]);
      assert.deepEqual(served.described.differentiable_outputs, ["y", "w"]);
      const answer = await served.client.apply(given);
      const seen = served.seen[0];
      assert.deepEqual(
        ["x", "s", "mask", "small", "counts", "big"].map((key) => [(seen[key] as FakeArray).dtype, (seen[key] as FakeArray).shape]),
        [["float32", [3]], ["float64", []], ["bool", [3]], ["int8", [3]], ["uint8", [3]], ["int64", []]],
      );
      assert.deepEqual([values(seen.small), values(seen.counts), values(seen.big), values(seen.z)], [[-3, 100, 7], [200, 1, 2], [2 ** 40], [1, -1]]);
      assert.equal(seen.k, undefined, "k is left to the runtime's default");
      assert.deepEqual([flat(answer.y), flat(answer.w), answer.total, answer.label, answer.n, answer.ok], [yOf(2), [W], 1, "mesh!", 2 ** 40 + 3, false]);
      assert.deepEqual(answer.w.shape, []);

      const rest = await served.post("apply", {
        inputs: {
          x: arrayJson("float32", [3], [0.5, -1.5, 2]),
          s: arrayJson("float64", [], 1.25),
          mask: arrayJson("bool", [3], [true, false, true]),
          small: arrayJson("int8", [3], [-3, 100, 7]),
          counts: arrayJson("uint8", [3], [200, 1, 2]),
          big: arrayJson("int64", [], 2 ** 40),
          nested: { m: arrayJson("float64", [2, 2], [[1, 2], [3, 4]]), label: "mesh" },
          parts: { a: arrayJson("float64", [2], [0.5, 1]), "b.c": arrayJson("float64", [1], [-2]) },
          layers: [arrayJson("float64", [2], [1, 2]), arrayJson("float64", [2], [3, 4])],
          opt: null,
          k: 3,
          z: arrayJson("float64", [2], [1, -1]),
        },
      });
      assert.equal(rest.status, 200, JSON.stringify(rest.json));
      assert.deepEqual([rest.json.y.data.buffer, rest.json.w, rest.json.total, rest.json.label, rest.json.n, rest.json.ok], [yOf(3), { object_type: "array", shape: [], dtype: "float64", data: { buffer: W - 3, encoding: "json" } }, 1, "mesh!", 2 ** 40 + 3, false]);
    } finally {
      await served.stop();
    }
  });

  it("the Jacobian of every differentiable input kind (an FP32 array, a 0-d one, a nested model's, a dict's value, a list's item, an Optional's) is the analytic one, over gRPC and REST", async () => {
    const served = await serveSchema(doc, apply);
    try {
      const paths = ["x", "s", "nested.m", "parts.{a}", "parts.{b.c}", "layers.[1]", "opt"];
      const before = served.seen.length;
      const jacobian = await served.client.jacobian({ inputs: given, inputPaths: paths, outputPaths: ["y", "w"], options: CENTRAL });
      // Central differences: 2 evaluations per element (3 + 1 + 4 + 2 + 1 + 2 + 2 = 15 elements).
      assert.equal(served.seen.length - before, 30);
      const x = [0.5, -1.5, 2];
      // x is FP32 at the runtime: perturbed in FP32, divided by the step taken.
      assertClose(flat(jacobian.block("y", "x")), [2 * 2 * 1.25 * 0.5, 0, 0, 0, 2 * 2 * 1.25 * -1.5, 0, 0, 0, 2 * 2 * 1.25 * 2], 1e-3, "dy/dx");
      assertClose(flat(jacobian.block("y", "s")), x.map((v) => 2 * v * v), 1e-3, "dy/ds");
      assertClose(flat(jacobian.block("w", "nested.m")), [1, 1, 1, 1], 1e-6, "dw/dm");
      assert.deepEqual(jacobian.block("w", "nested.m").shape, [2, 2]);
      assertClose(flat(jacobian.block("w", "parts.{a}")), [1, 2], 1e-6, "dw/dparts.a");
      assertClose(flat(jacobian.block("w", "parts.{b.c}")), [-4], 1e-6, "dw/dparts.b.c");
      assertClose(flat(jacobian.block("w", "layers.[1]")), [2, 2], 1e-6, "dw/dlayers[1]");
      assertClose(flat(jacobian.block("w", "opt")), [3, 3], 1e-6, "dw/dopt");
      assertClose(flat(jacobian.block("w", "s")), [0], 0, "dw/ds");

      const rest = await served.post("jacobian", {
        inputs: { x: arrayJson("float32", [3], x), s: arrayJson("float64", [], 1.25), mask: arrayJson("bool", [3], [1, 0, 1]), small: arrayJson("int8", [3], [-3, 100, 7]), counts: arrayJson("uint8", [3], [200, 1, 2]), big: arrayJson("int64", [], 1), nested: { m: arrayJson("float64", [2, 2], [1, 2, 3, 4]), label: "" }, parts: {}, layers: [], z: arrayJson("float64", [0], []) },
        jac_inputs: ["s"],
        jac_outputs: ["y", "w"],
      });
      assert.equal(rest.status, 200, JSON.stringify(rest.json));
      assert.deepEqual(rest.json.w.s.shape, []);
      assertClose([rest.json.w.s.data.buffer], [0], 0, "REST dw/ds");
      assertClose(rest.json.y.s.data.buffer, x.map((v) => 2 * v * v), 1e-3, "REST dy/ds");
    } finally {
      await served.stop();
    }
  });

  it("an array the runtime flags DIFFERENTIABLE but declares float16 or complex is served, not differentiable, and a gradient naming it is refused saying why (float16 rounded every step away: a Jacobian of zeros answered OK)", async () => {
    const halfDoc = openApiDoc({ h: array("float16", [null], true), c: array("complex128", [null], true), x: array("float64", [null], true) }, { y: array("float64", [null], true) });
    halfDoc.components.schemas.ApplyInputSchema.differentiable_arrays = { h: { shape: [null], dtype: "float16" }, c: { shape: [null], dtype: "complex128" }, x: { shape: [null], dtype: "float64" } };
    // y = 2h + x + c (c's real part: the caller's values are real).
    const fake = await startFakeTesseractCore({ openapi: halfDoc, apply: (i) => ({ y: { shape: [2], dtype: "float64", values: values(i.h).map((h, k) => 2 * h + values(i.x)[k] + values(i.c)[k]) } }) });
    const lines = new LogLines();
    const warnings: Record<string, unknown>[] = [];
    void lines.next((line) => /served as not differentiable/.test(String(line.msg))).then((line) => warnings.push(line));
    const server = await startServer({ tesseract: fake.url, port: 0, httpPort: 0, logger: lines.logger });
    const { client, described } = await reflectedClient(server.address);
    try {
      assert.deepEqual(described.differentiable_inputs, ["x"]);
      const given = { h: f64([1000.3, 2]), c: f64([0.5, 0]), x: f64([1, 1]) };
      // The runtime rounds h to float16 (1000.3 is 1000.5): Apply answers what it computed.
      assert.deepEqual(flat((await client.apply(given)).y), [2002.5, 5]);
      const applies = fake.applyCalls;
      await clientRejects(
        client.jacobian({ inputs: given, inputPaths: ["h"], outputPaths: ["y"], options: CENTRAL }),
        "INVALID_ARGUMENT",
        /^inputPaths \(jac_inputs\): input path "h" is not differentiable here: the tesseract-core runtime declares it float16 and rounds every value of it to 11 significant bits, which loses a finite-difference step \(1 \+ 1e-6 is 1\); declare it float32 or float64 in the Tesseract to differentiate it; differentiable input paths: x$/,
      );
      await clientRejects(client.vjp({ inputs: given, inputPaths: ["c"], outputPaths: ["y"], cotangent: { y: f64([1, 1]) } }), "INVALID_ARGUMENT", /input path "c" is not differentiable here: the tesseract-core runtime declares it complex128 and finite differences here step real numbers only/);
      assert.equal(fake.applyCalls, applies, "no evaluation for a refused path");
      assertClose(flat((await client.jacobian({ inputs: given, inputPaths: ["x"], outputPaths: ["y"], options: CENTRAL })).block("y", "x")), [1, 0, 0, 1], 1e-6);

      const rest = `http://127.0.0.1:${server.httpPort}`;
      const res = await fetch(`${rest}/jacobian`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ inputs: { h: arrayJson("float32", [2], [1, 2]), c: arrayJson("float64", [2], [0, 0]), x: arrayJson("float64", [2], [1, 1]) }, jac_inputs: ["h"], jac_outputs: ["y"] }),
      });
      const [entry] = ((await res.json()) as Json).detail;
      assert.deepEqual([res.status, entry.type, entry.loc], [422, "value_error", ["body", "jac_inputs"]]);
      assert.match(entry.msg, /^Value error, jac_inputs: input path "h" is not differentiable here: the tesseract-core runtime declares it float16/);
      const openapi = (await (await fetch(`${rest}/openapi.json`)).json()) as Json;
      assert.deepEqual(Object.keys(openapi.components.schemas.ApplyInputSchema.differentiable_arrays), ["x"]);
      // The start said so, since Describe no longer lists what the runtime flags.
      assert.deepEqual(warnings.map((line) => line.arrays), [["Inputs.h (float16)", "Inputs.c (complex128)"]]);
    } finally {
      client.close();
      await server.close(0);
      await fake.close();
    }
  });

  it("float16 arrays are read as float32, which holds every value exactly: a runtime's float16 output (every Apply was UNKNOWN \"dtype is float16\"), and a REST caller's float16 input (a 422)", async () => {
    const halfDoc = openApiDoc({ h: array("float16", [null]), x: array("float64", [null], true) }, { hy: array("float16", [null]), y: array("float64", [null], true) });
    // hy = 1.5·h in float16 (the fake rounds its answer as numpy does), y = 2x.
    const served = await serveSchema(halfDoc, (i) => ({ hy: { shape: [2], dtype: "float16", values: values(i.h).map((h) => 1.5 * h) }, y: { shape: [2], dtype: "float64", values: values(i.x).map((x) => 2 * x) } }));
    try {
      // Values float16 holds (1000.3 is 1000.5 in float16, 0.1 is 0.0999755859375); 1.5·h is rounded to float16 again.
      const answer = await served.client.apply({ h: f32([1000.5, 0.0999755859375]), x: f64([1, 2]) });
      assert.ok(answer.hy.data instanceof Float32Array, answer.hy.data.constructor.name);
      assert.deepEqual([flat(answer.hy), flat(answer.y)], [[1501, 0.14990234375], [2, 4]]);
      const jacobian = await served.client.jacobian({ inputs: { h: f32([1, 2]), x: f64([1, 2]) }, inputPaths: ["x"], outputPaths: ["y"], options: CENTRAL });
      assertClose(flat(jacobian.block("y", "x")), [2, 0, 0, 2], 1e-6);

      // tesseract-core's Python client sends a numpy float16 array as its raw bytes.
      const base64 = { shape: [2], dtype: "float16", data: { buffer: Buffer.from("d163662e", "hex").toString("base64"), encoding: "base64" } };
      // Other x each time: the same inputs as an earlier call are answered from the evaluation cache.
      for (const [k, h] of [base64, arrayJson("float16", [2], [1000.3, 0.1])].entries()) {
        const rest = await served.post("apply", { inputs: { h, x: arrayJson("float64", [2], [k, 2]) } });
        assert.equal(rest.status, 200, JSON.stringify(rest.json));
        assert.deepEqual(values(served.seen.at(-1)!.h), [1000.5, 0.0999755859375]);
        assert.deepEqual([rest.json.hy.dtype, rest.json.hy.data.buffer], ["float32", [1501, 0.14990234375]]);
      }
      const tooBig = await served.post("apply", { inputs: { h: arrayJson("float16", [2], [1, 65520]), x: arrayJson("float64", [2], [1, 2]) } });
      assert.deepEqual([tooBig.status, tooBig.json.detail[0].loc, tooBig.json.detail[0].msg], [422, ["body", "inputs", "h", "data", "buffer"], "Value error, inputs.h.data.buffer element 1 is 65520, which dtype float16 cannot hold"]);
      const short = await served.post("apply", { inputs: { h: { ...base64, shape: [3] }, x: arrayJson("float64", [2], [1, 2]) } });
      assert.deepEqual([short.status, short.json.detail[0].msg], [422, "Value error, inputs.h.data.buffer has 4 bytes, expected 6 (3 float16 values of 2 bytes, shape [3])"]);
    } finally {
      await served.stop();
    }
  });
});
