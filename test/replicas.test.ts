/**
 * The distributed layout with plain processes on loopback, as docker-compose.yml's `distributed`
 * profile runs it in containers: three apply replicas, each its own `tesseract-grpc serve` child
 * process, and one gradient engine (in-process here) whose evaluations are Apply calls to them over
 * one round_robin channel. Results must be bit-identical to an inline engine's, the evaluation count
 * exact, the calls spread over every replica, and a replica's failure must name the evaluation.
 *
 * Apply calls per replica are counted from each replica's own JSON log lines on stderr (one
 * `{"msg":"call","rpc":"Apply"}` line per call). A server logs a call's line synchronously before it
 * answers, and one pipe keeps its order, so after an operation a Describe "barrier" to each replica
 * (awaited through its own log line) proves that every Apply line of the operation has been read.
 */
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter, once } from "node:events";
import * as path from "node:path";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import ndarray from "ndarray";
import { Algorithm, assembleJacobian, TesseractClient } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { FiniteDifferenceOptions, TesseractClient as GeneratedClient, type JacobianResponse } from "../generated/tesseract/v1/tesseract";
import { Code } from "../index";
import { startServer, type RunningServer } from "../index";
import { loadTesseract } from "../index";
import { silentLogger } from "../server/log";
import { sampleMeshInputs } from "../server/tesseracts/samples";

const CLI = path.join(__dirname, "../cli/cli.js");
const POLYNOMIAL = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
const FIRST = "statistics.first_point_coordinates";
const BARY = "statistics.barycenter";
const CENTRAL = Algorithm.ALGORITHM_CENTRAL;

type LogLine = Record<string, unknown>;

/** The environment without TESSERACT_GRPC_* variables, so that nothing outside the test sets a flag. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith("TESSERACT_GRPC_")) env[key] = value;
  return { ...env, TESSERACT_GRPC_LOG_LEVEL: "info" };
}

/** One apply replica: `tesseract-grpc serve <tesseract> --port 0 --workers 0` in a child process. */
class Replica {
  /** Apply calls this replica has logged so far. */
  applies = 0;
  address = "";
  private readonly events = new EventEmitter();
  private readonly stderr: string[] = [];
  readonly child: ChildProcess;
  private readonly exited: Promise<[number | null, NodeJS.Signals | null]>;

  private constructor(
    readonly tesseract: string,
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(process.execPath, [CLI, "serve", tesseract, "--port", "0", "--workers", "0"], { stdio: ["ignore", "pipe", "pipe"], env: { ...cleanEnv(), ...env } });
    this.exited = once(this.child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    createInterface({ input: this.child.stderr! }).on("line", (text) => {
      this.stderr.push(text);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return; // not a log line (a crash's stack trace, say): kept in `stderr` for messages
      }
      if (line.msg === "call" && line.rpc === "Apply") this.applies++;
      this.events.emit("line", line);
    });
  }

  static async start(tesseract: string, env: NodeJS.ProcessEnv = {}): Promise<Replica> {
    const replica = new Replica(tesseract, env);
    const stdout = createInterface({ input: replica.child.stdout! });
    const first = await Promise.race([
      once(stdout, "line").then(([line]) => line as string),
      replica.exited.then(([code, signal]) => {
        throw new Error(`replica "${tesseract}" exited (${code ?? signal}) before listening:\n${replica.stderr.join("\n")}`);
      }),
    ]);
    const match = /^listening on (127\.0\.0\.1:\d+)$/.exec(first);
    assert.ok(match, `first stdout line of the replica: ${first}`);
    replica.address = match[1];
    return replica;
  }

  /** Resolves with the first log line from now on that matches. */
  next(match: (line: LogLine) => boolean): Promise<LogLine> {
    return new Promise((resolve) => {
      const listener = (line: LogLine) => {
        if (!match(line)) return;
        this.events.off("line", listener);
        resolve(line);
      };
      this.events.on("line", listener);
    });
  }

