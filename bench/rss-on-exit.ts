/**
 * Preloaded (`node -r dist/bench/rss-on-exit.js …`) into a process whose peak memory a benchmark
 * reports: on exit, one line `{"maxRssKb": …}` on stderr, from the kernel's own accounting.
 */
import * as fs from "node:fs";

process.on("exit", () => fs.writeSync(2, `${JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS })}\n`));
