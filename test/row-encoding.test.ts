/**
 * The row message's own encoder (server/grpc/row-encoding.ts) against the generated one, byte for
 * byte, on random rows: paths of any Unicode (and empty), indices and offsets up to 2^53 - 1, slices
 * of any length (empty ones too) taken from anywhere in their output, with and without error
 * estimates and sparse indices, several slices per message; and the stream's splitting of long rows
 * into messages under the budget, read back by the generated decoder.
 */
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { encodeRowMessage, type SliceSpec } from "../server/grpc/row-encoding";
import { rowMessages } from "../server/grpc/rows-stream";
import { DataType } from "../common/tensor-codec";
import { JacobianRowsResponse, type RowSlice } from "../generated/tesseract/v1/tesseract";

/** A decoded tensor's bytes as doubles (a Buffer's slice is a view: copy them out). */
const floats = (data: Uint8Array) => new Float64Array(Uint8Array.from(data).buffer);
const bytesOf = (a: Float64Array, from: number, count: number) => Buffer.from(a.buffer, a.byteOffset + 8 * from, 8 * count);

/** The same message through the generated encoder. */
function generated(inputPath: string, inputIndex: number, slices: SliceSpec[]): Uint8Array {
  const tensor = (a: Float64Array, from: number, count: number) => ({ datatype: DataType.DATA_TYPE_FP64, shape: [count], data: bytesOf(a, from, count) });
  const rowSlices: RowSlice[] = slices.map((s) => ({
    output_path: s.outputPath,
    offset: s.offset,
    values: tensor(s.values, s.from, s.count),
    error_estimate: s.errors && tensor(s.errors, s.from, s.count),
    indices: s.indices ? Array.from(s.indices).slice(s.from, s.from + s.count) : [],
  }));
  return JacobianRowsResponse.encode({ row: { input_path: inputPath, input_index: inputIndex, slices: rowSlices } }).finish();
}

const anyIndex = fc.oneof(fc.constant(0), fc.nat(300), fc.maxSafeNat());
const path = fc.oneof(fc.constant(""), fc.string(), fc.string({ unit: "grapheme" }), fc.string({ unit: "binary", maxLength: 200 }));

/** A slice of an output of up to 40 values, from anywhere in it. */
const slice = fc
  .record({
    outputPath: path,
    offset: anyIndex,
    values: fc.array(fc.double(), { maxLength: 40 }),
    withErrors: fc.boolean(),
    indices: fc.option(fc.array(anyIndex, { minLength: 40, maxLength: 40 })),
    a: fc.nat(),
    b: fc.nat(),
  })
  .map(({ outputPath, offset, values, withErrors, indices, a, b }): SliceSpec => {
    const [from, to] = [a % (values.length + 1), b % (values.length + 1)].sort((x, y) => x - y);
    const data = Float64Array.from(values);
    return { outputPath, offset, values: data, errors: withErrors ? data.map((v) => v / 3) : undefined, indices: indices ?? undefined, from, count: to - from };
  });

describe("row message encoding", () => {
  it("writes exactly the generated encoder's bytes", () => {
    fc.assert(
      fc.property(path, anyIndex, fc.array(slice, { maxLength: 4 }), (inputPath, inputIndex, slices) => {
        const { frame, message } = encodeRowMessage(inputPath, inputIndex, slices);
        const expected = Buffer.from(generated(inputPath, inputIndex, slices));
        assert.deepEqual(message, expected);
        // The frame grpc-js would have written: not compressed, the length big-endian.
        assert.deepEqual(frame.subarray(0, 5), Buffer.from([0, ...[24, 16, 8, 0].map((shift) => (expected.length >>> shift) & 255)]));
        // The values left where they are: the same bytes, frame then tail, where one slice without estimates or indices ends the message.
        const split = encodeRowMessage(inputPath, inputIndex, slices, true);
        assert.deepEqual(Buffer.concat([split.frame, ...split.rest]), frame);
        assert.equal(split.messageBytes, expected.length);
        const tailed = slices.length === 1 && !slices[0].errors && !slices[0].indices && slices[0].count > 0;
        assert.equal(split.rest.length, tailed ? 1 : 0);
        if (tailed) assert.equal(split.rest[0].buffer, slices[0].values.buffer, "a view, not a copy");
      }),
      { numRuns: 3000 },
    );
  });

  it("a 185 KB dense row: the same bytes, its values at the end", () => {
    const values = Float64Array.from({ length: 23_200 }, (_, i) => Math.sin(i));
    const spec: SliceSpec = { outputPath: "final_temperature", offset: 0, values, from: 0, count: values.length };
    const bytes = encodeRowMessage("initial_temperature", 23_199, [spec]).message;
    assert.deepEqual(Buffer.from(bytes), Buffer.from(generated("initial_temperature", 23_199, [spec])));
    assert.deepEqual(Buffer.from(bytes.subarray(bytes.length - 8 * values.length)), Buffer.from(values.buffer));
  });

  it("splits rows into messages under the budget that decode to the row (dense, sparse, with estimates)", () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.double({ noNaN: true }), { maxLength: 300 }), { minLength: 1, maxLength: 3 }), fc.boolean(), fc.boolean(), fc.integer({ min: 1024, max: 4096 }), (outputs, sparse, withErrors, budget) => {
        const values = outputs.map((v) => Float64Array.from(v));
        const row = {
          inputPath: "x.é",
          inputIndex: 7,
          values,
          errors: withErrors ? values.map((v) => v.map(Math.abs)) : undefined,
          indices: sparse ? values.map((v) => Uint32Array.from(v, (_, i) => 3 * i + 1)) : undefined,
        };
        const paths = values.map((_, o) => ({ path: `out${o}` }));
        const got = values.map(() => [] as number[]);
        const gotIndices = values.map(() => [] as number[]);
        for (const message of rowMessages(row, paths, budget)) {
          assert.ok(message.message.length <= budget, `a message of ${message.message.length} bytes over a budget of ${budget}`);
          const decoded = JacobianRowsResponse.decode(message.message).row!;
          assert.equal(decoded.input_path, "x.é");
          assert.equal(decoded.input_index, 7);
          for (const s of decoded.slices) {
            const o = paths.findIndex((p) => p.path === s.output_path);
            const v = floats(s.values!.data);
            if (!sparse) assert.equal(s.offset, got[o].length, "dense slices in order, offsets increasing");
            got[o].push(...v);
            gotIndices[o].push(...s.indices);
            if (withErrors) assert.deepEqual(Array.from(floats(s.error_estimate!.data)), Array.from(v, Math.abs));
          }
        }
        assert.deepEqual(got, outputs);
        if (sparse) assert.deepEqual(gotIndices, row.indices!.map((i) => Array.from(i)));
      }),
      { numRuns: 300 },
    );
  });
});
