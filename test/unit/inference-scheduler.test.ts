// The model-job scheduler: bounded concurrency, live audio before audio ahead of real time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InferenceScheduler } from '../../src/pipeline/inference-scheduler.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('inference scheduler', () => {
  it('runs at most `slots` jobs at once', async () => {
    const scheduler = new InferenceScheduler(2);
    let running = 0;
    let peak = 0;
    const job = async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return 1;
    };
    const results = await Promise.all(Array.from({ length: 10 }, () => scheduler.run(0, job, () => false)));
    assert.deepEqual(results, Array<number>(10).fill(1));
    assert.equal(peak, 2);
    assert.equal(scheduler.waiting, 0);
  });

  it('gives the next free slot to the job least ahead of real time, ties in arrival order', async () => {
    const scheduler = new InferenceScheduler(1);
    const gate = deferred();
    const order: string[] = [];
    const blocker = scheduler.run(0, () => gate.promise, () => false);
    const jobs = [['upload', 40], ['live-a', -0.2], ['flood', 300], ['live-b', -0.2], ['late', -3]] as const;
    const done = jobs.map(([name, ahead]) => scheduler.run(ahead, () => { order.push(name); return Promise.resolve(); }, () => false));
    gate.resolve();
    await Promise.all([blocker, ...done]);
    assert.deepEqual(order, ['late', 'live-a', 'live-b', 'upload', 'flood']);
  });

  it('skips a cancelled job without running it, and frees its slot; a failing job rejects and frees its slot', async () => {
    const scheduler = new InferenceScheduler(1);
    let ran = false;
    assert.equal(await scheduler.run(0, () => { ran = true; return Promise.resolve(); }, () => true), undefined);
    assert.equal(ran, false);
    await assert.rejects(scheduler.run(0, () => Promise.reject(new Error('model failed')), () => false), /model failed/);
    await assert.rejects(scheduler.run(0, () => { throw new Error('threw'); }, () => false), /threw/);
    assert.equal(await scheduler.run(0, () => Promise.resolve(7), () => false), 7);
  });
});
