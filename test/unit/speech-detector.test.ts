// The VAD hysteresis: probabilities per 32 ms window in, utterance start/end events out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpeechDetector, WINDOW, type SpeechEvent } from '../../src/pipeline/speech-detector.js';

const options = { start: 0.5, end: 0.35, minSpeech: 8 * WINDOW, minSilence: 10 * WINDOW, maxUtterance: 100 * WINDOW };

function run(probs: number[], opts = options, finishAt?: number): SpeechEvent[] {
  const detector = new SpeechDetector(opts);
  const events: SpeechEvent[] = [];
  detector.push(Float32Array.from(probs), events);
  if (finishAt !== undefined) detector.finish(finishAt, events);
  return events;
}

const repeat = (p: number, n: number): number[] => Array<number>(n).fill(p);

describe('speech detector', () => {
  it('starts at the first window over the start threshold and ends where the silence began', () => {
    const events = run([...repeat(0.01, 5), ...repeat(0.9, 20), ...repeat(0.02, 12)]);
    assert.deepEqual(events, [
      { kind: 'start', at: 5 * WINDOW },
      { kind: 'end', from: 5 * WINDOW, at: 25 * WINDOW, forced: false },
    ]);
  });

  it('ignores a blip shorter than the minimum speech', () => {
    assert.deepEqual(run([...repeat(0.9, 5), ...repeat(0.01, 30)]), []);
  });

  it('keeps one utterance through dips shorter than the minimum silence, and between the thresholds', () => {
    const events = run([...repeat(0.9, 10), ...repeat(0.1, 9), ...repeat(0.9, 5), ...repeat(0.4, 30), ...repeat(0.9, 2), ...repeat(0.0, 11)]);
    assert.equal(events.filter((e) => e.kind === 'start').length, 1);
    // 0.4 is above the end threshold: those windows never count as silence.
    assert.deepEqual(events.at(-1), { kind: 'end', from: 0, at: 56 * WINDOW, forced: false });
  });

  it('a window back over the start threshold restarts the silence count', () => {
    const events = run([...repeat(0.9, 10), ...repeat(0.1, 9), 0.6, ...repeat(0.1, 9), ...repeat(0.1, 2)]);
    assert.deepEqual(events.at(-1), { kind: 'end', from: 0, at: 20 * WINDOW, forced: false });
  });

  it('splits speech longer than the maximum utterance and goes on at the split', () => {
    const events = run(repeat(0.9, 250), options, 250 * WINDOW);
    assert.deepEqual(events, [
      { kind: 'start', at: 0 },
      { kind: 'end', from: 0, at: 100 * WINDOW, forced: true },
      { kind: 'start', at: 100 * WINDOW },
      { kind: 'end', from: 100 * WINDOW, at: 200 * WINDOW, forced: true },
      { kind: 'start', at: 200 * WINDOW },
      { kind: 'end', from: 200 * WINDOW, at: 250 * WINDOW, forced: false },
    ]);
  });

  it('finish ends open speech at the end of the stream, or where its trailing silence began', () => {
    assert.deepEqual(run(repeat(0.9, 20), options, 20 * WINDOW + 100).at(-1), { kind: 'end', from: 0, at: 20 * WINDOW + 100, forced: false });
    assert.deepEqual(run([...repeat(0.9, 20), ...repeat(0.1, 3)], options, 23 * WINDOW).at(-1), { kind: 'end', from: 0, at: 20 * WINDOW, forced: false });
    assert.deepEqual(run(repeat(0.9, 3), options, 3 * WINDOW), [], 'unconfirmed speech at the end is a blip');
  });
});

describe('speech detector at the maximum length', () => {
  it('ends an utterance trailing off into silence where the silence began, rather than splitting it', () => {
    const events = run([...repeat(0.9, 95), ...repeat(0.1, 20)], options);
    assert.deepEqual(events, [
      { kind: 'start', at: 0 },
      { kind: 'end', from: 0, at: 95 * WINDOW, forced: false },
    ]);
  });
});
