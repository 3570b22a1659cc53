/**
 * A tesseract-core Tesseract's apply schemas as protobuf messages (server/schema/openapi-proto.ts),
 * from an /openapi.json written after tesseract-core's conventions (test/fixtures/tesseract-core/):
 * nested models, dicts of arrays, lists of models, optional fields, a Literal, FP32 arrays.
 */
import { strict as assert } from "node:assert";
import { jsonToTree } from "../client/json-form";
import * as fs from "node:fs";
import * as path from "node:path";
import type * as protobuf from "protobufjs";
import { fieldNumbers, literalNumbers, protoFromOpenApi, packageFromTitle } from "../server/schema/openapi-proto";
import { loadRootFromText, MessageSchema } from "../server/schema/schema";

const DOC = JSON.parse(fs.readFileSync(path.join(__dirname, "../../test/fixtures/tesseract-core/meshstats-openapi.json"), "utf8"));

describe("tesseract-core schemas as protobuf messages", () => {
  const proto = protoFromOpenApi(DOC);
  const root = loadRootFromText(proto.text);
  const type = (name: string) => root.lookupType(`${proto.packageName}.${name}`);
  const field = (message: string, name: string) => type(message).fields[name] as protobuf.Field & { keyType?: string };
  /** The document with its schemas patched (a copy). */
  const withSchemas = (patch: (s: Record<string, any>) => void) => {
    const doc = structuredClone(DOC);
    patch(doc.components.schemas);
    return doc;
  };

  it("names the package after the title, the messages after the models", () => {
    assert.equal(proto.packageName, "tesseract_core.mesh_stats.v1");
    assert.equal(proto.inputType, "tesseract_core.mesh_stats.v1.Inputs");
    assert.equal(proto.outputType, "tesseract_core.mesh_stats.v1.Outputs");
    assert.equal(packageFromTitle("3D solver!"), "tesseract_core.t_3d_solver.v1");
    // A title too long for a file name: cut, and titles that differ only past the cut still differ.
    const long = "Heat solver ".repeat(30);
    assert.equal(packageFromTitle(long), "tesseract_core.heat_solver_heat_solver_heat_solver_heat_solver_heat_so_faff1a02.v1");
    assert.notEqual(packageFromTitle(`${long}A`), packageFromTitle(`${long}B`));
    // tesseract-core's title of an unnamed Tesseract: tesseract_core.tesseract.v1 hid tesseract.v1.Tensor, and the server did not start.
    for (const title of ["Tesseract", " tesseract! ", undefined]) {
      const generated = protoFromOpenApi({ ...DOC, info: { ...DOC.info, title } });
      assert.equal(generated.packageName, "tesseract_core.unnamed_tesseract.v1");
      assert.ok(loadRootFromText(generated.text).lookupType(generated.inputType));
    }
    assert.throws(() => protoFromOpenApi(DOC, { packageName: "acme.tesseract.v1" }), /^Error: package "acme\.tesseract\.v1" has a part named "tesseract", which hides the tesseract\.v1 types its messages use: choose another \(--proto-package\)$/);
    assert.equal(protoFromOpenApi(DOC, { packageName: "acme.mesh.v2" }).inputType, "acme.mesh.v2.Inputs");
  });

  it("writes fields in the declared order (field_order) and numbers them by name: stubs of one version fit the next (an inserted field moved every later one's number)", () => {
    assert.deepEqual(type("Inputs").fieldsArray.map((f) => f.name), ["mesh", "layers", "method", "scale", "label"]);
    assert.deepEqual(type("Mesh").fieldsArray.map((f) => f.name), ["n_points", "points", "cell_data", "tags"]);
    const ids = (t: protobuf.Type) => t.fieldsArray.map((f) => f.id);
    for (const id of [...ids(type("Inputs")), ...ids(type("Mesh"))]) assert.ok(id >= 1 && id < 1 << 24 && !(id >= 19000 && id < 20000), `field number ${id}`);
    assert.deepEqual(fieldNumbers(["mesh", "layers"]), fieldNumbers(["layers", "mesh"]));
    // The next version inserts a field first, in the inputs and in the mesh, and drops "label".
    const next = withSchemas((s) => {
      s.Apply_InputSchema.properties = { alpha: { type: "number", default: 0 }, ...s.Apply_InputSchema.properties };
      delete s.Apply_InputSchema.properties.label;
      s.Apply_Mesh.properties = { weight: { type: "number", default: 1 }, ...s.Apply_Mesh.properties };
      const order = s.ApplyInputSchema.field_order;
      order[""] = ["alpha", ...order[""].filter((f: string) => f !== "label")];
      order.mesh = ["weight", ...order.mesh];
    });
    const nextRoot = loadRootFromText(protoFromOpenApi(next).text);
    const nextType = (name: string) => nextRoot.lookupType(`${proto.packageName}.${name}`);
    for (const [message, name] of [["Inputs", "mesh"], ["Inputs", "scale"], ["Mesh", "n_points"], ["Mesh", "tags"]]) assert.equal(nextType(message).fields[name].id, type(message).fields[name].id, `${message}.${name}`);
    // An old stub's message reads in the next version as it was meant: no value lands in another field.
    const old = type("Inputs").encode(type("Inputs").fromObject({ mesh: { n_points: 7, tags: ["a"] }, scale: 2.5 })).finish();
    assert.deepEqual(nextType("Inputs").toObject(nextType("Inputs").decode(old), { longs: Number }), { mesh: { n_points: 7, tags: ["a"] }, scale: 2.5 });
  });

  it("maps models, arrays, dicts, lists, scalars, Literals and optionals", () => {
    assert.equal(field("Inputs", "mesh").type, "Mesh");
    assert.ok(field("Inputs", "layers").repeated);
    assert.equal(field("Inputs", "layers").type, "Layer");
    assert.equal(field("Mesh", "n_points").type, "int64");
    assert.equal(field("Mesh", "points").type, "tesseract.v1.Tensor");
    assert.ok(field("Mesh", "cell_data").map);
    assert.equal(field("Mesh", "cell_data").keyType, "string");
    assert.ok(field("Mesh", "tags").repeated);
    assert.equal(field("Mesh", "tags").type, "string");
    assert.equal(field("Inputs", "scale").type, "double");
    // Fields with a default or Optional[...] are proto3 optional: unset means tesseract-core's default.
    // Every scalar has presence, required (n_points) or not: a required one left unset is refused, not sent as 0.
    for (const [message, name] of [["Inputs", "scale"], ["Inputs", "label"], ["Inputs", "method"], ["Mesh", "n_points"]]) assert.ok(field(message, name).partOf, `${name} is optional`);
    const method = root.lookupEnum(`${proto.packageName}.MethodValue`);
    const [central, forward] = literalNumbers(["central", "forward"]);
    assert.deepEqual({ ...method.values }, { METHOD_VALUE_UNSPECIFIED: 0, METHOD_VALUE_CENTRAL: central, METHOD_VALUE_FORWARD: forward });
    assert.deepEqual(proto.enumLiterals[`${proto.packageName}.MethodValue`], { values: ["central", "forward"], numbers: [central, forward] });
  });

  it("numbers a Literal's enum values by the values: stubs of one version fit the next (a value inserted first made an old stub's \"central\" the runtime's \"forward\")", () => {
    const numbers = literalNumbers(["central", "forward", 1, "1", true, null, "\u00e9t\u00e9"]);
    for (const n of numbers) assert.ok(Number.isInteger(n) && n >= 1 && n < 1 << 24, `value number ${n}`);
    assert.equal(new Set(numbers).size, numbers.length);
    assert.deepEqual(literalNumbers(["forward", "central"]), [numbers[1], numbers[0]]);
    // Values that meet on a number ("central" and "a20377795" hash alike) take the next free one in
    // the order of their JSON, whatever their order in the Literal.
    assert.deepEqual(literalNumbers(["a20377795"]), [numbers[0]]);
    assert.deepEqual(literalNumbers(["central", "a20377795"]), [numbers[0] + 1, numbers[0]]);
    assert.deepEqual(literalNumbers(["a20377795", "central"]), [numbers[0], numbers[0] + 1]);
    const many = Array.from({ length: 5000 }, (_, i) => `v${i}`);
    assert.equal(new Set(literalNumbers(many)).size, many.length);
    assert.deepEqual(literalNumbers([...many].reverse()), literalNumbers(many).reverse());
    // The next version puts "backward" first and drops "forward".
    const next = withSchemas((s) => {
      s.Apply_InputSchema.properties.method.enum = ["backward", "central"];
    });
    const nextRoot = loadRootFromText(protoFromOpenApi(next).text);
    const nextInputs = nextRoot.lookupType(`${proto.packageName}.Inputs`);
    const old = type("Inputs").encode(type("Inputs").fromObject({ method: "METHOD_VALUE_CENTRAL" })).finish();
    assert.equal(nextInputs.toObject(nextInputs.decode(old), { enums: String }).method, "METHOD_VALUE_CENTRAL");
    // An old stub's "forward" is no value of the next: the bridge refuses it rather than send another.
    const dropped = nextInputs.decode(type("Inputs").encode(type("Inputs").fromObject({ method: "METHOD_VALUE_FORWARD" })).finish()) as unknown as { method: number };
    assert.equal(nextRoot.lookupEnum(`${proto.packageName}.MethodValue`).valuesById[dropped.method], undefined);
  });

  it("names Literal values that spell the same protobuf name apart, and declares arrays' dtypes", () => {
    const doc = structuredClone(DOC);
    doc.components.schemas.Apply_InputSchema.properties.method.enum = ["semi-implicit", "semi_implicit", "Semi Implicit", "-", "unspecified"];
    const generated = protoFromOpenApi(doc);
    const method = loadRootFromText(generated.text).lookupEnum(`${generated.packageName}.MethodValue`);
    // The three that spell SEMI_IMPLICIT are all named by position: the first kept the name, and the
    // CLI, matching short names whatever their case, sent "semi_implicit" as "semi-implicit".
    const literals = ["semi-implicit", "semi_implicit", "Semi Implicit", "-", "unspecified"];
    const numbers = literalNumbers(literals);
    assert.deepEqual({ ...method.values }, {
      METHOD_VALUE_UNSPECIFIED: 0,
      METHOD_VALUE_VALUE_1: numbers[0],
      METHOD_VALUE_VALUE_2: numbers[1],
      METHOD_VALUE_VALUE_3: numbers[2],
      METHOD_VALUE_VALUE_4: numbers[3],
      METHOD_VALUE_VALUE_5: numbers[4],
    });
    const inputs = loadRootFromText(generated.text).lookupType(`${generated.packageName}.Inputs`);
    assert.throws(() => jsonToTree(inputs, { method: "semi_implicit" }, "inputs"), /unknown MethodValue value "semi_implicit"/);
    assert.equal(jsonToTree(inputs, { method: "value_2" }, "inputs").method, numbers[1]);
    assert.deepEqual(generated.enumLiterals[`${generated.packageName}.MethodValue`], { values: literals, numbers });
    assert.equal(field("Mesh", "points").options?.["(tesseract.v1.datatype)"], "DATA_TYPE_FP64");
    assert.equal(field("Layer", "weights").options?.["(tesseract.v1.datatype)"], "DATA_TYPE_FP32");
    assert.equal(field("Outputs", "barycenter").options?.["(tesseract.v1.datatype)"], "DATA_TYPE_FP64");
  });

  it("enum value names are unique in the package and enums avoid the models' names (protoc refused MODE_VALUE_VALUE_A twice; a ParameterValue model stopped the start)", () => {
    const doc = withSchemas((s) => {
      s.Apply_InputSchema.properties.mode = { enum: ["value_a", "b"], default: "b" };
      s.Apply_InputSchema.properties.mode_value = { enum: ["a", "c"], default: "c" };
      s.Apply_InputSchema.properties.parameter = { enum: [-1, 0.5, null, true], default: true };
      s.Apply_InputSchema.properties.parameters = { $ref: "#/components/schemas/Apply_ParameterValue" };
      s.Apply_ParameterValue = { type: "object", properties: { k: { type: "number" } }, required: ["k"] };
    });
    const generated = protoFromOpenApi(doc);
    const names = [...generated.text.matchAll(/^ {2}([A-Z0-9_]+) = \d+;$/gm)].map((m) => m[1]);
    assert.equal(new Set(names).size, names.length, names.join(" "));
    const root = loadRootFromText(generated.text);
    assert.ok(root.lookupType(`${generated.packageName}.ParameterValue`));
    assert.deepEqual(Object.keys(root.lookupEnum(`${generated.packageName}.ParameterValue2`).values), ["PARAMETER_VALUE2_UNSPECIFIED", "PARAMETER_VALUE2_MINUS_1", "PARAMETER_VALUE2_0_POINT_5", "PARAMETER_VALUE2_NULL", "PARAMETER_VALUE2_TRUE"]);
  });

  it("models whose names meet (a nested `Inputs`; `mesh_data` beside `MeshData`) are messages of their own, numbered in the keys' order", () => {
    const doc = withSchemas((s) => {
      s.Apply_InputSchema.properties.inner = { $ref: "#/components/schemas/Apply_Inputs" };
      s.Apply_Inputs = { type: "object", properties: { x: { type: "number" } }, required: ["x"] };
      s.Apply_InputSchema.properties.a = { $ref: "#/components/schemas/Apply_mesh_data" };
      s.Apply_InputSchema.properties.b = { $ref: "#/components/schemas/Apply_MeshData" };
      s.Apply_mesh_data = { type: "object", properties: { y: { type: "number" } }, required: ["y"] };
      s.Apply_MeshData = { type: "object", properties: { z: { type: "number" }, tag: { type: "string" } }, required: ["z", "tag"] };
    });
    const generated = protoFromOpenApi(doc);
    const root = loadRootFromText(generated.text);
    const message = (name: string) => root.lookupType(`${generated.packageName}.${name}`);
    assert.equal(generated.inputType, `${generated.packageName}.Inputs`);
    // The nested Inputs was the inputs' own message: the inputs referred to themselves and every request was refused.
    assert.equal(message("Inputs").fields.inner.type, "Inputs2");
    assert.deepEqual(Object.keys(message("Inputs2").fields), ["x"]);
    // Apply_MeshData sorts before Apply_mesh_data: it keeps the name; the other's fields had vanished into it.
    assert.equal(message("Inputs").fields.b.type, "MeshData");
    assert.equal(message("Inputs").fields.a.type, "MeshData2");
    assert.deepEqual(Object.keys(message("MeshData").fields), ["z", "tag"]);
    assert.deepEqual(Object.keys(message("MeshData2").fields), ["y"]);
  });

  it("marks exactly the arrays tesseract-core flags DIFFERENTIABLE, so the paths match its differentiable_arrays", () => {
    const inputs = new MessageSchema(type("Inputs"));
    assert.deepEqual(inputs.differentiablePatternNames(), ["mesh.points", "mesh.cell_data.{}", "layers.[].weights"]);
    assert.deepEqual(inputs.differentiablePatternNames().sort(), Object.keys(DOC.components.schemas.ApplyInputSchema.differentiable_arrays).sort());
    assert.deepEqual(new MessageSchema(type("Outputs")).differentiablePatternNames(), ["barycenter"]);
  });

  it("refuses what has no protobuf form, naming the property", () => {
    // Optional lists and dicts, and tuples, were refused as "a union of types", quoting a plain list's schema.
    assert.throws(() => protoFromOpenApi(withSchemas((s) => (s.Apply_Mesh.properties.ws = { anyOf: [{ type: "array", items: { type: "number" } }, { type: "null" }], default: null }))), /^Error: mesh\.ws: an optional list \(list \| None\) has no protobuf form: a repeated or map field cannot tell None from empty; make it required, or default it to empty$/);
    assert.throws(() => protoFromOpenApi(withSchemas((s) => (s.Apply_Mesh.properties.pair = { type: "array", prefixItems: [{ type: "number" }, { type: "number" }] }))), /^Error: mesh\.pair: a tuple \(items by position\) has no protobuf form; use a list or a model$/);
    // A key no .proto string can carry for (tesseract.v1.json_key): protobufjs reads neither `\"` nor `\u` escapes.
    assert.throws(() => protoFromOpenApi(withSchemas((s) => (s.Apply_Mesh.properties[`it's "x"`] = { type: "number" }))), /^Error: mesh\.it's "x": the key "it's \\"x\\"" cannot be written in a \.proto \(it holds both quotes, or a control character\); rename the field in the Tesseract \(a pydantic alias\)$/);
    assert.throws(() => protoFromOpenApi(withSchemas((s) => (s.Apply_Mesh.properties["a\u0001"] = { type: "number" }))), /cannot be written in a \.proto/);
    assert.throws(() => protoFromOpenApi({ components: { schemas: {} } }), /not a tesseract-core OpenAPI document/);
    assert.throws(() => protoFromOpenApi(withSchemas((s) => (s.Apply_Mesh.properties.tags = { type: "array", items: { type: "array", items: { type: "number" } } }))), /^Error: mesh\.tags: a list of lists has no protobuf form/);
    assert.throws(() => protoFromOpenApi(withSchemas((s) => (s.Apply_Mesh.properties.n_points = { anyOf: [{ type: "integer" }, { type: "string" }] }))), /^Error: mesh\.n_points: a union \(integer \| string\) has no protobuf form here/);
  });

  it("refuses $refs that name no schema of the document's own, or go round in a cycle (they made empty messages)", () => {
    assert.throws(() => protoFromOpenApi(withSchemas((s) => (s.Apply_InputSchema.properties.label = { $ref: "#/components/schemas/__proto__" }))), /^Error: label: #\/components\/schemas\/__proto__ is not in components\.schemas$/);
    assert.throws(() => protoFromOpenApi(withSchemas((s) => (s.Apply_InputSchema.properties.label = { $ref: "#/components/schemas/toString" }))), /is not in components\.schemas$/);
    const loop = (s: Record<string, any>) => {
      s.Loop = { $ref: "#/components/schemas/Loop" };
      s.Apply_InputSchema.properties.label = { $ref: "#/components/schemas/Loop" };
    };
    assert.throws(() => protoFromOpenApi(withSchemas(loop)), /^Error: label: #\/components\/schemas\/Loop refers to itself \(Loop -> #\/components\/schemas\/Loop\)$/);
    const pair = (s: Record<string, any>) => {
      s.A = { $ref: "#/components/schemas/B" };
      s.B = { $ref: "#/components/schemas/A" };
      s.Apply_InputSchema.properties.label = { $ref: "#/components/schemas/A" };
    };
    assert.throws(() => protoFromOpenApi(withSchemas(pair)), /refers to itself \(A -> B -> #\/components\/schemas\/A\)$/);
    // An alias to a model is followed: the field is that model.
    const alias = protoFromOpenApi(withSchemas((s) => {
      s.MeshAlias = { $ref: "#/components/schemas/Apply_Mesh" };
      s.Apply_InputSchema.properties.label = { $ref: "#/components/schemas/MeshAlias" };
    }));
    assert.match(alias.text, /message MeshAlias \{\n {2}optional int64 n_points = \d+;/);
  });

  it("lists each model's required fields (an answer must hold them), in field order", () => {
    const { requiredFields, packageName } = protoFromOpenApi(DOC);
    assert.deepEqual(requiredFields[`${packageName}.Outputs`], ["barycenter", "count"]);
    assert.ok(!requiredFields[`${packageName}.Inputs`].includes("label"), "label has a default");
  });
});
