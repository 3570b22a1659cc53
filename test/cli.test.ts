/**
 * The CLI as a user runs it: `serve` in a child process (one stdout line, JSON logs on stderr) and the
 * client commands against it, with tesseract-core's JSON in and out.
 */
import { strict as assert } from "node:assert";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { assertClose, CLI, freePort, serveProcess, type ServeProcess } from "./helpers";

const run = promisify(execFile);

/** Runs a client command; resolves with exit code, stdout and stderr (never rejects). */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const N = 3;
const points = [[1, 2, 3], [4, 5, 6], [7, 8, 10]];
const inputs = {
  mesh: {
    n_points: N,
    n_cells: 1,
    points,
    num_points_per_cell: [N],
    cell_connectivity: { object_type: "array", shape: [N], dtype: "int32", data: { buffer: [0, 1, 2], encoding: "json" } },
  },
};

describe("CLI", () => {
  let server: ServeProcess;
  let address: string;

  it("the build leaves the command executable: `npx tesseract-grpc` in a clone runs dist/cli/cli.js itself (after a clean build it was refused: Permission denied)", async () => {
    assert.equal(fs.statSync(CLI).mode & 0o111, 0o111);
    const { stdout } = await promisify(execFile)(CLI, ["--version"]);
    assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
  });

  before(async () => {
    // Without the f(x) cache: these tests count each rule's own evaluations.
    server = await serveProcess(["meshstats", "--port", "0", "--eval-cache-mb", "0"]);
    address = server.address;
  });

  after(async () => {
    assert.equal(await server.stop(), 0, "serve exits 0 on SIGTERM");
    assert.equal(server.stdoutLines.length, 1, `serve printed only its one line: ${server.stdoutLines.join(" | ")}`);
  });

  it("describe and health", async () => {
    const described = await cli("describe", "--address", address);
    assert.equal(described.code, 0, described.stderr);
    assert.deepEqual(JSON.parse(described.stdout).differentiable_inputs, ["mesh.points"]);
    const health = await cli("health", "--address", address);
    assert.deepEqual([health.code, health.stdout], [0, "SERVING\n"]);
  });

  it("apply with a payload from a file or stdin-like text", async () => {
    const { code, stdout, stderr } = await cli("apply", JSON.stringify({ inputs }), "--address", address);
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { statistics: { first_point_coordinates: [1, 2, 3], barycenter: [4, 5, 19 / 3] } });
  });

  it("jacobian: unary (nested JSON) and --stream (NDJSON rows as they arrive), stats on stderr", async () => {
    const payload = JSON.stringify({ inputs, jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"], options: { algorithm: "ALGORITHM_CENTRAL", sparsity_mode: "dense" } });
    const unary = await cli("jacobian", payload, "--address", address, "--eps", "1e-3");
    assert.equal(unary.code, 0, unary.stderr);
    const J = JSON.parse(unary.stdout)["statistics.barycenter"]["mesh.points"] as number[][][];
    // d barycenter_c / d points[i, c'] = δ(c, c') / N; central differences of a linear map: ~1e-12.
    J.forEach((plane, c) => plane.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - (c === k ? 1 / N : 0)) < 1e-9, `J[${c}][${i}][${k}] = ${v}`))));
    assert.match(unary.stderr, new RegExp(`^stats: ${2 * 3 * N} apply calls in [0-9.e-]+ s\n$`));

    const streamed = await cli("jacobian", payload, "--address", address, "--eps", "1e-3", "--stream", "--format", "json+base64");
    assert.equal(streamed.code, 0, streamed.stderr);
    const lines = streamed.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(lines[0], {
      header: {
        inputs: [{ path: "mesh.points", shape: [N, 3], datatype: "DATA_TYPE_FP64" }],
        outputs: [{ path: "statistics.barycenter", shape: [3], datatype: "DATA_TYPE_FP64" }],
        total_rows: 3 * N,
        planned_evaluations: 2 * 3 * N,
        nonzeros: 0,
      },
    });
    assert.equal(lines.length, 1 + 3 * N + 1, "header, one line per row, stats");
    assert.equal(lines[lines.length - 1].stats.apply_calls, 2 * 3 * N);
    for (const { row } of lines.slice(1, -1)) {
      const [slice] = row.slices;
      assert.deepEqual([slice.output_path, slice.offset, slice.values.dtype, slice.values.data.encoding], ["statistics.barycenter", 0, "float64", "base64"]);
      const values = new Float64Array(new Uint8Array(Buffer.from(slice.values.data.buffer, "base64")).buffer);
      // Row j = input element j: J[:, i, k] with j = 3i + k.
      assert.deepEqual(Array.from(values), [0, 1, 2].map((c) => J[c][Math.floor(row.input_index / 3)][row.input_index % 3]));
    }
    assert.match(streamed.stderr, new RegExp(`^stats: ${2 * 3 * N} apply calls in [0-9.e-]+ s\n$`), "stats only: no progress bar when stderr is not a terminal");
    const lists = await cli("jacobian", payload, "--address", address, "--eps", "1e-3", "--stream");
    const { row } = JSON.parse(lists.stdout.split("\n")[1]);
    assert.deepEqual(row.slices[0].values, [0, 1, 2].map((c) => J[c][Math.floor(row.input_index / 3)][row.input_index % 3]), "--format json: values as a list");
  });

  it("abstract-eval: output shapes and dtypes from input shapes (or concrete arrays), as tesseract-core's abstract_eval answers them", async () => {
    const { code, stdout, stderr } = await cli("abstract-eval", JSON.stringify({ inputs: { mesh: { points: { shape: [1000, 3], dtype: "float64" } } } }), "--address", address);
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { "statistics.first_point_coordinates": { shape: [3], dtype: "float64" }, "statistics.barycenter": { shape: [3], dtype: "float64" } });
    // apply's payload as it is: concrete arrays in any of its forms give their own shapes (gRPC and REST take them too).
    const concrete = await cli("abstract-eval", JSON.stringify({ inputs: { mesh: { ...inputs.mesh, points: [[1, 2, 3], [4, 5, 6]] } } }), "--address", address);
    assert.equal(concrete.code, 0, concrete.stderr);
    assert.deepEqual(JSON.parse(concrete.stdout)["statistics.barycenter"], { shape: [3], dtype: "float64" });
    const bad = await cli("abstract-eval", JSON.stringify({ inputs: { mesh: { points: { shape: [1000, 3], dtype: "double" } } } }), "--address", address);
    assert.match(bad.stderr, /^tesseract-grpc abstract-eval: INVALID_ARGUMENT: inputs\.mesh\.points\.dtype is "double"; expected one of bool, .*float64 \(or float16, read as float32\)\n$/);
  });

  it("jacobian --stream into a reader that goes away after a line (| head -1): exit 0, nothing on stderr but the stats (it printed 'write EPIPE', exit 1)", async () => {
    const many = { mesh: { ...inputs.mesh, n_points: 300, points: Array.from({ length: 300 }, (_, i) => [i, i + 1, i + 2]), num_points_per_cell: [300], cell_connectivity: { dtype: "int32", data: Array.from({ length: 300 }, (_, i) => i) } } };
    const payload = JSON.stringify({ inputs: many, jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"], options: { sparsity_mode: "dense" } });
    const child = spawn(process.execPath, [CLI, "jacobian", payload, "--address", address, "--stream"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const [first] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
    assert.ok(JSON.parse(first).header);
    child.stdout!.destroy();
    const [code] = (await once(child, "exit")) as [number];
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /EPIPE|tesseract-grpc jacobian:/);
  });

  it("jacobian with meshstats' declared structure: 2 evaluations per group, the groups on stderr, sparse rows with --stream", async () => {
    const payload = JSON.stringify({ inputs, jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"], options: { algorithm: "central" } });
    const unary = await cli("jacobian", payload, "--address", address, "--eps", "1e-3");
    assert.equal(unary.code, 0, unary.stderr);
    // meshstats' abstractEval gives the output shapes, so no f(x) is spent on them: 2 evaluations per group.
    const calls = Number(/^stats: (\d+) apply calls/.exec(unary.stderr)?.[1]);
    const groups = Number(/; (\d+) column groups \(sparsity: tesseract\)\n$/.exec(unary.stderr)?.[1]);
    assert.ok(groups > 0 && groups < 3 * N, unary.stderr);
    assert.equal(calls, 2 * groups, unary.stderr);
    const J = JSON.parse(unary.stdout)["statistics.barycenter"]["mesh.points"] as number[][][];
    J.forEach((plane, c) => plane.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - (c === k ? 1 / N : 0)) < 1e-9, `J[${c}][${i}][${k}] = ${v}`))));
    const streamed = await cli("jacobian", payload, "--address", address, "--eps", "1e-3", "--stream");
    assert.equal(streamed.code, 0, streamed.stderr);
    const lines = streamed.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.equal(lines[0].header.nonzeros, 3 * N, "one nonzero per row: d barycenter_k / d points[i, k]");
    assert.equal(lines.length, 1 + 3 * N + 1, "header, one line per row, stats");
    for (const { row } of lines.slice(1, -1)) {
      // Row j = points[i, k] (j = 3i + k) touches barycenter[k] alone, by 1/N.
      const [slice, ...rest] = row.slices;
      assert.deepEqual([rest.length, slice.output_path, slice.offset, slice.indices], [0, "statistics.barycenter", 0, [row.input_index % 3]]);
      assert.equal(slice.values.length, 1);
      assert.ok(Math.abs(slice.values[0] - 1 / N) < 1e-9, `row ${row.input_index}: ${slice.values[0]}`);
    }
  });

  it("jacobian and vjp with the payload's own structure (\"sparsity\"): the request's groups, analytic values", async () => {
    // barycenter[k] = mean_i points[i, k]: column 3i + k touches output k alone.
    const sparsity = [{ output_path: "statistics.barycenter", input_path: "mesh.points", output_index: [0, 1, 2, 0, 1, 2, 0, 1, 2], input_index: [0, 1, 2, 3, 4, 5, 6, 7, 8] }];
    const jac = await cli("jacobian", JSON.stringify({ inputs, jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"], sparsity }), "--address", address);
    assert.equal(jac.code, 0, jac.stderr);
    assert.match(jac.stderr, /^stats: 6 apply calls in [0-9.e-]+ s; 3 column groups \(sparsity: request\)\n$/);
    const J = JSON.parse(jac.stdout)["statistics.barycenter"]["mesh.points"] as number[][][];
    J.forEach((plane, c) => plane.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - (c === k ? 1 / N : 0)) < 1e-9, `J[${c}][${i}][${k}] = ${v}`))));
    const vjp = await cli("vjp", JSON.stringify({ inputs, vjp_inputs: ["mesh.points"], vjp_outputs: ["statistics.barycenter"], cotangent_vector: { "statistics.barycenter": [1, 2, 3] }, sparsity }), "--address", address);
    assert.equal(vjp.code, 0, vjp.stderr);
    assert.match(vjp.stderr, /3 column groups \(sparsity: request\)/);
    (JSON.parse(vjp.stdout)["mesh.points"] as number[][]).forEach((row) => row.forEach((v, k) => assert.ok(Math.abs(v - (k + 1) / N) < 1e-7, String(row))));
  });

  it("payload keys: another command's are left alone, one no command reads is refused by name; a bad \"sparsity\" names the field", async () => {
    // The README's mesh.json carries every command's keys.
    const shared = { inputs, jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"], jvp_inputs: ["mesh.points"], tangent_vector: {}, cotangent_vector: {}, rtol: 1 };
    const ok = await cli("jacobian", JSON.stringify(shared), "--address", address);
    assert.equal(ok.code, 0, ok.stderr);
    const typo = await cli("jacobian", JSON.stringify({ ...shared, option: { algorithm: "forward" } }), "--address", address);
    assert.equal(typo.code, 1);
    assert.equal(typo.stderr, 'tesseract-grpc jacobian: INVALID_ARGUMENT: payload has a key "option" that no command reads; jacobian reads "inputs", "jac_inputs", "jac_outputs", "options", "sparsity"\n');
    const apply = await cli("apply", JSON.stringify({ inputs, bogus_key: 1 }), "--address", address);
    assert.match(apply.stderr, /^tesseract-grpc apply: INVALID_ARGUMENT: payload has a key "bogus_key" that no command reads; apply reads "inputs"\n$/);
    const badIndex = await cli("jacobian", JSON.stringify({ ...shared, sparsity: [{ output_path: "statistics.barycenter", input_path: "mesh.points", output_index: [0, "1"], input_index: [0, 1] }] }), "--address", address);
    assert.equal(badIndex.code, 1);
    assert.match(badIndex.stderr, /INVALID_ARGUMENT: payload\.sparsity\[0\]\.output_index: expected a list of whole numbers ≥ 0/);
    const badKey = await cli("jacobian", JSON.stringify({ ...shared, sparsity: [{ output: "statistics.barycenter" }] }), "--address", address);
    assert.match(badKey.stderr, /payload\.sparsity\[0\] has a key "output": expected "output_path", "input_path", "output_index", "input_index"/);
    // Shaped right but out of range: the server's refusal, naming the pair.
    const outOfRange = await cli("jacobian", JSON.stringify({ ...shared, sparsity: [{ output_path: "statistics.barycenter", input_path: "mesh.points", output_index: [3], input_index: [0] }] }), "--address", address);
    assert.equal(outOfRange.code, 1);
    assert.match(outOfRange.stderr, /INVALID_ARGUMENT: sparsity\[0\] \(output_path "statistics\.barycenter", input_path "mesh\.points"\): output_index\[0\] = 3/);
  });

  it("--progress draws the bar on stderr even when it is not a terminal", async () => {
    const payload = JSON.stringify({ inputs, jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"] });
    const { code, stderr } = await cli("jacobian", payload, "--address", address, "--stream", "--progress");
    assert.equal(code, 0, stderr);
    assert.match(stderr, new RegExp(`rows ${3 * N}/${3 * N} \\| \\d+ evals/s`));
    // No ETA before a row has come (it read "ETA 0s").
    assert.match(stderr, /^rows 0\/\d+ \| 0 evals\/s \| ETA …$/m);
  });

  it("jvp and vjp", async () => {
    const tangent = { "mesh.points": [[1, 0, 0], [1, 0, 0], [1, 0, 0]] };
    const jvp = await cli("jvp", JSON.stringify({ inputs, jvp_inputs: ["mesh.points"], jvp_outputs: ["statistics.barycenter"], tangent_vector: tangent }), "--address", address);
    assert.equal(jvp.code, 0, jvp.stderr);
    assert.match(jvp.stderr, /^stats: 2 apply calls in [0-9.e-]+ s\n$/);
    const r = JSON.parse(jvp.stdout)["statistics.barycenter"] as number[];
    assert.ok(Math.abs(r[0] - 1) < 1e-8 && Math.abs(r[1]) < 1e-8 && Math.abs(r[2]) < 1e-8, String(r));
    const vjp = await cli("vjp", JSON.stringify({ inputs, vjp_inputs: ["mesh.points"], vjp_outputs: ["statistics.first_point_coordinates"], cotangent_vector: { "statistics.first_point_coordinates": [1, 2, 3] } }), "--address", address, "--algorithm", "forward", "--sparsity-mode", "dense");
    assert.equal(vjp.code, 0, vjp.stderr);
    assert.match(vjp.stderr, new RegExp(`^stats: ${3 * N + 1} apply calls in [0-9.e-]+ s\n$`), "forward: n + 1");
    const g = JSON.parse(vjp.stdout)["mesh.points"] as number[][];
    const expected = [[1, 2, 3], [0, 0, 0], [0, 0, 0]];
    g.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - expected[i][k]) < 1e-6, `g[${i}][${k}] = ${v}`)));
  });

  it("a tangent or cotangent that is no object of arrays: INVALID_ARGUMENT naming it and what was expected, exit 1 (a string was read as a map of its characters)", async () => {
    const jvp = { inputs, jvp_inputs: ["mesh.points"], jvp_outputs: ["statistics.barycenter"] };
    const cases: [string, unknown, string][] = [
      ["jvp", "abc", 'payload.tangent_vector is "abc": expected an object of arrays by input path, {"<input path>": [...], ...}'],
      ["jvp", 5, "payload.tangent_vector is 5: expected an object of arrays by input path"],
      ["jvp", [[1, 2, 3]], "payload.tangent_vector is [[1,2,3]]: expected an object of arrays by input path"],
      ["vjp", "x".repeat(500), `payload.cotangent_vector is "${"x".repeat(199)}… (502 characters): expected an object of arrays by output path`],
    ];
    for (const [command, vector, message] of cases) {
      const payload = command === "jvp" ? { ...jvp, tangent_vector: vector } : { inputs, vjp_inputs: ["mesh.points"], vjp_outputs: ["statistics.barycenter"], cotangent_vector: vector };
      const result = await cli(command, JSON.stringify(payload), "--address", address);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "");
      assert.ok(result.stderr.startsWith(`tesseract-grpc ${command}: INVALID_ARGUMENT: ${message}`), result.stderr);
    }
  });

  it("errors: the status and the message on stderr, exit code 1", async function () {
    this.timeout(60_000); // 18 CLI processes, run side by side
    const payload = JSON.stringify({ inputs, jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"] });
    // JSON.parse takes it; the conversions that recurse over it overflowed the stack ("Maximum call stack size exceeded").
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "deep-")), "payload.json");
    fs.writeFileSync(file, `{"inputs": {"mesh": {"points": ${"[".repeat(200_000)}1${"]".repeat(200_000)}}}}`);
    const helps = [["jvp", "--sparsity-mode"], ["health", "--format"], ["describe", "--format"]];
    const [bad, unknownField, notJson, forgotAt, missing, noFolder, empty, npz, badOption, both, notObject, deep, ...helpTexts] = await Promise.all([
      cli("jacobian", JSON.stringify({ inputs, jac_inputs: ["mesh.pointz"], jac_outputs: ["statistics.barycenter"] }), "--address", address),
      cli("apply", JSON.stringify({ inputs: { mesh: { pointz: [] } } }), "--address", address),
      cli("apply", "{nope", "--address", address),
      cli("apply", "mesh.json", "--address", address),
      cli("apply", "@no-such-mesh.json", "--address", address),
      cli("jacobian", payload, "--out", "/no-such-folder/J.npy", "--address", address),
      cli("jacobian", payload, "--out", "", "--address", address),
      cli("jacobian", payload, "--out", path.join(os.tmpdir(), "no-such-folder-J.npz"), "--address", address),
      cli("jacobian", JSON.stringify({ ...JSON.parse(payload), options: { eps: -1 } }), "--address", address),
      cli("jacobian", "{}", "--stream", "--out", "J.npy", "--address", address),
      cli("apply", "[1]", "--address", address),
      cli("apply", `@${file}`, "--address", address),
      ...helps.map(([command]) => cli(command, "--help")),
    ]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, "");
    assert.match(bad.stderr, /^tesseract-grpc jacobian: INVALID_ARGUMENT: jac_inputs: input path "mesh\.pointz" does not exist; differentiable input paths: mesh\.points\n$/);
    assert.equal(unknownField.code, 1);
    assert.match(unknownField.stderr, /inputs\.mesh\.pointz: VolumetricMeshData has no such field; fields: n_points, n_cells, points/);
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, /^tesseract-grpc apply: INVALID_ARGUMENT: payload is not valid JSON: /);
    assert.match(forgotAt.stderr, /payload is not valid JSON: .* \(a file is read with @: @mesh\.json\)\n$/);
    assert.equal(missing.stderr, 'tesseract-grpc apply: INVALID_ARGUMENT: payload file "no-such-mesh.json" cannot be read: no such file\n');
    // An --out the CLI cannot write, and a bad option in the payload: a code and what is wrong (a raw ENOENT, no code).
    assert.equal(noFolder.stderr, 'tesseract-grpc jacobian: INVALID_ARGUMENT: --out "/no-such-folder/J.npy" cannot be written: its folder does not exist\n');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /option '--out <file\.npy>' argument '' is invalid\. expected a file path/);
    // .npz named a zip of arrays and got one .npy array's bytes (exit 0): refused before any call, no file written.
    assert.equal(npz.code, 1);
    assert.match(npz.stderr, /option '--out <file\.npy>' argument '.*no-such-folder-J\.npz' is invalid\. expected a \.npy file \(or a name without an extension\): the Jacobian is written as one NumPy \.npy array, not as \.npz\n\(add --help for usage\)\n$/);
    assert.equal(fs.existsSync(path.join(os.tmpdir(), "no-such-folder-J.npz")), false);
    assert.equal(badOption.stderr, "tesseract-grpc jacobian: INVALID_ARGUMENT: payload.options.eps: expected a positive number, got -1\n");
    // Flags that cannot go together, or do nothing for a command, are not offered.
    assert.match(both.stderr, /option '--stream' cannot be used with option '--out <file\.npy>'/);
    helps.forEach(([command, flag], i) => assert.doesNotMatch(helpTexts[i].stdout, new RegExp(flag), `${command} ${flag}`));
    // The payload's field checks, before any call, print a code too.
    assert.match(unknownField.stderr, /^tesseract-grpc apply: INVALID_ARGUMENT: inputs\.mesh\.pointz: /);
    assert.equal(notObject.code, 1);
    assert.match(notObject.stderr, /^tesseract-grpc apply: INVALID_ARGUMENT: payload is not a JSON object: expected \{"inputs": \{\.\.\.\}, \.\.\.\}\n$/);
    assert.equal(deep.code, 1);
    assert.match(deep.stderr, /^tesseract-grpc apply: INVALID_ARGUMENT: payload is nested more than 100 deep\n$/);
  });
});

