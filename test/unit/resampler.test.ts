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

// --- Quality specification -----------------------------------------------------------------------

/** Pushes `samples` (f32) in pieces of the given sizes, cycled; returns all output after flush. */
async function resamplePieces(samples: Float32Array, rate: number, pieces: number[]): Promise<{ out: Float32Array; beforeFlush: number }> {
  const stream = new addon.AudioStream({ encoding: 'pcm', channels: 1, sampleRate: rate, bitDepth: 32, isFloat: true });
  const bytes = toF32(samples);
  const parts: Float32Array[] = [];
  for (let i = 0, k = 0; i < samples.length; k++) {
    const n = Math.max(1, pieces[k % pieces.length]!);
    parts.push((await stream.push(bytes.slice(4 * i, 4 * Math.min(i + n, samples.length)))).channels[0]!);
    i += n;
  }
  const beforeFlush = parts.reduce((s, p) => s + p.length, 0);
  parts.push((await stream.flush()).channels[0]!);
  stream.close();
  return { out: concat(parts), beforeFlush };
}

/** Least-squares fit of a sinusoid at `freq` (Hz, at 16 kHz) to x[from..to): its amplitude and
 * the RMS of what is left. */
function fitTone(x: Float32Array, freq: number, from: number, to: number): { amplitude: number; residueRms: number } {
  const w = (2 * Math.PI * freq) / 16000;
  let ss = 0, cc = 0, sc = 0, xs = 0, xc = 0;
  for (let i = from; i < to; i++) {
    const s = Math.sin(w * i), c = Math.cos(w * i);
    ss += s * s; cc += c * c; sc += s * c; xs += x[i]! * s; xc += x[i]! * c;
  }
  const det = ss * cc - sc * sc;
  const a = (xs * cc - xc * sc) / det, b = (xc * ss - xs * sc) / det;
  let r2 = 0;
  for (let i = from; i < to; i++) r2 += (x[i]! - a * Math.sin(w * i) - b * Math.cos(w * i)) ** 2;
  return { amplitude: Math.hypot(a, b), residueRms: Math.sqrt(r2 / (to - from)) };
}

function rms(x: Float32Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i]! ** 2;
  return Math.sqrt(s / (to - from));
}

const db = (ratio: number): number => 20 * Math.log10(ratio);
const AMPLITUDE = 0.5;
const SECONDS = 0.25; // 4000 output samples
const EDGE = 480; // 30 ms at 16 kHz: past every filter's onset and end transients

/** Pseudo-random test signal: tones plus noise, so every filter phase and tap matters. */
function busySignal(rate: number, seconds: number): Float32Array {
  const x = sine(997, rate, seconds, 0.3);
  let seed = rate;
  for (let i = 0; i < x.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    x[i] = x[i]! + 0.2 * Math.sin((2 * Math.PI * 5311 * i) / rate) + 0.1 * (seed / 2 ** 32 - 0.5);
  }
  return x;
}

/** A sinusoid with a phase offset, so no tone sits on the zeros of a filter by symmetry alone. */
function tone(freq: number, rate: number, seconds: number, amplitude = AMPLITUDE, phase = 0.7): Float32Array {
  const x = new Float32Array(Math.round(seconds * rate));
  for (let i = 0; i < x.length; i++) x[i] = amplitude * Math.sin((2 * Math.PI * freq * i) / rate + phase);
  return x;
}

