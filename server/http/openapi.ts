/**
 * `/openapi.json` in tesseract-core's shape, generated from the Tesseract's protobuf message types:
 * `ApplyInputSchema`/`ApplyOutputSchema` with `differentiable_arrays` and `field_order`, and one JSON
 * schema per message (`Apply_InputSchema`, `Apply_OutputSchema`, `Apply_<Message>`, again with the
 * prefixes `Jacobian_`, `Jvp_`, `Vjp_`, `AbstractEval_` for the endpoints served). A Tensor field
 * declares its datatype only by the `(tesseract.v1.datatype)` option (a tesseract-core Tesseract's
 * arrays have it, from the runtime's schema) and never its rank or shape: array schemas accept any
 * rank, and the dtypes numpy casts to the declared one `same_kind` (any, when none is declared), with
 * the declared dtype as their `examples`, and `differentiable_arrays` gives
 * `{"shape": null, "dtype": <declared dtype or null>}` for every path — but a bridged Tesseract's,
 * whose runtime's document gives shapes and defaults: those are repeated as it gives them. A
 * bridged Tesseract's enums are its own strings (tesseract-core's Literals), other enums their
 * protobuf value names. Fields and paths are in keys (a bridged runtime's own, json-keys.ts).
 */
import * as protobuf from "protobufjs";
import { dtypesCastTo, NUMPY_DTYPES, numpyDtype } from "../../common/numpy-arrays";
import type { TesseractRuntime } from "../runtime";
import { isTensorField, type EnumLiterals } from "../schema/json-messages";
import { declaredDatatype, isDifferentiableField, protoName } from "../schema/output-casting";
import { fieldNamed, jsonKey, keyPath } from "../schema/json-keys";
import { takesNull } from "../schema/nullable-fields";
import { emptyRecord } from "../../common/records";

type Json = Record<string, unknown>;


const SCALARS: Record<string, Json> = {
  double: { type: "number" },
  float: { type: "number" },
  bool: { type: "boolean" },
  string: { type: "string" },
  bytes: { type: "string", contentEncoding: "base64" },
};

/** tesseract-core's array object schema; `array_flags` says whether it may be differentiated; `dtype` the declared one. */
function arraySchema(differentiable: boolean, dtype?: string): Json {
  return {
    type: "object",
    properties: {
      object_type: { type: "string", enum: ["array"] },
      shape: { type: "array", items: { type: "integer", minimum: 0 } },
      // The dtypes taken: those numpy casts to the declared one `same_kind`, as tesseract-core lists them.
      dtype: { type: "string", enum: dtype ? dtypesCastTo(NUMPY_DTYPES[dtype]) : [...Object.keys(NUMPY_DTYPES), "float16"], ...(dtype ? { examples: [dtype] } : {}) },
      data: {
        type: "object",
        properties: { buffer: { anyOf: [{ type: "string" }, { type: "array" }, { type: "number" }, { type: "boolean" }] }, encoding: { type: "string", enum: ["base64", "json"] } },
        required: ["buffer", "encoding"],
      },
    },
    required: ["shape", "dtype", "data"],
    array_flags: differentiable ? ["DIFFERENTIABLE"] : [],
  };
}

/** The model names of every message reachable from `root`: InputSchema/OutputSchema for the roots, the message name otherwise. */
class Models {
  readonly names = new Map<protobuf.Type, string>();
  private readonly taken = new Set<string>();

  name(type: protobuf.Type, preferred = type.name): string {
    let name = this.names.get(type);
    if (!name) {
      name = this.taken.has(preferred) ? type.fullName.slice(1).replace(/\./g, "_") : preferred;
      this.names.set(type, name);
      this.taken.add(name);
    }
    return name;
  }
}

/** The declared dtype of a Tensor field as a numpy name, or undefined. */
function declaredDtype(field: protobuf.Field): string | undefined {
  const datatype = declaredDatatype(field);
  return datatype === undefined ? undefined : numpyDtype(datatype);
}

/** A Literal's schema, as pydantic writes it: its values, and their type where they share one. */
function literalSchema(values: readonly unknown[]): Json {
  const types = new Set(values.map((v) => (v === null ? "null" : Number.isInteger(v) ? "integer" : typeof v === "number" ? "number" : typeof v)));
  return types.size === 1 ? { type: [...types][0], enum: [...values] } : { enum: [...values] };
}

