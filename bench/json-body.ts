/**
 * The event loop's longest hold while a big JSON body is read, in the loop (readJsonBody) and off it
 * (JsonBodyReader, a worker thread), in one run: 60 MB as tesseract-core's Python client sends arrays
 * (base64) and as lists of numbers (its "json" encoding, the CLI's and curl's), and the whole REST
 * apply of the base64 body for context (its other steps run in the loop, a turn for other calls
 * between each).
 *
 *   npm run bench:json-body [-- --mb 60 --runs 3]   (node --expose-gc: collected between runs)
 *
 * Prints a table and writes bench/results/json-body.json.
 */
import { readJsonBody, JsonBodyReader } from "../server/http/json-body";
import { startServer } from "../server/grpc/server";
import { silentLogger } from "../server/log";
import { report } from "./report";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Runs `work`, resolving with its time and the longest gap of a 1 ms timer meanwhile. */
async function held(work: () => Promise<unknown>): Promise<{ ms: number; gapMs: number }> {
  (globalThis as { gc?: () => void }).gc?.(); // the garbage of the run before is not this one's
  let at = performance.now();
  let gapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gapMs = Math.max(gapMs, now - at);
    at = now;
  }, 1);
  await new Promise((resolve) => setTimeout(resolve, 5));
  const started = performance.now();
  await work();
  const ms = performance.now() - started;
  clearInterval(timer);
  return { ms, gapMs: Math.max(gapMs, performance.now() - at) };
}

function bodies(mb: number): { name: string; body: Buffer }[] {
  const elements = Math.floor((mb * 1e6 * 3) / 4 / 8 / 2); // two arrays
  const values = Float64Array.from({ length: elements }, (_, i) => Math.sin(i) * 1e3);
  const array = (data: unknown, n: number) => ({ object_type: "array", shape: [n], dtype: "float64", data });
  const base64 = { inputs: { a: array({ buffer: Buffer.from(values.buffer).toString("base64"), encoding: "base64" }, elements), b: array({ buffer: Buffer.from(values.buffer).toString("base64"), encoding: "base64" }, elements) } };
  const listed = Math.floor((mb * 1e6) / 2 / 19);
  const list = { inputs: { a: array({ buffer: Array.from(values.subarray(0, listed)), encoding: "json" }, listed), b: array({ buffer: Array.from(values.subarray(0, listed)), encoding: "json" }, listed) } };
  return [
    { name: "base64 arrays (tesseract-core's client)", body: Buffer.from(JSON.stringify(base64)) },
    { name: "arrays as lists of numbers", body: Buffer.from(JSON.stringify(list)) },
  ];
}

async function main(): Promise<void> {
  const mb = arg("mb", 60);
  const runs = arg("runs", 3);
  const reader = new JsonBodyReader();
  await reader.read(Buffer.alloc(2 << 20, 0x20).fill("1", 0, 1)); // the thread started
  const rows: Record<string, unknown>[] = [];
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const { name, body } of bodies(mb)) {
    const inLoop: { ms: number; gapMs: number }[] = [];
    const offLoop: { ms: number; gapMs: number }[] = [];
    for (let run = 0; run < runs; run++) {
      inLoop.push(await held(async () => readJsonBody(body)));
      const moved = Buffer.from(body); // the reader moves it to its thread
      offLoop.push(await held(() => reader.read(moved)));
    }
    const gapIn = median(inLoop.map((r) => r.gapMs));
    const gapOff = median(offLoop.map((r) => r.gapMs));
    rows.push({
      body: name,
      MB: +(body.length / 1e6).toFixed(1),
      "in the loop: ms": +median(inLoop.map((r) => r.ms)).toFixed(0),
      "longest hold, ms": +gapIn.toFixed(0),
      "worker: ms": +median(offLoop.map((r) => r.ms)).toFixed(0),
      "longest hold ms": +gapOff.toFixed(0),
      "hold ratio in/worker": +(gapIn / gapOff).toFixed(1),
    });
  }
  await reader.close();
  // The whole REST apply of the base64 body, for context.
  const server = await startServer({ tesseract: "vectoradd", port: 0, httpPort: 0, warmUpMs: 0, logger: silentLogger, maxMessageBytes: 256 << 20 });
  const [{ body }] = bodies(mb);
  const whole: { ms: number; gapMs: number }[] = [];
  for (let run = 0; run < runs; run++) {
    whole.push(
      await held(async () => {
        const res = await fetch(`http://127.0.0.1:${server.httpPort}/apply`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json+base64" }, body });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`apply answered ${res.status}`);
      }),
    );
  }
  await server.close(0);
  rows.push({ body: "whole REST apply (base64, vectoradd)", MB: +(body.length / 1e6).toFixed(1), "worker: ms": +median(whole.map((r) => r.ms)).toFixed(0), "longest hold ms": +median(whole.map((r) => r.gapMs)).toFixed(0) });
  report("json-body", rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
