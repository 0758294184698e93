// MEMORY_BUDGET_BYTES: the audio waiting in the process is bounded in bytes. 0 derives the budget
// from the memory the process may use (a cgroup's limit, else physical memory); the count is kept
// in the workers' shared memory, and every account gives its bytes back.
import assert from 'node:assert/strict';
import { totalmem } from 'node:os';
import { describe, it } from 'node:test';
import { fakeCgroup } from '../helpers/cgroup.js';
import { SharedState } from '../../src/cluster/shared-state.js';
import { loadConfig } from '../../src/config.js';
import { MemoryBudget, START_SHARE, cgroupMemoryLimit, heldWeight, memoryBudget } from '../../src/memory-budget.js';

const cgroup = fakeCgroup;

const GiB = 2 ** 30;

describe('memory budget', () => {
  it('reads a cgroup v2 limit, and "max" as none', () => {
    assert.equal(cgroupMemoryLimit(cgroup({ 'memory.max': String(1.5 * GiB) })), 1.5 * GiB);
    assert.equal(cgroupMemoryLimit(cgroup({ 'memory.max': 'max' })), undefined);
  });

  it('reads a cgroup v1 limit; no files: none', () => {
    assert.equal(cgroupMemoryLimit(cgroup({ 'memory/memory.limit_in_bytes': String(2 * GiB) })), 2 * GiB);
    assert.equal(cgroupMemoryLimit(cgroup({})), undefined);
  });

  it('derives half the cgroup limit, or of physical memory when there is none or it is larger', () => {
    assert.equal(memoryBudget(0, 1.5 * GiB, 32 * GiB), 0.75 * GiB, 'a 1.5 GiB pod on a 32 GiB node');
    assert.equal(memoryBudget(0, undefined, 8 * GiB), 4 * GiB, 'no limit: physical memory');
    // cgroup v1 without a limit reads as a page-rounded 2^63 - 1.
    const v1Unlimited = cgroupMemoryLimit(cgroup({ 'memory/memory.limit_in_bytes': '9223372036854771712' }));
    assert.equal(memoryBudget(0, v1Unlimited, 8 * GiB), 4 * GiB);
    assert.equal(memoryBudget(3 << 20, 1.5 * GiB, 32 * GiB), 3 << 20, 'a set budget wins');
  });

  it('MEMORY_BUDGET_BYTES=0 derives it; a set value wins; below 1 MiB stops start-up', () => {
    const derived = loadConfig({}, []).memoryBudgetBytes;
    assert.equal(derived, memoryBudget(0));
    assert.ok(derived > 0 && derived <= totalmem() / 2);
    assert.equal(loadConfig({ MEMORY_BUDGET_BYTES: String(2 << 20) }, []).memoryBudgetBytes, 2 << 20);
    assert.throws(() => loadConfig({ MEMORY_BUDGET_BYTES: '1000' }, []), /MEMORY_BUDGET_BYTES/);
    assert.throws(() => loadConfig({ MEMORY_BUDGET_BYTES: '-1' }, []), /MEMORY_BUDGET_BYTES/);
  });

  it('counts every worker\'s accounts in the shared table, each worker its own share, and releases them', () => {
    const primary = new SharedState(2);
    const a = new MemoryBudget(10_000, new SharedState(2, primary.buffer));
    const b = new MemoryBudget(10_000, new SharedState(2, primary.buffer));
    const mailbox = a.account();
    const stream = b.account();
    mailbox.add(3000);
    stream.set(4000);
    assert.deepEqual([primary.held, a.held, b.held, a.local, b.local], [7000, 7000, 7000, 3000, 4000]);
    assert.ok(a.fits(3000) && !a.fits(3001), 'the budget is the whole process\'s');
    stream.set(2500);
    assert.equal(b.held, 5500);
    stream.release();
    stream.set(9000); // a job still in flight when its stream ended: ignored
    mailbox.release();
    mailbox.add(-3000);
    assert.deepEqual([primary.held, a.local, b.local], [0, 0, 0]);
  });

  it('refuses new streams above 90 % of the budget', () => {
    const budget = new MemoryBudget(1000, new SharedState(1));
    const held = budget.account();
    held.set(START_SHARE * 1000);
    assert.ok(budget.admitsStream());
    held.add(1);
    assert.ok(!budget.admitsStream());
  });

  it('past 90 %, takes frames only from connections holding at most their share (the budget over the streams)', () => {
    const shared = new SharedState(1);
    const budget = new MemoryBudget(1000, shared);
    for (let i = 0; i < 4; i++) shared.streamStarted(); // a share is 250
    const flood = budget.account();
    const live = budget.account();
    flood.set(850);
    live.set(40);
    assert.ok(budget.admits(10, flood.held), 'within 90 %: anyone');
    assert.ok(!budget.admits(20, flood.held), 'into the last tenth: not the flood');
    assert.ok(budget.admits(20, live.held), 'a live stream within its share may');
    assert.ok(!budget.admits(111, live.held), 'nobody past the budget');
  });

  it('holds budgets past 2 GiB (64-bit count)', () => {
    const budget = new MemoryBudget(8 * GiB, new SharedState(1));
    const held = budget.account();
    held.set(3 * GiB);
    assert.equal(budget.held, 3 * GiB);
    held.release();
    assert.equal(budget.held, 0);
  });

  it('counts a wire byte at the larger of its size and its decoded size (16 kHz float32 per channel)', () => {
    assert.equal(heldWeight(32_000, 1), 2, '16 kHz 16-bit mono doubles when decoded');
    assert.equal(heldWeight(8000, 1), 8, '8 kHz mu-law');
    assert.equal(heldWeight(48_000 * 4 * 2, 2), 1, '48 kHz float stereo shrinks: its own size');
  });
});
