// The arrival clock stays small whatever the client's frame size, and still dates audio right.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArrivalClock, MAX_ENTRIES, RESOLUTION_MS } from '../../src/pipeline/arrival-clock.js';

describe('ArrivalClock', () => {
  it('one-byte frames (a million, 1 µs apart, then 20 s of them 1 ms apart) stay within its bound', () => {
    const clock = new ArrivalClock();
    const byte = 1 / 32_000; // one byte of 16 kHz s16 audio, in seconds
    let now = 1000;
    for (let i = 0; i < 1_000_000; i++) clock.arrived(byte, (now += 0.001));
    assert.ok(clock.size <= 1 + 1000 / RESOLUTION_MS, `${clock.size} entries for 1 s of arrivals`);
    for (let i = 0; i < 20_000; i++) clock.arrived(byte, (now += 1));
    assert.ok(clock.size <= MAX_ENTRIES, `${clock.size} entries`);
  });

  it('dates 20 ms frames to the millisecond, and audio in a shared entry by its latest frame', () => {
    const clock = new ArrivalClock();
    for (let i = 0; i < 500; i++) clock.arrived(0.02, 5000 + i * 20);
    assert.equal(clock.arrivalOf(0.02), 5000);
    assert.equal(clock.arrivalOf(5.0), 5000 + 249 * 20);
    assert.equal(clock.arrivalOf(10.0), 5000 + 499 * 20);
    assert.equal(clock.arrivalOf(10.5), undefined, 'not arrived yet');
    const burst = new ArrivalClock();
    burst.arrived(0.01, 100);
    burst.arrived(0.01, 103); // within RESOLUTION_MS: one entry
    assert.equal(burst.size, 1);
    assert.equal(burst.arrivalOf(0.005), 103);
  });

  it('keeps 120 s of audio at 50 frames a second, dropping older entries', () => {
    const clock = new ArrivalClock();
    for (let i = 0; i < 50 * 600; i++) clock.arrived(0.02, i * 20); // 10 minutes
    assert.ok(clock.size <= MAX_ENTRIES);
    assert.equal(clock.arrivalOf(599), 598_980); // the frame ending at 599 s was sent at 598.98 s
  });
});
