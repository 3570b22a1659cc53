/**
 * The wire-level fuzzer's generator and judge, shared by test/wire-fuzz.test.ts (a few hundred cases
 * per RPC, fixed seed) and bench/wire-fuzz.ts (the long run).
 *
 * Every case starts from a VALID request of one RPC (encoded with protobufjs from the .proto files,
 * with a valid Any of the Tesseract's Inputs) and mutates it: the request's bytes or the Any's bytes
 * (truncations, byte flips, inserted malformed fields: wrong wire types, field 0, groups, overlong
 * and truncated varints, huge lengths, deep nesting), its strings (invalid UTF-8, 1 MiB strings,
 * 100 000-segment paths), or its gRPC framing (compressed flag without grpc-encoding, lying lengths,
 * several messages on a unary call, an empty body). A case is a pure function of (rpc, tesseract,
 * seed, index), so any case can be regenerated from its id.
 */
import { frame, INVALID_UTF8, nestLengthDelimited, ProtoWriter, RawGrpcSession, WireType, type RawResponse } from "./raw-grpc";
import { loadRoot } from "../server/schema/schema";
import { encodeTensor } from "../common/tensor-codec";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import ndarray from "ndarray";

export type TesseractName = "meshstats" | "vectoradd";
export const TESSERACTS: TesseractName[] = ["meshstats", "vectoradd"];

// ---- valid requests -----------------------------------------------------------------------------

const root = loadRoot([
  "tesseract/v1/tesseract.proto",
  "tesseract/examples/meshstats/v1/meshstats.proto",
  "tesseract/examples/vectoradd/v1/vectoradd.proto",
]);
const INPUT_TYPES: Record<TesseractName, string> = {
  meshstats: "tesseract.examples.meshstats.v1.Inputs",
  vectoradd: "tesseract.examples.vectoradd.v1.Inputs",
};
const typeUrl = (t: TesseractName) => `type.googleapis.com/${INPUT_TYPES[t]}`;

const f64 = (values: number[], shape: number[]) => encodeTensor(ndarray(Float64Array.from(values), shape));

/** The Tesseract's Inputs as a plain object for protobufjs (tensors already encoded). */
function validInputs(t: TesseractName): Record<string, unknown> {
  if (t === "vectoradd") return { a: f64([1, 2, 3], [3]), b: f64([0.5, -1, 4], [3]), s: f64([2], []), normalize: false };
  const { mesh } = sampleMeshInputs(4);
  return {
    mesh: {
      n_points: 4,
      n_cells: 1,
      points: encodeTensor(mesh.points),
      num_points_per_cell: encodeTensor(mesh.num_points_per_cell),
      cell_connectivity: encodeTensor(mesh.cell_connectivity),
      // Map entries, so that map keys inside the Any can be corrupted too.
      cell_data: { temperature: f64([300, 301], [1, 2]) },
      point_data: { velocity: f64([1, 2, 3, 4], [4, 1]) },
    },
    fd_algorithm: 1,
  };
}

const PATHS: Record<TesseractName, { input: string; output: string; outputShape: number[]; inputShape: number[] }> = {
  meshstats: { input: "mesh.points", output: "statistics.barycenter", inputShape: [4, 3], outputShape: [3] },
  vectoradd: { input: "a", output: "result", inputShape: [3], outputShape: [3] },
};

const ones = (shape: number[]) => f64(new Array(shape.reduce((a, b) => a * b, 1)).fill(1), shape);

/** A valid request: the outer message as an object and the Any's Inputs as an object. */
interface Valid {
  request: Record<string, unknown>;
  inputs?: Record<string, unknown>;
}

export type CallShape = "unary" | "server-streaming" | "bidi";

export interface RpcSpec {
  /** Short name, e.g. "Apply", "Health.Check", "ReflectionV1". */
  name: string;
  path: string;
  shape: CallShape;
  valid(t: TesseractName): Valid;
  /** The request's bytes; `inputs` (already encoded) goes into the Any at field 1. */
  encode(request: Record<string, unknown>, inputs: Uint8Array | undefined, t: TesseractName): Buffer;
  /** Known field numbers of the request (for wrong wire types). */
  fields: number[];
  /** The status of the valid request where it is not OK (meshstats has no analytic gradients to check). */
  validStatus?: Partial<Record<TesseractName, number>>;
}

function tesseractRpc(name: string, requestType: string, shape: CallShape, fields: number[], build: (t: TesseractName) => Record<string, unknown>): RpcSpec {
  const type = root.lookupType(requestType);
  return {
    name,
    path: `/tesseract.v1.Tesseract/${name}`,
    shape,
    fields,
    valid: (t) => ({ request: build(t), inputs: requestType === "tesseract.v1.DescribeRequest" ? undefined : validInputs(t) }),
    encode(request, inputs, t) {
      const message = { ...request };
      if (inputs) message.inputs = { type_url: (request.inputs as { type_url?: string } | undefined)?.type_url ?? typeUrl(t), value: inputs };
      return Buffer.from(type.encode(type.fromObject(message)).finish());
    },
  };
}

