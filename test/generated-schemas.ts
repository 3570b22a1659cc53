/**
 * Random Tesseract schemas for property tests: fast-check arbitraries of message trees (nested,
 * repeated and map fields of messages, tensors and scalars; oneofs; proto3 optional), their `.proto`
 * text, values for them, and those values in each form a caller sends (protobufjs objects for gRPC,
 * tesseract-core's JSON for REST) or `apply` sees. The Tesseract itself is test/fixtures/mirror/mirror.ts.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import * as protobuf from "protobufjs";
import { PROTO_DIR } from "../server/proto-dir";
import { boolKeysForEncoding } from "../common/bool-keys";
import type { MessageFns } from "../client/any";
import ndarray, { type NdArray } from "ndarray";
import {
  ENUM,
  ENUM_VALUES,
  outName,
  ROOT,
  TOTAL,
  type Container,
  type FieldSpec,
  type MapKey,
  type MessageSpec,
  type ScalarType,
  type SchemaSpec,
  type TensorDatatype,
} from "./fixtures/mirror/mirror";

// ---- schemas --------------------------------------------------------------------------------------

/** A field before names and numbers are given; a message field holds its own message's fields. */
type FieldShape =
  | { kind: "tensor"; container: Container; keyType: MapKey; differentiable: boolean; declared: TensorDatatype | null }
  | { kind: "scalar"; container: Container; keyType: MapKey; scalar: ScalarType; optional: boolean }
  | { kind: "message"; container: Container; keyType: MapKey; fields: FieldShape[] }
  | { kind: "oneof"; members: FieldShape[] };

const container = fc.constantFrom<Container>("single", "single", "list", "map");
const keyType = fc.constantFrom<MapKey>("string", "string", "int32", "bool");

const tensorShape = fc
  .record({ kind: fc.constant("tensor" as const), container, keyType, differentiable: fc.constantFrom(true, true, false), declared: fc.constantFrom<TensorDatatype | null>(null, null, "FP64", "FP32", "INT32") })
  // An integer tensor cannot be differentiated (refused at load would be right, but that is another test).
  .map((t) => (t.differentiable && t.declared === "INT32" ? { ...t, declared: null } : t));

const scalarShape = fc.record({
  kind: fc.constant("scalar" as const),
  container,
  keyType,
  scalar: fc.constantFrom<ScalarType>("int32", "int64", "bool", "string", "double", "float", "enum"),
  optional: fc.boolean(),
});

/** A oneof of a differentiable tensor and a double (only single, non-optional fields may be members). */
const oneofShape = fc.record({
  kind: fc.constant("oneof" as const),
  members: fc.tuple(
    tensorShape.map((t) => ({ ...t, container: "single" as const, differentiable: true, declared: t.declared === "INT32" ? null : t.declared })),
    scalarShape.map((s) => ({ ...s, container: "single" as const, optional: false })),
  ),
});

const fieldTree = fc.letrec<{ field: FieldShape; message: FieldShape }>((tie) => ({
  // maxDepth: past it, the first (a tensor) is taken, so the recursion ends.
  field: fc.oneof({ maxDepth: 3, depthIdentifier: "fields" }, tensorShape, scalarShape, oneofShape, tie("message")),
  message: fc.record({ kind: fc.constant("message" as const), container, keyType, fields: fc.array(tie("field"), { maxLength: 3, depthIdentifier: "fields" }) }),
}));

/** Field names, some of them names of JavaScript's Object.prototype and of tesseract-core's array objects. */
const NAMES = ["x", "y", "w", "data", "shape", "dtype", "value", "size", "constructor", "toString", "valueOf", "hasOwnProperty", "length", "mode", "t"];

/** Root fields: at least one differentiable tensor always there, then random ones. */
export const schemaArbitrary: fc.Arbitrary<SchemaSpec> = fc
  .tuple(
    tensorShape.map((t) => ({ ...t, container: "single" as const, differentiable: true, declared: t.declared === "INT32" ? null : t.declared })),
    fc.array(fieldTree.field, { minLength: 1, maxLength: 5 }),
    fc.array(fc.constantFrom(...NAMES), { minLength: 64, maxLength: 64 }),
  )
  .map(([anchor, fields, names]) => toSpec([anchor, ...fields], names));

