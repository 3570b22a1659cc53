/**
 * The CPUs "auto" sizes its pool by (server/eval/cpu-limit.ts): a container's CPU limit (cgroup
 * quota) counts as well as the affinity Node sees, read from cgroup v2 and v1 files laid out in a
 * temporary directory as the kernel lays them out.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cgroupCpuLimit, usableCpus } from "../server/eval/cpu-limit";
import { defaultAutoThreads } from "../server/eval/backends";

/** A cgroup tree: files by path under the root, and /proc/self/cgroup's text. */
function cgroups(files: Record<string, string>, self: string): { root: string; proc: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "cgroup-"));
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  }
  const proc = path.join(root, "self-cgroup");
  fs.writeFileSync(proc, self);
  return { root, proc };
}

const limit = (files: Record<string, string>, self: string) => {
  const { root, proc } = cgroups(files, self);
  try {
    return cgroupCpuLimit(root, proc);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
};

describe("CPU limit of the process's container", () => {
  it("cgroup v2 in a container (its own namespace): cpu.max at the root", () => {
    assert.equal(limit({ "cgroup.controllers": "cpu", "cpu.max": "200000 100000\n" }, "0::/\n"), 2);
    assert.equal(limit({ "cgroup.controllers": "cpu", "cpu.max": "max 100000\n" }, "0::/\n"), undefined, "no limit");
  });

  it("cgroup v2 seen from the host: the tightest quota along the path, rounded up", () => {
    const pod = { "cgroup.controllers": "cpu", "kubepods/pod1/cpu.max": "300000 100000", "kubepods/pod1/ctr/cpu.max": "150000 100000" };
    assert.equal(limit(pod, "0::/kubepods/pod1/ctr\n"), 2, "1.5 CPUs: 2");
    assert.equal(limit({ ...pod, "kubepods/pod1/ctr/cpu.max": "max 100000" }, "0::/kubepods/pod1/ctr\n"), 3, "the pod's");
  });

  it("cgroup v1: the cpu controller's quota and period; -1 is none", () => {
    const self = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n";
    assert.equal(limit({ "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000", "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000" }, self), 1);
    assert.equal(limit({ "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "-1", "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000" }, self), undefined);
    // A namespaced container sees its own cgroup at the controller's root.
    assert.equal(limit({ "cpu/cpu.cfs_quota_us": "400000", "cpu/cpu.cfs_period_us": "100000" }, "1:cpu:/\n"), 4);
  });

  it("no cgroup files: no limit; the usable CPUs are Node's count at most, and auto's threads follow them", () => {
    assert.equal(limit({}, ""), undefined);
    assert.ok(usableCpus() >= 1 && usableCpus() <= os.availableParallelism());
    assert.deepEqual([defaultAutoThreads(1), defaultAutoThreads(2), defaultAutoThreads(4), defaultAutoThreads(64)], [1, 2, 3, 63]);
  });
});
