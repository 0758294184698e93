// The inference scheduler: bounded model jobs, each a batch of utterances; finals before
// interims; earliest deadline first, where a stream's lateness is no claim to go first; graceful
// overload (bursts absorbed, the youngest shed only when lag persists, new streams refused first).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFER_MS, INTERIM_MAX_WAIT_MS, InferenceScheduler, type BatchRunner, type InferenceRequest, type StreamKey } from '../../src/pipeline/inference-scheduler.js';
import type { ModelBatchOutput } from '../../src/native/binding.js';
import { TaskFailure } from '../../src/tasks.js';
import { SharedState } from '../../src/cluster/shared-state.js';

const S: StreamKey = { startedAt: 0 };

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

/** A model whose items answer with their sample count as text; each batch waits for `gate` if set. */
class FakeModel {
  readonly batches: string[][] = [];
  readonly drafts: (number[] | undefined)[][] = [];
  gate: Promise<void> | undefined;
  running = 0;
  peak = 0;
  fail: ((name: string) => Error | undefined) | undefined;

  readonly run: BatchRunner = async (samples, drafts) => {
    const names = samples.map((s) => name(s));
    this.batches.push(names);
    this.drafts.push(drafts.map((d) => (d ? [...d] : undefined)));
    this.running++;
    this.peak = Math.max(this.peak, this.running);
    await (this.gate ?? new Promise((r) => setTimeout(r, 2)));
    this.running--;
    const items: ModelBatchOutput['items'] = names.map((n) => {
      const error = this.fail?.(n);
      if (error) return Object.assign(error, { code: 'MODEL_FAILURE' as const });
      return { text: n, ids: Int32Array.of(n.length), decoderCalls: 1 };
    });
    return { items, waitSeconds: 0, runSeconds: 0.01 * names.length };
  };
}

// Requests carry their name in their samples' length, as char codes: the fake model reads it back.
function named(label: string): Float32Array {
  return Float32Array.from(label, (c) => c.charCodeAt(0));
}
function name(samples: Float32Array): string {
  return String.fromCharCode(...samples);
}

function request(label: string, over: Partial<InferenceRequest> = {}): InferenceRequest {
  return { samples: named(label), interim: false, aheadSeconds: 0, stream: S, cancelled: () => false, ...over };
}

