// The simple route's pipeline, in process: each channel's 16 kHz audio (the real native front
// end; float32 at 16 kHz passes through unchanged) is cut into back-to-back windows of
// SIMPLE_WINDOW_SECONDS, each window goes to the model (a fake answering with a fingerprint of
// exactly the samples it was given, behind the real scheduler), one segment per window comes
// back in order per channel, and the last, partial window is sent at stop.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecodeBatcher } from '../../src/pipeline/decode-batcher.js';
import { InferenceScheduler } from '../../src/pipeline/inference-scheduler.js';
import { SAMPLE_RATE } from '../../src/audio-format.js';
import { SimpleRunner } from '../../src/pipeline/simple-runner.js';
import type { ServerEvent } from '../../src/protocol.js';
import type { TaskFailure } from '../../src/tasks.js';
import { nativeFormat } from '../helpers/pcm-encode.js';
import { FakeModel, assertProgressNeverPasses, fingerprint, recordingTrace, settleAll, testMetrics, until } from '../helpers/pipeline-fakes.js';
import { seededRandom } from '../helpers/signal.js';

type Segment = Extract<ServerEvent, { type: 'segment' }>;

function noise(samples: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: samples }, () => random() - 0.5);
}

/** Interleaved float32 wire bytes of channels [from, to). */
function wire(channels: Float32Array[], from: number, to: number): Uint8Array {
  const n = channels.length;
  const out = new Float32Array((to - from) * n);
  for (let i = from; i < to; i++) for (let c = 0; c < n; c++) out[(i - from) * n + c] = channels[c]![i]!;
  return new Uint8Array(out.buffer);
}

function harness(options: { channels?: number; windowSeconds?: number; maxBacklogSeconds?: number; progress?: boolean; slots?: number } = {}) {
  const model = new FakeModel();
  const scheduler = new InferenceScheduler({ slots: options.slots ?? 1, maxRows: 4, runBatch: model.run });
  const events: ServerEvent[] = [];
  const failures: TaskFailure[] = [];
  const trace = recordingTrace();
  const runner = new SimpleRunner({
    format: nativeFormat('f32', SAMPLE_RATE, options.channels ?? 1),
    decoder: new DecodeBatcher(testMetrics(), 1),
    model: { scheduler },
    metrics: testMetrics(),
    emit: (e) => events.push(e),
    fail: (f) => failures.push(f),
    trace,
    stream: { startedAt: performance.now() },
    progress: options.progress,
    windowSeconds: options.windowSeconds ?? 1,
    maxBacklogSeconds: options.maxBacklogSeconds ?? 30,
  });
  let pushed = 0;
  const push = (bytes: Uint8Array): void => {
    pushed += bytes.length;
    runner.push(bytes);
  };
  const decoded = (): Promise<void> => until(() => trace.decodedBytes >= pushed, 'the audio is decoded');
  /** Sends the audio in pieces of random sizes up to `most` samples, waiting for the decoder now and then. */
  async function send(channels: Float32Array[], random: () => number, most = 5000): Promise<void> {
    for (let i = 0; i < channels[0]!.length;) {
      const n = 1 + Math.floor(random() * most);
      push(wire(channels, i, Math.min(channels[0]!.length, i + n)));
      i += n;
      if (random() < 0.3) await decoded();
    }
  }
  return { runner, model, events, failures, push, decoded, send };
}

const segments = (events: ServerEvent[]): Segment[] => events.filter((e): e is Segment => e.type === 'segment');
const bounds = (events: ServerEvent[], channel = 0): [number, number][] =>
  segments(events).filter((e) => e.channel === channel).map((e) => [Math.round(e.start_time * SAMPLE_RATE), Math.round(e.end_time * SAMPLE_RATE)]);

function assertItsAudio(events: ServerEvent[], channels: Float32Array[]): void {
  for (const e of segments(events)) {
    const audio = channels[e.channel]!.subarray(Math.round(e.start_time * SAMPLE_RATE), Math.round(e.end_time * SAMPLE_RATE));
    assert.equal(e.text, fingerprint(audio), `window ${e.start_time}-${e.end_time} s of channel ${e.channel} was given other audio`);
  }
}

