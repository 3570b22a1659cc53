/**
 * The fuzz properties of test/fuzz.test.ts, run longer: `npm run bench:fuzz [-- runs [seeds...]]`
 * (default 5000 runs per property, seeds 42, 1, 2). Each seed is a separate mocha run in a child
 * process, so that every run starts from fresh servers; the exit code is non-zero if any run failed.
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";

const [runsArg, ...seedArgs] = process.argv.slice(2);
const runs = Number(runsArg ?? 5000);
const seeds = seedArgs.length ? seedArgs.map(Number) : [42, 1, 2];
const mocha = require.resolve("mocha/bin/mocha.js");
const spec = path.join(__dirname, "../test/fuzz.test.js");

let failed = 0;
for (const seed of seeds) {
  const started = performance.now();
  const result = spawnSync(process.execPath, [mocha, "--no-config", "--enable-source-maps", "--timeout", "0", spec], {
    stdio: "inherit",
    env: { ...process.env, FUZZ_RUNS: String(runs), FUZZ_SEED: String(seed) },
  });
  const s = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`seed ${seed}: ${runs} runs per property, exit ${result.status}, ${s} s`);
  if (result.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