describe('inference scheduler', () => {
  it('runs at most `slots` model jobs at once, and batches what waits meanwhile (up to maxRows)', async () => {
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 1, maxRows: 4, runBatch: model.run });
    const gate = deferred();
    model.gate = gate.promise;
    const first = scheduler.submit(request('first'));
    const rest = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => scheduler.submit(request(n)));
    assert.equal(scheduler.waiting, 6);
    model.gate = undefined;
    gate.resolve();
    const texts = (await Promise.all([first, ...rest])).map((r) => r?.text);
    assert.deepEqual(texts, ['first', 'a', 'b', 'c', 'd', 'e', 'f'], 'each request gets its own answer');
    assert.deepEqual(model.batches, [['first'], ['a', 'b', 'c', 'd'], ['e', 'f']]);
    assert.equal(model.peak, 1);
    assert.equal(scheduler.waiting, 0);
    const result = await scheduler.submit(request('solo'));
    assert.equal(result?.rows, 1);
    assert.equal(result?.costSeconds, result?.runSeconds, 'a lone row costs its whole run');
  });

  it('a job holds utterances the model decodes as one group (lengths within maxPadSamples); the others take the next slot', async () => {
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 1, maxRows: 8, maxPadSamples: 3, runBatch: model.run });
    const gate = deferred();
    model.gate = gate.promise;
    const blocker = scheduler.submit(request('blocker'));
    const waiting = ['aa', 'abcdefgh', 'bbb', 'cdefghijk', 'c'].map((n) => scheduler.submit(request(n)));
    model.gate = undefined;
    gate.resolve();
    await Promise.all([blocker, ...waiting]);
    assert.deepEqual(model.batches, [['blocker'], ['aa', 'bbb', 'c'], ['abcdefgh', 'cdefghijk']]);
  });

  it('passes each request\'s draft to the model with it', async () => {
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 1, runBatch: model.run });
    await scheduler.submit(request('x', { draft: Int32Array.of(5, 6) }));
    await scheduler.submit(request('y'));
    assert.deepEqual(model.drafts, [[[5, 6]], [undefined]]);
  });

  it('orders by deadline; a stream behind real time is due when it is queued, not in the past', async () => {
    const clock = { t: 0 };
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 1, maxRows: 1, runBatch: model.run, now: () => clock.t });
    const gate = deferred();
    model.gate = gate.promise;
    const blocker = scheduler.submit(request('blocker'));
    const live = scheduler.submit(request('live, on time'));
    clock.t = 100;
    const late = scheduler.submit(request('stalled client, 30 s behind', { aheadSeconds: -30 }));
    const upload = scheduler.submit(request('upload, 40 s ahead', { aheadSeconds: 40 }));
    const live2 = scheduler.submit(request('live, later'));
    model.gate = undefined;
    gate.resolve();
    await Promise.all([blocker, live, late, upload, live2]);
    assert.deepEqual(model.batches.flat(), ['blocker', 'live, on time', 'stalled client, 30 s behind', 'live, later', 'upload, 40 s ahead']);
    assert.equal(scheduler.lagSeconds, 0);
  });

  it('finals before interims: a batch fills with interims only when no final waits; an interim submitted while finals wait is skipped', async () => {
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 1, maxRows: 3, runBatch: model.run });
    const gate = deferred();
    model.gate = gate.promise;
    const blocker = scheduler.submit(request('blocker'));
    const interim1 = scheduler.submit(request('i1', { interim: true }));
    const final1 = scheduler.submit(request('f1'));
    const skipped = scheduler.submit(request('i2', { interim: true })); // f1 waits
    const final2 = scheduler.submit(request('f2'));
    model.gate = undefined;
    gate.resolve();
    const [, i1, f1, i2, f2] = await Promise.all([blocker, interim1, final1, skipped, final2]);
    assert.equal(i2, undefined, 'skipped, not queued');
    assert.deepEqual([i1?.text, f1?.text, f2?.text], ['i1', 'f1', 'f2']);
    assert.deepEqual(model.batches, [['blocker'], ['f1', 'f2'], ['i1']], 'interims in a job of their own, after the finals');
  });

  it('a batch holds interims in at most a quarter of its rows (a final never waits behind a long batch of them), the freshest first', async () => {
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 1, maxRows: 8, runBatch: model.run });
    const gate = deferred();
    model.gate = gate.promise;
    const blocker = scheduler.submit(request('blocker'));
    const interims = ['i1', 'i2', 'i3', 'i4', 'i5'].map((n) => scheduler.submit(request(n, { interim: true })));
    model.gate = undefined;
    gate.resolve();
    await Promise.all([blocker, ...interims]);
    assert.deepEqual(model.batches, [['blocker'], ['i5', 'i4'], ['i3', 'i2'], ['i1']]);
  });

  it('interims take any free slot while no final waits; a final takes the next slot to free, before every interim', async () => {
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 2, maxRows: 4, runBatch: model.run });
    const first = deferred();
    const second = deferred();
    model.gate = first.promise;
    const i1 = scheduler.submit(request('i1', { interim: true }));
    model.gate = second.promise;
    const i2 = scheduler.submit(request('i2', { interim: true }));
    const i3 = scheduler.submit(request('i3', { interim: true }));
    assert.equal(model.running, 2, 'interims run in both slots');
    const final = scheduler.submit(request('final'));
    model.gate = undefined;
    first.resolve();
    await i1;
    assert.deepEqual(model.batches, [['i1'], ['i2'], ['final']], 'the final before the waiting interim');
    second.resolve();
    await Promise.all([final, i2, i3]);
    assert.deepEqual(model.batches, [['i1'], ['i2'], ['final'], ['i3']]);
  });

  it('withdraw: a waiting request resolves undefined at once and never runs', async () => {
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 1, runBatch: model.run });
    const gate = deferred();
    model.gate = gate.promise;
    const blocker = scheduler.submit(request('blocker'));
    const interim = request('interim', { interim: true });
    const withdrawn = scheduler.submit(interim);
    scheduler.withdraw(interim);
    assert.equal(await withdrawn, undefined);
    assert.equal(scheduler.waiting, 0);
    model.gate = undefined;
    gate.resolve();
    await blocker;
    assert.deepEqual(model.batches, [['blocker']]);
  });

  it(`skips an interim that waited more than ${INTERIM_MAX_WAIT_MS} ms; a cancelled request never reaches the model`, async () => {
    const clock = { t: 0 };
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 1, runBatch: model.run, now: () => clock.t });
    const gate = deferred();
    model.gate = gate.promise;
    const blocker = scheduler.submit(request('blocker'));
    const stale = scheduler.submit(request('stale interim', { interim: true }));
    const gone = scheduler.submit(request('client left', { cancelled: () => true }));
    clock.t = INTERIM_MAX_WAIT_MS + 1;
    model.gate = undefined;
    gate.resolve();
    assert.deepEqual(await Promise.all([stale, gone]), [undefined, undefined]);
    await blocker;
    assert.deepEqual(model.batches, [['blocker']]);
  });

  it('an item the model fails rejects alone; a failed job rejects its batch; both free the slot', async () => {
    const model = new FakeModel();
    const scheduler = new InferenceScheduler({ slots: 1, runBatch: model.run });
    const gate = deferred();
    model.gate = gate.promise;
    const blocker = scheduler.submit(request('blocker'));
    model.fail = (n) => (n === 'bad' ? new Error('model failed on bad') : undefined);
    const good = scheduler.submit(request('good'));
    const bad = scheduler.submit(request('bad'));
    model.gate = undefined;
    gate.resolve();
    await blocker;
    assert.equal((await good)?.text, 'good');
    await assert.rejects(bad, /model failed on bad/);

    const broken = new InferenceScheduler({ slots: 1, runBatch: () => Promise.reject(new Error('job failed')) });
    await assert.rejects(broken.submit(request('x')), /job failed/);
    const throwing = new InferenceScheduler({ slots: 1, runBatch: () => { throw new Error('threw'); } });
    await assert.rejects(throwing.submit(request('x')), /threw/);
    await assert.rejects(throwing.submit(request('y')), /threw/, 'the slot was given back');
  });

  describe('over capacity (MAX_INFERENCE_LAG_SECONDS)', () => {
    // A clock the test moves: lag is measured against it.
    function setup(maxLag: number, maxRows = 1): { scheduler: InferenceScheduler; clock: { t: number }; model: FakeModel; gate: ReturnType<typeof deferred> } {
      const clock = { t: 0 };
      const model = new FakeModel();
      const gate = deferred();
      model.gate = gate.promise;
      const scheduler = new InferenceScheduler({ slots: 1, maxRows, maxLagSeconds: maxLag, now: () => clock.t, runBatch: model.run });
      return { scheduler, clock, model, gate };
    }

    it('refuses new streams while a final waits more than 1 s, before anything is shed', async () => {
      const { scheduler, clock, model, gate } = setup(5);
      const blocker = scheduler.submit(request('blocker'));
      const waiting = scheduler.submit(request('waiting'));
      assert.equal(scheduler.admits(), true);
      clock.t = 1500;
      assert.equal(scheduler.lagSeconds, 1.5);
      assert.equal(scheduler.admits(), false, 'the engine is behind: a new stream would make it later');
      model.gate = undefined;
      gate.resolve();
      await Promise.all([blocker, waiting]);
      assert.equal(scheduler.admits(), true);
    });

    it('refuses new streams while the model slots have been saturated for ~10 s, and takes them again once they are not', async () => {
      const { scheduler, clock, model, gate } = setup(0);
      const busy = scheduler.submit(request('a batch that runs 20 s'));
      clock.t = 20_000;
      assert.ok(scheduler.busyFraction > 0.95, `busy ${scheduler.busyFraction}`);
      assert.equal(scheduler.lagSeconds, 0, 'nothing waits: only the saturation refuses');
      assert.equal(scheduler.admits(), false);
      model.gate = undefined;
      gate.resolve();
      await busy;
      clock.t = 40_000;
      assert.ok(scheduler.busyFraction < 0.05, `busy ${scheduler.busyFraction}`);
      assert.equal(scheduler.admits(), true);
    });

    it('time a request spent queued behind its stream\'s earlier ones counts as the engine\'s lateness', async () => {
      const { scheduler, model, gate } = setup(5);
      const blocker = scheduler.submit(request('blocker'));
      const waiting = scheduler.submit(request('queued 2 s ago in its channel', { queuedSecondsAgo: 2 }));
      assert.equal(scheduler.lagSeconds, 2);
      assert.equal(scheduler.admits(), false);
      model.gate = undefined;
      gate.resolve();
      await Promise.all([blocker, waiting]);
    });

    it('sheds the youngest waiting streams with OVERLOADED once the oldest final lags too much, and refuses new streams for 2 s', async () => {
      const { scheduler, clock, model, gate } = setup(5);
      const old: StreamKey = { startedAt: 0 };
      const mid: StreamKey = { startedAt: 1000 };
      const young: StreamKey = { startedAt: 2000 };
      const blocker = scheduler.submit(request('blocker', { stream: old }));
      const waiting = [
        scheduler.submit(request('old', { stream: old })),
        scheduler.submit(request('mid', { stream: mid })),
        scheduler.submit(request('young-1', { stream: young })),
        scheduler.submit(request('young-2', { stream: young })),
      ].map((p) => p.then((v) => v?.text, (e: unknown) => e));
      clock.t = 5100; // the oldest final now lags 5.1 s; the blocker took 5.1 s a row
      model.gate = undefined;
      gate.resolve();
      await blocker;
      const results = await Promise.all(waiting);
      assert.deepEqual(results.slice(0, 1), ['old']);
      const shed = results.filter((r) => r instanceof TaskFailure && r.code === 'OVERLOADED').length;
      assert.ok(shed >= 2 && shed <= 3, `the youngest are shed, never the oldest: ${results.map(String).join(', ')}`);
      assert.ok(results[3] instanceof TaskFailure, 'the youngest stream first');
      assert.ok(!model.batches.flat().includes('young-1') && !model.batches.flat().includes('young-2'), 'a shed request never runs');
      assert.equal(scheduler.admits(), false, 'new streams are refused right after a shed');
      clock.t = 5100 + 1999;
      assert.equal(scheduler.admits(), false);
      clock.t = 5100 + 2000;
      assert.equal(scheduler.admits(), true);
    });

    it('a stream that fell behind real time does not get others shed', async () => {
      const { scheduler, clock, model, gate } = setup(1);
      const blocker = scheduler.submit(request('blocker', { stream: { startedAt: 0 } }));
      // A client that stalled for 30 s and caught up: its audio is 30 s late, its requests are new.
      const late = scheduler.submit(request('late stream', { stream: { startedAt: 0 }, aheadSeconds: -30 }));
      const young = scheduler.submit(request('young stream', { stream: { startedAt: 5 } }));
      clock.t = 500;
      model.gate = undefined;
      gate.resolve();
      assert.deepEqual((await Promise.all([blocker, late, young])).map((r) => r?.text), ['blocker', 'late stream', 'young stream']);
      assert.equal(scheduler.admits(), true);
    });

    it('a burst is absorbed: a queue that drains within the bound sheds nothing, thanks to batching', async () => {
      const { scheduler, clock, model, gate } = setup(2, 16);
      const blocker = scheduler.submit(request('blocker'));
      const burst = Array.from({ length: 40 }, (_, i) => scheduler.submit(request(`s${i}`, { stream: { startedAt: i } })));
      clock.t = 1500; // every final 1.5 s late: behind, not over the 2 s bound
      model.gate = undefined;
      gate.resolve();
      const results = await Promise.all([blocker, ...burst]);
      assert.equal(results.filter((r) => r === undefined).length, 0);
      assert.deepEqual(model.batches.slice(1).map((b) => b.length), [16, 16, 8]);
    });

    it('never sheds with MAX_INFERENCE_LAG_SECONDS=0', async () => {
      const { scheduler, clock, model, gate } = setup(0);
      const blocker = scheduler.submit(request('blocker'));
      const late = [1, 2].map((i) => scheduler.submit(request(`s${i}`, { stream: { startedAt: i } })));
      clock.t = 1e6;
      model.gate = undefined;
      gate.resolve();
      await blocker;
      assert.deepEqual((await Promise.all(late)).map((r) => r?.text), ['s1', 's2']);
    });
  });

  describe('worker threads (one SharedState buffer)', () => {
    it('share the process\'s slots, earliest final first across them', async () => {
      const buffer = new SharedState(2).buffer;
      const [a, b] = [new SharedState(2, buffer), new SharedState(2, buffer)];
      const clock = { t: 10_000 };
      const model = new FakeModel();
      const inA = new InferenceScheduler({ slots: 1, maxRows: 1, now: () => clock.t, share: a, party: 0, runBatch: model.run });
      const inB = new InferenceScheduler({ slots: 1, maxRows: 1, now: () => clock.t, share: b, party: 1, runBatch: model.run });
      const gate = deferred();
      model.gate = gate.promise;
      const blocker = inA.submit(request('blocker')); // the process's one slot
      model.gate = undefined;
      const waiting = [
        inA.submit(request('A, due now', { aheadSeconds: 0 })),
        inB.submit(request('B, due 1 s ago', { aheadSeconds: 0 })),
      ];
      clock.t = 10_000; // B queued at the same moment; move B's deadline earlier by queueing it first
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(model.batches, [['blocker']], 'no slot for B while A holds the only one');
      gate.resolve();
      await Promise.all([blocker, ...waiting]);
      assert.equal(model.peak, 1);
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

    it('a shed in one worker refuses new streams in every worker', async () => {
      const buffer = new SharedState(2).buffer; // the primary's; each worker wraps it in its own view
      const [a, b] = [new SharedState(2, buffer), new SharedState(2, buffer)];
      const clock = { t: 0 };
      const model = new FakeModel();
      const gate = deferred();
      model.gate = gate.promise;
      const inA = new InferenceScheduler({ slots: 1, maxRows: 1, maxLagSeconds: 1, now: () => clock.t, share: a, party: 0, runBatch: model.run });
      const inB = new InferenceScheduler({ slots: 1, maxLagSeconds: 1, now: () => clock.t, share: b, party: 1, runBatch: model.run });
      assert.equal(b.msSinceShed(), Infinity);
      const blocker = inA.submit(request('blocker'));
      const outcomes = [0, 1].map((i) => inA.submit(request(`s${i}`, { stream: { startedAt: i } })).then((v) => v?.text, (e: unknown) => (e as TaskFailure).code));
      clock.t = 2000;
      model.gate = undefined;
      gate.resolve();
      await blocker;
      assert.deepEqual(await Promise.all(outcomes), ['s0', 'OVERLOADED']);
      assert.equal(inB.admits(), false, 'the worker that shed nothing refuses too');
      assert.ok(b.msSinceShed() < 1000);
    });
  });
});
