/**
 * heat: explicit finite differences for the heat equation u_t = κ ∇²u, a heavy and tunable workload
 * for benchmarks of parallel evaluation and streaming. One apply costs ∝ (grid points) × steps.
 *
 * Scheme (forward Euler in time, second-order centred in space, zero Dirichlet boundary values: the
 * ghost cells just outside the grid hold 0), with r = κ dt / dx²:
 *   1-D: u_i     ← u_i + r (u_{i-1} − 2 u_i + u_{i+1})                                 stable for r ≤ 1/2
 *   2-D: u_{y,x} ← u_{y,x} + r (u_{y-1,x} + u_{y+1,x} + u_{y,x-1} + u_{y,x+1} − 4 u_{y,x})  stable for r ≤ 1/4
 * dt = 0 selects 0.9 × the stability limit: dx²/(2κ) × 0.9 in 1-D, dx²/(4κ) × 0.9 in 2-D.
 *
 * Gradients. final is linear in initial: d final / d initial is the (n × n) matrix (I + r L)^steps, L
 * the Dirichlet Laplacian stencil. It is banded — bandwidth `steps` in 1-D (each step widens the
 * stencil's reach by one cell), steps · nx in the flat row-major index in 2-D — and, the map being
 * linear, central differences reproduce it exactly up to rounding, whatever the step. With respect to
 * diffusivity the map is a polynomial of degree `steps` in r; with the default dt, r is fixed
 * (0.45 or 0.225), so the output does not depend on κ at all and that derivative is 0.
 */
import * as path from "node:path";
import ndarray, { type NdArray } from "ndarray";
import type { Inputs, Outputs } from "../../generated/tesseract/examples/heat/v1/heat";
import { Code, invalidArgument, refusedAs, TesseractError } from "../../common/errors";
import { PROTO_DIR } from "../proto-dir";
import { DataType, dataTypeName, dataTypeOfArray, toFloat64, type TypedArray } from "../../common/tensor-codec";
import { sampleHeatInputs } from "./samples";
import { defineTesseract } from "../tesseract";

export const MAX_STEPS = 10_000_000;

/** Stable default dt as a fraction of the stability limit. */
const DEFAULT_DT_FRACTION = 0.9;

/** Relative slack on the stability check, so dt given exactly at the limit is not refused for rounding. */
const STABILITY_SLACK = 1e-12;

const shapeText = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/** The largest stable r: 1/2 in 1-D, 1/4 in 2-D (1 / (2 · dims)). */
const rLimit = (dims: number) => 1 / (2 * dims);

/**
 * Time step and r = κ dt / dx² as apply uses them (dx = 0: 1). dt = 0 is 0.9 × the stability limit,
 * i.e. r = 0.9 / (2 · dims) exactly, set directly so that it is bit-for-bit independent of κ.
 */
export function heatParameters(kappa: number, dims: number, dt: number, dx: number): { dt: number; dx: number; r: number } {
  const h = dx === 0 ? 1 : dx;
  if (dt === 0) {
    const r = DEFAULT_DT_FRACTION * rLimit(dims);
    return { dt: (r * h * h) / kappa, dx: h, r };
  }
  return { dt, dx: h, r: (kappa * dt) / (h * h) };
}

function scalarValue(t: NdArray<TypedArray>): number {
  return (t.data as Float64Array)[t.offset];
}

/**
 * 1-D: `steps` updates from `initial` into `out`, through two work buffers of n when steps > 1; the
 * cells beyond either end are 0 (each end cell's update adds an explicit 0 for them). No buffer is
 * copied: shifted copies (one cell to the side) can hit a slow path of the CPU's copy, measured at
 * 43-55 µs per 23 200 values against 4, and were most of an apply's time.
 */
function run1d(initial: Float64Array, out: Float64Array, n: number, r: number, steps: number): void {
  if (n === 0) return;
  if (steps === 0) {
    for (let i = 0; i < n; i++) out[i] = initial[i];
    return;
  }
  const c = 1 - 2 * r;
  const [a, b] = steps > 1 ? scratch1d(n) : [out, out];
  let src = initial;
  for (let s = 0; s < steps; s++) {
    const dst = s === steps - 1 ? out : s % 2 === 0 ? a : b;
    if (n === 1) dst[0] = c * src[0] + r * (0 + 0);
    else {
      dst[0] = c * src[0] + r * (0 + src[1]);
      for (let i = 1; i < n - 1; i++) dst[i] = c * src[i] + r * (src[i - 1] + src[i + 1]);
      dst[n - 1] = c * src[n - 1] + r * (src[n - 2] + 0);
    }
    src = dst;
  }
}

/** 2-D: padded (ny + 2) × (nx + 2) buffers whose border (the ghost cells) stays 0. */
function run2d(a: Float64Array, b: Float64Array, ny: number, nx: number, r: number, steps: number): Float64Array {
  const c = 1 - 4 * r;
  const w = nx + 2;
  let src = a;
  let dst = b;
  for (let s = 0; s < steps; s++) {
    for (let y = 1; y <= ny; y++) {
      const start = y * w + 1;
      const end = start + nx;
      for (let k = start; k < end; k++) dst[k] = c * src[k] + r * (src[k - 1] + src[k + 1] + src[k - w] + src[k + w]);
    }
    const t = src;
    src = dst;
    dst = t;
  }
  return src;
}

