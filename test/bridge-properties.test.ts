/**
 * Property test of `serve http://…`: random Tesseracts in tesseract-core's OpenAPI form (see
 * fixtures/tesseract-core/random-schemas.ts), each served by the fake runtime and bridged on
 * 127.0.0.1 port 0. Apply, Jacobian, JVP, VJP and AbstractEval over gRPC, and Apply and Jacobian over
 * the REST API, must give what the runtime computes and the analytic derivatives; CheckGradients is
 * UNIMPLEMENTED (a bridged runtime has no analytic gradients).
 */
import { strict as assert } from "node:assert";
import fc from "fast-check";
import ndarray from "ndarray";
import * as protobuf from "protobufjs";
import { Algorithm, assembleJacobian } from "../client";
import { startServer } from "../index";
import { silentLogger } from "../server/log";
import { BoolArray, DataType } from "../common/tensor-codec";
import { formatPath, type Segment as PathSegment } from "../common/paths";
import { reflectedClient } from "./fixtures/tesseract-core/bridge-clients";
import { startFakeTesseractCore, type FakeArray } from "./fixtures/tesseract-core/fake-tesseract-core";
import { applyOf, coefficient, dg, differentiableLeaves, instanceOf, openApiOf, outputArrays, outputShape, random, tesseractSpec, weight, type Dtype, type Segment, type TesseractSpec } from "./fixtures/tesseract-core/random-schemas";
import { clientRejects, flat } from "./helpers";

const CENTRAL = { algorithm: Algorithm.ALGORITHM_CENTRAL };
const CTORS = { float32: Float32Array, float64: Float64Array, int32: Int32Array, int64: BigInt64Array, bool: BoolArray } as const;
const DATATYPES: Record<Dtype, DataType> = { float32: DataType.DATA_TYPE_FP32, float64: DataType.DATA_TYPE_FP64, int32: DataType.DATA_TYPE_INT32, int64: DataType.DATA_TYPE_INT64, bool: DataType.DATA_TYPE_BOOL };

const isArray = (x: unknown): x is FakeArray => typeof x === "object" && x !== null && "values" in x && "shape" in x;
const own = <T = unknown>(entries: [string, T][]): Record<string, T> => Object.fromEntries(entries);
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** A field's key in the runtime's JSON: its json_key option (as reflection's .proto text spells it) or its name. */
const jsonKey = (field: protobuf.Field): string => (field.options?.["(.tesseract.v1.json_key)"] as string | undefined) ?? field.name;
const fieldOfKey = (type: protobuf.Type, key: string) => type.fieldsArray.find((f) => jsonKey(f) === key);

function toNdarray(a: FakeArray) {
  const ctor = CTORS[a.dtype as Dtype];
  const data = a.dtype === "int64" ? BigInt64Array.from(a.values.map(BigInt)) : new (ctor as Float64ArrayConstructor)(a.values);
  return ndarray(data as Float64Array, a.shape);
}

/** A tree in the runtime's keys (arrays as FakeArray) as the gRPC client takes it: field names, ndarrays. */
function toNames(type: protobuf.Type, tree: Record<string, unknown>): Record<string, unknown> {
  return own(
    Object.entries(tree).map(([key, value]) => {
      const field = fieldOfKey(type, key);
      assert.ok(field, `no field of ${type.fullName} has key ${JSON.stringify(key)}`);
      const inner = field.resolvedType instanceof protobuf.Type && field.resolvedType.fullName !== ".tesseract.v1.Tensor" ? field.resolvedType : undefined;
      const one = (v: unknown) => (isArray(v) ? toNdarray(v) : inner ? toNames(inner, v as Record<string, unknown>) : v);
      const converted = field.map ? own(Object.entries(value as object).map(([k, v]) => [k, one(v)])) : Array.isArray(value) ? value.map(one) : one(value);
      return [field.name, converted];
    }),
  );
}

/** Outputs as the gRPC client decodes them, in the runtime's keys with arrays as FakeArray. */
function toKeys(type: protobuf.Type, tree: Record<string, unknown>): Record<string, unknown> {
  return own(
    Object.entries(tree).map(([name, value]) => {
      const field = type.fields[name];
      const inner = field.resolvedType instanceof protobuf.Type && field.resolvedType.fullName !== ".tesseract.v1.Tensor" ? field.resolvedType : undefined;
      const one = (v: any): unknown => {
        if (!inner && typeof v === "object" && v?.shape) {
          const dtype = Object.entries(CTORS).find(([, c]) => v.data.constructor === c)![0];
          return { shape: [...v.shape], dtype, values: Array.from(v.data as ArrayLike<number>, Number) };
        }
        return inner ? toKeys(inner, v) : v;
      };
      const converted = field.map ? own(Object.entries(value as object).map(([k, v]) => [k, one(v)])) : Array.isArray(value) ? value.map(one) : one(value);
      return [jsonKey(field), converted];
    }),
  );
}

/** A path in the runtime's keys as a gRPC path (field names), or as the REST API writes it (keys where a path can spell them). */
function pathOf(type: protobuf.Type, segments: Segment[], rest = false): string {
  let message: protobuf.Type | undefined = type;
  const out: PathSegment[] = segments.map((s) => {
    if (s.kind !== "field") return s;
    const field = fieldOfKey(message!, s.key)!;
    message = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    return { kind: "field", name: rest && /^[A-Za-z_][A-Za-z0-9_]*$/.test(s.key) ? s.key : field.name };
  });
  return formatPath(out);
}

/** A FakeArray as the REST API takes it (json encoding). */
function restTree(tree: unknown): unknown {
  if (isArray(tree)) return { object_type: "array", shape: tree.shape, dtype: tree.dtype, data: { buffer: tree.dtype === "bool" ? tree.values.map(Boolean) : tree.values, encoding: "json" } };
  if (Array.isArray(tree)) return tree.map(restTree);
  if (typeof tree === "object" && tree !== null) return own(Object.entries(tree).map(([k, v]) => [k, restTree(v)]));
  return tree;
}

/** A REST answer's arrays (any encoding the REST API writes: nested json lists) as FakeArray. */
function fromRest(tree: any): unknown {
  if (typeof tree === "object" && tree !== null && tree.object_type === "array") return { shape: tree.shape, dtype: tree.dtype, values: [tree.data.buffer].flat(Infinity).map(Number) };
  if (Array.isArray(tree)) return tree.map(fromRest);
  if (typeof tree === "object" && tree !== null) return own(Object.entries(tree).map(([k, v]) => [k, fromRest(v)]));
  return tree;
}

function assertNear(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const bound = tolerance * (1 + Math.abs(expected[i]));
    assert.ok(Math.abs(actual[i] - expected[i]) <= bound, `${what}[${i}] = ${actual[i]}, expected ${expected[i]} (±${bound})`);
  }
}

