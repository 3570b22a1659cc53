/**
 * Rows held packed until verified (server/fd/held-rows.ts): read back bit for bit, in order and as
 * often as asked, every optional part kept or left out as given; leased rows released once copied
 * in; given back in batches of at most ROWS_PER_BATCH, each page leaving the store; and a DETECT
 * diagonal of 100 000 streamed under a 64 MB heap (its rows held as objects ran out of memory under 80).
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import { SparsityMode } from "../index";
import { leasedItem, leaseResults } from "../server/eval/result-lease";
import { HeldRows } from "../server/fd/held-rows";
import { ROWS_PER_BATCH, type Row } from "../server/fd/rows";

const DIST = path.join(__dirname, "..");

/** A typed array as its type and bytes, so that -0 and every bit count. */
const bits = (a: Float64Array | Uint32Array) => `${a.constructor.name} ${Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex")}`;

/** A row's every part, as the engine reads it: present or absent, and bit for bit. */
function contents(row: Row) {
  const parts: Record<string, unknown> = { leaf: row.leaf, index: row.index, values: row.values.map(bits) };
  if (row.errors) parts.errors = row.errors.map(bits);
  if (row.rounding) parts.rounding = row.rounding.map(bits);
  if (row.indices) parts.indices = row.indices.map((at) => at && bits(at));
  if (row.unstructured !== undefined) parts.unstructured = row.unstructured;
  if (row.checked) parts.checked = true;
  return parts;
}

/**
 * `count` rows of two outputs, of five kinds in turn: sparse with error estimates; one output dense
 * (no indices for it); no indices at all, with rounding, checked; empty, noting a dependence outside
 * the structure; and a leased item of a worker's buffer (stride 3: one value, then two), `leased`.
 */
function sampleRows(count: number): { rows: Row[]; leased: Float64Array } {
  const leased = Float64Array.from({ length: 3 * Math.ceil(count / 5) }, (_, i) => Math.cos(i) / 3);
  leaseResults(leased, 3, true);
  const value = (k: number, i: number) => (k % 7 === 0 && i === 0 ? -0 : Math.sin(k * 3 + i) * 10 ** ((k % 11) - 5));
  const floats = (k: number, n: number, shift = 0) => Float64Array.from({ length: n }, (_, i) => value(k + shift, i));
  const rows = Array.from({ length: count }, (_, k): Row => {
    const [leaf, index] = [k % 3, 5 * k + 1];
    switch (k % 5) {
      case 0:
        return { leaf, index, values: [floats(k, 2), floats(k, 1)], errors: [floats(k, 2, 1), floats(k, 1, 2)], indices: [Uint32Array.of(k, k + 9), Uint32Array.of(k % 4)] };
      case 1:
        return { leaf, index, values: [floats(k, 3), floats(k, 5)], indices: [Uint32Array.of(1, 4, 6), undefined] };
      case 2:
        return { leaf, index, values: [floats(k, 4), floats(k, 5)], rounding: [floats(k, 4, 3), floats(k, 5, 4)], checked: true };
      case 3:
        return { leaf, index, values: [new Float64Array(0), floats(k, 5)], indices: [new Uint32Array(0), undefined], unstructured: `d g[${k}] / d x[${index}] is 1 where the structure has no entry` };
      default: {
        const at = 3 * Math.floor(k / 5);
        const values = [leased.subarray(at, at + 1), leased.subarray(at + 1, at + 3)];
        const lease = leasedItem(values)!;
        return { leaf, index, values, indices: [Uint32Array.of(2), Uint32Array.of(0, 3)], checked: lease.checked || undefined, release: lease.release };
      }
    }
  });
  return { rows, leased };
}

describe("rows held until verified (held-rows.ts)", () => {
  const count = 2 * ROWS_PER_BATCH + 3;

  it("are read back bit for bit and in order, every time; leased rows are released once copied in", () => {
    const { rows, leased } = sampleRows(count);
    const expected = rows.map(contents);
    const held = new HeldRows();
    for (const row of rows) held.add(row);
    // Every item of the worker's buffer released: detached, its memory gone; the store has its copy.
    assert.equal(leased.buffer.byteLength, 0);
    for (let pass = 0; pass < 2; pass++) assert.deepStrictEqual([...held].map(contents), expected, `pass ${pass}`);
    // Views of the store's arrays, of the types rows have.
    const first = [...held][0];
    assert.ok(first.values[0] instanceof Float64Array && first.indices![0] instanceof Uint32Array && first.release === undefined);
  });

  it("are given back in batches of at most ROWS_PER_BATCH, each leaving the store", () => {
    const { rows } = sampleRows(count);
    const expected = rows.map(contents);
    const held = new HeldRows();
    for (const row of rows) held.add(row);
    const batches: Row[][] = [];
    for (const batch of held.batches()) {
      batches.push(batch);
      assert.equal([...held].length, count - batches.flat().length, "what is left");
    }
    assert.deepEqual(batches.map((b) => b.length), [ROWS_PER_BATCH, ROWS_PER_BATCH, 3]);
    assert.deepStrictEqual(batches.flat().map(contents), expected);
  });

  it("let a DETECT diagonal of 100 000 stream under a 64 MB heap (held as Row objects, out of memory under 80 MB; n = 300 000 under 160 MB)", async function () {
    this.timeout(60_000);
    const n = 100_000;
    // The request's diagonal, verified under DETECT: every row held until the verification passes.
    const script = `
      const ndarray = require("ndarray");
      const { TesseractRuntime } = require(${JSON.stringify(path.join(DIST, "server/runtime"))});
      const dir = ${JSON.stringify(path.join(DIST, "../test/fixtures/polynomial"))};
      const runtime = new TesseractRuntime(require(dir + "/polynomial.js").default, dir);
      const all = Uint32Array.from({ length: ${n} }, (_, i) => i);
      const stream = runtime.jacobianRows({
        inputs: { x: ndarray(Float64Array.from(all, (i) => 0.5 + i / ${n}), [${n}]), y: ndarray(Float64Array.of(0.7), []), params: {}, blocks: [], mode: "" },
        inputPaths: ["x"], outputPaths: ["f"],
        sparsity: [{ output_path: "f", input_path: "x", output_index: all, input_index: all }],
        options: { sparsity_mode: ${SparsityMode.SPARSITY_MODE_DETECT} },
      });
      (async () => {
        let rows = 0;
        for await (const batch of stream.batches) rows += batch.length;
        process.stdout.write(JSON.stringify({ rows, source: stream.stats().sparsity_source }));
      })();`;
    const child = spawn(process.execPath, ["--max-old-space-size=64", "-e", script], { stdio: ["ignore", "pipe", "pipe"], cwd: path.join(DIST, "..") });
    let [out, err] = ["", ""];
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const [code, signal] = await once(child, "exit");
    assert.deepEqual([code, signal], [0, null], err.slice(-400));
    assert.deepEqual(JSON.parse(out), { rows: n, source: "request" });
  });
});
