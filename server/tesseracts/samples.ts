/** Deterministic example inputs for the bundled Tesseracts, used by the demo, benchmarks and tests. */
import ndarray from "ndarray";
import { Algorithm } from "../tesseract";

/** A meshstats input: N points (coordinates of order 10) in a single cell. */
export function sampleMeshInputs(N: number, fdAlgorithm: number = Algorithm.ALGORITHM_UNSPECIFIED) {
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

/**
 * A heat input: a smooth initial field on n grid points (1-D, shape (n,)) or an n × n grid (2-D),
 * vanishing towards the boundary, with κ = 1, dt = 0 (the stable default) and dx = 0 (1).
 */
export function sampleHeatInputs(n: number, steps: number, dims: 1 | 2 = 1) {
  const bump = (i: number) => Math.sin((Math.PI * (i + 1)) / (n + 1)) + 0.3 * Math.sin((3 * Math.PI * (i + 1)) / (n + 1));
  const values = dims === 1 ? Float64Array.from({ length: n }, (_, i) => bump(i)) : Float64Array.from({ length: n * n }, (_, k) => bump(Math.floor(k / n)) * bump(k % n));
  return {
    initial_temperature: ndarray(values, dims === 1 ? [n] : [n, n]),
    diffusivity: ndarray(Float64Array.of(1), []),
    steps,
    dt: 0,
    dx: 0,
  };
}

/** A vectoradd input: a and b of length n (FP64), s = 2, not normalised. */
export function sampleVectorInputs(n: number) {
  return {
    a: ndarray(Float64Array.from({ length: n }, (_, i) => Math.cos(i)), [n]),
    b: ndarray(Float64Array.from({ length: n }, (_, i) => 1 + Math.sin(i)), [n]),
    s: ndarray(Float64Array.of(2), []),
    normalize: false,
  };
}

/** A univariate input: the Rosenbrock function near its valley, FP32 scalars. */
export function sampleRosenbrockInputs() {
  return { x: ndarray(Float32Array.of(0.5), []), y: ndarray(Float32Array.of(0.3), []), a: ndarray(Float32Array.of(1), []), b: ndarray(Float32Array.of(100), []) };
}
