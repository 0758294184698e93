// Feeds one uploaded file through the segmented pipeline (the route /api/v1/segmented runs): the
// native decoder and resampler, Silero VAD cutting it into utterances, the model through the
// shared inference scheduler. It is an adapter, not a second engine. A file arrives all at once,
// far faster than real time, so it is fed with flow control instead of being pushed whole: the
// next second goes in only while the VAD is within FEED_AHEAD_SECONDS of what was pushed and the
// utterances waiting for the model leave room for one more of the longest kind. The pipeline's
// MAX_BACKLOG_SECONDS bounds (meant to shed live streams that fall behind) are therefore never
// reached, whatever the file's length, and memory stays flat.
import type { SessionDeps } from '../session.js';
import type { NativeVadChannel } from '../native/binding.js';
import { SegmentedRunner } from '../pipeline/segmented-runner.js';
import type { ServerEvent } from '../protocol.js';
import { frameBytes } from '../protocol.js';
import { startStreamTrace } from '../tracing.js';
import type { TaskFailure } from '../tasks.js';
import type { AudioSource } from './audio-input.js';
import { OpenAiError } from './errors.js';
import type { Segment, Transcript } from './formats.js';

export type PipelineDeps = Omit<SessionDeps, 'route'>;

const FEED_AHEAD_SECONDS = 2;
const SAMPLE_RATE = 16_000;

export interface FeedOptions {
  /** A final segment, as soon as the model returns it (for streamed responses). */
  onSegment?: (segment: Segment) => void;
  /** True once the client has gone: feeding stops and pending work is dropped. */
  aborted: () => boolean;
  /** Metrics label for the stream. */
  route: string;
}

export async function transcribe(deps: PipelineDeps, source: AudioSource, options: FeedOptions): Promise<Transcript> {
  const { config, metrics } = deps;
  const format = source.format;
  const bytesPerSecond = format.sampleRate * frameBytes(format);
  const pads = (config.vadPadBeforeMs + config.vadPadAfterMs) / 1000;
  // ModelChannel's bound (see SegmentedChannel), less one longest utterance and what the VAD may
  // still find in the audio it was given ahead: room to go on pushing.
  const modelBound = Math.max(config.maxBacklogSeconds, 2 * (config.maxUtteranceSeconds - config.vadPadBeforeMs / 1000));
  const modelRoom = modelBound - config.maxUtteranceSeconds - FEED_AHEAD_SECONDS - 2 * pads - 1;
  const channels = format.channels;

  let vadSamples = 0; // 16 kHz samples the VAD has answered for, summed over channels
  let pushedSeconds = 0;
  let failure: TaskFailure | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  // Per channel: the estimated seconds of each utterance handed to the model and not yet back.
  const waiting: number[][] = Array.from({ length: channels }, () => []);
  const openAt: (number | undefined)[] = Array.from({ length: channels }, () => undefined);
  const segments: (Segment & { channel: number })[] = [];
  let modelError: string | undefined;

  const vad = {
    process: async (channel: NativeVadChannel, audio: Float32Array): Promise<Float32Array> => {
      const probs = await deps.vad.process(channel, audio);
      vadSamples += audio.length;
      notify();
      return probs;
    },
  };
  const emit = (event: ServerEvent): void => {
    if (event.type === 'active') {
      openAt[event.channel] = event.time;
    } else if (event.type === 'inactive') {
      waiting[event.channel]?.push(event.time - (openAt[event.channel] ?? event.time) + pads);
      openAt[event.channel] = undefined;
    } else if (event.type === 'segment') {
      waiting[event.channel]?.shift();
      const segment = { channel: event.channel, start: event.start_time, end: event.end_time, text: event.text ?? '' };
      segments.push(segment);
      if (segment.text.trim() !== '') options.onSegment?.({ start: segment.start, end: segment.end, text: segment.text });
      notify();
    } else if (event.type === 'error') {
      waiting[event.channel]?.shift();
      modelError ??= event.message;
      notify();
    }
  };
  const fail = (f: TaskFailure): void => {
    failure ??= f;
    notify();
  };
  const trace = startStreamTrace({ route: options.route, format, traceId: null });
  const runner = new SegmentedRunner({
    format, decoder: deps.decoder, model: deps.model, vad, config, metrics, emit, fail, trace,
    stream: { startedAt: performance.now() }, interimResults: false,
  });
  metrics.streamStarted(options.route);
  let outcome = 'finished';
  const ready = (): boolean => {
    if (failure || modelError !== undefined || options.aborted()) return true;
    const vadBehind = pushedSeconds - vadSamples / channels / SAMPLE_RATE;
    const queued = Math.max(...waiting.map((w) => w.reduce((a, b) => a + b, 0)));
    return vadBehind <= FEED_AHEAD_SECONDS && (queued === 0 || queued <= modelRoom);
  };
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
      while (!ready()) await new Promise<void>((resolve) => { wake = resolve; });
      stopIfFailed();
      const piece = await source.next();
      if (piece === undefined) break;
      const seconds = piece.length / bytesPerSecond;
      if (pushedSeconds + seconds > config.maxUploadSeconds) {
        throw new OpenAiError(400, `the audio is longer than the limit of ${config.maxUploadSeconds} s (MAX_UPLOAD_SECONDS)`, 'file', 'audio_too_long');
      }
      pushedSeconds += seconds;
      metrics.audioReceived.inc(seconds);
      runner.push(piece);
    }
    await runner.finish();
    stopIfFailed();
  } catch (e) {
    outcome = e instanceof OpenAiError ? (e.code ?? 'failed') : 'failed';
    runner.abort();
    throw e;
  } finally {
    source.close();
    trace.end({ outcome, audioSeconds: pushedSeconds });
    metrics.streamEnded(options.route);
  }
  // Channels are transcribed on their own; their segments are merged in time order.
  segments.sort((a, b) => a.start - b.start || a.channel - b.channel);
  return { segments: segments.map(({ start, end, text }) => ({ start, end, text })), duration: pushedSeconds };
}
