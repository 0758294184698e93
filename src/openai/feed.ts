// Feeds audio through the segmented pipeline (the route /api/v1/segmented runs): the native
// decoder and resampler, Silero VAD cutting it into utterances, the model through the shared
// inference scheduler. An adapter, not a second engine. An upload arrives all at once, far faster
// than real time, so it is fed with flow control instead of being pushed whole: the next second
// goes in only while the VAD is within FEED_AHEAD_SECONDS of what was pushed and the utterances
// waiting for the model leave room for one more of the longest kind. The pipeline's
// MAX_BACKLOG_SECONDS bounds (meant to shed live streams that fall behind) are therefore never
// reached, whatever the length, and memory stays flat.
import type { Config } from '../config.js';
import type { SessionDeps } from '../session.js';
import type { NativeFormat, NativeVadChannel } from '../native/binding.js';
import { SegmentedRunner } from '../pipeline/segmented-runner.js';
import type { ServerEvent } from '../protocol.js';
import { SAMPLE_RATE, frameBytes } from '../audio-format.js';
import { startStreamTrace, type StreamTrace } from '../tracing.js';
import { toTaskFailure, type TaskFailure } from '../tasks.js';
import type { AudioSource } from './audio-input.js';
import { OpenAiError } from './errors.js';
import type { Segment, Transcript } from './formats.js';

export type PipelineDeps = Omit<SessionDeps, 'route'>;

const FEED_AHEAD_SECONDS = 2;

interface PipelineFeedOptions {
  format: NativeFormat;
  /** Metrics label and trace route of the stream. */
  route: string;
  /** The pipeline's settings (a realtime session may set its own VAD thresholds). */
  config: Config;
  /** Every pipeline event: active, inactive, segment (final), error (one window failed). */
  onEvent: (event: ServerEvent) => void;
  /** The stream cannot go on (a failed decode, OVERLOADED). */
  onFailure: (failure: TaskFailure) => void;
  /** Interim results (segments with is_final false) while an utterance goes on. */
  interimResults?: boolean;
}

/** One stream through the segmented pipeline, written to at any speed, fed at the pipeline's. */
export class PipelineFeed {
  private readonly runner: SegmentedRunner;
  private readonly trace: StreamTrace;
  private readonly bytesPerSecond: number;
  private readonly piece: number; // bytes of one second, whole frames
  private readonly modelRoom: number;
  private readonly pads: number;
  private readonly channels: number;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private vadSamples = 0; // 16 kHz samples the VAD has answered for, summed over channels
  private pushed = 0; // seconds
  // Per channel: the estimated seconds of each utterance handed to the model and not yet back.
  private readonly waiting: number[][];
  private readonly openAt: (number | undefined)[];
  private waiters: (() => void)[] = [];
  private failed: TaskFailure | undefined;
  private stopped = false;

  constructor(deps: PipelineDeps, private readonly options: PipelineFeedOptions) {
    const { config, format } = options;
    this.channels = format.channels;
    this.bytesPerSecond = format.sampleRate * frameBytes(format);
    this.piece = format.sampleRate * frameBytes(format);
    this.pads = (config.vadPadBeforeMs + config.vadPadAfterMs) / 1000;
    // ModelChannel's bound (see SegmentedChannel), less one longest utterance and what the VAD
    // may still find in the audio it was given ahead: the room to go on pushing.
    const modelBound = Math.max(config.maxBacklogSeconds, 2 * (config.maxUtteranceSeconds - config.vadPadBeforeMs / 1000));
    this.modelRoom = modelBound - config.maxUtteranceSeconds - FEED_AHEAD_SECONDS - 2 * this.pads - 1;
    this.waiting = Array.from({ length: this.channels }, () => []);
    this.openAt = Array.from({ length: this.channels }, () => undefined);
    const vad = {
      process: async (channel: NativeVadChannel, audio: Float32Array): Promise<Float32Array> => {
        const probs = await deps.vad.process(channel, audio);
        this.vadSamples += audio.length;
        this.progress();
        return probs;
      },
    };
    this.trace = startStreamTrace({ route: options.route, format, traceId: null });
    this.runner = new SegmentedRunner({
      format, decoder: deps.decoder, model: deps.model, vad, config, metrics: deps.metrics, trace: this.trace,
      emit: (event) => this.onEvent(event),
      fail: (failure) => {
        if (this.failed || this.stopped) return;
        this.failed = failure;
        this.options.onFailure(failure);
        this.progress();
      },
      stream: { startedAt: performance.now() }, interimResults: options.interimResults ?? false,
    });
    deps.metrics.streamStarted(options.route);
    this.metricsEnd = () => deps.metrics.streamEnded(options.route);
  }

  private readonly metricsEnd: () => void;

  /** Seconds of audio written and not yet in the pipeline. */
  get backlogSeconds(): number {
    return this.queued / this.bytesPerSecond;
  }

  /** Seconds of audio in the pipeline so far. */
  get seconds(): number {
    return this.pushed;
  }

  /** Takes ownership of `bytes` (any length, whole frames or not). */
  write(bytes: Uint8Array): void {
    if (this.stopped || this.failed || bytes.length === 0) return;
    this.queue.push(bytes);
    this.queued += bytes.length;
    this.pump();
  }

