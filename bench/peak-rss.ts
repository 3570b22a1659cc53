/**
 * This process's own peak resident set size. On Linux it is VmHWM of /proc/self/status: the peak of
 * this process image alone. getrusage's maxRSS (`process.resourceUsage().maxRSS`) is not: across
 * exec, Linux keeps the larger of it and the parent's RSS at fork, so a benchmark's child reports at
 * least its parent's size (a 40 MB client spawned by a 300 MB orchestrator said 304 MB). Elsewhere,
 * maxRSS is all there is.
 */
import * as fs from "node:fs";

export function peakRssKb(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync("/proc/self/status", "utf8"));
    if (hwm) return Number(hwm[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}

export const peakRssMb = (): number => peakRssKb() / 1024;
