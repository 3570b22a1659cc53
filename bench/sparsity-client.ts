/**
 * The client half of `npm run bench:sparsity` (bench/sparsity.ts), its own process so that its RSS is
 * its own: `node dist/bench/sparsity-client.js HOST:PORT` streams heat's Jacobian (1-D, n =
 * BENCH_SPARSITY_N, one step, central; sparse rows by heat's declared structure)
 * BENCH_SPARSITY_REPEATS times through the SDK, then once through a raw grpc-js client that counts
 * the bytes on the wire, and prints one JSON line (ClientResult in bench/sparsity.ts). The server's
 * CPU time per stream comes from /proc/BENCH_SPARSITY_SERVER_PID.
 */
import { once } from "node:events";
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { TesseractClient } from "../client";
import { packAny } from "../client/any";
import { Inputs as HeatInputs, Outputs as HeatOutputs } from "../generated/tesseract/examples/heat/v1/heat";
import { JacobianRequest, JacobianRowsResponse } from "../generated/tesseract/v1/tesseract";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import { peakRssMb } from "./peak-rss";

const N = Number(process.env.BENCH_SPARSITY_N ?? 23_200);
const REPEATS = Number(process.env.BENCH_SPARSITY_REPEATS ?? 4);
const HEAT = { inputType: "tesseract.examples.heat.v1.Inputs", outputType: "tesseract.examples.heat.v1.Outputs" };
const MAX_MESSAGE_BYTES = 64 << 20;
const CENTRAL = 1;

/** CPU time (user + system) of a live process, in seconds, from /proc (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields[0] is field 3 (state)
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export interface ClientResult {
  streams: { seconds: number; server_cpu_s: number; client_cpu_s: number; rows: number; values: number; indices: number; apply_calls: number; column_groups: number; nonzeros: number }[];
  wire_bytes: number;
  messages: number;
  /** Peak RSS after the SDK streams, and after the raw pass too. */
  sdk_max_rss_mb: number;
  max_rss_mb: number;
}

async function main(address: string): Promise<void> {
  const client = new TesseractClient<HeatInputs, HeatOutputs>(address, { inputs: HeatInputs, outputs: HeatOutputs, ...HEAT }, { maxMessageBytes: MAX_MESSAGE_BYTES });
  const request = { inputs: sampleHeatInputs(N, 1) as never, inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"], options: { algorithm: CENTRAL } };
  const streams: ClientResult["streams"] = [];
  const serverPid = Number(process.env.BENCH_SPARSITY_SERVER_PID);
  for (let k = 0; k < REPEATS; k++) {
    const s = { seconds: 0, server_cpu_s: 0, client_cpu_s: 0, rows: 0, values: 0, indices: 0, apply_calls: 0, column_groups: 0, nonzeros: 0 };
    const [t, c, server] = [performance.now(), process.cpuUsage(), cpuSeconds(serverPid)];
    for await (const event of client.jacobianRows(request)) {
      if (event.header) s.nonzeros = Number(event.header.nonzeros);
      else if (event.row) {
        s.rows++;
        for (const slice of event.row.slices) {
          s.values += slice.values.length;
          s.indices += slice.indices?.length ?? 0;
        }
      } else if (event.stats) [s.apply_calls, s.column_groups] = [Number(event.stats.apply_calls), Number(event.stats.column_groups)];
    }
    s.seconds = (performance.now() - t) / 1000;
    const used = process.cpuUsage(c);
    s.client_cpu_s = (used.user + used.system) / 1e6;
    s.server_cpu_s = cpuSeconds(serverPid) - server;
    streams.push(s);
  }
  client.close();
  const sdkMaxRssMb = peakRssMb();

  // Raw: the request as the SDK sends it, the responses as bytes.
  const raw = new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": MAX_MESSAGE_BYTES });
  const message = JacobianRequest.encode({
    inputs: packAny(HEAT.inputType, HeatInputs, request.inputs),
    jac_inputs: request.inputPaths,
    jac_outputs: request.outputPaths,
    options: undefined,
    sparsity: [],
  }).finish();
  let wireBytes = 0;
  let messages = 0;
  const call = raw.makeServerStreamRequest("/tesseract.v1.Tesseract/JacobianRows", (b: Buffer) => b, (b: Buffer) => b, Buffer.from(message));
  call.on("data", (bytes: Buffer) => {
    JacobianRowsResponse.decode(bytes); // what a client does with them
    wireBytes += bytes.length + 5;
    messages++;
  });
  await once(call, "end");
  raw.close();
  const result: ClientResult = { streams, wire_bytes: wireBytes, messages, sdk_max_rss_mb: sdkMaxRssMb, max_rss_mb: peakRssMb() };
  process.stdout.write(JSON.stringify(result) + "\n");
}

main(process.argv[2]).then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench:sparsity client: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
