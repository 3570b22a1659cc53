/**
 * meshstats: summary statistics of a volumetric mesh — its first point and the barycenter (mean of
 * all points). Gradients are finite differences with eps = 1e-6 and the algorithm chosen by the
 * inputs' `fd_algorithm` (central when unset); a request's options override both.
 */
import * as path from "node:path";
import ndarray, { type NdArray } from "ndarray";
import type { Inputs, Outputs } from "../../generated/tesseract/examples/meshstats/v1/meshstats";
import { clip, invalidArgument, refusedAs } from "../../common/errors";
import { PROTO_DIR } from "../proto-dir";
import { DataType, dataTypeName, dataTypeOfArray, type TypedArray } from "../../common/tensor-codec";
import { sampleMeshInputs } from "./samples";
import { Algorithm, defineTesseract } from "../tesseract";
import { plural } from "../../common/plural";


const shapeText = (shape: readonly number[]) => `[${shape.join(", ")}]`;

const MESH_MISSING = "mesh is missing: expected a tesseract.mesh.v1.VolumetricMeshData (n_points, n_cells, points of shape (n_points, 3), num_points_per_cell, cell_connectivity)";

function expectTensor(value: NdArray<TypedArray> | undefined, field: string, dtype: DataType, rank: number): NdArray<TypedArray> {
  if (!value) throw refusedAs("missing", `${field} is missing: expected a ${dataTypeName(dtype)} tensor of rank ${rank}`);
  const actual = dataTypeOfArray(value.data as never);
  if (actual !== dtype) throw invalidArgument(`${field} has datatype ${dataTypeName(actual)}, expected ${dataTypeName(dtype)}`);
  if (value.shape.length !== rank) throw invalidArgument(`${field} has shape ${shapeText(value.shape)}, expected rank ${rank}`);
  return value;
}

