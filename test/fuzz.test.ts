/**
 * Property-based fuzzing of the gRPC surface with fast-check (fixed seeds, so CI is deterministic):
 * malformed requests of every kind against a real meshstats server on 127.0.0.1:0 must get a precise
 * status (never INTERNAL, never UNKNOWN unless apply itself failed) with a non-empty message naming
 * the field, and the server must keep answering Describe and health checks afterwards.
 * `npm run bench:fuzz` runs the same properties with many more runs (bench/fuzz.ts).
 */
import { strict as assert } from "node:assert";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { Inputs as MeshInputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import {
  TesseractClient as GeneratedClient,
  AbstractEvalRequest,
  ApplyRequest,
  JacobianRequest,
  JacobianVectorProductRequest,
  VectorJacobianProductRequest,
} from "../generated/tesseract/v1/tesseract";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { encodeTensor } from "../common/tensor-codec";
import { sampleMeshInputs } from "../server/tesseracts/samples";

/** Runs per property; bench/fuzz.ts raises it through the environment. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const SEED = Number(process.env.FUZZ_SEED ?? 42);
const DEADLINE_MS = Number(process.env.FUZZ_DEADLINE_MS ?? 10_000);

const MESH_URL = "type.googleapis.com/tesseract.examples.meshstats.v1.Inputs";
const OUTPUTS_URL = "type.googleapis.com/tesseract.examples.meshstats.v1.Outputs";
const INPUT = "mesh.points";
const OUTPUTS = ["statistics.first_point_coordinates", "statistics.barycenter"];
const N = 4; // points in the valid sample mesh: mesh.points is FP64 [4, 3]
const ITEM_SIZE: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 2, 8: 4, 9: 8, 10: 4, 11: 8 };

type Rpc = "apply" | "abstractEval" | "jacobian" | "jacobianRows" | "jacobianVectorProduct" | "vectorJacobianProduct";
interface Outcome {
  rpc: Rpc;
  code: number;
  details: string;
  response?: any;
  ms: number;
}

let requests = 0;
/** Status names seen, for the summary line. */
const seen = new Map<string, number>();

/** A raw tensor message: shapes may be int64 decimal strings (the wire writer takes them). */
interface RawTensor {
  datatype: number;
  shape: (number | string)[];
  data: Buffer;
}

function meshMessage(points?: RawTensor, nPoints = N) {
  const { mesh } = sampleMeshInputs(N);
  const message = MeshInputs.fromPartial({
    mesh: { ...mesh, points: encodeTensor(mesh.points), num_points_per_cell: encodeTensor(mesh.num_points_per_cell), cell_connectivity: encodeTensor(mesh.cell_connectivity) },
    fd_algorithm: 0,
  } as never);
  if (points) {
    message.mesh!.points = points as never;
    message.mesh!.n_points = nPoints;
  }
  return message;
}

function meshAny(points?: RawTensor, nPoints?: number) {
  return { type_url: MESH_URL, value: Buffer.from(MeshInputs.encode(meshMessage(points, nPoints)).finish()) };
}

const VALID_VALUE = meshAny().value;

function f64Tensor(shape: number[], fill = 1): RawTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { datatype: 11, shape, data: Buffer.from(new Float64Array(n).fill(fill).buffer) };
}