function fieldSchema(field: protobuf.Field, ref: (t: protobuf.Type) => Json, enumLiterals: EnumLiterals): Json {
  let element: Json;
  const sub = field.resolvedType;
  const literals = sub instanceof protobuf.Enum ? enumLiterals[protoName(sub)] : undefined;
  if (isTensorField(field)) element = arraySchema(isDifferentiableField(field), declaredDtype(field));
  else if (sub instanceof protobuf.Type) element = ref(sub);
  else if (literals) element = literalSchema(literals.values);
  else if (sub instanceof protobuf.Enum) element = { type: "string", enum: Object.keys(sub.values) };
  else element = SCALARS[field.type] ?? { type: "integer" };
  if (field.map) return { type: "object", additionalProperties: element };
  if (field.repeated) return { type: "array", items: element };
  // proto3 `optional` (a bridged Tesseract's Optional[X], or a field with a declared default): unset
  // is the runtime's own default, which this schema does not know; a proto zero would be wrong.
  if (!(sub instanceof protobuf.Type) && field.options?.proto3_optional === true) return element;
  // A bridged Tesseract's enum left unset takes the runtime's own default, which its schema knew.
  if (literals) return element;
  // A proto2 field's declared default (`[default = GREEN]`), else the type's: an enum's first value.
  const declared = field.options?.default as unknown;
  if (sub instanceof protobuf.Enum) return { ...element, default: typeof declared === "string" && Object.hasOwn(sub.values, declared) ? declared : Object.keys(sub.values)[0] };
  if (!sub && declared !== undefined) return { ...element, default: field.type === "bytes" ? Buffer.from(String(declared)).toString("base64") : declared };
  if (!sub) return { ...element, default: field.type === "bool" ? false : field.type === "string" || field.type === "bytes" ? "" : 0 };
  return element;
}

/**
 * One JSON schema per message reachable from `roots`, named `<prefix>_<model>`; a bridged
 * Tesseract's models list what they require, and a field that may be null is `anyOf [X, null]`, as
 * its runtime's own document says (they were left out).
 */
function modelSchemas(prefix: string, roots: [protobuf.Type, string][], runtime: TesseractRuntime): Json {
  const { enumLiterals, requiredFields, nullFields, documented } = runtime;
  const models = new Models();
  const out: Json = {};
  const pending: protobuf.Type[] = [];
  const ref = (t: protobuf.Type) => {
    if (!models.names.has(t)) pending.push(t);
    return { $ref: `#/components/schemas/${prefix}_${models.name(t)}` };
  };
  for (const [type, name] of roots) {
    models.name(type, name);
    pending.push(type);
  }
  for (let type = pending.shift(); type; type = pending.shift()) {
    const key = `${prefix}_${models.names.get(type)}`;
    if (key in out) continue;
    const full = protoName(type);
    const nullable = new Set(nullFields[full] ?? []);
    const notes = documented?.fields[full] ?? {};
    const property = (f: protobuf.Field) => {
      let schema = fieldSchema(f, ref, enumLiterals);
      // A bridged runtime's own rank and dimensions for an array, and its defaults (they were left out).
      const note = Object.hasOwn(notes, f.name) ? notes[f.name] : {};
      const single = !f.map && !f.repeated;
      if (note.shape !== undefined && isTensorField(f) && single) schema = { ...schema, properties: { ...(schema.properties as Json), shape: note.shape } };
      if (takesNull(f, runtime)) schema = { anyOf: [schema, { type: "null" }] };
      return "default" in note ? { ...schema, default: note.default } : schema;
    };
    // Keyed as tesseract-core's JSON is (json-keys.ts); RequiredFields and the notes name fields.
    const properties = Object.fromEntries(type.fieldsArray.map((f) => [jsonKey(f), property(f)]));
    const keyOf = (name: string) => {
      const field = fieldNamed(type, name);
      return field ? jsonKey(field) : name;
    };
    const required = [...(requiredFields[full] ?? []), ...nullable].map(keyOf);
    out[key] = { title: type.name, type: "object", properties, ...(required.length ? { required } : {}), additionalProperties: false };
  }
  // abstract_eval's arrays are shapes and dtypes: `data` is neither sent nor answered.
  return prefix === "AbstractEval" ? (withoutData(out) as Json) : out;
}

/** `schema` with every array schema's `data` left out (abstract_eval's arrays). */
function withoutData(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutData);
  if (schema === null || typeof schema !== "object") return schema;
  const entries = Object.entries(schema).map(([key, value]) => [key, withoutData(value)] as const);
  const object = Object.fromEntries(entries) as Json;
  if (!("array_flags" in object)) return object;
  const { data: _data, ...properties } = object.properties as Json;
  return { ...object, properties, required: ["shape", "dtype"] };
}