/** The field's values without a copy when they already are dense row-major FP64 (the usual case). */
function denseFloat64(u: NdArray<TypedArray>): Float64Array {
  const dense = u.data instanceof Float64Array && u.offset === 0 && u.data.length === u.size && (u.shape.length === 1 ? u.stride[0] === 1 : u.stride[1] === 1 && u.stride[0] === u.shape[1]);
  return dense ? (u.data as Float64Array) : toFloat64(u);
}

/**
 * Two work buffers of `length`, reused across calls (apply is synchronous, so one pair per thread
 * suffices): a Jacobian runs apply thousands of times, and fresh buffers each time would make the
 * garbage collector the main cost. One pair for each use: 2-D's are padded, their ghost cells zero
 * from allocation and never written (every interior cell is written before it is read); 1-D's are
 * written whole.
 */
function reusedPair(): (length: number) => [Float64Array, Float64Array] {
  let buffers: [Float64Array, Float64Array] = [new Float64Array(0), new Float64Array(0)];
  return (length) => {
    if (buffers[0].length !== length) buffers = [new Float64Array(length), new Float64Array(length)];
    return buffers;
  };
}
const scratch1d = reusedPair();
const scratch2d = reusedPair();

/** Band patterns larger than this are left undeclared (dense): they would save little and cost memory. */
const MAX_BAND_ENTRIES = 2_000_000;

/**
 * d final / d initial's structure: (i, j) for every cell j and every cell i within `steps` of it
 * (Manhattan distance in 2-D), as flat row-major indices; undefined when the band covers more
 * than half the grid per column or more than MAX_BAND_ENTRIES in all.
 */
function bandPattern(shape: readonly number[], steps: number) {
  const [ny, nx] = shape.length === 1 ? [1, shape[0]] : shape;
  const n = ny * nx;
  const reach = Math.min(steps, ny + nx);
  const perColumn = shape.length === 1 ? 2 * reach + 1 : 2 * reach * reach + 2 * reach + 1;
  if (perColumn > n / 2 || perColumn * n > MAX_BAND_ENTRIES) return undefined;
  const rows: number[] = [];
  const columns: number[] = [];
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      for (let dy = -Math.min(reach, y); dy <= Math.min(reach, ny - 1 - y); dy++) {
        const across = reach - Math.abs(dy);
        for (let dx = -Math.min(across, x); dx <= Math.min(across, nx - 1 - x); dx++) {
          rows.push((y + dy) * nx + x + dx);
          columns.push(y * nx + x);
        }
      }
    }
  }
  return { output_path: "final_temperature", input_path: "initial_temperature", output_index: rows, input_index: columns };
}