  /**
   * A Describe call straight to this replica, awaited through its log line: every call the replica
   * answered before it has had its line read by then (one process, one pipe, lines in order).
   */
  async barrier(): Promise<void> {
    const logged = this.next((line) => line.msg === "call" && line.rpc === "Describe");
    const client = new GeneratedClient(this.address, grpc.credentials.createInsecure());
    try {
      await new Promise<void>((resolve, reject) => client.describe({}, (error) => (error ? reject(error) : resolve())));
    } finally {
      client.close();
    }
    await logged;
  }

  /** Resolves with the exit code once the process has ended by itself. */
  async exitCode(): Promise<number | null> {
    const [code] = await this.exited;
    return code;
  }

  /** SIGTERM; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    const [code] = await this.exited;
    return code;
  }
}

/** An `ipv4:` target over the replicas: grpc-js resolves it to every address, round_robin spreads calls. */
const target = (replicas: Replica[]) => `ipv4:${replicas.map((r) => r.address).join(",")}`;

/**
 * Runs `operation` and returns its result with the Apply calls each replica received meanwhile:
 * awaits (by events) that the replicas have logged `expected` calls in all, and a barrier to each, so
 * that every call they answered, `expected` or not, is in the counts.
 */
async function counted<T>(replicas: Replica[], expected: number, operation: () => Promise<T>): Promise<{ result: T; counts: number[] }> {
  const before = replicas.map((r) => r.applies);
  const total = () => replicas.reduce((sum, r, i) => sum + r.applies - before[i], 0);
  const reached = new Promise<void>((resolve) => {
    if (total() >= expected) return resolve();
    for (const replica of replicas) {
      void replica
        .next((line) => line.msg === "call" && line.rpc === "Apply" && total() >= expected)
        .then(() => resolve());
    }
  });
  const result = await operation();
  // The barriers settle it either way: a shortfall then fails the count assertions instead of hanging.
  const barriers = Promise.all(replicas.map((r) => r.barrier()));
  await Promise.race([reached, barriers]);
  await barriers;
  return { result, counts: replicas.map((r, i) => r.applies - before[i]) };
}

/** Every replica got a fair share (at least half of an even split) and the counts sum to `total`. */
function assertSpread(counts: number[], total: number): void {
  assert.equal(counts.reduce((a, b) => a + b, 0), total, `Apply calls per replica: ${counts.join(", ")}`);
  const floor = (total / counts.length) * 0.5;
  for (const [i, count] of counts.entries()) {
    assert.ok(count > 0 && count >= floor, `replica ${i} received ${count} of ${total} Apply calls (${counts.join(", ")}); expected at least ${floor}`);
  }
}

describe("distributed: one gradient engine, apply replicas in other processes", function () {
  // Three child processes start (and load protobufjs schemas) in parallel.
  this.timeout(60_000);

  const replicas: Replica[] = [];
  let distributed: RunningServer;
  let inline: RunningServer;
  let viaReplicas: TesseractClient<MeshInputs, MeshOutputs>;
  let reference: TesseractClient<MeshInputs, MeshOutputs>;

  before(async () => {
    const started = await Promise.allSettled([0, 1, 2].map(() => Replica.start("meshstats")));
    for (const s of started) if (s.status === "fulfilled") replicas.push(s.value);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;
    distributed = await startServer({ tesseract: "meshstats", port: 0, replicas: target(replicas), concurrency: 6, logger: silentLogger });
    inline = await startServer({ tesseract: "meshstats", port: 0, workers: 0, logger: silentLogger });
    viaReplicas = new TesseractClient<MeshInputs, MeshOutputs>(distributed.address, { inputs: MeshInputs, outputs: MeshOutputs });
    reference = new TesseractClient<MeshInputs, MeshOutputs>(inline.address, { inputs: MeshInputs, outputs: MeshOutputs });
  });

  after(async () => {
    viaReplicas?.close();
    reference?.close();
    await Promise.all([distributed?.close(), inline?.close()]);
    const codes = await Promise.all(replicas.map((r) => r.stop()));
    assert.deepEqual(codes, replicas.map(() => 0), "replicas exit 0 on SIGTERM");
  });

  const N = 30;
  const n = 3 * N;
  /** Central over meshstats' declared structure: N column groups (of 3n = 90 elements), two evaluations each. */
  const calls = 2 * N;

  it(`central Jacobian, N = ${N}: bit-identical to inline, ${calls} evaluations spread over the 3 replicas`, async () => {
    const request = { inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [FIRST, BARY], options: { algorithm: CENTRAL } };
    const { result, counts } = await counted(replicas, calls, () => viaReplicas.jacobian(request));
    const expected = await reference.jacobian(request);
    assert.equal(result.stats.apply_calls, calls);
    assert.equal(expected.stats.apply_calls, calls);
    for (const output of [FIRST, BARY]) {
      const J = result.jacobian[output]["mesh.points"];
      assert.deepEqual(J.shape, [3, N, 3]);
      assert.ok(J.data instanceof Float64Array);
      assert.deepEqual(J.data, expected.jacobian[output]["mesh.points"].data, `${output}: not bit-identical to the inline engine`);
    }
    assertSpread(counts, calls);
  });

  it(`streamed Jacobian rows (central, N = ${N}): the same bits as the inline unary Jacobian, ${calls} evaluations`, async () => {
    const request = { inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [FIRST, BARY], options: { algorithm: CENTRAL } };
    const { result, counts } = await counted(replicas, calls, () => assembleJacobian(viaReplicas.jacobianRows(request)));
    const expected = await reference.jacobian(request);
    assert.equal(result.stats.apply_calls, calls);
    for (const output of [FIRST, BARY]) {
      assert.deepEqual(result.jacobian[output]["mesh.points"].data, expected.jacobian[output]["mesh.points"].data, `${output}: streamed rows not bit-identical`);
    }
    assertSpread(counts, calls);
  });

  it(`VJP (central, N = ${N}): bit-identical to inline, ${calls} evaluations spread over the 3 replicas`, async () => {
    const cotangent = { [FIRST]: ndarray(Float64Array.of(1, -2, 0.5), [3]), [BARY]: ndarray(Float64Array.of(3, 0.25, -1), [3]) };
    const request = { inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [FIRST, BARY], cotangent, options: { algorithm: CENTRAL } };
    const { result, counts } = await counted(replicas, calls, () => viaReplicas.vjp(request));
    const expected = await reference.vjp(request);
    assert.equal(result.stats.apply_calls, calls);
    assert.equal(expected.stats.apply_calls, calls);
    assert.deepEqual(Object.keys(result.result), ["mesh.points"]);
    assert.deepEqual(result.result["mesh.points"].shape, [N, 3]);
    assert.deepEqual(result.result["mesh.points"].data, expected.result["mesh.points"].data, "VJP not bit-identical to the inline engine");
    assertSpread(counts, calls);
  });

  it("JVP (central): bit-identical to inline, 2 evaluations on the replicas", async () => {
    const tangent = { "mesh.points": ndarray(Float64Array.from({ length: n }, (_, i) => Math.cos(i)), [N, 3]) };
    const request = { inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [FIRST, BARY], tangent, options: { algorithm: CENTRAL } };
    const { result, counts } = await counted(replicas, 2, () => viaReplicas.jvp(request));
    const expected = await reference.jvp(request);
    assert.equal(result.stats.apply_calls, 2);
    assert.equal(expected.stats.apply_calls, 2);
    for (const output of [FIRST, BARY]) {
      assert.deepEqual(result.result[output].data, expected.result[output].data, `${output}: JVP not bit-identical to the inline engine`);
    }
    assert.equal(counts.reduce((a, b) => a + b, 0), 2, `Apply calls per replica: ${counts.join(", ")}`);
  });

  it("a replica's apply failure is a status naming the evaluation, as on the inline path", async () => {
    // The polynomial fixture (outside the source tree) on two replicas of its own; mode "throw"
    // fails every apply with y > 0.5, i.e. only the evaluation at y + h.
    const poly = await Promise.all([Replica.start(POLYNOMIAL), Replica.start(POLYNOMIAL)]);
    let engine: RunningServer | undefined;
    let client: GeneratedClient | undefined;
    try {
      const polyTarget = target(poly);
      engine = await startServer({ tesseract: POLYNOMIAL, port: 0, replicas: polyTarget, concurrency: 6, logger: silentLogger });
      client = new GeneratedClient(engine.address, grpc.credentials.createInsecure());
      const inputs = { x: ndarray(Float64Array.of(0.25, 2), [2]), y: ndarray(Float64Array.of(0.5), []), params: {}, blocks: [], mode: "throw" };
      const any = engine.runtime.schema.inputs.encodeAny(inputs, "inputs");
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        client!.jacobian({ inputs: { type_url: any.type_url, value: Buffer.from(any.value) }, jac_inputs: ["x", "y"], jac_outputs: ["f"], sparsity: [] }, (e) => resolve(e)),
      );
      assert.ok(error, "the Jacobian succeeded");
      assert.equal(error.code, Code.UNKNOWN, `code ${error.code}: ${error.details}`);
      const escaped = polyTarget.replace(/[.]/g, "\\.");
      assert.match(error.details, new RegExp(`^evaluation at y \\+ h failed: apply replica \\(${escaped}\\): apply failed: y is too large for this model$`));
    } finally {
      client?.close();
      await engine?.close();
      const codes = await Promise.all(poly.map((r) => r.stop()));
      assert.deepEqual(codes, [0, 0], "polynomial replicas exit 0 on SIGTERM");
    }
  });

  it("a replica that goes away mid-Jacobian: its evaluations are retried on the others, and the result is the same", async () => {
    // Three polynomial replicas; one ends its process (exit code 3) at its 4th apply, with calls in
    // flight. gRPC's retry policy resends them (UNAVAILABLE) and round_robin picks a live replica.
    const poly = await Promise.all([Replica.start(POLYNOMIAL, { POLYNOMIAL_EXIT_AFTER: "4" }), Replica.start(POLYNOMIAL), Replica.start(POLYNOMIAL)]);
    let engine: RunningServer | undefined;
    let client: GeneratedClient | undefined;
    try {
      engine = await startServer({ tesseract: POLYNOMIAL, port: 0, replicas: target(poly), concurrency: 6, logger: silentLogger });
      client = new GeneratedClient(engine.address, grpc.credentials.createInsecure());
      const n = 40;
      const inputs = { x: ndarray(Float64Array.from({ length: n }, (_, i) => 0.1 + i / 7), [n]), y: ndarray(Float64Array.of(0.3), []), params: {}, blocks: [], mode: "" };
      const any = engine.runtime.schema.inputs.encodeAny(inputs, "inputs");
      const request = { inputs: { type_url: any.type_url, value: Buffer.from(any.value) }, jac_inputs: ["x", "y"], jac_outputs: ["f"], options: FiniteDifferenceOptions.fromPartial({ algorithm: CENTRAL }), sparsity: [] };
      const response = await new Promise<JacobianResponse>((resolve, reject) => client!.jacobian(request, (e, r) => (e ? reject(e) : resolve(r!))));
      assert.equal(await poly[0].exitCode(), 3, "the first replica went away mid-request");
      assert.equal(response.stats?.apply_calls, 2 * (n + 1));

      const inline = loadTesseract(POLYNOMIAL);
      const expected = await inline.jacobian({ inputs, inputPaths: ["x", "y"], outputPaths: ["f"], options: { algorithm: CENTRAL } });
      assert.equal(response.entries.length, expected.entries.length);
      for (const [i, entry] of response.entries.entries()) {
        const got = new Float64Array(new Uint8Array(entry.value!.data).buffer);
        assert.deepEqual(got, expected.entries[i].values, `${entry.output_path} w.r.t. ${entry.input_path}: not bit-identical to the inline engine`);
      }
    } finally {
      client?.close();
      await engine?.close();
      await Promise.all(poly.slice(1).map((r) => r.stop()));
    }
  });
});