/** `{dotted path of each nested object: [its field names in declaration order]}`, patterns for maps and lists. */
function fieldOrder(type: protobuf.Type): Record<string, string[]> {
  const out = emptyRecord<string[]>(); // keyed by paths in keys, "__proto__" among them
  const visit = (t: protobuf.Type, at: string, seen: Set<protobuf.Type>) => {
    if (seen.has(t)) return;
    out[at] = t.fieldsArray.map(jsonKey);
    for (const f of t.fieldsArray) {
      if (isTensorField(f) || !(f.resolvedType instanceof protobuf.Type)) continue;
      const here = (at ? `${at}.` : "") + jsonKey(f) + (f.map ? ".{}" : f.repeated ? ".[]" : "");
      visit(f.resolvedType, here, new Set([...seen, t]));
    }
  };
  visit(type, "", new Set());
  return out;
}

/**
 * `{pattern: {"shape": null, "dtype"}}` for every differentiable array, in declaration order (the
 * order of Describe's differentiable paths): the declared dtype, or null when the field declares none.
 * Patterns are written as the gradient requests take them (keyPath): a runtime key no path can spell
 * (`a.b`, `my-out`) was listed as it is, and a client that sent it back got a 422.
 */
function differentiableArrays(type: protobuf.Type, documented: Record<string, unknown> = {}): Record<string, { shape: unknown; dtype: string | null }> {
  const out = emptyRecord<{ shape: unknown; dtype: string | null }>(); // keyed by paths in keys, "__proto__" among them
  // A bridged runtime's entry, under its own keys, says its shape ([null, 3]: rank 2, 3 columns); protobuf cannot.
  const shapeOf = (keys: string) => (Object.hasOwn(documented, keys) ? ((documented[keys] as { shape?: unknown }).shape ?? null) : null);
  const visit = (t: protobuf.Type, keys: string, names: string, seen: Set<protobuf.Type>) => {
    if (seen.has(t)) return;
    for (const f of t.fieldsArray) {
      const below = f.map ? ".{}" : f.repeated ? ".[]" : "";
      const [keysHere, namesHere] = [(keys ? `${keys}.` : "") + jsonKey(f) + below, (names ? `${names}.` : "") + f.name + below];
      if (isTensorField(f)) {
        if (isDifferentiableField(f)) out[keyPath(type, namesHere)] = { shape: shapeOf(keysHere), dtype: declaredDtype(f) ?? null };
      } else if (f.resolvedType instanceof protobuf.Type) visit(f.resolvedType, keysHere, namesHere, new Set([...seen, t]));
    }
  };
  visit(type, "", "", new Set());
  return out;
}

/** The endpoints served, with their request and answer schema names. */
export function servedEndpoints(runtime: TesseractRuntime): string[] {
  const endpoints = ["apply", "jacobian", "jacobian_vector_product", "vector_jacobian_product"];
  if (runtime.describe().endpoints.includes("AbstractEval")) endpoints.push("abstract_eval");
  return endpoints;
}

const PREFIXES: Record<string, string> = { apply: "Apply", jacobian: "Jacobian", jacobian_vector_product: "Jvp", vector_jacobian_product: "Vjp", abstract_eval: "AbstractEval" };
const PATH_FIELDS: Record<string, [string, string, string?]> = {
  jacobian: ["jac_inputs", "jac_outputs"],
  jacobian_vector_product: ["jvp_inputs", "jvp_outputs", "tangent_vector"],
  vector_jacobian_product: ["vjp_inputs", "vjp_outputs", "cotangent_vector"],
};

const OPTIONS_SCHEMA: Json = {
  type: "object",
  description: "tesseract-grpc extension (not in tesseract-core): finite-difference options, as FiniteDifferenceOptions; query parameters algorithm, eps, num_samples, seed and sparsity_mode work too",
  properties: {
    algorithm: { anyOf: [{ type: "string" }, { type: "integer" }] },
    eps: { type: "number" },
    num_samples: { type: "integer" },
    seed: { type: "integer" },
    sparsity_mode: { anyOf: [{ enum: ["dense", "detect"] }, { type: "integer" }] },
  },
};

