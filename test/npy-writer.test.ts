/**
 * `jacobian --out FILE.npy`: the streamed Jacobian written into a NumPy file message by message.
 * A synthetic stream shows the layout (J of shape (O, I) in Fortran order, blocks in the header's
 * order, rows split over messages and out of order) and that each message is on disk before the
 * next is read — the writer never holds more than one; an incomplete stream leaves no file. Then the
 * CLI against a real server, checked value by value.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { type JacobianRowsEvent } from "../client";
import { writeRowsNdjson } from "../client/cli-rows";
import { npyHeader, writeJacobianNpy } from "../client/npy-writer";
import { DataType } from "../common/tensor-codec";
import { clientRejects, CLI, serveProcess, type ServeProcess } from "./helpers";

const run = promisify(execFile);

/** A .npy file's header fields and FP64 data (what numpy.load reads). */
function readNpy(file: string): { descr: string; fortran: boolean; shape: number[]; data: Float64Array } {
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.subarray(0, 6).toString("latin1"), "\x93NUMPY");
  assert.deepEqual([bytes[6], bytes[7]], [1, 0], "format 1.0");
  const headerLength = bytes.readUInt16LE(8);
  assert.equal((10 + headerLength) % 64, 0, "data aligned to 64 bytes");
  const header = bytes.subarray(10, 10 + headerLength).toString("latin1");
  const match = /^\{'descr': '(<f8)', 'fortran_order': (True|False), 'shape': \(([\d, ]*)\), \} *\n$/.exec(header);
  assert.ok(match, header);
  const data = bytes.subarray(10 + headerLength);
  return { descr: match[1], fortran: match[2] === "True", shape: match[3].split(",").filter((d) => d.trim()).map(Number), data: new Float64Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) };
}

