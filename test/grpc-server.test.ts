/**
 * The gRPC server end to end on 127.0.0.1:0 with the generated grpc-js client: status codes and
 * messages for bad input, size limits, cancellation and deadlines reaching the engine, AbstractEval,
 * health and reflection. (Values over the wire are covered with the SDK in sdk.test.ts.)
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { Inputs as MeshInputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { TesseractClient as GeneratedClient, JacobianRequest, type JacobianRowsResponse } from "../generated/tesseract/v1/tesseract";
import { Code } from "../index";
import { startServer, type RunningServer } from "../index";
import { loadTesseract } from "../index";
import { ReflectionStream } from "../client/reflection-schema";
import { silentLogger } from "../server/log";
import { TesseractRuntime } from "../server/runtime";
import { encodeTensor } from "../common/tensor-codec";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { counted, f64, LogLines } from "./helpers";

const FIXTURE = path.join(__dirname, "../../test/fixtures/polynomial");
const MESH_URL = "type.googleapis.com/tesseract.examples.meshstats.v1.Inputs";
const OUTPUTS = ["statistics.first_point_coordinates", "statistics.barycenter"];

/** meshstats inputs as an Any, tensors encoded by the codec. */
function meshAny(N: number) {
  const { mesh } = sampleMeshInputs(N);
  const message = {
    mesh: { ...mesh, points: encodeTensor(mesh.points), num_points_per_cell: encodeTensor(mesh.num_points_per_cell), cell_connectivity: encodeTensor(mesh.cell_connectivity) },
    fd_algorithm: 0,
  };
  return { type_url: MESH_URL, value: Buffer.from(MeshInputs.encode(MeshInputs.fromPartial(message as never)).finish()) };
}

function unary<Res>(fn: (cb: (err: grpc.ServiceError | null, res: Res) => void) => void): Promise<Res> {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));
}

async function expectStatus(promise: Promise<unknown>, code: number, details: RegExp): Promise<void> {
  await assert.rejects(promise, (e: grpc.ServiceError) => {
    assert.equal(e.code, code, `code ${e.code}: ${e.details}`);
    assert.match(e.details, details);
    return true;
  });
}

/** A polynomial-fixture Tesseract whose apply is slow (busy for `ms`) and counted. */
function slowRuntime(ms: number) {
  const base = loadTesseract(path.join(FIXTURE, "polynomial.js")).definition;
  const counter = { calls: 0 };
  const definition = {
    ...base,
    apply(inputs: unknown) {
      counter.calls++;
      const until = performance.now() + ms;
      while (performance.now() < until);
      return base.apply(inputs);
    },
  };
  return { runtime: new TesseractRuntime(definition, FIXTURE), counter };
}

function polynomialAny(runtime: TesseractRuntime, n: number) {
  const x = { datatype: 11, shape: [n], data: Buffer.from(new Float64Array(n).map((_, i) => i / n).buffer) };
  return { type_url: "type.googleapis.com/tesseract.testing.polynomial.v1.Inputs", value: Buffer.from(runtime.schema.inputs.type.encode({ x }).finish()) };
}