export default defineTesseract<Inputs, Outputs>({
  name: "meshstats",
  version: "1.0.0",
  description: "First point and barycenter of a volumetric mesh; differentiable with respect to the points.",
  inputType: "tesseract.examples.meshstats.v1.Inputs",
  outputType: "tesseract.examples.meshstats.v1.Outputs",
  protoFiles: [path.join(PROTO_DIR, "tesseract/examples/meshstats/v1/meshstats.proto")],

  validate({ mesh, fd_algorithm }) {
    // ts-proto's enums hold UNRECOGNIZED = -1 too: no algorithm.
    if (!(fd_algorithm >= 0 && Algorithm[fd_algorithm] !== undefined)) {
      throw invalidArgument(`fd_algorithm is ${fd_algorithm}, not a tesseract.v1.Algorithm: expected 0 (unspecified, central) to ${Algorithm.ALGORITHM_ADAPTIVE} (ALGORITHM_ADAPTIVE)`);
    }
    if (!mesh) throw refusedAs("missing", MESH_MISSING);
    const points = expectTensor(mesh.points, "mesh.points", DataType.DATA_TYPE_FP64, 2);
    if (points.shape[1] !== 3) throw invalidArgument(`mesh.points has shape ${shapeText(points.shape)}, expected (n_points, 3)`);
    if (points.shape[0] === 0) throw invalidArgument("mesh.points is empty: a mesh needs at least one point");
    if (mesh.n_points !== points.shape[0]) {
      // proto3 sends no 0: an n_points left out reads as 0.
      throw invalidArgument(`mesh.n_points is ${mesh.n_points}${mesh.n_points === 0 ? " (or unset)" : ""} but mesh.points has ${plural(points.shape[0], "row")}`);
    }
    const perCell = expectTensor(mesh.num_points_per_cell, "mesh.num_points_per_cell", DataType.DATA_TYPE_FP64, 1);
    if (perCell.shape[0] !== mesh.n_cells) {
      // Starting with the path: the REST API locates a message by it (loc ["body", "inputs", "mesh", ...]).
      throw invalidArgument(`mesh.num_points_per_cell has ${plural(perCell.shape[0], "element")}, expected mesh.n_cells = ${mesh.n_cells}${mesh.n_cells === 0 ? " (or unset)" : ""}`);
    }
    let total = 0;
    for (let i = 0; i < perCell.shape[0]; i++) {
      const count = Number(perCell.get(i));
      if (!Number.isInteger(count) || count < 0) throw invalidArgument(`mesh.num_points_per_cell[${i}] is ${count}, expected a non-negative whole number`);
      total += count;
    }
    const connectivity = expectTensor(mesh.cell_connectivity, "mesh.cell_connectivity", DataType.DATA_TYPE_INT32, 1);
    if (connectivity.shape[0] !== total) {
      throw invalidArgument(`mesh.cell_connectivity has ${plural(connectivity.shape[0], "element")}, expected sum(mesh.num_points_per_cell) = ${total}`);
    }
    for (const [kind, rows, data] of [["cell_data", mesh.n_cells, mesh.cell_data], ["point_data", mesh.n_points, mesh.point_data]] as const) {
      for (const [key, value] of Object.entries(data)) {
        const field = `mesh.${kind}.{${clip(key)}}`;
        const t = expectTensor(value, field, DataType.DATA_TYPE_FP64, 2);
        if (t.shape[0] !== rows) throw invalidArgument(`${field} has ${plural(t.shape[0], "row")}, expected ${rows}`);
      }
    }
  },

  apply({ mesh }) {
    const points = mesh!.points!;
    const n = points.shape[0];
    const data = points.data as Float64Array;
    const [rowStride, columnStride] = points.stride;
    const [y, z] = [columnStride, 2 * columnStride];
    const first = new Float64Array([data[points.offset], data[points.offset + y], data[points.offset + z]]);
    // Two partial sums per coordinate (even and odd rows): with one, each add waits for the last,
    // and the loop runs at the adder's latency rather than its throughput (a third faster).
    let [x0, y0, z0, x1, y1, z1] = [0, 0, 0, 0, 0, 0];
    let at = points.offset;
    let i = 0;
    for (; i + 1 < n; i += 2, at += 2 * rowStride) {
      const next = at + rowStride;
      x0 += data[at];
      y0 += data[at + y];
      z0 += data[at + z];
      x1 += data[next];
      y1 += data[next + y];
      z1 += data[next + z];
    }
    if (i < n) {
      x0 += data[at];
      y0 += data[at + y];
      z0 += data[at + z];
    }
    return {
      statistics: {
        first_point_coordinates: ndarray(first, [3]),
        barycenter: ndarray(new Float64Array([(x0 + x1) / n, (y0 + y1) / n, (z0 + z1) / n]), [3]),
      },
    };
  },

  abstractEval(inputs) {
    const points = inputs.mesh?.points;
    if (!points || points.shape.length !== 2 || points.shape[1] !== 3) {
      throw invalidArgument(`mesh.points must have shape (n_points, 3), got ${points ? shapeText(points.shape) : "nothing"}`);
    }
    return [
      { path: "statistics.first_point_coordinates", shape: [3], datatype: DataType.DATA_TYPE_FP64 },
      { path: "statistics.barycenter", shape: [3], datatype: DataType.DATA_TYPE_FP64 },
    ];
  },

  exampleInputs: () => sampleMeshInputs(1000),

  // first_point_coordinates[c] = points[0, c] and barycenter[c] = mean_i points[i, c]: column
  // (i, c), flat index 3i + c, touches component c of each. Columns of different components group
  // together: n_points groups instead of 3 n_points columns.
  sparsity({ mesh }) {
    const n = mesh!.points!.shape[0];
    const component = new Uint32Array(3 * n);
    const column = new Uint32Array(3 * n);
    for (let k = 0; k < 3 * n; k++) {
      component[k] = k % 3;
      column[k] = k;
    }
    return [
      { output_path: "statistics.first_point_coordinates", input_path: "mesh.points", output_index: [0, 1, 2], input_index: [0, 1, 2] },
      { output_path: "statistics.barycenter", input_path: "mesh.points", output_index: component, input_index: column },
    ];
  },

  finiteDifferences: { eps: 1e-6, algorithm: (inputs) => inputs.fd_algorithm },
});
