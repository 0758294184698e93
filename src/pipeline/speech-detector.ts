// Turns one channel's VAD probabilities (one per 512-sample window at 16 kHz) into utterances,
// with hysteresis: speech starts at a probability >= `start`, and ends once it has stayed below
// `end` for `minSilence` samples (a window back above `start` restarts that count). An onset
// that does not last `minSpeech` samples is a blip and yields nothing. Pure and synchronous.

export interface DetectorOptions {
  start: number;
  end: number;
  /** All in samples at 16 kHz. */
  minSpeech: number;
  minSilence: number;
  /** Confirmed speech is split before it grows longer than this. */
  maxUtterance: number;
}

export type SpeechEvent =
  /** Confirmed speech that began at `at` (stream samples). */
  | { kind: 'start'; at: number }
  /** Speech that began at `from` ended at `at`; `forced` when split at the maximum length. */
  | { kind: 'end'; from: number; at: number; forced: boolean };

export const WINDOW = 512;

export class SpeechDetector {
  private windows = 0; // windows seen
  private onset: number | undefined; // start of the current (possibly unconfirmed) speech
  private confirmed = false;
  private silenceStart: number | undefined;

  constructor(private readonly options: DetectorOptions) {}

  /** Samples covered by the probabilities seen so far. */
  get position(): number {
    return this.windows * WINDOW;
  }

  get speechStart(): number | undefined {
    return this.confirmed ? this.onset : undefined;
  }

  /** Where possible speech began, confirmed or not yet: audio from here on may be needed. */
  get candidateStart(): number | undefined {
    return this.onset;
  }

  push(probs: Float32Array, out: SpeechEvent[]): void {
    const o = this.options;
    for (const p of probs) {
      const begin = this.windows * WINDOW;
      const end = begin + WINDOW;
      this.windows++;
      if (this.onset === undefined) {
        if (p >= o.start) {
          this.onset = begin;
          this.silenceStart = undefined;
        }
        continue;
      }
      if (p >= o.start) this.silenceStart = undefined;
      else if (p < o.end && this.silenceStart === undefined) this.silenceStart = begin;

      if (this.silenceStart !== undefined && end - this.silenceStart >= o.minSilence) {
        // Silence long enough: the speech (if it was ever confirmed) ended where it began.
        if (this.confirmed) out.push({ kind: 'end', from: this.onset, at: this.silenceStart, forced: false });
        this.onset = undefined;
        this.confirmed = false;
        this.silenceStart = undefined;
        continue;
      }
      if (!this.confirmed && end - this.onset >= o.minSpeech && this.silenceStart === undefined) {
        this.confirmed = true;
        out.push({ kind: 'start', at: this.onset });
      }
      if (this.confirmed && end + WINDOW - this.onset > o.maxUtterance) {
        // The next window would take the utterance past its maximum. If it is already trailing
        // off into silence, end it there; otherwise split it here and go on.
        if (this.silenceStart !== undefined) {
          out.push({ kind: 'end', from: this.onset, at: this.silenceStart, forced: false });
          this.onset = undefined;
          this.confirmed = false;
          this.silenceStart = undefined;
          continue;
        }
        out.push({ kind: 'end', from: this.onset, at: end, forced: true });
        this.onset = end;
        out.push({ kind: 'start', at: end });
      }
    }
  }

  /** End of stream at sample `at`: confirmed speech still open ends there (or where its
   *  trailing silence began). */
  finish(at: number, out: SpeechEvent[]): void {
    if (this.confirmed && this.onset !== undefined) {
      out.push({ kind: 'end', from: this.onset, at: this.silenceStart ?? Math.max(at, this.onset), forced: false });
    }
    this.onset = undefined;
    this.confirmed = false;
    this.silenceStart = undefined;
  }
}
