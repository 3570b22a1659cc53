/**
 * The Tesseracts the reflection clients call (test/reflection.test.ts in Node, the Python client in
 * test/python-reflection.test.ts): every bundled one, a module outside the source tree with packages,
 * maps and imports of its own (test/fixtures/acme-solver), and a bridged tesseract-core one; each
 * with inputs in proto JSON and the analytic values of its outputs and Jacobian.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { startFakeTesseractCore } from "./fixtures/tesseract-core/fake-tesseract-core";
import { meshStats } from "./fixtures/tesseract-core/mesh-stats";

export const ACME = path.join(__dirname, "../../test/fixtures/acme-solver/solver.js");

export type Dtype = "DATA_TYPE_FP64" | "DATA_TYPE_FP32" | "DATA_TYPE_INT32";
const ARRAYS = { DATA_TYPE_FP64: Float64Array, DATA_TYPE_FP32: Float32Array, DATA_TYPE_INT32: Int32Array };

/** A Tensor in proto JSON (data base64). */
export function tensor(values: number[], shape: number[], datatype: Dtype = "DATA_TYPE_FP64"): JsonObject {
  const array = ARRAYS[datatype].from(values);
  return { datatype, shape: shape.map(String), data: Buffer.from(array.buffer).toString("base64") };
}

/** A Tensor in proto JSON back to its shape and values. */
export function tensorValues(json: unknown): { shape: number[]; values: number[] } {
  const t = json as { datatype?: Dtype; shape?: string[]; data?: string };
  const bytes = Buffer.from(t.data ?? "", "base64");
  const Array = ARRAYS[t.datatype ?? "DATA_TYPE_FP64"];
  const copy = new Uint8Array(bytes).buffer;
  return { shape: (t.shape ?? []).map(Number), values: [...new Array(copy)] };
}

export interface Case {
  name: string;
  serve(): Promise<Served>;
  inputs: JsonObject;
  /** Output path -> expected values (of the output tensor). */
  apply: Record<string, number[]>;
  jacobian: { inputs: string[]; outputs: string[]; expected: Record<string, { shape: number[]; values: number[] }> };
  /** Message -> the fields marked differentiable, among the Tesseract's own messages. */
  differentiable: Record<string, string[]>;
  tolerance: number;
}

export interface Served {
  server: RunningServer;
  close(): Promise<void>;
}

const serveBundled = (tesseract: string) => async (): Promise<Served> => {
  const server = await startServer({ tesseract, port: 0, workers: 0, logger: silentLogger });
  return { server, close: () => server.close() };
};
const eye = (n: number, scale: number) => Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? scale : 0));

