// /api/v1/segmented: per channel, Silero VAD finds the utterances; `active` when one starts,
// `inactive` when it ends, then a final `segment` for its audio (with padding). With interim
// results, the utterance so far is transcribed every INTERIM_INTERVAL_SECONDS of new audio.
import type { Config } from '../config.js';
import { HeldAudio, heldWeight } from '../memory-budget.js';
import { addon, type NativeVadChannel } from '../native/binding.js';
import { TaskFailure, settle, toTaskFailure } from '../tasks.js';
import { AudioFrontEnd } from './audio-front-end.js';
import { BufferPool } from './buffer-pool.js';
import { ModelChannel } from './model-channel.js';
import { ProgressReporter } from './progress.js';
import type { Runner, RunnerOptions } from './runner.js';
import { SpeechDetector, WINDOW, type DetectorOptions, type SpeechEvent } from './speech-detector.js';
import type { VadBatcher } from './vad-batcher.js';
import { SAMPLE_RATE, frameBytes } from '../audio-format.js';

interface SegmentedRunnerOptions extends RunnerOptions {
  // Only `process` is used: an adapter may pass a wrapper that watches the VAD's progress.
  vad: Pick<VadBatcher, 'process'>;
  interimResults: boolean;
  config: Config;
}

/** Milliseconds as a count of 16 kHz samples (the VAD settings are in ms, the detector counts samples). */
const samplesInMs = (ms: number): number => Math.round((ms * SAMPLE_RATE) / 1000);
const MAX_VAD_REQUEST = SAMPLE_RATE; // one second, 31 windows
/** Interims come at least INTERIM_INTERVAL_SECONDS apart, and this fraction of the speech so far. */
const INTERIM_SPACING = 0.2;

// A stream sent faster than real time holds up to MAX_BACKLOG_SECONDS waiting for the VAD, so its
// history grows by doubling to megabytes; a flood of such streams (shed and reconnecting) made
// those allocations the V8 heap's largest churn: ~10 full collections a second per worker, all
// started by external memory pressure. So this thread's channels reuse each other's buffers.
const HISTORY_BUFFERS = new BufferPool(32 << 20);
const EMPTY = new Float32Array(0);

/**
 * The audio of one channel since `start` (stream samples), growing at the end, trimmed at the
 * front. It also holds audio still waiting for the VAD, up to MAX_BACKLOG_SECONDS: trimming
 * only moves `head`, and the held samples move to the buffer's front when appending would
 * otherwise grow it, so each sample is copied a bounded number of times however much is held.
 */
class AudioHistory {
  private buffer = HISTORY_BUFFERS.take(SAMPLE_RATE * 4);
  private head = 0; // buffer index of stream sample `start`
  private length = 0;
  start = 0;

  get end(): number {
    return this.start + this.length;
  }

  append(samples: Float32Array): void {
    if (this.head + this.length + samples.length > this.buffer.length) {
      const needed = this.length + samples.length;
      // Grow when the held audio would fill more than half of the buffer; otherwise compact.
      if (needed * 2 > this.buffer.length) {
        const grown = HISTORY_BUFFERS.take(Math.max(this.buffer.length * 2, needed));
        grown.set(this.buffer.subarray(this.head, this.head + this.length));
        HISTORY_BUFFERS.give(this.buffer);
        this.buffer = grown;
      } else {
        this.buffer.copyWithin(0, this.head, this.head + this.length);
      }
      this.head = 0;
    }
    this.buffer.set(samples, this.head + this.length);
    this.length += samples.length;
  }

  /** Forgets everything before stream sample `from`. */
  trimTo(from: number): void {
    const drop = Math.min(Math.max(0, from - this.start), this.length);
    this.head += drop;
    this.length -= drop;
    this.start += drop;
  }

  /** The channel is done with it: its buffer goes back to the pool (nothing else holds it). */
  release(): void {
    HISTORY_BUFFERS.give(this.buffer);
    this.buffer = EMPTY;
    this.head = 0;
    this.length = 0;
  }

  /** A copy of stream samples [from, to), clipped to what is held. */
  slice(from: number, to: number): Float32Array {
    const a = Math.max(from, this.start) - this.start;
    const b = Math.min(to, this.end) - this.start;
    return this.buffer.slice(this.head + a, this.head + Math.max(a, b));
  }
}

class SegmentedChannel {
  private readonly vadChannel: NativeVadChannel = new addon.VadChannel();
  private readonly detector: SpeechDetector;
  private readonly history = new AudioHistory();
  private readonly model: ModelChannel;
  private pending: Float32Array[] = [];
  private pendingSamples = 0;
  private vadInFlight = false;
  private inFlightSamples = 0; // the VAD request in flight

  private finishing = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private utterance = 0;
  private lastEnd = 0; // where the previous utterance's audio ended: padding never overlaps it
  private nextInterim = 0;
  private readonly padBefore: number;
  private readonly padAfter: number;
  private readonly interimInterval: number;
  private readonly maxBacklog: number;

