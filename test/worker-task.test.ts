/**
 * The worker pool's batch encoding: every kind of change (one element, a column group's elements,
 * a whole leaf) survives packPerturbations → unpackPerturbations exactly; pairs of element changes
 * survive packPairs → sideOf, slicePairs and concatPairs (with their widths), and sides that differ
 * are refused; and ElementPairs cross to a worker in one buffer (packElementPairs → postMessage →
 * unpackElementPairs), widths or not.
 */
import { strict as assert } from "node:assert";
import { concatPairs, packPairs, pairCount, sideOf, slicePairs } from "../server/eval/element-pairs";
import { divideByWidths } from "../server/eval/finite-values";
import type { Perturbation, PerturbationPair } from "../server/eval/evaluator";
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads";
import { packElementPairs, packPerturbations, unpackElementPairs, unpackPerturbations } from "../server/eval/worker-task";

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

  it("pairs of element changes: packed and unpacked side by side, sliced and joined in order; sides that differ refused", () => {
    const pairs: PerturbationPair[] = [
      [[{ leaf: 0, index: 7, value: 1.5 }], [{ leaf: 0, index: 7, value: 0.5 }]],
      [
        [{ leaf: 1, indices: Uint32Array.of(0, 3), points: Float64Array.of(-0, 2) }, { leaf: 0, index: 2, value: 9 }],
        [{ leaf: 1, indices: Uint32Array.of(0, 3), points: Float64Array.of(-1, 1) }, { leaf: 0, index: 2, value: 8 }],
      ],
      [[], []],
    ];
    // A side as the elements it sets, [leaf, index, value], by leaf (one change or a group of one set the same).
    const plain = (p: Perturbation) =>
      p
        .flatMap((c) => ("indices" in c ? Array.from(c.indices, (i, k) => [c.leaf, i, c.points[k]]) : "index" in c ? [[c.leaf, c.index, c.value]] : []))
        .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const packed = packPairs(pairs);
    assert.equal(pairCount(packed), 3);
    pairs.forEach((pair, k) => pair.forEach((side, s) => assert.deepEqual(plain(sideOf(packed, k, s)), plain(side), `pair ${k}, side ${s}`)));
    const joined = concatPairs([slicePairs(packed, 0, 1), slicePairs(packed, 1)]);
    assert.deepEqual(Object.values(joined).map((a) => Array.from(a)), Object.values(packed).map((a) => Array.from(a)));
    // Widths are sliced with their pairs; joined with pairs that have none, those are divided by 1.
    const withWidths = { ...packed, widths: Float64Array.of(0.5, 0.25, 3) };
    assert.deepEqual(Array.from(concatPairs([slicePairs(withWidths, 0, 1), slicePairs(withWidths, 1)]).widths!), [0.5, 0.25, 3]);
    assert.deepEqual(Array.from(concatPairs([slicePairs(packed, 0, 2), slicePairs(withWidths, 2)]).widths!), [1, 1, 3]);
    assert.equal(slicePairs(packed, 1).widths, undefined);
    const values = Float64Array.of(1, 2, 3, 4, 5, 6);
    divideByWidths(withWidths.widths, values, 2);
    assert.deepEqual(Array.from(values), [2, 4, 12, 16, 5 / 3, 2]);
    const refused = (a: Perturbation, b: Perturbation, why: RegExp) => assert.throws(() => packPairs([[a, b]]), why);
    refused([{ leaf: 0, index: 1, value: 1 }], [{ leaf: 0, index: 2, value: 1 }], /different elements/);
    refused([{ leaf: 0, index: 1, value: 1 }], [{ leaf: 1, index: 1, value: 1 }], /different elements/);
    refused([{ leaf: 0, index: 1, value: 1 }], [], /different leaves/);
    refused([{ leaf: 0, values: Float64Array.of(1) }], [{ leaf: 0, values: Float64Array.of(2) }], /whole leaves/);
  });

  it("ElementPairs in one buffer: through a message port and back, every array exact, for any count of pairs and elements", () => {
    const { port1, port2 } = new MessageChannel();
    const plain = (p: object) => Object.entries(p).map(([k, a]) => [k, a.constructor.name, Array.from(a as ArrayLike<number>)]);
    try {
      for (const pairs of [
        [],
        [[[{ leaf: 0, index: 7, value: 1.5 }], [{ leaf: 0, index: 7, value: 0.5 }]]],
        [
          [[{ leaf: 0, index: 4294967295, value: -0 }], [{ leaf: 0, index: 4294967295, value: 1e-300 }]],
          [
            [{ leaf: 1, indices: Uint32Array.of(0, 3, 5), points: Float64Array.of(Math.PI, 2, -1) }, { leaf: 2, index: 2, value: 9 }],
            [{ leaf: 1, indices: Uint32Array.of(0, 3, 5), points: Float64Array.of(-1, 1, 0) }, { leaf: 2, index: 2, value: 8 }],
          ],
          [[], []],
        ],
      ] as PerturbationPair[][]) {
        const withWidths = { ...packPairs(pairs), widths: Float64Array.from(pairs, (_, k) => 2 ** -k / 3) };
        for (const packed of pairs.length ? [packPairs(pairs), withWidths] : [packPairs(pairs)]) {
          port1.postMessage(packElementPairs(packed));
          const received = unpackElementPairs(receiveMessageOnPort(port2)!.message as Uint8Array);
          assert.deepEqual(plain(received), plain(packed), `${pairs.length} pairs${packed.widths ? ", with widths" : ""}`);
          if (pairs.length > 1) assert.ok(Object.is(received.plus[0], -0), "-0 stays -0");
        }
      }
    } finally {
      port1.close();
    }
  });
});