describe("CLI: payloads, options and messages", () => {
  let mesh: ServeProcess;
  let polynomial: ServeProcess;
  const POLYNOMIAL = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");
  // params{a} as a nested list, params{b} in tesseract-core's object form.
  const polyInputs = { x: [1, 2, 0.5], y: 0, params: { a: [1, 2], b: { object_type: "array", shape: [2], dtype: "float64", data: { buffer: [3, 4], encoding: "json" } } } };
  const fOfX = (names: string[], values: number[]) => ({ inputs: { ...polyInputs, x: values }, jac_inputs: names, jac_outputs: ["f"] });

  before(async () => {
    [mesh, polynomial] = await Promise.all([serveProcess(["meshstats", "--port", "0", "--eval-cache-mb", "0"]), serveProcess([POLYNOMIAL, "--port", "0", "--eval-cache-mb", "0"])]);
  });

  after(async () => {
    await Promise.all([mesh.stop(), polynomial.stop()]);
  });

  describe("maps of tensors, compact arrays", () => {
    it("map<string, Tensor> inputs in both JSON forms: meshstats cell_data (was: unsupported datatype DATA_TYPE_UNSPECIFIED)", async () => {
      const withCellData = { mesh: { ...inputs.mesh, cell_data: { temperature: [[300]], pressure: { object_type: "array", shape: [1, 2], dtype: "float64", data: { buffer: [1, 2], encoding: "json" } } } } };
      const { code, stdout, stderr } = await cli("apply", JSON.stringify({ inputs: withCellData }), "--address", mesh.address);
      assert.equal(code, 0, stderr);
      assert.deepEqual(JSON.parse(stdout).statistics.first_point_coordinates, [1, 2, 3]);
    });

    it("differentiable maps (the README's stiffness example): jacobian and jvp by map entry, analytic values", async () => {
      // named{k} = params{k}² · Σx: d named{k}_i / d params{k}_j = 2 params{k}_i Σx δij, Σx = 3.5.
      const payload = { inputs: polyInputs, jac_inputs: ["params.{a}", "params.{b}"], jac_outputs: ["named.{a}", "named.{b}"] };
      const { code, stdout, stderr } = await cli("jacobian", JSON.stringify(payload), "--address", polynomial.address);
      assert.equal(code, 0, stderr);
      const J = JSON.parse(stdout);
      assertClose(J["named.{a}"]["params.{a}"].flat(), [7, 0, 0, 14], 1e-6, "d named{a} / d params{a}");
      assertClose(J["named.{b}"]["params.{b}"].flat(), [21, 0, 0, 28], 1e-6, "d named{b} / d params{b}");
      assertClose(J["named.{a}"]["params.{b}"].flat(), [0, 0, 0, 0], 1e-9, "d named{a} / d params{b}");
      const jvp = await cli("jvp", JSON.stringify({ inputs: polyInputs, jvp_inputs: ["params.{b}"], jvp_outputs: ["named.{b}"], tangent_vector: { "params.{b}": [1, 1] } }), "--address", polynomial.address);
      assert.equal(jvp.code, 0, jvp.stderr);
      assertClose(JSON.parse(jvp.stdout)["named.{b}"], [21, 28], 1e-6, "J·v");
    });

    it("an apply that leaves a promise to reject and a timer to throw: answered, logged, and the server goes on (inline and auto ended the process)", async () => {
      for (const workers of ["0", "auto"]) {
        const server = await serveProcess([POLYNOMIAL, "--port", "0", "--eval-cache-mb", "0", "--workers", workers, "--warm-up-ms", "0"]);
        try {
          const stray = await cli("apply", JSON.stringify({ inputs: { ...polyInputs, mode: "stray" } }), "--address", server.address);
          assert.equal(stray.code, 0, stray.stderr);
          const jac = await cli("jacobian", JSON.stringify({ ...fOfX(["x"], [1, 2, 0.5]), inputs: { ...polyInputs, mode: "stray" } }), "--address", server.address);
          assert.equal(jac.code, 0, jac.stderr);
          assertClose(JSON.parse(jac.stdout).f.x.flat(), [3, 0, 0, 0, 12, 0, 0, 0, 0.75], 1e-6, "d f / d x = 3x² on the diagonal");
          assert.equal(server.child.exitCode, null, `--workers ${workers}: ${server.stderrTail()}`);
          assert.match(server.stderrTail(), /a promise rejected with no handler outside any request .*still serving/);
          assert.match(server.stderrTail(), /"reason":"42".*an exception was thrown outside any request/);
        } finally {
          assert.equal(await server.stop(), 0);
        }
      }
    });

    it("maps keyed by integers and bools, and bytes: keys as written, false kept, bytes in base64 (int64 keys printed as 8 control characters, false sent as true, bytes as a Buffer's JSON)", async () => {
      const keyed = await serveProcess([path.join(__dirname, "../../test/fixtures/keyed/keyed.js"), "--port", "0"]);
      try {
        const given = { by_int64: { "-9007199254740991": [1], "5": [2] }, by_uint64: { "9007199254740991": [3] }, by_int32: { "-7": [4] }, by_bool: { true: [5], false: [6] }, blob: "AAEC" };
        const { code, stdout, stderr } = await cli("apply", JSON.stringify({ inputs: given }), "--address", keyed.address);
        assert.equal(code, 0, stderr);
        assert.deepEqual(JSON.parse(stdout), { by_int64: { "-9007199254740991": [2], "5": [4] }, by_uint64: { "9007199254740991": [6] }, by_int32: { "-7": [8] }, by_bool: { true: [10], false: [12] }, blob: "AgEA" });
        const jac = await cli("jacobian", JSON.stringify({ inputs: given, jac_inputs: ["by_bool.{false}"], jac_outputs: ["by_bool.{false}", "by_int64.{-9007199254740991}"] }), "--address", keyed.address);
        assert.equal(jac.code, 0, jac.stderr);
        assert.deepEqual(JSON.parse(jac.stdout), { "by_bool.{false}": { "by_bool.{false}": [[2]] }, "by_int64.{-9007199254740991}": { "by_bool.{false}": [[0]] } });
      } finally {
        await keyed.stop();
      }
    });

    it('int and bool arrays written compactly: {"dtype": "int32", "data": [...]}', async () => {
      const compact = { ...polyInputs, counts: { dtype: "bool", data: [true, false] } };
      const bools = await cli("apply", JSON.stringify({ inputs: compact }), "--address", polynomial.address);
      assert.equal(bools.code, 0, bools.stderr);
      const ints = await cli("apply", JSON.stringify({ inputs: { mesh: { ...inputs.mesh, cell_connectivity: { dtype: "int32", data: [0, 1, 2] } } } }), "--address", mesh.address);
      assert.equal(ints.code, 0, ints.stderr);
      assert.deepEqual(JSON.parse(ints.stdout).statistics.barycenter, [4, 5, 19 / 3]);
    });

    it("an int array written as a nested list: the message says how to write an int32 array", async () => {
      const { code, stderr } = await cli("apply", JSON.stringify({ inputs: { mesh: { ...inputs.mesh, cell_connectivity: [0, 1, 2] } } }), "--address", mesh.address);
      assert.equal(code, 1);
      assert.equal(
        stderr,
        'tesseract-grpc apply: INVALID_ARGUMENT: mesh.cell_connectivity has datatype float64, expected int32 — a nested list or a number is float64; write it as {"dtype": "int32", "data": ...} with the same list or number (and "shape" if the nesting does not give it)\n',
      );
    });
  });

  describe("finite-difference options by name, in the payload and as flags", () => {
    /** d f_0 / d x_0 and the apply calls, from `jacobian` of f w.r.t. x at x = [1, 2, 0.5], y = 0. */
    async function derivative(options: object | undefined, ...flags: string[]): Promise<{ d: number; calls: number }> {
      const { code, stdout, stderr } = await cli("jacobian", JSON.stringify({ ...fOfX(["x"], [1, 2, 0.5]), options }), "--address", polynomial.address, ...flags);
      assert.equal(code, 0, stderr);
      return { d: JSON.parse(stdout).f.x[0][0], calls: Number(/^stats: (\d+) apply calls/.exec(stderr)?.[1]) };
    }
    const n = 3;
    // Forward differences of x³ at 1 show the step taken: (f(1 + h) - f(1)) / h = 3 + 3h + h².
    const forward = (h: number) => 3 + 3 * h + h * h;

    it('payload names: "richardson" (was: unknown algorithm -1), per-path steps', async () => {
      assert.equal((await derivative({ algorithm: "richardson" })).calls, 4 * n + 9);
      assertClose([(await derivative({ algorithm: "forward", eps_by_path: { x: 0.1 } })).d], [forward(0.1)], 1e-9, "payload eps_by_path");
    });

    it("flags: --algorithm adaptive and stochastic with its estimator; --step-mode relative with --typical-magnitude", async () => {
      const adaptive = await derivative({ algorithm: "central" }, "--algorithm", "adaptive");
      assert.equal(adaptive.calls, 12 * n + 9, "the flag overrides the payload");
      assert.ok(Math.abs(adaptive.d - 3) < 1e-9, `adaptive: d (x³)/dx at 1 = ${adaptive.d}`);
      assert.equal((await derivative(undefined, "--algorithm", "stochastic", "--num-samples", "2", "--stochastic-estimator", "least-squares", "--seed", "7")).calls, 2 * 2);
      // Relative: h = eps · max(|x|, typical) = 0.1 · 2.
      assertClose([(await derivative(undefined, "--algorithm", "forward", "--eps", "0.1", "--step-mode", "relative", "--typical-magnitude", "x=2")).d], [forward(0.2)], 1e-9, "--step-mode");
    });

    it("an unknown name is refused, listing the names", async () => {
      const { code, stderr } = await cli("jacobian", JSON.stringify({ ...fOfX(["x"], [1, 2, 0.5]), options: { algorithm: "richardsn" } }), "--address", polynomial.address);
      assert.equal(code, 1);
      assert.equal(stderr, 'tesseract-grpc jacobian: INVALID_ARGUMENT: payload.options.algorithm: unknown value "richardsn"; expected one of central, forward, stochastic, richardson, adaptive\n');
    });

    it("a missing list of paths is named missing (it said \"expected a list\" of a key not written)", async () => {
      const { jac_outputs: _, ...withoutOutputs } = fOfX(["x"], [1, 2, 0.5]) as Record<string, unknown>;
      const { code, stderr } = await cli("jacobian", JSON.stringify(withoutOutputs), "--address", polynomial.address);
      assert.equal(code, 1);
      assert.equal(stderr, "tesseract-grpc jacobian: INVALID_ARGUMENT: payload.jac_outputs is missing: expected a list of path strings\n");
    });
  });

  describe("describe, --version, errors with a next step", () => {
    it("describe prints enums by name", async () => {
      const { code, stdout, stderr } = await cli("describe", "--address", mesh.address);
      assert.equal(code, 0, stderr);
      const { defaults } = JSON.parse(stdout);
      assert.deepEqual([defaults.algorithm, defaults.step_mode, defaults.stochastic_estimator, defaults.eps], ["ALGORITHM_UNSPECIFIED", "STEP_MODE_UNSPECIFIED", "STOCHASTIC_ESTIMATOR_UNSPECIFIED", 1e-6]);
    });

    it("--version prints the package's version", async () => {
      const { code, stdout } = await cli("--version");
      assert.deepEqual([code, stdout], [0, `${JSON.parse(fs.readFileSync(path.join(__dirname, "../../package.json"), "utf8")).version}\n`]);
    });

    it("no server at the address: UNAVAILABLE saying how to start one (not grpc-js's text with an empty resolution note)", async () => {
      // A port nothing listens on: one just bound and closed.
      const probe = net.createServer().listen(0, "127.0.0.1");
      await once(probe, "listening");
      const closed = `127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
      await new Promise((resolve) => probe.close(resolve));
      const { code, stderr } = await cli("describe", "--address", closed);
      assert.equal(code, 1);
      assert.equal(stderr, `tesseract-grpc describe: UNAVAILABLE: no server at ${closed} (connection refused) — start one with \`tesseract-grpc serve meshstats\` (or your own Tesseract), or point --address at a running one\n`);
    });

    it("an address written as a URL: says to write HOST:PORT without the scheme, naming it (it said only that the host does not resolve)", async () => {
      const { code, stderr } = await cli("describe", "--address", `http://${mesh.address}`);
      assert.equal(code, 1);
      assert.equal(stderr, `tesseract-grpc describe: UNAVAILABLE: cannot resolve the host of http://${mesh.address} — an address is HOST:PORT, without "http://": ${mesh.address}\n`);
    });

    it("a port alone as the address (50061, :50061): refused naming the HOST:PORT meant, before any call (it dialled 50061:50051, 'no server at 50061:50051'), by every command that takes --address", async () => {
      const port = mesh.address.split(":")[1];
      const refused = (given: string) => `error: option '--address <host:port>' argument '${given}' is invalid. an address is HOST:PORT, not a port alone: 127.0.0.1:${port}\n(add --help for usage)\n`;
      for (const args of [["describe", "--address", port], ["health", "--address", `:${port}`], ["proto", "--out", "unused", "--address", port], ["generate", "--address", port]]) {
        const { code, stdout, stderr } = await cli(...args);
        assert.deepEqual([code, stdout, stderr], [1, "", refused(args[args.length - 1])], args.join(" "));
      }
    });

    it("--port on a command that calls a server (serve's flag, carried over): refused naming --address (it was commander's bare \"unknown option '--port'\")", async () => {
      for (const args of [["describe", "--port", "50061"], ["apply", "{}", "--port", "50061"], ["proto", "--out", "unused", "--port", "50061"]]) {
        const { code, stdout, stderr } = await cli(...args);
        const expected = "error: option '--port <port>' argument '50061' is invalid. --port is serve's flag; a server is called at --address HOST:PORT (--address 127.0.0.1:50061)\n(add --help for usage)\n";
        assert.deepEqual([code, stdout, stderr], [1, "", expected], args.join(" "));
      }
      // No example address from a value that is no port.
      const odd = await cli("describe", "--port", "abc");
      assert.equal(odd.stderr, "error: option '--port <port>' argument 'abc' is invalid. --port is serve's flag; a server is called at --address HOST:PORT\n(add --help for usage)\n");
    });

    it("an address without a port dials 50051 (grpc-js alone would dial 443)", async () => {
      // Whatever answers on this machine's port 50051 (most often nothing), the address used names it.
      const { code, stderr } = await cli("health", "--address", "127.0.0.1", "--deadline", "5000");
      assert.doesNotMatch(stderr, /:443\b/);
      if (code !== 0 && /UNAVAILABLE/.test(stderr)) assert.match(stderr, / 127\.0\.0\.1:50051 /);
    });

    it("TLS asked of a plaintext server: says to leave out --tls", async () => {
      const { code, stderr } = await cli("describe", "--address", mesh.address, "--tls");
      assert.equal(code, 1);
      assert.equal(stderr, `tesseract-grpc describe: UNAVAILABLE: ${mesh.address} does not answer TLS — leave out --tls and the --tls-* flags for a plaintext server\n`);
    });

    it("a port in use: one line saying so and what to do, no stray grpc-js line before it", async () => {
      const port = mesh.address.split(":")[1];
      const { code, stdout, stderr } = await run(process.execPath, [CLI, "serve", "meshstats", "--port", port]).then(
        () => ({ code: 0, stdout: "", stderr: "" }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
      assert.deepEqual([code, stdout], [1, ""]);
      assert.equal(stderr, `tesseract-grpc: 127.0.0.1:${port} is already in use (another server?) — stop it, or choose another port with --port (0 picks a free one)\n`);
      // The REST API's port in use names its own flag.
      const rest = await run(process.execPath, [CLI, "serve", "meshstats", "--port", "0", "--http-port", port, "--warm-up-ms", "0"]).then(
        () => ({ code: 0, stderr: "" }),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(rest.code, 1);
      assert.equal(rest.stderr, `tesseract-grpc: 127.0.0.1:${port} is already in use (another server?) — stop it, or choose another port with --http-port (0 picks a free one)\n`);
      // So does the metrics port (it named --port), and two flags naming one port say so (it blamed another server).
      const own = String(await freePort());
      const cases: [string[], string][] = [
        [["--port", "0", "--metrics-port", port], `127.0.0.1:${port} is already in use (another server?) — stop it, or choose another port with --metrics-port (0 picks a free one)`],
        [["--port", own, "--http-port", own], `--http-port and --port both name 127.0.0.1:${own}: gRPC, the REST API and metrics each need a port of their own (0 picks a free one)`],
        [["--port", own, "--metrics-port", own], `--port and --metrics-port both name 127.0.0.1:${own}: gRPC, the REST API and metrics each need a port of their own (0 picks a free one)`],
      ];
      for (const [flags, message] of cases) {
        const failed = await run(process.execPath, [CLI, "serve", "meshstats", ...flags, "--warm-up-ms", "0"]).then(
          () => ({ code: 0, stderr: "" }),
          (e: { code: number; stderr: string }) => e,
        );
        assert.deepEqual([failed.code, failed.stderr], [1, `tesseract-grpc: ${message}\n`], flags.join(" "));
      }
    });
  });
});
