// WORKERS=0 means one worker per core the process may use: the CPUs it may run on, capped by a
// cgroup CPU quota (a container's limit), never below 1.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fakeCgroup } from '../helpers/cgroup.js';
import { cgroupCpuQuota, cpuBudget } from '../../src/cpu-budget.js';
import { loadConfig, workerCount } from '../../src/config.js';

const cgroup = fakeCgroup;

describe('CPU budget', () => {
  it('reads a cgroup v2 quota, and "max" as none', () => {
    assert.equal(cgroupCpuQuota(cgroup({ 'cpu.max': '200000 100000' })), 2);
    assert.equal(cgroupCpuQuota(cgroup({ 'cpu.max': '150000 100000' })), 1.5);
    assert.equal(cgroupCpuQuota(cgroup({ 'cpu.max': 'max 100000' })), undefined);
  });

  it('reads a cgroup v1 quota, and -1 as none', () => {
    assert.equal(cgroupCpuQuota(cgroup({ 'cpu/cpu.cfs_quota_us': '400000', 'cpu/cpu.cfs_period_us': '100000' })), 4);
    assert.equal(cgroupCpuQuota(cgroup({ 'cpu/cpu.cfs_quota_us': '-1', 'cpu/cpu.cfs_period_us': '100000' })), undefined);
    assert.equal(cgroupCpuQuota(cgroup({})), undefined, 'no cgroup files: no quota');
  });

  it('caps the CPUs by the quota, rounding a fractional core up, at least 1', () => {
    assert.equal(cpuBudget(2, 32), 2, 'a 2-CPU pod on a 32-core node');
    assert.equal(cpuBudget(1.5, 32), 2);
    assert.equal(cpuBudget(0.25, 32), 1);
    assert.equal(cpuBudget(undefined, 6), 6, 'no quota: every CPU');
    assert.equal(cpuBudget(8, 4), 4, 'a quota above the CPUs changes nothing');
  });

  it('WORKERS=0 takes the budget; a set WORKERS wins', () => {
    assert.equal(workerCount(loadConfig({}, []), 3), 3);
    assert.equal(workerCount(loadConfig({ WORKERS: '5' }, []), 3), 5);
    assert.throws(() => loadConfig({ WORKERS: '-1' }, []), /WORKERS/);
  });
});