function toSpec(root: FieldShape[], names: string[]): SchemaSpec {
  const messages: MessageSpec[] = [];
  let nameAt = 0;
  const declare = (name: string, shapes: FieldShape[]): void => {
    const message: MessageSpec = { name, fields: [] };
    messages.push(message);
    const used = new Set<string>();
    let number = 1;
    const fieldName = () => {
      const base = names[nameAt++ % names.length]!;
      const name = used.has(base) ? `${base}${number}` : base;
      used.add(name);
      return name;
    };
    const add = (shape: FieldShape, oneof?: string): void => {
      if (shape.kind === "oneof") {
        const group = `choice${number}`;
        for (const member of shape.members) add(member, group);
        return;
      }
      const base = { name: fieldName(), number: number++, container: shape.container, keyType: shape.keyType, ...(oneof ? { oneof } : {}) };
      if (shape.kind === "tensor") message.fields.push({ ...base, kind: "tensor", differentiable: shape.differentiable, ...(shape.declared ? { declared: shape.declared } : {}) });
      else if (shape.kind === "scalar") message.fields.push({ ...base, kind: "scalar", scalar: shape.scalar, optional: shape.optional && shape.container === "single" && !oneof });
      else {
        const type = `M${messages.length}`;
        message.fields.push({ ...base, kind: "message", type });
        declare(type, shape.fields);
      }
    };
    for (const shape of shapes) add(shape);
  };
  declare(ROOT, root);
  return { package: "generated.v1", messages };
}

const SCALAR_PROTO: Record<ScalarType, string> = { int32: "int32", int64: "int64", bool: "bool", string: "string", double: "double", float: "float", enum: ENUM };

/** The schema as a .proto file: the input messages and their `Out` mirrors (the root's with `total`). */
export function protoText(spec: SchemaSpec): string {
  const lines = ['syntax = "proto3";', `package ${spec.package};`, 'import "tesseract/v1/tensor.proto";', "", `enum ${ENUM} { ${ENUM_VALUES.map((v, i) => `${v} = ${i};`).join(" ")} }`];
  const typeOf = (f: FieldSpec, out: boolean) => (f.kind === "tensor" ? "tesseract.v1.Tensor" : f.kind === "scalar" ? SCALAR_PROTO[f.scalar] : out ? outName(f.type) : f.type);
  const declaration = (f: FieldSpec, out: boolean) => {
    const options: string[] = [];
    if (f.kind === "tensor" && f.differentiable) options.push("(tesseract.v1.differentiable) = true");
    // Outputs of differentiable tensors are FP64 whatever the input's datatype.
    if (f.kind === "tensor" && f.declared) options.push(`(tesseract.v1.datatype) = DATA_TYPE_${out && f.differentiable ? "FP64" : f.declared}`);
    const type = typeOf(f, out);
    const label = f.container === "list" ? `repeated ${type}` : f.container === "map" ? `map<${f.keyType}, ${type}>` : f.optional ? `optional ${type}` : type;
    return `${label} ${f.name} = ${f.number}${options.length ? ` [${options.join(", ")}]` : ""};`;
  };
  for (const out of [false, true]) {
    for (const m of spec.messages) {
      lines.push(`message ${out ? outName(m.name) : m.name} {`);
      const groups = new Map<string, FieldSpec[]>();
      for (const f of m.fields) {
        if (f.oneof) {
          if (!groups.has(f.oneof)) groups.set(f.oneof, []);
          groups.get(f.oneof)!.push(f);
          if (groups.get(f.oneof)!.length > 1) continue;
          lines.push(`  oneof ${f.oneof} {`);
          for (const g of m.fields.filter((x) => x.oneof === f.oneof)) lines.push(`    ${declaration(g, out)}`);
          lines.push("  }");
        } else lines.push(`  ${declaration(f, out)}`);
      }
      if (out && m.name === ROOT) lines.push(`  tesseract.v1.Tensor ${TOTAL} = ${Math.max(0, ...m.fields.map((f) => f.number)) + 1} [(tesseract.v1.differentiable) = true];`);
      lines.push("}");
    }
  }
  return lines.join("\n") + "\n";
}

const MIRROR = path.join(__dirname, "fixtures/mirror/mirror.js");
const PROTOBUFJS_DIR = path.dirname(require.resolve("protobufjs/package.json"));

