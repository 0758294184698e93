// The real-speech fixture (test/fixtures/real-speech/, CC-BY-SA-3.0, see its README) and a WER
// that normalises both sides the way its README asks: lowercase, no punctuation, number words
// as digits ("press one" is the transcript's "press 1").
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FIXTURES, readWav } from './wav.js';
import { wordErrors } from './wer.js';

export const REAL_SPEECH = path.join(FIXTURES, 'real-speech', 'prompts_16k_mono_s16.wav');

interface Prompt {
  start: number;
  end: number;
  text: string;
}

export function prompts(): Prompt[] {
  const [, ...rows] = readFileSync(path.join(FIXTURES, 'real-speech', 'prompts.tsv'), 'utf8').trim().split('\n');
  return rows.map((row) => {
    const [, start, end, , text] = row.split('\t');
    return { start: Number(start), end: Number(end), text: text! };
  });
}

const DIGITS: Record<string, string> = {
  zero: '0', oh: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9',
};

export function normalise(text: string): string {
  return text.toLowerCase().replace(/[-‐–—]/g, ' ').replace(/[^a-z0-9' ]/g, ' ').split(/\s+/).filter(Boolean)
    .map((w) => DIGITS[w] ?? w).join(' ');
}

/** Word errors and reference words, after normalising both. */
export function scoreWer(reference: string, hypothesis: string): { errors: number; words: number; wer: number } {
  const ref = normalise(reference);
  const errors = wordErrors(ref, normalise(hypothesis));
  const words = ref.split(' ').filter(Boolean).length;
  return { errors, words, wer: errors / Math.max(1, words) };
}

/** The recording as 16 kHz samples, with its utterances. */
export function realSpeech(): { samples: Float32Array; utterances: Prompt[] } {
  const wav = readWav('real-speech/prompts_16k_mono_s16.wav');
  const samples = new Float32Array(wav.frames);
  for (let i = 0; i < samples.length; i++) samples[i] = wav.data.readInt16LE(2 * i) / 32768;
  return { samples, utterances: prompts() };
}
