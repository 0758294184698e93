// The native AudioStream: decoding s16/f32 PCM, carrying partial samples and frames over.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addon, isNativeError, type NativeFormat } from '../../src/native/binding.js';
import { concat, sine, toF32, toS16 } from '../helpers/signal.js';

const F32_16K: NativeFormat = { encoding: 'pcm', channels: 1, sampleRate: 16000, bitDepth: 32, isFloat: true };
const S16_16K: NativeFormat = { encoding: 'pcm', channels: 1, sampleRate: 16000, bitDepth: 16, isFloat: false };

async function decode(format: NativeFormat, bytes: Uint8Array, chunk: number): Promise<Float32Array[]> {
  const stream = new addon.AudioStream(format);
  const parts: Float32Array[][] = [];
  for (let i = 0; i < bytes.length; i += chunk) {
    parts.push((await stream.push(bytes.slice(i, Math.min(i + chunk, bytes.length)))).channels);
  }
  parts.push((await stream.flush()).channels);
  stream.close();
  return Array.from({ length: format.channels }, (_, c) => concat(parts.map((p) => p[c]!)));
}

describe('AudioStream decoding', () => {
  it('decodes s16 little-endian to floats, full scale included', async () => {
    const bytes = Buffer.alloc(8);
    [0, 16384, -32768, 32767].forEach((v, i) => bytes.writeInt16LE(v, i * 2));
    const [out] = await decode(S16_16K, bytes, bytes.length);
    assert.deepEqual(Array.from(out!), [0, 0.5, -1, 32767 / 32768]);
  });

  it('replaces NaN with 0 and clamps infinities to full scale in float audio', async () => {
    const [out] = await decode(F32_16K, toF32(new Float32Array([NaN, Infinity, -Infinity, 0.25, -0])), 20);
    assert.deepEqual(Array.from(out!), [0, 1, -1, 0.25, -0]);
  });

  for (const chunk of [1, 3, 333, 65537]) {
    it(`gives the same samples when s16 frames are split every ${chunk} bytes`, async () => {
      const bytes = toS16(sine(300, 16000, 3));
      const [whole] = await decode(S16_16K, bytes, bytes.length);
      const [split] = await decode(S16_16K, bytes, chunk);
      assert.deepEqual(split, whole);
    });
  }

  it('keeps stereo channels apart, even when frames split between channels', async () => {
    const left = sine(500, 48000, 0.5);
    const right = new Float32Array(left.length); // silence
    const interleaved = new Float32Array(left.length * 2);
    left.forEach((v, i) => { interleaved[2 * i] = v; interleaved[2 * i + 1] = right[i]!; });
    const format: NativeFormat = { encoding: 'pcm', channels: 2, sampleRate: 48000, bitDepth: 32, isFloat: true };
    const [l, r] = await decode(format, toF32(interleaved), 4 * 2 * 100 + 6); // splits mid-frame and mid-sample
    assert.equal(l!.length, 8000);
    assert.equal(r!.length, 8000);
    assert.ok(r!.every((v) => v === 0), 'silence stays silent: nothing leaks from channel 0');
    assert.ok(Math.max(...l!) > 0.45, 'the tone is in channel 0');
  });

  it('reports an incomplete trailing frame at flush instead of inventing a sample', async () => {
    const stream = new addon.AudioStream(S16_16K);
    await stream.push(new Uint8Array([1, 0, 2]));
    const tail = await stream.flush();
    assert.equal(tail.discardedBytes, 1);
    stream.close();
  });

  for (const [format, field] of [
    [{ ...S16_16K, bitDepth: 12 }, 'bit_depth'],
    [{ ...F32_16K, bitDepth: 16 }, 'bit_depth'],
    [{ ...S16_16K, channels: 0 }, 'channels'],
    [{ ...S16_16K, sampleRate: 1e9 }, 'sample_rate'],
  ] as [NativeFormat, string][]) {
    it(`refuses ${JSON.stringify(format)} with INVALID_FORMAT naming ${field}`, () => {
      assert.throws(() => new addon.AudioStream(format), (e: unknown) => isNativeError(e) && e.code === 'INVALID_FORMAT' && e.message.includes(field));
    });
  }

  it('refuses a second job while one is in flight, and any job after close', async () => {
    const stream = new addon.AudioStream(S16_16K);
    const first = stream.push(new Uint8Array(3200));
    assert.throws(() => stream.push(new Uint8Array(2)), (e: unknown) => isNativeError(e) && e.code === 'BUSY');
    await first;
    stream.close();
    assert.throws(() => stream.flush(), (e: unknown) => isNativeError(e) && e.code === 'CLOSED');
  });
});

describe('AudioStream edge cases (found by the fuzzer)', () => {
  it('an empty push is a push of nothing, not a flush', async () => {
    const stream = new addon.AudioStream({ encoding: 'pcm', channels: 1, sampleRate: 44100, bitDepth: 16, isFloat: false });
    await stream.push(new Uint8Array(4411));
    const empty = await stream.push(new Uint8Array(0));
    assert.deepEqual(empty.channels.map((c) => c.length), [0]);
    const tail = await stream.flush();
    assert.ok(tail.channels[0]!.length > 0, 'the resampler tail comes at the real flush');
    assert.equal(tail.discardedBytes, 1);
    stream.close();
  });

  it('a push that only extends a partial frame still answers one (empty) array per channel', async () => {
    const stream = new addon.AudioStream({ encoding: 'pcm', channels: 2, sampleRate: 16000, bitDepth: 24, isFloat: false });
    for (const byte of [1, 2]) {
      const chunk = await stream.push(new Uint8Array([byte]));
      assert.deepEqual(chunk.channels.map((c) => c.length), [0, 0]);
    }
    stream.close();
  });
});