  /** Resolves once at most a second waits to go in (or the stream failed or stopped). */
  async room(): Promise<void> {
    while (!this.stopped && !this.failed && this.queued > this.piece) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Everything written goes through; resolves when every final result has been emitted. */
  async end(): Promise<void> {
    while (!this.stopped && !this.failed && this.queued > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
    try {
      if (!this.stopped && !this.failed) await this.runner.finish();
    } finally {
      this.close(this.failed ? 'failed' : 'finished');
    }
  }

  /** Drops everything written and pending; nothing more is emitted. */
  abort(outcome = 'aborted'): void {
    if (this.stopped) return;
    this.runner.abort();
    this.close(outcome);
  }

  private close(outcome: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.queue = [];
    this.queued = 0;
    this.trace.end({ outcome, audioSeconds: this.pushed });
    this.metricsEnd();
    this.progress();
  }

  private ready(): boolean {
    const vadBehind = this.pushed - this.vadSamples / this.channels / SAMPLE_RATE;
    const waiting = Math.max(...this.waiting.map((w) => w.reduce((a, b) => a + b, 0)));
    return vadBehind <= FEED_AHEAD_SECONDS && (waiting === 0 || waiting <= this.modelRoom);
  }

  private pump(): void {
    while (!this.stopped && !this.failed && this.queued > 0 && this.ready()) {
      const bytes = this.take();
      this.pushed += bytes.length / this.bytesPerSecond;
      try {
        this.runner.push(bytes);
      } catch (e) {
        // BACKLOG would mean the flow control above is wrong; reported, not hidden.
        this.failed = toTaskFailure(e);
        this.options.onFailure(this.failed);
      }
    }
    this.wake();
  }

  /** Up to one second from the front of the queue. */
  private take(): Uint8Array {
    const first = this.queue[0]!;
    const n = Math.min(this.piece, this.queued);
    this.queued -= n;
    if (first.length >= n) {
      if (first.length === n) this.queue.shift();
      else this.queue[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.queue[0]!;
      const k = Math.min(chunk.length, n - filled);
      out.set(chunk.subarray(0, k), filled);
      filled += k;
      if (k === chunk.length) this.queue.shift();
      else this.queue[0] = chunk.subarray(k);
    }
    return out;
  }

  private progress(): void {
    this.pump();
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private onEvent(event: ServerEvent): void {
    if (event.type === 'active') {
      this.openAt[event.channel] = event.time;
    } else if (event.type === 'inactive') {
      this.waiting[event.channel]?.push(event.time - (this.openAt[event.channel] ?? event.time) + this.pads);
      this.openAt[event.channel] = undefined;
    } else if (event.type === 'segment' || event.type === 'error') {
      this.waiting[event.channel]?.shift();
    }
    if (!this.stopped) this.options.onEvent(event);
    if (event.type === 'segment' || event.type === 'error') this.progress();
  }
}

interface TranscribeOptions {
  /** A final segment, as soon as the model returns it (for streamed responses). */
  onSegment?: (segment: Segment) => void;
  /** True once the client has gone: feeding stops and pending work is dropped. */
  aborted: () => boolean;
  route: string;
}

/** One uploaded file, start to end, through the pipeline. */
export async function transcribe(deps: PipelineDeps, source: AudioSource, options: TranscribeOptions): Promise<Transcript> {
  const { config } = deps;
  const segments: (Segment & { channel: number })[] = [];
  let modelError: string | undefined;
  let failure: TaskFailure | undefined;
  const feed = new PipelineFeed(deps, {
    format: source.format, route: options.route, config,
    onEvent: (event) => {
      if (event.type === 'segment') {
        const segment = { channel: event.channel, start: event.start_time, end: event.end_time, text: event.text ?? '' };
        segments.push(segment);
        if (segment.text.trim() !== '') options.onSegment?.({ start: segment.start, end: segment.end, text: segment.text });
      } else if (event.type === 'error') {
        modelError ??= event.message;
      }
    },
    onFailure: (f) => { failure ??= f; },
  });
  const stopIfFailed = (): void => {
    if (options.aborted()) throw new OpenAiError(499, 'the client went away');
    if (failure) {
      throw failure.code === 'OVERLOADED'
        ? new OpenAiError(503, `the server is over capacity: ${failure.message}`, null, 'overloaded')
        : new OpenAiError(500, `transcription failed: ${failure.message}`, null, failure.code.toLowerCase());
    }
    if (modelError !== undefined) throw new OpenAiError(500, `transcription failed: ${modelError}`, null, 'model_failure');
  };
  try {
    for (;;) {
      await feed.room();
      stopIfFailed();
      const piece = await source.next();
      if (piece === undefined) break;
      const seconds = feed.seconds + feed.backlogSeconds + piece.length / (source.format.sampleRate * frameBytes(source.format));
      if (seconds > config.maxUploadSeconds) {
        throw new OpenAiError(400, `the audio is longer than the limit of ${config.maxUploadSeconds} s (MAX_UPLOAD_SECONDS)`, 'file', 'audio_too_long');
      }
      deps.metrics.audioReceived.inc(piece.length / (source.format.sampleRate * frameBytes(source.format)));
      feed.write(piece);
    }
    await feed.end();
    stopIfFailed();
  } catch (e) {
    feed.abort(e instanceof OpenAiError ? (e.code ?? 'failed') : 'failed');
    throw e;
  } finally {
    source.close();
  }
  // Channels are transcribed on their own; their segments are merged in time order.
  segments.sort((a, b) => a.start - b.start || a.channel - b.channel);
  return { segments: segments.map(({ start, end, text }) => ({ start, end, text })), duration: feed.seconds };
}
