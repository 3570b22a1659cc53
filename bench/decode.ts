/**
 * `npm run bench:decode`: the strict protobuf decoder (server/schema/wire-decode.ts) against
 * protobufjs' decode + toObject on the same bytes, in the same run: meshstats inputs of N points
 * with 20 cell_data entries. The strict decoder checks wire types, UTF-8 and nesting, so it may cost
 * a little more; the tensor bytes are views in both, so the cost does not grow with N.
 */
import { loadRoot } from "../server/schema/schema";
import { decodeStrict } from "../server/schema/wire-decode";
import { report } from "./report";

const Inputs = loadRoot(["tesseract/examples/meshstats/v1/meshstats.proto"]).lookupType("tesseract.examples.meshstats.v1.Inputs");
const tensor = (values: Float64Array, shape: number[]) => ({ datatype: 11, shape, data: new Uint8Array(values.buffer) });

/** Mean microseconds per call, after a warm-up. */
function time(f: () => unknown, runs = 2000): number {
  for (let i = 0; i < runs / 10; i++) f();
  const started = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) f();
  return Number(process.hrtime.bigint() - started) / runs / 1000;
}

const results = [1_000, 100_000].map((N) => {
  const cell_data = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, tensor(new Float64Array(1), [1, 1])]));
  const bytes = Inputs.encode({ mesh: { n_points: N, n_cells: 1, points: tensor(new Float64Array(3 * N), [N, 3]), cell_data } }).finish();
  const protobufjs = time(() => Inputs.toObject(Inputs.decode(bytes), { longs: Number, enums: Number, defaults: true, arrays: true, objects: true }));
  const strict = time(() => decodeStrict(Inputs, bytes, "inputs", { longs: "number", defaults: true }));
  return { N, bytes: bytes.length, protobufjs_us: +protobufjs.toFixed(1), strict_us: +strict.toFixed(1), ratio: +(strict / protobufjs).toFixed(2) };
});
report("decode", results);