export const CASES: Case[] = [
  {
    name: "meshstats",
    serve: serveBundled("meshstats"),
    inputs: { mesh: { n_points: 2, n_cells: 1, points: tensor([1, 2, 3, 5, 7, 9], [2, 3]), num_points_per_cell: tensor([2], [1]), cell_connectivity: tensor([0, 1], [2], "DATA_TYPE_INT32") } },
    apply: { "statistics.barycenter": [3, 4.5, 6], "statistics.first_point_coordinates": [1, 2, 3] },
    jacobian: {
      inputs: ["mesh.points"],
      outputs: ["statistics.barycenter"],
      expected: { "statistics.barycenter|mesh.points": { shape: [3, 2, 3], values: Array.from({ length: 18 }, (_, k) => (Math.floor(k / 6) === k % 3 ? 0.5 : 0)) } },
    },
    differentiable: { "tesseract.mesh.v1.VolumetricMeshData": ["points"], "tesseract.examples.meshstats.v1.SummaryStatistics": ["first_point_coordinates", "barycenter"] },
    tolerance: 1e-8,
  },
  {
    name: "vectoradd",
    serve: serveBundled("vectoradd"),
    inputs: { a: tensor([1, 2, 3], [3]), b: tensor([4, 5, 6], [3]), s: tensor([2], []) },
    apply: { result: [6, 9, 12] },
    jacobian: { inputs: ["a"], outputs: ["result"], expected: { "result|a": { shape: [3, 3], values: eye(3, 2) } } },
    differentiable: { "tesseract.examples.vectoradd.v1.Inputs": ["a", "b", "s"], "tesseract.examples.vectoradd.v1.Outputs": ["result"] },
    tolerance: 1e-8,
  },
  {
    // Rosenbrock, FP32: result = (a - x)^2 + b (y - x^2)^2; d/dx = -2 (a - x) - 4 b x (y - x^2).
    name: "univariate",
    serve: serveBundled("univariate"),
    inputs: { x: tensor([0.5], [], "DATA_TYPE_FP32"), y: tensor([0.75], [], "DATA_TYPE_FP32"), a: tensor([1], [], "DATA_TYPE_FP32"), b: tensor([100], [], "DATA_TYPE_FP32") },
    apply: { result: [0.25 + 100 * 0.5 ** 2] },
    jacobian: { inputs: ["x"], outputs: ["result"], expected: { "result|x": { shape: [], values: [-2 * 0.5 - 4 * 100 * 0.5 * 0.5] } } },
    differentiable: { "tesseract.examples.univariate.v1.Inputs": ["x", "y"], "tesseract.examples.univariate.v1.Outputs": ["result"] },
    tolerance: 1e-2,
  },
  {
    // One explicit step, r = 0.45: final_i = u_i + 0.45 (u_{i-1} - 2 u_i + u_{i+1}), zero outside.
    name: "heat",
    serve: serveBundled("heat"),
    inputs: { initial_temperature: tensor([1, 2, 3], [3]), diffusivity: tensor([1], []), steps: 1 },
    apply: { final_temperature: [1, 2, 1.2] },
    jacobian: { inputs: ["initial_temperature"], outputs: ["final_temperature"], expected: { "final_temperature|initial_temperature": { shape: [3, 3], values: [0.1, 0.45, 0, 0.45, 0.1, 0.45, 0, 0.45, 0.1] } } },
    differentiable: { "tesseract.examples.heat.v1.Inputs": ["initial_temperature", "diffusivity"], "tesseract.examples.heat.v1.Outputs": ["final_temperature"] },
    tolerance: 1e-8,
  },
  {
    // energy = scale Σ x² + Σ_k Σ w_k²; per_cell{k} = scale w_k³ (solver.js), scale 3.
    name: "a module with packages, maps and imports of its own",
    serve: serveBundled(ACME),
    inputs: { grid: { cells: { a: { weights: tensor([0.5, -1], [2]), kind: "KIND_HEX" } }, origin: { x: 1 }, label: "g" }, x: tensor([1, 2], [2]), settings: { scale: 3, preset: "fast", damping: 0.5, method: "METHOD_EXACT" }, started: "2026-01-02T03:04:05Z", overrides: { o: { level: 2 } } },
    apply: { energy: [3 * 5 + 1.25], "per_cell.{a}": [0.375, -3] },
    jacobian: {
      inputs: ["x", "grid.cells.{a}.weights"],
      outputs: ["energy", "per_cell.{a}"],
      expected: {
        "energy|x": { shape: [2], values: [6, 12] },
        "energy|grid.cells.{a}.weights": { shape: [2], values: [1, -2] },
        "per_cell.{a}|x": { shape: [2, 2], values: [0, 0, 0, 0] },
        "per_cell.{a}|grid.cells.{a}.weights": { shape: [2, 2], values: [2.25, 0, 0, 9] },
      },
    },
    differentiable: { "acme.geometry.v1.Grid.Cell": ["weights"], "acme.solver.v2.Inputs": ["x"], "acme.solver.v2.Outputs": ["energy", "per_cell"] },
    tolerance: 1e-6,
  },
  {
    // The fake's Mesh Stats: barycenter[c] = scale Σ_i p[i, c] / n + Σ cell_data + Σ layer weights.
    name: "a bridged tesseract-core Tesseract",
    async serve() {
      const fake = await startFakeTesseractCore(meshStats());
      const server = await startServer({ tesseract: fake.url, port: 0, logger: silentLogger });
      return { server, close: async () => (await server.close(), await fake.close()) };
    },
    inputs: { mesh: { n_points: 2, points: tensor([1, 2, 3, 5, 7, 9], [2, 3]), cell_data: { a: tensor([0.25], [1]) } }, layers: [{ weights: tensor([0.5], [1]), name: "l" }], method: "METHOD_VALUE_CENTRAL", scale: 2 },
    apply: { barycenter: [6.75, 9.75, 12.75] },
    jacobian: { inputs: ["mesh.points"], outputs: ["barycenter"], expected: { "barycenter|mesh.points": { shape: [3, 2, 3], values: Array.from({ length: 18 }, (_, k) => (Math.floor(k / 6) === k % 3 ? 1 : 0)) } } },
    differentiable: { "tesseract_core.mesh_stats.v1.Mesh": ["points", "cell_data"], "tesseract_core.mesh_stats.v1.Layer": ["weights"], "tesseract_core.mesh_stats.v1.Outputs": ["barycenter"] },
    tolerance: 1e-6,
  },
];

export function assertValues(actual: number[], expected: number[], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= tolerance * Math.max(1, Math.abs(expected[i])), `${what}[${i}] = ${v}, expected ${expected[i]}`));
}

