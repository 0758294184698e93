// How many cores this process may use: the CPUs it may run on, capped by a cgroup CPU quota.
// Node 20's os.availableParallelism() sees a container's node, not its limit: a 2-CPU pod on a
// 32-core node would otherwise start 32 worker threads.
import { CGROUP_ROOT, readCgroupFile } from './cgroup.js';
import { availableParallelism } from 'node:os';

/** The cgroup's CPU quota in cores (v2 `cpu.max`, else v1 `cfs_quota_us`), or undefined if none. */
export function cgroupCpuQuota(root = CGROUP_ROOT): number | undefined {
  const v2 = readCgroupFile(root, 'cpu.max')?.split(/\s+/);
  if (v2 && v2.length === 2) {
    const [quota, period] = v2.map(Number) as [number, number];
    return v2[0] === 'max' || !(quota > 0 && period > 0) ? undefined : quota / period;
  }
  const quota = Number(readCgroupFile(root, 'cpu/cpu.cfs_quota_us'));
  const period = Number(readCgroupFile(root, 'cpu/cpu.cfs_period_us'));
  return quota > 0 && period > 0 ? quota / period : undefined;
}

/** Whole cores available: at least 1, at most the CPUs the process may run on. */
export function cpuBudget(quota = cgroupCpuQuota(), cpus = availableParallelism()): number {
  return Math.max(1, quota === undefined ? cpus : Math.min(cpus, Math.ceil(quota)));
}
