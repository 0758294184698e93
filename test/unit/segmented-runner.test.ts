// The segmented route's pipeline, in process: wire bytes in (decoded by the real native front
// end: 16 kHz float32 passes through unchanged), per channel a VAD (a fake whose probability is a
// window's loudness) and its speech detector, the audio history each utterance is cut from, and
// a model (a fake answering with a fingerprint of exactly the samples it was given, behind the
// real inference scheduler). Times below are in 512-sample (32 ms) windows; with the defaults an
// utterance needs 8 windows of speech and ends after 10 of silence, padded 400 ms before and
// 300 ms after.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Config } from '../../src/config.js';
import { MemoryBudget } from '../../src/memory-budget.js';
import { DecodeBatcher } from '../../src/pipeline/decode-batcher.js';
import { InferenceScheduler } from '../../src/pipeline/inference-scheduler.js';
import { SAMPLE_RATE } from '../../src/audio-format.js';
import { SegmentedRunner } from '../../src/pipeline/segmented-runner.js';
import { WINDOW } from '../../src/pipeline/speech-detector.js';
import type { ServerEvent } from '../../src/protocol.js';
import { TaskFailure } from '../../src/tasks.js';
import { nativeFormat } from '../helpers/pcm-encode.js';
import { FakeModel, LoudnessVad, assertProgressNeverPasses, fingerprint, recordingTrace, settleAll, testConfig, testMetrics, until } from '../helpers/pipeline-fakes.js';
import { seededRandom } from '../helpers/signal.js';

type Segment = Extract<ServerEvent, { type: 'segment' }>;
type Activity = Extract<ServerEvent, { type: 'active' | 'inactive' }>;
const isActivity = (e: ServerEvent): e is Activity => e.type === 'active' || e.type === 'inactive';
type Part = readonly ['speech' | 'silence', number];

const PAD_BEFORE = 6400; // 400 ms
const PAD_AFTER = 4800; // 300 ms

/** One channel's audio: speech windows loud (probability ~0.75), silence quiet (~0.01), all noise. */
function signal(parts: readonly Part[], seed: number, extraSpeech = 0): Float32Array {
  const random = seededRandom(seed);
  const total = parts.reduce((n, [, w]) => n + w * WINDOW, 0) + extraSpeech;
  const out = new Float32Array(total);
  let i = 0;
  for (const [kind, windows] of [...parts, ['speech', extraSpeech / WINDOW] as const]) {
    const end = Math.round(i + windows * WINDOW);
    for (; i < end; i++) out[i] = kind === 'speech' ? 0.6 + 0.3 * random() : 0.02 * random();
  }
  return out;
}

/** Interleaved float32 wire bytes of channels [from, to). */
function wire(channels: Float32Array[], from: number, to: number): Uint8Array {
  const n = channels.length;
  const out = new Float32Array((to - from) * n);
  for (let i = from; i < to; i++) for (let c = 0; c < n; c++) out[(i - from) * n + c] = channels[c]![i]!;
  return new Uint8Array(out.buffer);
}

interface Options {
  channels?: number;
  interimResults?: boolean;
  progress?: boolean;
  config?: Partial<Config>;
}

function harness(options: Options = {}) {
  const channelCount = options.channels ?? 1;
  const model = new FakeModel();
  const vad = new LoudnessVad();
  const scheduler = new InferenceScheduler({ slots: 2, maxRows: 4, runBatch: model.run });
  const events: ServerEvent[] = [];
  const failures: TaskFailure[] = [];
  let heldBytes = 0;
  const memory = new MemoryBudget(1e12, {
    addHeld: (delta) => (heldBytes += delta),
    get held() { return heldBytes; },
    streams: 1,
  });
  const held = memory.account();
  const trace = recordingTrace();
  const runner = new SegmentedRunner({
    format: nativeFormat('f32', SAMPLE_RATE, channelCount),
    decoder: new DecodeBatcher(testMetrics(), 1),
    model: { scheduler },
    metrics: testMetrics(),
    emit: (e) => events.push(e),
    fail: (f) => failures.push(f),
    trace,
    stream: { startedAt: performance.now() },
    progress: options.progress,
    held,
    vad,
    interimResults: options.interimResults ?? false,
    config: testConfig(options.config),
  });
  let pushed = 0;
  function push(bytes: Uint8Array): void {
    pushed += bytes.length;
    runner.push(bytes);
  }
  /** Resolves once every byte pushed so far has been decoded (and handed to the channels). */
  const decoded = (): Promise<void> => until(() => trace.decodedBytes >= pushed, 'the audio is decoded');
  /** Sends the channels' audio in frames of `frame` samples, letting the pipeline run every few
   *  frames, as a live client's frames would; `paced`: after each frame, until it is decoded. */
  async function send(channels: Float32Array[], frame = 320, paced = false): Promise<void> {
    const length = channels[0]!.length;
    let frames = 0;
    for (let i = 0; i < length; i += frame) {
      push(wire(channels, i, Math.min(length, i + frame)));
      if (paced) {
        await decoded();
        await settleAll(3);
      } else if (++frames % 4 === 0) {
        await settleAll(1);
      }
    }
  }
  return { runner, model, vad, scheduler, events, failures, held, push, decoded, send };
}

