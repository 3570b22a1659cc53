/**
 * tesseract-core's finite-difference helper, timed in the same run as our figures: the Python
 * reproduction in bench/fixtures/tesseract-core-helper (tesseract-core itself cannot be installed
 * here; see that file for what it rebuilds) on the meshstats central Jacobian of 1000 points. It needs python3
 * with numpy and pydantic 2; without them the benches fall back to the time recorded on this
 * machine kind (RECORDED_HELPER_S) and say so.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";

/** tesseract-core's helper on meshstats N = 1000 central, in-process (../shared/TESSERACT_CORE_HTTP.md). */
export const RECORDED_HELPER_S = 2.5;

const SCRIPT = path.join(__dirname, "../../bench/fixtures/tesseract-core-helper/meshstats_fd.py");

export interface HelperTiming {
  /** Median seconds per Jacobian. */
  seconds: number;
  applyCalls: number;
  /** Where `seconds` comes from: this run's reproduction, or the recorded time. */
  source: string;
}

/** The reproduction's median over `rounds` Jacobians of 1000 points; the recorded time when it cannot run. */
export async function helperSeconds(rounds: number): Promise<HelperTiming> {
  const recorded = { seconds: RECORDED_HELPER_S, applyCalls: 12_001 };
  try {
    const { stdout } = await promisify(execFile)(process.env.PYTHON ?? "python3", [SCRIPT, "1000", String(rounds)], { timeout: 600_000 });
    const result = JSON.parse(stdout) as { seconds: number[]; apply_calls: number; max_abs_error: number };
    if (!(result.max_abs_error < 1e-6)) throw new Error(`the reproduction's Jacobian is off by ${result.max_abs_error}`);
    const sorted = [...result.seconds].sort((a, b) => a - b);
    return { seconds: sorted[Math.floor(sorted.length / 2)], applyCalls: result.apply_calls, source: "reproduced in this run (python3, numpy, pydantic)" };
  } catch (e) {
    const reason = e instanceof Error ? e.message.split("\n").find((line) => line.trim()) : String(e);
    return { ...recorded, source: `recorded on this machine kind (${RECORDED_HELPER_S} s at N = 1000; the reproduction could not run: ${reason})` };
  }
}