/** Sends one request and resolves with its status (never rejects). */
function send(client: GeneratedClient, rpc: Rpc, request: any): Promise<Outcome> {
  requests++;
  const started = performance.now();
  const deadline = new Date(Date.now() + DEADLINE_MS);
  const done = (code: number, details: string, response?: any): Outcome => {
    seen.set(grpc.status[code], (seen.get(grpc.status[code]) ?? 0) + 1);
    return { rpc, code, details, response, ms: performance.now() - started };
  };
  if (rpc === "jacobianRows") {
    return new Promise((resolve) => {
      const call = client.jacobianRows(request, new grpc.Metadata(), { deadline });
      const messages: any[] = [];
      call.on("data", (m) => messages.push(m));
      // grpc-js may emit 'end' after 'error': the first event decides.
      let settled = false;
      const settle = (o: () => Outcome) => {
        if (!settled) resolve(o());
        settled = true;
      };
      call.on("error", (e: grpc.ServiceError) => settle(() => done(e.code, e.details)));
      call.on("end", () => settle(() => done(grpc.status.OK, "", messages)));
    });
  }
  return new Promise((resolve) => {
    (client as any)[rpc](request, new grpc.Metadata(), { deadline }, (err: grpc.ServiceError | null, res: any) => resolve(err ? done(err.code, err.details) : done(grpc.status.OK, "", res)));
  });
}

/** Every request in these properties is built with the generated `fromPartial`, then patched. */
function build(rpc: Rpc, fields: { inputs: { type_url: string; value: Buffer }; inputPaths?: string[]; outputPaths?: string[]; vectors?: Record<string, RawTensor>; options?: object }) {
  const inputPaths = fields.inputPaths ?? [INPUT];
  switch (rpc) {
    case "apply":
      return ApplyRequest.fromPartial({ inputs: fields.inputs });
    case "abstractEval":
      return AbstractEvalRequest.fromPartial({ inputs: fields.inputs });
    case "jacobian":
    case "jacobianRows":
      return JacobianRequest.fromPartial({ inputs: fields.inputs, jac_inputs: inputPaths, jac_outputs: fields.outputPaths ?? OUTPUTS, options: fields.options });
    case "jacobianVectorProduct": {
      const request = JacobianVectorProductRequest.fromPartial({ inputs: fields.inputs, jvp_inputs: inputPaths, jvp_outputs: fields.outputPaths ?? OUTPUTS, options: fields.options });
      request.tangent_vector = (fields.vectors ?? Object.fromEntries(inputPaths.map((p) => [p, f64Tensor([N, 3])]))) as never;
      return request;
    }
    case "vectorJacobianProduct": {
      const outputs = fields.outputPaths ?? OUTPUTS;
      const request = VectorJacobianProductRequest.fromPartial({ inputs: fields.inputs, vjp_inputs: inputPaths, vjp_outputs: outputs, options: fields.options });
      request.cotangent_vector = (fields.vectors ?? Object.fromEntries(outputs.map((p) => [p, f64Tensor([3])]))) as never;
      return request;
    }
  }
}

function describeOutcome(o: Outcome): string {
  return `${o.rpc} -> code ${o.code} (${grpc.status[o.code]}) in ${o.ms.toFixed(0)} ms: ${JSON.stringify(o.details)}`;
}

function checkTensor(t: any, what: string): void {
  assert.ok(t, `${what} is missing`);
  assert.equal(t.datatype, 11, `${what} is not FP64`);
  const n = t.shape.reduce((a: number, b: number) => a * b, 1);
  assert.equal(t.data.length, n * 8, `${what}: ${t.data.length} bytes for shape [${t.shape}]`);
}

/** An OK answer must be a well-formed response of its RPC. */
function checkResponse(o: Outcome): void {
  const r = o.response;
  switch (o.rpc) {
    case "apply":
      assert.equal(r.outputs?.type_url, OUTPUTS_URL);
      break;
    case "abstractEval":
      assert.deepEqual(r.outputs.map((p: { path: string }) => p.path).sort(), [...OUTPUTS].sort());
      break;
    case "jacobian":
      assert.ok(r.entries.length >= 1, "no entries");
      for (const e of r.entries) checkTensor(e.value, `entry ${e.output_path}/${e.input_path}`);
      break;
    case "jacobianRows":
      assert.ok(r.length >= 2 && r[0].header && r[r.length - 1].stats, "header first, stats last");
      for (const m of r.slice(1, -1)) for (const s of m.row.slices) checkTensor(s.values, `row ${m.row.input_index} ${s.output_path}`);
      break;
    default:
      assert.ok(Object.keys(r.result).length >= 1, "empty result");
      for (const [k, t] of Object.entries(r.result)) checkTensor(t, `result.{${k}}`);
  }
}