export default defineTesseract<Inputs, Outputs>({
  name: "heat",
  version: "1.0.0",
  description:
    "Heat equation u_t = κ∇²u by explicit finite differences (zero Dirichlet boundaries) on a 1-D or 2-D grid; " +
    "cost ∝ grid points × steps, a tunable benchmark workload.",
  inputType: "tesseract.examples.heat.v1.Inputs",
  outputType: "tesseract.examples.heat.v1.Outputs",
  protoFiles: [path.join(PROTO_DIR, "tesseract/examples/heat/v1/heat.proto")],

  validate({ initial_temperature: u0, diffusivity, steps, dt, dx }) {
    if (!u0) throw refusedAs("missing", "initial_temperature is missing: expected an FP64 tensor of shape (n,) or (ny, nx)");
    const dtype = dataTypeOfArray(u0.data as never);
    if (dtype !== DataType.DATA_TYPE_FP64) throw invalidArgument(`initial_temperature has datatype ${dataTypeName(dtype)}, expected DATA_TYPE_FP64`);
    const dims = u0.shape.length;
    if (dims !== 1 && dims !== 2) throw invalidArgument(`initial_temperature has shape ${shapeText(u0.shape)}, expected rank 1 (n,) or 2 (ny, nx)`);
    if (u0.size === 0) throw invalidArgument(`initial_temperature has shape ${shapeText(u0.shape)}, which is empty: expected at least one grid point`);
    const values = toFloat64(u0);
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) throw invalidArgument(`initial_temperature has ${values[i]} at flat index ${i}, expected finite values`);
    }

    if (!diffusivity) throw refusedAs("missing", "diffusivity is missing: expected an FP64 scalar κ > 0");
    const kdtype = dataTypeOfArray(diffusivity.data as never);
    if (kdtype !== DataType.DATA_TYPE_FP64) throw invalidArgument(`diffusivity has datatype ${dataTypeName(kdtype)}, expected DATA_TYPE_FP64`);
    if (diffusivity.shape.length !== 0) throw invalidArgument(`diffusivity has shape ${shapeText(diffusivity.shape)}, expected a scalar (shape [])`);
    const kappa = scalarValue(diffusivity);
    if (!Number.isFinite(kappa) || kappa <= 0) throw invalidArgument(`diffusivity is ${kappa}, expected a finite number > 0`);

    if (!Number.isInteger(steps) || steps < 1 || steps > MAX_STEPS) throw invalidArgument(`steps is ${steps}, expected 1 ≤ steps ≤ ${MAX_STEPS}`);
    if (!Number.isFinite(dx) || dx < 0) throw invalidArgument(`dx is ${dx}, expected a finite number ≥ 0 (0 means 1)`);
    if (!Number.isFinite(dt) || dt < 0) throw invalidArgument(`dt is ${dt}, expected a finite number ≥ 0 (0 selects the stable default)`);
    if (dt > 0) {
      const { r, dx: h } = heatParameters(kappa, dims, dt, dx);
      const limit = rLimit(dims);
      if (r > limit * (1 + STABILITY_SLACK)) {
        const maxDt = (limit * h * h) / kappa;
        throw invalidArgument(
          `dt is ${dt}, which is unstable: r = κ·dt/dx² = ${kappa}·${dt}/${h}² = ${r} exceeds the ${dims}-D stability limit ` +
            `${limit} (${dims === 1 ? "1/2" : "1/4"}); use dt ≤ ${maxDt}, or dt = 0 for the stable default ${DEFAULT_DT_FRACTION * maxDt}`,
        );
      }
    }
  },

  apply({ initial_temperature, diffusivity, steps, dt, dx }) {
    const u0 = initial_temperature!;
    const kappa = scalarValue(diffusivity!);
    // The domain is κ > 0 (the default dt divides by κ). validate enforces it on requests; a
    // finite-difference step on diffusivity must keep it positive too (eps < κ) — a later issue adds
    // domain bounds so the engine can take one-sided steps near the edge instead.
    if (!(kappa > 0) || !Number.isFinite(kappa)) {
      throw new TesseractError(Code.FAILED_PRECONDITION, `diffusivity is ${kappa}, outside the domain κ > 0 (a finite-difference step must not cross 0: use a smaller eps)`);
    }
    const shape = u0.shape.slice();
    const { r } = heatParameters(kappa, shape.length, dt, dx);
    const initial = denseFloat64(u0);
    const out = new Float64Array(initial.length);
    if (shape.length === 1) run1d(initial, out, shape[0], r, steps);
    else {
      const [ny, nx] = shape;
      const w = nx + 2;
      const [a, b] = scratch2d((ny + 2) * w);
      for (let y = 0; y < ny; y++) a.set(initial.subarray(y * nx, (y + 1) * nx), (y + 1) * w + 1);
      const result = run2d(a, b, ny, nx, r, steps);
      for (let y = 0; y < ny; y++) out.set(result.subarray((y + 1) * w + 1, (y + 1) * w + 1 + nx), y * nx);
    }
    return { final_temperature: ndarray(out, shape) };
  },

  abstractEval(inputs) {
    const u0 = inputs.initial_temperature;
    if (!u0) throw refusedAs("missing", "initial_temperature is missing: expected an FP64 tensor of shape (n,) or (ny, nx)");
    if (u0.datatype !== DataType.DATA_TYPE_FP64) throw invalidArgument(`initial_temperature has datatype ${dataTypeName(u0.datatype)}, expected DATA_TYPE_FP64`);
    if (u0.shape.length !== 1 && u0.shape.length !== 2) {
      throw invalidArgument(`initial_temperature has shape ${shapeText(u0.shape)}, expected rank 1 (n,) or 2 (ny, nx)`);
    }
    return [{ path: "final_temperature", shape: [...u0.shape], datatype: DataType.DATA_TYPE_FP64 }];
  },

  // Each step reaches one cell further (the 5-point stencil): after `steps`, final depends on initial
  // within |Δx| ≤ steps in 1-D, |Δy| + |Δx| ≤ steps in 2-D. One step of a 1-D grid is tridiagonal:
  // 3 column groups, 6 evaluations whatever n. With the default dt, final does not depend on κ.
  sparsity({ initial_temperature, steps, dt }) {
    const band = bandPattern(initial_temperature!.shape, steps);
    const zero = { output_path: "final_temperature", input_path: "diffusivity", output_index: [], input_index: [] };
    return [...(band ? [band] : []), ...(dt === 0 ? [zero] : [])];
  },

  // κ > 0: steps on diffusivity stay positive (one-sided stencil when κ is within two steps of 0).
  bounds: { diffusivity: { lower: 0 } },

  // d/d initial is linear (exact for any step); d/d diffusivity is a polynomial in κ, for which
  // h = 1e-6 balances truncation O(h²) against rounding O(1e-16 / h) at κ of order 1.
  exampleInputs: () => sampleHeatInputs(40, 10),
  finiteDifferences: { eps: 1e-6 },
});