/**
 * The schema as a module Tesseract in a new temporary folder, as a user lays one out: its .proto
 * file and a module default-exporting the definition.
 */
export function writeMirrorModule(spec: SchemaSpec): { dir: string; modulePath: string; protoFile: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-generated-"));
  const protoFile = path.join(dir, "schema.proto");
  fs.writeFileSync(protoFile, protoText(spec));
  fs.writeFileSync(path.join(dir, "spec.json"), JSON.stringify(spec));
  const modulePath = path.join(dir, "mirror-tesseract.js");
  fs.writeFileSync(modulePath, `module.exports = { default: require(${JSON.stringify(MIRROR)}).mirrorTesseract(require("./spec.json")) };\n`);
  return { dir, modulePath, protoFile };
}

/** Message functions over protobufjs types parsed from the schema's text, independently of the server. */
function messageFns(type: protobuf.Type): MessageFns<unknown> {
  return {
    $type: type.fullName.slice(1),
    encode: (message) => ({ finish: () => type.encode(boolKeysForEncoding(type, type.fromObject(message as Record<string, unknown>) as unknown as Record<string, unknown>)).finish() }),
    decode: (bytes) => type.toObject(type.decode(bytes), { longs: Number, enums: Number, defaults: false, arrays: true, objects: true }),
  };
}

function parseSchema(file: string): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) =>
    target.startsWith("google/protobuf/") ? path.join(PROTOBUFJS_DIR, target) : target.startsWith("tesseract/") ? path.join(PROTO_DIR, target) : protobuf.util.path.resolve(origin, target);
  root.loadSync(file, { keepCase: true });
  root.resolveAll();
  return root;
}

/** The SDK's message types for the schema's inputs and outputs, parsed here from its .proto file. */
export function clientTypes(spec: SchemaSpec, protoFile: string): { inputs: MessageFns<unknown>; outputs: MessageFns<unknown> } {
  const root = parseSchema(protoFile);
  return { inputs: messageFns(root.lookupType(`${spec.package}.${ROOT}`)), outputs: messageFns(root.lookupType(`${spec.package}.${outName(ROOT)}`)) };
}

// ---- values ---------------------------------------------------------------------------------------

/** A tensor as sent: `sent` its datatype on the wire, `seen` the one apply is handed (the declared float type, when declared). */
export interface TensorValue {
  tensor: true;
  sent: TensorDatatype;
  seen: TensorDatatype;
  shape: number[];
  values: number[];
}
/** A map's entries in order (keys are the key's text: "-5", "true"). */
export interface MapValue {
  map: true;
  entries: [string, unknown][];
}
export type MessageValue = Record<string, unknown>;

const STRING_KEYS = ["a", "a.b", "x y", "}", "{}", "\\", "[0]", "", '""', "é", "0", "{a\\}b}"];
const keyArbitrary = (k: MapKey) => (k === "string" ? fc.constantFrom(...STRING_KEYS) : k === "int32" ? fc.constantFrom("-5", "0", "7", "12") : fc.constantFrom("true", "false"));

/** A shape of at most 12 elements (rank 0 to 3, zero-size dimensions included). */
const shapeArbitrary = fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }).filter((s) => s.reduce((a, b) => a * b, 1) <= 12);

function tensorArbitrary(field: Extract<FieldSpec, { kind: "tensor" }>): fc.Arbitrary<TensorValue> {
  const floats: TensorDatatype[] = ["FP64", "FP32"];
  const sentChoices: TensorDatatype[] = field.declared === "INT32" ? ["INT32"] : field.declared || field.differentiable ? floats : ["FP64", "FP32", "INT32"];
  return fc.record({ sent: fc.constantFrom(...sentChoices), shape: shapeArbitrary }).chain(({ sent, shape }) => {
    const seen = field.declared ?? sent;
    const size = shape.reduce((a, b) => a * b, 1);
    // Values every datatype involved holds exactly: a cast must not change them.
    const element = sent === "INT32" || seen === "INT32" ? fc.integer({ min: -20, max: 20 }) : fc.integer({ min: -2048, max: 2048 }).map((k) => (sent === "FP32" || seen === "FP32" ? Math.fround(k / 1024 + k / 3e6) : k / 1024 + k / 3e6));
    return fc.array(element, { minLength: size, maxLength: size }).map((values) => ({ tensor: true as const, sent, seen, shape, values }));
  });
}

