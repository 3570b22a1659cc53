/**
 * `npm run bench` (second part): end to end over gRPC on loopback, with the SDK.
 * - Apply round trip (meshstats, N = 1000): median and p99 of sequential calls;
 * - meshstats N = 1000 central Jacobian: wall time and apply calls;
 * - JacobianRows throughput: a vectoradd Jacobian (N × N FP64) streamed to a client that only counts
 *   bytes, against the same Jacobian as a unary call.
 * Prints a table and writes bench/results/grpc.json.
 */
import ndarray from "ndarray";
import { report } from "./report";
import { TesseractClient } from "../client";
import { Inputs as MeshInputs, Outputs as MeshOutputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { Inputs as VecInputs, Outputs as VecOutputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { startServer } from "../index";
import { silentLogger } from "../server/log";
import { sampleMeshInputs } from "../server/tesseracts/samples";

const STREAM_N = Number(process.env.BENCH_STREAM_N ?? 3000);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function main() {
  const results: Record<string, unknown>[] = [];
  const mesh = await startServer({ tesseract: "meshstats", port: 0, logger: silentLogger });
  const meshClient = new TesseractClient<MeshInputs, MeshOutputs>(mesh.address, { inputs: MeshInputs, outputs: MeshOutputs, inputType: "tesseract.examples.meshstats.v1.Inputs", outputType: "tesseract.examples.meshstats.v1.Outputs" });
  const inputs = sampleMeshInputs(1000);
  for (let i = 0; i < 50; i++) await meshClient.apply(inputs); // warm-up
  const rtts: number[] = [];
  for (let i = 0; i < 500; i++) {
    const t = performance.now();
    await meshClient.apply(inputs);
    rtts.push(performance.now() - t);
  }
  rtts.sort((a, b) => a - b);
  results.push({ case: "Apply round trip, meshstats N = 1000", median_ms: +quantile(rtts, 0.5).toFixed(3), p99_ms: +quantile(rtts, 0.99).toFixed(3), calls: 500 });

  await meshClient.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: ["statistics.first_point_coordinates", "statistics.barycenter"] }); // warm-up
  const walls: number[] = [];
  let calls = 0;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const { stats } = await meshClient.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: ["statistics.first_point_coordinates", "statistics.barycenter"], options: { algorithm: 1 } });
    walls.push(performance.now() - t);
    calls = stats.apply_calls;
  }
  walls.sort((a, b) => a - b);
  results.push({ case: "Jacobian central, meshstats N = 1000, both outputs", median_ms: +quantile(walls, 0.5).toFixed(1), apply_calls: calls });
  meshClient.close();
  await mesh.close();

  const vec = await startServer({ tesseract: "vectoradd", port: 0, logger: silentLogger, maxMessageBytes: 512 << 20 });
  const vecClient = new TesseractClient<VecInputs, VecOutputs>(vec.address, { inputs: VecInputs, outputs: VecOutputs, inputType: "tesseract.examples.vectoradd.v1.Inputs", outputType: "tesseract.examples.vectoradd.v1.Outputs" }, { maxMessageBytes: 512 << 20 });
  const a = ndarray(new Float64Array(STREAM_N).map((_, i) => Math.sin(i)), [STREAM_N]);
  const vin = { a, b: ndarray(new Float64Array(STREAM_N).fill(1), [STREAM_N]), normalize: false };
  const t0 = performance.now();
  let bytes = 0;
  let messages = 0;
  for await (const event of vecClient.jacobianRows({ inputs: vin as never, inputPaths: ["a"], outputPaths: ["result"] })) {
    messages++;
    if (event.row) for (const s of event.row.slices) bytes += s.values.byteLength;
  }
  const streamSeconds = (performance.now() - t0) / 1000;
  results.push({ case: `JacobianRows, vectoradd ${STREAM_N} × ${STREAM_N} FP64`, MB: +(bytes / 1e6).toFixed(1), messages, seconds: +streamSeconds.toFixed(2), MB_per_s: +(bytes / 1e6 / streamSeconds).toFixed(1) });
  const t1 = performance.now();
  await vecClient.jacobian({ inputs: vin as never, inputPaths: ["a"], outputPaths: ["result"] });
  const unarySeconds = (performance.now() - t1) / 1000;
  results.push({ case: `Jacobian (unary), vectoradd ${STREAM_N} × ${STREAM_N}`, MB: +(bytes / 1e6).toFixed(1), seconds: +unarySeconds.toFixed(2), MB_per_s: +(bytes / 1e6 / unarySeconds).toFixed(1) });
  vecClient.close();
  await vec.close();

  report("grpc", results);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