function options(t: TesseractName) {
  const { input } = PATHS[t];
  return { algorithm: 1, eps: 1e-6, eps_by_path: { [input]: 1e-6 }, typical_magnitude: { [input]: 1 } };
}
const withUrl = (t: TesseractName) => ({ inputs: { type_url: typeUrl(t) } });

const reflectionRequest: RpcSpec["encode"] = (request) => {
  const w = new ProtoWriter().stringField(1, String(request.host ?? ""));
  if (request.file_by_filename !== undefined) w.stringField(3, String(request.file_by_filename));
  if (request.file_containing_symbol !== undefined) w.stringField(4, String(request.file_containing_symbol));
  if (request.list_services !== undefined) w.stringField(7, String(request.list_services));
  return w.finish();
};
const reflectionValid = (t: TesseractName): Valid => ({
  request: { host: "localhost", file_containing_symbol: "tesseract.v1.Tesseract", ...(t === "vectoradd" ? { file_containing_symbol: undefined, file_by_filename: "tesseract/v1/tesseract.proto" } : {}) },
});

export const RPCS: RpcSpec[] = [
  tesseractRpc("Apply", "tesseract.v1.ApplyRequest", "unary", [1], withUrl),
  tesseractRpc("Jacobian", "tesseract.v1.JacobianRequest", "unary", [1, 2, 3, 4], (t) => ({ ...withUrl(t), jac_inputs: [PATHS[t].input], jac_outputs: [PATHS[t].output], options: options(t) })),
  tesseractRpc("JacobianRows", "tesseract.v1.JacobianRequest", "server-streaming", [1, 2, 3, 4], (t) => ({ ...withUrl(t), jac_inputs: [PATHS[t].input], jac_outputs: [PATHS[t].output], options: options(t) })),
  tesseractRpc("JacobianVectorProduct", "tesseract.v1.JacobianVectorProductRequest", "unary", [1, 2, 3, 4, 5], (t) => ({
    ...withUrl(t),
    jvp_inputs: [PATHS[t].input],
    jvp_outputs: [PATHS[t].output],
    tangent_vector: { [PATHS[t].input]: ones(PATHS[t].inputShape) },
    options: options(t),
  })),
  tesseractRpc("VectorJacobianProduct", "tesseract.v1.VectorJacobianProductRequest", "unary", [1, 2, 3, 4, 5], (t) => ({
    ...withUrl(t),
    vjp_inputs: [PATHS[t].input],
    vjp_outputs: [PATHS[t].output],
    cotangent_vector: { [PATHS[t].output]: ones(PATHS[t].outputShape) },
    options: options(t),
  })),
  tesseractRpc("AbstractEval", "tesseract.v1.AbstractEvalRequest", "unary", [1], withUrl),
  tesseractRpc("Describe", "tesseract.v1.DescribeRequest", "unary", [], () => ({})),
  {
    ...tesseractRpc("CheckGradients", "tesseract.v1.CheckGradientsRequest", "unary", [1, 2, 3, 4, 5, 6, 7, 8, 9], (t) => ({
      ...withUrl(t),
      input_paths: [PATHS[t].input],
      output_paths: [PATHS[t].output],
      endpoints: ["jacobian"],
      rtol: 1e-3,
      atol: 1e-6,
      max_evals: 8,
      seed: 7,
      options: options(t),
    })),
    validStatus: { meshstats: 12 /* UNIMPLEMENTED */ },
  },
  {
    name: "Health.Check",
    path: "/grpc.health.v1.Health/Check",
    shape: "unary",
    fields: [1],
    valid: () => ({ request: { service: "tesseract.v1.Tesseract" } }),
    encode: (request) => new ProtoWriter().stringField(1, String(request.service)).finish(),
  },
  { name: "ReflectionV1", path: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", shape: "bidi", fields: [1, 3, 4, 5, 6, 7], valid: reflectionValid, encode: reflectionRequest },
  { name: "ReflectionV1alpha", path: "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", shape: "bidi", fields: [1, 3, 4, 5, 6, 7], valid: reflectionValid, encode: reflectionRequest },
];

export function rpcSpec(name: string): RpcSpec {
  const spec = RPCS.find((r) => r.name === name);
  if (!spec) throw new Error(`no RPC ${name}`);
  return spec;
}

export function encodeInputs(t: TesseractName, inputs: Record<string, unknown>): Buffer {
  const type = root.lookupType(INPUT_TYPES[t]);
  return Buffer.from(type.encode(type.fromObject(inputs)).finish());
}

/** The valid request of `spec` for `t`, framed: what every case starts from. */
export function validBody(spec: RpcSpec, t: TesseractName): Buffer {
  const { request, inputs } = spec.valid(t);
  return spec.encode(request, inputs && encodeInputs(t, inputs), t);
}

/** A valid call that must succeed on any healthy session (used to check the session survived). */
export function probe(t: TesseractName): { path: string; body: Buffer } {
  return { path: "/tesseract.v1.Tesseract/Apply", body: frame(validBody(rpcSpec("Apply"), t)) };
}

// ---- a seeded PRNG ------------------------------------------------------------------------------

/** mulberry32: small, fast, deterministic. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(256)));
  }
}

/** A stable 32-bit seed for one case. */
function caseSeed(seed: number, rpc: string, t: string, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const c of `${rpc}/${t}/${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

// ---- mutations ----------------------------------------------------------------------------------

/** One malformed (or unexpected but well-formed) snippet of protobuf, with its description. */
function snippet(rng: Rng, fields: number[]): { bytes: Buffer; what: string } {
  const known = fields.length ? rng.pick(fields) : 1 + rng.int(9);
  const any = rng.pick([known, 1 + rng.int(20), 1000 + rng.int(1000), 536870911]);
  const w = new ProtoWriter();
  const choices: [string, () => void][] = [
    ["field number 0", () => w.fieldZero(rng.int(6))],
    ["overlong (11-byte) varint value", () => w.tag(any, WireType.VARINT).overlongVarint()],
    ["overlong (11-byte) varint tag", () => w.overlongVarint()],
    ["truncated varint", () => w.tag(any, WireType.VARINT).truncatedVarint()],
    ["length overrunning the buffer", () => w.lengthOverrun(any, 1 + rng.int(5000))],
    ["huge declared length 2^32-1", () => w.hugeLength(any)],
    ["huge declared length 2^62", () => w.hugeLength(any, 1n << 62n)],
    ["huge declared length 2^64-1", () => w.hugeLength(any, (1n << 64n) - 1n)],
    [`wrong wire type for known field ${known}`, () => w.wrongWireType(known, rng.pick([0, 1, 2, 3, 5]))],
    ["wire type 6 or 7", () => w.tag(any, 6 + rng.int(2)).varint(1)],
    ["unmatched end-group", () => w.unmatchedEndGroup(any)],
    ["start-group closed by another field's end-group", () => w.mismatchedGroup(any, any + 1)],
    ["unclosed start-group", () => w.unclosedGroup(any)],
    ["well-formed group", () => w.tag(any, WireType.SGROUP).varintField(1, 5).tag(any, WireType.EGROUP)],
    ["100 000 nested groups", () => w.nestedGroups(any, 100_000)],
    ["10 000 nested length-delimited fields", () => w.nestedMessages(known, 10_000)],
    ["10 000 nested length-delimited unknown fields", () => w.nestedMessages(1000 + rng.int(100), 10_000)],
    [`invalid UTF-8 in field ${known}`, () => w.invalidUtf8(known, rng.pick(Object.values(INVALID_UTF8)), "x", "y")],
    ["extra unknown varint field", () => w.varintField(1000 + rng.int(1000), BigInt(rng.int(1 << 30)) << 20n)],
    ["extra unknown fixed64 field", () => w.tag(1000 + rng.int(1000), WireType.I64).fixed64(rng.int(1 << 30))],
    ["extra unknown fixed32 field", () => w.tag(1000 + rng.int(1000), WireType.I32).fixed32(rng.int(1 << 30))],
    ["extra unknown bytes field", () => w.bytesField(1000 + rng.int(1000), rng.bytes(rng.int(64)))],
    ["negative int64 varint in a known field", () => w.varintField(known, -1)],
    ["fixed64 cut short", () => w.tag(any, WireType.I64).raw(rng.bytes(3))],
  ];
  const [what, write] = rng.pick(choices);
  write();
  return { bytes: w.finish(), what };
}

function insertAt(b: Buffer, at: number, extra: Buffer): Buffer {
  return Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
}

/** One random byte-level mutation of `b`; the description names it. */
function mutateBytes(rng: Rng, b: Buffer, fields: number[]): { bytes: Buffer; what: string } {
  const at = rng.int(b.length + 1);
  switch (rng.int(9)) {
    case 0:
      return { bytes: b.subarray(0, rng.int(Math.max(1, b.length))), what: "truncated" };
    case 1: {
      const out = Buffer.from(b);
      const n = 1 + rng.int(4);
      for (let i = 0; i < n && out.length; i++) out[rng.int(out.length)] ^= 1 + rng.int(255);
      return { bytes: out, what: `${n} byte(s) flipped` };
    }
    case 2: {
      const out = Buffer.from(b);
      if (out.length) out[rng.int(out.length)] = rng.pick([0x00, 0x7f, 0x80, 0xff]);
      return { bytes: out, what: "a byte set to 00/7f/80/ff" };
    }
    case 3:
      return { bytes: insertAt(b, at, rng.bytes(1 + rng.int(16))), what: "random bytes inserted" };
    case 4: {
      const end = Math.min(b.length, at + 1 + rng.int(16));
      return { bytes: Buffer.concat([b.subarray(0, at), b.subarray(end)]), what: "bytes deleted" };
    }
    case 5: {
      const end = Math.min(b.length, at + 1 + rng.int(32));
      return { bytes: insertAt(b, end, b.subarray(at, end)), what: "bytes duplicated" };
    }
    case 6: {
      const s = snippet(rng, fields);
      return { bytes: insertAt(b, at, s.bytes), what: `inserted mid-message: ${s.what}` };
    }
    default: {
      const s = snippet(rng, fields);
      return { bytes: Buffer.concat([b, s.bytes]), what: `appended: ${s.what}` };
    }
  }
}

/** The map fields of the requests and inputs: their keys are strings on the wire. */
const MAP_FIELDS = new Set(["cell_data", "point_data", "tangent_vector", "cotangent_vector", "eps_by_path", "typical_magnitude"]);

/** Every string value and map key in an object tree (not inside buffers). */
function stringsOf(value: unknown, out = new Set<string>(), isMap = false): Set<string> {
  if (typeof value === "string") out.add(value);
  else if (value && typeof value === "object" && !ArrayBuffer.isView(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (isMap) out.add(k);
      stringsOf(v, out, MAP_FIELDS.has(k));
    }
  }
  return out;
}

/** The tree with every string (and map key) equal to `from` replaced by `to`. */
function replaceString<T>(value: T, from: string, to: string, isMap = false): T {
  if (value === from) return to as T;
  if (!value || typeof value !== "object" || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map((v) => replaceString(v, from, to)) as T;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [isMap && k === from ? to : k, replaceString(v, from, to, MAP_FIELDS.has(k))])) as T;
}

/** Field-like strings (paths, keys, URLs), not numbers-as-strings. */
const corruptible = (s: string) => s.length >= 3 && !/^[\d.e+-]*$/.test(s);

export interface WireCase {
  /** `${rpc}/${tesseract}/${seed}/${index}` */
  id: string;
  rpc: string;
  path: string;
  tesseract: TesseractName;
  /** What was done to the valid request. */
  recipe: string;
  /** The mutation family (for grouping defects). */
  family: string;
  /** The request body, written in these separate writes. */
  writes: Buffer[];
  headers?: Record<string, string>;
  /** Whether the request is anything but a valid one (always, except for the baselines). */
  mutated: boolean;
  /** A message flagged compressed without grpc-encoding: must not be processed as if uncompressed. */
  compressedWithoutEncoding?: boolean;
}

const LONG = 1 << 20;

/** The very long strings put in place of a string or map key. */
const LONG_STRINGS: [string, (s: string) => string][] = [
  // Long enough for a grpc-message that echoes it to break the 4 KiB rule, short enough to arrive.
  ["10 KiB", (s) => s + "x".repeat(10 << 10)],
  ["1 MiB", (s) => s + "x".repeat(LONG)],
  ["100 000-segment", (s) => `${s}${".a".repeat(100_000)}`],
  ["100 000 indices", (s) => `${s}${"[0]".repeat(100_000)}`],
  ["100 000 map-key segments", (s) => `${s}${".{k}".repeat(100_000)}`],
];

type Base = Pick<WireCase, "id" | "rpc" | "path" | "tesseract">;

/** A valid request taken apart, for the mutations below. */
interface Parts {
  spec: RpcSpec;
  t: TesseractName;
  request: Record<string, unknown>;
  inputs?: Record<string, unknown>;
  encodedInputs?: Buffer;
  valid: Buffer;
  /** Strings and map keys of the request and its Any that appear verbatim in `valid`. */
  strings: string[];
}

function parts(spec: RpcSpec, t: TesseractName): Parts {
  const { request, inputs } = spec.valid(t);
  const encodedInputs = inputs && encodeInputs(t, inputs);
  const valid = spec.encode(request, encodedInputs, t);
  const strings = [...new Set([...stringsOf(request), ...(inputs ? stringsOf(inputs) : [])])].filter(corruptible);
  return { spec, t, request, inputs, encodedInputs, valid, strings };
}

/** Invalid UTF-8 written over part of string `s` (same length, so every length stays right). */
function invalidUtf8Over(p: Parts, s: string, bad: Uint8Array, occurrence: number, offset: number): Buffer {
  const needle = Buffer.from(s);
  const hits: number[] = [];
  for (let i = p.valid.indexOf(needle); i >= 0; i = p.valid.indexOf(needle, i + 1)) hits.push(i);
  if (!hits.length) throw new Error(`${JSON.stringify(s)} is not in the encoded request`);
  const out = Buffer.from(p.valid);
  Buffer.from(bad).copy(out, hits[occurrence % hits.length] + Math.min(offset, Math.max(0, needle.length - bad.length)), 0, Math.min(bad.length, needle.length));
  return out;
}

/** The request with string `s` (wherever it is, the Any included) replaced by `to`. */
function replaced(p: Parts, s: string, to: string): Buffer {
  const inputs = p.inputs && encodeInputs(p.t, replaceString(p.inputs, s, to));
  return p.spec.encode(replaceString(p.request, s, to), inputs, p.t);
}

/** Deep nesting appended to the request or to the Any's value. */
function deeplyNested(p: Parts, inAny: boolean, groups: boolean, field: number): Buffer {
  const deep = groups ? new ProtoWriter().nestedGroups(field, 100_000).finish() : nestLengthDelimited(field, 10_000);
  return inAny ? p.spec.encode(p.request, Buffer.concat([p.encodedInputs!, deep]), p.t) : Buffer.concat([p.valid, deep]);
}

const ANY_FIELDS: Record<TesseractName, number[]> = { meshstats: [1, 2], vectoradd: [1, 2, 3, 4] };
/** The request's map fields: [field] for a map of the request, [options field, map field] for one in its options. */
const OUTER_MAPS: Record<string, [number, number?][]> = {
  Jacobian: [[4, 5], [4, 7]],
  JacobianRows: [[4, 5], [4, 7]],
  JacobianVectorProduct: [[4], [5, 5], [5, 7]],
  VectorJacobianProduct: [[4], [5, 5], [5, 7]],
  CheckGradients: [[9, 5], [9, 7]],
};

function mutated(base: Base, recipe: string, family: string, writes: Buffer[]): WireCase {
  return { ...base, recipe, family, writes, mutated: true };
}

/** Case `index` of `rpc` against `t` for `seed`. Index 0 is the valid baseline. */
export function makeCase(spec: RpcSpec, t: TesseractName, seed: number, index: number): WireCase {
  const rng = new Rng(caseSeed(seed, spec.name, t, index));
  const base = { id: `${spec.name}/${t}/${seed}/${index}`, rpc: spec.name, path: spec.path, tesseract: t };
  const p = parts(spec, t);
  if (index === 0) return { ...base, recipe: "the valid request", family: "valid", writes: [frame(p.valid)], mutated: false };

  let message: Buffer;
  let recipe: string;
  let family: string;
  const kind = rng.int(100);
  const many = (b: Buffer, fields: number[]) => {
    const steps: string[] = [];
    for (let n = rng.int(3) + 1; n > 0; n--) {
      const m = mutateBytes(rng, b, fields);
      b = m.bytes;
      steps.push(m.what);
    }
    // Families group one kind of mutation; stacked ones are a family of their own.
    return { b, steps, first: steps.length === 1 ? steps[0].replace(/\d+ byte/, "n byte") : "2 or 3 stacked mutations" };
  };
  if (kind < 30 || (kind < 50 && !p.encodedInputs)) {
    const m = many(p.valid, spec.fields);
    [message, recipe, family] = [m.b, `request bytes: ${m.steps.join("; ")}`, `request bytes: ${m.first}`];
  } else if (kind < 50) {
    // The Any's bytes (the Tesseract's Inputs), re-wrapped in a well-formed request.
    const m = many(p.encodedInputs!, ANY_FIELDS[t]);
    [message, recipe, family] = [spec.encode(p.request, m.b, t), `Any value bytes: ${m.steps.join("; ")}`, `Any value bytes: ${m.first}`];
  } else if (kind < 62 && p.strings.length) {
    const s = rng.pick(p.strings);
    const [badName, bad] = rng.pick(Object.entries(INVALID_UTF8));
    message = invalidUtf8Over(p, s, bad, rng.int(8), rng.int(s.length));
    [recipe, family] = [`invalid UTF-8 (${badName}) written over ${JSON.stringify(s)}`, `invalid UTF-8 in a string (${stringRole(s)})`];
  } else if (kind < 70 && p.strings.length) {
    const s = rng.pick(p.strings);
    const [label, long] = rng.pick(LONG_STRINGS);
    message = replaced(p, s, long(s));
    [recipe, family] = [`${label} string in place of ${JSON.stringify(s)}`, `${label} string (${stringRole(s)})`];
  } else if (kind < 75) {
    const inAny = p.encodedInputs !== undefined && rng.int(2) === 1;
    const field = rng.pick(inAny ? [...ANY_FIELDS[t], 1000] : [...spec.fields, 1000]);
    const groups = rng.int(2) === 1;
    message = deeplyNested(p, inAny, groups, field);
    const what = groups ? "100 000 nested groups" : "10 000 nested length-delimited";
    [recipe, family] = [`${what} field ${field}, appended to the ${inAny ? "Any value" : "request"}`, `deep nesting (${what}) in the ${inAny ? "Any value" : "request"}`];
  } else {
    return framingCase(spec, base, p.valid, rng.int(FRAMINGS), rng);
  }
  // Now and then, a mutated message also goes out in several writes.
  const framed = frame(message);
  return mutated(base, recipe, family, rng.int(5) === 0 ? splitWrites(rng, framed) : [framed]);
}

/**
 * A fixed catalogue for one RPC and Tesseract, whatever the PRNG draws: each malformed snippet
 * appended to the request and to the Any, invalid UTF-8 and very long versions of every string,
 * deep nesting, and every framing mutation.
 */
export function focusedCases(spec: RpcSpec, t: TesseractName): WireCase[] {
  const p = parts(spec, t);
  const out: WireCase[] = [];
  let n = 0;
  const add = (recipe: string, family: string, message: Buffer) => out.push(mutated({ id: `${spec.name}/${t}/focused/${n++}`, rpc: spec.name, path: spec.path, tesseract: t }, recipe, family, [frame(message)]));
  const known = spec.fields[0] ?? 1;
  const w = () => new ProtoWriter();
  const snippets: [string, Buffer][] = [
    ["field number 0", w().fieldZero().finish()],
    ["overlong (11-byte) varint tag", w().overlongVarint().finish()],
    ["truncated varint", w().tag(known, WireType.VARINT).truncatedVarint().finish()],
    ["length overrunning the buffer", w().lengthOverrun(known, 1000).finish()],
    ["huge declared length 2^32-1", w().hugeLength(known).finish()],
    ["huge declared length 2^62", w().hugeLength(1000, 1n << 62n).finish()],
    [`wrong wire type (varint) for known field ${known}`, w().wrongWireType(known, WireType.VARINT).finish()],
    [`wrong wire type (fixed32) for known field ${known}`, w().wrongWireType(known, WireType.I32).finish()],
    ["unmatched end-group", w().unmatchedEndGroup(1000).finish()],
    ["start-group closed by another field's end-group", w().mismatchedGroup(1000, 1001).finish()],
    ["well-formed unknown group", w().tag(1000, WireType.SGROUP).varintField(1, 5).tag(1000, WireType.EGROUP).finish()],
    [`invalid UTF-8 in field ${known}`, w().invalidUtf8(known).finish()],
  ];
  // Map entries with a key and no value, or a value and no key: in the request's maps, and (meshstats) in the Any's.
  const entry = (keyOnly: boolean) => (e: ProtoWriter) => (keyOnly ? e.stringField(1, "k") : e.message(2, (v) => v.varintField(1, 11)));
  for (const keyOnly of [true, false]) {
    const what = keyOnly ? "a map entry with a key and no value" : "a map entry with a value and no key";
    for (const [field, inOptions] of OUTER_MAPS[spec.name] ?? []) {
      const bytes = inOptions === undefined ? w().message(field, entry(keyOnly)).finish() : w().message(field, (o) => o.message(inOptions, keyOnly ? (e) => e.stringField(1, "k") : (e) => e.tag(2, WireType.I64).double(1e-6))).finish();
      snippets.push([`${what} (field ${field}${inOptions ? `.${inOptions}` : ""})`, bytes]);
    }
    if (t === "meshstats" && p.encodedInputs) {
      for (const map of [6, 7]) {
        const bytes = w().message(1, (m) => m.message(map, entry(keyOnly))).finish();
        add(`Any value bytes: appended: ${what} (mesh.${map === 6 ? "cell_data" : "point_data"})`, `Any value bytes: ${what}`, spec.encode(p.request, Buffer.concat([p.encodedInputs, bytes]), t));
      }
    }
  }
  for (const [what, bytes] of snippets) {
    add(`request bytes: appended: ${what}`, `request bytes: appended: ${what}`, Buffer.concat([p.valid, bytes]));
    if (p.encodedInputs) add(`Any value bytes: appended: ${what}`, `Any value bytes: appended: ${what}`, spec.encode(p.request, Buffer.concat([p.encodedInputs, bytes]), t));
  }
  for (const s of p.strings) {
    for (const [badName, bad] of [["surrogate", INVALID_UTF8.surrogate], ["overlong", INVALID_UTF8.overlong], ["ff", INVALID_UTF8.ff]] as const) {
      add(`invalid UTF-8 (${badName}) written over ${JSON.stringify(s)}`, `invalid UTF-8 in a string (${stringRole(s)})`, invalidUtf8Over(p, s, bad, 0, 0));
    }
    for (const [label, long] of LONG_STRINGS) add(`${label} string in place of ${JSON.stringify(s)}`, `${label} string (${stringRole(s)})`, replaced(p, s, long(s)));
  }
  for (const inAny of p.encodedInputs ? [false, true] : [false]) {
    for (const groups of [false, true]) {
      const what = groups ? "100 000 nested groups" : "10 000 nested length-delimited";
      add(`${what} field 1000, appended to the ${inAny ? "Any value" : "request"}`, `deep nesting (${what}) in the ${inAny ? "Any value" : "request"}`, deeplyNested(p, inAny, groups, 1000));
    }
  }
  const rng = new Rng(1);
  for (let i = 0; i < FRAMINGS; i++) {
    const c = framingCase(spec, { id: `${spec.name}/${t}/focused/${n++}`, rpc: spec.name, path: spec.path, tesseract: t }, p.valid, i, rng);
    out.push(c);
  }
  return out;
}

/** What a corrupted string is, for grouping: the type URL, a path, a key. */
function stringRole(s: string): string {
  if (s.startsWith("type.googleapis.com/")) return "type_url";
  if (/^(mesh|statistics|a|b|s|result)\b/.test(s)) return "path or path key";
  return s.includes(".") ? "symbol or file name" : "map key or name";
}

function splitWrites(rng: Rng, b: Buffer): Buffer[] {
  const cuts = [...new Set(Array.from({ length: 1 + rng.int(4) }, () => rng.int(b.length)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of cuts) {
    out.push(b.subarray(from, c));
    from = c;
  }
  out.push(b.subarray(from));
  return out.filter((part) => part.length > 0);
}

const FRAMINGS = 9;

/** Framing mutation number `pick` (0 to FRAMINGS - 1) of the valid message. */
function framingCase(spec: RpcSpec, base: Base, valid: Buffer, pick: number, rng: Rng): WireCase {
  const bidi = spec.shape === "bidi";
  switch (pick) {
    case 0:
      return { ...base, recipe: "compressed flag set, no grpc-encoding header", family: "compressed flag without grpc-encoding", writes: [frame(valid, { compressed: true })], mutated: true, compressedWithoutEncoding: true };
    case 1: {
      const extra = 1 + rng.int(100);
      return mutated(base, `frame length says ${valid.length + extra}, ${valid.length} bytes follow, then end of stream`, "frame length longer than the body", [frame(valid, { declaredLength: valid.length + extra })]);
    }
    case 2:
      return mutated(base, "frame length 2^32-1, then end of stream", "frame length 2^32-1", [frame(valid, { declaredLength: 0xffffffff })]);
    case 3: {
      const short = rng.int(Math.max(1, valid.length));
      return mutated(base, `frame length says ${short} of ${valid.length} bytes (the rest is read as a second frame)`, "frame length shorter than the body", [frame(valid, { declaredLength: short })]);
    }
    case 4: {
      const n = 2 + rng.int(2);
      return { ...base, recipe: `${n} valid messages on one ${spec.shape} call`, family: "several messages", writes: Array.from({ length: n }, () => frame(valid)), mutated: !bidi };
    }
    case 5:
      return { ...base, recipe: "empty body (no message), end of stream", family: "empty body", writes: [], mutated: !bidi };
    case 6: {
      const cut = 1 + rng.int(4);
      return mutated(base, `only ${cut} bytes of a frame prefix, end of stream`, "truncated frame prefix", [frame(valid).subarray(0, cut)]);
    }
    case 7:
      return { ...base, recipe: "a zero-length message (all fields default)", family: "zero-length message", writes: [frame(Buffer.alloc(0))], mutated: spec.name !== "Describe" };
    default:
      return { ...base, recipe: "the valid request in several writes", family: "valid, split writes", writes: splitWrites(rng, frame(valid)), mutated: false };
  }
}

/** `count` cases for one RPC, alternating Tesseracts; the first two are the valid baselines. */
export function* cases(spec: RpcSpec, seed: number, count: number, from = 0): Generator<WireCase> {
  for (let i = from; i < from + count; i++) {
    const t = TESSERACTS[i % TESSERACTS.length];
    yield makeCase(spec, t, seed, Math.floor(i / TESSERACTS.length));
  }
}

// ---- the judge ----------------------------------------------------------------------------------

export const MAX_MESSAGE_BYTES = 4096;

export type DefectKind = "no status" | "stream reset" | "INTERNAL" | "UNKNOWN" | "long grpc-message" | "compressed message processed" | "valid request refused" | "OK without a message" | "session lost" | "server exited";

export interface Defect {
  kind: DefectKind;
  detail: string;
}

const STATUS_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];
export const statusName = (code: number | undefined) => (code === undefined ? "none" : (STATUS_NAMES[code] ?? String(code)));

const clip = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);

/** What is wrong with the answer to `c` by the contract (empty: nothing). */
export function judge(c: WireCase, r: RawResponse): Defect[] {
  const defects: Defect[] = [];
  const message = r.grpcMessage ?? "";
  if (r.timedOut) defects.push({ kind: "no status", detail: `no status after ${r.ms.toFixed(0)} ms` });
  else if (r.grpcStatus === undefined) defects.push({ kind: "stream reset", detail: r.streamError ?? `stream ended without grpc-status (HTTP ${r.httpStatus})` });
  if (r.grpcStatus === 13 && c.mutated) defects.push({ kind: "INTERNAL", detail: clip(message) });
  if (r.grpcStatus === 2 && c.mutated) defects.push({ kind: "UNKNOWN", detail: clip(message) });
  const size = Buffer.byteLength(message);
  if (size >= MAX_MESSAGE_BYTES) defects.push({ kind: "long grpc-message", detail: `${size} bytes: ${clip(message, 80)}` });
  if (c.compressedWithoutEncoding && r.grpcStatus === 0) {
    // A valid message flagged compressed: answering it as if uncompressed is the defect.
    defects.push({ kind: "compressed message processed", detail: `${statusName(r.grpcStatus)}: ${clip(message)}` });
  }
  const expected = rpcSpec(c.rpc).validStatus?.[c.tesseract] ?? 0;
  if (!c.mutated && r.grpcStatus !== undefined && r.grpcStatus !== expected) defects.push({ kind: "valid request refused", detail: `${statusName(r.grpcStatus)}: ${clip(message)}` });
  if (r.grpcStatus === 0 && r.messages.length === 0 && rpcSpec(c.rpc).shape !== "bidi") defects.push({ kind: "OK without a message", detail: "status OK, no response message" });
  return defects;
}

/** Hex of a case's body (all writes), clipped to `max` bytes. */
export function bodyHex(c: WireCase, max = 512): string {
  const body = Buffer.concat(c.writes);
  return body.length > max ? `${body.subarray(0, max).toString("hex")}… (${body.length} bytes; regenerate with makeCase: ${c.id})` : body.toString("hex");
}

// ---- running cases ------------------------------------------------------------------------------

export interface Outcome {
  c: WireCase;
  r: RawResponse;
  defects: Defect[];
}

/**
 * Runs cases one at a time, each Tesseract's on its own HTTP/2 session, and checks that the session
 * survives: every `probeEvery` cases (and after any case left without a status) a valid Apply on the
 * same session must answer OK; if not, that case gets a "session lost" defect and a new session.
 */
export class WireFuzzer {
  private readonly sessions = new Map<TesseractName, RawGrpcSession>();
  private count = 0;

  constructor(
    private readonly addresses: Record<TesseractName, string>,
    private readonly opts: { timeoutMs: number; probeEvery: number; probeTimeoutMs?: number } = { timeoutMs: 5000, probeEvery: 10 },
  ) {}

  private session(t: TesseractName): RawGrpcSession {
    let s = this.sessions.get(t);
    if (!s) this.sessions.set(t, (s = new RawGrpcSession(this.addresses[t])));
    return s;
  }

  async run(c: WireCase): Promise<Outcome> {
    const session = this.session(c.tesseract);
    const r = await session.call(c.path, c.writes, { headers: c.headers, timeoutMs: this.opts.timeoutMs });
    const defects = judge(c, r);
    if (++this.count % this.opts.probeEvery === 0 || r.grpcStatus === undefined || !session.usable) {
      const lost = await this.check(c.tesseract);
      if (lost) defects.push({ kind: "session lost", detail: lost });
    }
    return { c, r, defects };
  }

  /** A valid call on the Tesseract's session; returns why it failed (and replaces the session), or undefined. */
  async check(t: TesseractName): Promise<string | undefined> {
    const session = this.session(t);
    const { path, body } = probe(t);
    const p = await session.call(path, body, { timeoutMs: this.opts.probeTimeoutMs ?? this.opts.timeoutMs });
    if (p.grpcStatus === 0 && p.messages.length === 1 && session.usable) return undefined;
    const why = `the next valid Apply on the same session: ${p.timedOut ? "no status" : `${statusName(p.grpcStatus)} ${p.grpcMessage ?? ""}`}${p.streamError ? ` (${p.streamError})` : ""}${session.sessionError ? ` [${session.sessionError}]` : ""}`;
    this.sessions.delete(t);
    await session.close();
    return why;
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
    this.sessions.clear();
  }
}

/** The case a `WireCase.id` names (`rpc/tesseract/seed/index`). */
export function caseFromId(id: string): WireCase {
  const [rpc, t, seed, index] = id.split("/");
  return makeCase(rpcSpec(rpc), t as TesseractName, Number(seed), Number(index));
}
