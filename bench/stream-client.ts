/**
 * The client half of `npm run bench:stream`, run as its own process so that its RSS is its own.
 *
 *   node dist/bench/stream-client.js grpc HOST:PORT   JacobianRows of heat through the SDK
 *   node dist/bench/stream-client.js tcp  HOST:PORT   a plain TCP socket (bench/stream-tcp.ts)
 *
 * grpc: `TesseractClient.jacobianRows` on a 1-D heat input of BENCH_STREAM_N points and
 * BENCH_STREAM_STEPS steps, d final_temperature / d initial_temperature (central, N rows of N FP64
 * values: SPARSITY_MODE_DENSE, since heat declares its banded structure; BENCH_STREAM_SPARSITY=declared
 * streams the sparse rows instead, and counts their indices in `indices`). tcp: reads until the server ends the connection. Either way the data is counted and
 * dropped, and one JSON line goes to stdout: { mode, bytes, messages, rows, seconds, first_byte_seconds,
 * max_rss_mb, cpu_seconds } (with `partial: true` when stopped early by SIGTERM). `bytes` counts row slice values (grpc) or payload bytes (tcp); `messages` counts stream
 * messages (grpc) or 'data' events (tcp).
 */
import * as net from "node:net";
import { TesseractClient } from "../client";
import { Inputs, Outputs } from "../generated/tesseract/examples/heat/v1/heat";
import { sampleHeatInputs } from "../server/tesseracts/samples";
import { peakRssMb } from "./peak-rss";

const N = Number(process.env.BENCH_STREAM_N ?? 23_200);
const STEPS = Number(process.env.BENCH_STREAM_STEPS ?? 1);
/** Receive limit; the stream's messages stay under the server's budget (1 MiB by default). */
const MAX_MESSAGE_BYTES = 64 << 20;
/**
 * BENCH_STREAM_CLIENT_WINDOW: HTTP/2 flow-control window of the client's channel, in bytes
 * (grpc-js `grpc-node.flow_control_window`); unset: the SDK's default (16 MiB).
 */
const CLIENT_WINDOW = process.env.BENCH_STREAM_CLIENT_WINDOW ? Number(process.env.BENCH_STREAM_CLIENT_WINDOW) : undefined;
/** SPARSITY_MODE_DENSE (1) unless BENCH_STREAM_SPARSITY=declared (0: heat's own structure, sparse rows). */
const SPARSITY_MODE = process.env.BENCH_STREAM_SPARSITY === "declared" ? 0 : 1;

interface Result {
  mode: string;
  bytes: number;
  messages: number;
  rows: number;
  seconds: number;
  first_byte_seconds: number;
  apply_calls?: number;
  /** Sparse rows: the indices they carried. */
  indices?: number;
  max_rss_mb: number;
  cpu_seconds: number;
  partial?: boolean;
}

const cpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

/** What has been received so far: printed with `partial: true` if the orchestrator stops us (SIGTERM). */
let progress: (() => Result) | undefined;
process.once("SIGTERM", () => {
  if (progress) process.stdout.write(JSON.stringify({ ...progress(), partial: true }) + "\n");
  process.exit(2);
});

async function grpcStream(address: string): Promise<Result> {
  const client = new TesseractClient<Inputs, Outputs>(
    address,
    { inputs: Inputs, outputs: Outputs, inputType: "tesseract.examples.heat.v1.Inputs", outputType: "tesseract.examples.heat.v1.Outputs" },
    { maxMessageBytes: MAX_MESSAGE_BYTES, channelOptions: CLIENT_WINDOW ? { "grpc-node.flow_control_window": CLIENT_WINDOW } : undefined },
  );
  const inputs = sampleHeatInputs(N, STEPS, 1);
  let bytes = 0;
  let messages = 0;
  let rows = 0;
  let applyCalls: number | undefined;
  let indices = 0;
  let firstByte = 0;
  let lastIndex = -1;
  const t0 = performance.now();
  const result = (): Result => ({
    mode: "grpc", bytes, messages, rows, seconds: (performance.now() - t0) / 1000, first_byte_seconds: (firstByte - t0) / 1000,
    apply_calls: applyCalls, indices, max_rss_mb: peakRssMb(), cpu_seconds: cpuSeconds(),
  });
  progress = result;
  const options = { algorithm: 1, sparsity_mode: SPARSITY_MODE };
  for await (const event of client.jacobianRows({ inputs: inputs as never, inputPaths: ["initial_temperature"], outputPaths: ["final_temperature"], options })) {
    if (messages++ === 0) firstByte = performance.now();
    if (event.row) {
      // A row split over several messages shares input_index; count each row once.
      if (event.row.input_index !== lastIndex) {
        rows++;
        lastIndex = event.row.input_index;
      }
      for (const s of event.row.slices) {
        bytes += s.values.byteLength;
        indices += s.indices?.length ?? 0;
      }
    } else if (event.stats) {
      applyCalls = Number(event.stats.apply_calls);
    }
  }
  const done = result();
  client.close();
  return done;
}

function tcpStream(address: string): Promise<Result> {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let messages = 0;
    let firstByte = 0;
    const t0 = performance.now();
    const result = (): Result => ({
      mode: "tcp", bytes, messages, rows: 0, seconds: (performance.now() - t0) / 1000, first_byte_seconds: (firstByte - t0) / 1000,
      max_rss_mb: peakRssMb(), cpu_seconds: cpuSeconds(),
    });
    progress = result;
    const socket = net.connect({ host, port });
    socket.on("data", (chunk: Buffer) => {
      if (messages++ === 0) firstByte = performance.now();
      bytes += chunk.length;
    });
    socket.on("error", reject);
    socket.on("end", () => {
      const done = result();
      socket.destroy();
      resolve(done);
    });
  });
}

async function main() {
  const [mode, address] = process.argv.slice(2);
  if (!address || (mode !== "grpc" && mode !== "tcp")) throw new Error("usage: stream-client.js grpc|tcp HOST:PORT");
  const result = mode === "grpc" ? await grpcStream(address) : await tcpStream(address);
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().then(
  () => process.exit(0), // exit promptly (and write --cpu-prof) even if a handle lingers
  (e) => {
    process.stderr.write(`stream-client: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  },
);