function scalarArbitrary(scalar: ScalarType): fc.Arbitrary<unknown> {
  switch (scalar) {
    case "int32":
      return fc.integer({ min: -1000, max: 1000 });
    case "int64":
      return fc.oneof(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.constantFrom(Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER));
    case "bool":
      return fc.boolean();
    case "string":
      return fc.string({ maxLength: 6, unit: "grapheme" });
    case "double":
      return fc.double({ min: -1e6, max: 1e6, noNaN: true });
    case "float":
      return fc.double({ min: -1e6, max: 1e6, noNaN: true }).map(Math.fround);
    case "enum":
      return fc.integer({ min: 0, max: ENUM_VALUES.length - 1 });
  }
}

function elementArbitrary(spec: SchemaSpec, field: FieldSpec, depth: number): fc.Arbitrary<unknown> {
  if (field.kind === "tensor") return tensorArbitrary(field);
  if (field.kind === "scalar") return scalarArbitrary(field.scalar);
  return messageArbitrary(spec, field.type, depth + 1);
}

function fieldArbitrary(spec: SchemaSpec, field: FieldSpec, depth: number): fc.Arbitrary<unknown> {
  const element = elementArbitrary(spec, field, depth);
  if (field.container === "list") return fc.array(element, { maxLength: 2 });
  if (field.container === "map") {
    return fc.uniqueArray(fc.tuple(keyArbitrary(field.keyType ?? "string"), element), { selector: ([k]) => k, maxLength: 2 }).map((entries) => ({ map: true as const, entries }));
  }
  // Messages and optional scalars may be absent; a oneof's member is chosen by the message.
  return field.kind === "message" || field.optional ? fc.option(element, { nil: undefined }) : element;
}

export function messageArbitrary(spec: SchemaSpec, type: string, depth = 0): fc.Arbitrary<MessageValue> {
  const message = spec.messages.find((m) => m.name === type)!;
  const groups = [...new Set(message.fields.flatMap((f) => (f.oneof ? [f.oneof] : [])))];
  return fc
    .tuple(
      fc.tuple(...message.fields.map((f) => fieldArbitrary(spec, f, depth))),
      // Per oneof, the member that is set (-1: none).
      fc.tuple(...groups.map((g) => fc.integer({ min: -1, max: message.fields.filter((f) => f.oneof === g).length - 1 }))),
    )
    .map(([values, chosen]) => {
      const out: MessageValue = {};
      message.fields.forEach((f, i) => {
        if (f.oneof && message.fields.filter((g) => g.oneof === f.oneof).indexOf(f) !== chosen[groups.indexOf(f.oneof)]) return;
        if (values[i] !== undefined) out[f.name] = values[i];
      });
      return out;
    });
}

// ---- the forms a caller sends, and apply sees ---------------------------------------------------------

const ARRAY_TYPES = { FP64: Float64Array, FP32: Float32Array, INT32: Int32Array } as const;
export const DATATYPE_NUMBER: Record<TensorDatatype, number> = { INT32: 8, FP32: 10, FP64: 11 };
export const DTYPE_NAME: Record<TensorDatatype, string> = { INT32: "int32", FP32: "float32", FP64: "float64" };

export const isTensor = (v: unknown): v is TensorValue => typeof v === "object" && v !== null && (v as TensorValue).tensor === true;
export const isMap = (v: unknown): v is MapValue => typeof v === "object" && v !== null && (v as MapValue).map === true;

/** A record with any keys ("__proto__" and "constructor" too), in the given order. */
export function record(entries: [string, unknown][]): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

/** The value with every tensor replaced by `tensor(t)` and every map by a record. */
export function mapTensors(value: unknown, tensor: (t: TensorValue) => unknown): unknown {
  if (isTensor(value)) return tensor(value);
  if (isMap(value)) return record(value.entries.map(([k, v]) => [k, mapTensors(v, tensor)]));
  if (Array.isArray(value)) return value.map((v) => mapTensors(v, tensor));
  if (typeof value === "object" && value !== null) return record(Object.entries(value).map(([k, v]) => [k, mapTensors(v, tensor)]));
  return value;
}