  constructor(
    private readonly index: number,
    private readonly options: SegmentedRunnerOptions,
    private readonly progressed: () => void,
    /** The samples waiting for (or in) the VAD changed: the runner updates its held bytes. */
    private readonly heldChanged: () => void = () => {},
  ) {
    const { config } = options;
    const detector: DetectorOptions = {
      start: config.vadStartThreshold,
      end: config.vadEndThreshold,
      minSpeech: samplesInMs(config.vadMinSpeechMs),
      minSilence: samplesInMs(config.vadMinSilenceMs),
      // The model's input, speech plus the padding before it, stays within the maximum.
      maxUtterance: Math.max(samplesInMs(config.vadMinSpeechMs) + WINDOW, Math.round(config.maxUtteranceSeconds * SAMPLE_RATE) - samplesInMs(config.vadPadBeforeMs)),
    };
    this.detector = new SpeechDetector(detector);
    this.padBefore = samplesInMs(config.vadPadBeforeMs);
    this.padAfter = samplesInMs(config.vadPadAfterMs);
    this.interimInterval = Math.round(config.interimIntervalSeconds * SAMPLE_RATE);
    this.maxBacklog = config.maxBacklogSeconds * SAMPLE_RATE;
    this.model = new ModelChannel(index, Math.max(this.maxBacklog, 2 * detector.maxUtterance), options, progressed);
  }

  audio(samples: Float32Array): void {
    if (this.closed || samples.length === 0) return;
    this.history.append(samples);
    this.pending.push(samples);
    this.pendingSamples += samples.length;
    if (this.pendingSamples > this.maxBacklog) {
      throw new TaskFailure('BACKLOG', `channel ${this.index}: more than ${this.maxBacklog / SAMPLE_RATE} s of audio is waiting for the VAD`, false);
    }
    this.pump();
  }

  /** Samples waiting for the VAD or in its request. */
  get heldSamples(): number {
    return this.pendingSamples + this.inFlightSamples;
  }

  /** Stream samples done: through the VAD, and every final that starts before them sent. */
  get done(): number {
    return Math.min(this.detector.position, this.model.pendingFrom ?? Infinity);
  }

