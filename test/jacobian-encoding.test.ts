/**
 * The unary Jacobian's answer written into its frame with its blocks' values left where they are
 * (server/grpc/jacobian-encoding.ts), against the service's own serializer on random answers: paths
 * of any Unicode (and empty), any datatype, shapes of 0 to 3 extents up to 2^53 - 1, data of any
 * length (empty too), estimates or none, stats or none. Both must decode to the same message; the
 * frame's prefix must give the length; the values must be views of the answer's arrays.
 */
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { sizedJacobianAnswer, type JacobianAnswer } from "../server/grpc/jacobian-encoding";
import { framedAnswer } from "../server/grpc/answer-limit";
import { loadDefinition } from "../server/grpc/definition";
import { JacobianResponse } from "../generated/tesseract/v1/tesseract";
import { Code } from "../index";

const { service } = loadDefinition();
const serialize = service.Jacobian.responseSerialize;

const path = fc.oneof(fc.constant(""), fc.string(), fc.string({ unit: "grapheme" }));
const extent = fc.oneof(fc.nat(40), fc.maxSafeNat());
const tensor = fc.record({
  datatype: fc.integer({ min: 0, max: 11 }),
  shape: fc.array(extent, { maxLength: 3 }),
  // A view into a bigger buffer, as the engine's blocks are views of its results.
  data: fc.tuple(fc.uint8Array({ maxLength: 64 }), fc.nat(7)).map(([bytes, lead]) => {
    const buffer = new Uint8Array(lead + bytes.length + 3);
    buffer.set(bytes, lead);
    return buffer.subarray(lead, lead + bytes.length);
  }),
});
const stats = fc.record(
  {
    apply_calls: fc.maxSafeNat(),
    wall_seconds: fc.double({ min: 0, noNaN: true }), // -0 aside: proto3 leaves it out as the default (0), protobufjs writes it
    adjusted_steps: fc.array(path, { maxLength: 3 }),
    column_groups: fc.nat(),
    sparsity_source: path,
  },
  { requiredKeys: ["apply_calls", "wall_seconds", "adjusted_steps"] },
);
const answer: fc.Arbitrary<JacobianAnswer> = fc.record(
  {
    entries: fc.array(fc.record({ output_path: path, input_path: path, value: tensor, error_estimate: tensor }, { requiredKeys: ["output_path", "input_path"] }), { maxLength: 4 }),
    stats,
  },
  { requiredKeys: ["entries"] },
);

describe("Jacobian answer encoding", () => {
  it("decodes as the service's serializer's bytes do; the prefix gives the length; the values are views", () => {
    fc.assert(
      fc.property(answer, (a) => {
        const sized = sizedJacobianAnswer(a);
        const { frame, rest } = sized.encode();
        const whole = Buffer.concat([frame, ...rest]);
        assert.equal(whole.length - 5, sized.bytes);
        assert.deepEqual(whole.subarray(0, 5), Buffer.from([0, ...[24, 16, 8, 0].map((shift) => (sized.bytes >>> shift) & 255)]));
        assert.deepEqual(JacobianResponse.decode(whole.subarray(5)), JacobianResponse.decode(serialize(a)));
        // Every non-empty block is sent from its own array, in order.
        const arrays = a.entries.flatMap((e) => [e.value, e.error_estimate]).flatMap((t) => (t && t.data.length > 0 ? [t.data] : []));
        const views = rest.filter((part) => arrays.some((data) => part.buffer === data.buffer));
        assert.equal(views.length, arrays.length);
        views.forEach((view, k) => assert.ok(view.buffer === arrays[k].buffer && view.byteOffset === arrays[k].byteOffset && view.length === arrays[k].length));
      }),
      { numRuns: 2000 },
    );
  });

  it("a 62.7 MB block: its values sent as they are, the rest of the message under 200 bytes", () => {
    const n = 2800;
    const values = Float64Array.from({ length: n * n }, (_, i) => i % 7);
    const data = new Uint8Array(values.buffer);
    const a: JacobianAnswer = { entries: [{ output_path: "final_temperature", input_path: "initial_temperature", value: { datatype: 11, shape: [n, n], data } }], stats: { apply_calls: 2 * n, wall_seconds: 1.5, adjusted_steps: [] } };
    const framed = framedAnswer("Jacobian", serialize, a, 64 << 20);
    assert.equal(framed.rest[0].buffer, values.buffer);
    assert.ok(framed.messageBytes - data.length < 200, `${framed.messageBytes - data.length} bytes besides the values`);
    const decoded = JacobianResponse.decode(framed.message);
    assert.deepEqual(decoded.entries[0].value?.shape, [n, n]);
    assert.deepEqual(new Float64Array(Uint8Array.from(decoded.entries[0].value!.data).buffer).subarray(0, 10), values.subarray(0, 10));
  });

  it("an answer over the limit: RESOURCE_EXHAUSTED with its size, from the sizes alone", () => {
    const data = new Uint8Array(2000);
    const a: JacobianAnswer = { entries: [{ output_path: "y", input_path: "x", value: { datatype: 11, shape: [250], data } }] };
    const bytes = sizedJacobianAnswer(a).bytes;
    assert.equal(bytes, serialize(a).length);
    assert.throws(
      () => framedAnswer("Jacobian", serialize, a, bytes - 1),
      (e: { code: number; message: string }) => e.code === Code.RESOURCE_EXHAUSTED && e.message.startsWith(`the Jacobian answer is ${bytes} bytes, over the ${bytes - 1}-byte message limit`),
    );
    assert.equal(framedAnswer("Jacobian", serialize, a, bytes).messageBytes, bytes);
  });
});
