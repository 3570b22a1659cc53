/**
 * The baselines of `npm run bench:stream`, each its own process like the real server:
 *
 *   node dist/bench/stream-tcp.js BYTES CHUNK [reuse|alloc]    plain TCP ceiling
 *   node dist/bench/stream-tcp.js grpc-raw N [CHUNK_BYTES]     gRPC ceiling without the engine
 *
 * TCP: a `net` server on 127.0.0.1 pushes BYTES bytes to its first client in chunks of CHUNK bytes,
 * honouring backpressure (after write() returns false it waits for 'drain'), ends the connection and
 * exits. reuse (default): one preallocated chunk written again and again, the pure socket ceiling;
 * alloc: a fresh Buffer.allocUnsafe per chunk, as a producer of new data would (allocation and GC).
 *
 * grpc-raw: the real service definition and JacobianRows message shapes (server/grpc/rows-stream.ts:
 * rowMessages, writeAll), but the N rows of N FP64 values are one precomputed array, so no apply, no
 * quotient and no engine allocations run: what grpc-js and protobufjs alone cost for the same stream.
 * Answers the SDK's Describe and `jacobianRows` like `serve heat` does (header, N rows, stats), then keeps serving.
 *
 * Each prints `listening on 127.0.0.1:PORT` when ready, as `tesseract-grpc serve` does. The TCP server
 * prints after the push one JSON line { max_rss_mb, cpu_seconds } (its own peak RSS and CPU time) and exits.
 */
import { once } from "node:events";
import * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { loadDefinition } from "../server/grpc/definition";
import { rowMessages, writeAll, type RowsMessage } from "../server/grpc/rows-stream";
import { DataType } from "../common/tensor-codec";
import { peakRssMb } from "./peak-rss";

async function push(socket: net.Socket, total: number, chunk: number, alloc: boolean): Promise<void> {
  const shared = Buffer.alloc(chunk, 0x5a);
  let sent = 0;
  while (sent < total) {
    const size = Math.min(chunk, total - sent);
    const buf = alloc ? Buffer.allocUnsafe(size) : size === chunk ? shared : shared.subarray(0, size);
    sent += size;
    if (!socket.write(buf)) await once(socket, "drain");
  }
  socket.end();
  await once(socket, "close");
}

function tcpServer(total: number, chunk: number, alloc: boolean) {
  const server = net.createServer((socket) => {
    server.close(); // one client
    socket.on("error", (e) => {
      process.stderr.write(`stream-tcp: ${e.message}\n`);
      process.exit(1);
    });
    push(socket, total, chunk, alloc).then(() => {
      // Own peak RSS and CPU, for the orchestrator: this process exits before it could sample them.
      const { user, system } = process.cpuUsage();
      process.stdout.write(JSON.stringify({ max_rss_mb: peakRssMb(), cpu_seconds: (user + system) / 1e6 }) + "\n");
      process.exit(0);
    });
  });
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo;
    process.stdout.write(`listening on 127.0.0.1:${port}\n`);
  });
}

async function grpcRawServer(n: number, chunkBytes: number) {
  const maxMessageBytes = 64 << 20; // as server/grpc/server.ts DEFAULTS
  const { service } = loadDefinition();
  const values = new Float64Array(n).map((_, i) => Math.sin(i));
  const outputs = [{ path: "final_temperature", shape: [n], datatype: DataType.DATA_TYPE_FP64 }];
  async function* messages(): AsyncGenerator<RowsMessage> {
    yield {
      header: {
        inputs: [{ path: "initial_temperature", shape: [n], datatype: DataType.DATA_TYPE_FP64 }],
        outputs,
        total_rows: n,
        planned_evaluations: 2 * n,
      },
    };
    for (let j = 0; j < n; j++) yield* rowMessages({ inputPath: "initial_temperature", inputIndex: j, values: [values] }, outputs, chunkBytes);
    yield { stats: { apply_calls: 0, wall_seconds: 0 } };
  }
  const server = new grpc.Server({ "grpc.max_receive_message_length": maxMessageBytes, "grpc.max_send_message_length": maxMessageBytes });
  server.addService(service, {
    // The SDK checks the served message types once (Describe) before its first gradient call.
    Describe: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { name: "heat", input_type: "tesseract.examples.heat.v1.Inputs", output_type: "tesseract.examples.heat.v1.Outputs" }),
    JacobianRows: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      const abort = new AbortController();
      let done = false;
      call.on("cancelled", () => done || abort.abort());
      writeAll(call, messages(), abort.signal, () => abort.signal.throwIfAborted()).then(
        () => {
          done = true;
          call.end();
        },
        (e) => {
          done = true;
          call.emit("error", { code: grpc.status.CANCELLED, details: String(e) });
        },
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  process.stdout.write(`listening on 127.0.0.1:${port}\n`);
}

function main() {
  const args = process.argv.slice(2);
  const stop = () => process.exit(0);
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  if (args[0] === "grpc-raw") {
    const n = Number(args[1]);
    const chunk = Number(args[2] ?? 1 << 20);
    if (!(Number.isSafeInteger(n) && n > 0 && Number.isSafeInteger(chunk) && chunk >= 1024)) throw new Error("usage: stream-tcp.js grpc-raw N [CHUNK_BYTES]");
    grpcRawServer(n, chunk).catch((e) => {
      process.stderr.write(`stream-tcp: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    });
    return;
  }
  const [bytesArg, chunkArg, modeArg = "reuse"] = args;
  const total = Number(bytesArg);
  const chunk = Number(chunkArg);
  if (!(Number.isSafeInteger(total) && total >= 0 && Number.isSafeInteger(chunk) && chunk > 0) || (modeArg !== "reuse" && modeArg !== "alloc")) {
    throw new Error("usage: stream-tcp.js BYTES CHUNK [reuse|alloc] | grpc-raw N [CHUNK_BYTES]");
  }
  tcpServer(total, chunk, modeArg === "alloc");
}

main();