describe('simple runner (the windower)', () => {
  it('cuts the audio into back-to-back windows of SIMPLE_WINDOW_SECONDS from 0, the last partial one at finish, each exactly its audio', async () => {
    const h = harness({ windowSeconds: 1 });
    const audio = noise(Math.round(3.3 * SAMPLE_RATE), 1);
    await h.send([audio], seededRandom(2));
    await h.runner.finish();
    assert.deepEqual(bounds(h.events), [[0, 16000], [16000, 32000], [32000, 48000], [48000, 52800]]);
    assertItsAudio(h.events, [audio]);
    for (const e of segments(h.events)) assert.ok(!('is_final' in e), 'a simple window has no is_final');
    assert.deepEqual(h.failures, []);
  });

  it('however the bytes are cut, the windows are the same', async () => {
    const audio = noise(Math.round(2.5 * SAMPLE_RATE), 3);
    const runs: [number, number][][] = [];
    for (const most of [1, 700, 40000]) {
      const h = harness({ windowSeconds: 0.5 });
      await h.send([audio], seededRandom(most), most === 1 ? 64 : most);
      await h.runner.finish();
      assertItsAudio(h.events, [audio]);
      runs.push(bounds(h.events));
    }
    assert.deepEqual(runs[1], runs[0]);
    assert.deepEqual(runs[2], runs[0]);
    assert.equal(runs[0]!.length, 5);
  });

  it('a stream ending on a window boundary sends no empty window; a stream with no audio sends nothing', async () => {
    const h = harness({ windowSeconds: 1 });
    const audio = noise(2 * SAMPLE_RATE, 4);
    h.push(wire([audio], 0, audio.length));
    await h.runner.finish();
    assert.deepEqual(bounds(h.events), [[0, 16000], [16000, 32000]]);
    const silent = harness();
    await silent.runner.finish();
    assert.deepEqual(silent.events, []);
  });

  it('each channel has its windows, in order, answered with its own audio, while the channels share the model', async () => {
    const h = harness({ channels: 3, windowSeconds: 0.25 });
    const channels = [5, 6, 7].map((seed) => noise(Math.round(1.1 * SAMPLE_RATE), seed));
    await h.send(channels, seededRandom(8));
    await h.runner.finish();
    const expected: [number, number][] = [[0, 4000], [4000, 8000], [8000, 12000], [12000, 16000], [16000, 17600]];
    for (let c = 0; c < 3; c++) assert.deepEqual(bounds(h.events, c), expected, `channel ${c}`);
    assertItsAudio(h.events, channels);
    assert.ok(h.model.batches.some((b) => b.length > 1), 'windows of different channels share model jobs');
  });

  describe('backlog', () => {
    it('with the model stalled, windows wait up to MAX_BACKLOG_SECONDS (at least two windows); beyond, the stream fails with BACKLOG', async () => {
      // A bound smaller than one window would refuse every window: two windows always fit.
      const h = harness({ windowSeconds: 1, maxBacklogSeconds: 0.5 });
      const audio = noise(5 * SAMPLE_RATE, 9);
      h.model.hold();
      const half = SAMPLE_RATE / 2; // pieces within the decoder's own backlog bound
      for (let k = 0; k < 6; k++) {
        h.push(wire([audio], k * half, (k + 1) * half));
        await h.decoded();
      }
      assert.equal(h.failures.length, 0, 'one window with the model, two waiting');
      for (let k = 6; k < 8; k++) {
        h.push(wire([audio], k * half, (k + 1) * half));
        await h.decoded();
      }
      assert.deepEqual(h.failures.map((f) => f.code), ['BACKLOG']);
      assert.match(h.failures[0]!.message, /waiting for the model/);
      h.runner.abort();
      h.model.release();
    });
  });

  it('abort: nothing more is emitted, not even the window with the model', async () => {
    const h = harness({ windowSeconds: 0.5 });
    const audio = noise(2 * SAMPLE_RATE, 10);
    h.model.hold();
    h.push(wire([audio], 0, audio.length));
    await h.decoded();
    await until(() => h.model.running === 1, 'a window is with the model');
    h.runner.abort();
    h.model.release();
    await until(() => h.model.running === 0, 'the model job ended');
    await settleAll();
    assert.deepEqual(h.events, []);
    assert.equal(h.model.rows.length, 1, 'the queued windows never reached the model');
  });

  it('progress reports advance by at least 0.5 s and never pass a window not yet answered', async () => {
    const h = harness({ windowSeconds: 0.3, progress: true });
    const audio = noise(6 * SAMPLE_RATE, 11);
    await h.send([audio], seededRandom(12), 3000);
    await h.runner.finish();
    assertProgressNeverPasses(h.events, segments(h.events), 'window');
  });
});
