// Small fakes of the pipeline's boundaries, for in-process unit tests of its parts: a speech
// model that answers each utterance with a fingerprint of its audio (so a test can tell exactly
// which samples it was given), a VAD whose probability is a window's loudness, and a trace that
// records its spans. Each can hold its answers back until the test releases them.
import assert from 'node:assert/strict';
import { SharedState } from '../../src/cluster/shared-state.js';
import { loadConfig, type Config } from '../../src/config.js';
import { Metrics } from '../../src/metrics/registry.js';
import type { ModelBatchOutput, ModelItem, NativeVadChannel } from '../../src/native/binding.js';
import type { BatchRunner } from '../../src/pipeline/inference-scheduler.js';
import type { ServerEvent } from '../../src/protocol.js';
import { WINDOW } from '../../src/pipeline/speech-detector.js';
import type { VadBatcher } from '../../src/pipeline/vad-batcher.js';
import type { TaskFailure } from '../../src/tasks.js';
import type { StreamTrace } from '../../src/tracing.js';

/** A registry like one worker thread's (no process families). */
export const testMetrics = (): Metrics => new Metrics({ worker: 0, shared: new SharedState(1) });

/** The defaults, as the server reads them with nothing set, with `overrides`. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({}, []), ...overrides };
}

/** An error as it crosses the native boundary (a failed item of a model batch, a VAD channel's). */
export type NativeError = Exclude<ModelBatchOutput['items'][number], ModelItem>;

export function nativeError(code: NativeError['code'], message: string): NativeError {
  return Object.assign(new Error(message), { code });
}

/** Lets every pending callback run (I/O, immediates, the promises they settle), `rounds` times. */
export async function settleAll(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Waits (a turn of the event loop at a time) until `condition` holds; fails after `ms`. Native
 *  jobs run on the threadpool: how many turns they take depends on the machine's load. */
export async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

/** Names a run of samples: its length and an FNV-1a hash of its bytes. */
export function fingerprint(samples: Float32Array): string {
  const bytes = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return `${samples.length}:${h.toString(16)}`;
}

/** Something that answers only once released, while held. */
/** A fake whose answers can be held back (hold) and let go (release). */
export class Holdable {
  private held: (() => void)[] | undefined;

  hold(): void {
    this.held ??= [];
  }

  /** Lets every held answer go, and answers at once from now on. */
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const go of held) go();
  }

  protected gate(): Promise<void> {
    if (!this.held) return Promise.resolve();
    const held = this.held;
    return new Promise((resolve) => held.push(resolve));
  }
}

/**
 * A speech model as the inference scheduler runs it (a BatchRunner): each item's text is the
 * fingerprint of its samples and its tokens are [its sample count], so the draft of a later
 * request tells which answer it came from.
 */
export class FakeModel extends Holdable {
  /** Every batch, as the fingerprints of its rows. */
  readonly batches: string[][] = [];
  /** Every row's draft, in order, as plain arrays. */
  readonly drafts: (number[] | undefined)[] = [];
  running = 0;
  peak = 0;
  /** An item's error, if it should fail alone. */
  failItem: ((samples: Float32Array) => NativeError | undefined) | undefined;
  /** The whole job fails with this. */
  failJob: Error | undefined;

  readonly run: BatchRunner = async (samples, drafts) => {
    this.batches.push(samples.map(fingerprint));
    for (const d of drafts) this.drafts.push(d ? [...d] : undefined);
    this.running++;
    this.peak = Math.max(this.peak, this.running);
    try {
      await this.gate();
      await new Promise<void>((resolve) => setImmediate(resolve)); // a model job is never synchronous
    } finally {
      this.running--;
    }
    if (this.failJob !== undefined) throw this.failJob;
    const items: ModelBatchOutput['items'] = samples.map((s) => this.failItem?.(s) ?? { text: fingerprint(s), ids: Int32Array.of(s.length), decoderCalls: 1 });
    return { items, waitSeconds: 0, runSeconds: 0.001 * samples.length };
  };

