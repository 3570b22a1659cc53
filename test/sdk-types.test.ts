/**
 * The SDK's ergonomics against real servers on 127.0.0.1:0: a client checks that the server's
 * Tesseract takes and returns its generated types before sending anything (FAILED_PRECONDITION
 * naming both, where inputs used to be sent as the wrong message and fail deep in the server);
 * outputs typed and checked by `outputDatatypes`; results looked up by path with errors listing the
 * paths there are; stats on every gradient result. And the types themselves, compiled under strict
 * settings with noUncheckedIndexedAccess.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import ndarray from "ndarray";
import * as ts from "typescript";
import { Algorithm, assembleJacobian, TesseractClient, type MessageFns } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { Inputs as VectorInputs, Outputs as VectorOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { toArrays, toTensors } from "../client/tree";
import { DataType } from "../common/tensor-codec";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { assertClose, clientRejects, counted, f64, flat } from "./helpers";

const BARY = "statistics.barycenter";

/** The generated objects without their `$type`, as older generated code (or a hand-written MessageFns) has them. */
function unnamed<T>(fns: MessageFns<T>): MessageFns<T> {
  return { encode: fns.encode.bind(fns), decode: fns.decode.bind(fns), fromPartial: fns.fromPartial?.bind(fns) };
}

