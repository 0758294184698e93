// Gathers VAD work from every stream's channels and runs it as few, large native jobs: one job
// takes every request pending when a slot frees up, and Silero runs them in lock-step batches
// (one ONNX call per step across all channels). At most `maxInFlight` jobs run at once, with
// disjoint channels, so no channel waits behind more than one batch of other streams' windows.
// A failure fails only its channel's request: the job re-runs a failed batch channel by channel.
import type { Metrics } from '../metrics/registry.js';
import { isNativeError, type NativeVad, type NativeVadChannel, type VadResult } from '../native/binding.js';
import { Task, TaskFailure, settle, toTaskFailure } from '../tasks.js';
import { SAMPLE_RATE } from '../audio-format.js';

/** A job for fewer channels than this waits up to LINGER_MS for more. */
const LINGER_BATCH = 8;
const LINGER_MS = 10;

interface Request {
  channel: NativeVadChannel;
  /** performance.now() when asked. */
  at: number;
  audio: Float32Array;
  resolve: (probs: Float32Array) => void;
  reject: (failure: TaskFailure) => void;
}

export class VadBatcher {
  private readonly task = new Task('vad');
  private pending: Request[] = [];
  private readonly busy = new Set<NativeVadChannel>();
  private inFlight = 0;
  private linger: NodeJS.Timeout | undefined;

  constructor(
    private readonly vad: NativeVad,
    private readonly metrics: Metrics,
    private readonly maxInFlight: number,
  ) {}

  /** Speech probabilities for `audio` (16 kHz) following the channel's earlier audio. One
   *  request per channel at a time: the caller awaits each before sending the next. */
  process(channel: NativeVadChannel, audio: Float32Array): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.pending.push({ channel, audio, at: performance.now(), resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    // A job for one or two channels costs nearly what one for dozens does (one ONNX call per
    // window step either way): a small batch waits up to LINGER_MS for company. A channel's
    // request that waits is at most that much later, against 32 ms windows.
    if (this.inFlight < this.maxInFlight && this.pending.length > 0 && this.pending.length < LINGER_BATCH) {
      const waited = performance.now() - this.pending[0]!.at;
      if (waited < LINGER_MS) {
        this.linger ??= setTimeout(() => {
          this.linger = undefined;
          this.dispatch();
        }, LINGER_MS - waited);
        return;
      }
    }
    while (this.inFlight < this.maxInFlight && this.pending.length > 0) {
      const batch: Request[] = [];
      const rest: Request[] = [];
      const taken = new Set<NativeVadChannel>();
      for (const r of this.pending) {
        // A channel still in a running job waits for the next one (its state is in use).
        if (this.busy.has(r.channel) || taken.has(r.channel)) {
          rest.push(r);
        } else {
          taken.add(r.channel);
          batch.push(r);
        }
      }
      this.pending = rest;
      if (batch.length === 0) return;
      this.run(batch);
    }
  }

  private run(batch: Request[]): void {
    this.inFlight++;
    for (const r of batch) this.busy.add(r.channel);
    const media = batch.reduce((n, r) => n + r.audio.length, 0) / SAMPLE_RATE;
    const release = (): void => {
      for (const r of batch) this.busy.delete(r.channel);
      this.inFlight--;
    };
    const done = (): void => {
      release();
      this.dispatch();
    };
    let job: Promise<VadResult>;
    try {
      job = this.vad.process(this.task.native, batch.map((r) => r.channel), batch.map((r) => r.audio));
    } catch (e) {
      // A refused job (BUSY, INVALID_ARGUMENT, CLOSED: native/vad_handle.cc) is a bug here, as in
      // DecodeBatcher.run; the refusal names no channel, so every request of the batch fails. The
      // slot and channels are freed; the dispatch() loop that called run() goes on with the rest.
      const failure = toTaskFailure(e);
      release();
      for (const r of batch) r.reject(failure);
      return;
    }
    settle('vad', job,
      (result) => {
        using record = this.metrics.stage('vad_processing', media);
        record.ran(result.runSeconds);
        done();
        batch.forEach((r, i) => {
          const probs = result.probs[i] ?? new Float32Array(0);
          if (isNativeError(probs)) r.reject(toTaskFailure(probs)); // that channel alone
          else r.resolve(probs);
        });
      },
      (failure) => {
        done();
        for (const r of batch) r.reject(failure);
      });
  }
}
