/**
 * Preloaded (`node -r dist/bench/rss-on-exit.js …`) into a process whose peak memory a benchmark
 * reports: on exit, one line `{"maxRssKb": …}` on stderr, its own peak (bench/peak-rss.ts).
 */
import * as fs from "node:fs";
import { peakRssKb } from "./peak-rss";

process.on("exit", () => fs.writeSync(2, `${JSON.stringify({ maxRssKb: peakRssKb() })}\n`));
