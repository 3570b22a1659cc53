/**
 * Tesseracts nobody wrote by hand: fast-check generates schemas (.proto text with nested, repeated and
 * map fields of messages, tensors and scalars; FP64/FP32 tensors of rank 0 to 3 with zero-size
 * dimensions; declared datatypes; enums, strings, 64-bit integers, optional fields, oneofs) and
 * values for them. Each is written to a temporary folder as a module Tesseract (test/fixtures/mirror/mirror.ts:
 * outputs with analytic derivatives), served on 127.0.0.1:0 with its REST API, and checked over gRPC
 * (the SDK, with message types parsed here from the same text) and REST: Apply round trips,
 * AbstractEval's shapes and datatypes, Jacobian, JVP and VJP against the analytic derivatives, and bad
 * paths refused naming them.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import fc from "fast-check";
import ndarray, { type NdArray } from "ndarray";
import { assembleJacobian, startServer, TesseractClient, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { coefficients, differentiablePatterns, mirrorAbstractEval, mirrorApply, ROOT, TOTAL, tensorsOf, type SchemaSpec, type TensorDatatype } from "./fixtures/mirror/mirror";
import { arraysTree, canonical, DATATYPE_NUMBER, DTYPE_NAME, mapTensors, messageArbitrary, protoText, record, restJson, schemaArbitrary, writeMirrorModule, clientTypes, type MessageValue } from "./generated-schemas";
import { clientRejects } from "./helpers";

const RUNS = Number(process.env.GENERATED_RUNS ?? 16);
const SEED = Number(process.env.GENERATED_SEED ?? 20240611);

/** A small deterministic generator for the choices a run makes from its seed (paths, vectors). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Leaf {
  path: string;
  pattern?: string;
  shape: number[];
  values: number[];
}

/** The differentiable input leaves as apply sees them, and the differentiable output leaves (their mirrors and total). */
function leavesOf(spec: SchemaSpec, value: MessageValue): { inputs: Leaf[]; outputs: Leaf[] } {
  const seen = arraysTree(value, "seen");
  const inputs = tensorsOf(spec, ROOT, seen)
    .filter((t) => t.field.differentiable)
    .map(({ path, pattern, value: v }) => {
      const a = v as NdArray;
      return { path, pattern, shape: [...a.shape], values: Array.from(a.data as Float64Array) };
    });
  return { inputs, outputs: [...inputs, { path: TOTAL, shape: [], values: [] }] };
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** ∂output/∂input, shape (*output, *input), from mirror.ts's formulas. */
function analyticBlock(output: Leaf, input: Leaf): Float64Array {
  const n = size(input.shape);
  if (output.path === TOTAL) {
    const { w } = coefficients(input.path);
    return Float64Array.from(input.values, (x) => 2 * w * x);
  }
  const { a, b, c } = coefficients(output.path);
  const J = new Float64Array(size(output.shape) * n).fill(c);
  if (output.path === input.path) input.values.forEach((x, j) => (J[j * n + j] += 2 * a * x + b * Math.cos(x)));
  return J;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    // Central differences with the engine's h = 1e-4: truncation h²/6·|f'''| ≤ 2e-9; FP32 inputs add
    // the asymmetry of the rounded steps, ulp(x)/2·|f''| ≤ 2e-7.
    const tol = 1e-6 * (1 + Math.abs(expected[i]!));
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}] = ${actual[i]}, expected ${expected[i]}`);
  }
}

/** A non-empty random subset, in random order. */
function subset<T>(items: T[], next: () => number): T[] {
  const picked = items.filter(() => next() < 0.6);
  if (picked.length === 0) picked.push(items[Math.floor(next() * items.length)]!);
  return picked.sort(() => next() - 0.5);
}

const vector = (leaf: Leaf, next: () => number, outputShape?: number[]) => {
  const shape = outputShape ?? leaf.shape;
  return { shape, values: Array.from({ length: size(shape) }, () => Math.round((next() * 2 - 1) * 1024) / 1024) };
};

/** Σ_q J_pq v_q (JVP) and Σ_p u_p J_pq (VJP), from the analytic blocks. */
function contract(outputs: Leaf[], inputs: Leaf[], vectors: Map<string, number[]>, side: "jvp" | "vjp"): Map<string, number[]> {
  const result = new Map<string, number[]>();
  for (const leaf of side === "jvp" ? outputs : inputs) result.set(leaf.path, new Array(size(leaf.shape)).fill(0));
  for (const o of outputs) {
    for (const i of inputs) {
      const J = analyticBlock(o, i);
      const n = size(i.shape);
      for (let j = 0; j < size(o.shape); j++) {
        for (let m = 0; m < n; m++) {
          if (side === "jvp") result.get(o.path)![j] += J[j * n + m]! * vectors.get(i.path)![m]!;
          else result.get(i.path)![m] += vectors.get(o.path)![j]! * J[j * n + m]!;
        }
      }
    }
  }
  return result;
}

const ARRAY_TYPES: Record<string, { new (b: ArrayBufferLike, o: number, n: number): ArrayLike<number>; BYTES_PER_ELEMENT: number }> = { float64: Float64Array, float32: Float32Array, int32: Int32Array };

/** tesseract-core's JSON answer with its array objects as ndarrays. */
function fromRestJson(json: unknown): unknown {
  if (Array.isArray(json)) return json.map(fromRestJson);
  if (typeof json !== "object" || json === null) return json;
  const o = json as Record<string, any>;
  if (o.object_type === "array") {
    const Ctor = ARRAY_TYPES[o.dtype]!;
    let data: ArrayLike<number>;
    if (o.data.encoding === "base64") {
      const bytes = Buffer.from(o.data.buffer, "base64");
      const copy = new Uint8Array(bytes).buffer;
      data = new Ctor(copy, 0, bytes.length / Ctor.BYTES_PER_ELEMENT);
    } else data = [o.data.buffer].flat(Infinity) as number[];
    return ndarray(data as any, o.shape);
  }
  return record(Object.entries(o).map(([k, v]) => [k, fromRestJson(v)]));
}

async function post(base: string, endpoint: string, body: unknown, accept = "application/json+base64"): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}/${endpoint}`, { method: "POST", headers: { "content-type": "application/json", accept }, body: JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

const restValues = (a: unknown): number[] => {
  const nd = fromRestJson(a) as NdArray;
  return Array.from({ length: nd.size }, (_, i) => Number((nd.data as ArrayLike<number>)[nd.offset + i]));
};

/** Every check of one generated schema and value against its running server. */
async function checkOne(spec: SchemaSpec, value: MessageValue, seed: number, workers: number): Promise<void> {
  const { dir, modulePath, protoFile } = writeMirrorModule(spec);
  let server: RunningServer | undefined;
  let client: TesseractClient<any, any> | undefined;
  try {
    server = await startServer({ tesseract: modulePath, port: 0, httpPort: 0, workers, logger: silentLogger });
    client = new TesseractClient<any, any>(`127.0.0.1:${server.port}`, clientTypes(spec, protoFile), { fieldNames: "wire" });
    const base = `http://127.0.0.1:${server.httpPort}`;
    const next = random(seed);
    const sent = arraysTree(value, "sent");
    const expected = canonical(spec, ROOT, mirrorApply(spec, arraysTree(value, "seen")));

    // Describe lists the patterns of the differentiable fields.
    const described = await client.describe();
    assert.deepEqual(described.differentiable_inputs, differentiablePatterns(spec, ROOT), "Describe's differentiable_inputs");
    assert.deepEqual(described.differentiable_outputs, [...differentiablePatterns(spec, ROOT), TOTAL], "Describe's differentiable_outputs");

    // Apply, both ways round.
    assert.deepEqual(canonical(spec, ROOT, (await client.apply(sent)) as Record<string, unknown>), expected, "gRPC Apply");
    const encoding = next() < 0.5 ? "base64" : "json";
    const applied = await post(base, "apply", { inputs: restJson(spec, ROOT, value, encoding) });
    assert.equal(applied.status, 200, JSON.stringify(applied.json));
    assert.deepEqual(canonical(spec, ROOT, fromRestJson(applied.json) as Record<string, unknown>), expected, "REST /apply");

    // AbstractEval from shapes alone.
    const abstractSent = mapTensors(value, (t) => ({ shape: t.shape, datatype: DATATYPE_NUMBER[t.sent] })) as Record<string, unknown>;
    const predicted = mirrorAbstractEval(spec, abstractSent).sort((a, b) => (a.path < b.path ? -1 : 1));
    const answered = (await client.abstractEval(abstractSent)).map((p) => ({ path: p.path, shape: p.shape.map(Number), datatype: p.datatype })).sort((a, b) => (a.path < b.path ? -1 : 1));
    assert.deepEqual(answered, predicted, "gRPC AbstractEval");
    // tesseract-core's abstract arrays: { shape, dtype } without data.
    const abstractBody = JSON.parse(JSON.stringify(restJson(spec, ROOT, value, "json"), (_key, v) => (v && typeof v === "object" && "dtype" in v && "data" in v && typeof v.data === "object" && "encoding" in v.data ? { shape: v.shape, dtype: v.dtype } : v)));
    const abstractAnswer = await post(base, "abstract_eval", { inputs: abstractBody });
    assert.equal(abstractAnswer.status, 200, JSON.stringify(abstractAnswer.json));
    const restShapes = tensorsOf(spec, ROOT, abstractAnswer.json)
      .map(({ path, value: v }) => ({ path, shape: (v as { shape: number[] }).shape, dtype: (v as { dtype: string }).dtype }))
      .concat([{ path: TOTAL, shape: abstractAnswer.json[TOTAL]?.shape, dtype: abstractAnswer.json[TOTAL]?.dtype }])
      .sort((a, b) => (a.path < b.path ? -1 : 1));
    const dtypeName = (n: number) => DTYPE_NAME[(Object.keys(DATATYPE_NUMBER) as TensorDatatype[]).find((k) => DATATYPE_NUMBER[k] === n)!];
    assert.deepEqual(restShapes, predicted.map((p) => ({ path: p.path, shape: p.shape, dtype: dtypeName(p.datatype) })), "REST /abstract_eval");

    // Jacobian, JVP and VJP of random subsets of the differentiable paths.
    const { inputs, outputs } = leavesOf(spec, value);
    if (inputs.length === 0) return;
    const inPaths = subset(inputs, next);
    const outPaths = subset(outputs, next);
    // Sometimes one input is named by its pattern ([] and {} for every element and key): it expands to every leaf matching it.
    const patterned = inPaths.find((l) => l.pattern !== l.path && next() < 0.5);
    const requestedInputs = patterned ? [patterned.pattern!, ...inPaths.filter((l) => l.pattern !== patterned.pattern).map((l) => l.path)] : inPaths.map((l) => l.path);
    if (patterned) inPaths.splice(0, inPaths.length, ...inputs.filter((l) => l.pattern === patterned.pattern), ...inPaths.filter((l) => l.pattern !== patterned.pattern));
    const jacobian = await client.jacobian({ inputs: sent, inputPaths: requestedInputs, outputPaths: outPaths.map((l) => l.path) });
    const streamed = await assembleJacobian(client.jacobianRows({ inputs: sent, inputPaths: requestedInputs, outputPaths: outPaths.map((l) => l.path) }));
    assert.deepEqual(Object.keys(jacobian.jacobian).sort(), outPaths.map((l) => l.path).sort(), "Jacobian's outputs");
    const n = inPaths.reduce((s, l) => s + size(l.shape), 0);
    assert.equal(Number(jacobian.stats.apply_calls), 2 * n, "central differences: 2n evaluations");
    const restJacobian = await post(base, "jacobian", { inputs: restJson(spec, ROOT, value, encoding), jac_inputs: requestedInputs, jac_outputs: outPaths.map((l) => l.path) }, next() < 0.5 ? "application/json" : "application/json+base64");
    assert.equal(restJacobian.status, 200, JSON.stringify(restJacobian.json));
    assert.deepEqual(Object.keys(restJacobian.json).sort(), outPaths.map((l) => l.path).sort(), "REST Jacobian's outputs");
    for (const o of outPaths) {
      assert.deepEqual(Object.keys(jacobian.jacobian[o.path]!).sort(), inPaths.map((l) => l.path).sort(), `Jacobian's inputs of ${o.path}`);
      for (const i of inPaths) {
        const block = jacobian.jacobian[o.path]![i.path]!;
        assert.deepEqual(block.shape, [...o.shape, ...i.shape], `d${o.path}/d${i.path} shape`);
        const expectedBlock = analyticBlock(o, i);
        assertClose(block.data, expectedBlock, `gRPC d ${o.path} / d ${i.path}`);
        assertClose(streamed.block(o.path, i.path).data, expectedBlock, `JacobianRows d ${o.path} / d ${i.path}`);
        assert.deepEqual(restJacobian.json[o.path][i.path].shape, [...o.shape, ...i.shape], `REST d${o.path}/d${i.path} shape`);
        assertClose(restValues(restJacobian.json[o.path][i.path]), expectedBlock, `REST d ${o.path} / d ${i.path}`);
      }
    }

    const tangent = new Map(inPaths.map((l) => [l.path, vector(l, next)]));
    const jvpExpected = contract(outPaths, inPaths, new Map([...tangent].map(([k, v]) => [k, v.values])), "jvp");
    const jvp = await client.jvp({ inputs: sent, inputPaths: [...tangent.keys()], outputPaths: outPaths.map((l) => l.path), tangent: record([...tangent].map(([k, v]) => [k, ndarray(Float64Array.from(v.values), v.shape)])) as any });
    const restJvp = await post(base, "jacobian_vector_product", {
      inputs: restJson(spec, ROOT, value, encoding),
      jvp_inputs: [...tangent.keys()],
      jvp_outputs: outPaths.map((l) => l.path),
      tangent_vector: record([...tangent].map(([k, v]) => [k, { shape: v.shape, dtype: "float64", data: { buffer: v.values, encoding: "json" } }])),
    });
    assert.equal(restJvp.status, 200, JSON.stringify(restJvp.json));
    for (const o of outPaths) {
      assertClose(jvp.result[o.path]!.data, jvpExpected.get(o.path)!, `gRPC JVP ${o.path}`);
      assertClose(restValues(restJvp.json[o.path]), jvpExpected.get(o.path)!, `REST JVP ${o.path}`);
    }

    const cotangent = new Map(outPaths.map((l) => [l.path, vector(l, next)]));
    const vjpExpected = contract(outPaths, inPaths, new Map([...cotangent].map(([k, v]) => [k, v.values])), "vjp");
    const vjp = await client.vjp({ inputs: sent, inputPaths: inPaths.map((l) => l.path), outputPaths: [...cotangent.keys()], cotangent: record([...cotangent].map(([k, v]) => [k, ndarray(Float64Array.from(v.values), v.shape)])) as any });
    const restVjp = await post(base, "vector_jacobian_product", {
      inputs: restJson(spec, ROOT, value, encoding),
      vjp_inputs: inPaths.map((l) => l.path),
      vjp_outputs: [...cotangent.keys()],
      cotangent_vector: record([...cotangent].map(([k, v]) => [k, { shape: v.shape, dtype: "float64", data: { buffer: v.values, encoding: "json" } }])),
    });
    assert.equal(restVjp.status, 200, JSON.stringify(restVjp.json));
    for (const i of inPaths) {
      assertClose(vjp.result[i.path]!.data, vjpExpected.get(i.path)!, `gRPC VJP ${i.path}`);
      assertClose(restValues(restVjp.json[i.path]), vjpExpected.get(i.path)!, `REST VJP ${i.path}`);
    }

    // Paths that are not differentiable leaves here: INVALID_ARGUMENT (422) naming them.
    const nonDifferentiable = tensorsOf(spec, ROOT, arraysTree(value, "seen")).filter((t) => !t.field.differentiable).map((t) => t.path);
    const bad = ["no_such_field", `${inPaths[0]!.path}.[0]`, `${inPaths[0]!.path}.{k}`, ...nonDifferentiable.slice(0, 1)];
    for (const badPath of bad) {
      await clientRejects(client.jacobian({ inputs: sent, inputPaths: [badPath], outputPaths: [outPaths[0]!.path] }), "INVALID_ARGUMENT", new RegExp(`^jac_inputs: .*${JSON.stringify(badPath).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
      await clientRejects(client.jacobian({ inputs: sent, inputPaths: [inPaths[0]!.path], outputPaths: [badPath] }), "INVALID_ARGUMENT", new RegExp(`^jac_outputs: .*${JSON.stringify(badPath).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
      const refused = await post(base, "jacobian", { inputs: restJson(spec, ROOT, value, encoding), jac_inputs: [badPath], jac_outputs: [outPaths[0]!.path] });
      assert.equal(refused.status, 422, JSON.stringify(refused.json));
      assert.deepEqual(refused.json.detail[0].loc.slice(0, 2), ["body", "jac_inputs"], JSON.stringify(refused.json));
      assert.ok(refused.json.detail[0].msg.includes(JSON.stringify(badPath)), JSON.stringify(refused.json));
    }
  } finally {
    client?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("generated Tesseract schemas, served and differentiated", function () {
  this.timeout(120_000);

  it("answer Apply, AbstractEval, Jacobian, JVP and VJP over gRPC and REST as the analytic derivatives say", async () => {
    const scenario = schemaArbitrary.chain((spec) => fc.record({ spec: fc.constant(spec), value: messageArbitrary(spec, ROOT), seed: fc.integer(), workers: fc.constantFrom(0, 0, 1) }));
    await fc.assert(
      fc.asyncProperty(scenario, async ({ spec, value, seed, workers }) => {
        try {
          await checkOne(spec, value, seed, workers);
        } catch (e) {
          (e as Error).message += `\n--- schema.proto\n${protoText(spec)}--- value\n${JSON.stringify(value)}\n--- workers ${workers}`;
          throw e;
        }
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
  });
});
