// Reading a cgroup's control files (v2 at the root, v1 under a controller's folder): what the
// process may use, for the CPU and memory budgets. A file that is missing reads as undefined.
import { readFileSync } from 'node:fs';

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** The trimmed text of `root/file`, or undefined if it cannot be read. */
export function readCgroupFile(root: string, file: string): string | undefined {
  try {
    return readFileSync(`${root}/${file}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