/** The tree with ndarrays in the datatype sent (what the SDK takes) or seen by apply. */
export function arraysTree(value: MessageValue, which: "sent" | "seen"): Record<string, unknown> {
  return mapTensors(value, (t) => ndarray(ARRAY_TYPES[t[which]].from(t.values) as any, t.shape.slice())) as Record<string, unknown>;
}

/** Raw little-endian bytes of a tensor as sent. */
export const tensorBytes = (t: TensorValue): Buffer => Buffer.from(ARRAY_TYPES[t.sent].from(t.values).buffer);

/** tesseract-core's JSON: array objects (base64 or JSON lists), enums by name. */
export function restJson(spec: SchemaSpec, type: string, value: MessageValue, encoding: "base64" | "json"): Record<string, unknown> {
  const message = spec.messages.find((m) => m.name === type)!;
  const entries: [string, unknown][] = [];
  for (const f of message.fields) {
    if (!Object.hasOwn(value, f.name)) continue;
    const one = (v: unknown): unknown => {
      if (f.kind === "tensor") {
        const t = v as TensorValue;
        return { shape: t.shape, dtype: DTYPE_NAME[t.sent], data: encoding === "base64" ? { buffer: tensorBytes(t).toString("base64"), encoding } : { buffer: t.values, encoding } };
      }
      if (f.kind === "message") return restJson(spec, f.type, v as MessageValue, encoding);
      return f.scalar === "enum" ? ENUM_VALUES[v as number] : v;
    };
    const v = value[f.name];
    entries.push([f.name, isMap(v) ? record(v.entries.map(([k, x]) => [k, one(x)])) : Array.isArray(v) ? v.map(one) : one(v)]);
  }
  return record(entries);
}

// ---- comparing outputs -------------------------------------------------------------------------------

const isNd = (v: unknown): v is NdArray => typeof v === "object" && v !== null && "shape" in v && "data" in v && "stride" in v;

/**
 * An output tree (ndarray leaves, as apply returns or the SDK decodes) in one comparable form: tensors
 * as { datatype, shape, values }, maps with sorted keys, and scalars at their default left out (proto3
 * cannot tell them from unset ones).
 */
export function canonical(spec: SchemaSpec, type: string, value: Record<string, unknown> | undefined): unknown {
  if (value === undefined || value === null) return undefined;
  const message = spec.messages.find((m) => m.name === type);
  const out: Record<string, unknown> = {};
  const fields: FieldSpec[] = message ? message.fields : [];
  const all = type === ROOT ? [...fields, { kind: "tensor", name: TOTAL, number: 0, container: "single", differentiable: true } as FieldSpec] : fields;
  for (const f of all) {
    const v = Object.hasOwn(value, f.name) ? value[f.name] : undefined;
    const one = (x: unknown): unknown => {
      if (f.kind === "tensor") {
        if (!isNd(x)) return x;
        const typed = x.data as unknown as ArrayLike<number>;
        const datatype = typed instanceof Float64Array ? "FP64" : typed instanceof Float32Array ? "FP32" : typed instanceof Int32Array ? "INT32" : (typed as object).constructor.name;
        return { datatype, shape: [...x.shape], values: Array.from({ length: x.size }, (_, i) => Number(typed[x.offset + i])) };
      }
      if (f.kind === "message") return canonical(spec, f.type, x as Record<string, unknown>) ?? {};
      if (f.scalar === "enum" && typeof x === "string") return ENUM_VALUES.indexOf(x);
      if (f.scalar === "int64" && typeof x === "string") return Number(x);
      // JSON has no -0 (JSON.stringify writes 0): the sign of a zero is not compared.
      return x === 0 ? 0 : x;
    };
    if (v === undefined || v === null) continue;
    if (f.container === "map") {
      const keys = Object.keys(v as object).sort();
      if (keys.length) out[f.name] = keys.map((k) => [k, one((v as Record<string, unknown>)[k])]);
    } else if (f.container === "list") {
      if ((v as unknown[]).length) out[f.name] = (v as unknown[]).map(one);
    } else {
      const c = one(v);
      if (f.kind === "scalar" && (c === 0 || c === "" || c === false)) continue;
      out[f.name] = c;
    }
  }
  return out;
}
