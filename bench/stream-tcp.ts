/**
 * The TCP ceiling of `npm run bench:stream`: a plain `net` server on 127.0.0.1 (its own process, like
 * the gRPC server) that pushes BYTES bytes to the first client in chunks of CHUNK bytes, honouring
 * backpressure (after write() returns false it waits for 'drain'), then ends the connection and exits.
 *
 *   node dist/bench/stream-tcp.js BYTES CHUNK [reuse|alloc]
 *
 * reuse (default): one preallocated chunk written again and again, the pure socket ceiling;
 * alloc: a fresh Buffer.allocUnsafe per chunk, as a producer of new data would (allocation and GC).
 * Prints `listening on 127.0.0.1:PORT` when ready, as `tesseract-grpc serve` does, and after the push one
 * JSON line { max_rss_mb, cpu_seconds } (its own peak RSS and CPU time) before it exits.
 */
import { once } from "node:events";
import * as net from "node:net";

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

function main() {
  const [bytesArg, chunkArg, modeArg = "reuse"] = process.argv.slice(2);
  const total = Number(bytesArg);
  const chunk = Number(chunkArg);
  if (!(Number.isSafeInteger(total) && total >= 0 && Number.isSafeInteger(chunk) && chunk > 0) || (modeArg !== "reuse" && modeArg !== "alloc")) {
    throw new Error("usage: stream-tcp.js BYTES CHUNK [reuse|alloc]");
  }
  const server = net.createServer((socket) => {
    server.close(); // one client
    socket.on("error", (e) => {
      process.stderr.write(`stream-tcp: ${e.message}\n`);
      process.exit(1);
    });
    push(socket, total, chunk, modeArg === "alloc").then(() => {
      // Own peak RSS and CPU, for the orchestrator: this process exits before it could sample them.
      const { user, system } = process.cpuUsage();
      process.stdout.write(JSON.stringify({ max_rss_mb: process.resourceUsage().maxRSS / 1024, cpu_seconds: (user + system) / 1e6 }) + "\n");
      process.exit(0);
    });
  });
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo;
    process.stdout.write(`listening on 127.0.0.1:${port}\n`);
  });
  const stop = () => process.exit(0);
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main();
