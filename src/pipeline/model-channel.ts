// One channel's model runner: windows of 16 kHz audio in, segment events out, in order.
// At most one request per channel is with the inference scheduler (which batches requests of
// many channels into one model job); the rest wait in a queue bounded by seconds of audio, beyond
// which the stream is failed with BACKLOG (see Session). Each interim's tokens are the draft of
// the next request on the same utterance, so the model re-decodes only what changed.
import type { InferenceRequest, StreamKey } from './inference-scheduler.js';
import type { RunnerOptions, SharedModel } from './runner.js';
import type { Metrics } from '../metrics/registry.js';
import type { ServerEvent } from '../protocol.js';
import { SAMPLE_RATE } from '../audio-format.js';
import { TaskFailure, clientCode, settle } from '../tasks.js';
import type { Attributes, StreamTrace } from '../tracing.js';



interface Window {
  samples: Float32Array;
  /** Stream time of the first and one past the last sample, in samples at 16 kHz. */
  start: number;
  end: number;
  /** Segmented route: the utterance this window transcribes, final or interim. */
  utterance?: number;
  isFinal?: boolean;
}

interface Queued extends Window {
  queuedAt: number; // performance.now()
}

export class ModelChannel {
  private readonly queue: Queued[] = [];
  private queuedSamples = 0;
  private inFlight = false;
  private inFlightFinal: number | undefined; // start of the final or window in flight
  private waitingInterim: { utterance: number; request: InferenceRequest } | undefined; // the interim in flight, if any
  private aborted = false;
  private idleWaiters: (() => void)[] = [];
  // The latest interim's tokens: the draft of the next request on the same utterance.
  private draft: { utterance: number; ids: Int32Array } | undefined;

  private readonly model: SharedModel;
  private readonly emit: (event: ServerEvent) => void;
  private readonly fail: (failure: TaskFailure) => void;
  private readonly metrics: Metrics;
  private readonly trace: StreamTrace;
  // Stream time runs from its start: when a window's audio was due at real time orders it for
  // the model, and the youngest stream is the first shed under overload.
  private readonly stream: StreamKey;

  constructor(
    private readonly channel: number,
    private readonly maxBacklogSamples: number,
    options: Pick<RunnerOptions, 'model' | 'emit' | 'fail' | 'metrics' | 'trace' | 'stream'>,
    /** After each result (or failure) is delivered: the runner's progress may have moved. */
    private readonly afterResult: () => void = () => {},
  ) {
    ({ model: this.model, emit: this.emit, fail: this.fail, metrics: this.metrics, trace: this.trace, stream: this.stream } = options);
  }

  enqueue(window: Window): void {
    if (this.aborted) return;
    if (window.utterance !== undefined) {
      // A newer interim replaces a queued one; a final makes its utterance's queued interims moot.
      // An interim already running still arrives, before the final: the queue keeps order.
      for (let i = this.queue.length - 1; i >= 0; i--) {
        const queued = this.queue[i]!;
        if (queued.utterance === window.utterance && queued.isFinal === false) {
          this.queuedSamples -= queued.samples.length;
          this.queue.splice(i, 1);
        }
      }
      if (window.isFinal === false && this.queuedSamples + window.samples.length > this.maxBacklogSamples) {
        return; // interims are best-effort: shed, never fail the stream
      }
    }
    if (this.queuedSamples + window.samples.length > this.maxBacklogSamples) {
      throw new TaskFailure('BACKLOG', `channel ${this.channel}: more than ${this.maxBacklogSamples / SAMPLE_RATE} s of audio is waiting for the model`, false);
    }
    this.queue.push({ ...window, queuedAt: performance.now() });
    this.queuedSamples += window.samples.length;
    // A final need not wait for its utterance's interim that has not started: that is withdrawn.
    const interim = this.waitingInterim;
    if (window.isFinal === true && interim !== undefined && interim.utterance === window.utterance) this.model.scheduler.withdraw(interim.request);
    this.pump();
  }

  /** Where the earliest final or window still waiting for its result starts (stream samples);
   *  undefined when none waits. Interims do not hold progress back. */
  get pendingFrom(): number | undefined {
    let from = this.inFlightFinal;
    for (const w of this.queue) {
      if (w.isFinal === false) continue;
      from = from === undefined ? w.start : Math.min(from, w.start);
      break; // the queue is in stream order
    }
    return from;
  }

