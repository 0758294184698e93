// /api/v1/simple: each channel's 16 kHz audio is cut into fixed windows, each window goes to the
// model, and one segment per window comes back, in order per channel; the last, partial window
// is sent at stop.
import { HeldAudio, heldWeight } from '../memory-budget.js';
import { SAMPLE_RATE, frameBytes } from '../audio-format.js';
import { AudioFrontEnd } from './audio-front-end.js';
import { ModelChannel } from './model-channel.js';
import { ProgressReporter } from './progress.js';
import type { Runner, RunnerOptions } from './runner.js';

/** Collects a channel's samples into windows of a fixed length. */
class Windower {
  private buffer: Float32Array;
  private filled = 0;
  private start = 0; // stream position of buffer[0], in samples

  constructor(
    private readonly size: number,
    private readonly out: ModelChannel,
  ) {
    this.buffer = new Float32Array(size);
  }

  append(samples: Float32Array): void {
    let offset = 0;
    while (offset < samples.length) {
      const take = Math.min(this.size - this.filled, samples.length - offset);
      this.buffer.set(samples.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.size) this.emit();
    }
  }

  /** Stream samples windowed so far. */
  get position(): number {
    return this.start + this.filled;
  }

  /** Emits the partial window, if any. */
  flush(): void {
    if (this.filled > 0) this.emit();
  }

  private emit(): void {
    const samples = this.filled === this.size ? this.buffer : this.buffer.slice(0, this.filled);
    const end = this.start + this.filled;
    this.out.enqueue({ samples, start: this.start, end });
    this.start = end;
    this.buffer = new Float32Array(this.size);
    this.filled = 0;
  }
}

interface SimpleRunnerOptions extends RunnerOptions {
  windowSeconds: number;
  maxBacklogSeconds: number;
}

export class SimpleRunner implements Runner {
  private readonly frontEnd: AudioFrontEnd;
  private readonly channels: ModelChannel[] = [];
  private readonly windowers: Windower[] = [];
  // MEMORY_BUDGET_BYTES: the front end's wire bytes not yet delivered decoded, at their heaviest.
  private readonly held: HeldAudio;
  private readonly weight: number;

  constructor(options: SimpleRunnerOptions) {
    const { format, decoder, windowSeconds, maxBacklogSeconds, fail, trace } = options;
    this.held = options.held ?? HeldAudio.none();
    this.weight = heldWeight(format.sampleRate * frameBytes(format), format.channels);
    const windowSamples = Math.max(1, Math.round(windowSeconds * SAMPLE_RATE));
    // A backlog bound smaller than one window would refuse every window.
    const maxModelBacklog = Math.max(maxBacklogSeconds * SAMPLE_RATE, 2 * windowSamples);
    // Progress: every channel's audio windowed, and every window before it answered.
    const progress = options.progress
      ? new ProgressReporter(options.emit, () => Math.min(...this.windowers.map((w, c) => Math.min(w.position, this.channels[c]!.pendingFrom ?? Infinity))) / SAMPLE_RATE)
      : undefined;
    const progressed = (): void => progress?.check();
    for (let c = 0; c < format.channels; c++) {
      const channel = new ModelChannel(c, maxModelBacklog, options, progressed);
      this.channels.push(channel);
      this.windowers.push(new Windower(windowSamples, channel));
    }
    this.frontEnd = new AudioFrontEnd(format, {
      audio: (chunks) => {
        this.held.set(this.frontEnd.heldBytes * this.weight);
        chunks.forEach((samples, c) => this.windowers[c]?.append(samples));
        progressed();
      },
      fail,
    }, decoder, maxBacklogSeconds, trace);
  }

  push(bytes: Uint8Array): void {
    try {
      this.frontEnd.push(bytes);
    } finally {
      this.held.set(this.frontEnd.heldBytes * this.weight);
    }
  }

  async finish(): Promise<void> {
    await this.frontEnd.finish();
    for (const w of this.windowers) w.flush();
    await Promise.all(this.channels.map((c) => c.drained()));
    this.close();
  }

  abort(): void {
    this.frontEnd.close();
    for (const c of this.channels) c.abort();
  }

  private close(): void {
    this.frontEnd.close();
  }
}