describe("SDK: types checked against the server, typed outputs, results by path, stats", () => {
  let meshServer: RunningServer;
  let vectorServer: RunningServer;
  const vectorCalls = counted("vectoradd");
  const vectorInputs = { a: f64([1, 2, 3]), b: f64([4, 5, 6]), s: f64([2], []), normalize: false };

  before(async () => {
    [meshServer, vectorServer] = await Promise.all([
      // Without the f(x) cache: the stats counted here are each rule's own.
      startServer({ tesseract: "meshstats", host: "127.0.0.1", port: 0, logger: silentLogger, evalCacheBytes: 0 }),
      startServer({ tesseract: vectorCalls.runtime, host: "127.0.0.1", port: 0, logger: silentLogger, evalCacheBytes: 0 }),
    ]);
  });

  after(async () => {
    await Promise.all([meshServer?.close(), vectorServer?.close()]);
  });

  describe("the server's Tesseract against the client's types", () => {
    it("a meshstats client at a vectoradd server: FAILED_PRECONDITION naming both, for every call, and no apply made", async () => {
      // Before, the type URL came from Describe: meshstats bytes went out as vectoradd Inputs and came
      // back as `a: data has 56 bytes, expected 1 (shape [1] of DATA_TYPE_UINT8 …)`.
      const client = new TesseractClient(vectorServer.address, { inputs: MeshInputs, outputs: MeshOutputs });
      const inputs = sampleMeshInputs(3);
      const request = { inputs, inputPaths: ["mesh.points"], outputPaths: [BARY] };
      const mismatch = new RegExp(
        `^the server at 127\\.0\\.0\\.1:\\d+ serves vectoradd \\(tesseract\\.examples\\.vectoradd\\.v1\\.Inputs -> tesseract\\.examples\\.vectoradd\\.v1\\.Outputs\\), but this client was made for tesseract\\.examples\\.meshstats\\.v1\\.Inputs -> tesseract\\.examples\\.meshstats\\.v1\\.Outputs: is the address right\\?$`,
      );
      const before = vectorCalls.counter.calls;
      try {
        await clientRejects(client.apply(inputs), "FAILED_PRECONDITION", mismatch);
        await clientRejects(client.jacobian(request), "FAILED_PRECONDITION", mismatch);
        await clientRejects(assembleJacobian(client.jacobianRows(request)), "FAILED_PRECONDITION", mismatch);
        await clientRejects(client.jvp({ ...request, tangent: { "mesh.points": ndarray(new Float64Array(9), [3, 3]) } }), "FAILED_PRECONDITION", mismatch);
        await clientRejects(client.vjp({ ...request, cotangent: { [BARY]: f64([1, 1, 1]) } }), "FAILED_PRECONDITION", mismatch);
        await clientRejects(client.checkGradients({ inputs }), "FAILED_PRECONDITION", mismatch);
        await clientRejects(client.abstractEval(inputs), "FAILED_PRECONDITION", mismatch);
        assert.equal(vectorCalls.counter.calls, before, "nothing was evaluated");
      } finally {
        client.close();
      }
    });

    it("the one Describe is shared, not owned: the first caller's cancel or deadline fails only that caller", async () => {
      for (const mine of [{ signal: AbortSignal.abort(new Error("changed my mind")) }, { deadline: 0 }, "abort after start"] as const) {
        const client = new TesseractClient(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs });
        try {
          const controller = new AbortController();
          const options = mine === "abort after start" ? { signal: controller.signal } : mine;
          const first = client.apply(sampleMeshInputs(3), options);
          const other = client.apply(sampleMeshInputs(4));
          const another = client.jacobian({ inputs: sampleMeshInputs(2), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"] });
          controller.abort(); // the Describe the first call started is still in flight
          await clientRejects(first, "deadline" in options ? "DEADLINE_EXCEEDED" : "CANCELLED", /./);
          const [applied, jacobian] = [await other, await another];
          assert.deepEqual(applied.statistics?.barycenter?.shape, [3]);
          assert.equal(jacobian.stats.apply_calls, 4, `${JSON.stringify(mine)}: the others were answered`);
        } finally {
          client.close();
        }
      }
    });

    it("explicit inputType/outputType are checked too; a matching pair works", async () => {
      const wrong = new TesseractClient(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs, inputType: "tesseract.examples.vectoradd.v1.Inputs" });
      const right = new TesseractClient(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs, inputType: "tesseract.examples.meshstats.v1.Inputs", outputType: "tesseract.examples.meshstats.v1.Outputs" });
      try {
        await clientRejects(wrong.apply(sampleMeshInputs(3)), "FAILED_PRECONDITION", /serves meshstats .* but this client was made for tesseract\.examples\.vectoradd\.v1\.Inputs -> tesseract\.examples\.meshstats\.v1\.Outputs/);
        const outputs = await right.apply(sampleMeshInputs(3));
        assert.deepEqual(outputs.statistics?.barycenter?.shape, [3]);
      } finally {
        wrong.close();
        right.close();
      }
    });

    it("types without a name (no $type, no inputType): FAILED_PRECONDITION saying how to name them, not a guess from Describe", async () => {
      const client = new TesseractClient(vectorServer.address, { inputs: unnamed(MeshInputs), outputs: unnamed(MeshOutputs) });
      const named = new TesseractClient(vectorServer.address, { inputs: unnamed(VectorInputs), outputs: unnamed(VectorOutputs), inputType: "tesseract.examples.vectoradd.v1.Inputs" });
      try {
        await clientRejects(
          client.apply(sampleMeshInputs(3)),
          "FAILED_PRECONDITION",
          /serves vectoradd \(tesseract\.examples\.vectoradd\.v1\.Inputs -> .*\), and this client's input type has no name to check it against: give `inputType` \("tesseract\.examples\.vectoradd\.v1\.Inputs" if that is right\), or generate the types with ts-proto's outputTypeAnnotations=static-only$/,
        );
        const outputs = await named.apply(vectorInputs);
        assert.deepEqual(flat(outputs.result), [6, 9, 12]);
      } finally {
        client.close();
        named.close();
      }
    });
  });

  describe("outputDatatypes", () => {
    it("types apply's outputs and checks them: FP64 values as Float64Array, required", async () => {
      const client = new TesseractClient(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs, outputDatatypes: { statistics: { barycenter: "float64", first_point_coordinates: "float64" } } });
      try {
        const out = await client.apply(sampleMeshInputs(2));
        const barycenter: number[] = Array.from(out.statistics.barycenter.data);
        const points = sampleMeshInputs(2).mesh.points.data;
        assertClose(barycenter, [0, 1, 2].map((c) => (points[c] + points[3 + c]) / 2), 1e-12, "barycenter");
        assert.ok(out.statistics.first_point_coordinates.data instanceof Float64Array);
      } finally {
        client.close();
      }
    });

    it("a datatype the server does not send, or an output it leaves out: FAILED_PRECONDITION naming the field", async () => {
      const float32 = new TesseractClient(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs, outputDatatypes: { statistics: { barycenter: "float32" } } });
      const vectorMap = new TesseractClient(vectorServer.address, { inputs: VectorInputs, outputs: VectorOutputs, outputDatatypes: { result: "int32" } });
      try {
        await clientRejects(float32.apply(sampleMeshInputs(2)), "FAILED_PRECONDITION", /^outputs\.statistics\.barycenter has Float64Array values, expected float32 \(the client's outputDatatypes\)/);
        await clientRejects(vectorMap.apply(vectorInputs), "FAILED_PRECONDITION", /^outputs\.result has Float64Array values, expected int32/);
      } finally {
        float32.close();
        vectorMap.close();
      }
    });
  });

  describe("results by path, and stats on every gradient result", () => {
    let client: TesseractClient<VectorInputs, VectorOutputs>;
    before(() => {
      client = new TesseractClient(vectorServer.address, { inputs: VectorInputs, outputs: VectorOutputs });
    });
    after(() => client.close());
    const request = { inputs: vectorInputs, inputPaths: ["a", "s"], outputPaths: ["result"], options: { algorithm: Algorithm.ALGORITHM_CENTRAL } };

    // vectoradd declares its structure: a's three columns touch disjoint outputs (one group), s's another.
    it("jacobian and assembled rows: block(out, in) with exact stats (2 per column group: a's 3 elements together, s)", async () => {
      for (const result of [await client.jacobian(request), await assembleJacobian(client.jacobianRows(request))]) {
        assert.equal(result.stats.apply_calls, 2 * 2);
        assert.deepEqual([result.stats.column_groups, result.stats.sparsity_source], [2, "tesseract"]);
        assert.ok(result.stats.wall_seconds > 0);
        // d (s·a + b)_i / d a_j = s δij; d / d s = a.
        assertClose(result.block("result", "a").data, [2, 0, 0, 0, 2, 0, 0, 0, 2], 1e-8, "d result / d a");
        assertClose(result.block("result", "s").data, [1, 2, 3], 1e-8, "d result / d s");
        await clientRejects(Promise.resolve().then(() => result.block("result", "b")), "NOT_FOUND", /^the result has no Jacobian block d output \/ d input "result \/ b"; it has: result \/ a, result \/ s$/);
        await clientRejects(Promise.resolve().then(() => result.errorBlock("result", "a")), "NOT_FOUND", /no error estimates/);
      }
      const richardson = await client.jacobian({ ...request, options: { algorithm: Algorithm.ALGORITHM_RICHARDSON } });
      assert.equal(richardson.stats.apply_calls, 4 * 2 + 9);
      assert.deepEqual(richardson.errorBlock("result", "s").shape, [3]);
    });

    it("jvp and vjp: get(path) with exact stats", async () => {
      const jvp = await client.jvp({ ...request, tangent: { a: f64([1, 0, 0]), s: f64([1], []) } });
      assert.equal(jvp.stats.apply_calls, 2);
      assertClose(jvp.get("result").data, [2 + 1, 2, 3], 1e-8, "J·v");
      await clientRejects(Promise.resolve().then(() => jvp.get("a")), "NOT_FOUND", /^the result has no path "a"; it has: result$/);
      const vjp = await client.vjp({ ...request, cotangent: { result: f64([1, 1, 1]) } });
      assert.equal(vjp.stats.apply_calls, 2 * 2);
      assertClose(vjp.get("a").data, [2, 2, 2], 1e-8, "uᵀ·J w.r.t. a");
      assertClose(vjp.get("s").data, [6], 1e-8, "uᵀ·J w.r.t. s");
    });

    it("checkGradients: stats of the apply calls the check made", async () => {
      const before = vectorCalls.counter.calls;
      const check = await client.checkGradients({ inputs: vectorInputs, inputPaths: ["a"], endpoints: ["jacobian"] });
      assert.equal(check.passed, true);
      // One apply for the outputs, then one central pair (2) for a's columns, one column group by vectoradd's declared diagonal.
      assert.equal(check.stats?.apply_calls, 1 + 2);
      assert.equal(vectorCalls.counter.calls - before, 1 + 2);
      assert.deepEqual([check.stats?.column_groups, check.stats?.sparsity_source], [1, "tesseract"]);
      assert.ok((check.stats?.wall_seconds ?? 0) > 0);
    });
  });

  describe("the types, as a strict app compiles them", () => {
    it("typed outputs need no `!` and no cast; a wrong spec or a wrong path type does not compile", function () {
      this.timeout(60_000);
      // Compiled against dist/client's .d.ts files, as an app would compile against the package's.
      const dir = fs.mkdtempSync(path.join(__dirname, "strict-app-"));
      const file = path.join(dir, "app.ts");
      fs.writeFileSync(
        file,
        `import ndarray from "ndarray";
import { TesseractClient } from "../../client";
import { Inputs, Outputs } from "../../generated/tesseract/examples/meshstats/v1/meshstats";

export async function main(): Promise<number[]> {
  const client = new TesseractClient("127.0.0.1:50051", { inputs: Inputs, outputs: Outputs, outputDatatypes: { statistics: { barycenter: "float64", first_point_coordinates: "float32" } } });
  const inputs = { mesh: { n_points: 1, n_cells: 0, points: ndarray(new Float64Array(3), [1, 3]), cell_data: {}, point_data: {} }, fd_algorithm: 0 };
  const out = await client.apply(inputs);
  const barycenter: number[] = Array.from(out.statistics.barycenter.data);
  const first: Float32Array = out.statistics.first_point_coordinates.data;
  const result = await client.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"] });
  const d: number = result.block("statistics.barycenter", "mesh.points").get(0, 0, 0) + result.stats.apply_calls;
  const jvp = await client.jvp({ inputs, inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"], tangent: {} });
  const v: Float64Array = jvp.get("statistics.barycenter").data;
  const untyped = await new TesseractClient("x", { inputs: Inputs, outputs: Outputs }).apply(inputs);
  // @ts-expect-error without outputDatatypes an output may be absent
  untyped.statistics.barycenter;
  // @ts-expect-error a field Outputs does not have
  new TesseractClient("x", { inputs: Inputs, outputs: Outputs, outputDatatypes: { statistics: { barycentre: "float64" } } });
  // @ts-expect-error a misspelt field beside a right one (an inferred spec only had to fit its constraint)
  new TesseractClient("x", { inputs: Inputs, outputs: Outputs, outputDatatypes: { statistics: { first_point_coordinates: "float64", barycentre: "float64" } } });
  // @ts-expect-error a misspelt message at the top
  new TesseractClient("x", { inputs: Inputs, outputs: Outputs, outputDatatypes: { statistics: { barycenter: "float64" }, statistic: { barycenter: "float64" } } });
  // @ts-expect-error a name that is no datatype
  new TesseractClient("x", { inputs: Inputs, outputs: Outputs, outputDatatypes: { statistics: { barycenter: "double" } } });
  // @ts-expect-error a JVP takes no sparsity (it was accepted and dropped)
  void client.jvp({ inputs, inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"], tangent: {}, sparsity: [] });
  // @ts-expect-error float64 values are not Float32Array
  const wrong: Float32Array = out.statistics.barycenter.data;
  return [...barycenter, first[0] ?? 0, d, v[0] ?? 0, wrong.length];
}
`,
      );
      try {
        const program = ts.createProgram([file], {
          strict: true,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: false,
          noEmit: true,
          module: ts.ModuleKind.Node16,
          moduleResolution: ts.ModuleResolutionKind.Node16,
          target: ts.ScriptTarget.ES2022,
          esModuleInterop: true,
          skipLibCheck: true,
          types: ["node"],
          typeRoots: [path.join(__dirname, "../../node_modules/@types")],
        });
        const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
        assert.deepEqual(diagnostics, []);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

describe("SDK trees: a Map (ts-proto's type of a map<bool, V>)", () => {
  it("is descended into both ways: its ndarrays sent as Tensors, its Tensors answered as ndarrays (a Map's ndarrays were sent as they were)", () => {
    const sent = toTensors({ by_bool: new Map([[false, ndarray(Float64Array.of(1, 2), [2])]]) }) as { by_bool: Map<boolean, { datatype: number; shape: number[]; data: Uint8Array }> };
    const tensor = sent.by_bool.get(false)!;
    assert.deepEqual([tensor.datatype, tensor.shape, Array.from(new Float64Array(Uint8Array.from(tensor.data).buffer))], [DataType.DATA_TYPE_FP64, [2], [1, 2]]);
    const answered = toArrays({ by_bool: new Map([[true, tensor]]) }, "outputs") as { by_bool: Map<boolean, ndarray.NdArray<Float64Array>> };
    assert.deepEqual(Array.from(answered.by_bool.get(true)!.data), [1, 2]);
  });
});
