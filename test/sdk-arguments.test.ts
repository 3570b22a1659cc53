/**
 * The SDK called from plain JavaScript, where TypeScript's checks do not run: every public function
 * and method with wrong-typed arguments against a real server on 127.0.0.1:0. Each misuse rejects
 * (or throws) at once with INVALID_ARGUMENT naming the argument or field and what was expected: they
 * were TypeErrors from inside the SDK, or requests sent without what the caller wrote.
 */
import { strict as assert } from "node:assert";
import ndarray from "ndarray";
import * as sdk from "../client";
import { TesseractClient, TesseractClientError } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import { clientRejects } from "./helpers";

const BARY = "statistics.barycenter";

/** Anything: the calls below are what plain JavaScript can make. */
type Loose = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A signal from an AbortController polyfill: AbortSignal's surface, not Node's class. */
class PolyfilledSignal {
  aborted = false;
  reason: unknown;
  private readonly listeners = new Set<() => void>();
  addEventListener(_type: string, listener: () => void): void {
    this.listeners.add(listener);
  }
  removeEventListener(_type: string, listener: () => void): void {
    this.listeners.delete(listener);
  }
  abort(reason: unknown): void {
    this.aborted = true;
    this.reason = reason;
    for (const listener of this.listeners) listener();
  }
}

