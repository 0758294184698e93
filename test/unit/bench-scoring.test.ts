// What the capacity bench scores with: the WER normalisation and edit distance (bench/wer.ts) and
// the load CLI's rotation of a stream's audio (--rotate-at).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addToTally, normaliseWords, werOf, wordEdits } from '../../bench/wer.js';
import { rotateAudio } from '../../src/cli/load.js';
import type { Audio } from '../../src/cli/wav.js';

describe('bench WER', () => {
  it('normalises case, punctuation and number words the way prompts.tsv writes them', () => {
    assert.deepEqual(normaliseWords('If this is the person you\'re looking for, press one now.'), ['if', 'this', 'is', 'the', 'person', 'youre', 'looking', 'for', 'press', '1', 'now']);
    assert.deepEqual(normaliseWords('re-entered   Press 1!'), ['re', 'entered', 'press', '1']);
    assert.deepEqual(normaliseWords(''), []);
  });

  it('counts substitutions, deletions and insertions', () => {
    assert.equal(wordEdits(['a', 'b', 'c'], ['a', 'b', 'c']), 0);
    assert.equal(wordEdits(['a', 'b', 'c'], ['a', 'x', 'c']), 1);
    assert.equal(wordEdits(['a', 'b', 'c'], ['a', 'c']), 1);
    assert.equal(wordEdits(['a', 'b'], ['a', 'b', 'c', 'd']), 2);
    assert.equal(wordEdits([], ['a']), 1);
    const tally = { errors: 0, words: 0 };
    addToTally(tally, 'Press 1 now.', 'press one now');
    addToTally(tally, 'Please try again.', 'please try');
    assert.deepEqual(tally, { errors: 1, words: 6 });
    assert.equal(werOf(tally), 0.1667);
  });
});

describe('load --rotate-at', () => {
  const audio: Audio = { name: 'x', format: { channels: 1, sampleRate: 10, bitDepth: 16, isFloat: false, encoding: 'pcm' }, data: Buffer.from(Array.from({ length: 20 }, (_, i) => i)) };

  it('begins the audio at a whole frame and wraps round to its start', () => {
    const r = rotateAudio(audio, 0.3); // 3 frames of 2 bytes
    assert.deepEqual([...r.data], [...audio.data.subarray(6), ...audio.data.subarray(0, 6)]);
    assert.equal(rotateAudio(audio, 0), audio);
    assert.equal(rotateAudio(audio, 5), audio, 'past the end: unrotated');
  });
});
