// The VAD batcher: every channel's waiting VAD request goes into one native job; a small batch
// waits up to 10 ms for company, eight or more go at once; at most maxInFlight jobs run, on
// disjoint channels; a failure fails only the requests it belongs to. A fake NativeVad stands in
// for Silero (each window's probability is its channel's mark), real VadChannels for the channels.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addon, type NativeVad, type NativeVadChannel, type VadResult } from '../../src/native/binding.js';
import { WINDOW } from '../../src/pipeline/speech-detector.js';
import { VadBatcher } from '../../src/pipeline/vad-batcher.js';
import { TaskFailure } from '../../src/tasks.js';
import { Holdable, nativeError, settleAll, testMetrics, type NativeError } from '../helpers/pipeline-fakes.js';

/** A NativeVad that answers each channel one probability per whole window: the request's first sample. */
class FakeVad extends Holdable implements NativeVad {
  readonly jobs: NativeVadChannel[][] = [];
  running = 0;
  peak = 0;
  /** Channels of jobs running now. */
  readonly busy = new Set<NativeVadChannel>();
  overlaps = 0;
  /** Per channel, an error instead of its probabilities. */
  failChannel: ((channel: NativeVadChannel) => NativeError | undefined) | undefined;
  failJob: Error | undefined;
  refuse: Error | undefined;

  process(_task: unknown, channels: NativeVadChannel[], audio: Float32Array[]): Promise<VadResult> {
    if (this.refuse) throw this.refuse; // as the addon refuses a bad batch: synchronously
    this.jobs.push([...channels]);
    for (const c of channels) {
      if (this.busy.has(c)) this.overlaps++;
      this.busy.add(c);
    }
    this.running++;
    this.peak = Math.max(this.peak, this.running);
    return this.gate().then(() => {
      this.running--;
      for (const c of channels) this.busy.delete(c);
      if (this.failJob) throw this.failJob;
      return {
        waitSeconds: 0,
        runSeconds: 0.001,
        probs: channels.map((c, i) => this.failChannel?.(c) ?? new Float32Array(Math.floor(audio[i]!.length / WINDOW)).fill(audio[i]![0] ?? 0)),
      };
    });
  }

}

const channels = (n: number): NativeVadChannel[] => Array.from({ length: n }, () => new addon.VadChannel());
/** `windows` windows of audio marked `mark`. */
const marked = (mark: number, windows = 2): Float32Array => new Float32Array(windows * WINDOW).fill(mark);

