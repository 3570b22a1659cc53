/**
 * The bridge's per-job apply bodies (server/bridge/apply-bodies.ts): for any perturbation — one
 * element, a column group, a whole leaf, several leaves — the spliced body is byte for byte the
 * JSON of the perturbed inputs encoded whole, on the Mesh Stats schema (FP64 points, an FP64 map
 * entry, FP32 weights in a list).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import ndarray from "ndarray";
import { ApplyBodies } from "../server/bridge/apply-bodies";
import { perturbedTree } from "../server/eval/concurrent";
import type { Change } from "../server/eval/evaluator";
import { inputLeaf } from "../server/eval/input-leaf";
import { messageJson } from "../server/schema/json-messages";
import { protoFromOpenApi } from "../server/schema/openapi-proto";
import { loadRootFromText, MessageSchema } from "../server/schema/schema";

const DOC = JSON.parse(fs.readFileSync(path.join(__dirname, "../../test/fixtures/tesseract-core/meshstats-openapi.json"), "utf8"));
const PATHS = ["mesh.points", "mesh.cell_data.{a}", "layers.[0].weights"];

function setup(n: number, weights: number) {
  const generated = protoFromOpenApi(DOC);
  const schema = new MessageSchema(loadRootFromText(generated.text).lookupType(generated.inputType));
  const points = Float64Array.from({ length: 3 * n }, (_, i) => Math.sin(i + 1) * 10 ** ((i % 7) - 3));
  const inputs = {
    label: "mesh \"one\" tesseract-grpc-leaf-",
    mesh: { n_points: n, points: ndarray(points, [n, 3]), cell_data: { a: ndarray(Float64Array.from([0.1, -2, 3e-9]), [3]) }, tags: ["x"] },
    layers: [{ weights: ndarray(Float32Array.from({ length: weights }, (_, i) => i / 3), [weights]), name: "w" }],
    scale: 1.5,
  };
  const leaves = schema.resolveDifferentiable(inputs, PATHS, "input_paths", "input").map((leaf) => inputLeaf(leaf, "input_paths"));
  const whole = (changes: Change[]) => JSON.stringify({ inputs: messageJson(schema.type, perturbedTree(inputs, leaves, changes), "base64", generated.enumLiterals) });
  return { bodies: new ApplyBodies(schema.type, messageJson(schema.type, inputs, "base64", generated.enumLiterals), leaves), leaves, whole };
}

describe("bridge apply bodies", () => {
  it("the unperturbed body is the inputs encoded whole", () => {
    const { bodies, whole } = setup(5, 4);
    assert.equal(bodies.body([]), whole([]));
  });

  it("any perturbation's spliced body equals the perturbed inputs encoded whole (property)", () => {
    const { bodies, leaves, whole } = setup(11, 7);
    const value = fc.double({ noNaN: true, noDefaultInfinity: true });
    const change = (leaf: number): fc.Arbitrary<Change> => {
      const size = leaves[leaf].size;
      const index = fc.nat(size - 1);
      return fc.oneof(
        fc.record({ leaf: fc.constant(leaf), index, value }),
        fc
          .uniqueArray(index, { minLength: 1, maxLength: size })
          .chain((indices) => fc.array(value, { minLength: indices.length, maxLength: indices.length }).map((points) => ({ leaf, indices: Uint32Array.from(indices), points: Float64Array.from(points) }))),
        fc.array(value, { minLength: size, maxLength: size }).map((values) => ({ leaf, values: Float64Array.from(values) })),
      );
    };
    const perturbation = fc.subarray([0, 1, 2]).chain((picked) => fc.tuple(...picked.map(change)));
    fc.assert(
      fc.property(perturbation, (changes) => {
        assert.equal(bodies.body(changes), whole(changes));
      }),
      { seed: 14, numRuns: 400 },
    );
  });

  it("a change next to the end of a leaf patches its padded last base64 group", () => {
    const { bodies, leaves, whole } = setup(3, 5); // 9 FP64 elements = 72 bytes; 5 FP32 = 20 bytes (padded)
    for (const leaf of [0, 2]) {
      const last = leaves[leaf].size - 1;
      for (const index of [0, 1, last - 1, last]) assert.equal(bodies.body([{ leaf, index, value: -7.25 }]), whole([{ leaf, index, value: -7.25 }]));
    }
  });
});
