// The model channel: one channel's windows of audio in, its segment events out, in order. At most
// one request per channel is with the inference scheduler; the rest wait in a queue bounded in
// seconds of audio (BACKLOG beyond it); a newer interim replaces a queued one, a final makes its
// utterance's interims moot; each interim's tokens are the draft of the next request on the same
// utterance; failures come back as values (error events, or the stream failed when shed).
// A real InferenceScheduler runs a fake model that answers with a fingerprint of its audio.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InferenceScheduler } from '../../src/pipeline/inference-scheduler.js';
import { SAMPLE_RATE } from '../../src/audio-format.js';
import { ModelChannel } from '../../src/pipeline/model-channel.js';
import type { ServerEvent } from '../../src/protocol.js';
import { TaskFailure } from '../../src/tasks.js';
import { FakeModel, fingerprint, nativeError, recordingTrace, settleAll, testMetrics } from '../helpers/pipeline-fakes.js';
import { seededRandom } from '../helpers/signal.js';

type Window = Parameters<ModelChannel['enqueue']>[0];
type Segment = Extract<ServerEvent, { type: 'segment' }>;

/** The stream's audio: noise, so that any two different runs of it differ. */
const AUDIO = (() => {
  const random = seededRandom(11);
  return Float32Array.from({ length: 20 * SAMPLE_RATE }, () => random() - 0.5);
})();

/** The window of stream samples [start, end) of AUDIO. */
function win(start: number, end: number, extra: Partial<Window> = {}): Window {
  return { samples: AUDIO.slice(start, end), start, end, ...extra };
}

const final = (utterance: number, start: number, end: number): Window => win(start, end, { utterance, isFinal: true });
const interim = (utterance: number, start: number, end: number): Window => win(start, end, { utterance, isFinal: false });

interface Harness {
  model: FakeModel;
  scheduler: InferenceScheduler;
  channel: ModelChannel;
  events: ServerEvent[];
  failures: TaskFailure[];
  trace: ReturnType<typeof recordingTrace>;
  /** Calls of afterResult. */
  results: () => number;
  /** Another channel (of another stream, started at `startedAt`) on the same scheduler. */
  other: (index: number, startedAt?: number) => { channel: ModelChannel; events: ServerEvent[] };
}

function harness(options: { slots?: number; maxRows?: number; backlog?: number; now?: () => number; maxLagSeconds?: number; startedAt?: number } = {}): Harness {
  const model = new FakeModel();
  const scheduler = new InferenceScheduler({ slots: options.slots ?? 1, maxRows: options.maxRows ?? 1, runBatch: model.run, now: options.now, maxLagSeconds: options.maxLagSeconds });
  const metrics = testMetrics();
  const make = (index: number, startedAt: number, events: ServerEvent[], failures: TaskFailure[], trace: ReturnType<typeof recordingTrace>, afterResult: () => void): ModelChannel =>
    new ModelChannel(index, options.backlog ?? 60 * SAMPLE_RATE, {
      model: { scheduler }, emit: (e) => events.push(e), fail: (f) => failures.push(f), metrics, trace, stream: { startedAt },
    }, afterResult);
  const events: ServerEvent[] = [];
  const failures: TaskFailure[] = [];
  const trace = recordingTrace();
  let results = 0;
  const channel = make(0, options.startedAt ?? performance.now(), events, failures, trace, () => results++);
  return {
    model, scheduler, channel, events, failures, trace,
    results: () => results,
    other: (index, startedAt = performance.now()) => {
      const otherEvents: ServerEvent[] = [];
      return { channel: make(index, startedAt, otherEvents, [], recordingTrace(), () => {}), events: otherEvents };
    },
  };
}

const segments = (events: ServerEvent[]): Segment[] => events.filter((e): e is Segment => e.type === 'segment');

/** What each segment says, in a line: which audio, final or interim, and whether its text is that audio's. */
function describeSegments(events: ServerEvent[]): string[] {
  return segments(events).map((e) => {
    const start = Math.round(e.start_time * SAMPLE_RATE);
    const end = Math.round(e.end_time * SAMPLE_RATE);
    const kind = e.is_final === undefined ? 'window' : e.is_final ? 'final' : 'interim';
    const text = e.text === fingerprint(AUDIO.subarray(start, end)) ? 'its audio' : `WRONG TEXT ${e.text}`;
    return `${kind} ${start}-${end}: ${text}`;
  });
}

