/**
 * The worker pool's batch encoding: every kind of change (one element, a column group's elements,
 * a whole leaf) survives packPerturbations → unpackPerturbations exactly.
 */
import { strict as assert } from "node:assert";
import type { Perturbation } from "../server/eval/evaluator";
import { packPerturbations, unpackPerturbations } from "../server/eval/worker-task";

describe("worker tasks: packed perturbations", () => {
  it("one element, several elements of one leaf and a whole leaf round-trip, in order, batch by batch", () => {
    const batch: Perturbation[] = [
      [{ leaf: 0, index: 7, value: 1.5 }],
      [{ leaf: 1, indices: Uint32Array.of(0, 3, 6, 4294967295), points: Float64Array.of(-0, 1e-300, Math.PI, 2) }, { leaf: 0, index: 0, value: -2 }],
      [{ leaf: 2, values: Float64Array.of(1, 2, 3) }],
      [],
      [{ leaf: 3, indices: new Uint32Array(0), points: new Float64Array(0) }],
    ];
    const plain = (p: Perturbation[]) => p.map((changes) => changes.map((c) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v]))));
    const unpacked = unpackPerturbations(packPerturbations(batch));
    assert.deepEqual(plain(unpacked), plain(batch));
    assert.ok(Object.is((unpacked[1][0] as { points: Float64Array }).points[0], -0), "-0 stays -0");
    assert.ok((unpacked[1][0] as { indices: Uint32Array }).indices instanceof Uint32Array);
  });
});
