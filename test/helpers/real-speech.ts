// The real-speech fixture (test/fixtures/real-speech/: recorded prompts, CC-BY-SA-3.0, see its
// README): the recording as 16 kHz samples and each utterance's span and transcript.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readWav } from './wav.js';
import { words } from './wer.js';

export const REAL_SPEECH_DIR = path.join(import.meta.dirname, '../fixtures/real-speech');
/** Under test/fixtures/, as readWav takes it. */
export const REAL_SPEECH_WAV = 'real-speech/prompts_16k_mono_s16.wav';

export interface RealUtterance {
  /** Seconds in the recording (its own edges, with a little silence). */
  start: number;
  end: number;
  text: string;
}

export function realSpeech(): { samples: Float32Array; utterances: RealUtterance[] } {
  const wav = readWav(REAL_SPEECH_WAV);
  const samples = new Float32Array(wav.frames);
  for (let i = 0; i < samples.length; i++) samples[i] = wav.data.readInt16LE(2 * i) / 32768;
  const utterances = readFileSync(path.join(REAL_SPEECH_DIR, 'prompts.tsv'), 'utf8').trim().split('\n').slice(1).map((line) => {
    const [, start, end, , text] = line.split('\t');
    return { start: Number(start), end: Number(end), text: text! };
  });
  return { samples, utterances };
}

const DIGITS: Record<string, string> = { zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9' };

/** The fixture writes digits as digits ("press 1"): so is a hypothesis, before scoring. */
export function digitWords(text: string): string {
  return words(text).map((w) => DIGITS[w] ?? w).join(' ');
}