/** Checks everything for one generated Tesseract and its inputs. */
async function checkBridged(spec: TesseractSpec, seed: number): Promise<void> {
  const apply = applyOf(spec);
  const seen: Record<string, unknown>[] = [];
  const abstractSeen: Record<string, unknown>[] = [];
  const answered: Record<string, unknown>[] = [];
  const fake = await startFakeTesseractCore({
    openapi: openApiOf(spec),
    apply: (given) => {
      seen.push(given);
      const outputs = apply(given);
      answered.push(outputs);
      return outputs;
    },
    abstractEval: (given) => {
      abstractSeen.push(given);
      // The outputs with each array as its shape and dtype.
      const shaped = (x: unknown): unknown => (isArray(x) ? { shape: x.shape, dtype: x.dtype } : Array.isArray(x) ? x.map(shaped) : typeof x === "object" && x !== null ? own(Object.entries(x).map(([k, v]) => [k, shaped(v)])) : x);
      return shaped(apply(instanceOf(spec.inputs, random(0)))) as Record<string, unknown>;
    },
  });
  const server = await startServer({ tesseract: fake.url, port: 0, httpPort: 0, logger: silentLogger }).catch(async (e: unknown) => {
    await fake.close();
    throw e;
  });
  const { client, root, described } = await reflectedClient(server.address);
  try {
    const inputType = root.lookupType(described.input_type);
    const outputType = root.lookupType(described.output_type);
    const inputs = instanceOf(spec.inputs, random(seed));
    const given = toNames(inputType, inputs);

    // Apply: the runtime is sent exactly these inputs and its answer comes back as it is.
    const outputs = await client.apply(given);
    assert.deepEqual(seen[0], inputs, "the inputs the runtime received");
    assert.deepEqual(toKeys(outputType, outputs), answered[0], "Apply's outputs");

    // AbstractEval: every output array's path, shape and datatype; the runtime is sent shapes only.
    const shapes = await client.abstractEval(given);
    const arrays = outputArrays(spec.outputs);
    assert.deepEqual(
      shapes.map((s) => [s.path, s.shape.map(Number), s.datatype]),
      arrays.map((a) => [pathOf(outputType, a.path), outputShape(a.type.shape), DATATYPES[a.type.dtype]]),
    );
    const shapesOnly = (x: unknown): unknown => (isArray(x) ? { shape: x.shape, dtype: x.dtype } : Array.isArray(x) ? x.map(shapesOnly) : typeof x === "object" && x !== null ? own(Object.entries(x).map(([k, v]) => [k, shapesOnly(v)])) : x);
    assert.deepEqual(abstractSeen[0], shapesOnly(inputs), "the inputs abstract_eval received");

    await clientRejects(client.checkGradients({ inputs: given }), "UNIMPLEMENTED");

    const leaves = differentiableLeaves(spec.inputs, inputs);
    const outs = arrays.filter((a) => a.o !== undefined);
    const n = leaves.reduce((t, l) => t + l.array.values.length, 0);
    if (leaves.length === 0 || outs.length === 0 || n === 0) return;
    const start: number[] = [];
    leaves.reduce((t, l) => (start.push(t), t + l.array.values.length), 0);
    // d out[k] / d leaf[j], analytically.
    const derivative = (o: number, k: number, leaf: number, j: number) => coefficient(o, k) * weight(start[leaf] + j) * dg(leaves[leaf].array.values[j]);
    const tolerance = (leaf: number) => (leaves[leaf].array.dtype === "float32" ? 1e-6 : 1e-9);
    const inPaths = leaves.map((l) => pathOf(inputType, l.path));
    const outPaths = outs.map((a) => pathOf(outputType, a.path));

    const calls = fake.applyCalls;
    const jacobian = await client.jacobian({ inputs: given, inputPaths: inPaths, outputPaths: outPaths, options: CENTRAL });
    assert.equal(Number(jacobian.stats.apply_calls), 2 * n, "central: 2n evaluations");
    assert.equal(fake.applyCalls - calls, 2 * n, "POST /apply requests of the Jacobian");
    outs.forEach((out, oi) => {
      const m = size(outputShape(out.type.shape));
      leaves.forEach((leaf, li) => {
        const block = jacobian.block(outPaths[oi], inPaths[li]);
        assert.deepEqual(block.shape, [...outputShape(out.type.shape), ...leaf.array.shape], `${outPaths[oi]}/${inPaths[li]} shape`);
        const expected = Array.from({ length: m * leaf.array.values.length }, (_, e) => derivative(out.o!, Math.floor(e / leaf.array.values.length), li, e % leaf.array.values.length));
        assertNear(flat(block), expected, tolerance(li), `d ${outPaths[oi]} / d ${inPaths[li]}`);
      });
    });

    // JVP and VJP against J·v and uᵀ·J.
    const next = random(seed + 1);
    const tangents = leaves.map((l) => l.array.values.map(() => Math.round((next() * 2 - 1) * 100) / 100));
    const jvp = await client.jvp({ inputs: given, inputPaths: inPaths, outputPaths: outPaths, tangent: own<any>(inPaths.map((p, li) => [p, ndarray(Float64Array.from(tangents[li]), leaves[li].array.shape)])), options: CENTRAL });
    const loosest = Math.max(...leaves.map((_, li) => tolerance(li)));
    outs.forEach((out, oi) => {
      const m = size(outputShape(out.type.shape));
      const expected = Array.from({ length: m }, (_, k) => leaves.reduce((t, l, li) => t + l.array.values.reduce((u, _, j) => u + derivative(out.o!, k, li, j) * tangents[li][j], 0), 0));
      assert.deepEqual(jvp.result[outPaths[oi]].shape, outputShape(out.type.shape));
      assertNear(flat(jvp.result[outPaths[oi]]), expected, loosest, `JVP ${outPaths[oi]}`);
    });
    const cotangents = outs.map((a) => Array.from({ length: size(outputShape(a.type.shape)) }, () => Math.round((next() * 2 - 1) * 100) / 100));
    const vjp = await client.vjp({ inputs: given, inputPaths: inPaths, outputPaths: outPaths, cotangent: own<any>(outPaths.map((p, oi) => [p, ndarray(Float64Array.from(cotangents[oi]), outputShape(outs[oi].type.shape))])), options: CENTRAL });
    leaves.forEach((leaf, li) => {
      const expected = leaf.array.values.map((_, j) => outs.reduce((t, out, oi) => t + cotangents[oi].reduce((u, c, k) => u + c * derivative(out.o!, k, li, j), 0), 0));
      assert.deepEqual(vjp.result[inPaths[li]].shape, leaf.array.shape);
      assertNear(flat(vjp.result[inPaths[li]]), expected, tolerance(li), `VJP ${inPaths[li]}`);
    });

    // The REST API: tesseract-core's own clients' view of the same Tesseract, in the runtime's keys.
    const rest = `http://127.0.0.1:${server.httpPort}`;
    const post = async (endpoint: string, body: unknown) => {
      const res = await fetch(`${rest}/${endpoint}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: res.status, json: (await res.json()) as any };
    };
    const applied = await post("apply", { inputs: restTree(inputs) });
    assert.equal(applied.status, 200, JSON.stringify(applied.json));
    assert.deepEqual(fromRest(applied.json), answered[0], "REST apply");
    const restIn = leaves.map((l) => pathOf(inputType, l.path, true));
    const restOut = outs.map((a) => pathOf(outputType, a.path, true));
    const restJacobian = await post("jacobian", { inputs: restTree(inputs), jac_inputs: restIn, jac_outputs: restOut });
    assert.equal(restJacobian.status, 200, JSON.stringify(restJacobian.json).slice(0, 2000));
    outs.forEach((out, oi) => {
      leaves.forEach((leaf, li) => {
        const block = fromRest(restJacobian.json[restOut[oi]]?.[restIn[li]]) as FakeArray;
        assert.ok(block, `REST jacobian lacks ${restOut[oi]} / ${restIn[li]}: ${Object.keys(restJacobian.json)}`);
        assert.deepEqual(block.shape, [...outputShape(out.type.shape), ...leaf.array.shape]);
        assertNear(block.values, flat(jacobian.block(outPaths[oi], inPaths[li])), 1e-12, `REST d ${restOut[oi]} / d ${restIn[li]}`);
      });
    });
    const restJvp = await post("jacobian_vector_product", { inputs: restTree(inputs), jvp_inputs: restIn, jvp_outputs: restOut, tangent_vector: own(restIn.map((p, li) => [p, restTree({ shape: leaves[li].array.shape, dtype: "float64", values: tangents[li] })])) });
    assert.equal(restJvp.status, 200, JSON.stringify(restJvp.json).slice(0, 2000));
    outs.forEach((_, oi) => assert.deepEqual(fromRest(restJvp.json[restOut[oi]]), { shape: [...jvp.result[outPaths[oi]].shape], dtype: "float64", values: flat(jvp.result[outPaths[oi]]) }, `REST JVP ${restOut[oi]}`));
    const restVjp = await post("vector_jacobian_product", { inputs: restTree(inputs), vjp_inputs: restIn, vjp_outputs: restOut, cotangent_vector: own(restOut.map((p, oi) => [p, restTree({ shape: outputShape(outs[oi].type.shape), dtype: "float64", values: cotangents[oi] })])) });
    assert.equal(restVjp.status, 200, JSON.stringify(restVjp.json).slice(0, 2000));
    leaves.forEach((_, li) => assert.deepEqual(fromRest(restVjp.json[restIn[li]]), { shape: [...vjp.result[inPaths[li]].shape], dtype: "float64", values: flat(vjp.result[inPaths[li]]) }, `REST VJP ${restIn[li]}`));

    // JacobianRows streams the Jacobian's values.
    const streamed = await assembleJacobian(client.jacobianRows({ inputs: given, inputPaths: inPaths, outputPaths: outPaths, options: CENTRAL }));
    outs.forEach((_, oi) => leaves.forEach((_, li) => assert.deepEqual(flat(streamed.block(outPaths[oi], inPaths[li])), flat(jacobian.block(outPaths[oi], inPaths[li])), `rows of ${outPaths[oi]} / ${inPaths[li]}`)));
  } finally {
    client.close();
    await server.close(0);
    await fake.close();
  }
}

describe("tesseract-core bridge: random pydantic schemas (property)", function () {
  this.timeout(120_000);

  it("serves every generated InputSchema/OutputSchema: Apply, AbstractEval, Jacobian, JacobianRows, JVP, VJP (gRPC) and apply, jacobian, jvp, vjp (REST) give the runtime's values and the analytic derivatives; CheckGradients is UNIMPLEMENTED", async () => {
    await fc.assert(
      fc.asyncProperty(tesseractSpec, fc.integer({ min: 1, max: 2 ** 30 }), (spec, seed) => checkBridged(spec, seed)),
      { numRuns: Number(process.env.BRIDGE_PROPERTY_RUNS ?? 30), seed: process.env.BRIDGE_PROPERTY_SEED ? Number(process.env.BRIDGE_PROPERTY_SEED) : undefined },
    );
  });
});
