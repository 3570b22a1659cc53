/**
 * JacobianRows through the SDK, against real servers with a small message budget (1024 bytes):
 * events in contract order, rows split over messages with increasing offsets, every raw message within
 * the budget, the assembled Jacobian bit-for-bit equal to the unary one, incomplete streams rejected,
 * and cancellation (break, signal, deadline) reaching the server's engine.
 */
import { strict as assert } from "node:assert";
import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";
import ndarray from "ndarray";
import { Algorithm, assembleJacobian, assembleSparseJacobian, DataType, densifyRows, packAny, SparsityMode, TesseractClient, toRowsEvent, type DenseRowsEvent, type JacobianRowsEvent, type JacobianResult, type SparseJacobianResult } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { Inputs as VectorInputs, Outputs as VectorOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { FiniteDifferenceOptions, JacobianRowsResponse, TesseractClient as GeneratedClient } from "../generated/tesseract/v1/tesseract";
import { startServer, type RunningServer } from "../index";
import { writeJacobianNpy } from "../client/npy-writer";
import { silentLogger } from "../server/log";
import { TesseractRuntime } from "../server/runtime";
import meshstats from "../server/tesseracts/meshstats";
import { sampleMeshInputs } from "../server/tesseracts/samples";
import vectoradd from "../server/tesseracts/vectoradd";
import { assertClose, clientRejects, LogLines, meshJacobian } from "./helpers";

const BUDGET = 1024;
const BARY = "statistics.barycenter";
const VECTOR_IN = "tesseract.examples.vectoradd.v1.Inputs";
const VECTOR_OUT = "tesseract.examples.vectoradd.v1.Outputs";

async function collect(events: AsyncIterable<JacobianRowsEvent>): Promise<JacobianRowsEvent[]> {
  const out: JacobianRowsEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

/** Same keys, shapes and FP64 values, bit for bit. */
function assertSameJacobian(actual: JacobianResult, expected: JacobianResult): void {
  assert.deepEqual(Object.keys(actual.jacobian).sort(), Object.keys(expected.jacobian).sort());
  for (const [out, blocks] of Object.entries(expected.jacobian)) {
    assert.deepEqual(Object.keys(actual.jacobian[out]).sort(), Object.keys(blocks).sort());
    for (const [input, J] of Object.entries(blocks)) {
      const A = actual.jacobian[out][input];
      assert.deepEqual(A.shape, J.shape, `${out} / ${input} shape`);
      assert.deepEqual(A.data, J.data, `${out} / ${input} values`);
    }
  }
  assert.equal(actual.stats.apply_calls, expected.stats.apply_calls);
}

/**
 * meshstats whose apply counts its calls and, after `free` of them, waits for `release()`: the engine
 * is parked at a known evaluation while the test cancels. Also hands out each JacobianRows call's
 * server-side AbortSignal, and its log lines.
 */
async function gatedMeshServer(free: number) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  /** Evaluations; Apply calls of 3 points (the tests' streams have more); the calls' server-side signals. */
  const state = { calls: 0, smallApplies: 0, signals: [] as AbortSignal[] };
  const runtime = new TesseractRuntime(
    {
      ...meshstats,
      async apply(inputs: unknown) {
        state.calls++;
        if ((inputs as { mesh?: { n_points?: number } }).mesh?.n_points === 3) state.smallApplies++;
        if (state.calls > free) await gate;
        return meshstats.apply(inputs as never);
      },
    },
    __dirname,
  );
  const jacobianRows = runtime.jacobianRows.bind(runtime);
  runtime.jacobianRows = (req) => {
    state.signals.push(req.signal!);
    return jacobianRows(req);
  };
  const log = new LogLines();
  // No warm-up: its applies would pass the gate.
  const server = await startServer({ tesseract: runtime, host: "127.0.0.1", port: 0, streamChunkBytes: BUDGET, warmUpMs: 0, logger: log.logger });
  const client = new TesseractClient<MeshInputs, MeshOutputs>(server.address, { inputs: MeshInputs, outputs: MeshOutputs });
  const finished = log.next((line) => line.rpc === "JacobianRows");
  let closing: Promise<void> | undefined;
  return {
    state,
    release,
    client,
    /** The JacobianRows handler's log line: it is written when the handler has finished. */
    finished,
    /** Idempotent; forces the server down quickly if a broken cancellation left a call running. */
    close() {
      closing ??= (async () => {
        release();
        client.close();
        await server.close(1000);
      })();
      return closing;
    },
  };
}

describe("SDK: JacobianRows", () => {
  let meshServer: RunningServer;
  let vectorServer: RunningServer;
  let mesh: TesseractClient<MeshInputs, MeshOutputs>;
  let vector: TesseractClient<VectorInputs, VectorOutputs>;

  before(async () => {
    // Streamed and unary Jacobians of the same inputs compare their evaluation counts too: per request,
    // without the evaluation cache (test/evaluation-cache.test.ts).
    meshServer = await startServer({ tesseract: "meshstats", host: "127.0.0.1", port: 0, streamChunkBytes: BUDGET, evalCacheBytes: 0, logger: silentLogger });
    vectorServer = await startServer({ tesseract: "vectoradd", host: "127.0.0.1", port: 0, streamChunkBytes: BUDGET, evalCacheBytes: 0, logger: silentLogger });
    mesh = new TesseractClient<MeshInputs, MeshOutputs>(meshServer.address, { inputs: MeshInputs, outputs: MeshOutputs });
    vector = new TesseractClient<VectorInputs, VectorOutputs>(vectorServer.address, { inputs: VectorInputs, outputs: VectorOutputs, inputType: VECTOR_IN, outputType: VECTOR_OUT });
  });

  after(async () => {
    mesh?.close();
    vector?.close();
    await Promise.all([meshServer?.close(), vectorServer?.close()]);
  });

  describe("meshstats, N = 300, barycenter", () => {
    const N = 300;
    const n = 3 * N;
    // With meshstats' declared structure, column (i, c) touches barycenter[c] only: N groups, rows of
    // one value; SPARSITY_MODE_DENSE gives one column per evaluation pair and dense rows of 3 values.
    for (const { name, algorithm, sparse, calls } of [
      { name: "central, grouped", algorithm: Algorithm.ALGORITHM_CENTRAL, sparse: true, calls: 2 * N },
      { name: "forward, grouped", algorithm: Algorithm.ALGORITHM_FORWARD, sparse: true, calls: N + 1 },
      { name: "central, dense", algorithm: Algorithm.ALGORITHM_CENTRAL, sparse: false, calls: 2 * n },
      { name: "forward, dense", algorithm: Algorithm.ALGORITHM_FORWARD, sparse: false, calls: n + 1 },
    ]) {
      it(`${name}: header, ${n} rows of ${sparse ? 1 : 3} value(s), stats; assembled = unary Jacobian exactly`, async () => {
        const sparsity_mode = sparse ? SparsityMode.SPARSITY_MODE_UNSPECIFIED : SparsityMode.SPARSITY_MODE_DENSE;
        const request = { inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [BARY], options: { algorithm, sparsity_mode } };
        const events = await collect(mesh.jacobianRows(request));

        const header = events[0].header;
        assert.ok(header, "the first event is the header");
        assert.deepEqual(header.inputs, [{ path: "mesh.points", shape: [N, 3], datatype: DataType.DATA_TYPE_FP64 }]);
        assert.deepEqual(header.outputs, [{ path: BARY, shape: [3], datatype: DataType.DATA_TYPE_FP64 }]);
        assert.equal(header.total_rows, n);
        assert.equal(header.planned_evaluations, calls);
        assert.equal(header.nonzeros, sparse ? n : 0);

        const stats = events[events.length - 1].stats;
        assert.ok(stats, "the last event is the stats");
        assert.equal(stats.apply_calls, calls);
        assert.equal(stats.column_groups, sparse ? N : n);
        assert.equal(stats.sparsity_source, sparse ? "tesseract" : "");

        const rows = events.slice(1, -1).map((e) => e.row!);
        assert.equal(rows.length, n, "one message per row: its values fit the budget");
        assert.deepEqual(rows.map((r) => r.input_index).sort((a, b) => a - b), Array.from({ length: n }, (_, j) => j));
        for (const row of rows) {
          assert.equal(row.input_path, "mesh.points");
          assert.equal(row.slices.length, 1);
          assert.equal(row.slices[0].output_path, BARY);
          assert.equal(row.slices[0].offset, 0);
          assert.ok(row.slices[0].values instanceof Float64Array);
          assert.equal(row.slices[0].values.length, sparse ? 1 : 3);
          // Element (i, c) moves barycenter[c] only.
          assert.deepEqual(row.slices[0].indices, sparse ? [row.input_index % 3] : undefined);
        }

        const assembled = await assembleJacobian(events);
        const unary = await mesh.jacobian(request);
        assertSameJacobian(assembled, unary);
        assertClose(assembled.jacobian[BARY]["mesh.points"].data, meshJacobian(N, "barycenter"), 1e-8, "against the analytic Jacobian");
      });
    }
  });

  describe("vectoradd, a = b of length 500: rows of 4000 bytes split over messages", () => {
    const L = 500;
    const inputs = () => ({
      a: ndarray(Float64Array.from({ length: L }, (_, i) => Math.sin(i)), [L]),
      b: ndarray(Float64Array.from({ length: L }, (_, i) => Math.cos(i)), [L]),
      s: ndarray(Float64Array.of(2), []),
      normalize: false,
    });
    /** The shipped analytic Jacobian (O(L³) to build, so built once). */
    let analytic: Record<string, Record<string, ndarray.NdArray<Float64Array>>>;
    before(() => {
      analytic = vectoradd.gradients!.jacobian!(inputs(), ["a", "b"], ["result"]);
    });

    it("every raw message within the budget; each row's slices contiguous with increasing offsets", async () => {
      const raw = new GeneratedClient(vectorServer.address, grpc.credentials.createInsecure());
      try {
        // Dense rows (the declared structure would make them one value each).
        const options = FiniteDifferenceOptions.fromPartial({ sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE });
        const request = { inputs: packAny(VECTOR_IN, VectorInputs, inputs()), jac_inputs: ["a", "b"], jac_outputs: ["result"], options, sparsity: [] };
        const messages: JacobianRowsResponse[] = [];
        for await (const m of raw.jacobianRows(request)) messages.push(m as JacobianRowsResponse);
        for (const m of messages) {
          const size = JacobianRowsResponse.encode(m).finish().length;
          assert.ok(size <= BUDGET, `a message of ${size} bytes exceeds the budget of ${BUDGET}`);
        }
        assert.ok(messages[0].header && messages[messages.length - 1].stats);
        const rowMessages = messages.slice(1, -1);
        assert.ok(rowMessages.length >= 2 * L * 4, `${rowMessages.length} row messages: each 4000-byte row needs at least 4`);

        // The messages of one row are consecutive and cover the output once, offsets increasing.
        const done = new Set<string>();
        for (let k = 0; k < rowMessages.length; ) {
          const { input_path, input_index } = rowMessages[k].row!;
          const key = `${input_path}[${input_index}]`;
          assert.ok(!done.has(key), `${key} comes twice`);
          done.add(key);
          let next = 0;
          let parts = 0;
          for (; k < rowMessages.length && rowMessages[k].row!.input_path === input_path && rowMessages[k].row!.input_index === input_index; k++, parts++) {
            for (const slice of rowMessages[k].row!.slices) {
              assert.equal(slice.output_path, "result");
              assert.equal(slice.offset, next, `${key}: offsets increase without gaps`);
              next += slice.values!.shape[0];
            }
          }
          assert.equal(next, L, `${key} covers the whole output`);
          assert.ok(parts > 1, `${key} came in ${parts} message(s)`);
        }
        assert.equal(done.size, 2 * L);

        // The raw messages, as SDK events, assemble too.
        const assembled = await assembleJacobian(messages.map(toRowsEvent));
        for (const input of ["a", "b"]) assertClose(assembled.jacobian.result[input].data, analytic.result[input].data, 1e-8, `d result / d ${input}`);
      } finally {
        raw.close();
      }
    });

    it("through the SDK: split rows, and assembled = unary Jacobian exactly = analytic", async () => {
      for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD]) {
        const request = { inputs: inputs(), inputPaths: ["a", "b"], outputPaths: ["result"], options: { algorithm, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
        const events = await collect(vector.jacobianRows(request));
        const rows = events.filter((e) => e.row).map((e) => e.row!);
        assert.ok(rows.length >= 2 * L * 4);
        for (const row of rows) for (const s of row.slices) assert.ok(s.values.length * 8 < BUDGET);
        const offsets = rows.filter((r) => r.input_path === "a" && r.input_index === 7).flatMap((r) => r.slices.map((s) => s.offset));
        assert.ok(offsets.length > 1 && offsets[0] === 0 && offsets.every((o, i) => i === 0 || o > offsets[i - 1]), `offsets ${offsets}`);

        const assembled = await assembleJacobian(events);
        const unary = await vector.jacobian(request);
        assertSameJacobian(assembled, unary);
        for (const input of ["a", "b"]) {
          assert.deepEqual(assembled.jacobian.result[input].shape, [L, L]);
          assertClose(assembled.jacobian.result[input].data, analytic.result[input].data, 1e-8, `d result / d ${input}`);
        }
      }
    });
  });

  for (const sparse of [false, true]) {
    describe(`assembleJacobian checks completeness (${sparse ? "sparse" : "dense"} rows)`, () => {
      let events: JacobianRowsEvent[];
      before(async () => {
        const options = { sparsity_mode: sparse ? SparsityMode.SPARSITY_MODE_UNSPECIFIED : SparsityMode.SPARSITY_MODE_DENSE };
        events = await collect(mesh.jacobianRows({ inputs: sampleMeshInputs(4), inputPaths: ["mesh.points"], outputPaths: [BARY, "statistics.first_point_coordinates"], options }));
        assert.equal(events[0].header!.nonzeros, sparse ? 15 : 0, "12 barycenter entries and 3 of the first point");
      });

      it("a missing row: DATA_LOSS naming the input and the first missing index", async () => {
        const dropped = events.filter((e) => !(e.row && e.row.input_index === 5));
        await clientRejects(assembleJacobian(dropped), "DATA_LOSS", /incomplete.*mesh\.points.*index 5/);
      });

      it("a missing slice, a repeated row, no stats, no header: DATA_LOSS", async () => {
        const partial = events.map((e) => (e.row && e.row.input_index === 2 ? { row: { ...e.row, slices: e.row.slices.slice(1) } } : e));
        await clientRejects(assembleJacobian(partial), "DATA_LOSS", /incomplete/);
        const repeated = [...events.slice(0, 3), events[2], ...events.slice(3)];
        await clientRejects(assembleJacobian(repeated), "DATA_LOSS", /a value arrived twice/);
        const again = [...events.slice(0, 4), events[2], ...events.slice(4)];
        await clientRejects(assembleJacobian(again), "DATA_LOSS", /row \d+ of input "mesh\.points" arrived again after other rows/);
        await clientRejects(assembleJacobian(events.slice(0, -1)), "DATA_LOSS", /before its stats/);
        await clientRejects(assembleJacobian(events.slice(1)), "DATA_LOSS", /before the header/);
      });
    });
  }

  it("a value sent twice, its count made up by leaving another out: DATA_LOSS (the hole was assembled as 0)", async () => {
    const header = { header: { outputs: [{ path: "f", shape: [2] }], inputs: [{ path: "x", shape: [2] }], total_rows: 2, nonzeros: 0 } };
    const stats = { stats: { apply_calls: 4, wall_seconds: 0, adjusted_steps: [], column_groups: 2, sparsity_source: "" } };
    const row = (index: number, ...slices: [number, number[]][]) => ({ row: { input_path: "x", input_index: index, slices: slices.map(([offset, values]) => ({ output_path: "f", offset, values: Float64Array.from(values) })) } });
    await clientRejects(assembleJacobian([header, row(0, [0, [9]], [0, [5]]), row(1, [0, [1, 2]]), stats] as never), "DATA_LOSS", /row 0 of "x", output "f" at offset 0: a value arrived twice/);
    // Split over consecutive messages, slices in any order: assembled.
    const { jacobian } = await assembleJacobian([header, row(0, [1, [5]]), row(0, [0, [9]]), row(1, [0, [1, 2]]), stats] as never);
    assert.deepEqual(Array.from(jacobian.f.x.data), [9, 1, 5, 2]);
  });

  it("sparse rows that also carry a dense slice (a block left dense) hold no map per row: the sparse assembler and the .npy writer kept one of the row's length for every row (100 MB for 10 000 rows)", async () => {
    // f (n values) sparse, the diagonal; g (1 value) dense: each row carries 2 of its n + 1 values.
    const n = 10_000;
    const header = { header: { outputs: [{ path: "f", shape: [n] }, { path: "g", shape: [] }], inputs: [{ path: "x", shape: [n] }], total_rows: n, nonzeros: 2 * n } };
    const stats = { stats: { apply_calls: 2 * n, wall_seconds: 0, adjusted_steps: [], column_groups: n, sparsity_source: "request" } };
    const grown: number[] = [];
    async function* events(): AsyncGenerator<JacobianRowsEvent> {
      const before = process.memoryUsage().arrayBuffers;
      yield header as never;
      for (let j = 0; j < n; j++) {
        yield { row: { input_path: "x", input_index: j, slices: [{ output_path: "f", offset: 0, indices: [j], values: Float64Array.of(j) }, { output_path: "g", offset: 0, values: Float64Array.of(-j) }] } };
      }
      // Every row is in: what the consumer still holds of them (the events' own arrays are a few hundred KB).
      grown.push(process.memoryUsage().arrayBuffers - before);
      yield stats as never;
    }
    const { jacobian } = await assembleSparseJacobian(events());
    assert.deepEqual([Array.from(jacobian.f.x.values.subarray(0, 3)), Array.from(jacobian.f.x.indices.subarray(0, 3)), Array.from(jacobian.g.x.values.subarray(0, 2))], [[0, 1, 2], [0, 1, 2], [-1, -2]]);
    await writeJacobianNpy(events(), "/dev/null");
    for (const bytes of grown) assert.ok(bytes < 20 * 2 ** 20, `${(bytes / 2 ** 20).toFixed(1)} MB held over the rows`);
  });

  describe("a value sent twice in place of another, or a row resumed: DATA_LOSS from every reader (they were assembled silently)", () => {
    const header = (nonzeros: number) => ({ header: { outputs: [{ path: "f", shape: [3] }], inputs: [{ path: "x", shape: [2] }], total_rows: 2, planned_evaluations: 2, nonzeros } });
    const stats = { stats: { apply_calls: 4, wall_seconds: 0, adjusted_steps: [], column_groups: 2, sparsity_source: "" } };
    const sparseRow = (index: number, indices: number[], values: number[]) => ({ row: { input_path: "x", input_index: index, slices: [{ output_path: "f", offset: 0, indices, values: Float64Array.from(values) }] } });
    const denseRow = (index: number, offset: number, values: number[]) => ({ row: { input_path: "x", input_index: index, slices: [{ output_path: "f", offset, values: Float64Array.from(values) }] } });
    const readers: [string, (events: unknown[]) => Promise<unknown>][] = [
      ["assembleJacobian", (events) => assembleJacobian(events as never)],
      ["assembleSparseJacobian", (events) => assembleSparseJacobian(events as never)],
      ["densifyRows", (events) => collect(densifyRows(events as never) as never)],
    ];
    for (const [name, read] of readers) {
      it(name, async () => {
        // Two nonzeros announced, two values sent: f[1] twice (one slice, then one per message), x[1]'s f[0] never.
        await clientRejects(read([header(2), sparseRow(0, [1, 1], [1, 2]), sparseRow(1, [], []), stats]), "DATA_LOSS", /row 0 of "x", output "f": a value arrived twice \(output index 1\)/);
        await clientRejects(read([header(2), sparseRow(0, [1], [1]), sparseRow(0, [1], [2]), sparseRow(1, [], []), stats]), "DATA_LOSS", /row 0 of "x", output "f": a value arrived twice \(output index 1\)/);
        // Row 0 twice, row 1 empty: as many values as announced.
        await clientRejects(read([header(2), sparseRow(0, [1], [7]), sparseRow(1, [], []), sparseRow(0, [1], [7]), stats]), "DATA_LOSS", /row 0 of input "x" arrived again after other rows/);
        // Dense: row 0's messages around row 1's (densifyRows gave row 0 twice, each "whole" with zeros in the other's place).
        await clientRejects(read([header(0), denseRow(0, 0, [1]), denseRow(1, 0, [3, 4, 5]), denseRow(0, 1, [2, 6]), stats]), "DATA_LOSS", /incomplete: row 0 of input "x" has 1 of its 3 values/);
        // Unsorted sparse indices are the contract's ("in this order"): read in place.
        const events = [header(3), sparseRow(0, [2, 0], [5, 6]), sparseRow(1, [1], [7]), stats];
        if (name === "assembleJacobian") assert.deepEqual(Array.from(((await read(events)) as JacobianResult).jacobian.f.x.data), [6, 0, 0, 7, 5, 0]);
        if (name === "densifyRows") assert.deepEqual(((await read(events)) as DenseRowsEvent[]).filter((e) => e.row).map((e) => Array.from(e.row!.values[0])), [[6, 0, 5], [0, 7, 0]]);
        if (name === "assembleSparseJacobian") {
          const block = ((await read(events)) as SparseJacobianResult).jacobian.f.x;
          assert.deepEqual([Array.from(block.indptr), Array.from(block.indices), Array.from(block.values)], [[0, 2, 3], [0, 2, 1], [6, 5, 7]]);
        }
      });
    }
  });

  it("a header announcing 2^45 rows or output elements: each reader fails naming what, allocating nothing blindly (a bare RangeError before)", async () => {
    const header = (rows: number, outputs: number) => ({ header: { outputs: [{ path: "f", shape: [outputs] }], inputs: [{ path: "x", shape: [rows] }], total_rows: rows, planned_evaluations: 1, nonzeros: 0 } });
    const stats = { stats: { apply_calls: 1, wall_seconds: 0, adjusted_steps: [], column_groups: 1, sparsity_source: "" } };
    const row = { row: { input_path: "x", input_index: 0, slices: [{ output_path: "f", offset: 0, values: Float64Array.of(1) }] } };
    const huge = 2 ** 45;
    await clientRejects(assembleJacobian([header(huge, 1), row, stats] as never), "RESOURCE_EXHAUSTED", /the dense block d "f" \/ d "x" would hold 35184372088832 FP64 values \(262000 GiB\), more than this process can allocate .*assembleSparseJacobian/);
    await clientRejects(assembleSparseJacobian([header(huge, 1), row, stats] as never), "RESOURCE_EXHAUSTED", /input "x" has 35184372088832 elements, more than a SparseBlock's 32-bit indices address/);
    await clientRejects(assembleSparseJacobian([header(2, huge), row, stats] as never), "RESOURCE_EXHAUSTED", /output "f" has 35184372088832 elements/);
    // Rows are tracked as they come: the stream ends short of its rows.
    await clientRejects(collect(densifyRows([header(huge, 1), row, stats] as never) as never), "DATA_LOSS", /incomplete: 35184372088831 rows missing, the first of input "x" at flat index 1$/);
    await clientRejects(collect(densifyRows([header(2, huge), row, stats] as never) as never), "RESOURCE_EXHAUSTED", /a dense row of output "f" would hold 35184372088832 FP64 values/);
  });

  it("a header shape that is no shape: DATA_LOSS naming it (a bare RangeError before)", async () => {
    const header = { header: { outputs: [{ path: "f", shape: [-1] }], inputs: [{ path: "x", shape: [2] }], total_rows: 2, nonzeros: 0 } };
    const stats = { stats: { apply_calls: 4, wall_seconds: 0, adjusted_steps: [], column_groups: 2, sparsity_source: "" } };
    await clientRejects(assembleJacobian([header, stats] as never), "DATA_LOSS", /the header gives output "f" the shape \[-1\]/);
  });

  describe("cancellation", () => {
    const N = 300;
    const n = 3 * N;
    /** Closed after each test, also when a test timed out waiting for a cancellation that never came. */
    const gated: Awaited<ReturnType<typeof gatedMeshServer>>[] = [];
    const gatedServer = async (free: number) => {
      const g = await gatedMeshServer(free);
      gated.push(g);
      return g;
    };
    afterEach(async () => {
      await Promise.all(gated.splice(0).map((g) => g.close()));
    });

    it("breaking out of the loop after the header and 2 rows cancels the call; the engine stops", async () => {
      const FREE = 10; // the engine runs 10 evaluations (5 rows), then waits at the 11th
      const g = await gatedServer(FREE);
      const seen: JacobianRowsEvent[] = [];
      for await (const event of g.client.jacobianRows({ inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [BARY], options: { algorithm: Algorithm.ALGORITHM_CENTRAL } })) {
        seen.push(event);
        if (seen.length === 3) break;
      }
      assert.ok(seen[0].header && seen[1].row && seen[2].row);

      // The server sees the cancellation: its call's signal aborts.
      const signal = g.state.signals[0];
      if (!signal.aborted) await once(signal, "abort");
      const callsAtCancel = g.state.calls;
      assert.ok(callsAtCancel <= FREE + 1, `${callsAtCancel} evaluations before the gate`);

      // Let the parked evaluation finish: the engine must not start another one.
      g.release();
      const line = await g.finished;
      assert.equal(line.code, grpc.status.CANCELLED);
      assert.equal(g.state.calls, callsAtCancel, "no evaluation started after the cancellation");
      assert.ok(g.state.calls < 2 * n);
    });

    it("aborting the signal mid-stream: the loop throws CANCELLED and the server stops", async () => {
      const g = await gatedServer(4);
      const controller = new AbortController();
      const iteration = (async () => {
        for await (const event of g.client.jacobianRows({ inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [BARY] }, { signal: controller.signal })) {
          if (event.header) controller.abort();
        }
      })();
      await clientRejects(iteration, "CANCELLED");
      const signal = g.state.signals[0];
      if (!signal.aborted) await once(signal, "abort");
      const callsAtCancel = g.state.calls;
      g.release();
      assert.equal((await g.finished).code, grpc.status.CANCELLED);
      assert.equal(g.state.calls, callsAtCancel);
    });

    it("close() cancels the calls in flight: a stream left unread and a unary call reject CANCELLED, and the server stops (grpc-js ran them on, and the unread stream held the process open for --stream-stall-ms)", async () => {
      const FREE = 4; // the stream's evaluations after these wait at the gate, and so does the apply
      const g = await gatedServer(FREE);
      const rows = g.client.jacobianRows({ inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: [BARY] });
      assert.ok((await rows.next()).value?.header);
      // The rows the free evaluations make are read (how many depends on the engine's batches), then the reader waits.
      const read = (async () => {
        while (!(await rows.next()).done);
      })();
      const applied = g.client.apply(sampleMeshInputs(3));
      // Both calls wait at the gate: the stream past its free evaluations, the apply at its own.
      while (g.state.calls <= FREE || g.state.smallApplies === 0) await new Promise((resolve) => setImmediate(resolve));
      g.client.close();
      const closed = new RegExp(`^the client of ${g.client.address} was closed during the call$`);
      await clientRejects(read, "CANCELLED", closed);
      await clientRejects(applied, "CANCELLED", closed);
      const signal = g.state.signals[0];
      if (!signal.aborted) await once(signal, "abort");
      g.release();
      assert.equal((await g.finished).code, grpc.status.CANCELLED);
      await clientRejects(g.client.apply(sampleMeshInputs(3)), "FAILED_PRECONDITION", /is closed$/);
    });

    it("a deadline already in the past: DEADLINE_EXCEEDED from the first iteration", async () => {
      await clientRejects(collect(mesh.jacobianRows({ inputs: sampleMeshInputs(3), inputPaths: ["mesh.points"], outputPaths: [BARY] }, { deadline: new Date(Date.now() - 1000) })), "DEADLINE_EXCEEDED");
    });

    it("a bad path: INVALID_ARGUMENT from the first iteration, naming it", async () => {
      await clientRejects(collect(mesh.jacobianRows({ inputs: sampleMeshInputs(3), inputPaths: ["mesh.nope"], outputPaths: [BARY] })), "INVALID_ARGUMENT", /mesh\.nope/);
    });
  });
});