/**
 * The common contract: the status is one of `allowed` (OK answers must be well formed), never
 * INTERNAL, never UNKNOWN unless apply itself failed, and an error has a non-empty message matching
 * `names` (the field or path at fault) when one is given.
 */
function expectOutcome(o: Outcome, allowed: number[], names?: RegExp): void {
  const about = describeOutcome(o);
  assert.notEqual(o.code, grpc.status.INTERNAL, about);
  assert.ok(o.code !== grpc.status.UNKNOWN || /^evaluation .* failed/.test(o.details), about);
  assert.ok(allowed.includes(o.code), `expected one of ${allowed.map((c) => grpc.status[c]).join(", ")}; ${about}`);
  if (o.code === grpc.status.OK) {
    checkResponse(o);
    return;
  }
  assert.ok(o.details.trim().length > 0, `empty details: ${about}`);
  if (names) assert.match(o.details, names, about);
}

function healthClient(address: string) {
  const { service } = require("grpc-health-check");
  const Health = grpc.makeGenericClientConstructor(service, "grpc.health.v1.Health");
  return new Health(address, grpc.credentials.createInsecure()) as any;
}

/** The server still answers Describe, a health check and a valid Apply. */
async function stillServing(server: RunningServer, client: GeneratedClient): Promise<void> {
  const applied = await send(client, "apply", build("apply", { inputs: meshAny() }));
  expectOutcome(applied, [grpc.status.OK]);
  requests++;
  const d = await new Promise<any>((resolve, reject) => client.describe({}, (e, r) => (e ? reject(e) : resolve(r))));
  assert.deepEqual(d.differentiable_inputs, [INPUT]);
  const health = healthClient(server.address);
  try {
    requests++;
    const reply = await new Promise<any>((resolve, reject) => health.check({ service: "tesseract.v1.Tesseract" }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));
    assert.equal(reply.status, "SERVING");
  } finally {
    health.close();
  }
}

// ---- arbitraries ------------------------------------------------------------------------------

const ALL_RPCS: Rpc[] = ["apply", "abstractEval", "jacobian", "jacobianRows", "jacobianVectorProduct", "vectorJacobianProduct"];
const GRADIENT_RPCS: Rpc[] = ["jacobian", "jacobianRows", "jacobianVectorProduct", "vectorJacobianProduct"];

/** Any string a client might send: ASCII, full Unicode, and the path syntax's own characters. */
const anyString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.string({ unit: fc.constantFrom(..."mesh.points{}[]0123456789._*\\\"' \n\t\u0000é🙂"), maxLength: 24 }),
);

const int64 = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
const dim = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 5 }).map((d) => String(d)) },
  { weight: 1, arbitrary: fc.constantFrom(-1, -3, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, -(2 ** 53)).map(String) },
  { weight: 1, arbitrary: fc.constantFrom("9223372036854775807", "-9223372036854775808", "4294967296") },
  { weight: 1, arbitrary: int64.map(String) },
);
const datatype = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 13, 255, 2 ** 31 - 1, -(2 ** 31)) },
);

/** A tensor near a valid one: random datatype and shape, data of the matching length give or take. */
const nearTensor: fc.Arbitrary<RawTensor> = fc
  .record({
    datatype,
    shape: fc.oneof({ weight: 5, arbitrary: fc.array(dim, { maxLength: 4 }) }, { weight: 1, arbitrary: fc.array(dim, { minLength: 5, maxLength: 40 }) }, { weight: 1, arbitrary: fc.constant<string[]>(["1099511627776", "1099511627776"]) }),
    delta: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: -9, max: 9 }) }, { weight: 1, arbitrary: fc.constant(null) }),
    random: fc.uint8Array({ maxLength: 64 }),
  })
  .map(({ datatype, shape, delta, random }) => {
    const small = shape.every((d) => /^\d$/.test(d));
    const count = small ? shape.reduce((a, b) => a * Number(b), 1) : 0;
    const size = ITEM_SIZE[datatype] ?? 8;
    const length = delta === null || !small ? random.length : Math.max(0, count * size + delta);
    const data = Buffer.alloc(length);
    data.set(random.subarray(0, length));
    return { datatype, shape, data };
  });

