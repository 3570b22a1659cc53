/**
 * The typed SDK against real servers on 127.0.0.1:0: apply, Jacobian (exact evaluation counts,
 * analytic values), JVP, VJP, one request object reused by every gradient method, Describe (and its caching for type URLs), AbstractEval with abstract
 * tensors, health, and every failure as a TesseractClientError with the right code.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import ndarray from "ndarray";
import {
  JacobianResult,
  VectorProductResult,
  Algorithm,
  SparsityMode,
  assembleJacobian,
  DataType,
  TesseractClient,
  TesseractClientError,
  type AbstractArrays,
} from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { Inputs as VectorInputs, Outputs as VectorOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import vectoradd from "../server/tesseracts/vectoradd";
import meshstats from "../server/tesseracts/meshstats";
import { TesseractRuntime } from "../server/runtime";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { assertClose, clientRejects, f64, freePort, LogLines, meshJacobian } from "./helpers";
import { inSdkTerms } from "../client/errors";
import { reflectedClient } from "./fixtures/tesseract-core/bridge-clients";
import { coefficients, type SchemaSpec } from "./fixtures/mirror/mirror";
import { clientTypes, writeMirrorModule } from "./generated-schemas";

const MESH_IN = "tesseract.examples.meshstats.v1.Inputs";
const MESH_OUT = "tesseract.examples.meshstats.v1.Outputs";
const FIRST = "statistics.first_point_coordinates";
const BARY = "statistics.barycenter";

/** Awaits a rejection and checks it is a TesseractClientError with `code` and a message matching `message`. */
describe("SDK: TesseractClient", () => {
  let meshServer: RunningServer;
  let vectorServer: RunningServer;
  /** Type names from a (lazy, cached) Describe. */
  let mesh: TesseractClient<MeshInputs, MeshOutputs>;
  /** Type names given up front. */
  let vector: TesseractClient<VectorInputs, VectorOutputs>;

  const vectorLog = new LogLines();

  before(async () => {
    // Evaluation counts here are per request, without the evaluation cache (test/evaluation-cache.test.ts).
    meshServer = await startServer({ tesseract: "meshstats", host: "127.0.0.1", port: 0, evalCacheBytes: 0, logger: silentLogger });
    vectorServer = await startServer({ tesseract: "vectoradd", host: "127.0.0.1", port: 0, logger: vectorLog.logger });
    mesh = new TesseractClient<MeshInputs, MeshOutputs>(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs });
    vector = new TesseractClient<VectorInputs, VectorOutputs>(vectorServer.address, {
      inputs: VectorInputs,
      outputs: VectorOutputs,
      inputType: "tesseract.examples.vectoradd.v1.Inputs",
      outputType: "tesseract.examples.vectoradd.v1.Outputs",
    });
  });

  after(async () => {
    mesh?.close();
    vector?.close();
    await Promise.all([meshServer?.close(), vectorServer?.close()]);
  });

  describe("apply", () => {
    it("meshstats: the first point and the mean of the points, as FP64 ndarrays", async () => {
      const N = 7;
      const inputs = sampleMeshInputs(N);
      const outputs = await mesh.apply(inputs);
      const first = outputs.statistics!.first_point_coordinates!;
      const bary = outputs.statistics!.barycenter!;
      assert.ok(first.data instanceof Float64Array && bary.data instanceof Float64Array);
      assert.deepEqual(first.shape, [3]);
      assert.deepEqual(bary.shape, [3]);
      const points = inputs.mesh.points.data;
      assert.deepEqual(Array.from(first.data), [points[0], points[1], points[2]]);
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let i = 0; i < N; i++) sum += points[i * 3 + c];
        assert.ok(Math.abs(Number(bary.get(c)) - sum / N) <= 1e-12, `barycenter[${c}]`);
      }
    });

    it("vectoradd: s·a + b, with a strided (non-contiguous) ndarray input encoded row-major", async () => {
      const wide = ndarray(Float64Array.from([1, 99, 2, 99, 3, 99]), [3], [2]); // every other element: [1, 2, 3]
      const outputs = await vector.apply({ a: wide, b: f64([10, 20, 30]), s: ndarray(Float64Array.of(2), []), normalize: false });
      assert.deepEqual(outputs.result!.shape, [3]);
      assert.deepEqual(Array.from(outputs.result!.data as Float64Array), [12, 24, 36]);
    });
  });

  describe("jacobian", () => {
    const N = 7;
    const n = 3 * N;
    // meshstats declares its structure: N column groups of 3 (one element of each coordinate).
    for (const { name, algorithm, sparsity_mode, calls, groups } of [
      { name: "central", algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode: SparsityMode.SPARSITY_MODE_UNSPECIFIED, calls: 2 * N, groups: N },
      { name: "forward", algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: SparsityMode.SPARSITY_MODE_UNSPECIFIED, calls: N + 1, groups: N },
      { name: "central, dense", algorithm: Algorithm.ALGORITHM_CENTRAL, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE, calls: 2 * n, groups: n },
      { name: "forward, dense", algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE, calls: n + 1, groups: n },
    ]) {
      it(`meshstats, ${name}: ${calls} apply calls for both outputs, analytic values, (*out, *in) layout`, async () => {
        const { jacobian, stats } = await mesh.jacobian({ inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [FIRST, BARY], options: { algorithm, sparsity_mode } });
        assert.equal(stats.apply_calls, calls);
        assert.equal(stats.column_groups, groups);
        assert.equal(stats.sparsity_source, groups < n ? "tesseract" : "");
        assert.ok(stats.wall_seconds >= 0);
        assert.deepEqual(Object.keys(jacobian).sort(), [BARY, FIRST]);
        for (const output of [FIRST, BARY] as const) {
          const J = jacobian[output]["mesh.points"];
          assert.deepEqual(J.shape, [3, N, 3]);
          assert.ok(J.data instanceof Float64Array);
          assertClose(J.data, meshJacobian(N, output === FIRST ? "first_point_coordinates" : "barycenter"), 1e-8, output);
        }
      });
    }

    it("meshstats: the inputs' fd_algorithm picks the rule when the request does not (forward: groups + 1 calls)", async () => {
      const { stats } = await mesh.jacobian({ inputs: sampleMeshInputs(N, Algorithm.ALGORITHM_FORWARD), inputPaths: ["mesh.points"], outputPaths: [BARY] });
      assert.equal(stats.apply_calls, N + 1);
    });

    it("vectoradd (normalised): every block matches the shipped analytic Jacobian", async () => {
      const inputs = { a: f64([0.5, -1.25, 2, 0.75, 3]), b: f64([1, 0.5, -0.5, 2, -1]), s: ndarray(Float64Array.of(1.5), []), normalize: true };
      const { jacobian, stats } = await vector.jacobian({ inputs, inputPaths: ["a", "b", "s"], outputPaths: ["result"], options: { algorithm: Algorithm.ALGORITHM_CENTRAL } });
      assert.equal(stats.apply_calls, 2 * (5 + 5 + 1));
      const analytic = vectoradd.gradients!.jacobian!(inputs, ["a", "b", "s"], ["result"]);
      for (const input of ["a", "b", "s"]) {
        const J = jacobian.result[input];
        assert.deepEqual(J.shape, analytic.result[input].shape, input);
        assertClose(J.data, analytic.result[input].data, 1e-7, `d result / d ${input}`);
      }
    });
  });

  describe("call options", () => {
    it("a deadline that is no time is INVALID_ARGUMENT; Infinity, or one beyond what grpc-js can time, is none (it ended the process)", async () => {
      const inputs = { a: f64([1, 2]), b: f64([3, 4]), normalize: false };
      for (const deadline of [Infinity, 30 * 24 * 3600_000, new Date(Date.now() + 40 * 24 * 3600_000)]) {
        assert.deepEqual(Array.from((await vector.apply(inputs, { deadline })).result!.data as Float64Array), [4, 6], String(deadline));
      }
      for (const deadline of [NaN, new Date(NaN), "100" as unknown as number]) {
        await clientRejects(vector.apply(inputs, { deadline }), "INVALID_ARGUMENT", /^deadline is \S+( \S+)*: expected a Date or milliseconds from now$/);
      }
      // A stream too.
      const rows = vector.jacobianRows({ inputs, inputPaths: ["a"], outputPaths: ["result"] }, { deadline: NaN });
      await clientRejects((async () => { for await (const _ of rows); })(), "INVALID_ARGUMENT", /^deadline is NaN/);
    });
  });

  describe("inputs the Tesseract refuses", () => {
    it("vectoradd normalised at s·a + b = 0: every endpoint refuses them, as Apply does (central differences never evaluate f(x), and answered 1/eps)", async () => {
      const inputs = { a: f64([1.5, -2, 0.25]), b: f64([-3, 4, -0.5]), s: ndarray(Float64Array.of(2), []), normalize: true }; // b = -2 a
      const refused = /^normalize is set but s·a \+ b is the zero vector$/;
      await clientRejects(vector.apply(inputs), "INVALID_ARGUMENT", refused);
      await clientRejects(vector.jacobian({ inputs, inputPaths: ["a"], outputPaths: ["result"] }), "INVALID_ARGUMENT", refused);
      await clientRejects(vector.vjp({ inputs, inputPaths: ["a"], outputPaths: ["result"], cotangent: { result: f64([1, 0, 0]) } }), "INVALID_ARGUMENT", refused);
      await clientRejects(vector.jvp({ inputs, inputPaths: ["a"], outputPaths: ["result"], tangent: { a: f64([1, 0, 0]) } }), "INVALID_ARGUMENT", refused);
    });
  });

  describe("jvp and vjp", () => {
    const N = 5;
    const tangentValues = Float64Array.from({ length: N * 3 }, (_, k) => Math.cos(k + 0.5));

    it("jvp: J·v for both outputs in 2 apply calls", async () => {
      const { result, stats } = await mesh.jvp({ inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [FIRST, BARY], tangent: { "mesh.points": ndarray(tangentValues, [N, 3]) } });
      assert.equal(stats.apply_calls, 2);
      const mean = [0, 1, 2].map((c) => tangentValues.filter((_, k) => k % 3 === c).reduce((s, v) => s + v, 0) / N);
      assert.deepEqual(result[FIRST].shape, [3]);
      assertClose(result[FIRST].data, tangentValues.subarray(0, 3), 1e-8, "d first · v");
      assertClose(result[BARY].data, mean, 1e-8, "d barycenter · v");
    });

    it("vjp: uᵀ·J keyed by input path in 2 × (column groups) apply calls", async () => {
      const uFirst = f64([1, -2, 0.5]);
      const uBary = f64([3, 0.25, -1]);
      const { result, stats } = await mesh.vjp({ inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [FIRST, BARY], cotangent: { [FIRST]: uFirst, [BARY]: uBary }, options: { algorithm: Algorithm.ALGORITHM_CENTRAL } });
      assert.equal(stats.apply_calls, 2 * N);
      const g = result["mesh.points"];
      assert.deepEqual(g.shape, [N, 3]);
      const expected = Float64Array.from({ length: N * 3 }, (_, k) => (k < 3 ? uFirst.data[k] : 0) + uBary.data[k % 3] / N);
      assertClose(g.data, expected, 1e-8, "uᵀ J");
    });
  });

  describe("request objects", () => {
    it("one { inputs, inputPaths, outputPaths, options } serves jacobian, jacobianRows, jvp (+ tangent), vjp (+ cotangent) and checkGradients, against the analytic Jacobian", async () => {
      const inputs = { a: f64([0.5, -1.25, 2]), b: f64([1, 0.5, -0.5]), s: f64([1.5], []), normalize: true };
      const paths = ["a", "s"] as const;
      const request = { inputs, inputPaths: paths, outputPaths: ["result"] as const, options: { algorithm: Algorithm.ALGORITHM_CENTRAL } };
      // J[p] as (3 outputs) × (size of p), row-major.
      const J = vectoradd.gradients!.jacobian!(inputs, [...paths], ["result"]).result;
      const entry = (p: string, i: number, j: number) => J[p].data[i * (J[p].data.length / 3) + j];

      const { jacobian, stats } = await vector.jacobian(request);
      assert.equal(stats.apply_calls, 2 * (3 + 1));
      for (const p of paths) assertClose(jacobian.result[p].data, J[p].data, 1e-7, `d result / d ${p}`);
      assert.deepEqual((await assembleJacobian(vector.jacobianRows(request))).jacobian, jacobian);

      const tangent = { a: f64([0.3, -1, 2]), s: f64([0.7], []) };
      const jvp = await vector.jvp({ ...request, tangent });
      const Jv = [0, 1, 2].map((i) => paths.reduce((sum, p) => sum + tangent[p].data.reduce((t, v, j) => t + entry(p, i, j) * v, 0), 0));
      assertClose(jvp.result.result.data, Jv, 1e-7, "J·v");

      const cotangent = f64([2, -0.5, 1]);
      const vjp = await vector.vjp({ ...request, cotangent: { result: cotangent } });
      for (const p of paths) {
        const uJ = Array.from(J[p].data.subarray(0, J[p].data.length / 3), (_, j) => [0, 1, 2].reduce((sum, i) => sum + cotangent.data[i] * entry(p, i, j), 0));
        assertClose(vjp.result[p].data, uJ, 1e-7, `uᵀ·J w.r.t. ${p}`);
      }

      const check = await vector.checkGradients({ ...request, endpoints: ["jacobian", "jvp", "vjp"] });
      assert.equal(check.passed, true, JSON.stringify(check.checks));
      assert.deepEqual(check.checks.map((c) => `${c.endpoint} ${c.input_path}`).sort(), ["jacobian a", "jacobian s", "jvp a", "jvp s", "vjp a", "vjp s"]);
    });
  });

  describe("describe, abstractEval, health", () => {
    it("describe: names, message types, differentiable paths, defaults, endpoints", async () => {
      const d = await mesh.describe();
      assert.equal(d.name, "meshstats");
      assert.equal(d.version, "1.0.0");
      assert.match(d.description, /barycenter/);
      assert.equal(d.input_type, MESH_IN);
      assert.equal(d.output_type, MESH_OUT);
      assert.deepEqual(d.differentiable_inputs, ["mesh.points"]);
      assert.deepEqual([...d.differentiable_outputs].sort(), [BARY, FIRST]);
      assert.equal(d.defaults?.eps, 1e-6);
      assert.deepEqual([...d.endpoints].sort(), ["AbstractEval", "Apply", "Describe", "Jacobian", "JacobianRows", "JacobianVectorProduct", "VectorJacobianProduct"]);
    });

    it("the type names come from one Describe, made lazily and cached", async () => {
      const describe = meshServer.runtime.describe.bind(meshServer.runtime);
      let describes = 0;
      meshServer.runtime.describe = () => {
        describes++;
        return describe();
      };
      const client = new TesseractClient<MeshInputs, MeshOutputs>(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs });
      try {
        assert.equal(describes, 0, "no call before the first need");
        await client.apply(sampleMeshInputs(3));
        await client.jacobian({ inputs: sampleMeshInputs(3), inputPaths: ["mesh.points"], outputPaths: [BARY] });
        await client.abstractEval({ mesh: { ...sampleMeshInputs(3).mesh, points: { shape: [3, 3], datatype: DataType.DATA_TYPE_FP64 } }, fd_algorithm: 0 });
        assert.equal(describes, 1);
      } finally {
        client.close();
        meshServer.runtime.describe = describe;
      }
    });

    it("abstractEval: output shapes from abstract { shape, datatype } tensors", async () => {
      const inputs: AbstractArrays<MeshInputs> = {
        mesh: {
          n_points: 1000,
          n_cells: 1,
          points: { shape: [1000, 3], datatype: DataType.DATA_TYPE_FP64 },
          num_points_per_cell: { shape: [1], datatype: DataType.DATA_TYPE_FP64 },
          cell_connectivity: { shape: [1000], datatype: DataType.DATA_TYPE_INT32 },
          cell_data: {},
          point_data: {},
        },
        fd_algorithm: 0,
      };
      const outputs = await mesh.abstractEval(inputs);
      assert.deepEqual(outputs, [
        { path: FIRST, shape: [3], datatype: DataType.DATA_TYPE_FP64 },
        { path: BARY, shape: [3], datatype: DataType.DATA_TYPE_FP64 },
      ]);
      const vec = await vector.abstractEval({ a: { shape: [42], datatype: DataType.DATA_TYPE_FP32 }, b: { shape: [42], datatype: DataType.DATA_TYPE_FP32 }, normalize: false });
      assert.deepEqual(vec, [{ path: "result", shape: [42], datatype: DataType.DATA_TYPE_FP64 }]);
      // What Apply refuses, AbstractEval refuses too (it answered [3] for these).
      const int8 = { shape: [3], datatype: DataType.DATA_TYPE_INT8 };
      await clientRejects(vector.abstractEval({ a: { shape: [3], datatype: DataType.DATA_TYPE_FP64 }, b: { shape: [4], datatype: DataType.DATA_TYPE_FP64 }, normalize: false }), "INVALID_ARGUMENT", /^b has shape \[4\], expected \[3\] like a$/);
      await clientRejects(vector.abstractEval({ a: int8, b: int8, normalize: false }), "INVALID_ARGUMENT", /^a has datatype DATA_TYPE_INT8, expected DATA_TYPE_FP32 or DATA_TYPE_FP64$/);
      // A missing b is said to be missing (it read "b has shape [], expected [3]").
      await clientRejects(vector.abstractEval({ a: { shape: [3], datatype: DataType.DATA_TYPE_FP64 }, normalize: false }), "INVALID_ARGUMENT", /^b is missing: expected a tensor of shape \[3\] like a$/);
      // A dimension that is no whole number is refused naming the field (it was the encoder's "The number 1.5 cannot be converted to a BigInt").
      const f64Abstract = (shape: number[]) => ({ shape, datatype: DataType.DATA_TYPE_FP64 });
      await clientRejects(vector.abstractEval({ a: f64Abstract([1.5]), b: f64Abstract([3]), normalize: false }), "INVALID_ARGUMENT", /^inputs could not be encoded: a has shape \[1\.5\]: expected whole numbers ≥ 0$/);
    });

    it("health: SERVING for the server and the Tesseract service; NOT_FOUND for an unknown service", async () => {
      assert.equal(await mesh.health(), "SERVING");
      assert.equal(await mesh.health("tesseract.v1.Tesseract"), "SERVING");
      await clientRejects(mesh.health("no.such.Service"), "NOT_FOUND", /no\.such\.Service/);
    });
  });

  describe("errors", () => {
    it("a bad jac_inputs path: INVALID_ARGUMENT naming the path and the available ones", async () => {
      const error = await clientRejects(mesh.jacobian({ inputs: sampleMeshInputs(3), inputPaths: ["mesh.nope"], outputPaths: [BARY] }), "INVALID_ARGUMENT", /mesh\.nope/);
      assert.match(error.details, /mesh\.points/);
    });

    it("an enum option given by name from plain JavaScript: INVALID_ARGUMENT naming the field (it was INTERNAL, grpc-js's serializer)", async () => {
      const request = { inputs: sampleMeshInputs(3), inputPaths: ["mesh.points"], outputPaths: [BARY] };
      await clientRejects(mesh.jacobian({ ...request, options: { algorithm: "central" as never } }), "INVALID_ARGUMENT", /^options\.algorithm is "central": expected a value of its enum, a number \(Algorithm\.ALGORITHM_CENTRAL, exported by tesseract-grpc\/client\)$/);
      await clientRejects(mesh.vjp({ ...request, cotangent: { [BARY]: ndarray(new Float64Array(3), [3]) }, options: { sparsity_mode: "dense" as never } }), "INVALID_ARGUMENT", /^options\.sparsity_mode is "dense"/);
      // options: null, as a JSON request writes none, is the server's defaults (a TypeError from inside the SDK before).
      assert.equal((await mesh.jacobian({ ...request, options: null as never })).stats.column_groups, 3);
    });

    it("a count or seed that is no whole number ≥ 0 (they compile: number): INVALID_ARGUMENT naming the field (it was INTERNAL, grpc-js's serializer)", async () => {
      const request = { inputs: { a: f64([1, 2, 3]), b: f64([4, 5, 6]), s: f64([2], []), normalize: false }, inputPaths: ["a"], outputPaths: ["result"] };
      await clientRejects(vector.jacobian({ ...request, options: { num_samples: -1 } }), "INVALID_ARGUMENT", /^options\.num_samples is -1: expected a whole number from 0 to 2\^32 - 1$/);
      await clientRejects(vector.vjp({ ...request, cotangent: { result: f64([1, 1, 1]) }, options: { num_samples: 1.5 } }), "INVALID_ARGUMENT", /^options\.num_samples is 1\.5:/);
      await clientRejects(vector.jvp({ ...request, tangent: { a: f64([1, 1, 1]) }, options: { seed: -1 } }), "INVALID_ARGUMENT", /^options\.seed is -1: expected a whole number from 0 to 2\^53 - 1$/);
      await clientRejects(vector.checkGradients({ inputs: request.inputs, maxEvals: -1 }), "INVALID_ARGUMENT", /^maxEvals is -1:/);
      await clientRejects(vector.checkGradients({ inputs: request.inputs, seed: 2 ** 60 }), "INVALID_ARGUMENT", /^seed is 1152921504606847000: expected a whole number from 0 to 2\^53 - 1$/);
      const rows = async () => {
        for await (const _ of vector.jacobianRows({ ...request, options: { seed: 0.5 } }));
      };
      await clientRejects(rows(), "INVALID_ARGUMENT", /^options\.seed is 0\.5:/);
    });

    it("a bad output path in a JVP: INVALID_ARGUMENT naming it", async () => {
      const tangent = { "mesh.points": ndarray(new Float64Array(9), [3, 3]) };
      await clientRejects(mesh.jvp({ inputs: sampleMeshInputs(3), inputPaths: ["mesh.points"], outputPaths: ["statistics.nope"], tangent }), "INVALID_ARGUMENT", /statistics\.nope/);
    });

    it("inputs the Tesseract rejects: INVALID_ARGUMENT with its message", async () => {
      const inputs = sampleMeshInputs(3);
      await clientRejects(mesh.apply({ ...inputs, mesh: { ...inputs.mesh, n_points: 4 } }), "INVALID_ARGUMENT", /n_points/);
    });

    it("a deadline already in the past: DEADLINE_EXCEEDED (as a Date and as milliseconds from now), saying what to do (it was grpc-js's words alone)", async () => {
      await clientRejects(vector.apply({ a: f64([1]), b: f64([2]), normalize: false }, { deadline: new Date(Date.now() - 1000) }), "DEADLINE_EXCEEDED", /./);
      const e = (await vector.describe({ deadline: -1 }).catch((error: unknown) => error)) as TesseractClientError;
      assert.equal(e.codeName, "DEADLINE_EXCEEDED");
      assert.match(e.details, /^Deadline exceeded after /);
      // The message keeps the time, not grpc-js's internals (",name resolution: …,LB pick: …").
      assert.match(e.message, /^DEADLINE_EXCEEDED: Deadline exceeded after [\d.]+s — the call's deadline passed before the answer came: give a later `deadline` \(big Jacobians: jacobianRows streams rows as they are computed\)$/);
    });

    it("only a message's leading request field is renamed: the same words further on may be the Tesseract's own", () => {
      const renamed = (details: string) => (inSdkTerms(new TesseractClientError(3, details)) as TesseractClientError).details;
      // The one sentence the server makes of a tangent's key and the request's paths names both fields.
      assert.equal(renamed('tangent_vector has key "x", which is not in jvp_inputs (a)'), 'tangent has key "x", which is not in inputPaths (jvp_inputs) (a)');
      assert.equal(renamed("output_paths: output path \"y\" is not a differentiable path"), 'outputPaths (output_paths): output path "y" is not a differentiable path');
      for (const kept of ['inputs.input_paths[0] is ""', "evaluation at x[0] + h failed: output_paths not writable", "jac_inputsX: unknown"]) assert.equal(renamed(kept), kept);
    });

    it("a gradient call's request fields are named as the SDK names them (it said jac_inputs, tangent_vector: wire names the caller never wrote)", async () => {
      const inputs = { a: f64([1, 2, 3]), b: f64([4, 5, 6]), s: f64([2], []), normalize: false };
      const paths = { inputs, inputPaths: ["a"], outputPaths: ["result"] };
      await clientRejects(vector.jacobian({ ...paths, inputPaths: ["x"] }), "INVALID_ARGUMENT", /^inputPaths \(jac_inputs\): input path "x" does not exist; differentiable input paths: a, b, s$/);
      const rows = async () => {
        for await (const _ of vector.jacobianRows({ ...paths, outputPaths: ["nope"] }));
      };
      await clientRejects(rows(), "INVALID_ARGUMENT", /^outputPaths \(jac_outputs\): /);
      await clientRejects(vector.jvp({ ...paths, tangent: { a: f64([1]) } }), "INVALID_ARGUMENT", /^tangent\.\{a\} has shape \[1\], expected \[3\] like the input$/);
      await clientRejects(vector.vjp({ ...paths, cotangent: { result: f64([1, 2]) } }), "INVALID_ARGUMENT", /^cotangent\.\{result\} has shape \[2\], expected \[3\] like the output/);
      await clientRejects(vector.vjp({ ...paths, inputPaths: ["x"], cotangent: { result: f64([1, 2, 3]) } }), "INVALID_ARGUMENT", /^inputPaths \(vjp_inputs\): input path "x"/);
      await clientRejects(vector.jvp({ ...paths, tangent: { b: f64([1, 2, 3]) } }), "INVALID_ARGUMENT", /^tangent has key "b", which is not in inputPaths \(jvp_inputs\) \(a\)$/);
      await clientRejects(vector.vjp({ ...paths, cotangent: { result: f64([1, 2, 3]), other: f64([1]) } }), "INVALID_ARGUMENT", /^cotangent has key "other", which is not in outputPaths \(vjp_outputs\) \(result\)$/);
    });

    it("an ndarray whose shape reaches past its data is INVALID_ARGUMENT naming the field (a strided one was read as NaN; a short row-major one said \"Invalid typed array length: 24\")", async () => {
      const base = { a: f64([1, 2, 3]), b: f64([4, 5, 6]), s: f64([2], []), normalize: false };
      await clientRejects(vector.apply({ ...base, b: ndarray(Float64Array.of(4, 5), [3]) }), "INVALID_ARGUMENT", /^inputs could not be encoded: b has shape \[3\], which needs 3 elements, but its data holds 2$/);
      await clientRejects(vector.apply({ ...base, b: ndarray(Float64Array.of(4, 5, 6), [3], [2]) }), "INVALID_ARGUMENT", /^inputs could not be encoded: b has shape \[3\], strides \[2\] and offset 0, which reach elements 0 to 4 of data holding 3$/);
      await clientRejects(vector.apply({ ...base, a: ndarray(Float64Array.of(1, 2, 3), [3], [-1], 1) }), "INVALID_ARGUMENT", /^inputs could not be encoded: a has shape \[3\], strides \[-1\] and offset 1, which reach elements -1 to 1 of data holding 3$/);
      // A reversed view inside its data is fine: [3, 2, 1] + [4, 5, 6].
      const reversed = await vector.apply({ ...base, s: f64([1], []), a: ndarray(Float64Array.of(1, 2, 3), [3], [-1], 2) });
      assert.deepEqual(Array.from(reversed.result!.data as Float64Array), [7, 7, 7]);
      await clientRejects(vector.apply({ ...base, b: Float64Array.of(4, 5, 6) as never }), "INVALID_ARGUMENT", /^inputs could not be encoded: b is a bare Float64Array: a tensor is an ndarray, ndarray\(data, shape\)$/);
      // A map's key is written as paths write it.
      const meshInputs = sampleMeshInputs(2);
      await clientRejects(mesh.apply({ ...meshInputs, mesh: { ...meshInputs.mesh, cell_data: { "temp.x": ndarray(Float64Array.of(1), [1, 2]) } } }), "INVALID_ARGUMENT", /^inputs could not be encoded: mesh\.cell_data\.\{temp\.x\} has shape \[1, 2\], which needs 2 elements, but its data holds 1$/);
      const paths = { inputs: base, inputPaths: ["a"], outputPaths: ["result"] };
      await clientRejects(vector.vjp({ ...paths, cotangent: { result: [1, 2, 3] as never } }), "INVALID_ARGUMENT", /^cotangent could not be encoded: cotangent\.\{result\} is a plain array: expected an ndarray, ndarray\(data, shape\)$/);
      await clientRejects(vector.jvp({ ...paths, tangent: { a: ndarray(Float64Array.of(1), [3]) } }), "INVALID_ARGUMENT", /^tangent could not be encoded: tangent\.\{a\} has shape \[3\], which needs 3 elements, but its data holds 1$/);
    });

    it("an aborted signal: CANCELLED, and no call is made", async () => {
      const controller = new AbortController();
      controller.abort(new Error("user gave up"));
      await clientRejects(vector.apply({ a: f64([1]), b: f64([2]), normalize: false }, { signal: controller.signal }), "CANCELLED", /user gave up/);
    });

    it("one signal for many calls at once: no listener-leak warning, and aborting it cancels every one", async () => {
      const warnings: string[] = [];
      const listen = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
      process.on("warning", listen);
      try {
        const controller = new AbortController();
        const { signal } = controller;
        const sums = await Promise.all(Array.from({ length: 12 }, (_, k) => vector.apply({ a: f64([k]), b: f64([1]), normalize: false }, { signal })));
        assert.deepEqual(sums.map((s) => s.result!.data[0]), Array.from({ length: 12 }, (_, k) => k + 1));
        // Twelve streams in flight (each has sent its header), then one abort.
        const streams = Array.from({ length: 12 }, () => mesh.jacobianRows({ inputs: sampleMeshInputs(2000), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"] }, { signal }));
        for (const stream of streams) assert.ok((await stream.next()).value);
        controller.abort(new Error("all of them"));
        const drain = async (stream: AsyncGenerator<unknown>) => {
          for await (const _ of stream);
        };
        for (const stream of streams) await clientRejects(drain(stream), "CANCELLED", /all of them/);
        await new Promise(setImmediate); // process warnings are emitted on a later tick
      } finally {
        process.off("warning", listen);
      }
      assert.deepEqual(warnings, []);
    });

    it("metadata is passed through: the server logs the caller's x-request-id", async () => {
      const logged = vectorLog.next((line) => line.rpc === "Describe" && line.request_id === "sdk-test-1");
      const d = await vector.describe({ metadata: { "x-request-id": "sdk-test-1" }, deadline: 10_000 });
      assert.equal(d.name, "vectoradd");
      assert.equal((await logged).code, 0);
    });

    it("metadata a header cannot carry is INVALID_ARGUMENT naming it; a token read from a file (a newline at its end) is sent trimmed (both were UNKNOWN on every call, grpc-js's words)", async () => {
      const inputs = { a: f64([1, 2, 3]), b: f64([4, 5, 6]), s: f64([2], []), normalize: false };
      await clientRejects(vector.apply(inputs, { metadata: { "X Request": "1" } }), "INVALID_ARGUMENT", /^metadata: Metadata key "x request" contains illegal characters$/);
      const rows = async () => {
        for await (const _ of vector.jacobianRows({ inputs, inputPaths: ["a"], outputPaths: ["result"] }, { metadata: { "x-request-id": "a\nb" } }));
      };
      await clientRejects(rows(), "INVALID_ARGUMENT", /^metadata: Metadata string value "a\nb" contains illegal characters$/);

      const server = await startServer({ tesseract: "vectoradd", host: "127.0.0.1", port: 0, tokens: ["s3cret"], logger: silentLogger });
      const client = new TesseractClient(server.address, { inputs: VectorInputs, outputs: VectorOutputs, outputDatatypes: { result: "float64" } }, { token: "s3cret\n" });
      try {
        assert.deepEqual(Array.from((await client.apply(inputs)).result.data), [6, 9, 12]);
        assert.throws(() => new TesseractClient(server.address, { inputs: VectorInputs, outputs: VectorOutputs }, { token: "s3c\nret" }), {
          name: "TypeError",
          message: "a bearer token must be visible ASCII characters, without line breaks or control characters (the `token` option)",
        });
      } finally {
        client.close();
        await server.close();
      }
    });

    it("a message over the client's maxMessageBytes, received or sent: RESOURCE_EXHAUSTED saying which limit and how to raise it (it was grpc-js's words alone)", async () => {
      const small = new TesseractClient<VectorInputs, VectorOutputs>(vectorServer.address, { inputs: VectorInputs, outputs: VectorOutputs }, { maxMessageBytes: 2000 });
      try {
        const n = 20; // the 20 × 20 Jacobian's 3200 bytes are over the limit; the inputs are not
        const inputs = { a: f64(Array.from({ length: n }, (_, i) => i)), b: f64(new Array<number>(n).fill(1)), s: f64([2], []), normalize: false };
        const received = await clientRejects(small.jacobian({ inputs, inputPaths: ["a"], outputPaths: ["result"] }), "RESOURCE_EXHAUSTED", /^Received message larger than max \(\d+ vs 2000\)$/);
        assert.match(received.message, / — the answer is over this client's message limit: raise the client's `maxMessageBytes` \(default 64 MiB\), or stream a big Jacobian with jacobianRows$/);
        const big = { ...inputs, a: f64(new Array<number>(300).fill(1)), b: f64(new Array<number>(300).fill(1)) };
        const sent = await clientRejects(small.apply(big), "RESOURCE_EXHAUSTED", /^Attempted to send message with a size larger than 2000$/);
        assert.match(sent.message, / — the request is over this client's message limit: raise the client's `maxMessageBytes`/);
      } finally {
        small.close();
      }
    });

    it("a closed client: FAILED_PRECONDITION", async () => {
      const client = new TesseractClient<VectorInputs, VectorOutputs>(vectorServer.address, { inputs: VectorInputs, outputs: VectorOutputs });
      client.close();
      await clientRejects(client.describe(), "FAILED_PRECONDITION", /closed/);
      await clientRejects(client.health(), "FAILED_PRECONDITION", /closed/);
    });
  });
});

describe("SDK: an abort reaches the server, however soon after the call it comes", () => {
  // An apply that never settles (the polynomial fixture's "stall", y > 0.5, no per-evaluation
  // timeout): the server's call ends only when it hears the client's cancel.
  const POLYNOMIAL = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
  let server: RunningServer;
  let client: TesseractClient<any, any>;
  before(async () => {
    server = await startServer({ tesseract: POLYNOMIAL, host: "127.0.0.1", port: 0, workers: 0, logger: silentLogger });
    ({ client } = await reflectedClient(server.address));
  });
  after(async () => {
    client?.close();
    await server?.close(0);
  });

  /** Resolves once the server has no call in flight; fails saying `what` if it still has one after `ms`. */
  const serverIdle = async (what: string, ms = 10_000) => {
    for (const end = Date.now() + ms; server.calls.inFlightCount > 0; await new Promise(setImmediate)) {
      if (Date.now() > end) assert.fail(`${what}: the server still works on a call its client cancelled`);
    }
  };

  it("Apply, Jacobian and JacobianRows aborted 0 to 12 microtasks after the call: each ends on the server too (grpc-js sent a unary call cancelled just before it made its transport call, and never cancelled it)", async () => {
    const inputs = { x: f64([1, 2]), y: f64([0.9], []), mode: "stall" };
    const calls = {
      apply: (signal: AbortSignal) => client.apply(inputs, { signal }),
      jacobian: (signal: AbortSignal) => client.jacobian({ inputs, inputPaths: ["x"], outputPaths: ["f"] }, { signal }),
      jacobianRows: async (signal: AbortSignal) => {
        for await (const _ of client.jacobianRows({ inputs, inputPaths: ["x"], outputPaths: ["f"] }, { signal }));
      },
    };
    for (const [name, start] of Object.entries(calls)) {
      for (let microtasks = 0; microtasks <= 12; microtasks++) {
        const controller = new AbortController();
        const answered = start(controller.signal);
        for (let k = 0; k < microtasks; k++) await Promise.resolve();
        controller.abort(new Error("given up"));
        await clientRejects(answered, "CANCELLED", /given up/);
        // A call made after it on the same connection: once answered, the server has had any request it was sent.
        await client.describe();
        await serverIdle(`${name}, aborted ${microtasks} microtasks after it began`);
      }
    }
  });
});

describe("SDK: a server that is not there", () => {
  it("UNAVAILABLE, its message saying what to do (it was grpc-js's words alone); details stay grpc-js's", async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const client = new TesseractClient<MeshInputs, MeshOutputs>(address, { inputs: MeshInputs, outputs: MeshOutputs });
    try {
      const e = await client.describe().then(
        () => assert.fail("answered"),
        (error: TesseractClientError) => error,
      );
      assert.equal(e.codeName, "UNAVAILABLE");
      assert.match(e.details, /ECONNREFUSED/);
      assert.ok(e.message.endsWith(`— no server is listening at ${address}: start one (npx tesseract-grpc serve meshstats, or your own Tesseract), or connect to the address of a running one`), e.message);
      assert.ok(!e.details.includes("no server is listening"), e.details);
      // A second client of the address shares the failed connection: grpc-js may say "Last error: null".
      const second = new TesseractClient<MeshInputs, MeshOutputs>(address, { inputs: MeshInputs, outputs: MeshOutputs });
      const again = (await second.describe().catch((error: unknown) => error)) as TesseractClientError;
      second.close();
      assert.equal(again.codeName, "UNAVAILABLE");
      if (/Last error: null/.test(again.details)) assert.ok(again.message.endsWith("— is a tesseract-grpc server listening at the address, and up yet? Calls made while it starts fail at once unless they have { waitForReady: true }"), again.message);
      else assert.match(again.message, /no server is listening at /);
    } finally {
      client.close();
    }
  });

  it("an address written as a URL (http://HOST:PORT): the message says to write HOST:PORT without the scheme (it said the host does not resolve)", async () => {
    const address = `127.0.0.1:${await freePort()}`;
    for (const [given, tls] of [[`http://${address}`, ""], [`https://${address}/`, " (TLS: the client's tls option)"]]) {
      const client = new TesseractClient<MeshInputs, MeshOutputs>(given, { inputs: MeshInputs, outputs: MeshOutputs });
      try {
        const e = (await client.describe().then(() => assert.fail("answered"), (error: unknown) => error)) as TesseractClientError;
        assert.equal(e.codeName, "UNAVAILABLE");
        assert.ok(e.message.endsWith(`— an address is HOST:PORT, without "${given.split("//")[0]}//": ${address}${tls}`), e.message);
      } finally {
        client.close();
      }
    }
  });

  it("waitForReady: a call made before the server starts is answered once it listens (without, it fails at once); each waits under its own deadline (a shared Describe failed them all at the first one's)", async () => {
    const port = await freePort();
    const client = new TesseractClient<MeshInputs, MeshOutputs>(`127.0.0.1:${port}`, { inputs: MeshInputs, outputs: MeshOutputs });
    let server: RunningServer | undefined;
    const codeOf = async (call: Promise<unknown>) => ((await call.then(() => assert.fail("answered"), (error: unknown) => error)) as TesseractClientError).codeName;
    try {
      // A plain call first (its Describe fails at once), a waiting one beside it, and one that waits less.
      const plain = codeOf(client.apply(sampleMeshInputs(2)));
      const waiting = client.apply(sampleMeshInputs(2), { waitForReady: true, deadline: 60_000 });
      const brief = codeOf(client.apply(sampleMeshInputs(2), { waitForReady: true, deadline: 100 }));
      assert.equal(await plain, "UNAVAILABLE");
      assert.equal(await brief, "DEADLINE_EXCEEDED");
      server = await startServer({ tesseract: "meshstats", host: "127.0.0.1", port, logger: silentLogger });
      const outputs = await waiting;
      const points = sampleMeshInputs(2).mesh.points;
      assert.deepEqual(Array.from(outputs.statistics!.barycenter!.data as Float64Array), [0, 1, 2].map((c) => (points.get(0, c) + points.get(1, c)) / 2));
    } finally {
      client.close();
      await server?.close();
    }
  });

  it("a deadline in milliseconds counts from the method's start, not anew for the call after the SDK's Describe (a call that waited for its server ran up to twice as long)", async () => {
    const port = await freePort();
    const client = new TesseractClient<MeshInputs, MeshOutputs>(`127.0.0.1:${port}`, { inputs: MeshInputs, outputs: MeshOutputs });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const stuck = new TesseractRuntime({ ...meshstats, apply: async (inputs: unknown) => (await gate, meshstats.apply(inputs as never)) }, __dirname);
    let server: RunningServer | undefined;
    try {
      const DEADLINE = 1_500;
      const started = Date.now();
      const waiting = client.apply(sampleMeshInputs(2), { waitForReady: true, deadline: DEADLINE }).then(
        () => assert.fail("answered"),
        (error: unknown) => ({ error: error as TesseractClientError, after: Date.now() - started }),
      );
      // The server comes up after 0.9 of the deadline (a call with that deadline has failed by then); its apply never answers.
      await clientRejects(client.apply(sampleMeshInputs(2), { waitForReady: true, deadline: 0.9 * DEADLINE }), "DEADLINE_EXCEEDED");
      server = await startServer({ tesseract: stuck, host: "127.0.0.1", port, warmUpMs: 0, logger: silentLogger });
      const { error, after } = await waiting;
      assert.equal(error.codeName, "DEADLINE_EXCEEDED");
      // About 1.0 of the deadline; counted anew after the Describe, 1.9 (the bound lies halfway: no timing is asserted closely).
      assert.ok(after < 1.45 * DEADLINE, `failed after ${after} ms, past its deadline of ${DEADLINE} ms`);
    } finally {
      release();
      client.close();
      await server?.close();
    }
  });

  it("an address without a port means tesseract-grpc's 50051, as in the CLI (grpc-js went to 443)", () => {
    for (const [given, used] of [["localhost", "localhost:50051"], ["10.0.0.5:7000", "10.0.0.5:7000"], ["dns:///svc:9000", "dns:///svc:9000"]]) {
      const client = new TesseractClient<MeshInputs, MeshOutputs>(given, { inputs: MeshInputs, outputs: MeshOutputs });
      assert.equal(client.address, used);
      client.close();
    }
  });
});

describe("SDK: result lookups", () => {
  // Results are keyed by the canonical spelling of each requested path (keys escape only `\` and
  // `}`): a block asked for as it was requested, `{\{k\}}`, was NOT_FOUND though it was there.
  const stats = { apply_calls: 1, wall_seconds: 0, adjusted_steps: [], column_groups: 1, sparsity_source: "" };
  const value = f64([2], []);

  it("block() and get() find a path written with needless escapes, as the server spells it back", () => {
    const result = new JacobianResult({ "named.{{k\\}}": { "params.{{k\\}}": value } }, undefined, stats);
    assert.equal(result.block("named.{\\{k\\}}", "params.{\\{k\\}}"), value);
    assert.equal(result.block("named.{{k\\}}", "params.{{k\\}}"), value);
    const product = new VectorProductResult({ "params.{{k\\}}": value }, undefined, stats);
    assert.equal(product.get("params.{\\{k\\}}"), value);
  });

  it("a path that is not there, or not a path, is NOT_FOUND naming what there is", () => {
    const result = new JacobianResult({ "named.{{k\\}}": { "params.{{k\\}}": value } }, undefined, stats);
    for (const missing of ["named.{k}", "named.{"]) {
      assert.throws(() => result.block(missing, "params.{{k\\}}"), (e: TesseractClientError) => e.code === 5 && e.message.includes('it has: named.{{k\\}} / params.{{k\\}}'));
    }
  });
});

describe("SDK: paths named like Object.prototype's members", () => {
  // Fields named constructor, toString, valueOf: fields like any (docs/writing-a-tesseract.md).
  const spec: SchemaSpec = {
    package: "generated.v1",
    messages: [
      {
        name: "Inputs",
        fields: ["constructor", "toString", "valueOf"].map((name, i) => ({ kind: "tensor" as const, name, number: i + 1, container: "single" as const, differentiable: true })),
      },
    ],
  };
  let module: ReturnType<typeof writeMirrorModule>;
  let server: RunningServer;
  let client: TesseractClient<any, any>;
  before(async () => {
    module = writeMirrorModule(spec);
    server = await startServer({ tesseract: module.modulePath, port: 0, workers: 0, logger: silentLogger });
    client = new TesseractClient<any, any>(`127.0.0.1:${server.port}`, clientTypes(spec, module.protoFile));
  });
  after(async () => {
    client?.close();
    await server?.close();
    fs.rmSync(module.dir, { recursive: true, force: true });
  });

  it("jacobian() keeps every block, the outputs constructor and toString included (they were left on Object.prototype's functions)", async () => {
    const inputs = { constructor: f64([0.5, -1]), toString: f64([2], []), valueOf: f64([0.25]) };
    const paths = ["constructor", "toString", "valueOf"];
    const result = await client.jacobian({ inputs, inputPaths: paths, outputPaths: paths, options: { algorithm: Algorithm.ALGORITHM_RICHARDSON } });
    assert.deepEqual(Object.keys(result.jacobian), paths);
    for (const out of paths) assert.deepEqual(Object.keys(result.jacobian[out]!), paths, out);
    assert.deepEqual(Object.keys(result.errorEstimate!), paths);
    // d total/d constructor = 2 w x: the block answers through the lookup too.
    const { a, b, c } = coefficients("constructor");
    assertClose(result.block("constructor", "constructor").data, [2 * a * 0.5 + b * Math.cos(0.5) + c, c, c, 2 * a * -1 + b * Math.cos(-1) + c], 1e-8);
    assert.equal(typeof ({} as Record<string, unknown>).constructor, "function");
    assert.equal((Object as unknown as Record<string, unknown>).toString === Function.prototype.toString, true, "Object.prototype's members are untouched");
  });
});