const segments = (events: ServerEvent[]): Segment[] => events.filter((e): e is Segment => e.type === 'segment');
const finals = (events: ServerEvent[]): Segment[] => segments(events).filter((e) => e.is_final === true);
const samplesAt = (seconds: number): number => Math.round(seconds * SAMPLE_RATE);

/** The segment's text is the fingerprint of exactly its stream audio. */
function assertItsAudio(e: Segment, channels: Float32Array[]): void {
  const audio = channels[e.channel]!.subarray(samplesAt(e.start_time), samplesAt(e.end_time));
  assert.equal(e.text, fingerprint(audio), `segment ${e.start_time}-${e.end_time} s of channel ${e.channel} was given other audio`);
}

const t = (samples: number): number => samples / SAMPLE_RATE;

/** A promise's outcome within `ms`, or 'pending'. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  return Promise.race([promise, new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), ms))]);
}

describe('segmented runner', () => {
  describe('utterances', () => {
    it('active at the onset, inactive where the silence began, then a final of the speech padded 400 ms before and 300 ms after', async () => {
      const h = harness();
      const audio = signal([['silence', 50], ['speech', 40], ['silence', 30]], 1);
      await h.send([audio]);
      await h.runner.finish();
      const onset = 50 * WINDOW;
      const silence = 90 * WINDOW;
      assert.deepEqual(h.events, [
        { type: 'active', channel: 0, time: t(onset) },
        { type: 'inactive', channel: 0, time: t(silence) },
        { type: 'segment', channel: 0, start_time: t(onset - PAD_BEFORE), end_time: t(silence + PAD_AFTER), is_final: true, text: fingerprint(audio.subarray(onset - PAD_BEFORE, silence + PAD_AFTER)) },
      ]);
      assert.deepEqual(h.failures, []);
    });

    it('padding never reaches into the previous utterance\'s audio, nor before the stream', async () => {
      const h = harness();
      const audio = signal([['silence', 2], ['speech', 20], ['silence', 12], ['speech', 20], ['silence', 30]], 2);
      await h.send([audio]);
      await h.runner.finish();
      const first = 22 * WINDOW + PAD_AFTER;
      assert.deepEqual(finals(h.events).map((e) => [samplesAt(e.start_time), samplesAt(e.end_time)]), [[0, first], [first, 54 * WINDOW + PAD_AFTER]]);
      for (const e of finals(h.events)) assertItsAudio(e, [audio]);
    });

    it('speech longer than MAX_UTTERANCE_SECONDS is split: no part is longer, a split has no padding after, the next part starts there', async () => {
      const h = harness({ config: { maxUtteranceSeconds: 2 } });
      const audio = signal([['silence', 20], ['speech', 120], ['silence', 30]], 3);
      await h.send([audio]);
      await h.runner.finish();
      const onset = 20 * WINDOW;
      const split1 = onset + 2 * SAMPLE_RATE - PAD_BEFORE; // with its padding before, 2 s exactly
      const split2 = split1 + 2 * SAMPLE_RATE - PAD_BEFORE;
      const silence = 140 * WINDOW;
      assert.deepEqual(h.events.filter(isActivity).map((e) => `${e.type} ${samplesAt(e.time)}`), [
        `active ${onset}`, `inactive ${split1}`, `active ${split1}`, `inactive ${split2}`, `active ${split2}`, `inactive ${silence}`,
      ]);
      assert.deepEqual(finals(h.events).map((e) => [samplesAt(e.start_time), samplesAt(e.end_time)]), [[onset - PAD_BEFORE, split1], [split1, split2], [split2, silence + PAD_AFTER]]);
      for (const e of finals(h.events)) {
        assert.ok(e.end_time - e.start_time <= 2, `${e.end_time - e.start_time} s`);
        assertItsAudio(e, [audio]);
      }
    });

    it('finish ends speech still open: its final runs to the last sample, even the part shorter than a VAD window', async () => {
      const h = harness();
      const audio = signal([['silence', 20], ['speech', 30]], 4, 100);
      await h.send([audio]);
      await h.runner.finish();
      assert.deepEqual(finals(h.events).map((e) => [samplesAt(e.start_time), samplesAt(e.end_time)]), [[20 * WINDOW - PAD_BEFORE, audio.length]]);
      assertItsAudio(finals(h.events)[0]!, [audio]);
      assert.equal(h.events.at(-2)?.type, 'inactive');
    });

    it('silence, or speech shorter than the minimum, gives no events at all', async () => {
      const h = harness();
      const audio = signal([['silence', 30], ['speech', 5], ['silence', 30]], 5);
      await h.send([audio]);
      await h.runner.finish();
      assert.deepEqual(h.events, []);
      assert.equal(h.model.rows.length, 0);
    });

    it('each channel of a stereo stream is segmented on its own, its events carrying its index', async () => {
      const h = harness({ channels: 2 });
      const left = signal([['silence', 20], ['speech', 40], ['silence', 90]], 6);
      const right = signal([['silence', 70], ['speech', 40], ['silence', 40]], 7);
      await h.send([left, right]);
      await h.runner.finish();
      const byChannel = (c: number) => h.events.flatMap((e) => {
        if (e.type === 'segment' && e.channel === c) return [`final ${samplesAt(e.start_time)}`];
        return isActivity(e) && e.channel === c ? [`${e.type} ${samplesAt(e.time)}`] : [];
      });
      assert.deepEqual(byChannel(0), [`active ${20 * WINDOW}`, `inactive ${60 * WINDOW}`, `final ${20 * WINDOW - PAD_BEFORE}`]);
      assert.deepEqual(byChannel(1), [`active ${70 * WINDOW}`, `inactive ${110 * WINDOW}`, `final ${70 * WINDOW - PAD_BEFORE}`]);
      for (const e of finals(h.events)) assertItsAudio(e, [left, right]);
    });
  });

  describe('interim results', () => {
    it('transcribe the utterance so far from the same padded start, spaced by INTERIM_INTERVAL_SECONDS or a fifth of the speech so far, never after its final', async () => {
      const h = harness({ interimResults: true });
      const audio = signal([['silence', 20], ['speech', 150], ['silence', 30]], 8);
      await h.send([audio], 512, true); // at a pace the model keeps up with: no interim replaced
      await h.runner.finish();
      const onset = 20 * WINDOW;
      const final = finals(h.events);
      assert.equal(final.length, 1);
      const finalAt = h.events.indexOf(final[0]!);
      const interims = segments(h.events).filter((e) => e.is_final === false);
      assert.ok(interims.length >= 6, `${interims.length} interims in 4.8 s of speech`);
      let previous: number | undefined;
      for (const e of interims) {
        assert.ok(h.events.indexOf(e) < finalAt, 'an interim came after its final');
        assert.equal(samplesAt(e.start_time), onset - PAD_BEFORE);
        assertItsAudio(e, [audio]);
        const end = samplesAt(e.end_time);
        assert.ok(end <= 170 * WINDOW + 10 * WINDOW, 'no interim once the utterance ended');
        const spacing = previous === undefined ? end - onset : end - previous;
        const least = previous === undefined ? 8000 : Math.max(8000, Math.round(0.2 * (previous - onset)));
        assert.ok(spacing >= least, `an interim ${spacing} samples after the last, at least ${least} expected`);
        previous = end;
      }
      assert.ok(h.events.findIndex((e) => e.type === 'active') < h.events.indexOf(interims[0]!));
    });

    it('without interim results, only finals', async () => {
      const h = harness({ interimResults: false });
      await h.send([signal([['silence', 20], ['speech', 150], ['silence', 30]], 8)]);
      await h.runner.finish();
      assert.deepEqual(segments(h.events).map((e) => e.is_final), [true]);
    });
  });

  describe('the VAD', () => {
    it('gets at least one window and at most one second per request, one request per channel at a time', async () => {
      const h = harness();
      const audio = signal([['silence', 40], ['speech', 60], ['silence', 60]], 9); // 5.12 s
      h.push(wire([audio], 0, audio.length)); // all at once
      await h.runner.finish();
      const sizes = h.vad.requests.map((r) => r.samples);
      assert.deepEqual(sizes, [16000, 16000, 16000, 16000, 16000, 1920]);
      assert.equal(h.vad.overlaps, 0);
      assert.equal(finals(h.events).length, 1);
    });

    it('audio under one window waits for more; at the end it is never sent to the VAD', async () => {
      const h = harness();
      const audio = signal([['silence', 10]], 10, 0);
      for (let i = 0; i < audio.length; i += 100) {
        h.push(wire([audio], i, Math.min(audio.length, i + 100)));
        await settleAll(2);
      }
      h.push(wire([new Float32Array(300)], 0, 300));
      await h.runner.finish();
      assert.ok(h.vad.requests.every((r) => r.samples >= WINDOW), `requests of ${h.vad.requests.map((r) => r.samples).join(', ')} samples`);
      const total = audio.length + 300;
      assert.ok(h.vad.sent() <= total && total - h.vad.sent() < WINDOW, `${h.vad.sent()} of ${total} samples sent`);
    });

    it('the samples waiting for the VAD count in the memory budget while it holds them, and nothing once it answered', async () => {
      const h = harness();
      const audio = signal([['silence', 125]], 11); // 4 s
      h.vad.hold();
      h.push(wire([audio], 0, 2 * SAMPLE_RATE));
      assert.equal(h.held.held, 2 * SAMPLE_RATE * 4, 'the wire bytes waiting for the decoder');
      await h.decoded();
      assert.equal(h.vad.requests.length, 1, 'one second is with the VAD, one waits');
      assert.equal(h.held.held, 2 * SAMPLE_RATE * 4, 'decoded: now the samples for the VAD');
      h.vad.release();
      await until(() => h.vad.sent() === 2 * SAMPLE_RATE, 'the VAD has had it all');
      await settleAll();
      assert.equal(h.held.held, 0);
      await h.runner.finish();
      assert.equal(h.held.held, 0);
    });

    it(`more than MAX_BACKLOG_SECONDS waiting for the VAD fails the stream with BACKLOG`, async () => {
      const h = harness({ config: { maxBacklogSeconds: 1 } });
      const audio = signal([['silence', 100]], 12);
      h.vad.hold();
      for (let i = 0; i < 12 && h.failures.length === 0; i++) {
        h.push(wire([audio], i * 4000, (i + 1) * 4000));
        await h.decoded();
        await settleAll(2);
        assert.ok(i < 5 ? h.failures.length === 0 : true, `failed with ${(i + 1) * 4000} samples sent`);
      }
      assert.deepEqual(h.failures.map((f) => f.code), ['BACKLOG']);
      assert.match(h.failures[0]!.message, /waiting for the VAD/);
      assert.equal(h.failures[0]!.panicked, false);
      h.runner.abort();
      h.vad.release();
    });

    it('a failed VAD request fails the stream with its code', async () => {
      const h = harness();
      h.vad.failNext = new TaskFailure('MODEL_FAILURE', 'injected', false);
      await h.send([signal([['speech', 20]], 13)]);
      await until(() => h.failures.length > 0, 'the stream is failed');
      await settleAll();
      assert.deepEqual(h.failures.map((f) => f.code), ['MODEL_FAILURE']);
      h.runner.abort();
    });
  });

  describe('abort', () => {
    it('emits nothing more, even for a VAD answer or a model result already in flight', async () => {
      const h = harness();
      const audio = signal([['silence', 20], ['speech', 40], ['silence', 30]], 14);
      h.model.hold();
      await h.send([audio]);
      await h.decoded();
      await until(() => h.model.running === 1, 'the final is with the model');
      assert.deepEqual(h.events.map((e) => e.type), ['active', 'inactive']);
      h.vad.hold();
      h.push(wire([signal([['speech', 40]], 15)], 0, 40 * WINDOW));
      await h.decoded();
      assert.ok(h.vad.requests.length > 0);
      h.runner.abort();
      h.vad.release();
      h.model.release();
      await until(() => h.model.running === 0, 'the model job ended');
      await settleAll();
      assert.deepEqual(h.events.map((e) => e.type), ['active', 'inactive'], 'nothing after abort');
    });

    // A VAD answer that finds the channel closed is dropped: close() itself must wake finish(),
    // whatever is in flight or pending, or finish() waiting for the VAD never resolves after abort().
    it('abort() while finish() waits for the VAD: finish still resolves', async () => {
      const h = harness();
      h.vad.hold();
      h.push(wire([signal([['silence', 10]], 16)], 0, 10 * WINDOW));
      await h.decoded();
      assert.equal(h.vad.requests.length, 1);
      const finished = h.runner.finish();
      await settleAll();
      h.runner.abort();
      h.vad.release();
      assert.equal(await within(finished.then(() => 'resolved'), 200), 'resolved');
    });

    // The VAD failure handler wakes finish() only when no audio is pending, and nothing sends the
    // pending audio afterwards: the abort that follows the failure must release finish().
    it('a VAD failure while more audio waits: finish still resolves (after the stream is aborted)', async () => {
      const h = harness();
      h.vad.hold();
      h.vad.failNext = new TaskFailure('MODEL_FAILURE', 'injected', false);
      h.push(wire([signal([['silence', 63]], 17)], 0, 63 * WINDOW)); // 2 s: one with the VAD, one waiting
      await h.decoded();
      const finished = h.runner.finish();
      await settleAll();
      h.vad.release();
      await until(() => h.failures.length > 0, 'the stream is failed');
      assert.deepEqual(h.failures.map((f) => f.code), ['MODEL_FAILURE']);
      h.runner.abort(); // what the session does on a failure
      assert.equal(await within(finished.then(() => 'resolved'), 200), 'resolved');
    });
  });

  it('progress reports advance by at least 0.5 s and never pass a final not yet sent', async () => {
    const h = harness({ progress: true });
    const parts: Part[] = [['silence', 10]];
    for (let i = 0; i < 8; i++) parts.push(['speech', 20 + 7 * i], ['silence', 15 + 3 * i]);
    const audio = signal(parts, 18);
    await h.send([audio], 640);
    await h.runner.finish();
    assertProgressNeverPasses(h.events, finals(h.events), 'final');
    assert.equal(finals(h.events).length, 8);
  });

  it('a long stream: every final is exactly its audio and holds its speech, in order, however the history was trimmed, compacted or grown', async () => {
    const random = seededRandom(19);
    const h = harness({ config: { maxUtteranceSeconds: 60 } });
    const parts: Part[] = [['silence', 10]];
    const speech: [number, number][] = [];
    let at = 10;
    for (let i = 0; i < 14; i++) {
      const windows = i === 5 ? 400 : 8 + Math.floor(random() * 120); // one of 12.8 s
      speech.push([at * WINDOW, (at + windows) * WINDOW]);
      const gap = 10 + Math.floor(random() * 60);
      parts.push(['speech', windows], ['silence', gap]);
      at += windows + gap;
    }
    const audio = signal(parts, 20);
    // Random frames; twice the VAD stalls while seconds of audio pile up in the history.
    const stalls = [Math.floor(audio.length * 0.3), Math.floor(audio.length * 0.7)];
    let waited = 0;
    for (let i = 0; i < audio.length;) {
      const n = 1 + Math.floor(random() * 3000);
      h.push(wire([audio], i, Math.min(audio.length, i + n)));
      if (stalls.some((s) => i <= s && s < i + n)) h.vad.hold();
      if (stalls.some((s) => i <= s + 8 * SAMPLE_RATE && s + 8 * SAMPLE_RATE < i + n)) h.vad.release();
      i += n;
      // A client keeps within the backlog: now and then, and at least every 5 s of audio, it
      // waits until what it sent is decoded.
      if (random() < 0.3 || i - waited > 5 * SAMPLE_RATE) {
        await h.decoded();
        waited = i;
      }
    }
    h.vad.release();
    await h.runner.finish();
    assert.deepEqual(h.failures, []);
    const got = finals(h.events);
    assert.equal(got.length, speech.length);
    let previousEnd = 0;
    got.forEach((e, k) => {
      assertItsAudio(e, [audio]);
      const [from, to] = [samplesAt(e.start_time), samplesAt(e.end_time)];
      assert.ok(from >= previousEnd, 'finals overlap or come out of order');
      assert.ok(from <= speech[k]![0] && to >= speech[k]![1], `final ${from}-${to} misses speech ${speech[k]!.join('-')}`);
      previousEnd = to;
    });
  });
});
