/**
 * Apply's and the Jacobian's answers written into their frames with their big arrays left where they
 * are (server/grpc/answer-encoding.ts), against the service's own serializer on random answers: paths
 * and type URLs of any Unicode (and empty), any datatype, shapes of 0 to 3 extents up to 2^53 - 1,
 * arrays small (copied) and big (sent as they are) and empty, estimates or none, stats or none. Both
 * must decode to the same message; the frame's prefix must give the length; the big arrays must be
 * views of the answer's own.
 */
import { strict as assert } from "node:assert";
import { assertHeatOneStep } from "./helpers";
import fc from "fast-check";
import { SEND_AS_IS_BYTES, sizedApplyAnswer, sizedJacobianAnswer, type JacobianAnswer, type SizedAnswer } from "../server/grpc/answer-encoding";
import { framedAnswer } from "../server/grpc/answer-limit";
import { loadDefinition } from "../server/grpc/definition";
import { ApplyResponse, JacobianResponse } from "../generated/tesseract/v1/tesseract";
import { Code, loadTesseract, SparsityMode, startServer } from "../index";
import { TesseractClient } from "../client";
import { silentLogger } from "../server/log";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import { Inputs as HeatInputs, Outputs as HeatOutputs } from "../generated/tesseract/examples/heat/v1/heat";

const { service } = loadDefinition();
const serialize = service.Jacobian.responseSerialize;

/** A view into a bigger buffer, as the engine's arrays often are: up to 64 bytes, or past SEND_AS_IS_BYTES (a few bytes set). */
const bytes = fc
  .oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.tuple(fc.nat(100), fc.uint8Array({ maxLength: 16 })).map(([extra, head]) => {
      const big = new Uint8Array(SEND_AS_IS_BYTES + extra);
      big.set(head);
      return big;
    }),
  )
  .chain((data) =>
    fc.nat(7).map((lead) => {
      const buffer = new Uint8Array(lead + data.length + 3);
      buffer.set(data, lead);
      return buffer.subarray(lead, lead + data.length);
    }),
  );

/** The whole message, after checking the frame's prefix against the size; the big arrays sent as views of `arrays`, in order. */
function encoded(sized: SizedAnswer, arrays: Uint8Array[]): Buffer {
  const { frame, rest } = sized.encode();
  const whole = Buffer.concat([frame, ...rest]);
  assert.equal(whole.length - 5, sized.bytes);
  assert.deepEqual(whole.subarray(0, 5), Buffer.from([0, ...[24, 16, 8, 0].map((shift) => (sized.bytes >>> shift) & 255)]));
  const big = arrays.filter((data) => data.length >= SEND_AS_IS_BYTES);
  const views = rest.filter((part) => big.some((data) => part.buffer === data.buffer));
  assert.equal(views.length, big.length, "every big array sent as it is");
  views.forEach((view, k) => assert.ok(view.buffer === big[k].buffer && view.byteOffset === big[k].byteOffset && view.length === big[k].length, `array ${k}`));
  return whole.subarray(5);
}

const path = fc.oneof(fc.constant(""), fc.string(), fc.string({ unit: "grapheme" }));
const extent = fc.oneof(fc.nat(40), fc.maxSafeNat());
const tensor = fc.record({
  datatype: fc.integer({ min: 0, max: 11 }),
  shape: fc.array(extent, { maxLength: 3 }),
  data: bytes,
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

describe("unary answers written into their frames", () => {
  it("Jacobian: decodes as the service's serializer's bytes do; the prefix gives the length; the big blocks are views", () => {
    fc.assert(
      fc.property(answer, (a) => {
        const arrays = a.entries.flatMap((e) => [e.value, e.error_estimate]).flatMap((t) => (t ? [t.data] : []));
        assert.deepEqual(JacobianResponse.decode(encoded(sizedJacobianAnswer(a), arrays)), JacobianResponse.decode(serialize(a)));
      }),
      { numRuns: 500 },
    );
  });

  it("Apply: the same, the outputs message sent as it is when big", () => {
    const apply = service.Apply.responseSerialize;
    fc.assert(
      fc.property(fc.option(fc.record({ type_url: path, value: bytes }), { nil: undefined }), (outputs) => {
        const a = outputs ? { outputs } : {};
        assert.deepEqual(ApplyResponse.decode(encoded(sizedApplyAnswer(a), outputs ? [outputs.value] : [])), ApplyResponse.decode(apply(a)));
      }),
      { numRuns: 500 },
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

  describe("served, through grpc-js and the SDK", function () {
    this.timeout(30000);
    let server: Awaited<ReturnType<typeof startServer>>;
    let client: TesseractClient<HeatInputs, HeatOutputs>;
    before(async () => {
      server = await startServer({ tesseract: "heat", host: "127.0.0.1", port: 0, workers: 0, logger: silentLogger });
      client = new TesseractClient<HeatInputs, HeatOutputs>(server.address, { inputs: HeatInputs, outputs: HeatOutputs });
    });
    after(async () => {
      client.close();
      await server.close(1000);
    });

    it("a unary Jacobian whose 720 KB block is sent as it is: heat's analytic Jacobian, exact zeros off its band", async () => {
      // One step of heat with the default dt: J = I + r L, r = 0.45 (diagonal 1 - 2r, neighbours r).
      const n = 300;
      const result = await client.jacobian({ inputs: sampleHeatInputs(n, 1), inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"], options: { sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
      const J = result.block("final_temperature", "initial_temperature");
      assert.ok(8 * J.size >= SEND_AS_IS_BYTES);
      assertHeatOneStep(J, n);
    });

    it("an Apply whose 160 KB outputs message is sent as it is: the values apply gives here", async () => {
      const inputs = sampleHeatInputs(20_000, 1);
      const { final_temperature } = await client.apply(inputs);
      const expected = (loadTesseract("heat").definition.apply(inputs as never) as { final_temperature: { data: Float64Array } }).final_temperature.data;
      assert.ok(8 * expected.length >= SEND_AS_IS_BYTES);
      assert.deepEqual(Array.from(final_temperature!.data as Float64Array), Array.from(expected));
    });
  });
});