describe('VAD batcher', () => {
  it('answers each request with its own channel\'s probabilities, eight or more waiting in one job at once', async () => {
    const vad = new FakeVad();
    const batcher = new VadBatcher(vad, testMetrics(), 1);
    const cs = channels(8);
    const answers = cs.map((c, i) => batcher.process(c, marked(i / 10, i + 1)));
    assert.equal(vad.jobs.length, 1, 'the eighth request starts the job without waiting');
    assert.equal(vad.jobs[0]!.length, 8);
    const probs = await Promise.all(answers);
    probs.forEach((p, i) => assert.deepEqual([...p], Array<number>(i + 1).fill(Math.fround(i / 10)), `channel ${i}`));
  });

  it('a small batch waits up to 10 ms for company, then goes with whatever came meanwhile', async () => {
    const vad = new FakeVad();
    const batcher = new VadBatcher(vad, testMetrics(), 1);
    const cs = channels(3);
    const started = performance.now();
    const first = batcher.process(cs[0]!, marked(0.1));
    await settleAll(2);
    assert.equal(vad.jobs.length, 0, 'a lone request lingers');
    const rest = [batcher.process(cs[1]!, marked(0.2)), batcher.process(cs[2]!, marked(0.3))];
    await Promise.all([first, ...rest]);
    const waited = performance.now() - started;
    assert.deepEqual(vad.jobs.map((j) => j.length), [3], 'one job for the three');
    assert.ok(waited >= 9, `it ran after ${waited.toFixed(1)} ms`);
    assert.ok(waited < 500, `it waited ${waited.toFixed(1)} ms`);
  });

  it('runs at most maxInFlight jobs, on disjoint channels: a channel in a running job waits for the next one', async () => {
    const vad = new FakeVad();
    const batcher = new VadBatcher(vad, testMetrics(), 2);
    const a = channels(8);
    const b = channels(8);
    const c = channels(7);
    vad.hold();
    const first = a.map((ch) => batcher.process(ch, marked(0.1)));
    const second = b.map((ch) => batcher.process(ch, marked(0.2)));
    assert.equal(vad.running, 2);
    // a[0] again, while its first request runs, with seven new channels: no slot, and a[0] is busy.
    const third = [batcher.process(a[0]!, marked(0.3)), ...c.map((ch) => batcher.process(ch, marked(0.4)))];
    assert.equal(vad.jobs.length, 2, 'no third job while two run');
    vad.release();
    const answers = await Promise.all([...first, ...second, ...third]);
    assert.equal(vad.peak, 2);
    assert.equal(vad.overlaps, 0, 'a channel was in two running jobs');
    assert.deepEqual(vad.jobs.map((j) => j.length), [8, 8, 8]);
    assert.ok(vad.jobs[2]!.includes(a[0]!), 'its second request went in the next job');
    assert.deepEqual([...answers[16]!], [Math.fround(0.3), Math.fround(0.3)], 'and got its own answer');
  });

  it('a channel that fails in a batch rejects alone, with its code; the others get their probabilities', async () => {
    const vad = new FakeVad();
    const batcher = new VadBatcher(vad, testMetrics(), 1);
    const cs = channels(8);
    vad.failChannel = (ch) => (ch === cs[3] ? nativeError('MODEL_FAILURE', 'injected') : undefined);
    const outcomes = await Promise.all(cs.map((ch) => batcher.process(ch, marked(0.5)).then(
      (p) => `${p.length} probabilities`,
      (e: unknown) => (e instanceof TaskFailure ? `${e.code}${e.panicked ? ' (panic)' : ''}` : `untyped ${String(e)}`),
    )));
    assert.deepEqual(outcomes, cs.map((_, i) => (i === 3 ? 'MODEL_FAILURE' : '2 probabilities')));
  });

  it('a failed job rejects each of its requests with the job\'s failure, and the batcher goes on', async () => {
    const vad = new FakeVad();
    const batcher = new VadBatcher(vad, testMetrics(), 1);
    const cs = channels(8);
    vad.failJob = nativeError('NATIVE_PANIC', 'the job panicked');
    const failed = await Promise.all(cs.map((ch) => batcher.process(ch, marked(0.5)).then(() => 'ok', (e: unknown) => (e as TaskFailure).code)));
    assert.deepEqual(failed, Array<string>(8).fill('NATIVE_PANIC'));
    vad.failJob = undefined;
    const again = await Promise.all(cs.map((ch) => batcher.process(ch, marked(0.5))));
    assert.equal(again.length, 8);
  });

  // The addon refuses a bad batch synchronously (BUSY, INVALID_ARGUMENT, CLOSED, see
  // native/vad_handle.cc): run() must fail every request of it and free its slot and channels
  // (as DecodeBatcher.run does), not leave them unsettled and taken, nor throw from the linger timer.
  it('a job refused synchronously fails its requests instead of wedging the batcher', async () => {
    const vad = new FakeVad();
    const batcher = new VadBatcher(vad, testMetrics(), 1);
    const cs = channels(8);
    vad.refuse = nativeError('BUSY', 'process(): a channel is already in a job in flight');
    const within = <T>(p: Promise<T>): Promise<T | 'pending'> => Promise.race([p, new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), 100))]);
    const outcomes = await Promise.all(cs.map((ch) => within(batcher.process(ch, marked(0.5)).then(() => 'ok', (e: unknown) => (e as TaskFailure).code ?? 'untyped'))));
    assert.deepEqual(outcomes, Array<string>(8).fill('BUSY'), 'every request of the refused job fails with the refusal');
    vad.refuse = undefined;
    const next = await Promise.all(cs.map((ch) => within(batcher.process(ch, marked(0.5)).then(() => 'ok', () => 'failed'))));
    assert.deepEqual(next, Array<string>(8).fill('ok'), 'the next job runs');
  });
});