  /** The rows the model has been given, in order. */
  get rows(): string[] {
    return this.batches.flat();
  }
}

/** The probability a LoudnessVad gives a window: its mean absolute sample, at most 1. */
export function loudness(window: Float32Array): number {
  let sum = 0;
  for (const x of window) sum += Math.abs(x);
  return Math.min(1, sum / window.length);
}

/**
 * A VAD (the part of VadBatcher a segmented runner uses) whose speech probability for each whole
 * 512-sample window is the window's loudness; like Silero, a channel carries a partial window
 * over to its next request.
 */
export class LoudnessVad extends Holdable implements Pick<VadBatcher, 'process'> {
  /** Every request: its channel and its length. */
  readonly requests: { channel: NativeVadChannel; samples: number }[] = [];
  /** A channel's request made while its previous one was still unanswered. */
  overlaps = 0;
  /** The next request fails with this. */
  failNext: TaskFailure | undefined;
  private readonly carry = new Map<NativeVadChannel, Float32Array>();
  private readonly busy = new Set<NativeVadChannel>();

  async process(channel: NativeVadChannel, audio: Float32Array): Promise<Float32Array> {
    this.requests.push({ channel, samples: audio.length });
    if (this.busy.has(channel)) this.overlaps++;
    this.busy.add(channel);
    const failure = this.failNext;
    this.failNext = undefined;
    const before = this.carry.get(channel) ?? new Float32Array(0);
    const all = new Float32Array(before.length + audio.length);
    all.set(before);
    all.set(audio, before.length);
    try {
      await this.gate();
      await Promise.resolve();
    } finally {
      this.busy.delete(channel);
    }
    if (failure) throw failure;
    const windows = Math.floor(all.length / WINDOW);
    this.carry.set(channel, all.slice(windows * WINDOW));
    return Float32Array.from({ length: windows }, (_, w) => loudness(all.subarray(w * WINDOW, (w + 1) * WINDOW)));
  }

  /** Samples the VAD has been sent, summed over a channel's requests (all channels if none given). */
  sent(channel?: NativeVadChannel): number {
    return this.requests.filter((r) => channel === undefined || r.channel === channel).reduce((n, r) => n + r.samples, 0);
  }
}

/** A trace that records its model spans' outcomes and counts the wire bytes its decode jobs took. */
export function recordingTrace(): StreamTrace & { spans: string[]; decodedBytes: number } {
  const spans: string[] = [];
  const trace = {
    spans,
    decodedBytes: 0,
    recording: false,
    logFields: {},
    stage: (stage: string) => ({
      end() { spans.push(`${stage}: ok`); },
      fail(code: string) { spans.push(`${stage}: ${code}`); },
    }),
    decoded(timing: object) {
      if ('inputBytes' in timing && typeof timing.inputBytes === 'number') trace.decodedBytes += timing.inputBytes;
    },
    vadAnswered() {},
    sent() {},
    end() {},
  };
  return trace;
}

/**
 * The rule every runner's progress events keep: each advances by at least 0.5 s, and none is sent
 * before a result (a final, a window) ending at or before its time.
 */
export function assertProgressNeverPasses(events: ServerEvent[], results: readonly { end_time: number }[], what: string): void {
  const progress = events.flatMap((e, i) => (e.type === 'progress' ? [{ time: e.time, at: i }] : []));
  assert.ok(progress.length >= 5, `${progress.length} progress events`);
  let last = 0;
  for (const p of progress) {
    assert.ok(p.time - last >= 0.5 - 1e-9, `progress from ${last} to ${p.time}`);
    last = p.time;
    for (const r of results) {
      if (r.end_time <= p.time) assert.ok(events.indexOf(r as ServerEvent) < p.at, `progress ${p.time} s sent before the ${what} ending at ${r.end_time} s`);
    }
  }
}
