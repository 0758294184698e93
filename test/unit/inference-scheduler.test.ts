// The model-job scheduler: bounded concurrency, live audio before audio ahead of real time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFER_MS, InferenceScheduler, type StreamKey } from '../../src/pipeline/inference-scheduler.js';
import { TaskFailure } from '../../src/tasks.js';
import { SharedState } from '../../src/cluster/shared-state.js';

const S: StreamKey = { startedAt: 0 };

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('inference scheduler', () => {
  it('runs at most `slots` jobs at once', async () => {
    const scheduler = new InferenceScheduler({ slots: 2 });
    let running = 0;
    let peak = 0;
    const job = async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return 1;
    };
    const results = await Promise.all(Array.from({ length: 10 }, () => scheduler.run(0, job, () => false, S)));
    assert.deepEqual(results, Array<number>(10).fill(1));
    assert.equal(peak, 2);
    assert.equal(scheduler.waiting, 0);
  });

  it('gives the next free slot to the job least ahead of real time, ties in arrival order', async () => {
    const scheduler = new InferenceScheduler({ slots: 1 });
    const gate = deferred();
    const order: string[] = [];
    const blocker = scheduler.run(0, () => gate.promise, () => false, S);
    const jobs = [['upload', 40], ['live-a', -0.2], ['flood', 300], ['live-b', -0.2], ['late', -3]] as const;
    const done = jobs.map(([name, ahead]) => scheduler.run(ahead, () => { order.push(name); return Promise.resolve(); }, () => false, S));
    gate.resolve();
    await Promise.all([blocker, ...done]);
    assert.deepEqual(order, ['late', 'live-a', 'live-b', 'upload', 'flood']);
  });

  it('orders by deadline: a job that has waited long goes before a later one that was queued further behind', async () => {
    const clock = { t: 0 };
    const scheduler = new InferenceScheduler({ slots: 1, now: () => clock.t });
    const gate = deferred();
    const order: string[] = [];
    const blocker = scheduler.run(0, () => gate.promise, () => false, S);
    const job = (name: string) => () => { order.push(name); return Promise.resolve(); };
    const waited = scheduler.run(-0.05, job('queued at 0 s, 0.05 s behind'), () => false, S);
    clock.t = 3000;
    const fresh = scheduler.run(-0.1, job('queued at 3 s, 0.1 s behind'), () => false, S);
    const upload = scheduler.run(10, job('queued at 3 s, 10 s ahead'), () => false, S);
    gate.resolve();
    await Promise.all([blocker, waited, fresh, upload]);
    assert.deepEqual(order, ['queued at 0 s, 0.05 s behind', 'queued at 3 s, 0.1 s behind', 'queued at 3 s, 10 s ahead']);
  });

  it('skips a cancelled job without running it, and frees its slot; a failing job rejects and frees its slot', async () => {
    const scheduler = new InferenceScheduler({ slots: 1 });
    let ran = false;
    assert.equal(await scheduler.run(0, () => { ran = true; return Promise.resolve(); }, () => true, S), undefined);
    assert.equal(ran, false);
    await assert.rejects(scheduler.run(0, () => Promise.reject(new Error('model failed')), () => false, S), /model failed/);
    await assert.rejects(scheduler.run(0, () => { throw new Error('threw'); }, () => false, S), /threw/);
    assert.equal(await scheduler.run(0, () => Promise.resolve(7), () => false, S), 7);
  });

  describe('over capacity (MAX_INFERENCE_LAG_SECONDS)', () => {
    // A clock the test moves: lag is measured against it.
    function setup(maxLag: number): { scheduler: InferenceScheduler; clock: { t: number }; gate: ReturnType<typeof deferred> } {
      const clock = { t: 0 };
      const scheduler = new InferenceScheduler({ slots: 1, maxLagSeconds: maxLag, now: () => clock.t });
      return { scheduler, clock, gate: deferred() };
    }

    it('sheds the youngest waiting stream with OVERLOADED once the job furthest behind lags too much, and refuses new streams for 2 s', async () => {
      const { scheduler, clock, gate } = setup(5);
      const old: StreamKey = { startedAt: 0 };
      const mid: StreamKey = { startedAt: 1000 };
      const young: StreamKey = { startedAt: 2000 };
      // Jobs take 100 ms; then one takes 4.6 s: the mean run time becomes 1 s, so two waiting
      // jobs drain in 2 s, within half the 5 s bound: shedding the youngest stream is enough.
      await scheduler.run(0, () => { clock.t += 100; return Promise.resolve(); }, () => false, old);
      const blocker = scheduler.run(0, () => gate.promise, () => false, old);
      const ran: string[] = [];
      const job = (name: string) => () => { ran.push(name); return Promise.resolve(name); };
      const waiting = [
        scheduler.run(-1, job('old'), () => false, old),
        scheduler.run(-1, job('mid'), () => false, mid),
        scheduler.run(-0.5, job('young-1'), () => false, young),
        scheduler.run(-0.2, job('young-2'), () => false, young),
      ].map((p) => p.then((v) => v, (e: unknown) => e));
      assert.equal(scheduler.overloaded, false);
      clock.t = 4700; // the job furthest behind now lags 5.6 s
      gate.resolve();
      await blocker;
      const results = await Promise.all(waiting);
      assert.deepEqual(results.slice(0, 2), ['old', 'mid']);
      for (const r of results.slice(2)) {
        assert.ok(r instanceof TaskFailure && r.code === 'OVERLOADED', `the youngest stream's jobs are shed: ${String(r)}`);
      }
      assert.deepEqual(ran, ['old', 'mid'], 'a shed job never runs');
      assert.equal(scheduler.overloaded, true, 'new streams are refused right after a shed');
      clock.t = 4700 + 1999;
      assert.equal(scheduler.overloaded, true);
      clock.t = 4700 + 2000;
      assert.equal(scheduler.overloaded, false);
    });

    it('sheds as many of the youngest as the queue needs, never the oldest, nor the only stream waiting (BACKLOG handles that)', async () => {
      const { scheduler, clock, gate } = setup(1);
      const streams = [0, 1, 2].map((i): StreamKey => ({ startedAt: i }));
      const blocker = scheduler.run(0, () => gate.promise, () => false, streams[0]!);
      const outcomes = streams.map((st) => scheduler.run(-0.5, () => Promise.resolve('ran'), () => false, st).then((v) => v, (e: unknown) => (e as TaskFailure).code));
      clock.t = 1000; // 1.5 s behind now, and jobs take 1 s: more than half the 1 s bound each
      gate.resolve();
      await blocker;
      assert.deepEqual(await Promise.all(outcomes), ['ran', 'OVERLOADED', 'OVERLOADED'], 'all but the oldest shed');

      const alone = setup(1);
      const first = alone.scheduler.run(0, () => alone.gate.promise, () => false, streams[0]!);
      const behind = alone.scheduler.run(-5, () => Promise.resolve('ran'), () => false, streams[0]!);
      alone.clock.t = 10_000;
      alone.gate.resolve();
      await first;
      assert.equal(await behind, 'ran');
      assert.equal(alone.scheduler.overloaded, false);
    });

    it('never sheds with MAX_INFERENCE_LAG_SECONDS=0', async () => {
      const { scheduler, clock, gate } = setup(0);
      const blocker = scheduler.run(0, () => gate.promise, () => false, { startedAt: 0 });
      const late = [1, 2].map((i) => scheduler.run(-100, () => Promise.resolve(i), () => false, { startedAt: i }));
      clock.t = 1e6;
      gate.resolve();
      await blocker;
      assert.deepEqual(await Promise.all(late), [1, 2]);
    });

    it('workers share the process\'s slots, earliest deadline first across them (one SharedState buffer)', async () => {
      const buffer = new SharedState(2).buffer;
      const [a, b] = [new SharedState(2, buffer), new SharedState(2, buffer)];
      const clock = { t: 10_000 };
      const inA = new InferenceScheduler({ slots: 1, now: () => clock.t, share: a, party: 0 });
      const inB = new InferenceScheduler({ slots: 1, now: () => clock.t, share: b, party: 1 });
      const order: string[] = [];
      let running = 0;
      let peak = 0;
      const job = (name: string) => async () => {
        running++;
        peak = Math.max(peak, running);
        order.push(name);
        await new Promise((r) => setTimeout(r, 5));
        running--;
      };
      const gate = deferred();
      const blocker = inA.run(0, () => gate.promise, () => false, S); // the process's one slot
      const waiting = [
        inA.run(-0.5, job('A, 0.5 s behind'), () => false, S),
        inB.run(-1, job('B, 1 s behind'), () => false, S),
        inA.run(-0.2, job('A, 0.2 s behind'), () => false, S),
      ];
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(order, [], 'no slot for B while A holds the only one');
      gate.resolve();
      await Promise.all([blocker, ...waiting]);
      assert.deepEqual(order, ['B, 1 s behind', 'A, 0.5 s behind', 'A, 0.2 s behind'], 'A leaves the slot it freed to B, whose job is due first');
      assert.equal(peak, 1);
      assert.equal(a.tryAcquire(0, 0, 1), true, 'every slot was given back');
      a.release();

      // Within DEFER_MS of each other, a worker keeps the slot it freed: no handoff for jobs
      // that are all about on time.
      b.publish(1, clock.t - 150);
      assert.equal(a.tryAcquire(0, clock.t - 100, 1), true, `B's job is only 50 ms more urgent (DEFER_MS ${DEFER_MS})`);
      a.release();
      assert.equal(a.tryAcquire(0, clock.t - 100 + DEFER_MS + 1, 1), false, 'B\'s job is more than DEFER_MS more urgent');
      b.publish(1, Infinity);
    });

    it('a shed in one worker refuses new streams in every worker (one SharedState buffer)', async () => {
      const buffer = new SharedState(2).buffer; // the primary's; each worker wraps it in its own view
      const [a, b] = [new SharedState(2, buffer), new SharedState(2, buffer)];
      const clock = { t: 0 };
      const inA = new InferenceScheduler({ slots: 1, maxLagSeconds: 1, now: () => clock.t, share: a, party: 0 });
      const inB = new InferenceScheduler({ slots: 1, maxLagSeconds: 1, now: () => clock.t, share: b, party: 1 });
      assert.equal(b.msSinceShed(), Infinity);
      const gate = deferred();
      const blocker = inA.run(0, () => gate.promise, () => false, { startedAt: 0 });
      const outcomes = [0, 1].map((i) => inA.run(-2, () => Promise.resolve('ran'), () => false, { startedAt: i }).then((v) => v, (e: unknown) => (e as TaskFailure).code));
      gate.resolve();
      await blocker;
      assert.deepEqual(await Promise.all(outcomes), ['ran', 'OVERLOADED']);
      assert.equal(inB.overloaded, true, 'the worker that shed nothing refuses too');
      assert.ok(b.msSinceShed() < 1000);
    });
  });
});