describe("SDK: arguments from plain JavaScript", () => {
  let server: RunningServer;
  let client: TesseractClient<MeshInputs, MeshOutputs>;
  const loose = () => client as Loose;
  const inputs = sampleMeshInputs(3);
  const request = { inputs, inputPaths: ["mesh.points"], outputPaths: [BARY] };
  const cotangent = { [BARY]: ndarray(Float64Array.of(1, 1, 1), [3]) };
  const tangent = { "mesh.points": ndarray(new Float64Array(9), [3, 3]) };
  const drain = async (rows: AsyncIterable<unknown>) => {
    for await (const _ of rows);
  };

  before(async () => {
    server = await startServer({ tesseract: "meshstats", host: "127.0.0.1", port: 0, logger: silentLogger });
    client = new TesseractClient(server.address, { inputs: MeshInputs, outputs: MeshOutputs });
  });

  after(async () => {
    client?.close();
    await server?.close();
  });

  const cases: [string, () => unknown, RegExp][] = [
    ["jacobian(undefined)", () => loose().jacobian(undefined), /^jacobian's request is missing \(undefined\): expected an object \{ inputs, inputPaths, outputPaths, options\?, sparsity\? \}$/],
    ["jacobian(null)", () => loose().jacobian(null), /^jacobian's request is null: expected an object \{ inputs/],
    ["jacobian(inputs), the request's wrapper forgotten", () => loose().jacobian(inputs), /^mesh is not a field of jacobian's request: expected \{ inputs, inputPaths, outputPaths, options\?, sparsity\? \}$/],
    ["a request without inputPaths", () => loose().jacobian({ inputs, outputPaths: [BARY] }), /^inputPaths is missing \(undefined\): expected a list of path strings, such as \["mesh\.points"\]$/],
    ["inputPaths misspelt", () => loose().jacobian({ inputs, inputPath: ["mesh.points"], outputPaths: [BARY] }), /^inputPath is not a field of jacobian's request/],
    ["inputPaths a string (sent as a list of its characters)", () => loose().jacobian({ ...request, inputPaths: "mesh.points" }), /^inputPaths is "mesh\.points": expected a list of path strings/],
    ["a number in inputPaths", () => loose().jacobian({ ...request, inputPaths: [1] }), /^inputPaths\[0\] is 1: expected a path string/],
    ["a Symbol in outputPaths", () => loose().jacobian({ ...request, outputPaths: [Symbol("b")] }), /^outputPaths\[0\] is a Symbol \(b\): expected a path string/],
    ["a Set of paths", () => loose().jacobian({ ...request, inputPaths: new Set(["mesh.points"]) }), /^inputPaths is a Set: expected a list of path strings/],
    ["a getter that throws", () => loose().jacobian({ get inputs() { throw new Error("boom"); }, inputPaths: [], outputPaths: [] }), /^inputs could not be read: boom$/],
    ["options a string", () => loose().jacobian({ ...request, options: "central" }), /^options is "central": expected an object \{ algorithm\?, eps\?/],
    ["options.eps a string", () => loose().jacobian({ ...request, options: { eps: "1e-6" } }), /^options\.eps is "1e-6": expected a number$/],
    ["an option misspelt (dropped, the server's default used)", () => loose().jacobian({ ...request, options: { epz: 1e-6 } }), /^options\.epz is not a field of options: expected \{ algorithm\?, eps\?/],
    ["eps_by_path's value a string", () => loose().jacobian({ ...request, options: { eps_by_path: { "mesh.points": "1e-6" } } }), /^options\.eps_by_path\.\{mesh\.points\} is "1e-6": expected a number$/],
    ["sparsity an object", () => loose().jacobian({ ...request, sparsity: {} }), /^sparsity is an object: expected a list of \{ output_path, input_path, output_index, input_index \}$/],
    ["a sparsity pattern null", () => loose().jacobian({ ...request, sparsity: [null] }), /^sparsity\[0\] is null: expected an object \{ output_path/],
    ["a sparsity pattern's path a number", () => loose().jacobian({ ...request, sparsity: [{ output_path: 1, input_path: "mesh.points", output_index: [0], input_index: [0] }] }), /^sparsity\[0\]\.output_path is 1: expected a string$/],
    ["jacobianRows(undefined)", () => drain(loose().jacobianRows(undefined)), /^jacobianRows's request is missing \(undefined\)/],
    ["jacobianRows without outputPaths", () => drain(loose().jacobianRows({ inputs, inputPaths: ["mesh.points"] })), /^outputPaths is missing \(undefined\)/],
    ["jvp(undefined)", () => loose().jvp(undefined), /^jvp's request is missing \(undefined\): expected an object \{ inputs, inputPaths, outputPaths, options\?, tangent \}$/],
    ["jvp without tangent", () => loose().jvp(request), /^tangent is missing \(undefined\): expected an object of ndarrays keyed by path/],
    ["jvp with a bare ndarray as tangent", () => loose().jvp({ ...request, tangent: ndarray(new Float64Array(9), [3, 3]) }), /^tangent is an ndarray of shape \[3, 3\]: expected an object of ndarrays keyed by path/],
    ["jvp with sparsity (dropped)", () => loose().jvp({ ...request, tangent, sparsity: [] }), /^sparsity is not a field of jvp's request/],
    ["vjp with cotangent null", () => loose().vjp({ ...request, cotangent: null }), /^cotangent is null: expected an object of ndarrays keyed by path/],
    ["vjp with a list of cotangents", () => loose().vjp({ ...request, cotangent: [cotangent[BARY]] }), /^cotangent is a plain array of 1: expected an object of ndarrays keyed by path/],
    ["checkGradients(undefined)", () => loose().checkGradients(undefined), /^checkGradients's request is missing \(undefined\)/],
    ["checkGradients' rtol a string", () => loose().checkGradients({ inputs, rtol: "1e-4" }), /^rtol is "1e-4": expected a number$/],
    ["checkGradients' endpoints a string", () => loose().checkGradients({ inputs, endpoints: "jvp" }), /^endpoints is "jvp": expected a list of endpoint strings/],
    ["apply(undefined)", () => loose().apply(undefined), /^inputs is missing \(undefined\): expected an object of the Tesseract's input fields/],
    ["apply(42)", () => loose().apply(42), /^inputs is 42: expected an object of the Tesseract's input fields/],
    ["apply([]), sent as an empty message", () => loose().apply([]), /^inputs is a plain array of 0: expected an object/],
    ["abstractEval(\"x\")", () => loose().abstractEval("x"), /^inputs is "x": expected an object/],
    ["an input field its message lacks (dropped)", () => loose().apply({ ...inputs, fd_algorithmm: 1 }), /^inputs could not be encoded: fd_algorithmm is not a field of the Tesseract's inputs: expected one of mesh, fd_algorithm$/],
    ["a nested field its message lacks", () => loose().apply({ ...inputs, mesh: { ...inputs.mesh, point: inputs.mesh.points } }), /^inputs could not be encoded: mesh\.point is not a field of mesh's message: expected one of n_points, n_cells, points,/],
    ["a plain list where a tensor goes", () => loose().apply({ ...inputs, mesh: { ...inputs.mesh, points: [[0, 0, 0]] } }), /^inputs could not be encoded: mesh\.points is a plain array of 1: expected a tensor, an ndarray: ndarray\(data, shape\)$/],
    ["a number where a tensor goes (sent as an empty tensor)", () => loose().apply({ ...inputs, mesh: { ...inputs.mesh, points: 5 } }), /^inputs could not be encoded: mesh\.points is 5: expected a tensor/],
    ["an integer field a word (the encoder named no field)", () => loose().apply({ ...inputs, mesh: { ...inputs.mesh, n_points: "three" } }), /^inputs could not be encoded: mesh\.n_points is "three": Cannot convert three to a BigInt$/],
    ["an integer field a fraction", () => loose().apply({ ...inputs, mesh: { ...inputs.mesh, n_cells: 1.5 } }), /^inputs could not be encoded: mesh\.n_cells is 1\.5: The number 1\.5 cannot be converted to a BigInt/],
    ["a cyclic object", () => { const cyclic: Loose = { ...inputs, mesh: { ...inputs.mesh } }; cyclic.mesh.cell_data = { loop: cyclic }; return loose().apply(cyclic); }, /^inputs could not be encoded: mesh\.cell_data\.loop refers back to the inputs \(a cyclic object\)/],
    ["an input getter that throws", () => loose().apply({ get mesh() { throw new Error("boom"); }, fd_algorithm: 0 }), /^inputs could not be encoded: mesh could not be read: boom$/],
    ["call options a number", () => loose().apply(inputs, 5), /^apply's call options is 5: expected an object \{ deadline\?, metadata\?, signal\?, waitForReady\? \}$/],
    ["a call option misspelt (no deadline)", () => loose().apply(inputs, { deadlin: 100 }), /^deadlin is not a field of apply's call options/],
    ["a signal that is no AbortSignal", () => loose().jacobian(request, { signal: {} }), /^signal is an object: expected an AbortSignal, such as new AbortController\(\)\.signal$/],
    ["metadata a string", () => loose().describe({ metadata: "x-id: 1" }), /^metadata is "x-id: 1": expected an object of header strings/],
    ["a metadata value a number", () => loose().describe({ metadata: { "x-id": 1 } }), /^metadata\.x-id is 1: expected a string/],
    ["waitForReady a string", () => loose().health("", { waitForReady: "yes" }), /^waitForReady is "yes": expected true or false$/],
    ["health's service a number", () => loose().health(5), /^health's service is 5: expected a string$/],
    ["assembleJacobian(undefined)", () => sdk.assembleJacobian(undefined as Loose), /^assembleJacobian's events is missing \(undefined\): expected an iterable or async iterable of JacobianRows events/],
    ["assembleJacobian(client.jacobianRows), uncalled", () => sdk.assembleJacobian(client.jacobianRows as Loose), /^assembleJacobian's events is a function \(jacobianRows\): .*call the method, client\.jacobianRows\(request\)$/],
    ["assembleSparseJacobian(a Promise)", () => sdk.assembleSparseJacobian(Promise.resolve([]) as Loose), /^assembleSparseJacobian's events is a Promise: .*not awaited$/],
    ["densifyRows(5)", () => sdk.densifyRows(5 as Loose).next(), /^densifyRows' events is 5:/],
    ["an event that is none (skipped before)", () => sdk.assembleJacobian([{}] as Loose), /^an event is an object: expected \{ header \}, \{ row \} or \{ stats \}/],
    ["an event null", () => sdk.assembleSparseJacobian([null] as Loose), /^an event is null: expected \{ header \}/],
    ["toRowsEvent(undefined)", () => sdk.toRowsEvent(undefined as Loose), /^toRowsEvent's message is missing \(undefined\): expected an object$/],
  ];

  for (const [name, call, details] of cases) {
    it(`${name}: INVALID_ARGUMENT naming it`, async () => {
      await clientRejects(Promise.resolve().then(call), "INVALID_ARGUMENT", details);
    });
  }

  it("codeName names gRPC's codes by number, and nothing else as one", () => {
    assert.equal(sdk.codeName(3), "INVALID_ARGUMENT");
    assert.equal(sdk.codeName(99), "CODE_99");
    // grpc-js' status enum maps names back to numbers: a name given was answered 3, a number.
    assert.equal(sdk.codeName("INVALID_ARGUMENT" as Loose), "CODE_INVALID_ARGUMENT");
    assert.equal(sdk.codeName(3.5), "CODE_3.5");
  });

  it("a frozen request, a Proxy of one and frozen inputs are read as they are", async () => {
    const frozen = Object.freeze({ ...request, inputs: Object.freeze({ ...inputs, mesh: Object.freeze({ ...inputs.mesh }) }) });
    assert.deepEqual((await client.jacobian(frozen)).block(BARY, "mesh.points").shape, [3, 3, 3]);
    assert.deepEqual((await client.jacobian(new Proxy(request, {}))).block(BARY, "mesh.points").shape, [3, 3, 3]);
  });

  it("a getter is read once: the request sent is the one checked", async () => {
    let reads = 0;
    const once: Loose = { inputs, outputPaths: [BARY], get inputPaths() { reads++; return reads === 1 ? ["mesh.points"] : 5; } };
    const { stats } = await client.jacobian(once);
    assert.equal(reads, 1);
    assert.ok(stats.apply_calls > 0);
  });

  it("results: block(), errorBlock() and get() with a path that is no string: INVALID_ARGUMENT naming it", async () => {
    const result = await client.jacobian(request);
    await clientRejects(Promise.resolve().then(() => (result as Loose).block(BARY)), "INVALID_ARGUMENT", /^inputPath is missing \(undefined\): expected a string$/);
    await clientRejects(Promise.resolve().then(() => (result as Loose).block(Symbol("x"), "mesh.points")), "INVALID_ARGUMENT", /^outputPath is a Symbol \(x\): expected a string$/);
    const vjp = await client.vjp({ ...request, cotangent });
    await clientRejects(Promise.resolve().then(() => (vjp as Loose).get(undefined)), "INVALID_ARGUMENT", /^path is missing \(undefined\): expected a string$/);
  });

  it("the constructor: address, types and options named", () => {
    const make = (...args: Loose[]) => () => new (TesseractClient as Loose)(...args);
    const types = { inputs: MeshInputs, outputs: MeshOutputs };
    for (const [args, message] of [
      [[undefined, types], /^INVALID_ARGUMENT: TesseractClient's address is missing \(undefined\): expected the server's address, a string "HOST:PORT"/],
      [[50051, types], /^INVALID_ARGUMENT: TesseractClient's address is 50051:/],
      // A port alone was dialled as the host 50051 at port 50051.
      [["50051", types], /^INVALID_ARGUMENT: TesseractClient's address is "50051": expected "HOST:PORT", not a port alone: "127\.0\.0\.1:50051"$/],
      [[server.address], /^INVALID_ARGUMENT: TesseractClient's types is missing \(undefined\): expected an object \{ inputs, outputs, inputType\?, outputType\?, outputDatatypes\? \}/],
      [[server.address, {}], /^INVALID_ARGUMENT: types\.inputs is missing \(undefined\): expected a generated message object with encode and decode/],
      [[server.address, types, { token: 5 }], /^INVALID_ARGUMENT: options\.token is 5: expected a string$/],
      [[server.address, types, { maxMessageBytes: "64MiB" }], /^INVALID_ARGUMENT: options\.maxMessageBytes is "64MiB": expected a whole number of bytes/],
      [[server.address, types, { fieldNames: "json" }], /^INVALID_ARGUMENT: options\.fieldNames is "json": expected "sdk" or "wire"$/],
      [[server.address, types, { credentials: {} }], /^INVALID_ARGUMENT: options\.credentials is an object: expected grpc\.ChannelCredentials/],
      [[server.address, types, { tls: "yes" }], /^INVALID_ARGUMENT: options\.tls is "yes": expected an object \{ ca\?, cert\?, key\? \}/],
      [[server.address, types, { tokn: "s3cret" }], /^INVALID_ARGUMENT: options\.tokn is not a field of TesseractClient's options/],
    ] as [Loose[], RegExp][]) {
      assert.throws(make(...args), (e: unknown) => e instanceof TesseractClientError && message.test(e.message), String(args[args.length - 1]));
    }
    make(server.address, types, null)().close(); // null options: the defaults, as undefined
  });

  it("the codec's exports: no ndarray is named, not a TypeError from inside", () => {
    assert.throws(() => sdk.encodeTensor(undefined as Loose), { name: "TypeError", message: "encodeTensor takes an ndarray, ndarray(data, shape); it was given undefined" });
    assert.throws(() => sdk.tensorMessage(new Float64Array(3) as Loose), { message: "encodeTensor takes an ndarray, ndarray(data, shape); it was given a bare Float64Array" });
    assert.throws(() => sdk.toFloat64([1, 2] as Loose), { message: "toFloat64 takes an ndarray, ndarray(data, shape); it was given a plain array" });
    assert.throws(() => sdk.decodeTensor(undefined as Loose, "t"), { message: "decodeTensor: t is undefined: expected a Tensor message { datatype, shape, data }" });
    assert.throws(() => sdk.bearerToken(undefined as Loose), { name: "TypeError", message: "a bearer token is a string (the `token` option); it is undefined" });
    assert.throws(() => sdk.tlsCredentials("ca.pem" as Loose), { name: "TypeError", message: /^tlsCredentials takes \{ ca\?, cert\?, key\? \}/ });
  });

  it("a polyfilled AbortSignal cancels the call: already aborted, CANCELLED with its reason; aborted mid-stream, the loop ends CANCELLED", async () => {
    const aborted = new PolyfilledSignal();
    aborted.abort(new Error("user left"));
    await clientRejects(client.apply(inputs, { signal: aborted as Loose }), "CANCELLED", /^the call was cancelled by its AbortSignal \(user left\)$/);

    const signal = new PolyfilledSignal();
    let rows = 0;
    const big = { inputs: sampleMeshInputs(300), inputPaths: ["mesh.points"], outputPaths: [BARY], options: { sparsity_mode: sdk.SparsityMode.SPARSITY_MODE_DENSE } };
    const stream = (async () => {
      for await (const event of client.jacobianRows(big, { signal: signal as Loose })) {
        if (event.row && ++rows === 2) signal.abort("enough");
      }
    })();
    await clientRejects(stream, "CANCELLED", /^the call was cancelled by its AbortSignal \(enough\)$/);
    assert.equal(rows, 2);
    // One signal, many calls: it still works for the next.
    assert.deepEqual((await client.apply(inputs, { signal: new PolyfilledSignal() as Loose })).statistics?.barycenter?.shape, [3]);
  });
});
