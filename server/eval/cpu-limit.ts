/**
 * The CPUs this process may keep busy: its CPU affinity (Node's availableParallelism) and its
 * container's CPU limit, whichever is fewer. Node 20 sees the affinity only, so under a Kubernetes
 * or Docker CPU limit (a cgroup quota: `--cpus 2`, `limits.cpu: "2"`) on a 64-core node it reported
 * 64, and `--workers auto` started 63 threads (about 22 MB each) for two CPUs' worth of time.
 *
 * The quota is read from cgroup v2 (`cpu.max`: "QUOTA PERIOD" or "max PERIOD") along the process's
 * cgroup path and its ancestors, or from cgroup v1 (`cpu/cpu.cfs_quota_us`, -1 for none, and
 * `cpu.cfs_period_us`); the tightest one counts, rounded up (1.5 CPUs: 2).
 */
import * as fs from "node:fs";
import { availableParallelism } from "node:os";
import * as path from "node:path";

export function usableCpus(): number {
  // Once per process: read at the first pool decision, not per request.
  usable ??= Math.max(1, Math.min(availableParallelism(), cgroupCpuLimit() ?? Infinity));
  return usable;
}
let usable: number | undefined;

/** CPUs the cgroup quota allows (rounded up), or undefined where there is none (or no cgroup to read). */
export function cgroupCpuLimit(root = "/sys/fs/cgroup", procSelfCgroup = "/proc/self/cgroup"): number | undefined {
  const read = (file: string) => {
    try {
      return fs.readFileSync(file, "utf8").trim();
    } catch {
      return undefined;
    }
  };
  const cpus = (quota: number, period: number) => (quota > 0 && period > 0 ? Math.ceil(quota / period) : undefined);
  let least: number | undefined;
  const consider = (n: number | undefined) => {
    if (n !== undefined && (least === undefined || n < least)) least = n;
  };
  const lines = (read(procSelfCgroup) ?? "").split("\n");
  // cgroup v2: "0::/path"; the limit may sit on the path or any ancestor (a pod's, then a container's).
  const unified = lines.find((l) => l.startsWith("0::"))?.slice(3);
  if (unified !== undefined && fs.existsSync(path.join(root, "cgroup.controllers"))) {
    for (let dir = path.posix.normalize(`/${unified}`); ; dir = path.posix.dirname(dir)) {
      const [quota, period] = (read(path.join(root, dir, "cpu.max")) ?? "").split(/\s+/);
      if (quota && quota !== "max") consider(cpus(Number(quota), Number(period)));
      if (dir === "/") break;
    }
  }
  // cgroup v1: the cpu controller's directory (mounted as "cpu" or "cpu,cpuacct"), at the process's path or the mount's root.
  const v1 = lines.map((l) => l.split(":")).find((parts) => parts.length >= 3 && parts[1].split(",").includes("cpu"));
  if (v1) {
    for (const mount of ["cpu", "cpu,cpuacct", "cpuacct,cpu"]) {
      for (const dir of new Set([path.posix.normalize(`/${v1.slice(2).join(":")}`), "/"])) {
        const quota = Number(read(path.join(root, mount, dir, "cpu.cfs_quota_us")));
        const period = Number(read(path.join(root, mount, dir, "cpu.cfs_period_us")));
        consider(cpus(quota, period));
      }
    }
  }
  return least;
}