describe("gRPC server", () => {
  let mesh: RunningServer;
  let client: GeneratedClient;
  before(async () => {
    mesh = await startServer({ tesseract: "meshstats", port: 0, logger: silentLogger });
    client = new GeneratedClient(mesh.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await mesh.close();
  });

  describe("bad input gets INVALID_ARGUMENT naming the field or path", () => {
    const jac = (request: object) => unary((cb) => client.jacobian(JacobianRequest.fromPartial({ inputs: meshAny(4), jac_inputs: ["mesh.points"], jac_outputs: OUTPUTS, ...request }), cb));
    it("a wrong type URL", async () => {
      await expectStatus(unary((cb) => client.apply({ inputs: { type_url: "type.googleapis.com/acme.Other", value: Buffer.alloc(0) } }, cb)), Code.INVALID_ARGUMENT, /^inputs has type URL "type\.googleapis\.com\/acme\.Other", expected "type\.googleapis\.com\/tesseract\.examples\.meshstats\.v1\.Inputs"$/);
    });
    it("missing inputs", async () => {
      await expectStatus(unary((cb) => client.apply({}, cb)), Code.INVALID_ARGUMENT, /^inputs is missing/);
    });
    it("undecodable bytes", async () => {
      await expectStatus(unary((cb) => client.apply({ inputs: { type_url: MESH_URL, value: Buffer.from([0x0a, 0xff, 0xff, 0x01]) } }, cb)), Code.INVALID_ARGUMENT, /^inputs: cannot decode tesseract\.examples\.meshstats\.v1\.Inputs/);
    });
    it("a tensor whose data does not match its shape", async () => {
      const message = { mesh: { n_points: 2, points: { datatype: 11, shape: [2, 3], data: Buffer.alloc(40) } } };
      const inputs = { type_url: MESH_URL, value: Buffer.from(MeshInputs.encode(MeshInputs.fromPartial(message as never)).finish()) };
      await expectStatus(unary((cb) => client.apply({ inputs }, cb)), Code.INVALID_ARGUMENT, /^mesh\.points: data has 40 bytes, expected 48/);
    });
    it("the Tesseract's own validation", async () => {
      const message = { mesh: { n_points: 3, points: encodeTensor(f64([1, 2, 3], [1, 3])) } };
      const inputs = { type_url: MESH_URL, value: Buffer.from(MeshInputs.encode(MeshInputs.fromPartial(message as never)).finish()) };
      await expectStatus(unary((cb) => client.apply({ inputs }, cb)), Code.INVALID_ARGUMENT, /^mesh\.n_points is 3 but mesh\.points has 1 row$/);
    });
    it("unknown, non-differentiable and empty paths", async () => {
      await expectStatus(jac({ jac_inputs: ["mesh.pointz"] }), Code.INVALID_ARGUMENT, /^jac_inputs: input path "mesh\.pointz" does not exist; differentiable input paths: mesh\.points$/);
      await expectStatus(jac({ jac_inputs: ["mesh.n_points"] }), Code.INVALID_ARGUMENT, /is not differentiable/);
      await expectStatus(jac({ jac_outputs: [] }), Code.INVALID_ARGUMENT, /^jac_outputs is empty/);
      await expectStatus(jac({ jac_outputs: ["statistics.median"] }), Code.INVALID_ARGUMENT, /^jac_outputs: output path "statistics\.median"/);
    });
    it("bad options", async () => {
      await expectStatus(jac({ options: { algorithm: 0, eps: -1 } }), Code.INVALID_ARGUMENT, /^options\.eps must be a positive finite number, got -1$/);
      await expectStatus(jac({ options: { algorithm: 9 } }), Code.INVALID_ARGUMENT, /^options\.algorithm: unknown algorithm 9/);
    });
    it("bad tangents and cotangents", async () => {
      const tangent = { "mesh.points": encodeTensor(f64([1, 2, 3], [1, 3])) };
      await expectStatus(
        unary((cb) => client.jacobianVectorProduct({ inputs: meshAny(4), jvp_inputs: ["mesh.points"], jvp_outputs: OUTPUTS, tangent_vector: tangent } as never, cb)),
        Code.INVALID_ARGUMENT,
        /^tangent_vector\.\{mesh\.points\} has shape \[1, 3\], expected \[4, 3\] like the input$/,
      );
      const cotangent = { "statistics.barycenter": { datatype: 11, shape: [3], data: Buffer.alloc(8) } };
      await expectStatus(
        unary((cb) => client.vectorJacobianProduct({ inputs: meshAny(4), vjp_inputs: ["mesh.points"], vjp_outputs: ["statistics.barycenter"], cotangent_vector: cotangent, sparsity: [] } as never, cb)),
        Code.INVALID_ARGUMENT,
        /^cotangent_vector\.\{statistics\.barycenter\}: data has 8 bytes, expected 24/,
      );
    });
    it("keeps serving after errors", async () => {
      const reply = await unary<{ outputs?: { type_url: string } }>((cb) => client.apply({ inputs: meshAny(4) }, cb));
      assert.equal(reply.outputs?.type_url, "type.googleapis.com/tesseract.examples.meshstats.v1.Outputs");
    });
  });

  it("Describe and AbstractEval", async () => {
    const described = await unary<{ endpoints: string[]; differentiable_inputs: string[]; defaults?: { eps?: number } }>((cb) => client.describe({}, cb));
    assert.deepEqual(described.differentiable_inputs, ["mesh.points"]);
    assert.equal(described.defaults?.eps, 1e-6);
    assert.ok(described.endpoints.includes("AbstractEval"));
    const abstract = { mesh: { n_points: 5, points: { datatype: 11, shape: [5, 3], data: Buffer.alloc(0) } } };
    const reply = await unary<{ outputs: unknown[] }>((cb) => client.abstractEval({ inputs: { type_url: MESH_URL, value: Buffer.from(MeshInputs.encode(MeshInputs.fromPartial(abstract as never)).finish()) } }, cb));
    assert.deepEqual(reply.outputs, [
      { path: "statistics.first_point_coordinates", shape: [3], datatype: 11 },
      { path: "statistics.barycenter", shape: [3], datatype: 11 },
    ]);
  });

  it("AbstractEval of inputs without an abstract tensor validates them as Apply does (5 points in 4 rows were answered OK)", async () => {
    const abstractEval = (inputs: unknown) => unary<{ outputs: unknown[] }>((cb) => client.abstractEval({ inputs: { type_url: MESH_URL, value: Buffer.from(MeshInputs.encode(MeshInputs.fromPartial(inputs as never)).finish()) } }, cb));
    const concrete = sampleMeshInputs(4);
    const wire = (mesh: typeof concrete.mesh) => ({ mesh: { ...mesh, points: { datatype: 11, shape: mesh.points.shape, data: Buffer.from(mesh.points.data.buffer) }, num_points_per_cell: { datatype: 11, shape: [1], data: Buffer.from(Float64Array.of(4).buffer) }, cell_connectivity: { datatype: 8, shape: [4], data: Buffer.from(Int32Array.of(0, 1, 2, 3).buffer) } } });
    assert.equal((await abstractEval(wire(concrete.mesh))).outputs.length, 2);
    await expectStatus(abstractEval(wire({ ...concrete.mesh, n_points: 5 })), Code.INVALID_ARGUMENT, /^mesh\.n_points is 5 but mesh\.points has 4 rows$/);
    // With an abstract tensor (shape only) the Tesseract's checks of values cannot run: shapes are answered.
    const abstract = wire({ ...concrete.mesh, n_points: 5 });
    abstract.mesh.points.data = Buffer.alloc(0);
    assert.equal((await abstractEval(abstract)).outputs.length, 2);
  });

  it("AbstractEval on a Tesseract without it is UNIMPLEMENTED", async () => {
    const server = await startServer({ tesseract: path.join(FIXTURE, "polynomial.js"), port: 0, logger: silentLogger });
    const c = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    try {
      const any = polynomialAny(server.runtime, 2);
      await expectStatus(unary((cb) => c.abstractEval({ inputs: any }, cb)), Code.UNIMPLEMENTED, /^Tesseract "polynomial" does not define abstractEval/);
      const described = await unary<{ endpoints: string[] }>((cb) => c.describe({}, cb));
      assert.ok(!described.endpoints.includes("AbstractEval"));
    } finally {
      c.close();
      await server.close();
    }
  });

  it("a unary Jacobian over the message limit is RESOURCE_EXHAUSTED before any evaluation", async () => {
    const { runtime, counter } = counted("meshstats");
    const server = await startServer({ tesseract: runtime, port: 0, maxMessageBytes: 1 << 20, warmUpMs: 0, logger: silentLogger });
    const c = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    try {
      // 2 outputs × 3 values × 3N inputs × 8 bytes = 144 N bytes > 1 MiB for N = 8000.
      await expectStatus(
        unary((cb) => c.jacobian({ inputs: meshAny(8000), jac_inputs: ["mesh.points"], jac_outputs: OUTPUTS, sparsity: [] }, cb)),
        Code.RESOURCE_EXHAUSTED,
        /^the Jacobian has 144000 FP64 values \(1152000 bytes\), over the 1048576-byte message limit \(--max-message-bytes\); stream it row by row with the gRPC JacobianRows \(or the CLI's jacobian --stream or --out\)$/,
      );
      assert.equal(counter.calls, 0);
    } finally {
      c.close();
      await server.close();
    }
  });

  it("a message limit under the default stream chunk starts the server, the chunk following it; one under 1 KiB, or a chunk over the limit, is refused naming the flag at fault (the default chunk was blamed)", async () => {
    const small = await startServer({ tesseract: "meshstats", port: 0, maxMessageBytes: 100_000, warmUpMs: 0, logger: silentLogger });
    await small.close();
    await assert.rejects(startServer({ tesseract: "meshstats", port: 0, maxMessageBytes: 100, warmUpMs: 0, logger: silentLogger }), /^Error: the max message bytes \(--max-message-bytes\) is 100: expected at least 1024/);
    await assert.rejects(startServer({ tesseract: "meshstats", port: 0, maxMessageBytes: 100_000, streamChunkBytes: 200_000, warmUpMs: 0, logger: silentLogger }), /^Error: the stream chunk bytes \(--stream-chunk-bytes\) is 200000: expected 1024 to the max message bytes \(100000\)$/);
  });

  it("a small message limit still answers the Jacobians that fit (below 64 KiB every one was refused, over a negative limit; then those over half the limit, quoting that half)", async () => {
    const server = await startServer({ tesseract: "meshstats", port: 0, maxMessageBytes: 8192, streamChunkBytes: 4096, warmUpMs: 0, logger: silentLogger });
    const c = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    try {
      // 2 × 3 × 3N values × 8 bytes = 144 N bytes: 576 at N = 4, 5 760 at N = 40 (over half the limit).
      for (const n of [4, 40]) {
        const fits = await unary<{ entries: unknown[] }>((cb) => c.jacobian({ inputs: meshAny(n), jac_inputs: ["mesh.points"], jac_outputs: OUTPUTS, sparsity: [] }, cb));
        assert.equal(fits.entries.length, 2);
      }
      await expectStatus(
        unary((cb) => c.jacobian({ inputs: meshAny(100), jac_inputs: ["mesh.points"], jac_outputs: OUTPUTS, sparsity: [] }, cb)),
        Code.RESOURCE_EXHAUSTED,
        /^the Jacobian has 1800 FP64 values \(14400 bytes\), over the 8192-byte message limit \(--max-message-bytes\); stream it/,
      );
    } finally {
      c.close();
      await server.close();
    }
  });

  describe("cancellation and deadlines reach the engine", () => {
    const n = 200; // 2n = 400 evaluations of >= 2 ms each if nothing stopped them
    let server: RunningServer;
    let c: GeneratedClient;
    let counter: { calls: number };
    let nextCall: (rpc: string) => Promise<Record<string, unknown>>;
    before(async () => {
      const slow = slowRuntime(2);
      counter = slow.counter;
      const logs = new LogLines();
      nextCall = (rpc) => logs.nextCall(rpc);
      server = await startServer({ tesseract: slow.runtime, port: 0, logger: logs.logger });
      c = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    });
    after(async () => {
      c.close();
      await server.close();
    });

    it("a client cancel mid-stream stops evaluations", async () => {
      counter.calls = 0;
      const ended = nextCall("JacobianRows");
      const call = c.jacobianRows({ inputs: polynomialAny(server.runtime, n), jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] });
      const seen: JacobianRowsResponse[] = [];
      let atCancel = -1;
      await new Promise<void>((resolve) => {
        call.on("data", (message: JacobianRowsResponse) => {
          seen.push(message);
          if (seen.length === 3 && atCancel < 0) {
            atCancel = counter.calls;
            call.cancel();
          }
        });
        call.on("error", (e: grpc.ServiceError) => {
          assert.equal(e.code, grpc.status.CANCELLED);
          resolve();
        });
      });
      const line = await ended; // the server's handler has finished
      assert.equal(line.code, Code.CANCELLED);
      assert.ok(seen[0].header, "header first");
      // The evaluation running when the cancel arrived may finish; no other starts.
      assert.ok(counter.calls <= atCancel + 2, `${counter.calls} apply calls after cancelling at ${atCancel}`);
      const afterEnd = counter.calls;
      await unary((cb) => c.describe({}, cb)); // a full round trip later, still nothing runs
      assert.equal(counter.calls, afterEnd);
    });

    it("a deadline stops a unary Jacobian", async () => {
      counter.calls = 0;
      const ended = nextCall("Jacobian");
      const deadline = new Date(Date.now() + 100);
      await expectStatus(unary((cb) => c.jacobian({ inputs: polynomialAny(server.runtime, n), jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] }, new grpc.Metadata(), { deadline }, cb)), grpc.status.DEADLINE_EXCEEDED, /Deadline exceeded|the call's deadline passed/);
      await ended;
      const afterEnd = counter.calls;
      assert.ok(afterEnd < 2 * n / 2, `${afterEnd} evaluations ran`);
      await unary((cb) => c.describe({}, cb));
      assert.equal(counter.calls, afterEnd);
    });

    it("health answers while a long Jacobian runs", async () => {
      const health = healthClient(server.address);
      const ended = nextCall("Jacobian");
      const running = unary((cb) => c.jacobian({ inputs: polynomialAny(server.runtime, n), jac_inputs: ["x"], jac_outputs: ["f"], sparsity: [] }, new grpc.Metadata(), { deadline: new Date(Date.now() + 5000) }, cb)).catch((e) => e);
      const reply = await unary<{ status: string }>((cb) => health.check({ service: "" }, cb));
      assert.equal(reply.status, "SERVING");
      assert.ok(counter.calls < 2 * n, "answered before the Jacobian finished");
      health.close();
      await running;
      await ended;
    });
  });

  it("health checking and reflection answer", async () => {
    const health = healthClient(mesh.address);
    const reply = await unary<{ status: string }>((cb) => health.check({ service: "tesseract.v1.Tesseract" }, cb));
    // An unknown service: NOT_FOUND naming it quoted and clipped (the library echoed 100 000 characters raw).
    await assert.rejects(unary((cb) => health.check({ service: "x".repeat(100_000) }, cb)), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.NOT_FOUND);
      assert.match(e.details, /^Health status unknown for service "x{20,}"… \(100000 characters\)$/);
      return true;
    });
    await assert.rejects(unary((cb) => health.check({ service: "tesseract.v1.Tessract" }, cb)), { code: grpc.status.NOT_FOUND, details: 'Health status unknown for service "tesseract.v1.Tessract"' });
    assert.equal(reply.status, "SERVING");
    // Watch: a served name streams its status; an unknown one SERVICE_UNKNOWN, and leaves nothing behind
    // when cancelled (the library kept every watched name: 600 of 1 MiB ran a server out of memory).
    const firstStatus = (service: string) =>
      new Promise<string>((resolve, reject) => {
        const call = health.watch({ service });
        call.on("data", (m: { status: string }) => {
          resolve(m.status);
          call.cancel();
        });
        call.on("error", (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
      });
    assert.equal(await firstStatus("tesseract.v1.Tesseract"), "SERVING");
    const watchers = (mesh.health as unknown as { watchers: Map<string, unknown> }).watchers;
    const before = watchers.size;
    for (let k = 0; k < 20; k++) assert.equal(await firstStatus(`${k}${"x".repeat(1000)}`), "SERVICE_UNKNOWN");
    assert.equal(watchers.size, before);
    // A name longer than any service's is refused: a held stream keeps its request (900 watches of 1 MB names held 630 MB).
    await assert.rejects(firstStatus("x".repeat(100_000)), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
      assert.match(e.details, /^service is 100000 characters long, more than any service name \(at most 1024\): "x{20,}"… \(100000 characters\)$/);
      return true;
    });
    health.close();

    // The whole protocol is covered in reflection.test.ts.
    const reflection = new ReflectionStream(mesh.address, grpc.credentials.createInsecure());
    const listed = await reflection.ask({ list_services: "" });
    const names = listed.list_services_response!.service.map((s) => s.name);
    assert.ok(names.includes("tesseract.v1.Tesseract") && names.includes("grpc.health.v1.Health"), names.join(", "));
    const file = await reflection.ask({ file_containing_symbol: "tesseract.examples.meshstats.v1.Inputs" });
    assert.ok(file.file_descriptor_response!.file_descriptor_proto.length >= 1);
    reflection.close();
  });
});

function healthClient(address: string) {
  const { service } = require("grpc-health-check");
  const Health = grpc.makeGenericClientConstructor(service, "grpc.health.v1.Health");
  return new Health(address, grpc.credentials.createInsecure()) as any;
}
