/**
 * A strict TypeScript app calling the meshstats Tesseract (`tesseract-grpc serve meshstats`) through
 * the typed SDK, with message types made by `tesseract-grpc generate`: apply, jacobian, jvp, vjp and
 * jacobianRows, each checked against meshstats' analytic derivatives (the barycenter moves by 1/N of
 * any point's move). Prints one line per call; exits 1 on any mismatch.
 *
 *   node dist/main.js [ADDRESS]          (default: $TESSERACT_GRPC_ADDRESS, else 127.0.0.1:50051)
 */
import ndarray from "ndarray";
import { TesseractClient, assembleJacobian, toFloat64 } from "tesseract-grpc/client";
import { Inputs, Outputs } from "./generated/tesseract/examples/meshstats/v1/meshstats.js";
import { Algorithm } from "./generated/tesseract/v1/algorithm.js";

const address = process.argv[2] ?? process.env.TESSERACT_GRPC_ADDRESS ?? "127.0.0.1:50051";
const client = new TesseractClient(address, {
  inputs: Inputs,
  outputs: Outputs,
  // The outputs' datatypes as the .proto states them: apply's outputs are then typed (and checked) as FP64.
  outputDatatypes: { statistics: { first_point_coordinates: "float64", barycenter: "float64" } },
});

/** Any ndarray the SDK returns (outputs keep their datatype; gradients are FP64). */
type Values = Parameters<typeof toFloat64>[0];

/** Values to 9 decimals (finite differences are accurate to about 1e-10 here). */
const show = (array: Values): string => `[${Array.from(toFloat64(array), (v) => Number(v.toFixed(9))).join(", ")}]`;

/** Throws unless every value is within `tolerance` of the expected one. */
function expectClose(what: string, actual: Values | undefined, expected: ArrayLike<number>, tolerance = 1e-8): void {
  if (actual === undefined) throw new Error(`${what}: missing`);
  const values = toFloat64(actual);
  const worst = Math.max(0, ...Array.from(values, (v, i) => Math.abs(v - expected[i])));
  if (values.length !== expected.length || !(worst <= tolerance)) {
    throw new Error(`${what}: got [${Array.from(values).join(", ")}], expected [${Array.from(expected).join(", ")}]`);
  }
}

// A tetrahedron: N = 4 points in one cell.
const N = 4;
const points = Float64Array.of(0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3);
const inputs = {
  mesh: {
    n_points: N,
    n_cells: 1,
    points: ndarray(points, [N, 3]),
    num_points_per_cell: ndarray(Float64Array.of(N), [1]),
    cell_connectivity: ndarray(Int32Array.of(0, 1, 2, 3), [N]),
    cell_data: {},
    point_data: {},
  },
  fd_algorithm: Algorithm.ALGORITHM_CENTRAL,
};
const request = { inputs, inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"], options: { eps: 1e-6 } };

// d barycenter[c] / d points[i, c'] = δ(c, c') / N: shape (3, N, 3).
const jacobianExpected = Array.from({ length: 3 * N * 3 }, (_, k) => (Math.floor(k / (N * 3)) === k % 3 ? 1 / N : 0));

try {
  const outputs = await client.apply(inputs);
  expectClose("apply: barycenter", outputs.statistics.barycenter, [0.25, 0.5, 0.75]);
  console.log(`apply: barycenter ${show(outputs.statistics.barycenter)}`);

  const result = await client.jacobian(request);
  const block = result.block("statistics.barycenter", "mesh.points");
  expectClose("jacobian", block, jacobianExpected);
  console.log(`jacobian: shape [${block.shape.join(", ")}], ${result.stats.apply_calls} apply calls`);

  // Moving every point by (1, 0, 0) moves the barycenter by (1, 0, 0).
  const tangent = { "mesh.points": ndarray(Float64Array.from({ length: N * 3 }, (_, k) => (k % 3 === 0 ? 1 : 0)), [N, 3]) };
  const jvp = await client.jvp({ ...request, tangent });
  expectClose("jvp", jvp.get("statistics.barycenter"), [1, 0, 0]);
  console.log(`jvp: ${show(jvp.get("statistics.barycenter"))}`);

  // (1, 2, 3)ᵀ·J: every point gets (1, 2, 3) / N.
  const cotangent = { "statistics.barycenter": ndarray(Float64Array.of(1, 2, 3), [3]) };
  const vjp = await client.vjp({ ...request, cotangent });
  expectClose("vjp", vjp.get("mesh.points"), Array.from({ length: N * 3 }, (_, k) => ((k % 3) + 1) / N));
  console.log(`vjp: ${show(vjp.get("mesh.points"))}`);

  // Row by row, as a big Jacobian would come, and assembled into the same result as jacobian().
  let rows = 0;
  for await (const event of client.jacobianRows(request)) if (event.row) rows++;
  const assembled = await assembleJacobian(client.jacobianRows(request));
  expectClose("jacobianRows", assembled.block("statistics.barycenter", "mesh.points"), jacobianExpected);
  console.log(`jacobianRows: ${rows} rows`);
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
} finally {
  client.close();
}
