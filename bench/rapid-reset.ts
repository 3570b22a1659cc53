/**
 * How long one connection's write holds the server's event loop: HTTP/2 rapid reset (streams opened
 * and reset at once), streams never ended, many whole calls in one write, against what a legitimate
 * burst of 100 calls costs. The server runs in this thread with a 1 ms timer that records its longest
 * gap; the clients run in a worker thread (their own event loop), and a health check sent during each
 * write says how long an unrelated client waited.
 *
 *   npm run bench:rapid-reset [-- --runs 5]
 *
 * Prints a table (median and worst of the runs per case, with the ratio to the legitimate burst) and
 * writes bench/results/rapid-reset.json.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { startServer } from "../server/grpc/server";
import { silentLogger } from "../server/log";
import { TesseractClient } from "../client";
import { Inputs, Outputs } from "../generated/tesseract/examples/vectoradd/v1/vectoradd";
import { describeCalls, ErrorCode, FrameType, H2Connection } from "../test/h2-frames";
import { report } from "./report";

interface Case {
  name: string;
  kind: "idle" | "legit" | "reset" | "reset-headers" | "whole" | "unended";
  streams: number;
}

const CASES: Case[] = [
  { name: "idle (no client)", kind: "idle", streams: 0 },
  { name: "100 Describe calls at once (SDK, one connection)", kind: "legit", streams: 100 },
  { name: "rapid reset: HEADERS+DATA+RST × 2000 in one write", kind: "reset", streams: 2000 },
  { name: "rapid reset: HEADERS+RST × 2000 in one write", kind: "reset-headers", streams: 2000 },
  { name: "whole Describe calls × 1000 in one write", kind: "whole", streams: 1000 },
  { name: "HEADERS never ended × 1000 in one write", kind: "unended", streams: 1000 },
];

interface Measured {
  /** Streams the server took: up to its GOAWAY's last stream id, else those it did not refuse. */
  taken: number;
  closedWith?: string;
  healthMs: number;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const runs = arg("runs", 5);
  const server = await startServer({ tesseract: "vectoradd", host: "127.0.0.1", port: 0, warmUpMs: 0, logger: silentLogger });
  const worker = new Worker(__filename, { workerData: { address: server.address, port: server.port } });
  const replies: ((m: Measured) => void)[] = [];
  worker.on("message", (m: Measured) => replies.shift()!(m));
  const ask = (c: Case) => new Promise<Measured>((resolve) => (replies.push(resolve), worker.postMessage(c)));

  const rows: Record<string, unknown>[] = [];
  let legitMs = NaN;
  for (const c of CASES) {
    const gaps: number[] = [];
    const health: number[] = [];
    let last: Measured | undefined;
    for (let run = 0; run < runs; run++) {
      (globalThis as { gc?: () => void }).gc?.();
      let at = performance.now();
      let longest = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        longest = Math.max(longest, now - at);
        at = now;
      }, 1);
      last = await ask(c);
      clearInterval(timer);
      gaps.push(longest);
      health.push(last.healthMs);
    }
    if (c.kind === "legit") legitMs = median(gaps);
    rows.push({
      case: c.name,
      "streams taken": last!.taken,
      closed: last!.closedWith ?? "no",
      "longest event-loop gap, median ms": +median(gaps).toFixed(1),
      "worst ms": +Math.max(...gaps).toFixed(1),
      "× the legit burst": c.kind === "idle" || c.kind === "legit" ? "" : +(median(gaps) / legitMs).toFixed(2),
      "health check meanwhile, median ms": +median(health).toFixed(1),
    });
  }
  await worker.terminate();
  await server.close(0);
  report("rapid-reset", rows);
}

/** The worker: one case per message, measured from the clients' side. */
async function clients(address: string, port: number): Promise<void> {
  const client = new TesseractClient(address, { inputs: Inputs, outputs: Outputs });
  await client.health();
  const timedHealth = async () => {
    const started = performance.now();
    await client.health();
    return performance.now() - started;
  };
  const run = async (c: Case): Promise<Measured> => {
    if (c.kind === "idle") {
      const healthMs = await timedHealth();
      await new Promise((resolve) => setTimeout(resolve, 100));
      return { taken: 0, healthMs };
    }
    if (c.kind === "legit") {
      const burst = new TesseractClient(address, { inputs: Inputs, outputs: Outputs });
      await burst.health();
      const health = timedHealth();
      await Promise.all(Array.from({ length: c.streams }, () => burst.describe()));
      burst.close();
      return { taken: c.streams, healthMs: await health };
    }
    const connection = await H2Connection.open(port);
    connection.write(Buffer.concat(describeCalls(c.streams, { reset: c.kind.startsWith("reset"), headersOnly: c.kind === "unended" || c.kind === "reset-headers" })));
    const healthMs = await timedHealth();
    // What the server said within a tenth of a second more (a bench: the counts are for the table).
    await Promise.race([connection.closed, new Promise((resolve) => setTimeout(resolve, 100))]);
    const frames = connection.frames();
    connection.destroy();
    const goaway = frames.filter((f) => f.type === FrameType.GOAWAY).pop();
    const refused = frames.filter((f) => f.type === FrameType.RST_STREAM && f.payload.readUInt32BE(0) === ErrorCode.REFUSED_STREAM).length;
    const last = goaway?.payload.readUInt32BE(0);
    return { taken: last !== undefined ? Math.ceil(last / 2) : c.streams - refused, closedWith: goaway && `GOAWAY code ${goaway.payload.readUInt32BE(4)}`, healthMs };
  };
  parentPort!.on("message", (c: Case) => void run(c).then((m) => parentPort!.postMessage(m)));
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  void clients(workerData.address, workerData.port);
}