/** Whether a tensor is well-formed by the wire contract (concrete, not abstract). */
function consistent(t: RawTensor): boolean {
  const size = ITEM_SIZE[t.datatype];
  if (!size) return false;
  const dims = t.shape.map((d) => BigInt(d));
  if (dims.some((d) => d < 0n) || dims.length > 8) return false;
  const count = dims.reduce((a, b) => a * b, 1n);
  if (count > 1n << 31n) return false;
  if (BigInt(t.data.length) !== count * BigInt(size)) return false;
  return t.datatype !== 1 || t.data.every((b) => b <= 1);
}

/** Bytes that are, or are near, a valid encoding of meshstats Inputs. */
const anyBytes = fc.oneof(
  fc.uint8Array({ maxLength: 96 }).map((b) => Buffer.from(b)),
  fc.nat({ max: VALID_VALUE.length }).map((n) => VALID_VALUE.subarray(0, n)),
  fc.tuple(fc.nat({ max: VALID_VALUE.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
    const b = Buffer.from(VALID_VALUE);
    b[i] ^= x;
    return b;
  }),
  fc.tuple(fc.nat({ max: VALID_VALUE.length }), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([i, extra]) => Buffer.concat([VALID_VALUE.subarray(0, i), extra, VALID_VALUE.subarray(i)])),
);

const badEps = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, -1, -1e-300, -Number.MAX_VALUE);
const epsValue = fc.oneof(badEps, fc.constantFrom(1e-6, 1e-3, Number.MIN_VALUE, 1e300, Number.MAX_VALUE), fc.double());
const enumValue = (max: number) => fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: max + 2 }) }, { weight: 1, arbitrary: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) });
const options = fc.record(
  {
    algorithm: enumValue(5),
    eps: epsValue,
    num_samples: fc.oneof(fc.constantFrom(0, 1, 2, 11, 12, 2 ** 31, 2 ** 32 - 1), fc.nat({ max: 2 ** 32 - 1 })),
    seed: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(String),
    step_mode: enumValue(2),
    stochastic_estimator: enumValue(2),
    eps_by_path: fc.dictionary(fc.oneof(fc.constant(INPUT), anyString), epsValue, { maxKeys: 2 }),
    typical_magnitude: fc.dictionary(fc.oneof(fc.constant(INPUT), anyString), epsValue, { maxKeys: 2 }),
  },
  { requiredKeys: [] },
);

const goodEps = (e: number) => Number.isFinite(e) && e > 0;
function optionsValid(o: Record<string, any>): boolean {
  const inRange = (v: number | undefined, max: number) => v === undefined || (Number.isInteger(v) && v >= 0 && v <= max);
  const map = (m: Record<string, number> | undefined) => Object.entries(m ?? {}).every(([k, v]) => k === INPUT && goodEps(v));
  return (
    inRange(o.algorithm, 5) &&
    (o.eps === undefined || goodEps(o.eps)) &&
    o.num_samples !== 0 &&
    inRange(o.step_mode, 2) &&
    inRange(o.stochastic_estimator, 2) &&
    map(o.eps_by_path) &&
    map(o.typical_magnitude)
  );
}

// ---- the properties ---------------------------------------------------------------------------