const dirs: string[] = [];
/** A path for a .npy file in a fresh folder, removed after the tests. */
function tmp(): string {
  dirs.push(fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-npy-")));
  return path.join(dirs[dirs.length - 1], "J.npy");
}

/** Outputs u (shape [2]) and v (shape [3]), inputs x (shape [2]) and y (scalar): O = 5, I = 3; J[o, j] = 10·o + j. */
const header: JacobianRowsEvent = {
  header: {
    outputs: [{ path: "u", shape: [2], datatype: DataType.DATA_TYPE_FP64 }, { path: "v", shape: [3], datatype: DataType.DATA_TYPE_FP64 }],
    inputs: [{ path: "x", shape: [2], datatype: DataType.DATA_TYPE_FP64 }, { path: "y", shape: [], datatype: DataType.DATA_TYPE_FP64 }],
    total_rows: 3,
    planned_evaluations: 6,
    nonzeros: 0,
  },
};
const value = (o: number, j: number) => 10 * o + j;
const column = (j: number, from: number, to: number) => Float64Array.from({ length: to - from }, (_, p) => value(from + p, j));
/**
 * Rows out of order, y's row split over consecutive messages (u, then v from offset 1 and v[0] last).
 * A row's messages are consecutive by contract: one that comes back after another row began is refused below.
 */
const rows: JacobianRowsEvent[] = [
  { row: { input_path: "y", input_index: 0, slices: [{ output_path: "u", offset: 0, values: column(2, 0, 2) }] } },
  { row: { input_path: "y", input_index: 0, slices: [{ output_path: "v", offset: 1, values: column(2, 3, 5) }] } },
  { row: { input_path: "y", input_index: 0, slices: [{ output_path: "v", offset: 0, values: column(2, 2, 3) }] } },
  { row: { input_path: "x", input_index: 1, slices: [{ output_path: "u", offset: 0, values: column(1, 0, 2) }, { output_path: "v", offset: 0, values: column(1, 2, 5) }] } },
  { row: { input_path: "x", input_index: 0, slices: [{ output_path: "u", offset: 0, values: column(0, 0, 2) }, { output_path: "v", offset: 0, values: column(0, 2, 5) }] } },
];
const stats: JacobianRowsEvent = { stats: { apply_calls: 6, wall_seconds: 0.5, adjusted_steps: [], column_groups: 3, sparsity_source: "" } };

describe("jacobian --out FILE.npy", () => {
  after(() => dirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

  it("npyHeader: NumPy 1.0, FP64, Fortran order, padded to 64 bytes", () => {
    const h = npyHeader([5, 3]).toString("latin1");
    assert.equal(h.length % 64, 0);
    assert.match(h, /^\x93NUMPY\x01\x00.\x00\{'descr': '<f8', 'fortran_order': True, 'shape': \(5, 3\), \} +\n$/s);
  });

  it("J (O × I) in Fortran order, blocks in the header's order, from rows split and out of order; each message on disk before the next is read", async () => {
    const file = tmp();
    const dataStart = npyHeader([5, 3]).length;
    // Written beside the file until complete, then renamed over it.
    const partial = () => path.join(path.dirname(file), fs.readdirSync(path.dirname(file)).find((f) => f.startsWith(`${path.basename(file)}.`) && f.endsWith(".partial"))!);
    const onDisk = (j: number, o: number) => {
      const buffer = Buffer.alloc(8);
      const fd = fs.openSync(partial(), "r");
      try {
        fs.readSync(fd, buffer, 0, 8, dataStart + 8 * (5 * j + o));
      } finally {
        fs.closeSync(fd);
      }
      return buffer.readDoubleLE(0);
    };
    // Pulled one event at a time: when the writer asks for event k + 1, event k must be in the file.
    async function* stream(): AsyncGenerator<JacobianRowsEvent> {
      yield header;
      for (const event of rows) {
        yield event;
        const { input_path, input_index, slices } = event.row!;
        const j = input_path === "x" ? input_index : 2;
        for (const s of slices) {
          const first = (s.output_path === "u" ? 0 : 2) + s.offset;
          for (let p = 0; p < s.values.length; p++) assert.equal(onDisk(j, first + p), s.values[p], `J[${first + p}, ${j}] written before the next message was read`);
        }
      }
      yield stats;
    }
    const written = await writeJacobianNpy(stream(), file);
    assert.deepEqual(written, {
      path: file,
      shape: [5, 3],
      outputs: [{ path: "u", shape: [2], offset: 0 }, { path: "v", shape: [3], offset: 2 }],
      inputs: [{ path: "x", shape: [2], offset: 0 }, { path: "y", shape: [], offset: 2 }],
      stats: stats.stats,
    });
    const npy = readNpy(file);
    assert.deepEqual([npy.descr, npy.fortran, npy.shape], ["<f8", true, [5, 3]]);
    // Fortran order: element (o, j) at o + 5·j.
    assert.deepEqual(Array.from(npy.data), Array.from({ length: 15 }, (_, k) => value(k % 5, Math.floor(k / 5))));
  });

  it("sparse rows: each structural nonzero at its place, every other entry zero, the file at its full length", async () => {
    // J[o, j] nonzero where (o + j) is even, but for J[1, 1]: 7 nonzeros of 15; y's row in two messages, x[1]'s row without u.
    const nonzero = (j: number, outputs: number[]) => outputs.filter((o) => (o + j) % 2 === 0 && !(o === 1 && j === 1));
    const slice = (j: number, output_path: string, first: number, outputs: number[]) => {
      const at = nonzero(j, outputs);
      return { output_path, offset: 0, indices: at.map((o) => o - first), values: Float64Array.from(at, (o) => value(o, j)) };
    };
    const sparse: JacobianRowsEvent[] = [
      { header: { ...header.header!, nonzeros: 7 } },
      { row: { input_path: "x", input_index: 0, slices: [slice(0, "u", 0, [0, 1]), slice(0, "v", 2, [2, 3, 4])] } },
      { row: { input_path: "x", input_index: 1, slices: [slice(1, "u", 0, [0, 1]), slice(1, "v", 2, [2, 3, 4])].filter((x) => x.values.length) } },
      { row: { input_path: "y", input_index: 0, slices: [slice(2, "v", 2, [2, 3, 4])] } },
      { row: { input_path: "y", input_index: 0, slices: [slice(2, "u", 0, [0, 1])] } },
      stats,
    ];
    assert.equal(sparse.reduce((n, e) => n + (e.row?.slices.reduce((m, s) => m + s.values.length, 0) ?? 0), 0), 7);
    const file = tmp();
    await writeJacobianNpy((async function* () { yield* sparse; })(), file);
    const npy = readNpy(file);
    assert.deepEqual(npy.shape, [5, 3]);
    assert.deepEqual(Array.from(npy.data), Array.from({ length: 15 }, (_, k) => ((k % 5) + Math.floor(k / 5)) % 2 === 0 && k !== 6 ? value(k % 5, Math.floor(k / 5)) : 0));

    const cases: [JacobianRowsEvent[], RegExp][] = [
      [[...sparse.slice(0, 4), stats], /incomplete: the rows carry 6 values, the header announces 7 structural nonzeros/],
      [[sparse[0], sparse[1], sparse[3], sparse[4], stats], /incomplete: 1 row missing, the first of input "x" at flat index 1/],
      [[...sparse.slice(0, 5), sparse[1], stats], /row 0 of input "x" arrived again after other rows/],
      // y's u[0] twice and x[1]'s v[2] left out: seven values, as many as the header announces (the hole was written as 0).
      [[sparse[0], sparse[1], { row: { input_path: "x", input_index: 1, slices: [slice(1, "u", 0, [0, 1])] } }, sparse[3], { row: { input_path: "y", input_index: 0, slices: [{ ...slice(2, "u", 0, [0, 1]), indices: [0, 0], values: Float64Array.of(2, 2) }] } }, stats], /row 0 of "y", output "u": a value arrived twice \(output index 0\)/],
      [[sparse[0], { row: { input_path: "x", input_index: 0, slices: [{ output_path: "u", offset: 0, indices: [2], values: Float64Array.of(1) }] } }], /index 2 is out of range for output "u" \(2 elements\)/],
    ];
    for (const [events, message] of cases) {
      const broken = tmp();
      await clientRejects(writeJacobianNpy((async function* () { yield* events; })(), broken), "DATA_LOSS", message);
      assert.equal(fs.existsSync(broken), false);
    }
  });

  it("a path that cannot be written says why, by its error, naming it (/proc/x.npy said \"its folder does not exist\")", async () => {
    const none = (async function* (): AsyncGenerator<JacobianRowsEvent> {})();
    const refused = (out: string, message: RegExp) => assert.rejects(writeJacobianNpy(none, out), (e: Error & { code?: number }) => e.code === 3 && message.test(e.message), out);
    // procfs refuses a new file with ENOENT though the folder is there (Linux).
    if (fs.existsSync("/proc/self")) await refused("/proc/x.npy", /^--out "\/proc\/x\.npy" cannot be written: no file can be created in its folder "\/proc" \(ENOENT: no such file or directory\)$/);
    const file = tmp();
    fs.writeFileSync(file, "");
    await refused(path.join(file, "x.npy"), new RegExp(`^--out "${path.join(file, "x.npy").replace(/[.\\/]/g, "\\$&")}" cannot be written: a part of the path is not a folder \\(ENOTDIR: not a directory\\)$`));
    await refused("/no-such-folder/J.npy", /^--out "\/no-such-folder\/J\.npy" cannot be written: its folder does not exist$/);
  });

  it("an incomplete or inconsistent stream: DATA_LOSS naming what is wrong, and no file left", async () => {
    const cases: [JacobianRowsEvent[], RegExp][] = [
      [[header, ...rows.slice(0, 4), stats], /incomplete: 1 row missing, the first of input "x" at flat index 0/],
      [[header, rows[0], rows[1], rows[3], rows[4], stats], /incomplete: row 0 of input "y" has 4 of its 5 values/],
      [[header, ...rows], /the stream ended before its stats/],
      [[rows[0]], /a row arrived before the header/],
      [[header, ...rows, rows[0], stats], /row 0 of input "y" arrived again after other rows \(a row's messages are consecutive/],
      [[header, rows[0], rows[0], stats], /row 0 of "y", output "u" at offset 0: a value arrived twice/],
      // y's v[1] twice and v[0] never: five values, as many as the row holds (its hole was written as 0).
      [[header, rows[0], rows[1], { row: { input_path: "y", input_index: 0, slices: [{ output_path: "v", offset: 1, values: column(2, 3, 4) }] } }, rows[3], rows[4], stats], /row 0 of "y", output "v" at offset 1: a value arrived twice/],
      [[header, { row: { input_path: "z", input_index: 0, slices: [] } }], /row for input "z", which the header does not list/],
      [[header, { row: { input_path: "x", input_index: 0, slices: [{ output_path: "u", offset: 1, values: column(0, 0, 2) }] } }], /slice of 2 values at offset 1 overruns output "u" \(2 elements\)/],
    ];
    for (const [events, message] of cases) {
      const file = tmp();
      await clientRejects(writeJacobianNpy((async function* () { yield* events; })(), file), "DATA_LOSS", message);
      assert.equal(fs.existsSync(file), false, `${message}: the partial file is removed`);
    }
  });

  it("a header announcing 2^45 rows: DATA_LOSS once the stream ends short of them, nothing allocated for them (a bare RangeError before)", async () => {
    const file = tmp();
    const huge = { header: { ...header.header!, inputs: [{ path: "x", shape: [2 ** 45], datatype: DataType.DATA_TYPE_FP64 }], total_rows: 2 ** 45 } };
    await clientRejects(writeJacobianNpy((async function* () { yield* [huge, rows[4], stats]; })(), file), "DATA_LOSS", /incomplete: 35184372088831 rows missing, the first of input "x" at flat index 1$/);
    assert.equal(fs.existsSync(file), false);
  });

  it("a failed call leaves what --out names as it was: a file there already, through a link too, and the link (it was truncated, then removed)", async () => {
    const target = tmp();
    fs.writeFileSync(target, "kept");
    const link = `${target}.link`;
    fs.symlinkSync(target, link);
    for (const path of [target, link]) {
      await clientRejects(writeJacobianNpy((async function* () { yield header; })(), path), "DATA_LOSS", /the stream ended before its stats/);
      assert.equal(fs.readFileSync(target, "utf8"), "kept");
    }
    assert.ok(fs.lstatSync(link).isSymbolicLink(), "the link is still there");
    assert.deepEqual(fs.readdirSync(path.dirname(target)).filter((f) => f.endsWith(".partial")), [], "no partial copy left");
    // A complete one replaces the file the link names.
    await writeJacobianNpy((async function* () { yield* [header, ...rows, stats]; })(), link);
    assert.ok(fs.lstatSync(link).isSymbolicLink());
    assert.equal(fs.readFileSync(target).subarray(1, 6).toString(), "NUMPY");
  });

  it("a write that fails (a full device) is RESOURCE_EXHAUSTED naming the file, and the device stays", async function () {
    if (!fs.existsSync("/dev/full")) this.skip();
    await clientRejects(writeJacobianNpy((async function* () { yield header; })(), "/dev/full"), "RESOURCE_EXHAUSTED", /^--out "\/dev\/full" could not be written: ENOSPC: no space left on device/);
    assert.ok(fs.statSync("/dev/full").isCharacterDevice());
  });

  describe("the CLI against a server", () => {
    let server: ServeProcess;
    before(async () => {
      server = await serveProcess(["vectoradd", "--port", "0"]);
    });
    after(async () => {
      await server.stop();
    });

    it("vectoradd, n = 1500: d result / d (a, b) written as a 1500 × 3000 matrix, its layout on stdout, stats on stderr", async () => {
      const n = 1500;
      const a = Array.from({ length: n }, (_, i) => Math.sin(i));
      const payload = { inputs: { a, b: a.map((v) => 2 * v), s: 3, normalize: false }, jac_inputs: ["a", "b"], jac_outputs: ["result"] };
      const file = tmp();
      fs.writeFileSync(`${file}.json`, JSON.stringify(payload));
      const { stdout, stderr } = await run(process.execPath, [CLI, "jacobian", `@${file}.json`, "--address", server.address, "--out", file]);
      assert.deepEqual(JSON.parse(stdout), {
        path: file,
        shape: [n, 2 * n],
        outputs: [{ path: "result", shape: [n], offset: 0 }],
        inputs: [{ path: "a", shape: [n], offset: 0 }, { path: "b", shape: [n], offset: n }],
      });
      // vectoradd declares its structure: a's columns in one group, b's in another; the rows come sparse.
      assert.match(stderr, /^stats: 4 apply calls in [0-9.e-]+ s; 2 column groups \(sparsity: tesseract\)\n$/);
      const npy = readNpy(file);
      assert.deepEqual([npy.fortran, npy.shape], [true, [n, 2 * n]]);
      // J = [s·I, I]: (o, j) at o + n·j.
      let worst = 0;
      for (let j = 0; j < 2 * n; j++) {
        for (let o = 0; o < n; o++) {
          const expected = o === j % n ? (j < n ? 3 : 1) : 0;
          worst = Math.max(worst, Math.abs(npy.data[o + n * j] - expected));
        }
      }
      assert.ok(worst < 1e-6, `max |J - [sI, I]| = ${worst}`);
    });
  });
});

describe("jacobian --stream: NDJSON lines checked as the SDK checks the stream", () => {
  const lines = async (events: JacobianRowsEvent[]) => {
    const out = new PassThrough();
    const text: string[] = [];
    out.on("data", (chunk: Buffer) => text.push(chunk.toString()));
    const written = writeRowsNdjson((async function* () { yield* events; })(), "json", out);
    return { written, text: () => text.join("").split("\n").filter(Boolean) };
  };

  it("a complete stream: every event a line, the stats returned", async () => {
    const { written, text } = await lines([header, ...rows, stats]);
    assert.deepEqual(await written, stats.stats);
    assert.equal(text().length, 7);
    assert.deepEqual(JSON.parse(text()[1]).row.slices[0], { output_path: "u", offset: 0, values: [2, 12] });
  });

  it("a value twice, a row resumed or missing, no stats: DATA_LOSS naming it (passed on whole, exit 0)", async () => {
    const cases: [JacobianRowsEvent[], RegExp, number][] = [
      [[header, rows[0], rows[0], ...rows.slice(1), stats], /row 0 of "y", output "u" at offset 0: a value arrived twice/, 2],
      [[header, ...rows, rows[0], stats], /row 0 of input "y" arrived again after other rows/, 6],
      [[header, ...rows.slice(0, 4), stats], /incomplete: 1 row missing, the first of input "x" at flat index 0/, 6],
      [[header, ...rows], /the stream ended before its stats/, 6],
    ];
    for (const [events, message, written] of cases) {
      const { written: done, text } = await lines(events);
      await clientRejects(done, "DATA_LOSS", message);
      assert.equal(text().length, written, `${message}: the lines before the break`);
    }
  });
});