  /** Resolves once every queued window has produced its event (at once after abort()). */
  drained(): Promise<void> {
    // Aborted, nothing more will be emitted: resolve at once, as abort() woke the waiters it found
    // even with the dropped window still running. A waiter added now would never be woken: pump()
    // returns on `aborted` before wakeIdle().
    if (this.aborted || (!this.inFlight && this.queue.length === 0)) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops queued work; a job in flight finishes but its result is discarded. */
  abort(): void {
    this.aborted = true;
    this.queue.length = 0;
    this.queuedSamples = 0;
    this.wakeIdle();
  }

  private pump(): void {
    if (this.inFlight || this.aborted) return;
    const window = this.queue.shift();
    if (!window) {
      this.wakeIdle();
      return;
    }
    this.queuedSamples -= window.samples.length;
    this.inFlight = true;
    this.inFlightFinal = window.isFinal === false ? undefined : window.start;
    const media = window.samples.length / SAMPLE_RATE;
    const span = this.trace.stage('model_inference', this.trace.recording ? spanAttributes(this.channel, window) : {});
    const done = (): void => {
      this.inFlight = false;
      this.inFlightFinal = undefined;
      this.waitingInterim = undefined;
      this.afterResult();
      this.pump();
    };
    const aheadSeconds = window.end / SAMPLE_RATE - (window.queuedAt - this.stream.startedAt) / 1000;
    const queuedSecondsAgo = (performance.now() - window.queuedAt) / 1000;
    const draft = window.utterance !== undefined && window.utterance === this.draft?.utterance ? this.draft.ids : undefined;
    const scheduled = performance.now();
    const request = {
      samples: window.samples, draft, interim: window.isFinal === false, aheadSeconds, queuedSecondsAgo, stream: this.stream, cancelled: () => this.aborted,
    };
    this.waitingInterim = request.interim && window.utterance !== undefined ? { utterance: window.utterance, request } : undefined;
    settle('inference', this.model.scheduler.submit(request),
      (out) => {
        if (out === undefined) { // the client left, or an interim was skipped (finals first) or withdrawn (its final came)
          span.fail('CANCELLED', this.aborted ? 'the client left before the model ran' : 'interim skipped: finals first');
          done();
          return;
        }
        using record = this.metrics.stage('model_inference', media);
        record.ran(out.costSeconds);
        this.metrics.inferenceBatchRows.observe(out.rows);
        const waited = (performance.now() - scheduled) / 1000 - out.runSeconds;
        this.metrics.inferenceWait.observe({ kind: request.interim ? 'interim' : 'final' }, waited);
        span.end(out, {
          'speech.scheduler_wait_seconds': waited - out.waitSeconds,
          'speech.batch_rows': out.rows,
          'speech.decoder_calls': out.decoderCalls,
          ...(this.aborted ? { 'speech.discarded': true } : {}),
        });
        // The next request on this utterance starts from this answer; a final ends the utterance.
        this.draft = window.utterance !== undefined && window.isFinal === false ? { utterance: window.utterance, ids: out.ids } : undefined;
        if (!this.aborted) {
          const event: ServerEvent = {
            type: 'segment',
            channel: this.channel,
            start_time: window.start / SAMPLE_RATE,
            end_time: window.end / SAMPLE_RATE,
          };
          if (window.isFinal !== undefined) event.is_final = window.isFinal;
          if (out.count !== undefined) event.count = out.count;
          if (out.text !== undefined) event.text = out.text;
          this.emit(event);
        }
        done();
      },
      (failure) => {
        if (failure.code === 'OVERLOADED') { // the scheduler shed this stream: it cannot go on
          span.fail('OVERLOADED', failure.message);
          done();
          if (!this.aborted) this.fail(failure);
          return;
        }
        const code = clientCode(failure);
        span.fail(code, failure.message);
        if (!this.aborted) {
          const times = `${(window.start / SAMPLE_RATE).toFixed(3)}-${(window.end / SAMPLE_RATE).toFixed(3)} s`;
          this.emit({
            type: 'error',
            channel: this.channel,
            code,
            message: `the model failed on ${times}: ${failure.message}`,
          });
        }
        done();
      });
  }

  private wakeIdle(): void {
    if (this.inFlight && !this.aborted) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

/** A model inference span's attributes: which audio it transcribes and how long it waited. */
function spanAttributes(channel: number, window: Queued): Attributes {
  const attributes: Attributes = {
    'speech.channel': channel,
    'speech.start_time': window.start / SAMPLE_RATE,
    'speech.end_time': window.end / SAMPLE_RATE,
    'speech.audio_seconds': window.samples.length / SAMPLE_RATE,
    'speech.queue_seconds': (performance.now() - window.queuedAt) / 1000,
  };
  if (window.isFinal !== undefined) attributes['speech.is_final'] = window.isFinal;
  if (window.utterance !== undefined) attributes['speech.utterance'] = window.utterance;
  return attributes;
}
