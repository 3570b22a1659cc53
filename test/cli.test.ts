/**
 * The CLI as a user runs it: `serve` in a child process (one stdout line, JSON logs on stderr) and the
 * client commands against it, with tesseract-core's JSON in and out.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { CLI, serveProcess, type ServeProcess } from "./helpers";

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

  before(async () => {
    server = await serveProcess(["meshstats", "--port", "0"]);
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

  it("jacobian, unary and streamed, in both output formats", async () => {
    const payload = JSON.stringify({ inputs, jac_inputs: ["mesh.points"], jac_outputs: ["statistics.barycenter"], options: { algorithm: "ALGORITHM_CENTRAL" } });
    const unary = await cli("jacobian", payload, "--address", address, "--eps", "1e-3");
    assert.equal(unary.code, 0, unary.stderr);
    const J = JSON.parse(unary.stdout)["statistics.barycenter"]["mesh.points"] as number[][][];
    // d barycenter_c / d points[i, c'] = δ(c, c') / N; central differences of a linear map: ~1e-12.
    J.forEach((plane, c) => plane.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - (c === k ? 1 / N : 0)) < 1e-9, `J[${c}][${i}][${k}] = ${v}`))));
    const streamed = await cli("jacobian", payload, "--address", address, "--eps", "1e-3", "--stream", "--format", "json+base64");
    assert.equal(streamed.code, 0, streamed.stderr);
    const encoded = JSON.parse(streamed.stdout)["statistics.barycenter"]["mesh.points"];
    assert.deepEqual([encoded.object_type, encoded.shape, encoded.dtype, encoded.data.encoding], ["array", [3, N, 3], "float64", "base64"]);
    const values = new Float64Array(new Uint8Array(Buffer.from(encoded.data.buffer, "base64")).buffer);
    assert.deepEqual(Array.from(values), J.flat(2));
    assert.equal(streamed.stderr, "", "no progress bar when stderr is not a terminal");
  });

  it("jvp and vjp", async () => {
    const tangent = { "mesh.points": [[1, 0, 0], [1, 0, 0], [1, 0, 0]] };
    const jvp = await cli("jvp", JSON.stringify({ inputs, jvp_inputs: ["mesh.points"], jvp_outputs: ["statistics.barycenter"], tangent_vector: tangent }), "--address", address);
    assert.equal(jvp.code, 0, jvp.stderr);
    const r = JSON.parse(jvp.stdout)["statistics.barycenter"] as number[];
    assert.ok(Math.abs(r[0] - 1) < 1e-8 && Math.abs(r[1]) < 1e-8 && Math.abs(r[2]) < 1e-8, String(r));
    const vjp = await cli("vjp", JSON.stringify({ inputs, vjp_inputs: ["mesh.points"], vjp_outputs: ["statistics.first_point_coordinates"], cotangent_vector: { "statistics.first_point_coordinates": [1, 2, 3] } }), "--address", address, "--algorithm", "forward");
    assert.equal(vjp.code, 0, vjp.stderr);
    const g = JSON.parse(vjp.stdout)["mesh.points"] as number[][];
    const expected = [[1, 2, 3], [0, 0, 0], [0, 0, 0]];
    g.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - expected[i][k]) < 1e-6, `g[${i}][${k}] = ${v}`)));
  });

  it("errors: the status and the message on stderr, exit code 1", async () => {
    const bad = await cli("jacobian", JSON.stringify({ inputs, jac_inputs: ["mesh.pointz"], jac_outputs: ["statistics.barycenter"] }), "--address", address);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, "");
    assert.match(bad.stderr, /^tesseract-grpc jacobian: INVALID_ARGUMENT: jac_inputs: input path "mesh\.pointz" does not exist; differentiable input paths: mesh\.points\n$/);
    const unknownField = await cli("apply", JSON.stringify({ inputs: { mesh: { pointz: [] } } }), "--address", address);
    assert.equal(unknownField.code, 1);
    assert.match(unknownField.stderr, /inputs\.mesh\.pointz: VolumetricMeshData has no such field; fields: n_points, n_cells, points/);
    const notJson = await cli("apply", "{nope", "--address", address);
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, /payload is not valid JSON/);
  });
});
