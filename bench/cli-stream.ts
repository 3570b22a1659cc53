/**
 * `npm run bench:cli-stream`: the CLI's streamed Jacobian in bounded memory. A heat Jacobian of
 * n × n FP64 (default n = 8192: 512 MiB) from `tesseract-grpc serve heat`, fetched by
 * `tesseract-grpc jacobian` in three ways, each CLI run in its own process with its peak RSS taken
 * from the kernel (VmHWM, via bench/rss-on-exit.ts):
 * - npy: `--out FILE.npy` (the matrix written row by row into the file);
 * - ndjson: `--stream` (the rows as NDJSON on stdout, discarded);
 * - assembled: the whole Jacobian assembled in memory from the same stream (what `--stream` did before),
 *   for comparison (skipped with BENCH_CLI_STREAM_ASSEMBLED=0).
 *
 * Environment: BENCH_CLI_STREAM_N (grid points n, default 8192), BENCH_CLI_STREAM_CASES
 * (comma-separated, default npy,ndjson,assembled). Prints a table; writes bench/results/cli-stream.json.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { listeningAddress } from "./listening";
import { report } from "./report";

const N = Number(process.env.BENCH_CLI_STREAM_N ?? 8192);
const CASES = (process.env.BENCH_CLI_STREAM_CASES ?? "npy,ndjson,assembled").split(",").map((c) => c.trim());
const CLI = path.join(__dirname, "../cli/cli.js");
const RSS = path.join(__dirname, "rss-on-exit.js");
const ASSEMBLE = path.join(__dirname, "cli-stream-assemble.js");
const MB = 1024 * 1024;

/** Runs a node script with the RSS preload; resolves with its peak RSS (MiB), wall time and exit code. */
async function measured(args: string[], stdout: "ignore" | "pipe" = "ignore"): Promise<{ peakMb: number; seconds: number; stderr: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, ["-r", RSS, ...args], { stdio: ["ignore", stdout, "pipe"] });
  child.stdout?.resume();
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`${args.slice(0, 3).join(" ")} exited ${code}:\n${stderr}`);
  const rss = /\{"maxRssKb":(\d+)\}/.exec(stderr);
  return { peakMb: Number(rss?.[1]) / 1024, seconds, stderr };
}

async function main(): Promise<void> {
  const server = spawn(process.execPath, [CLI, "serve", "heat", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  try {
    const address = await listeningAddress(server);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-cli-stream-"));
    const payloadFile = path.join(dir, "payload.json");
    const initial = Array.from({ length: N }, (_, i) => Math.sin((Math.PI * (i + 1)) / (N + 1)));
    // Dense rows: heat declares its (tridiagonal) structure, and sparse rows would carry 3 values each.
    fs.writeFileSync(payloadFile, JSON.stringify({ inputs: { initial_temperature: initial, diffusivity: 1, steps: 1 }, jac_inputs: ["initial_temperature"], jac_outputs: ["final_temperature"], options: { sparsity_mode: "SPARSITY_MODE_DENSE" } }));
    const jacobianMb = (8 * N * N) / MB;
    const results: Record<string, unknown>[] = [];
    const common = ["jacobian", `@${payloadFile}`, "--address", address];
    for (const name of CASES) {
      const npy = path.join(dir, "J.npy");
      const args = name === "npy" ? [CLI, ...common, "--out", npy] : name === "ndjson" ? [CLI, ...common, "--stream"] : [ASSEMBLE, address, payloadFile];
      const run = await measured(args);
      const fileMb = name === "npy" ? fs.statSync(npy).size / MB : undefined;
      results.push({ case: name, n: N, jacobian_mb: +jacobianMb.toFixed(1), file_mb: fileMb && +fileMb.toFixed(1), cli_peak_rss_mb: +run.peakMb.toFixed(1), rss_over_jacobian: +(run.peakMb / jacobianMb).toFixed(3), seconds: +run.seconds.toFixed(2) });
      fs.rmSync(npy, { force: true });
    }
    fs.rmSync(dir, { recursive: true, force: true });
    report("cli-stream", results);
  } finally {
    server.kill("SIGTERM");
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
