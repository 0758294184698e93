// The resampler, through the real native AudioStream: any rate to 16 kHz, time-aligned.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addon } from '../../src/native/binding.js';
import { concat, correlation, sine, toF32 } from '../helpers/signal.js';

async function resample(samples: Float32Array, rate: number, chunk = samples.length): Promise<Float32Array> {
  const stream = new addon.AudioStream({ encoding: 'pcm', channels: 1, sampleRate: rate, bitDepth: 32, isFloat: true });
  const bytes = toF32(samples);
  const parts: Float32Array[] = [];
  for (let i = 0; i < bytes.length; i += chunk * 4) {
    parts.push((await stream.push(bytes.slice(i, Math.min(i + chunk * 4, bytes.length)))).channels[0]!);
  }
  parts.push((await stream.flush()).channels[0]!);
  stream.close();
  return concat(parts);
}

describe('resampler to 16 kHz', () => {
  for (const rate of [8000, 44100, 48000]) {
    it(`turns a 1 kHz sine at ${rate} Hz into a 1 kHz sine at 16 kHz (correlation >= 0.999)`, async () => {
      const out = await resample(sine(1000, rate, 1), rate);
      assert.equal(out.length, 16000, 'one second in, one second out');
      const ideal = sine(1000, 16000, 1);
      const r = correlation(out, ideal, 400, 15600); // skip the edges, where the filter sees zeros
      assert.ok(r >= 0.999, `correlation ${r}`);
    });
  }

  it('passes 16 kHz through untouched', async () => {
    const input = sine(440, 16000, 0.5);
    const out = await resample(input, 16000, 777);
    assert.deepEqual(out, input);
  });

  it('gives bit-identical output whatever the chunking', async () => {
    const input = sine(1234, 44100, 0.7);
    const whole = await resample(input, 44100);
    for (const chunk of [1, 333, 4410]) {
      assert.deepEqual(await resample(input, 44100, chunk), whole, `chunks of ${chunk}`);
    }
  });
});