export function openApiDocument(runtime: TesseractRuntime): Json {
  const describe = runtime.describe();
  const { inputs, outputs } = runtime.schema;
  const endpoints = servedEndpoints(runtime);
  const schemas: Json = {};
  const paths: Json = {
    "/health": { get: { summary: "Health check", responses: { 200: { description: "ok", content: { "application/json": { schema: { type: "object", properties: { status: { type: "string" } } } } } } } } },
  };
  const arrayOf = (differentiable: boolean) => arraySchema(differentiable);
  for (const endpoint of endpoints) {
    const prefix = PREFIXES[endpoint];
    Object.assign(schemas, modelSchemas(prefix, [[inputs.type, "InputSchema"], [outputs.type, "OutputSchema"]], runtime));
    const inputRef = { $ref: `#/components/schemas/${prefix}_InputSchema` };
    const properties: Json = { inputs: inputRef };
    const required = ["inputs"];
    let answer: Json = { $ref: `#/components/schemas/${prefix}_OutputSchema` };
    const fields = PATH_FIELDS[endpoint];
    if (fields) {
      const [inPaths, outPaths, vector] = fields;
      const pathList = (patterns: string[]) => ({ type: "array", items: { anyOf: patterns.map(pathSchema) }, uniqueItems: true, minItems: 1 });
      // In keys, as the REST API takes paths (json-keys.ts).
      properties[inPaths] = pathList(inputs.differentiablePatternNames().map((p) => keyPath(inputs.type, p)));
      properties[outPaths] = pathList(outputs.differentiablePatternNames().map((p) => keyPath(outputs.type, p)));
      if (vector) properties[vector] = { type: "object", additionalProperties: arrayOf(true) };
      properties.options = OPTIONS_SCHEMA;
      required.push(inPaths, outPaths, ...(vector ? [vector] : []));
      answer = endpoint === "jacobian" ? { type: "object", additionalProperties: { type: "object", additionalProperties: arrayOf(true) } } : { type: "object", additionalProperties: arrayOf(true) };
    }
    const requestName = endpoint === "apply" ? "ApplyInputSchema" : `${prefix}InputSchema`;
    const answerName = endpoint === "apply" ? "ApplyOutputSchema" : `${prefix}OutputSchema`;
    schemas[requestName] = { title: requestName, type: "object", properties, required, additionalProperties: false };
    schemas[answerName] = { title: answerName, ...answer };
    paths[`/${endpoint}`] = {
      post: {
        summary: endpoint,
        requestBody: { required: true, content: { "application/json": { schema: { $ref: `#/components/schemas/${requestName}` } } } },
        responses: {
          200: { description: "Successful Response", content: { "application/json": { schema: { $ref: `#/components/schemas/${answerName}` } } } },
          422: { description: "Validation Error", content: { "application/json": { schema: { $ref: "#/components/schemas/HTTPValidationError" } } } },
        },
      },
    };
  }
  const arrays = runtime.documented?.differentiableArrays;
  Object.assign(schemas.ApplyInputSchema as Json, { differentiable_arrays: differentiableArrays(inputs.type, arrays?.inputs), field_order: fieldOrder(inputs.type) });
  Object.assign(schemas.ApplyOutputSchema as Json, { differentiable_arrays: differentiableArrays(outputs.type, arrays?.outputs), field_order: fieldOrder(outputs.type) });
  schemas.HTTPValidationError = {
    title: "HTTPValidationError",
    type: "object",
    properties: { detail: { type: "array", items: { type: "object", properties: { type: { type: "string" }, loc: { type: "array", items: { anyOf: [{ type: "string" }, { type: "integer" }] } }, msg: { type: "string" }, input: {} }, required: ["type", "loc", "msg"] } } },
  };
  return {
    openapi: "3.1.0",
    info: { title: describe.name || "Tesseract", version: describe.version || "0.0.0", description: describe.description },
    paths,
    components: { schemas },
  };
}

/**
 * The schema of one differentiable path, as tesseract-core enumerates them: `const` for a path, and
 * for a pattern (`mesh.cell_data.{}`, `blocks.[].w`) itself or a regular expression of its concrete
 * paths (any key, escapes allowed; any index).
 */
function pathSchema(pattern: string): Json {
  if (!pattern.includes("{}") && !pattern.includes("[]")) return { const: pattern };
  // The pattern itself is a request's path too: it names every path it matches.
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const source = pattern
    .split(/(\{\}|\[\])/)
    .map((part) => (part === "{}" ? "\\{(?:[^\\\\}]|\\\\.)+\\}" : part === "[]" ? "\\[(?:0|[1-9][0-9]*)\\]" : literal(part)))
    .join("");
  return { anyOf: [{ const: pattern }, { type: "string", pattern: `^${source}$` }] };
}
