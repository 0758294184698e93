// Wire bytes in, 16 kHz float per channel out, through the native AudioStream. One decode job in
// flight per stream; bytes arriving meanwhile wait (bounded) and the next job takes all of them.
// Decode jobs go through the shared DecodeBatcher, which runs many streams' bytes as one job, so
// a loaded server runs fewer, larger jobs; only the end-of-stream flush is a job of its own.
import { addon, type AudioChunk, type NativeAudioStream, type NativeFormat } from '../native/binding.js';
import { settle, TaskFailure, toTaskFailure } from '../tasks.js';
import type { StreamTrace } from '../tracing.js';
import type { DecodeBatcher, DecodeClient } from './decode-batcher.js';

interface FrontEndSink {
  /** 16 kHz samples for each channel, in stream order. May throw TaskFailure (e.g. BACKLOG). */
  audio(channels: Float32Array[]): void;
  /** The stream cannot go on (a failed decode, a backlog). */
  fail(failure: TaskFailure): void;
}

export class AudioFrontEnd {
  // The native decoder and resampler state (an addon.AudioStream), and this stream's
  // audio_decoding task (its flush a job of its own; its pushes run in the batcher's jobs).
  private readonly codec: NativeAudioStream;
  private readonly bytesPerSecond: number;
  // What the batcher sees of this front end: made once, not per frame.
  private readonly client: DecodeClient;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private inFlightBytes = 0; // in the decode job in flight
  private inFlight = false; // a decode job (batched) or the flush has the stream
  private requested = false; // waiting in the batcher for a job
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly format: NativeFormat,
    private readonly sink: FrontEndSink,
    private readonly decoder: DecodeBatcher,
    private readonly maxBacklogSeconds: number,
    // Decode jobs are small and many: summed on the stream's span, no span each.
    private readonly trace: StreamTrace,
  ) {
    this.codec = new addon.AudioStream(format);
    // A rate whose filter bank is not cached yet gets it designed on a worker (milliseconds): the
    // stream's first decode waits for it, like behind a decode job in flight.
    const ready = this.codec.prepare();
    if (ready) {
      this.inFlight = true;
      settle('audio_decoding', ready, () => this.prepared(), (failure) => this.failed(failure));
    }
    this.bytesPerSecond = format.sampleRate * format.channels * (format.bitDepth / 8);
    this.client = {
      codec: this.codec,
      take: () => this.take(),
      decoded: (chunk) => this.decoded(chunk),
      failed: (failure) => this.failed(failure),
    };
  }

  backlogSeconds(): number {
    return this.pendingBytes / this.bytesPerSecond;
  }

  /** Wire bytes pushed and not yet delivered decoded: waiting, or in the decode job in flight. */
  get heldBytes(): number {
    return this.pendingBytes + this.inFlightBytes;
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
    if (this.closed) return; // nothing would wake it: a closed stream's last job delivers nothing
    await this.idle();
    if (this.closed) return;
    this.inFlight = true;
    try {
      const chunk = await this.codec.flush();
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
    this.inFlightBytes = 0;
    if (this.requested) {
      this.requested = false;
      this.decoder.cancel(this.client);
    }
    // A batch already decoding this stream keeps it pinned and finishes; its chunk is dropped.
    this.codec.close();
    this.wakeIdle();
  }

  private idle(): Promise<void> {
    if (!this.inFlight && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (this.inFlight || this.requested || this.closed) return;
    if (this.pending.length === 0) {
      this.wakeIdle();
      return;
    }
    this.requested = true;
    this.decoder.request(this.client);
  }

  /** The batcher dispatches this stream's job: everything pending goes into it. */
  private take(): Uint8Array | undefined {
    this.requested = false;
    if (this.closed || this.inFlight || this.pending.length === 0) return undefined;
    const bytes = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.inFlightBytes = this.pendingBytes;
    this.pendingBytes = 0;
    this.inFlight = true;
    return bytes;
  }

  private decoded(chunk: AudioChunk): void {
    this.trace.decoded(chunk);
    this.inFlight = false;
    this.inFlightBytes = 0;
    if (this.closed) return;
    this.deliver(chunk);
    this.pump();
  }

  private prepared(): void {
    this.inFlight = false;
    this.pump(); // audio that arrived meanwhile (or an idle waiter)
  }

  private failed(failure: TaskFailure): void {
    this.inFlight = false;
    this.inFlightBytes = 0;
    if (this.closed) return;
    this.sink.fail(failure);
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
