// Wire bytes in, 16 kHz float per channel out, through the native AudioStream. One decode job in
// flight per stream; bytes arriving meanwhile wait (bounded) and the next job takes all of them,
// so a loaded server runs fewer, larger jobs.
import { addon, type AudioChunk, type NativeAudioStream, type NativeFormat } from '../native/binding.js';
import type { Metrics } from '../metrics/registry.js';
import { TaskFailure, settle, toTaskFailure } from '../tasks.js';
import type { StreamTrace } from '../tracing.js';

export interface FrontEndSink {
  /** 16 kHz samples for each channel, in stream order. May throw TaskFailure (e.g. BACKLOG). */
  audio(channels: Float32Array[]): void;
  /** The stream cannot go on (a failed decode, a backlog). */
  fail(failure: TaskFailure): void;
}

export class AudioFrontEnd {
  // The native stream is this stream's audio_decoding task.
  private readonly stream: NativeAudioStream;
  private readonly bytesPerSecond: number;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private inFlight = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly format: NativeFormat,
    private readonly sink: FrontEndSink,
    private readonly metrics: Metrics,
    private readonly maxBacklogSeconds: number,
    // Decode jobs are small and many: summed on the stream's span, no span each.
    private readonly trace: StreamTrace,
  ) {
    this.stream = new addon.AudioStream(format);
    this.bytesPerSecond = format.sampleRate * format.channels * (format.bitDepth / 8);
  }

  backlogSeconds(): number {
    return this.pendingBytes / this.bytesPerSecond;
  }

  /** Takes ownership of `bytes`. */
  push(bytes: Uint8Array): void {
    if (this.closed || bytes.length === 0) return;
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.backlogSeconds() > this.maxBacklogSeconds) {
      throw new TaskFailure('BACKLOG', `more than ${this.maxBacklogSeconds} s of audio is waiting to be decoded`, false);
    }
    this.pump();
  }

  /** Decodes everything pending, then the resamplers' tails. Resolves when all of it reached the sink. */
  async finish(): Promise<void> {
    await this.idle();
    if (this.closed) return;
    this.inFlight = true;
    try {
      const chunk = await this.stream.flush();
      this.trace.decoded(chunk);
      if (!this.closed) this.deliver(chunk);
    } catch (e) {
      if (!this.closed) this.sink.fail(toTaskFailure(e));
    } finally {
      this.inFlight = false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.stream.close();
    this.wakeIdle();
  }

  private idle(): Promise<void> {
    if (!this.inFlight && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (this.inFlight || this.closed) return;
    if (this.pending.length === 0) {
      this.wakeIdle();
      return;
    }
    const bytes = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlight = true;
    const media = bytes.length / this.bytesPerSecond;
    settle('audio_decoding', this.stream.push(bytes),
      (chunk) => {
        using record = this.metrics.stage('audio_decoding', media);
        record.ran(chunk.runSeconds);
        this.trace.decoded(chunk);
        this.inFlight = false;
        if (this.closed) return;
        this.deliver(chunk);
        this.pump();
      },
      (failure) => {
        this.inFlight = false;
        if (this.closed) return;
        this.sink.fail(failure);
      });
  }

  private deliver(chunk: AudioChunk): void {
    try {
      this.sink.audio(chunk.channels);
    } catch (e) {
      if (!(e instanceof TaskFailure)) throw e;
      this.sink.fail(e);
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
