/**
 * tesseract-core's REST API (`--http-port`): a real server on 127.0.0.1, called with fetch the way
 * tesseract-core's Python SDK calls it (arrays without `object_type`, no Accept header) and with the
 * other forms; values against analytic derivatives, apply counts, 422 details, tokens, OpenAPI.
 */
import { strict as assert } from "node:assert";
import { gzipSync } from "node:zlib";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { loadTesseract, startServer, TesseractRuntime, type RunningServer } from "../index";
import { DataType } from "../common/tensor-codec";
import { silentLogger } from "../server/log";
import { otherCallsTurn } from "../server/http/io-turn";
import Fastify from "fastify";
import { assertClose, clientRejects, counted, freePort, meshJacobian, serveProcess } from "./helpers";
import { TesseractClient } from "../client";
import { Inputs, Outputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";

const POLYNOMIAL = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");

type Json = Record<string, any>;

/** A numpy-style array object: base64 of the raw bytes (as the Python SDK sends, without object_type) or JSON lists. */
function arr(values: number[], shape: number[], dtype: "float64" | "float32" | "int32" = "float64", encoding: "base64" | "json" = "base64", objectType = false): Json {
  const Ctor = { float64: Float64Array, float32: Float32Array, int32: Int32Array }[dtype];
  const data = encoding === "base64" ? { buffer: Buffer.from(new Ctor(values).buffer).toString("base64"), encoding } : { buffer: values, encoding };
  return { ...(objectType ? { object_type: "array" } : {}), shape, dtype, data };
}

/** The values of an answer's array object, whichever its encoding. */
function values(a: Json): number[] {
  assert.equal(a.object_type, "array");
  if (a.data.encoding === "json") return [a.data.buffer].flat(Infinity) as number[];
  const bytes = Buffer.from(a.data.buffer, "base64");
  const Ctor = { float64: Float64Array, float32: Float32Array, int32: Int32Array } as Record<string, any>;
  return Array.from(new Ctor[a.dtype](bytes.buffer, bytes.byteOffset, bytes.byteLength / Ctor[a.dtype].BYTES_PER_ELEMENT));
}

const N = 4;
const POINTS = Array.from({ length: N * 3 }, (_, i) => 10 * Math.sin(1.3 * i + 0.2));

function meshInputs(encoding: "base64" | "json" = "base64", objectType = false, pointsDtype: "float64" | "float32" = "float64"): Json {
  return {
    mesh: {
      n_points: N,
      n_cells: 1,
      points: arr(POINTS, [N, 3], pointsDtype, encoding, objectType),
      num_points_per_cell: arr([N], [1], "float64", encoding, objectType),
      cell_connectivity: arr([0, 1, 2, 3], [N], "int32", encoding, objectType),
    },
  };
}

/**
 * A 422 entry tesseract-core's SDK can raise as a pydantic ValidationError: a pydantic error type
 * (a JSON-schema keyword such as "minItems" made it fail with KeyError), with the ctx its message
 * template needs; a value error's text after "Value error, " (the SDK strips that prefix).
 */
function assertPydanticEntry(entry: Json): void {
  const e = entry as { type: string; loc: unknown[]; msg: string; ctx?: { error?: unknown } };
  assert.ok(["value_error", "missing", "extra_forbidden", "json_invalid"].includes(e.type), JSON.stringify(e));
  assert.ok(Array.isArray(e.loc) && typeof e.msg === "string", JSON.stringify(e));
  if (e.type === "value_error") assert.equal(e.msg, `Value error, ${e.ctx?.error}`, JSON.stringify(e));
  if (e.type === "json_invalid") assert.equal(typeof e.ctx?.error, "string", JSON.stringify(e));
}

async function post(base: string, endpoint: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(`${base}/${endpoint}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

describe("tesseract-core's REST API", () => {
  let mesh: RunningServer;
  let vec: RunningServer;
  let poly: RunningServer;
  const { runtime: meshRuntime, counter } = counted("meshstats");
  const base = (s: RunningServer) => `http://127.0.0.1:${s.httpPort}`;

  before(async () => {
    mesh = await startServer({ tesseract: meshRuntime, port: 0, httpPort: 0, workers: 0, logger: silentLogger });
    vec = await startServer({ tesseract: "vectoradd", port: 0, httpPort: 0, logger: silentLogger });
    poly = await startServer({ tesseract: POLYNOMIAL, port: 0, httpPort: 0, logger: silentLogger });
  });
  after(async () => {
    await Promise.all([mesh?.close(), vec?.close(), poly?.close()]);
  });

  it("serves health and reports its port", async () => {
    assert.ok(mesh.httpPort! > 0 && mesh.httpPort !== mesh.port);
    const res = await fetch(`${base(mesh)}/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "ok" });
  });

  it("a gRPC client pointed at the REST port is told to use the gRPC port (grpc-js said only \"Protocol error\")", async () => {
    const client = new TesseractClient(`127.0.0.1:${mesh.httpPort}`, { inputs: Inputs, outputs: Outputs });
    try {
      const error = await clientRejects(client.describe(), "UNAVAILABLE", /^No connection established\. Last error: Protocol error/);
      assert.match(error.message, / — the server at the address is no gRPC server \(it answered HTTP\/1\): connect to the gRPC port, not the REST API's \(--http-port\)$/);
    } finally {
      client.close();
    }
  });

  it("applies meshstats: base64 and JSON arrays, with and without object_type; Accept picks the answer's encoding", async () => {
    const first = POINTS.slice(0, 3);
    const bary = [0, 1, 2].map((c) => POINTS.filter((_, i) => i % 3 === c).reduce((a, b) => a + b, 0) / N);
    for (const [encoding, objectType] of [["base64", false], ["json", false], ["base64", true], ["json", true]] as const) {
      const { status, json } = await post(base(mesh), "apply", { inputs: meshInputs(encoding, objectType) });
      assert.equal(status, 200, JSON.stringify(json));
      const stats = json.statistics;
      assert.equal(stats.first_point_coordinates.data.encoding, "json");
      assert.deepEqual(stats.first_point_coordinates.data.buffer, first);
      assert.equal(stats.barycenter.dtype, "float64");
      assertClose(values(stats.barycenter), bary, 1e-12);
    }
    // Quality decides, then order; q=0 excludes (base64 came back for "application/json+base64;q=0, application/json").
    for (const [accept, encoding] of [["application/json+base64", "base64"], ["*/*", "json"], ["application/json", "json"], ["application/json+base64;q=0, application/json", "json"], ["application/json;q=0.5, application/json+base64", "base64"], ["application/json, application/json+base64", "json"]]) {
      const { status, json } = await post(base(mesh), "apply", { inputs: meshInputs() }, { accept });
      assert.equal(status, 200);
      assert.equal(json.statistics.barycenter.data.encoding, encoding, accept);
      assertClose(values(json.statistics.first_point_coordinates), first, 0);
    }
    const binref = await post(base(mesh), "apply", { inputs: meshInputs() }, { accept: "application/json+binref" });
    assert.equal(binref.status, 422);
    assert.match(binref.json.detail[0].msg, /binref is not supported/);
  });

  it("answers the meshstats Jacobian against the analytic one (dense), with 2N apply calls (its declared structure)", async () => {
    const before = counter.calls;
    const { status, json } = await post(base(mesh), "jacobian", { inputs: meshInputs(), jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter", "statistics.first_point_coordinates"] });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(counter.calls - before, 2 * N, "central: two evaluations per column group serve both outputs");
    for (const out of ["barycenter", "first_point_coordinates"] as const) {
      const a = json[`statistics.${out}`]["mesh.points"];
      assert.deepEqual(a.shape, [3, N, 3]);
      assertClose(values(a), meshJacobian(N, out), 1e-7, out);
    }
    const forward = await post(base(mesh), "jacobian?algorithm=forward", { inputs: meshInputs("json"), jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"] }, { accept: "application/json+base64" });
    assert.equal(forward.status, 200);
    assert.equal(forward.json["statistics.barycenter"]["mesh.points"].data.encoding, "base64");
    assertClose(values(forward.json["statistics.barycenter"]["mesh.points"]), meshJacobian(N, "barycenter"), 1e-6);
    // A misspelt parameter left the defaults in place; Number() read "0x10" as 16.
    const request = { inputs: meshInputs(), jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"] };
    const misspelt = await post(base(mesh), "jacobian?algoritm=forward", request);
    assert.equal(misspelt.status, 422);
    assert.match(JSON.stringify(misspelt.json), /query parameter algoritm is not an option; options: algorithm, eps, num_samples, seed, sparsity_mode/);
    assert.deepEqual(misspelt.json.detail[0].loc, ["query", "algoritm"], "located as FastAPI locates a query parameter");
    for (const eps of ["0x10", "0b1", "%201e-3%20", "Infinity"]) {
      const odd = await post(base(mesh), `jacobian?eps=${eps}`, request);
      assert.equal(odd.status, 422, `eps=${eps}`);
      assert.match(JSON.stringify(odd.json), /query parameter eps is .*, expected a number/);
      assert.deepEqual(odd.json.detail[0].loc, ["query", "eps"]);
    }
    const bodyHex = await post(base(mesh), "jacobian", { ...request, options: { eps: "0x10" } });
    assert.match(JSON.stringify(bodyHex.json), /options\.eps is \\"0x10\\", expected a number/);
    assert.equal((await post(base(mesh), "jacobian?eps=1e-5&run_id=abc", request)).status, 200, "tesseract-core's run_id is taken (and ignored)");
    // A seed is any uint64, as over gRPC (beyond 2^53 as decimal text); a number that underflows says so.
    assert.equal((await post(base(mesh), "jacobian?algorithm=stochastic&num_samples=2&seed=18446744073709551615", request)).status, 200);
    assert.equal((await post(base(mesh), "jacobian", { ...request, options: { algorithm: "stochastic", num_samples: 2, seed: "18446744073709551615" } })).status, 200);
    // A seed out of range is refused where it was given (the query's was located in the body's options).
    const negative = await post(base(mesh), "jacobian?algorithm=stochastic&seed=-1", request);
    assert.equal(negative.status, 422);
    assert.deepEqual(negative.json.detail[0].loc, ["query", "seed"]);
    assert.match(negative.json.detail[0].msg, /query parameter seed must be an unsigned 64-bit integer, got -1/);
    // So are eps and num_samples out of range (a query's 0 was refused as options.eps, located in the body).
    for (const [query, name, msg] of [["eps=0", "eps", "must be a positive finite number, got 0"], ["eps=-1e-3", "eps", "must be a positive finite number, got -0.001"], ["algorithm=stochastic&num_samples=0", "num_samples", "must be a whole number of at least 1, got 0"]]) {
      const r = await post(base(mesh), `jacobian?${query}`, request);
      assert.equal(r.status, 422, r.text);
      assert.deepEqual([r.json.detail[0].loc, r.json.detail[0].msg], [["query", name], `Value error, query parameter ${name} ${msg}`], query);
    }
    const zero = await post(base(mesh), "jacobian", { ...request, options: { eps: 0 } });
    assert.deepEqual([zero.json.detail[0].loc, zero.json.detail[0].msg, zero.json.detail[0].input], [["body", "options", "eps"], "Value error, options.eps must be a positive finite number, got 0", 0]);
    const tooLarge = await post(base(mesh), "jacobian", { ...request, options: { algorithm: "stochastic", seed: "18446744073709551616" } });
    assert.deepEqual(tooLarge.json.detail[0].loc, ["body", "options", "seed"]);
    const tiny = await post(base(mesh), "jacobian?eps=1e-400", request);
    assert.equal(tiny.status, 422);
    assert.match(JSON.stringify(tiny.json), /query parameter eps is \\"1e-400\\", below the smallest FP64 number \(it reads as 0\)/);
  });

  it("answers vectoradd's JVP and VJP against its analytic gradients (json and base64)", async () => {
    const a = [1, 2, 3];
    const b = [0.5, -1, 4];
    const s = 2;
    const inputs = { a: arr(a, [3]), b: arr(b, [3], "float64", "json", true), s: arr([s], []) };
    const apply = await post(base(vec), "apply", { inputs });
    assert.equal(apply.status, 200, apply.text);
    assertClose(values(apply.json.result), [2.5, 3, 10], 1e-12);
    // A wrong dtype is named as the caller wrote it, numpy's way (it read DATA_TYPE_INT32, expected DATA_TYPE_FP32 or DATA_TYPE_FP64).
    const ints = await post(base(vec), "apply", { inputs: { ...inputs, a: arr([1, 2, 3], [3], "int32") } });
    assert.equal(ints.status, 422, ints.text);
    assert.equal(ints.json.detail[0].msg, "Value error, a has datatype int32, expected float32 or float64");
    // Scalars as pydantic's lax mode takes them (1 for a bool and "2" for a double were refused).
    const normalized = await post(base(vec), "apply", { inputs: { ...inputs, normalize: true } });
    for (const normalize of [1, "yes", "True"]) {
      const lax = await post(base(vec), "apply", { inputs: { ...inputs, normalize } });
      assert.deepEqual(lax.json, normalized.json, `normalize: ${JSON.stringify(normalize)}`);
    }
    assert.deepEqual((await post(base(vec), "apply", { inputs: { ...inputs, normalize: 0 } })).json, apply.json);
    assert.equal((await post(base(vec), "apply", { inputs: { ...inputs, normalize: 2 } })).json.detail[0].msg, "Value error, inputs.normalize is 2, expected true or false");
    const ta = [1, 0, -1];
    const jvp = await post(base(vec), "jacobian_vector_product", { inputs, jvp_inputs: ["a", "s"], jvp_outputs: ["result"], tangent_vector: { a: arr(ta, [3]), s: arr([0.5], [], "float64", "json") } });
    assert.equal(jvp.status, 200, jvp.text);
    assertClose(values(jvp.json.result), ta.map((t, i) => s * t + 0.5 * a[i]), 1e-6);
    const ct = [1, 2, 3];
    const vjp = await post(base(vec), "vector_jacobian_product", { inputs, vjp_inputs: ["a", "b", "s"], vjp_outputs: ["result"], cotangent_vector: { result: arr(ct, [3]) }, options: { algorithm: "central", eps: 1e-4 } }, { accept: "application/json+base64" });
    assert.equal(vjp.status, 200, vjp.text);
    assertClose(values(vjp.json.a), ct.map((c) => s * c), 1e-6);
    assertClose(values(vjp.json.b), ct, 1e-6);
    assertClose(values(vjp.json.s), [ct.reduce((acc, c, i) => acc + c * a[i], 0)], 1e-6);
    assert.deepEqual(vjp.json.s.shape, []);
  });

  it("an array object with a key tesseract-core's array model lacks: 422 extra_forbidden naming it (a misspelt key was ignored, 200)", async () => {
    const inputs = { a: arr([1], [1]), b: arr([1], [1], "float64", "json") };
    const misspelt = await post(base(vec), "apply", { inputs: { ...inputs, a: { ...arr([1], [1]), dtpye: "float32" } } });
    assert.equal(misspelt.status, 422, misspelt.text);
    assert.deepEqual(misspelt.json, {
      detail: [{ type: "extra_forbidden", loc: ["body", "inputs", "a", "dtpye"], msg: "inputs.a.dtpye is not a key of an array object; keys: object_type, shape, dtype, data", input: "float32" }],
    });
    // In data too: "compresion": "lz4" read the compressed bytes as the array's own.
    const data = await post(base(vec), "apply", { inputs: { ...inputs, b: { shape: [1], dtype: "float64", data: { buffer: "AAAAAAAA8D8=", encoding: "base64", compresion: "lz4" } } } });
    assert.equal(data.status, 422, data.text);
    assert.deepEqual(data.json, {
      detail: [{ type: "extra_forbidden", loc: ["body", "inputs", "b", "data", "compresion"], msg: "inputs.b.data.compresion is not a key of an array's data; keys: buffer, encoding, compression", input: "lz4" }],
    });
    const tangent = await post(base(vec), "jacobian_vector_product", { inputs, jvp_inputs: ["a"], jvp_outputs: ["result"], tangent_vector: { a: { ...arr([1], [1]), objecttype: "array" } } });
    assert.equal(tangent.status, 422, tangent.text);
    assert.deepEqual(tangent.json, {
      detail: [{ type: "extra_forbidden", loc: ["body", "tangent_vector", "a", "objecttype"], msg: "tangent_vector.{a}.objecttype is not a key of an array object; keys: object_type, shape, dtype, data", input: "array" }],
    });
    // Every key tesseract-core writes is taken, compression null included.
    const full = await post(base(vec), "apply", { inputs: { ...inputs, a: { object_type: "array", shape: [1], dtype: "float64", data: { buffer: [2], encoding: "json", compression: null } } } });
    assert.equal(full.status, 200, full.text);
    assert.deepEqual(full.json.result.data.buffer, [3]);
  });

  it("an array object missing a key it needs: 422 missing, msg \"Field required\", loc ending in the key, input the object that lacks it (as pydantic; it was value_error)", async () => {
    const inputs = { a: arr([1], [1]), b: arr([1], [1]) };
    const { shape: _s, ...noShape } = arr([1], [1]);
    const { dtype: _d, ...noDtype } = arr([1], [1]);
    const { data: _x, ...noData } = arr([1], [1]);
    const cases: [Json, (string | number)[], unknown][] = [
      [{ inputs: { ...inputs, a: noShape } }, ["body", "inputs", "a", "shape"], noShape],
      [{ inputs: { ...inputs, a: noDtype } }, ["body", "inputs", "a", "dtype"], noDtype],
      [{ inputs: { ...inputs, b: noData } }, ["body", "inputs", "b", "data"], noData],
      [{ inputs: { ...inputs, b: { shape: [1], dtype: "float64", data: { encoding: "json" } } } }, ["body", "inputs", "b", "data", "buffer"], { encoding: "json" }],
      [{ inputs: { ...inputs, b: { shape: [1], dtype: "float64", data: { buffer: [1] } } } }, ["body", "inputs", "b", "data", "encoding"], { buffer: [1] }],
    ];
    for (const [body, loc, input] of cases) {
      const res = await post(base(vec), "apply", body);
      assert.equal(res.status, 422, res.text);
      assert.deepEqual(res.json, { detail: [{ type: "missing", loc, msg: "Field required", input }] });
    }
    const tangent = await post(base(vec), "jacobian_vector_product", { inputs, jvp_inputs: ["a"], jvp_outputs: ["result"], tangent_vector: { a: noShape } });
    assert.equal(tangent.status, 422, tangent.text);
    assert.deepEqual(tangent.json, { detail: [{ type: "missing", loc: ["body", "tangent_vector", "a", "shape"], msg: "Field required", input: noShape }] });
    // A required input a Tesseract leaves out, as pydantic's model: vectoradd's `a`, meshstats' `mesh`.
    const noA = await post(base(vec), "apply", { inputs: { b: inputs.b } });
    assert.deepEqual(noA.json, { detail: [{ type: "missing", loc: ["body", "inputs", "a"], msg: "Field required", input: { b: inputs.b } }] });
    const noAbstractB = await post(base(vec), "abstract_eval", { inputs: { a: { shape: [1], dtype: "float64" } } });
    assert.deepEqual(noAbstractB.json.detail[0].type, "missing", noAbstractB.text);
    const noMesh = await post(base(mesh), "apply", { inputs: {} });
    assert.deepEqual(noMesh.json, { detail: [{ type: "missing", loc: ["body", "inputs", "mesh"], msg: "Field required", input: {} }] });
    // A shape that is there but null is no missing key: a value error, as before.
    const nullShape = await post(base(vec), "apply", { inputs: { ...inputs, a: { ...arr([1], [1]), shape: null } } });
    assert.equal(nullShape.json.detail[0].type, "value_error", nullShape.text);
  });

  it("a 422 entry quotes the caller's value at its loc in input, as FastAPI does (the SDK's ValidationError showed input_value=None)", async () => {
    const inputs = meshInputs() as { mesh: Record<string, unknown> };
    const four = await post(base(mesh), "apply", { inputs: { mesh: { ...inputs.mesh, n_points: "four" } } });
    assert.equal(four.status, 422, four.text);
    const error = 'inputs.mesh.n_points is "four", expected an integer from -9007199254740991 to 9007199254740991 (int64, within ±(2^53 - 1), the integers a JSON number holds exactly)';
    assert.deepEqual(four.json, { detail: [{ type: "value_error", loc: ["body", "inputs", "mesh", "n_points"], msg: `Value error, ${error}`, input: "four", ctx: { error } }] });
    // A big value is quoted shortened; a query parameter's from the query.
    const request = { inputs: meshInputs(), jac_inputs: ["mesh.points", "mesh.nope"], jac_outputs: ["statistics.barycenter"] };
    const path = await post(base(mesh), "jacobian", request);
    assert.equal(path.status, 422, path.text);
    assert.deepEqual(path.json.detail[0].loc, ["body", "jac_inputs"]);
    assert.deepEqual(path.json.detail[0].input, ["mesh.points", "mesh.nope"]);
    const eps = await post(base(mesh), "jacobian?eps=tiny", { ...request, jac_inputs: ["mesh.points"] });
    assert.equal(eps.status, 422, eps.text);
    assert.deepEqual([eps.json.detail[0].loc, eps.json.detail[0].input], [["query", "eps"], "tiny"]);
    const shape = await post(base(mesh), "apply", { inputs: { mesh: { ...inputs.mesh, points: arr(new Array(8).fill(1), [4, 2]) } } });
    assert.equal(shape.status, 422, shape.text);
    assert.deepEqual(shape.json.detail[0].loc, ["body", "inputs", "mesh", "points"]);
    assert.match(String(shape.json.detail[0].input), /^\{"shape":\[4,2\],"dtype":"float64","data":\{"buffer":".*… \(\d+ characters\)$/);
  });

  it("meshstats' own checks of lengths across fields are located at the field, as the SDK's ValidationError shows them (they were at [\"body\"], input none)", async () => {
    const inputs = meshInputs("json") as { mesh: Record<string, unknown> };
    const cells = await post(base(mesh), "apply", { inputs: { mesh: { ...inputs.mesh, n_cells: 2 } } });
    assert.equal(cells.status, 422, cells.text);
    const perCell = "mesh.num_points_per_cell has 1 element, expected mesh.n_cells = 2";
    assert.deepEqual(cells.json.detail, [{ type: "value_error", loc: ["body", "inputs", "mesh", "num_points_per_cell"], msg: `Value error, ${perCell}`, input: inputs.mesh.num_points_per_cell, ctx: { error: perCell } }]);
    const connectivity = await post(base(mesh), "jacobian", {
      inputs: { mesh: { ...inputs.mesh, num_points_per_cell: arr([3], [1], "float64", "json") } },
      jac_inputs: ["mesh.points"],
      jac_outputs: ["statistics.barycenter"],
    });
    assert.equal(connectivity.status, 422, connectivity.text);
    const sum = "mesh.cell_connectivity has 4 elements, expected sum(mesh.num_points_per_cell) = 3";
    assert.deepEqual(connectivity.json.detail, [{ type: "value_error", loc: ["body", "inputs", "mesh", "cell_connectivity"], msg: `Value error, ${sum}`, input: inputs.mesh.cell_connectivity, ctx: { error: sum } }]);
  });

  it("a big value in a 422 is shown by its start, written no further (JSON.stringify of a 2 million number list, only to cut it, held the event loop for seconds)", async () => {
    const big = new Array(2_000_000).fill(0);
    const start = (length: number) => `[${"0,".repeat(length)}`.slice(0, length);
    const list = await post(base(vec), "apply", { inputs: { a: big, b: arr([1], [1]) } });
    assert.equal(list.status, 422, list.text.slice(0, 300));
    const error = `inputs.a is ${start(40)}… (more than 65536 characters), expected an array object {"shape", "dtype", "data"}`;
    assert.deepEqual(list.json.detail, [{ type: "value_error", loc: ["body", "inputs", "a"], msg: `Value error, ${error}`, input: `${start(100)}… (more than 65536 characters)`, ctx: { error } }]);
    const missing = await post(base(vec), "apply", { inputs: { a: { shape: [2_000_000], dtype: "float64", data: { buffer: big, encoding: "json" } } } });
    assert.equal(missing.status, 422, missing.text.slice(0, 300));
    assert.deepEqual(missing.json.detail[0].loc, ["body", "inputs", "b"]);
    assert.match(missing.json.detail[0].input, /^\{"a":\{"shape":\[2000000\],"dtype":"float64","data":\{"buffer":\[0,0,.*… \(more than 65536 characters\)$/);
  });

  it("paths of a Tesseract without JSON keys go to the engine as written, not parsed and written again (100 000 paths of a 60 MB body held the event loop 1.5 s); a refusal quotes the caller's text (a.{x\\y} was quoted a.{xy})", async () => {
    const inputs = { a: arr([1], [1]), b: arr([1], [1]) };
    const r = await post(base(vec), "jacobian", { inputs, jac_inputs: ["a.{x\\y}"], jac_outputs: ["result"] });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.detail[0].msg, 'Value error, jac_inputs: input path "a.{x\\\\y}" does not exist; differentiable input paths: a, b');
  });

  it("a caller's key of megabytes in a message is located exactly, in one pass: 422, not a stack overflow's 500 (a 9 MB tangent key overflowed the regular expression that found the loc)", async () => {
    const inputs = { a: arr([1, 2, 3], [3]), b: arr([0, 0, 0], [3]) };
    for (const key of ["k".repeat(9_000_000), `a${"}".repeat(4_500_000)}"b\\`]) {
      // The array's data as a bare list, not {"buffer", "encoding"}: refused at tangent_vector.{key}.data.
      const r = await post(base(vec), "jacobian_vector_product", { inputs, jvp_inputs: ["a"], jvp_outputs: ["result"], tangent_vector: { [key]: { shape: [3], dtype: "float64", data: [1, 2, 3] } } });
      assert.equal(r.status, 422, r.text.slice(0, 300));
      const [entry] = r.json.detail;
      assertPydanticEntry(entry);
      assert.equal(entry.loc.length, 4);
      assert.ok(entry.loc[2] === key, "the key, unescaped, whole");
      assert.deepEqual([entry.loc[0], entry.loc[1], entry.loc[3]], ["body", "tangent_vector", "data"]);
      assert.match(entry.msg, /^Value error, tangent_vector\.\{.*… \(message cut\)$/);
    }
  });

  it("a body of more messages than --max-request-messages: 413 naming the limit and where, before the rest is converted", async () => {
    const inputs = meshInputs() as { mesh: Record<string, unknown> };
    const cell_data = Object.fromEntries(Array.from({ length: 60_000 }, (_, i) => [`k${i}`, { shape: [1, 1], dtype: "float64", data: { buffer: [1], encoding: "json" } }]));
    const { status, json } = await post(base(mesh), "apply", { inputs: { ...inputs, mesh: { ...inputs.mesh, cell_data } } });
    assert.equal(status, 413);
    assert.match(String(json.detail), /^more than 100000 messages \(every tensor, map entry, nested message and listed string counts; the server's --max-request-messages\) at inputs\.mesh\.cell_data\.\{k\d+\}$/);
  });

  it("a body over --max-message-bytes: 413 naming the limit", async () => {
    const small = await startServer({ tesseract: POLYNOMIAL, port: 0, httpPort: 0, logger: silentLogger, maxMessageBytes: 100_000, streamChunkBytes: 65_536, warmUpMs: 0 });
    try {
      const { status, json } = await post(`http://127.0.0.1:${small.httpPort}`, "apply", { inputs: { x: arr(new Array(20_000).fill(1), [20_000]), y: arr([0.5], []), mode: "" } });
      const message = "the body is larger than this server's limit of 100000 bytes (--max-message-bytes)";
      assert.deepEqual([status, json.detail], [413, message]);
      // 16 MB, from a client that writes all of it before it reads (as Python's do): the 413 waits
      // for the body (the connection was closed under the client: a broken pipe or a reset instead).
      const body = Buffer.alloc(16 << 20, " ");
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(small.httpPort!, "127.0.0.1");
        const chunks: Buffer[] = [];
        socket.on("error", reject);
        socket.write(`POST /apply HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`);
        socket.pause(); // nothing read until the body is written
        socket.write(body, () => socket.on("data", (c: Buffer) => chunks.push(c)).on("end", () => resolve(Buffer.concat(chunks).toString())).resume());
      });
      assert.match(raw, /^HTTP\/1\.1 413 /);
      assert.equal(JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4)).detail, message);
      // With Expect: 100-continue, the body is not asked for.
      for (const expect of [false, true]) {
        const answer = await new Promise<{ status?: number; text: string; continued: boolean }>((resolve, reject) => {
          let continued = false;
          const req = http.request({ host: "127.0.0.1", port: small.httpPort, method: "POST", path: "/apply", headers: { "content-type": "application/json", "content-length": body.length, ...(expect ? { expect: "100-continue" } : {}) } });
          req.on("continue", () => ((continued = true), req.end(body)));
          req.on("response", (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c)).on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString(), continued }));
          });
          req.on("error", reject);
          if (!expect) req.end(body);
        });
        assert.deepEqual([answer.status, JSON.parse(answer.text).detail, answer.continued], [413, message, false], `Expect: 100-continue ${expect}`);
      }
    } finally {
      await small.close(0);
    }
  });

  it("abstract_eval answers shapes and dtypes", async () => {
    const { status, json } = await post(base(vec), "abstract_eval", { inputs: { a: { shape: [5], dtype: "float64" }, b: { shape: [5], dtype: "float64" } } });
    assert.equal(status, 200, JSON.stringify(json));
    assert.deepEqual(json, { result: { shape: [5], dtype: "float64" } });
  });

  it("abstract_eval writes an output map key \"__proto__\" as a key of its answer (it was written onto Object.prototype)", async () => {
    // polynomial's `named` mirrors the caller's params keys; an abstractEval saying so names them in its paths.
    const base_ = loadTesseract(POLYNOMIAL);
    const definition = {
      ...base_.definition,
      abstractEval: (inputs: any) => Object.keys(inputs.params).map((key) => ({ path: `named.{${key}}`, shape: [1], datatype: DataType.DATA_TYPE_FP64 })),
    };
    const server = await startServer({ tesseract: new TesseractRuntime(definition, path.dirname(POLYNOMIAL)), port: 0, httpPort: 0, logger: silentLogger });
    try {
      const params = JSON.parse('{"__proto__": {"shape": [1], "dtype": "float64"}, "a": {"shape": [1], "dtype": "float64"}}');
      const { status, json, text } = await post(`http://127.0.0.1:${server.httpPort}`, "abstract_eval", { inputs: { x: { shape: [2], dtype: "float64" }, y: { shape: [], dtype: "float64" }, params, mode: "" } });
      assert.equal(status, 200, text);
      assert.deepEqual(Object.keys(json.named), ["__proto__", "a"]);
      assert.equal(text.includes('"__proto__":{"shape":[1],"dtype":"float64"}'), true, text);
      assert.equal(({} as any).shape, undefined, "Object.prototype is untouched");
    } finally {
      await server.close(0);
    }
  });

  it("--max-request-messages bounds requests, not the Tesseract's outputs (a /apply within it was 413 for its answer)", async () => {
    // 9 messages in: Inputs, x, y, three params entries and their tensors; 10 out (named mirrors params, plus f, g, count_out).
    const tight = await startServer({ tesseract: POLYNOMIAL, port: 0, httpPort: 0, logger: silentLogger, maxRequestMessages: 9 });
    try {
      const params = { a: arr([1], [1]), b: arr([2], [1]), c: arr([3], [1]) };
      const apply = await post(`http://127.0.0.1:${tight.httpPort}`, "apply", { inputs: { x: arr([1, 2], [2]), y: arr([0.5], []), params, mode: "" } });
      assert.equal(apply.status, 200, apply.text);
      const over = await post(`http://127.0.0.1:${tight.httpPort}`, "apply", { inputs: { x: arr([1, 2], [2]), y: arr([0.5], []), params: { ...params, d: arr([4], [1]) }, mode: "" } });
      assert.equal(over.status, 413, over.text);
      // The envelope counts as the gRPC decoder counts it: listed paths, and a vector map's entries and tensors
      // (500 000 tangent entries took 5 s and 400 MB before their keys were looked at).
      const inputs = { x: arr([1, 2], [2]), y: arr([0.5], []), mode: "" };
      const paths = Array.from({ length: 10 }, (_, i) => `params.{k${i}}`);
      const jac = await post(`http://127.0.0.1:${tight.httpPort}`, "jacobian", { inputs, jac_inputs: paths, jac_outputs: ["g"] });
      assert.deepEqual([jac.status, jac.json.detail], [413, "more than 9 messages (every tensor, map entry, nested message and listed string counts; the server's --max-request-messages) at jac_inputs"]);
      const tangent_vector = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`x${i}`, arr([1, 1], [2])]));
      const jvp = await post(`http://127.0.0.1:${tight.httpPort}`, "jacobian_vector_product", { inputs, jvp_inputs: ["x"], jvp_outputs: ["g"], tangent_vector });
      assert.deepEqual([jvp.status, jvp.json.detail], [413, "more than 9 messages (every tensor, map entry, nested message and listed string counts; the server's --max-request-messages) at tangent_vector"]);
      const within = await post(`http://127.0.0.1:${tight.httpPort}`, "jacobian_vector_product", { inputs, jvp_inputs: ["x"], jvp_outputs: ["g"], tangent_vector: { x: arr([1, 1], [2]) } });
      assert.equal(within.status, 200, within.text);
    } finally {
      await tight.close();
    }
  });

  it("decodes maps, lists and enums by the message schema (polynomial)", async () => {
    const inputs = { x: arr([1, 2], [2], "float64", "json"), y: arr([0.5], []), params: { k: arr([3], [1]) }, blocks: [{ w: arr([1, 2], [2], "float64", "json", true) }], mode: "" };
    const apply = await post(base(poly), "apply", { inputs });
    assert.equal(apply.status, 200, apply.text);
    assertClose(values(apply.json.named.k), [27], 1e-12);
    assertClose(values(apply.json.g), [Math.exp(0.5) + 5], 1e-12);
    assert.equal(apply.json.count_out.dtype, "int32");
    const jac = await post(base(poly), "jacobian", { inputs, jac_inputs: ["params.{k}", "blocks.[0].w"], jac_outputs: ["named.{k}", "g"] });
    assert.equal(jac.status, 200, jac.text);
    assertClose(values(jac.json["named.{k}"]["params.{k}"]), [2 * 3 * 3], 1e-5);
    assertClose(values(jac.json.g["blocks.[0].w"]), [2, 4], 1e-5);
    const enumByName = await post(base(mesh), "apply", { inputs: { ...meshInputs(), fd_algorithm: "ALGORITHM_FORWARD" } });
    assert.equal(enumByName.status, 200, enumByName.text);
    assert.equal((await post(base(mesh), "apply", { inputs: { ...meshInputs(), fd_algorithm: 2 } })).status, 200);
    // A number that is no value: located at the field, naming the values (protobufjs's "enum value expected" was located at the whole inputs).
    const unknown = await post(base(mesh), "apply", { inputs: { ...meshInputs(), fd_algorithm: 99 } });
    assert.deepEqual([unknown.status, unknown.json.detail[0].loc], [422, ["body", "inputs", "fd_algorithm"]]);
    assert.match(unknown.json.detail[0].msg, /^Value error, inputs\.fd_algorithm is 99, expected one of ALGORITHM_UNSPECIFIED, ALGORITHM_CENTRAL, .* \(or its number\)$/);
  });

  it("64-bit integers beyond ±(2^53 − 1) are answered exactly (2^53 + 1 was answered as 2^53, silently); sent as JSON numbers they are refused, naming why", async () => {
    const big = [2n ** 53n + 1n, -(2n ** 60n) - 1n, 7n];
    const counts = { shape: [3], dtype: "int64", data: { buffer: Buffer.from(BigInt64Array.from(big).buffer).toString("base64"), encoding: "base64" } };
    const inputs = { x: arr([1, 2], [2]), y: arr([0.5], []), params: {}, blocks: [], counts, mode: "echo-counts" };
    const apply = await post(base(poly), "apply", { inputs });
    assert.equal(apply.status, 200, apply.text);
    assert.match(apply.text, /"count_out":\{"object_type":"array","shape":\[3\],"dtype":"int64","data":\{"buffer":\[9007199254740993,-1152921504606846977,7\],"encoding":"json"\}\}/);
    const asBase64 = await post(base(poly), "apply", { inputs }, { accept: "application/json+base64" });
    assert.deepEqual([...new BigInt64Array(new Uint8Array(Buffer.from(asBase64.json.count_out.data.buffer, "base64")).buffer)], big);
    const json = await post(base(poly), "apply", { inputs: { ...inputs, counts: { shape: [1], dtype: "int64", data: { buffer: [2 ** 53 + 2], encoding: "json" } } } });
    assert.equal(json.status, 422);
    assert.match(json.json.detail[0].msg, /element 0 is beyond ±\(2\^53 − 1\), where JSON numbers are read inexactly \(it read as 9007199254740994\); send such int64 values base64-encoded/);
    // A value the dtype cannot hold at all is said so (not "send it base64-encoded").
    const narrow = await post(base(poly), "apply", { inputs: { ...inputs, counts: { shape: [1], dtype: "uint8", data: { buffer: [1e20], encoding: "json" } } } });
    assert.match(narrow.json.detail[0].msg, /element 0 is 100000000000000000000, which dtype uint8 cannot hold/);
  });

  it("−0 is answered -0.0, as Python writes it (JSON.stringify wrote 0, and the sign was lost)", async () => {
    const points = POINTS.slice();
    points[0] = -0;
    const apply = await post(base(mesh), "apply", { inputs: { mesh: { ...meshInputs().mesh, points: arr(points, [N, 3]) } } });
    assert.equal(apply.status, 200, apply.text);
    assert.match(apply.text, /"first_point_coordinates":\{"object_type":"array","shape":\[3\],"dtype":"float64","data":\{"buffer":\[-0\.0,/);
    assert.ok(Object.is(apply.json.statistics.first_point_coordinates.data.buffer[0], -0));
  });

  it("casts an array of another dtype to the one its field declares when every value survives, as tesseract-core accepts a castable dtype", async () => {
    // numpy's integer points (int64, int32) and float32 ones, where meshstats declares FP64: tesseract-core answers them.
    for (const dtype of ["int64", "int32", "float32"]) {
      const points = { shape: [N, 3], dtype, data: { buffer: POINTS.map(Math.round), encoding: "json" } };
      const cast = await post(base(mesh), "apply", { inputs: { mesh: { ...meshInputs().mesh, points } } });
      assert.equal(cast.status, 200, JSON.stringify(cast.json));
      const rounded = await post(base(mesh), "apply", { inputs: { mesh: { ...meshInputs().mesh, points: { ...points, dtype: "float64" } } } });
      assert.equal(rounded.status, 200);
      assert.deepEqual(cast.json, rounded.json, dtype);
    }
  });

  it("an array of a dtype numpy does not cast same_kind to the declared one is 422 naming both, as tesseract-core refuses it (float64 connectivity was taken when whole); one it casts is taken; /openapi.json lists those", async () => {
    const connectivity = (dtype: string, buffer: unknown[]) => ({ inputs: { mesh: { ...meshInputs().mesh, cell_connectivity: { shape: [N], dtype, data: { buffer, encoding: "json" } } } } });
    const taken = "bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64";
    for (const dtype of ["float64", "float32", "float16"]) {
      const r = await post(base(mesh), "apply", connectivity(dtype, [0, 1, 2, 3]));
      assert.equal(r.status, 422, r.text);
      const error = `inputs.mesh.cell_connectivity.dtype is "${dtype}", which is not cast to the declared dtype int32 (numpy's same_kind casting, as tesseract-core casts inputs); dtypes taken: ${taken}`;
      assert.deepEqual(r.json, { detail: [{ type: "value_error", loc: ["body", "inputs", "mesh", "cell_connectivity", "dtype"], msg: `Value error, ${error}`, input: dtype, ctx: { error } }] });
    }
    // Within a kind, or to a later one, the values decide: uint64 and int64 in range, bool, are taken.
    for (const [dtype, buffer] of [["int64", [0, 1, 2, 3]], ["uint64", [0, 1, 2, 3]], ["int8", [0, 1, 2, 3]]] as const) {
      const r = await post(base(mesh), "apply", connectivity(dtype, [...buffer]));
      assert.equal(r.status, 200, `${dtype}: ${r.text}`);
    }
    const points = { shape: [N, 3], dtype: "bool", data: { buffer: POINTS.map((p) => p > 0), encoding: "json" } };
    const bools = await post(base(mesh), "apply", { inputs: { mesh: { ...meshInputs().mesh, points } } });
    assert.equal(bools.status, 200, bools.text);
    assert.deepEqual(bools.json.statistics.first_point_coordinates.data.buffer, POINTS.slice(0, 3).map((p) => (p > 0 ? 1 : 0)));
    const doc = (await (await fetch(`${base(mesh)}/openapi.json`)).json()) as Json;
    const mesh_ = doc.components.schemas.Apply_VolumetricMeshData.properties;
    assert.deepEqual(mesh_.cell_connectivity.properties.dtype.enum, taken.split(", "));
    assert.deepEqual(mesh_.points.properties.dtype.enum, [...taken.split(", "), "float32", "float64", "float16"]);
  });

  it("a JSON number beyond FP64's range is refused naming it (in a float64 array it went in as -Infinity and /apply answered 200; in options it was named null)", async () => {
    const postText = async (endpoint: string, text: string) => {
      const res = await fetch(`${base(mesh)}/${endpoint}`, { method: "POST", headers: { "content-type": "application/json" }, body: text });
      return { status: res.status, json: (await res.json()) as { detail: { loc: unknown[]; msg: string }[] } };
    };
    const points = { shape: [N, 3], dtype: "float64", data: { buffer: [123.25, ...POINTS.slice(1)], encoding: "json" } };
    const apply = await postText("apply", JSON.stringify({ inputs: { mesh: { ...meshInputs().mesh, points } } }).replace("123.25", "-1e999"));
    assert.equal(apply.status, 422);
    assert.deepEqual(apply.json.detail[0].loc, ["body", "inputs", "mesh", "points", "data", "buffer"]);
    assert.match(apply.json.detail[0].msg, /element 0 is -Infinity \(a number beyond ±1\.8e308\), expected a finite number$/);
    const request = { inputs: meshInputs(), jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"], options: { eps: 0.125 } };
    const jacobian = await postText("jacobian", JSON.stringify(request).replace("0.125", "1e999"));
    assert.equal(jacobian.status, 422);
    assert.match(jacobian.json.detail[0].msg, /options\.eps is Infinity \(a number beyond ±1\.8e308\), expected a number$/);
  });

  it("null for a field that is not Optional is a 422 naming it, as pydantic answers it (it was read as unset: the default applied, 200)", async () => {
    const a = arr([1, 2], [2]);
    const b = arr([3, 4], [2]);
    const cases: [RunningServer, string, Json, string, string][] = [
      [vec, "apply", { a, b, normalize: null }, "normalize", "inputs.normalize is null, expected true or false"],
      [vec, "apply", { a, b, s: null }, "s", 'inputs.s is null, expected an array object {"shape", "dtype", "data"}'],
      [vec, "jacobian", { a, b, s: null }, "s", 'inputs.s is null, expected an array object {"shape", "dtype", "data"}'],
      [mesh, "apply", { ...meshInputs(), fd_algorithm: null }, "fd_algorithm", "inputs.fd_algorithm is null, expected one of ALGORITHM_UNSPECIFIED, ALGORITHM_CENTRAL, ALGORITHM_FORWARD, ALGORITHM_STOCHASTIC, ALGORITHM_RICHARDSON, ALGORITHM_ADAPTIVE (or its number)"],
      [mesh, "apply", { mesh: null }, "mesh", "inputs.mesh is null, expected an object (VolumetricMeshData)"],
    ];
    for (const [server, endpoint, inputs, field, message] of cases) {
      const body = endpoint === "jacobian" ? { inputs, jac_inputs: ["a"], jac_outputs: ["result"] } : { inputs };
      const { status, json } = await post(base(server), endpoint, body);
      assert.equal(status, 422, JSON.stringify(json));
      assert.deepEqual(json.detail.map((d: Json) => [d.loc, d.msg, d.input]), [[["body", "inputs", field], `Value error, ${message}`, null]]);
    }
    // A list and a map are no Optional either (null was an empty one).
    const poly422 = await post(base(poly), "apply", { inputs: { x: arr([1, 2], [2]), y: arr([0.5], []), params: null, blocks: null } });
    assert.deepEqual([poly422.status, poly422.json.detail.map((d: Json) => d.msg)], [422, ["Value error, inputs.params is null, expected an object (a map)"]]);
    // Left out, each is unset as before.
    assert.equal((await post(base(vec), "apply", { inputs: { a, b } })).status, 200);
  });

  it("a malformed body is its 422 while the job queue is full; a well-formed one is the 429 (the malformed one was a 429 too, and its mistake unsaid)", async () => {
    const polynomial = loadTesseract(POLYNOMIAL).definition;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let entered!: () => void;
    const applying = new Promise<void>((resolve) => (entered = resolve));
    const runtime = new TesseractRuntime({ ...polynomial, apply: async (inputs: unknown) => (entered(), await gate, polynomial.apply(inputs)) }, path.dirname(POLYNOMIAL));
    const busy = await startServer({ tesseract: runtime, port: 0, httpPort: 0, workers: 0, limits: { maxJobs: 1, maxQueue: 0 }, logger: silentLogger });
    try {
      const url = `http://127.0.0.1:${busy.httpPort}`;
      const request = (inputs: Json) => ({ inputs, jac_inputs: ["x"], jac_outputs: ["f"] });
      const good = { x: arr([0.1, 0.2], [2]), y: arr([0.5], []) };
      // The only job slot, held at the gate.
      const first = post(url, "jacobian", request(good));
      await applying;
      for (const [inputs, loc, msg] of [
        [{ ...good, nope: 1 }, ["body", "inputs", "nope"], /^inputs\.nope is not a field of Inputs/],
        [{ ...good, x: null }, ["body", "inputs", "x"], /^Value error, inputs\.x is null, expected an array object/],
        [{ ...good, x: { shape: [2], dtype: "float64", data: { buffer: "AAAA", encoding: "base64" } } }, ["body", "inputs", "x"], /data has 3 bytes/],
      ] as const) {
        const refused = await post(url, "jacobian", request(inputs));
        assert.equal(refused.status, 422, refused.text);
        assert.deepEqual(refused.json.detail[0].loc, loc);
        assert.match(refused.json.detail[0].msg, msg);
      }
      const full = await post(url, "jacobian", request(good));
      assert.deepEqual([full.status, full.json.detail], [429, "1 gradient jobs are running and 0 waiting, the most this server takes (--max-jobs 1, --max-queue 0); retry in a few seconds"]);
      open();
      assert.equal((await first).status, 200);
    } finally {
      open();
      await busy.close();
    }
  });

  it("a cotangent of another shape than its output is located at its key, a map output's path included (cotangent_vector.{named.{k}} was located at the body)", async () => {
    const inputs = { x: arr([0.5, -1, 2, 0.25], [4]), y: arr([0.7], []), params: { k: arr([1, 2], [2]) } };
    for (const [key, shape, expected] of [["named.{k}", [2, 1], [2]], ["f", [1, 4], [4]], ["g", [1], []]] as const) {
      const size = shape.reduce((a: number, b: number) => a * b, 1);
      const { status, json } = await post(base(poly), "vector_jacobian_product", { inputs, vjp_inputs: ["x"], vjp_outputs: [key], cotangent_vector: { [key]: arr(new Array(size).fill(1), [...shape], "float64", "json") } });
      assert.equal(status, 422, JSON.stringify(json));
      assert.deepEqual([json.detail[0].loc, json.detail[0].msg, json.detail[0].input.shape], [["body", "cotangent_vector", key], `Value error, cotangent_vector.{${key}} has shape [${shape.join(", ")}], expected [${expected.join(", ")}] like the output`, shape]);
    }
  });

  it("answers bad input with 422 and a located detail", async () => {
    const cases: [string, Json, (string | number)[], RegExp][] = [
      ["apply", { inputs: { mesh: { ...meshInputs().mesh, cell_connectivity: { shape: [N], dtype: "int64", data: { buffer: [0, 1, 2 ** 40, 3], encoding: "json" } } } } }, ["body", "inputs", "mesh", "cell_connectivity"], /has "1099511627776" at flat index 2 \(dtype int64\), which the declared dtype int32 cannot hold/],
      ["apply", {}, ["body", "inputs"], /Field required/],
      ["apply", { inputs: { mesh: { ...meshInputs().mesh, n_points: "four" } } }, ["body", "inputs", "mesh", "n_points"], /expected an integer/],
      ["apply", { inputs: { nope: 1 } }, ["body", "inputs", "nope"], /not a field of Inputs/],
      ["apply", { inputs: { mesh: { ...meshInputs().mesh, cell_connectivity: { shape: [N], dtype: "int32", data: { buffer: [0, 1, 2, 2 ** 40], encoding: "json" } } } } }, ["body", "inputs", "mesh", "cell_connectivity", "data", "buffer"], /element 3 is 1099511627776, which dtype int32 cannot hold/],
      ["apply", { inputs: { mesh: { ...meshInputs().mesh, points: { shape: [N, 3], dtype: "float64", data: { buffer: "AAAA", encoding: "base64" } } } } }, ["body", "inputs", "mesh", "points"], /data has 3 bytes/],
      // One character past whole bytes: Node's decoder dropped it (200), Python's refuses it.
      ["apply", { inputs: { mesh: { ...meshInputs().mesh, points: { shape: [N, 3], dtype: "float64", data: { buffer: Buffer.alloc(24 * N).toString("base64") + "A", encoding: "base64" } } } } }, ["body", "inputs", "mesh", "points", "data", "buffer"], new RegExp(`is not valid base64: its ${32 * N + 1} characters are 1 more than a multiple of 4$`)],
      ["jacobian", { inputs: meshInputs(), jac_inputs: ["mesh.nope"], jac_outputs: ["statistics.barycenter"] }, ["body", "jac_inputs"], /does not exist/],
      // An element of an array named with its index: located at the array (it was the body).
      ["jacobian", { inputs: { mesh: { ...meshInputs().mesh, points: { shape: [N, 3], dtype: "float64", data: { buffer: Buffer.from(new Float64Array(3 * N).fill(NaN).buffer).toString("base64"), encoding: "base64" } } } }, jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"] }, ["body", "inputs", "mesh", "points"], /^Value error, mesh\.points\[0, 0\] is NaN: finite differences need finite inputs$/],
      ["jacobian", { inputs: meshInputs(), jac_inputs: [], jac_outputs: ["statistics.barycenter"] }, ["body", "jac_inputs"], /^Value error, jac_inputs must NOT have fewer than 1 items$/],
      ["jacobian", { inputs: meshInputs(), jac_inputs: ["mesh.points", "mesh.points"], jac_outputs: ["statistics.barycenter"] }, ["body", "jac_inputs"], /jac_inputs: input path "mesh\.points" is listed more than once$/],
      ["jacobian", { inputs: meshInputs(), jac_inputs: "mesh.points", jac_outputs: ["statistics.barycenter"] }, ["body", "jac_inputs"], /^Value error, jac_inputs must be a list$/],
      ["apply", { inputs: [1] }, ["body", "inputs"], /^Value error, inputs must be an object$/],
      // The field is named in the message too (ajv's "must be string" named none).
      ["jacobian", { inputs: meshInputs(), jac_inputs: ["mesh.points", 3], jac_outputs: ["statistics.barycenter"] }, ["body", "jac_inputs", 1], /^Value error, jac_inputs.\[1\] must be a string$/],
      ["jacobian_vector_product", { inputs: meshInputs(), jvp_inputs: ["mesh.points"], jvp_outputs: ["statistics.barycenter"], tangent_vector: { "mesh.points": [1] } }, ["body", "tangent_vector", "mesh.points"], /^Value error, tangent_vector.\{mesh.points\} must be an array object \{"shape", "dtype", "data"\}$/],
      // The vectors as a list of arrays, as a jvp_inputs-ordered list might be sent: said to be keyed by path.
      ["vector_jacobian_product", { inputs: meshInputs(), vjp_inputs: ["mesh.points"], vjp_outputs: ["statistics.barycenter"], cotangent_vector: [[1, 0, 0]] }, ["body", "cotangent_vector"], /^Value error, cotangent_vector must be an object of array objects by path$/],
      ["apply", [], ["body"], /^Value error, the body must be an object$/],
      // Caller text quoted and clipped with its length (a 5 000-character dtype was cut at 40 characters, inside its quotes).
      ["apply", { inputs: { mesh: { ...meshInputs().mesh, points: { shape: [N, 3], dtype: "f".repeat(5000), data: { buffer: "", encoding: "base64" } } } } }, ["body", "inputs", "mesh", "points", "dtype"], /is "f{200}"… \(5000 characters\); expected one of /],
      ["apply", { inputs: { mesh: { ...meshInputs().mesh, points: { shape: [N, 3], dtype: "float64", data: { buffer: [1, "x".repeat(5000), ...new Array(10).fill(0)], encoding: "json" } } } } }, ["body", "inputs", "mesh", "points", "data", "buffer"], /element 1 is "x{200}"… \(5000 characters\), expected a number/],
      // A key that is no plain name is quoted and clipped (a 5 000-character key was echoed whole, up to the message cap).
      ["apply", { inputs: { ["k".repeat(5000)]: 1 } }, ["body", "inputs"], /^inputs: "k{200}"… \(5000 characters\) is not a field of Inputs; fields: mesh, fd_algorithm$/],
      ["jacobian", { inputs: meshInputs(), jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"], options: { "bad\nkey": 1 } }, ["body", "options", "bad\nkey"], /options: "bad\\nkey" is not an option; options: /],
      ["apply", { inputs: meshInputs(), ["x".repeat(5000)]: 1 }, ["body", `${"x".repeat(200)}… (5000 characters)`], /Extra inputs are not permitted/],
    ];
    for (const [endpoint, body, loc, msg] of cases) {
      const { status, json } = await post(base(mesh), endpoint, body);
      assert.equal(status, 422, JSON.stringify(json));
      const entry = json.detail[0];
      assertPydanticEntry(entry);
      assert.deepEqual(entry.loc, loc, JSON.stringify(entry));
      assert.match(entry.msg, msg);
      // pydantic's types where it has them (they were value_error).
      if (/not a field of/.test(entry.msg)) assert.equal(entry.type, "extra_forbidden");
    }
    const list = await post(base(mesh), "apply", { inputs: [1] });
    assert.deepEqual(list.json, { detail: [{ type: "value_error", loc: ["body", "inputs"], msg: "Value error, inputs must be an object", input: [1], ctx: { error: "inputs must be an object" } }] });
    const res = await fetch(`${base(mesh)}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
    assert.equal(res.status, 422);
    assertPydanticEntry(((await res.json()) as { detail: Json[] }).detail[0]);
    // Bodies nested 100 000 deep, where and however they are: 422, never a stack overflow's 500.
    const deep = (open: string, close: string, inner = "1") => open.repeat(100_000) + inner + close.repeat(100_000);
    for (const body of [`{"inputs":${deep("[", "]", "")}}`, `{"inputs":{"mesh":${deep("[", "]", "")}}}`, `{"inputs":{"mesh":${deep('{"a":', "}")}}}`]) {
      const r = await fetch(`${base(mesh)}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body });
      assert.equal(r.status, 422, await r.clone().text());
      assert.match(((await r.json()) as { detail: { msg: string }[] }).detail[0].msg, /nested more than 100 deep|must be an object/);
    }
  });

  it("a body of many errors is answered with the first 100 and a count of the rest (200 000 extra keys were answered with 18 MB of entries)", async () => {
    const body = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 1]));
    const { status, json } = await post(base(mesh), "apply", body);
    assert.equal(status, 422);
    const detail = json.detail as Json[];
    assert.equal(detail.length, 101);
    assert.deepEqual(detail[0], { type: "missing", loc: ["body", "inputs"], msg: "Field required" });
    assert.deepEqual(detail[99], { type: "extra_forbidden", loc: ["body", "k98"], msg: "Extra inputs are not permitted" });
    assert.deepEqual(detail[100], { type: "value_error", loc: ["body"], msg: "Value error, 201 more errors not listed: the first 100 are", ctx: { error: "201 more errors not listed: the first 100 are" } });
    detail.forEach(assertPydanticEntry);
  });

  it("an envelope of a million errors makes entries for the first 100 only (ajv made one per error and fastify joined them into one message: 12 s of the event loop for 3 million); no body is pydantic's missing body", async () => {
    const { status, json } = await post(base(mesh), "jacobian", { inputs: meshInputs(), jac_inputs: new Array(1_000_000).fill(0), jac_outputs: ["statistics.barycenter"] });
    assert.equal(status, 422);
    const detail = json.detail as Json[];
    assert.equal(detail.length, 101);
    const error = "jac_inputs.[99] must be a string";
    assert.deepEqual(detail[99], { type: "value_error", loc: ["body", "jac_inputs", 99], msg: `Value error, ${error}`, input: 0, ctx: { error } });
    assert.equal(detail[100].msg, "Value error, 999900 more errors not listed: the first 100 are");
    const none = await fetch(`${base(mesh)}/apply`, { method: "POST" });
    assert.equal(none.status, 422);
    assert.deepEqual(await none.json(), { detail: [{ type: "missing", loc: ["body"], msg: "Field required" }] });
  });

  it("reads JSON bodies strictly: __proto__ is an ordinary key, invalid UTF-8 is refused naming the byte", async () => {
    const raw = (body: string | Buffer) => fetch(`${base(poly)}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const [x, y, k] = [arr([1, 2], [2], "float64", "json"), arr([0.5], []), arr([3], [1])].map((a) => JSON.stringify(a));
    // Written as text: a JavaScript object literal would take "__proto__" as its prototype.
    const asKey = await raw(`{"inputs": {"x": ${x}, "y": ${y}, "params": {"__proto__": ${k}}, "mode": ""}}`);
    assert.equal(asKey.status, 200, await asKey.clone().text());
    const named = ((await asKey.json()) as Json).named;
    assert.ok(Object.hasOwn(named, "__proto__"));
    assertClose(values(named["__proto__"]), [27], 1e-12);
    const envelope = await raw(`{"inputs": {"x": ${x}, "y": ${y}}, "__proto__": {"polluted": true}}`);
    assert.equal(envelope.status, 422);
    assert.deepEqual(((await envelope.json()) as Json).detail[0], { type: "extra_forbidden", loc: ["body", "__proto__"], msg: "Extra inputs are not permitted" });
    assert.equal(({} as Json).polluted, undefined);
    // A compressed body is refused naming its encoding (it was "not valid UTF-8: decoding fails at byte 1").
    const gzipped = await fetch(`${base(poly)}/apply`, { method: "POST", headers: { "content-type": "application/json", "content-encoding": "gzip" }, body: gzipSync(`{"inputs": {"x": ${x}, "y": ${y}}}`) });
    assert.equal(gzipped.status, 415);
    assert.deepEqual(await gzipped.json(), { detail: 'the body has Content-Encoding "gzip", which this server does not decode: send it uncompressed' });
    const identity = await fetch(`${base(poly)}/apply`, { method: "POST", headers: { "content-type": "application/json", "content-encoding": "identity" }, body: `{"inputs": {"x": ${x}, "y": ${y}, "params": {}, "mode": ""}}` });
    assert.equal(identity.status, 200, await identity.clone().text());
    const head = Buffer.from(`{"inputs": {"x": ${x}, "y": ${y}, "params": {"k`);
    const invalid = await raw(Buffer.concat([head, Buffer.from([0xff]), Buffer.from(`": ${k}}}}`)]));
    assert.equal(invalid.status, 422);
    const entry = ((await invalid.json()) as Json).detail[0];
    assert.deepEqual([entry.type, entry.loc], ["json_invalid", ["body"]]);
    assert.equal(entry.msg, `the body is not valid UTF-8: decoding fails at byte ${head.length} (0xff); JSON is read as UTF-8 only`);
  });

  it("a body sent with a transfer coding besides chunked is refused naming it, 501 as HTTP/1.1 says (gzip, chunked was read still compressed: 422 'not valid UTF-8 at byte 1')", async () => {
    const body = `{"inputs": {"a": ${JSON.stringify(arr([1, 2], [2]))}, "b": ${JSON.stringify(arr([3, 4], [2]))}}}`;
    const send = (transferEncoding: string, bytes: Buffer) =>
      new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
        const request = http.request(`${base(vec)}/apply`, { method: "POST", headers: { "content-type": "application/json", "transfer-encoding": transferEncoding } }, (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () => resolve({ status: res.statusCode!, type: String(res.headers["content-type"]), text }));
        });
        request.on("error", reject).end(bytes);
      });
    for (const coding of ["gzip, chunked", "deflate,chunked", "br , chunked"]) {
      const refused = await send(coding, gzipSync(body));
      assert.deepEqual(refused, { status: 501, type: "text/plain; charset=utf-8", text: `the body has Transfer-Encoding ${JSON.stringify(coding)}, which this server does not decode: send it with Transfer-Encoding: chunked alone, or a Content-Length` });
    }
    // chunked alone, or with identity, is read as it is.
    for (const coding of ["chunked", "identity, chunked"]) {
      const taken = await send(coding, Buffer.from(body));
      assert.equal(taken.status, 200, taken.text);
      assert.deepEqual(values(JSON.parse(taken.text).result), [4, 6]);
    }
  });

  it("answers a failing apply with 500 and text, differences that cannot be taken with 422, an unknown endpoint with 404", async () => {
    const inputs = { x: arr([1], [1]), y: arr([0.9], []), mode: "throw" };
    const { status, text } = await post(base(poly), "apply", { inputs });
    assert.equal(status, 500);
    assert.match(text, /y is too large/);
    assert.equal((await post(base(poly), "abstract_eval", { inputs })).status, 404);
    // Differences that cannot be taken at these inputs (apply is NaN past x = 1): the caller's to change, 422 as gRPC's FAILED_PRECONDITION.
    const edge = await post(base(poly), "jacobian", { inputs: { x: arr([1], [1]), y: arr([0.2], []), mode: "nan" }, jac_inputs: ["x"], jac_outputs: ["f"] });
    assert.equal(edge.status, 422);
    const [entry] = JSON.parse(edge.text).detail;
    assert.deepEqual([entry.type, entry.loc], ["value_error", ["body"]]);
    assert.equal(entry.msg, "Value error, evaluation at x[0] + h failed: apply returned NaN in output f at flat index 0");
    // FastAPI's 404 body; a body without a Content-Type is JSON, as FastAPI reads it; another type says what to send.
    const missing = await fetch(`${base(mesh)}/nope`);
    assert.deepEqual([missing.status, await missing.json()], [404, { detail: "Not Found" }]);
    // A path that is not valid percent-encoding names no route either (it was fastify's 400, echoing the URL).
    for (const path of ["apply%", "%zz", `apply%${"x".repeat(5000)}`]) {
      const bad = await fetch(`${base(mesh)}/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      assert.deepEqual([bad.status, await bad.json()], [404, { detail: "Not Found" }], path.slice(0, 20));
    }
    // A served path under another method: FastAPI's 405, with what is allowed.
    for (const [method, path, allow] of [["GET", "apply", "POST"], ["PUT", "jacobian?eps=0.1", "POST"], ["POST", "health", "GET"], ["DELETE", "openapi.json", "GET"]]) {
      const wrong = await fetch(`${base(mesh)}/${path}`, { method });
      assert.deepEqual([wrong.status, wrong.headers.get("allow"), await wrong.json()], [405, allow, { detail: "Method Not Allowed" }], `${method} /${path}`);
    }
    // HEAD too, on GET routes as on POST ones: FastAPI's GET routes do not answer it (it was 200).
    for (const [path, allow] of [["health", "GET"], ["openapi.json", "GET"], ["apply", "POST"]]) {
      const head = await fetch(`${base(mesh)}/${path}`, { method: "HEAD" });
      assert.deepEqual([head.status, head.headers.get("allow"), await head.text()], [405, allow, ""], `HEAD /${path}`);
    }
    // Routed before any body is read, as FastAPI does: a body that is no JSON, or of another type, changes nothing.
    for (const [method, path, type, body, expected] of [["PUT", "health", "application/json", "", 405], ["DELETE", "apply", "application/json", "{", 405], ["POST", "nope", "application/json", '{"a":', 404], ["POST", "nope", "text/plain", "x", 404]] as const) {
      const answer = await fetch(`${base(mesh)}/${path}`, { method, headers: { "content-type": type }, body });
      assert.equal(answer.status, expected, `${method} /${path} with ${JSON.stringify(body)}`);
    }
    const untyped = await fetch(`${base(mesh)}/apply`, { method: "POST", body: new TextEncoder().encode(JSON.stringify({ inputs: meshInputs() })) });
    assert.equal(untyped.status, 200, await untyped.clone().text());
    const form = await fetch(`${base(mesh)}/apply`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: JSON.stringify({ inputs: meshInputs() }) });
    assert.deepEqual([form.status, await form.json()], [415, { detail: 'the body must be JSON: send Content-Type: application/json (got "application/x-www-form-urlencoded")' }]);
    const plain = await fetch(`${base(mesh)}/apply`, { method: "POST", headers: { "content-type": "text/plain" }, body: JSON.stringify({ inputs: meshInputs() }) });
    assert.deepEqual([plain.status, await plain.json()], [415, { detail: 'the body must be JSON: send Content-Type: application/json (got "text/plain")' }]);
    const malformed = await fetch(`${base(mesh)}/apply`, { method: "POST", headers: { "content-type": ";charset=utf-8" }, body: JSON.stringify({ inputs: meshInputs() }) });
    assert.deepEqual([malformed.status, await malformed.json()], [415, { detail: 'the body must be JSON: send Content-Type: application/json (got ";charset=utf-8")' }]);
    // application/<x>+json is JSON, as FastAPI reads it (it was a 415); an empty Content-Type is none.
    for (const type of ["application/vnd.api+json", "application/problem+json; charset=utf-8", "application/vnd.a+b+json", "application/+json", "", "   "]) {
      const suffixed = await fetch(`${base(mesh)}/apply`, { method: "POST", headers: { "content-type": type }, body: JSON.stringify({ inputs: meshInputs() }) });
      assert.equal(suffixed.status, 200, `${type}: ${await suffixed.clone().text()}`);
    }
  });

  it("a proto2 schema: an enum field's default is its first value, or the one declared; an input echoed as an output is answered (0, no value of the enum, was INTERNAL)", async () => {
    const server = await startServer({ tesseract: path.join(__dirname, "../../test/fixtures/closed-enums/settings.js"), port: 0, httpPort: 0, workers: 0, logger: silentLogger });
    try {
      const u = { shape: [1], dtype: "float64", data: { buffer: [1.5], encoding: "json" } };
      const answer = await fetch(`${base(server)}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ inputs: { u, palette: { a: "GREEN" } } }) });
      assert.equal(answer.status, 200, await answer.clone().text());
      assert.deepEqual(await answer.json(), { u: { object_type: "array", shape: [1], dtype: "float64", data: { buffer: [3], encoding: "json" } }, color: "RED", tint: "GREEN", steps: 7, palette: { a: "GREEN" } });
      const doc = (await (await fetch(`${base(server)}/openapi.json`)).json()) as Json;
      const properties = doc.components.schemas.Apply_InputSchema.properties;
      assert.deepEqual([properties.color.default, properties.tint.default, properties.steps.default], ["RED", "GREEN", 7]);
    } finally {
      await server.close();
    }
  });

  it("serves /openapi.json in tesseract-core's shape", async () => {
    const doc = (await (await fetch(`${base(mesh)}/openapi.json`)).json()) as Json;
    assert.equal(doc.openapi, "3.1.0");
    assert.deepEqual(doc.info.title, "meshstats");
    assert.deepEqual(doc.info.version, "1.0.0");
    assert.deepEqual(Object.keys(doc.paths).sort(), ["/abstract_eval", "/apply", "/health", "/jacobian", "/jacobian_vector_product", "/vector_jacobian_product"]);
    const s = doc.components.schemas;
    assert.deepEqual(s.ApplyInputSchema.properties.inputs, { $ref: "#/components/schemas/Apply_InputSchema" });
    // points declare their datatype ((tesseract.v1.datatype) in mesh.proto): reported as tesseract-core reports a dtype.
    assert.deepEqual(s.ApplyInputSchema.differentiable_arrays, { "mesh.points": { shape: null, dtype: "float64" } });
    assert.deepEqual(s.ApplyOutputSchema.differentiable_arrays, { "statistics.first_point_coordinates": { shape: null, dtype: null }, "statistics.barycenter": { shape: null, dtype: null } });
    assert.deepEqual(s.ApplyInputSchema.field_order[""], ["mesh", "fd_algorithm"]);
    assert.deepEqual(s.ApplyInputSchema.field_order.mesh, ["n_points", "n_cells", "points", "num_points_per_cell", "cell_connectivity", "cell_data", "point_data"]);
    const meshModel = s.Apply_VolumetricMeshData;
    assert.deepEqual(meshModel.properties.points.array_flags, ["DIFFERENTIABLE"]);
    assert.deepEqual(meshModel.properties.cell_connectivity.array_flags, []);
    assert.equal(meshModel.properties.cell_data.type, "object");
    assert.deepEqual(meshModel.properties.cell_data.additionalProperties.array_flags, []);
    assert.equal(meshModel.properties.n_points.type, "integer");
    assert.ok(s.Apply_InputSchema.properties.fd_algorithm.enum.includes("ALGORITHM_CENTRAL"));
    assert.ok(s.Jacobian_InputSchema && s.Jvp_InputSchema && s.Vjp_InputSchema && s.AbstractEval_InputSchema);
    // abstract_eval's arrays are shapes and dtypes (its schemas required data: the requests it takes and its own answers failed them).
    const abstractMesh = s.AbstractEval_VolumetricMeshData.properties;
    assert.deepEqual([abstractMesh.points.required, "data" in abstractMesh.points.properties], [["shape", "dtype"], false]);
    assert.deepEqual([abstractMesh.cell_data.additionalProperties.required, "data" in abstractMesh.cell_data.additionalProperties.properties], [["shape", "dtype"], false]);
    assert.deepEqual(meshModel.properties.points.required, ["shape", "dtype", "data"]);
    const polyDoc = (await (await fetch(`${base(poly)}/openapi.json`)).json()) as Json;
    assert.ok(!("/abstract_eval" in polyDoc.paths));
    assert.equal(polyDoc.components.schemas.Apply_InputSchema.properties.blocks.type, "array");
    assert.deepEqual(polyDoc.components.schemas.ApplyInputSchema.differentiable_arrays, { x: { shape: null, dtype: null }, y: { shape: null, dtype: null }, "params.{}": { shape: null, dtype: null }, "blocks.[].w": { shape: null, dtype: null } });
    // Gradient paths enumerated as tesseract-core does: a path as a const, a pattern as the regular expression of its paths (they were mere examples).
    const paths = polyDoc.components.schemas.JacobianInputSchema.properties.jac_inputs.items.anyOf as Json[];
    assert.deepEqual(paths.slice(0, 2), [{ const: "x" }, { const: "y" }]);
    // A pattern matches itself (a request may name it) or its concrete paths.
    assert.deepEqual(paths.slice(2).map((p) => (p.anyOf as Json[])[0]), [{ const: "params.{}" }, { const: "blocks.[].w" }]);
    const [params, blocks] = paths.slice(2).map((p) => new RegExp((p.anyOf as Json[])[1].pattern as string));
    for (const good of ["params.{k}", "params.{a\\}b}", 'params.{""}']) assert.ok(params.test(good), good);
    for (const bad of ["params.{}", "params.{k}.x", "params", "xparams.{k}"]) assert.ok(!params.test(bad), bad);
    for (const good of ["blocks.[0].w", "blocks.[12].w"]) assert.ok(blocks.test(good), good);
    for (const bad of ["blocks.[].w", "blocks.[01].w", "blocks.[0]"]) assert.ok(!blocks.test(bad), bad);
  });

  it("Python's NaN, Infinity and -Infinity literals (json.dumps writes them, FastAPI reads them) are read as numbers: a NaN input is refused at its element, not as invalid JSON", async () => {
    const points = Array.from({ length: 3 * N }, (_, i) => (i === 4 ? "NaN" : i === 5 ? "-Infinity" : String(POINTS[i])));
    const body = JSON.stringify({ inputs: meshInputs("json") }).replace(/"buffer":\[[^\]]*\]/, `"buffer": [${points.join(", ")}]`);
    assert.ok(body.includes("NaN, -Infinity"), body.slice(0, 300));
    const res = await fetch(`${base(mesh)}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body });
    assert.equal(res.status, 422);
    const [entry] = ((await res.json()) as Json).detail;
    assert.deepEqual(entry.loc, ["body", "inputs", "mesh", "points", "data", "buffer"]);
    assert.match(entry.msg, /NaN/);
    // Not a literal: still invalid JSON, the position in the caller's text.
    const bad = await fetch(`${base(mesh)}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"inputs": NaNa}' });
    const [invalid] = ((await bad.json()) as Json).detail;
    assert.deepEqual([bad.status, invalid.type], [422, "json_invalid"]);
    assert.match(invalid.msg, /^JSON decode error: Unexpected token 'N', "\{"inputs": NaNa\}" is not valid JSON$/);
    // A literal where a key belongs is no JSON either (it was taken, its key answered as the server's marker string).
    const key = await fetch(`${base(mesh)}/apply`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"inputs": {NaN: 1}}' });
    const [keyEntry] = ((await key.json()) as Json).detail;
    assert.deepEqual([key.status, keyEntry.type, keyEntry.msg], [422, "json_invalid", "JSON decode error: Expected property name or '}' in JSON at position 12"]);
  });

  it("a turn between a request's steps lets a new connection's request in, which takes two polls: to accept it and to read it (one setImmediate let none in from the poll phase, and only the accept from another)", async () => {
    let served = 0;
    const server = http.createServer((_request, response) => {
      served++;
      response.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const sent = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "turn-")), "sent");
    const { port } = server.address() as net.AddressInfo;
    // A probe from another process, whose request arrives while this one holds the event loop (as a big body's step does).
    const probe = spawn(process.execPath, ["-e", `const s = require("net").connect(${port}, "127.0.0.1", () => s.write("GET /health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", () => require("fs").writeFileSync(${JSON.stringify(sent)}, ""))); s.on("data", () => s.end());`]);
    try {
      for (const end = Date.now() + 20_000; !fs.existsSync(sent); ) assert.ok(Date.now() < end, "the probe sent its request");
      assert.equal(served, 0);
      await otherCallsTurn();
      assert.equal(served, 1, "the request was read during the turn");
    } finally {
      probe.kill();
      server.close();
    }
  });

  it("an x-request-id with a byte past ASCII is replaced, not answered 500 (grpc-js's metadata threw on it)", async () => {
    const inputs = { a: arr([1], [1]), b: arr([2], [1]) };
    const { status, text } = await post(base(vec), "apply", { inputs }, { "x-request-id": "caf\u00e9-1" });
    assert.equal(status, 200, text);
  });

  it("requires the bearer token when tokens are configured (health exempt)", async () => {
    const server = await startServer({ tesseract: "vectoradd", port: 0, httpPort: 0, tokens: ["s3cret"], logger: silentLogger });
    try {
      const url = `http://127.0.0.1:${server.httpPort}`;
      const inputs = { a: arr([1], [1]), b: arr([2], [1]) };
      // The path decides, not the query string or a trailing slash (`/health?probe=1` asked for a token).
      for (const health of ["/health", "/health?probe=1", "/health/"]) assert.equal((await fetch(`${url}${health}`)).status, 200, health);
      assert.equal((await fetch(`${url}/openapi.json?x=/health`)).status, 401);
      const refused = await post(url, "apply", { inputs });
      assert.equal(refused.status, 401);
      assert.match(refused.json.detail, /bearer token/);
      assert.equal((await post(url, "apply", { inputs }, { authorization: "Bearer wrong" })).status, 401);
      assert.equal((await fetch(`${url}/openapi.json`)).status, 401);
      const ok = await post(url, "apply", { inputs }, { authorization: "Bearer s3cret" });
      assert.equal(ok.status, 200, ok.text);
      // `/apply/` is `/apply`, as FastAPI's redirect makes it (it was a 404).
      const slashed = await post(url, "apply/", { inputs }, { authorization: "Bearer s3cret" });
      assert.deepEqual([slashed.status, slashed.json], [200, ok.json]);
    } finally {
      await server.close();
    }
  });

  it("serves TLS with the server's certificate", async () => {
    const tlsDir = path.join(__dirname, "../../test/fixtures/tls");
    const read = (f: string) => fs.readFileSync(path.join(tlsDir, f));
    const server = await startServer({ tesseract: "vectoradd", port: 0, httpPort: 0, tls: { cert: read("server.crt"), key: read("server.key") }, logger: silentLogger });
    try {
      const https = await import("node:https");
      const body = await new Promise<string>((resolve, reject) => {
        https.get({ host: "127.0.0.1", port: server.httpPort, path: "/health", ca: read("ca.crt"), servername: "localhost" }, (res) => {
          let text = "";
          res.on("data", (c) => (text += c));
          res.on("end", () => resolve(text));
        }).on("error", reject);
      });
      assert.deepEqual(JSON.parse(body), { status: "ok" });
    } finally {
      await server.close();
    }
  });

  it("over TLS, a connection whose handshake never finishes (nothing sent, or half a ClientHello) does not hold the server's close (it did for Node's handshake timeout, 2 minutes)", async () => {
    const tlsDir = path.join(__dirname, "../../test/fixtures/tls");
    const read = (f: string) => fs.readFileSync(path.join(tlsDir, f));
    const server = await startServer({ tesseract: "vectoradd", port: 0, httpPort: 0, workers: 0, warmUpMs: 0, tls: { cert: read("server.crt"), key: read("server.key") }, logger: silentLogger });
    const net = await import("node:net");
    const sockets = [Buffer.alloc(0), Buffer.from([0x16, 0x03, 0x01])].map((bytes) => {
      const socket = net.connect(server.httpPort!, "127.0.0.1", () => socket.write(bytes));
      socket.on("error", () => {});
      return socket;
    });
    const closed = sockets.map((socket) => new Promise((resolve) => socket.on("close", resolve)));
    await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once("connect", resolve))));
    // The server has the connections (its health answers after them, on a connection of its own).
    const https = await import("node:https");
    await new Promise((resolve, reject) => https.get({ host: "127.0.0.1", port: server.httpPort, path: "/health", ca: read("ca.crt"), servername: "localhost" }, (res) => res.resume().on("end", resolve)).on("error", reject));
    await server.close(0);
    await Promise.all(closed);
  });

  it("fastify's inject sends cookies with the cookie version pinned for Node 20 (light-my-request 6.6.0)", async () => {
    const app = Fastify();
    app.get("/echo", async (request) => ({ cookie: request.headers.cookie }));
    const res = await app.inject({ method: "GET", url: "/echo", cookies: { session: "a b", other: "1" } });
    assert.deepEqual(res.json(), { cookie: "session=a%20b; other=1" });
    await app.close();
  });

  it("serve --http-port (or TESSERACT_GRPC_HTTP_PORT) keeps the one stdout line and answers on the port", async () => {
    const free = await freePort();
    const served = await serveProcess(["vectoradd", "--port", "0"], { ...process.env, TESSERACT_GRPC_HTTP_PORT: String(free) });
    try {
      const res = await fetch(`http://127.0.0.1:${free}/health`);
      assert.deepEqual(await res.json(), { status: "ok" });
      assert.deepEqual(served.stdoutLines, [`listening on ${served.address}`]);
    } finally {
      assert.equal(await served.stop(), 0);
    }
  });
});
