/** Deterministic example inputs for the bundled Tesseracts, used by the demo, benchmarks and tests. */
import ndarray from "ndarray";
import { Algorithm } from "../tesseract";

/** A meshstats input: N points (coordinates of order 10) in a single cell. */
export function sampleMeshInputs(N: number, fdAlgorithm: number = Algorithm.UNSPECIFIED) {
  const points = new Float64Array(N * 3).map((_, i) => 10 * Math.sin(1.3 * i + 0.2));
  return {
    mesh: {
      n_points: N,
      n_cells: 1,
      points: ndarray(points, [N, 3]),
      num_points_per_cell: ndarray(Float64Array.of(N), [1]),
      cell_connectivity: ndarray(Int32Array.from({ length: N }, (_, i) => i), [N]),
      cell_data: {},
      point_data: {},
    },
    fd_algorithm: fdAlgorithm,
  };
}