describe('model channel', () => {
  it('emits one segment per window, in the order queued, each answering its own audio, times in seconds', async () => {
    const h = harness({ slots: 4, maxRows: 4 });
    const bounds = [[0, 16000], [16000, 20000], [20000, 52000], [52000, 52001], [52001, 60000]] as const;
    for (const [a, b] of bounds) h.channel.enqueue(win(a, b));
    await h.channel.drained();
    assert.deepEqual(describeSegments(h.events), bounds.map(([a, b]) => `window ${a}-${b}: its audio`));
    const first = segments(h.events)[0]!;
    assert.deepEqual({ ...first, text: undefined }, { type: 'segment', channel: 0, start_time: 0, end_time: 1, text: undefined });
    assert.equal(h.results(), bounds.length, 'afterResult after each result');
  });

  it('keeps one request with the scheduler at a time: its windows never share a batch nor run at once, though the slots would allow it', async () => {
    const h = harness({ slots: 4, maxRows: 4 });
    h.model.hold();
    for (let i = 0; i < 6; i++) h.channel.enqueue(win(i * 1000, (i + 1) * 1000));
    await settleAll();
    assert.equal(h.model.batches.length, 1, 'the rest wait in the channel, not in the scheduler');
    assert.equal(h.scheduler.waiting, 0);
    h.model.release();
    await h.channel.drained();
    assert.equal(h.model.peak, 1);
    assert.deepEqual(h.model.batches.map((b) => b.length), [1, 1, 1, 1, 1, 1]);
  });

  it('channels sharing a scheduler batch together, one row each, and each stays in its own order', async () => {
    const h = harness({ slots: 1, maxRows: 8 });
    const others = [1, 2, 3].map((i) => h.other(i));
    h.model.hold();
    h.channel.enqueue(win(0, 100)); // takes the slot
    const all = [h.channel, ...others.map((o) => o.channel)];
    for (let k = 1; k <= 3; k++) all.forEach((c, i) => c.enqueue(win(k * 1000 + i * 10, k * 1000 + i * 10 + 500)));
    await settleAll();
    h.model.release();
    await Promise.all(all.map((c) => c.drained()));
    assert.ok(h.model.batches.some((b) => b.length > 1), `batched: ${h.model.batches.map((b) => b.length).join(',')}`);
    for (const batch of h.model.batches) assert.ok(batch.length <= all.length, 'at most one row per channel');
    assert.deepEqual(describeSegments(h.events), ['window 0-100: its audio', 'window 1000-1500: its audio', 'window 2000-2500: its audio', 'window 3000-3500: its audio']);
    others.forEach((o, i) => {
      assert.deepEqual(segments(o.events).map((e) => [e.channel, Math.round(e.start_time * SAMPLE_RATE)]), [1, 2, 3].map((k) => [i + 1, k * 1000 + (i + 1) * 10]));
    });
  });

  it('a segmented window says whether it is final; a simple-route window has no is_final', async () => {
    const h = harness();
    for (const w of [win(0, 10), interim(1, 10, 20), final(1, 10, 30)]) {
      h.channel.enqueue(w);
      await h.channel.drained();
    }
    assert.deepEqual(segments(h.events).map((e) => e.is_final), [undefined, false, true]);
    assert.ok(!('is_final' in segments(h.events)[0]!));
  });

  it('a newer interim replaces a queued interim of the same utterance; another utterance\'s is kept', async () => {
    const h = harness();
    h.model.hold();
    h.channel.enqueue(final(1, 0, 1000)); // running
    h.channel.enqueue(interim(2, 2000, 3000));
    h.channel.enqueue(interim(2, 2000, 4000)); // replaces the one before
    h.channel.enqueue(interim(3, 5000, 6000));
    h.model.release();
    await h.channel.drained();
    assert.deepEqual(describeSegments(h.events), ['final 0-1000: its audio', 'interim 2000-4000: its audio', 'interim 5000-6000: its audio']);
  });

  it('a final drops its utterance\'s queued interims, yet one already running arrives first: no interim ever follows its final', async () => {
    const h = harness();
    h.model.hold();
    h.channel.enqueue(interim(1, 0, 8000)); // running
    await settleAll();
    h.channel.enqueue(interim(1, 0, 16000)); // queued, moot once the final comes
    h.channel.enqueue(final(1, 0, 20000));
    h.model.release();
    await h.channel.drained();
    assert.deepEqual(describeSegments(h.events), ['interim 0-8000: its audio', 'final 0-20000: its audio']);
  });

  it('a final withdraws its utterance\'s interim still waiting in the scheduler: the model never runs it', async () => {
    const h = harness({ slots: 1 });
    const busy = h.other(1);
    h.model.hold();
    busy.channel.enqueue(win(0, 100)); // another channel holds the one slot
    await settleAll();
    h.channel.enqueue(interim(1, 0, 8000)); // submitted, waiting for the slot
    await settleAll();
    assert.equal(h.scheduler.waiting, 1);
    h.channel.enqueue(final(1, 0, 12000));
    await settleAll();
    h.model.release();
    await Promise.all([h.channel.drained(), busy.channel.drained()]);
    assert.deepEqual(describeSegments(h.events), ['final 0-12000: its audio']);
    assert.deepEqual(h.model.rows, [fingerprint(AUDIO.subarray(0, 100)), fingerprint(AUDIO.subarray(0, 12000))]);
    assert.ok(h.trace.spans.includes('model_inference: CANCELLED'), 'its span says it was cancelled');
  });

  it('passes the latest interim\'s tokens as the draft of the next request on the same utterance, and none across utterances', async () => {
    const h = harness();
    const sequence = [interim(1, 0, 8000), interim(1, 0, 16000), final(1, 0, 20000), interim(2, 30000, 38000), final(2, 30000, 41000), final(3, 50000, 51000)];
    for (const w of sequence) {
      h.channel.enqueue(w);
      await h.channel.drained(); // one at a time, so that no interim is replaced
    }
    // The fake model's tokens are [the answered audio's sample count].
    assert.deepEqual(h.model.drafts, [undefined, [8000], [16000], undefined, [8000], undefined]);
  });

  describe('limits', () => {
    it('a window that would take the queue past its bound throws BACKLOG (not a panic) and is not queued; the one running does not count', async () => {
      const h = harness({ backlog: 1000 });
      h.model.hold();
      h.channel.enqueue(win(0, 900)); // running
      h.channel.enqueue(win(900, 1500)); // queued: 600
      assert.throws(() => h.channel.enqueue(win(1500, 2000)), (e: unknown) => e instanceof TaskFailure && e.code === 'BACKLOG' && !e.panicked && /waiting for the model/.test(e.message));
      assert.throws(() => h.channel.enqueue(final(1, 1500, 2000)), (e: unknown) => e instanceof TaskFailure && e.code === 'BACKLOG');
      h.channel.enqueue(win(1500, 1900)); // exactly to the bound
      h.model.release();
      await h.channel.drained();
      assert.deepEqual(describeSegments(h.events), ['window 0-900: its audio', 'window 900-1500: its audio', 'window 1500-1900: its audio']);
      assert.deepEqual(h.failures, [], 'throwing is the caller\'s to report');
    });

    it('an interim that would pass the bound is shed quietly: nothing thrown, the stream goes on', async () => {
      const h = harness({ backlog: 1000 });
      h.model.hold();
      h.channel.enqueue(win(0, 500));
      h.channel.enqueue(final(1, 500, 1200)); // queued: 700
      h.channel.enqueue(interim(2, 1200, 1600)); // would make 1100
      h.channel.enqueue(final(2, 1200, 1400)); // 900: fits
      h.model.release();
      await h.channel.drained();
      assert.deepEqual(describeSegments(h.events), ['window 0-500: its audio', 'final 500-1200: its audio', 'final 1200-1400: its audio']);
    });
  });

  it('pendingFrom: where the earliest final still waiting for its result starts; interims never hold it back; undefined when none waits', async () => {
    const h = harness();
    assert.equal(h.channel.pendingFrom, undefined);
    h.model.hold();
    h.channel.enqueue(interim(1, 100, 900)); // running
    assert.equal(h.channel.pendingFrom, undefined, 'an interim in flight');
    h.channel.enqueue(final(1, 100, 1000));
    h.channel.enqueue(final(2, 2000, 3000));
    assert.equal(h.channel.pendingFrom, 100);
    h.model.release();
    await h.channel.drained();
    assert.equal(h.channel.pendingFrom, undefined);
    h.model.hold();
    h.channel.enqueue(final(3, 4000, 5000));
    await settleAll();
    assert.equal(h.channel.pendingFrom, 4000, 'a final in flight');
    h.model.release();
    await h.channel.drained();
  });

  it('drained resolves at once when idle, and otherwise only once every queued window has its event', async () => {
    const h = harness();
    await h.channel.drained();
    h.model.hold();
    for (let i = 0; i < 3; i++) h.channel.enqueue(win(i * 100, (i + 1) * 100));
    let drained = false;
    const waiting = h.channel.drained().then(() => { drained = true; });
    await settleAll();
    assert.equal(drained, false);
    h.model.release();
    await waiting;
    assert.equal(segments(h.events).length, 3);
  });

  describe('failures are values', () => {
    it('an item the model fails becomes an error event (MODEL_FAILURE, naming its times) and the next windows go on', async () => {
      const h = harness();
      h.model.failItem = (s) => (s.length === 8000 ? nativeError('MODEL_FAILURE', 'injected') : undefined);
      h.channel.enqueue(final(1, 0, 4000));
      h.channel.enqueue(final(2, 16000, 24000));
      h.channel.enqueue(final(3, 32000, 36000));
      await h.channel.drained();
      assert.deepEqual(h.events.map((e) => e.type), ['segment', 'error', 'segment']);
      const error = h.events[1]!;
      assert.ok(error.type === 'error');
      assert.equal(error.code, 'MODEL_FAILURE');
      assert.equal(error.channel, 0);
      assert.match(error.message, /1\.000-1\.500 s.*injected/);
      assert.deepEqual(h.failures, [], 'the stream is not failed');
      assert.equal(h.results(), 3);
    });

    it('a panic (a native one, or an untyped exception in the job) is NATIVE_PANIC; any other failed job is INTERNAL; the stream goes on', async () => {
      const h = harness();
      const outcomes: string[] = [];
      for (const [failItem, failJob] of [
        [() => nativeError('NATIVE_PANIC', 'boom'), undefined],
        [undefined, new Error('an untyped exception')],
        [undefined, nativeError('BUSY', 'refused')],
        [undefined, undefined],
      ] as const) {
        h.model.failItem = failItem;
        h.model.failJob = failJob;
        h.channel.enqueue(win(outcomes.length * 100, outcomes.length * 100 + 100));
        await h.channel.drained();
        const last = h.events.at(-1)!;
        outcomes.push(last.type === 'error' ? last.code : last.type);
      }
      assert.deepEqual(outcomes, ['NATIVE_PANIC', 'NATIVE_PANIC', 'INTERNAL', 'segment']);
      assert.deepEqual(h.failures, []);
    });

    it('a stream shed by the scheduler (OVERLOADED) is failed, without an error event', async () => {
      const clock = { t: 0 };
      const now = performance.now();
      const h = harness({ slots: 1, maxRows: 1, now: () => clock.t, maxLagSeconds: 1, startedAt: now }); // the youngest stream
      const busy = h.other(1, now - 20_000);
      const older = h.other(2, now - 10_000);
      h.model.hold();
      busy.channel.enqueue(win(0, 100)); // holds the one slot
      await settleAll();
      h.channel.enqueue(final(1, 0, 200)); // waits
      await settleAll();
      clock.t = 5000; // the waiting final is now 5 s late
      older.channel.enqueue(win(0, 300)); // a second stream waiting: the scheduler sheds the youngest
      await settleAll();
      assert.deepEqual(h.failures.map((f) => f.code), ['OVERLOADED']);
      h.model.release();
      await Promise.all([h.channel.drained(), busy.channel.drained(), older.channel.drained()]);
      assert.deepEqual(h.events, [], 'no error event: the session ends the stream');
      assert.ok(h.trace.spans.includes('model_inference: OVERLOADED'));
      assert.equal(segments(older.events).length, 1, 'the older stream goes on');
    });
  });

  describe('abort', () => {
    it('drops the queue and the running window\'s result: nothing more is emitted, later windows are ignored, drained resolves', async () => {
      const h = harness();
      h.model.hold();
      h.channel.enqueue(win(0, 100)); // running
      h.channel.enqueue(win(100, 200));
      const drained = h.channel.drained();
      h.channel.abort();
      await drained;
      h.channel.enqueue(win(200, 300));
      h.model.release();
      await settleAll();
      assert.deepEqual(h.events, []);
      assert.equal(h.model.rows.length, 1, 'only the window already running reached the model');
    });

    // pump() returns on `aborted` before wakeIdle(): a drained() asked after abort() must not wait
    // for a wake-up (not reached today: nothing calls finish() after abort()).
    it('drained() asked after abort() resolves, even while the aborted window still runs', async () => {
      const h = harness();
      h.model.hold();
      h.channel.enqueue(win(0, 100)); // running
      h.channel.abort();
      let drained = false;
      const waiting = h.channel.drained().then(() => { drained = true; });
      h.model.release();
      await settleAll();
      assert.equal(drained, true, 'drained() never resolved');
      await waiting;
    });

    it('a request waiting in the scheduler when its channel aborts never reaches the model', async () => {
      const h = harness({ slots: 1 });
      const busy = h.other(1);
      h.model.hold();
      busy.channel.enqueue(win(0, 100));
      await settleAll();
      h.channel.enqueue(win(1000, 1200)); // waits for the slot
      await settleAll();
      h.channel.abort();
      h.model.release();
      await busy.channel.drained();
      await settleAll();
      assert.deepEqual(h.model.rows, [fingerprint(AUDIO.subarray(0, 100))]);
      assert.deepEqual(h.events, []);
      assert.equal(h.scheduler.waiting, 0);
    });
  });
});