describe('resampler quality', () => {
  it('keeps the passband flat within 0.1 dB up to 7 kHz, from every rate above 16 kHz', async () => {
    for (const rate of [22050, 32000, 44100, 48000, 96000, 192000]) {
      for (const freq of [100, 1000, 3000, 5000, 6000, 6500, 7000]) {
        const out = await resample(sine(freq, rate, SECONDS, AMPLITUDE), rate);
        const gain = db(fitTone(out, freq, EDGE, out.length - EDGE).amplitude / AMPLITUDE);
        assert.ok(Math.abs(gain) <= 0.1, `${freq} Hz from ${rate} Hz: ${gain.toFixed(4)} dB`);
      }
    }
  });

  it('keeps the passband flat within 0.1 dB up to 45% of a rate below 16 kHz', async () => {
    for (const rate of [8000, 11025, 12000]) {
      for (const freq of [100, 1000, 2000, 3000, 0.45 * rate]) {
        const out = await resample(sine(freq, rate, SECONDS, AMPLITUDE), rate);
        const gain = db(fitTone(out, freq, EDGE, out.length - EDGE).amplitude / AMPLITUDE);
        assert.ok(Math.abs(gain) <= 0.1, `${freq} Hz from ${rate} Hz: ${gain.toFixed(4)} dB`);
      }
    }
  });

  it('removes a tone of 8-20 kHz (and higher, below the input Nyquist) by at least 90 dB', async () => {
    for (const rate of [22050, 32000, 44100, 48000, 96000, 192000]) {
      for (const freq of [8000, 8020, 8100, 8500, 9000, 10000, 12000, 15000, 16000, 20000, 31000, 47000, 90000].filter((f) => f < 0.49 * rate)) {
        const out = await resample(tone(freq, rate, SECONDS), rate);
        const residue = db(rms(out, EDGE, out.length - EDGE) / (AMPLITUDE / Math.SQRT2));
        assert.ok(residue <= -90, `${freq} Hz from ${rate} Hz comes out at ${residue.toFixed(1)} dB`);
      }
    }
  });

  it('adds no image of a tone when upsampling: everything but the tone is at least 90 dB down', async () => {
    for (const [rate, freqs] of [[8000, [500, 1000, 2000, 3000, 3500]], [11025, [1000, 3000, 4500]]] as [number, number[]][]) {
      for (const freq of freqs) {
        const out = await resample(tone(freq, rate, SECONDS), rate);
        const residue = db(fitTone(out, freq, EDGE, out.length - EDGE).residueRms / (AMPLITUDE / Math.SQRT2));
        assert.ok(residue <= -90, `${freq} Hz from ${rate} Hz: images and noise at ${residue.toFixed(1)} dB`);
      }
    }
  });

  for (const rate of [8000, 11025, 22050, 44100, 48000, 96000]) {
    it(`matches the ideal 16 kHz sine from ${rate} Hz: cross-correlation >= 0.9999 at 1 kHz and 3.1 kHz`, async () => {
      for (const freq of [1000, 3100]) {
        const input = sine(freq, rate, 0.5);
        const out = await resample(input, rate);
        assert.equal(out.length, Math.round((input.length * 16000) / rate));
        const r = correlation(out, sine(freq, 16000, 0.5), 400, 7600);
        assert.ok(r >= 0.9999, `${freq} Hz: correlation ${r}`);
      }
    });
  }

  it('gives bit-identical output under arbitrary chunking, at common and odd rates', async () => {
    let seed = 7;
    const rnd = (): number => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    for (const rate of [8000, 11025, 22050, 32000, 44100, 44101, 48000, 96000, 192000]) {
      const input = busySignal(rate, 0.3);
      const { out: whole } = await resamplePieces(input, rate, [input.length]);
      const randomPieces = Array.from({ length: 50 }, () => 1 + Math.floor(rnd() * 3000));
      for (const [name, pieces] of [['333', [333]], ['random', randomPieces], ['4096, 1, 2, 3', [4096, 1, 2, 3]]] as [string, number[]][]) {
        assert.deepEqual((await resamplePieces(input, rate, pieces)).out, whole, `${rate} Hz, pieces of ${name}`);
      }
      const short = input.subarray(0, 1500);
      assert.deepEqual((await resamplePieces(short, rate, [1])).out, (await resamplePieces(short, rate, [short.length])).out, `${rate} Hz, one sample at a time`);
    }
  });

  it('emits exactly round(n * 16000 / rate) samples in total after flush', async () => {
    for (const rate of [8000, 11025, 12345, 16000, 22050, 32000, 44100, 44101, 48000, 96000, 191999, 192000]) {
      for (const n of [0, 1, 2, 3, 7, 100, 1001, rate - 1, rate, rate + 1, 3 * rate + 17]) {
        const { out } = await resamplePieces(busySignal(rate, n / rate), rate, [Math.max(1, Math.ceil(n / 3))]);
        assert.equal(out.length, Math.round((n * 16000) / rate), `${n} samples at ${rate} Hz`);
      }
    }
  });

  it('withholds at most 10 ms of output until flush, whatever the rate', async () => {
    for (const rate of [8000, 11025, 22050, 44100, 48000, 96000, 192000]) {
      const n = Math.round(rate * 0.2);
      const { out, beforeFlush } = await resamplePieces(busySignal(rate, 0.2), rate, [Math.round(rate / 50)]);
      assert.equal(out.length, 3200);
      assert.ok(out.length - beforeFlush <= 160, `${rate} Hz: ${out.length - beforeFlush} samples held back of ${Math.round((n * 16000) / rate)}`);
    }
  });

  it('starts afresh after flush: the same input gives the same output again', async () => {
    const stream = new addon.AudioStream({ encoding: 'pcm', channels: 1, sampleRate: 44100, bitDepth: 32, isFloat: true });
    const bytes = toF32(busySignal(44100, 0.1));
    const runs: Float32Array[] = [];
    for (let k = 0; k < 2; k++) {
      const a = (await stream.push(bytes.slice())).channels[0]!;
      runs.push(concat([a, (await stream.flush()).channels[0]!]));
    }
    stream.close();
    assert.equal(runs[0]!.length, 1600);
    assert.deepEqual(runs[1], runs[0]);
  });
});