  /** All audio through the VAD, open speech ended, every result emitted. */
  async finish(): Promise<void> {
    this.finishing = true;
    this.pump();
    // Closed (aborted): nothing is sure to wake a waiter any more, and nothing is worth waiting for.
    if (!this.closed && (this.vadInFlight || this.pending.length > 0)) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.closed) return;
    const events: SpeechEvent[] = [];
    this.detector.finish(this.history.end, events);
    this.handle(events);
    await this.model.drained();
    this.close();
  }

  abort(): void {
    this.model.abort();
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.history.release();
    // Whatever is still in flight or pending: nothing more reaches the detector (a VAD answer
    // that finds the channel closed is dropped, pending audio is never sent), so finish() must
    // stop waiting now and return. wake()'s idle guard would leave it waiting forever.
    this.wakeAll();
  }

  private pump(): void {
    if (this.vadInFlight || this.closed) return;
    if (this.pendingSamples < WINDOW) {
      // Less than one Silero window gives no probability: it waits for more audio instead of
      // costing a native job (with 20 ms frames, every other frame). At the end it is dropped:
      // the VAD could not have judged it (the history keeps it for the last utterance).
      if (this.finishing) {
        this.pending = [];
        this.pendingSamples = 0;
      }
      if (this.pending.length === 0) this.wake();
      return;
    }
    // At most MAX_VAD_REQUEST of audio per request: one VAD batch serves every stream at once, so a
    // client that sent minutes of audio in one go must not make the batch (and every live stream
    // in it) wait for all of it. The rest goes in the next request.
    const audio = this.takeVadRequest();
    this.vadInFlight = true;
    this.inFlightSamples = audio.length;
    // A VAD batch serves many streams: this stream's span sums how long its requests waited.
    const asked = performance.now();
    settle('vad', this.options.vad.process(this.vadChannel, audio),
      (probs) => {
        this.vadInFlight = false;
        this.inFlightSamples = 0;
        this.options.trace.vadAnswered((performance.now() - asked) / 1000);
        if (this.closed) return;
        try {
          const events: SpeechEvent[] = [];
          this.detector.push(probs, events);
          this.handle(events);
          this.maybeInterim();
          this.trim();
          this.progressed();
        } catch (e) {
          this.options.fail(toTaskFailure(e));
          return;
        }
        this.pump();
        this.heldChanged();
      },
      (failure) => {
        this.vadInFlight = false;
        this.inFlightSamples = 0;
        if (!this.closed) this.options.fail(failure);
        this.wake();
      });
  }

  /** The next MAX_VAD_REQUEST samples (or fewer) from the front of `pending`, copying only what
   *  it takes: a backlog of many seconds is not copied again for each second the VAD is sent. */
  private takeVadRequest(): Float32Array {
    const first = this.pending[0]!;
    const n = Math.min(this.pendingSamples, MAX_VAD_REQUEST);
    this.pendingSamples -= n;
    if (first.length >= n) { // within one chunk: a view, no copy
      if (first.length === n) this.pending.shift();
      else this.pending[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Float32Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.pending[0]!;
      const k = Math.min(chunk.length, n - filled);
      out.set(chunk.subarray(0, k), filled);
      filled += k;
      if (k === chunk.length) this.pending.shift();
      else this.pending[0] = chunk.subarray(k);
    }
    return out;
  }

  private handle(events: SpeechEvent[]): void {
    const { emit } = this.options;
    for (const e of events) {
      if (e.kind === 'start') {
        this.utterance++;
        this.nextInterim = e.at + this.interimInterval;
        emit({ type: 'active', channel: this.index, time: e.at / SAMPLE_RATE });
        continue;
      }
      emit({ type: 'inactive', channel: this.index, time: e.at / SAMPLE_RATE });
      const start = this.paddedStart(e.from);
      const end = e.forced ? e.at : Math.min(e.at + this.padAfter, this.history.end);
      this.model.enqueue({ samples: this.history.slice(start, end), start, end, utterance: this.utterance, isFinal: true });
      this.lastEnd = end;
    }
  }

  /** An utterance's audio starts `pad` before its speech, never inside the previous utterance. */
  private paddedStart(onset: number): number {
    return Math.max(this.lastEnd, onset - this.padBefore, 0);
  }

  /** With interim results, the utterance so far every interimInterval of new audio. */
  private maybeInterim(): void {
    const onset = this.detector.speechStart;
    if (!this.options.interimResults || onset === undefined) return;
    const position = this.detector.position;
    if (position < this.nextInterim) return;
    // Each interim re-encodes the utterance so far: spacing them by a fixed fraction of its
    // length (once that exceeds the interval) keeps an utterance's interims linear in its length.
    this.nextInterim = position + Math.max(this.interimInterval, Math.round(INTERIM_SPACING * (position - onset)));
    const start = this.paddedStart(onset);
    this.model.enqueue({ samples: this.history.slice(start, position), start, end: position, utterance: this.utterance, isFinal: false });
  }

  /** Keeps only what a future utterance may need: the possible speech, or the padding before it. */
  private trim(): void {
    const position = this.detector.position;
    const onset = this.detector.candidateStart;
    this.history.trimTo(Math.min(onset === undefined ? position : this.paddedStart(onset), position - this.padBefore));
  }

  private wake(): void {
    if (this.vadInFlight || this.pending.length > 0) return;
    this.wakeAll();
  }

  private wakeAll(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

export class SegmentedRunner implements Runner {
  private readonly frontEnd: AudioFrontEnd;
  private readonly channels: SegmentedChannel[] = [];
  // MEMORY_BUDGET_BYTES: the front end's wire bytes not yet delivered decoded, counted at their
  // heaviest (heldWeight), plus the samples waiting for the VAD.
  private readonly held: HeldAudio;
  private readonly weight: number;

  constructor(options: SegmentedRunnerOptions) {
    const { format } = options;
    this.held = options.held ?? HeldAudio.none();
    this.weight = heldWeight(format.sampleRate * frameBytes(format), format.channels);
    const progress = options.progress
      ? new ProgressReporter(options.emit, () => Math.min(...this.channels.map((c) => c.done)) / SAMPLE_RATE)
      : undefined;
    const progressed = (): void => progress?.check();
    const heldChanged = (): void => this.account();
    for (let c = 0; c < format.channels; c++) this.channels.push(new SegmentedChannel(c, options, progressed, heldChanged));
    this.frontEnd = new AudioFrontEnd(format, {
      audio: (chunks) => {
        try {
          chunks.forEach((samples, c) => this.channels[c]?.audio(samples));
        } finally {
          this.account();
        }
      },
      fail: options.fail,
    }, options.decoder, options.config.maxBacklogSeconds, options.trace);
  }

  push(bytes: Uint8Array): void {
    try {
      this.frontEnd.push(bytes);
    } finally {
      this.account();
    }
  }

  private account(): void {
    let samples = 0;
    for (const c of this.channels) samples += c.heldSamples;
    this.held.set(this.frontEnd.heldBytes * this.weight + samples * Float32Array.BYTES_PER_ELEMENT);
  }

  async finish(): Promise<void> {
    await this.frontEnd.finish();
    this.frontEnd.close();
    await Promise.all(this.channels.map((c) => c.finish()));
  }

  abort(): void {
    this.frontEnd.close();
    for (const c of this.channels) c.abort();
  }
}