describe("fuzzing the gRPC server (fast-check)", function () {
  this.timeout(120_000);
  let mesh: RunningServer;
  let small: RunningServer;
  let client: GeneratedClient;
  let smallClient: GeneratedClient;
  let started = 0;
  const property = (p: fc.IAsyncPropertyWithHooks<any> | fc.IAsyncProperty<any>, numRuns = RUNS) => fc.assert(p, { seed: SEED, numRuns, endOnFailure: true });

  before(async () => {
    started = performance.now();
    mesh = await startServer({ tesseract: "meshstats", port: 0, logger: silentLogger });
    small = await startServer({ tesseract: "meshstats", port: 0, maxMessageBytes: 1 << 16, streamChunkBytes: 1 << 12, logger: silentLogger });
    client = new GeneratedClient(mesh.address, grpc.credentials.createInsecure());
    smallClient = new GeneratedClient(small.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    smallClient.close();
    await Promise.all([mesh.close(), small.close()]);
    console.log(`    fuzz: ${requests} requests, ${RUNS} runs per property, seed ${SEED}, ${((performance.now() - started) / 1000).toFixed(1)} s (${[...seen].map(([k, v]) => `${k} ${v}`).join(", ")})`);
  });
  afterEach(async () => stillServing(mesh, client));

  it("1. random or corrupted bytes as the Any's value: INVALID_ARGUMENT, or a well-formed answer", async () => {
    await property(
      fc.asyncProperty(fc.constantFrom(...ALL_RPCS), anyBytes, async (rpc, value) => {
        const o = await send(client, rpc, build(rpc, { inputs: { type_url: MESH_URL, value } }));
        // Bytes that decode to a valid mesh may be answered; FAILED_PRECONDITION is a NaN output (e.g. no points).
        expectOutcome(o, [grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION, grpc.status.UNKNOWN]);
      }),
    );
  });

  it("2. a wrong or random type URL: INVALID_ARGUMENT naming both URLs", async () => {
    const url = fc.oneof(
      anyString,
      anyString.map((s) => `type.googleapis.com/${s}`),
      fc.constantFrom("type.googleapis.com/tesseract.examples.meshstats.v1.Outputs", "type.googleapis.com/tesseract.examples.meshstats.v1.Inputs/", "tesseract.examples.meshstats.v1.InputsX", "/", "type.googleapis.com/"),
    );
    await property(
      fc.asyncProperty(
        fc.constantFrom(...ALL_RPCS),
        url.filter((u) => u.length > 0 && u.slice(u.lastIndexOf("/") + 1) !== "tesseract.examples.meshstats.v1.Inputs"),
        fc.boolean(),
        async (rpc, typeUrl, withValue) => {
          const o = await send(client, rpc, build(rpc, { inputs: { type_url: typeUrl, value: withValue ? VALID_VALUE : Buffer.alloc(0) } }));
          expectOutcome(o, [grpc.status.INVALID_ARGUMENT]);
          assert.ok(o.details.includes(JSON.stringify(typeUrl)), `the sent URL is not named: ${describeOutcome(o)}`);
          assert.ok(o.details.includes(`"${MESH_URL}"`), `the expected URL is not named: ${describeOutcome(o)}`);
        },
      ),
    );
  });

  it("3. inconsistent tensors in mesh.points: INVALID_ARGUMENT naming mesh.points", async () => {
    await property(
      fc.asyncProperty(fc.constantFrom<Rpc>("apply", "jacobian", "jacobianRows", "jacobianVectorProduct"), nearTensor, fc.integer({ min: 0, max: 5 }), async (rpc, points, nPoints) => {
        const o = await send(client, rpc, build(rpc, { inputs: meshAny(points, nPoints) }));
        if (consistent(points)) {
          // Well-formed tensors may still fail meshstats' validation (FP64 (n, 3), n_points) or be answered.
          expectOutcome(o, [grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION], /mesh\./);
        } else {
          expectOutcome(o, [grpc.status.INVALID_ARGUMENT], /mesh\.points/);
        }
      }),
    );
  });

  it("3b. AbstractEval: abstract and inconsistent tensors in mesh.points", async () => {
    await property(
      fc.asyncProperty(nearTensor, fc.integer({ min: 0, max: 5 }), async (points, nPoints) => {
        const o = await send(client, "abstractEval", build("abstractEval", { inputs: meshAny(points, nPoints) }));
        expectOutcome(o, [grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION], /mesh\./);
      }),
    );
  });

  it("4. bad options (eps, num_samples, algorithm, step_mode, per-path maps): INVALID_ARGUMENT naming options.*, never a hang", async () => {
    await property(
      fc.asyncProperty(fc.constantFrom(...GRADIENT_RPCS), options, async (rpc, opts) => {
        const o = await send(client, rpc, build(rpc, { inputs: meshAny(), options: opts }));
        if (optionsValid(opts)) {
          // A huge eps may overflow an output (FAILED_PRECONDITION names it), or a step itself: then
          // INVALID_ARGUMENT names the element and the largest step that fits (fd-overflow.test.ts).
          if (o.code === grpc.status.INVALID_ARGUMENT) expectOutcome(o, [grpc.status.INVALID_ARGUMENT], /use a smaller eps$/);
          else expectOutcome(o, [grpc.status.OK, grpc.status.FAILED_PRECONDITION]);
        } else {
          expectOutcome(o, [grpc.status.INVALID_ARGUMENT], /^options\./);
        }
        assert.ok(o.ms < 5000, `took ${o.ms.toFixed(0)} ms: ${JSON.stringify(opts)}`);
      }),
    );
  });

  /** Unknown, duplicate, empty and odd paths, given as Jacobian / JVP / VJP path lists. */
  const pathsProperty = (keep: (p: string) => boolean, variants: (p: string) => string[]) => {
    const odd = (list: string[]) => fc.constantFrom(...list).chain((p) => fc.constantFrom(...variants(p)));
    const paths = (list: string[]) => fc.array(fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...list) }, { weight: 1, arbitrary: anyString.filter(keep) }, { weight: 1, arbitrary: odd(list) }), { maxLength: 3 });
    return fc.asyncProperty(fc.constantFrom(...GRADIENT_RPCS), paths([INPUT]), paths(OUTPUTS), async (rpc, inputPaths, outputPaths) => {
      const valid = (paths: string[], list: string[]) => paths.length > 0 && paths.every((p) => list.includes(p)) && new Set(paths).size === paths.length;
      const ok = valid(inputPaths, [INPUT]) && valid(outputPaths, OUTPUTS);
      // Vectors keyed by what the request asks for, so only the paths are wrong.
      const vectors =
        rpc === "jacobianVectorProduct"
          ? Object.fromEntries(inputPaths.map((p) => [p, f64Tensor([N, 3])]))
          : rpc === "vectorJacobianProduct"
            ? Object.fromEntries(outputPaths.map((p) => [p, f64Tensor([3])]))
            : undefined;
      const o = await send(client, rpc, build(rpc, { inputs: meshAny(), inputPaths, outputPaths, vectors }));
      if (ok) expectOutcome(o, [grpc.status.OK]);
      else expectOutcome(o, [grpc.status.INVALID_ARGUMENT], /^(jac|jvp|vjp)_(inputs|outputs)/);
    });
  };

  it("5. unknown, duplicate, empty and odd paths: INVALID_ARGUMENT naming the list", async () => {
    await property(pathsProperty(() => true, (p) => [`${p}.`, `.${p}`, `${p}[0]`, `${p}.{0}`, `${p}..x`, p.toUpperCase(), ` ${p}`, `${p}\u0000`, `${p}.{`, `${p}[`, `${p}]`, `${p}.{a.b}`]));
  });

  it("5b. pattern paths that match nothing: INVALID_ARGUMENT naming the list", async () => {
    await property(pathsProperty(() => true, (p) => [`${p}.{}`, `${p}[]`, `${p.split(".")[0]}.{}`, `${p.split(".")[0]}[]`, `{}`, `[]`, `${p}.{}.x`]));
  });

  it("6. wrong tangents and cotangents: INVALID_ARGUMENT naming tangent_vector / cotangent_vector", async () => {
    type Mutation = { kind: "missing" } | { kind: "extra"; key: string } | { kind: "shape"; shape: number[] } | { kind: "dtype"; datatype: number } | { kind: "bytes"; delta: number };
    const mutation: fc.Arbitrary<Mutation> = fc.oneof(
      fc.constant({ kind: "missing" as const }),
      fc.oneof(anyString, fc.constantFrom(INPUT, ...OUTPUTS)).map((key) => ({ kind: "extra" as const, key })),
      fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }).map((shape) => ({ kind: "shape" as const, shape })),
      fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, -1, 1000).map((datatype) => ({ kind: "dtype" as const, datatype })),
      fc.integer({ min: -7, max: 9 }).filter((d) => d !== 0).map((delta) => ({ kind: "bytes" as const, delta })),
    );
    await property(
      fc.asyncProperty(fc.constantFrom<Rpc>("jacobianVectorProduct", "vectorJacobianProduct"), fc.subarray(OUTPUTS, { minLength: 1 }), mutation, async (rpc, outputPaths, m) => {
        const jvp = rpc === "jacobianVectorProduct";
        const field = jvp ? "tangent_vector" : "cotangent_vector";
        const keys = jvp ? [INPUT] : outputPaths;
        const shape = jvp ? [N, 3] : [3];
        const vectors: Record<string, RawTensor> = Object.fromEntries(keys.map((k) => [k, f64Tensor(shape)]));
        const target = keys[keys.length - 1];
        let wrong = true;
        switch (m.kind) {
          case "missing":
            delete vectors[target];
            break;
          case "extra":
            wrong = !Object.hasOwn(vectors, m.key);
            // Defined, not assigned: assigning "__proto__" would set the prototype, and send nothing.
            Object.defineProperty(vectors, m.key, { value: f64Tensor(shape), enumerable: true, writable: true, configurable: true });
            break;
          case "shape":
            wrong = m.shape.join() !== shape.join();
            vectors[target] = f64Tensor(m.shape);
            break;
          case "dtype": {
            // Every datatype of the contract is a number: integers and bool are cast, as tesseract-core casts them.
            wrong = !(m.datatype >= 1 && m.datatype <= 11);
            const count = shape.reduce((a, b) => a * b, 1);
            vectors[target] = { datatype: m.datatype, shape, data: Buffer.alloc(count * (ITEM_SIZE[m.datatype] ?? 8)) };
            break;
          }
          case "bytes": {
            const t = vectors[target];
            vectors[target] = { ...t, data: Buffer.alloc(Math.max(0, t.data.length + m.delta)) };
            break;
          }
        }
        const o = await send(client, rpc, build(rpc, { inputs: meshAny(), outputPaths, vectors }));
        if (!wrong) expectOutcome(o, [grpc.status.OK]);
        else expectOutcome(o, [grpc.status.INVALID_ARGUMENT], new RegExp(`^${field}`));
      }),
    );
  });

  it("7. a message over the server's limit: RESOURCE_EXHAUSTED, and the server stays healthy", async () => {
    const runs = Math.max(5, Math.ceil(RUNS / 6));
    await property(
      fc.asyncProperty(fc.constantFrom<Rpc>("apply", "jacobian", "jacobianRows"), fc.integer({ min: (1 << 16) + 1, max: 1 << 18 }), async (rpc, size) => {
        // Padding in an unknown field after a valid encoding: only the size is wrong.
        const padding = Buffer.alloc(size);
        const value = Buffer.concat([VALID_VALUE, Buffer.from([0xc2, 0x3e]) /* field 1000, length-delimited */, encodeVarint(size), padding]);
        const o = await send(smallClient, rpc, build(rpc, { inputs: { type_url: MESH_URL, value } }));
        expectOutcome(o, [grpc.status.RESOURCE_EXHAUSTED]);
      }),
      runs,
    );
    await stillServing(small, smallClient);
  });
});

function encodeVarint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}