// --- Filter design: off the JS thread, within a budget (issue #17 item 3) ----------------------

describe('resampler filter design', () => {
  const format = (sampleRate: number) => ({ encoding: 'pcm' as const, channels: 2, sampleRate, bitDepth: 16, isFloat: false });
  const stats = () => addon.snapshot().resampler;

  it('designs a new rate\'s filter bank in a worker job, never in the constructor on the JS thread', async () => {
    const before = stats();
    const stream = new addon.AudioStream(format(191_997)); // a rate no other test uses
    assert.equal(stats().designs, before.designs, 'the constructor designs nothing');
    const ready = stream.prepare();
    assert.notEqual(ready, null, 'an uncached rate needs a design');
    assert.throws(() => stream.push(new Uint8Array(4)), { code: 'BUSY' }, 'the stream is busy while it is designed');
    await ready;
    const after = stats();
    assert.equal(after.designs, before.designs + 1, 'one design for both channels');
    assert.equal(after.designsOnJsThread, 0);
    assert.ok(after.tableBytes - before.tableBytes > 500_000, `bank bytes reported: ${after.tableBytes - before.tableBytes}`);
    assert.equal(stream.prepare(), null, 'nothing left to design');
    for (const rate of [191_997, 16_000]) {
      const other = new addon.AudioStream(format(rate));
      assert.equal(other.prepare(), null, `${rate}: cached, or 16 kHz, needs none`);
      other.close();
    }
    stream.close();
  });

  it('gives the same output whether prepared or designed by the first push', async () => {
    const input = sine(1234, 44_101, 0.3);
    const prepared = new addon.AudioStream({ encoding: 'pcm', channels: 1, sampleRate: 44_101, bitDepth: 32, isFloat: true });
    await prepared.prepare();
    const parts = [(await prepared.push(toF32(input))).channels[0]!, (await prepared.flush()).channels[0]!];
    prepared.close();
    const designs = stats().designs;
    const lazy = await resample(input, 8_001); // an uncached rate designed inside the push job
    assert.equal(stats().designs, designs + 1);
    assert.equal(stats().designsOnJsThread, 0);
    assert.ok(lazy.length > 0);
    assert.deepEqual(concat(parts), await resample(input, 44_101));
  });

  it('admits uncached uncommon rates within the designs-per-second budget; common and cached rates always', () => {
    addon.setResamplerBudget(2, 0);
    try {
      const refusedBefore = stats().refused;
      assert.equal(addon.admitSampleRate(100_001), null);
      assert.equal(addon.admitSampleRate(100_002), null);
      assert.equal(addon.admitSampleRate(100_003), 'designs', 'the burst of 2 is spent');
      for (const rate of [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000, 191_999]) {
        assert.equal(addon.admitSampleRate(rate), null, `${rate} is common or cached`);
      }
      assert.equal(stats().refused, refusedBefore + 1);
    } finally {
      addon.setResamplerBudget(0, 0);
    }
  });

  it('admits at most MAX_SAMPLE_RATES distinct uncommon rates in use; a closed stream frees its rate', async () => {
    // Banks of rates no stream holds stay cached but do not count.
    const held = [];
    for (const rate of [120_001, 120_002]) {
      const s = new addon.AudioStream(format(rate));
      await s.prepare();
      held.push(s);
    }
    addon.setResamplerBudget(0, 2); // the two held rates fill it (every other test closed its streams)
    try {
      assert.equal(addon.admitSampleRate(120_003), 'rates');
      assert.equal(addon.admitSampleRate(120_001), null, 'a rate in use is cached');
      assert.equal(addon.admitSampleRate(48_000), null, 'a common rate');
      held[0]!.close();
      assert.equal(addon.admitSampleRate(120_003), null, 'the closed stream released its bank');
    } finally {
      addon.setResamplerBudget(0, 0);
      for (const s of held) s.close();
    }
  });
});
