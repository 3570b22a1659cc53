/**
 * `npm run bench:answers`: big unary answers into their gRPC frame, in one run, alternated: as the
 * server writes them (answer-limit.ts: sized, their big arrays sent as they are) against the service's
 * serializer followed by a copy into the frame (how every answer went before, and still goes for
 * the other RPCs). A 62.7 MB Jacobian (heat n = 2 800, dense) and a 32 MB Apply answer; each
 * encoding of a fresh answer object, medians of BENCH_ANSWERS_ROUNDS (default 5). Prints a table and
 * writes bench/results/answers.json.
 */
import { fp64Tensor } from "../common/tensor-codec";
import { framedAnswer } from "../server/grpc/answer-limit";
import { loadDefinition } from "../server/grpc/definition";
import { FRAME_PREFIX_BYTES, FramedMessage } from "../server/grpc/framed-messages";
import { report } from "./report";

const ROUNDS = Number(process.env.BENCH_ANSWERS_ROUNDS ?? 5);
const LIMIT = 1 << 30;
const { service } = loadDefinition();

/** The serializer, then a copy into the frame. */
function serializedThenCopied(rpc: string, response: unknown): FramedMessage {
  const message = service[rpc].responseSerialize(response);
  const frame = FramedMessage.allocate(message.length);
  message.copy(frame, FRAME_PREFIX_BYTES);
  return new FramedMessage(frame);
}

const n = 2800;
const cases: { rpc: string; what: string; answer: () => unknown }[] = [
  {
    rpc: "Jacobian",
    what: `heat n = ${n}, dense: one ${((8 * n * n) / 1e6).toFixed(1)} MB block`,
    answer: () => ({
      entries: [{ output_path: "final_temperature", input_path: "initial_temperature", value: fp64Tensor(new Float64Array(n * n).fill(0.45), [n, n]) }],
      stats: { apply_calls: 2 * n, wall_seconds: 1, adjusted_steps: [], column_groups: n, sparsity_source: "" },
    }),
  },
  {
    rpc: "Apply",
    what: "a 32 MB outputs message",
    answer: () => ({ outputs: { type_url: "type.googleapis.com/tesseract.examples.heat.v1.Outputs", value: new Uint8Array(32_000_000).fill(7) } }),
  },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const results = cases.map(({ rpc, what, answer }) => {
  const times = { written: [] as number[], serialized: [] as number[] };
  let bytes = 0;
  for (let r = 0; r < ROUNDS; r++) {
    // Alternated, each on an answer of its own (its arrays as fresh as the engine's).
    for (const way of r % 2 === 0 ? (["written", "serialized"] as const) : (["serialized", "written"] as const)) {
      const response = answer();
      const started = performance.now();
      const framed = way === "written" ? framedAnswer(rpc, service[rpc].responseSerialize, response, LIMIT) : serializedThenCopied(rpc, response);
      times[way].push(performance.now() - started);
      bytes = framed.messageBytes;
    }
  }
  const [written, serialized] = [median(times.written), median(times.serialized)];
  return { rpc, answer: what, MB: +(bytes / 1e6).toFixed(1), written_ms: +written.toFixed(2), serialized_then_copied_ms: +serialized.toFixed(1), ratio: +(serialized / written).toFixed(0) };
});

report("answers", results);
