// Every PCM wire format, through the real native AudioStream: known code words decode to the
// values the format defines, bad float samples are neutralised, frames split anywhere decode the
// same, channels stay apart, and formats that cannot be decoded are refused naming the field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addon, isNativeError, type NativeFormat } from '../../src/native/binding.js';
import { concat, seededRandom, sine } from '../helpers/signal.js';
import { BYTES, ENCODINGS, nativeFormat, writeSample, type Encoding } from '../helpers/pcm-encode.js';


const format = nativeFormat;


/** Pushes `bytes` in pieces of the given sizes (cycled), then flushes; returns each channel. */
async function decode(fmt: NativeFormat, bytes: Uint8Array, pieces: number[] = [bytes.length]): Promise<{ channels: Float32Array[]; discarded: number }> {
  const stream = new addon.AudioStream(fmt);
  const parts: Float32Array[][] = [];
  for (let i = 0, k = 0; i < bytes.length; k++) {
    const n = Math.max(1, pieces[k % pieces.length]!);
    parts.push((await stream.push(bytes.slice(i, Math.min(i + n, bytes.length)))).channels);
    i += n;
  }
  const tail = await stream.flush();
  parts.push(tail.channels);
  stream.close();
  return {
    channels: Array.from({ length: fmt.channels }, (_, c) => concat(parts.map((p) => p[c] ?? new Float32Array(0)))),
    discarded: tail.discardedBytes,
  };
}

/** Equal to within a float32 rounding of the expected value (relative), or 1e-12 absolute near 0. */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: sample count`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    assert.ok(Math.abs(a - e) <= 1e-6 * Math.abs(e) + 1e-12, `${what}: sample ${i} is ${a}, expected ${e}`);
  }
}

// --- G.711, written from the standard's decoder tables (ITU-T G.711 tables 1a and 2a), scaled
// to 16-bit full scale and then to [-1, 1). Bit 7 set is the positive half in both laws. --------
function mulawReference(code: number): number {
  const u = ~code & 0xff; // mu-law characters are sent with every bit inverted
  const segment = (u >> 4) & 7, step = u & 15;
  const magnitude = ((2 * step + 33) << segment) - 33; // 14-bit decoder output: 0 ... 8031
  return ((code & 0x80 ? 1 : -1) * magnitude * 4) / 32768;
}
function alawReference(code: number): number {
  const a = code ^ 0x55; // A-law characters are sent with the even bits inverted
  const segment = (a >> 4) & 7, step = a & 15;
  const magnitude = segment === 0 ? 2 * step + 1 : (2 * step + 33) << (segment - 1); // 13-bit: 1 ... 4032
  return ((code & 0x80 ? 1 : -1) * magnitude * 8) / 32768;
}

// --- Encoders for realistic test streams -------------------------------------------------------
function encode(encoding: Encoding, samples: Float32Array, rnd: () => number): Uint8Array {
  const n = samples.length, w = BYTES[encoding];
  const out = Buffer.alloc(n * w);
  for (let i = 0; i < n; i++) writeSample(out, encoding, i, samples[i]!, () => Math.floor(rnd() * 256));
  return out;
}

function interleave(channels: Float32Array[]): Float32Array {
  const n = channels[0]!.length, c = channels.length;
  const out = new Float32Array(n * c);
  for (let i = 0; i < n; i++) for (let k = 0; k < c; k++) out[i * c + k] = channels[k]![i]!;
  return out;
}

/** Amplitude of the sinusoid at `freq` in x[from..to), by least squares on sin and cos. */
function toneAmplitude(x: Float32Array, freq: number, rate: number, from: number, to: number): number {
  let ss = 0, cc = 0, sc = 0, xs = 0, xc = 0;
  for (let i = from; i < to; i++) {
    const s = Math.sin((2 * Math.PI * freq * i) / rate), c = Math.cos((2 * Math.PI * freq * i) / rate);
    ss += s * s; cc += c * c; sc += s * c; xs += x[i]! * s; xc += x[i]! * c;
  }
  const det = ss * cc - sc * sc;
  const a = (xs * cc - xc * sc) / det, b = (xc * ss - xs * sc) / det;
  return Math.hypot(a, b);
}

const db = (ratio: number): number => 20 * Math.log10(ratio);

describe('PCM formats: known code words decode to the values the format defines', () => {
  const cases: [string, Encoding, number[], number[]][] = [
    ['u8 (unsigned, 128 is zero)', 'u8', [0, 1, 127, 128, 129, 255], [-1, -127 / 128, -1 / 128, 0, 1 / 128, 127 / 128]],
    ['s16 full scale', 's16', [0x00, 0x80, 0xff, 0x7f, 0x01, 0x00, 0xff, 0xff, 0x00, 0x40, 0x00, 0xc0, 0, 0],
      [-1, 32767 / 32768, 2 ** -15, -(2 ** -15), 0.5, -0.5, 0]],
    ['s24 packed in 3 bytes, 0x800000 and 0x7fffff', 's24',
      [0x00, 0x00, 0x80, 0xff, 0xff, 0x7f, 0x01, 0x00, 0x00, 0xff, 0xff, 0xff, 0x56, 0x34, 0x12, 0x00, 0x00, 0xc0],
      [-1, 8388607 / 8388608, 2 ** -23, -(2 ** -23), 0x123456 / 2 ** 23, -0.5]],
    ['s32 full scale and its smallest steps', 's32',
      [0x00, 0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0x7f, 0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0x40],
      [-1, 2147483647 / 2 ** 31, 2 ** -31, -(2 ** -31), 0x12345678 / 2 ** 31, 0.5]],
  ];
  for (const [name, encoding, bytes, expected] of cases) {
    it(`decodes ${name}`, async () => {
      const { channels: [out] } = await decode(format(encoding), new Uint8Array(bytes));
      assertClose(out!, expected, name);
    });
  }

  it('decodes f32 exactly, keeps -0, turns NaN into 0 and clamps infinities and values beyond ±1', async () => {
    const input = [0.25, -0.75, 1, -1, -0, NaN, Infinity, -Infinity, 1.5, -1.0000001, 3.4028234663852886e38, -3.4028234663852886e38, 0.1];
    const bytes = Buffer.alloc(4 * (input.length + 1));
    input.forEach((v, i) => bytes.writeFloatLE(v, 4 * i));
    bytes.writeUInt32LE(0xffc00001, 4 * input.length); // a negative NaN with a payload
    const { channels: [out] } = await decode(format('f32'), bytes);
    assertClose(out!, [0.25, -0.75, 1, -1, 0, 0, 1, -1, 1, -1, 1, -1, Math.fround(0.1), 0], 'f32');
    assert.ok(Object.is(out![4], -0), '-0 stays -0');
  });

  it('decodes f64 to the nearest float, keeps -0, turns NaN into 0 and clamps what is beyond ±1 (1e300 included)', async () => {
    const input = [0.1, -0.3, 1, -1, -0, NaN, Infinity, -Infinity, 1e300, -1e300, 1.0000000001, -2, 1e-300];
    const bytes = Buffer.alloc(8 * input.length);
    input.forEach((v, i) => bytes.writeDoubleLE(v, 8 * i));
    const { channels: [out] } = await decode(format('f64'), bytes);
    assertClose(out!, [Math.fround(0.1), Math.fround(-0.3), 1, -1, 0, 0, 1, -1, 1, -1, 1, -1, 0], 'f64');
    assert.ok(Object.is(out![4], -0), '-0 stays -0');
  });

  it('decodes G.711 mu-law: known code words, and all 256 as the standard table', async () => {
    const { channels: [out] } = await decode(format('mulaw'), Uint8Array.from({ length: 256 }, (_, i) => i));
    const known: [number, number][] = [[0x00, -32124], [0x0f, -16764], [0x10, -15996], [0x70, -120], [0x7e, -8], [0x7f, 0],
      [0x80, 32124], [0x8f, 16764], [0xf0, 120], [0xfe, 8], [0xff, 0]];
    assertClose(known.map(([code]) => out![code]!), known.map(([, v]) => v / 32768), 'mu-law code words');
    assertClose(out!, Array.from({ length: 256 }, (_, i) => mulawReference(i)), 'mu-law table');
  });

  it('decodes G.711 A-law: known code words, and all 256 as the standard table', async () => {
    const { channels: [out] } = await decode(format('alaw'), Uint8Array.from({ length: 256 }, (_, i) => i));
    const known: [number, number][] = [[0x55, -8], [0xd5, 8], [0x54, -24], [0x2a, -32256], [0xaa, 32256], [0x00, -5504],
      [0x80, 5504], [0x45, -264], [0xc5, 264]];
    assertClose(known.map(([code]) => out![code]!), known.map(([, v]) => v / 32768), 'A-law code words');
    assertClose(out!, Array.from({ length: 256 }, (_, i) => alawReference(i)), 'A-law table');
  });
});

describe('PCM formats: non-finite samples never poison later audio', () => {
  for (const encoding of ['f32', 'f64'] as const) {
    it(`${encoding} at 44.1 kHz: NaN/±Inf act as 0/±1, output stays finite and equals a clean run 10 ms past them`, async () => {
      const rate = 44100;
      const clean = sine(1000, rate, 0.5);
      const glitches: [number, number][] = [[5000, NaN], [10000, Infinity], [10001, -Infinity], [15000, NaN]];
      const dirty = Float64Array.from(clean), substituted = Float32Array.from(clean);
      for (const [i, v] of glitches) {
        dirty[i] = v;
        substituted[i] = Number.isNaN(v) ? 0 : Math.sign(v);
      }
      const bytes = (x: ArrayLike<number>): Uint8Array => {
        const b = Buffer.alloc(BYTES[encoding] * x.length);
        for (let i = 0; i < x.length; i++) {
          if (encoding === 'f32') b.writeFloatLE(x[i]!, 4 * i);
          else b.writeDoubleLE(x[i]!, 8 * i);
        }
        return b;
      };
      const fmt = format(encoding, rate);
      const { channels: [out] } = await decode(fmt, bytes(dirty), [4096, 7, 333]);
      const { channels: [ref] } = await decode(fmt, bytes(clean));
      const { channels: [same] } = await decode(fmt, bytes(substituted));
      assert.equal(out!.length, 8000);
      assert.ok(out!.every(Number.isFinite), 'every output sample is finite');
      assert.deepEqual(out, same, 'NaN decodes as 0 and ±Inf as ±1, exactly');
      const reach = 160; // 10 ms of output: longer than half of any filter
      let differing = 0;
      for (let k = 0; k < out!.length; k++) {
        if (out![k] === ref![k]) continue;
        differing++;
        assert.ok(glitches.some(([i]) => Math.abs(k - (i * 16000) / rate) <= reach), `output ${k} differs from the clean run`);
      }
      assert.ok(differing > 0, 'the bad samples did reach the output near where they were');
    });
  }
});

describe('PCM formats: frames split anywhere decode exactly as whole frames', () => {
  const layouts: [Encoding, number, number][] = [
    ...ENCODINGS.map((e): [Encoding, number, number] => [e, 1, 16000]),
    ['s24', 3, 44100],
    ['f64', 2, 8000],
    ['mulaw', 5, 22050],
    ['s16', 2, 48000],
  ];
  for (const [encoding, channels, rate] of layouts) {
    it(`${encoding}, ${channels} channel(s) at ${rate} Hz: pieces of 1, 333, 65537 and random bytes`, async () => {
      const rnd = seededRandom(channels * 1000 + BYTES[encoding]);
      const seconds = 140100 / (rate * BYTES[encoding] * channels); // ~140 KB: several 65537-byte pieces
      const tones = Array.from({ length: channels }, (_, c) => sine(300 + 700 * c, rate, seconds, 0.9));
      const frame = BYTES[encoding] * channels;
      const partial = frame > 1 ? 1 : 0; // end mid-frame where a frame has more than one byte
      const bytes = encode(encoding, interleave(tones), rnd).subarray(0, Math.floor(140000 / frame) * frame + partial);
      const whole = await decode(format(encoding, rate, channels), bytes);
      assert.ok(whole.channels[0]!.length > 1000);
      assert.equal(whole.discarded, partial, 'the incomplete last frame is dropped');
      const randomPieces = Array.from({ length: 200 }, () => 1 + Math.floor(rnd() * 5000));
      for (const [name, pieces] of [['333', [333]], ['65537', [65537]], ['random', randomPieces]] as [string, number[]][]) {
        const split = await decode(format(encoding, rate, channels), bytes, pieces);
        assert.deepEqual(split, whole, `pieces of ${name} bytes`);
      }
      // One byte per push: a short stretch keeps this quick.
      const short = bytes.subarray(0, 500 * frame + partial);
      assert.deepEqual(await decode(format(encoding, rate, channels), short, [1]), await decode(format(encoding, rate, channels), short), 'pieces of 1 byte');
    });
  }
});

describe('PCM formats: channels stay apart', () => {
  it('3 channels of s24 at 48 kHz: a silent channel stays exactly silent, each channel equals itself sent alone', async () => {
    const rate = 48000;
    const tones = [sine(1000, rate, 0.5, 0.9), new Float32Array(24000), sine(3000, rate, 0.5, 0.9)];
    const bytes = encode('s24', interleave(tones), Math.random);
    const { channels } = await decode(format('s24', rate, 3), bytes, [3 * 3 * 100 + 4]); // splits mid-frame and mid-sample
    assert.ok(channels[1]!.every((v) => v === 0), 'channel 1, between two tones, is exactly silent');
    for (const c of [0, 2]) {
      const { channels: [alone] } = await decode(format('s24', rate), encode('s24', tones[c]!, Math.random));
      assert.deepEqual(channels[c], alone, `channel ${c} is what it is sent alone`);
    }
    // The 1 kHz tone of channel 0 is absent from channel 2, and the other way round.
    const from = 800, to = 7200;
    const leak02 = toneAmplitude(channels[2]!, 1000, 16000, from, to) / toneAmplitude(channels[0]!, 1000, 16000, from, to);
    const leak20 = toneAmplitude(channels[0]!, 3000, 16000, from, to) / toneAmplitude(channels[2]!, 3000, 16000, from, to);
    assert.ok(db(leak02) <= -120, `channel 0's tone in channel 2: ${db(leak02).toFixed(1)} dB`);
    assert.ok(db(leak20) <= -120, `channel 2's tone in channel 0: ${db(leak20).toFixed(1)} dB`);
  });

  for (const [toned, silent] of [[1, 0], [0, 1]] as [number, number][]) {
    it(`stereo s16 at 44.1 kHz: a tone only in channel ${toned} leaves channel ${silent} exactly zero`, async () => {
      const tones: Float32Array[] = [new Float32Array(22050), new Float32Array(22050)];
      tones[toned] = sine(440, 44100, 0.5, 0.99);
      const { channels } = await decode(format('s16', 44100, 2), encode('s16', interleave(tones), Math.random), [1001]);
      assert.equal(channels[silent]!.length, 8000);
      assert.ok(channels[silent]!.every((v) => v === 0), `channel ${silent} is exactly zero`);
      assert.ok(toneAmplitude(channels[toned]!, 440, 16000, 800, 7200) > 0.98, `the tone is in channel ${toned}`);
    });
  }
});

describe('PCM formats: undecodable formats are refused with INVALID_FORMAT naming the field', () => {
  const s16 = format('s16');
  const refused: [string, NativeFormat, string][] = [
    ['12-bit integer PCM', { ...s16, bitDepth: 12 }, 'bit_depth'],
    ['16-bit float', { ...s16, bitDepth: 16, isFloat: true }, 'bit_depth'],
    ['8-bit float', { ...s16, bitDepth: 8, isFloat: true }, 'bit_depth'],
    ['0 channels', { ...s16, channels: 0 }, 'channels'],
    ['65 channels', { ...s16, channels: 65 }, 'channels'],
    ['rate 0', { ...s16, sampleRate: 0 }, 'sample_rate'],
    ['rate 7999', { ...s16, sampleRate: 7999 }, 'sample_rate'],
    ['rate 192001', { ...s16, sampleRate: 192001 }, 'sample_rate'],
    ['rate 10^9', { ...s16, sampleRate: 1e9 }, 'sample_rate'],
    ['rate 44100.5', { ...s16, sampleRate: 44100.5 }, 'sample_rate'],
    ['mu-law at 24 bits', { ...format('mulaw'), bitDepth: 24 }, 'bit_depth'],
    ['mu-law at 16 bits', { ...format('mulaw'), bitDepth: 16 }, 'bit_depth'],
    ['A-law float', { ...format('alaw'), isFloat: true }, 'is_float'],
    ['an unknown encoding', { ...s16, encoding: 'opus' as NativeFormat['encoding'] }, 'encoding'],
  ];
  for (const [name, fmt, field] of refused) {
    it(`refuses ${name}, naming ${field}`, () => {
      assert.throws(() => new addon.AudioStream(fmt), (e: unknown) => {
        assert.ok(isNativeError(e), `a coded error, got ${String(e)}`);
        assert.equal(e.code, 'INVALID_FORMAT');
        assert.ok(e.message.includes(field), `"${e.message}" names ${field}`);
        return true;
      });
    });
  }

  it('accepts the edges of every range: 8000 and 192000 Hz, 64 channels, every encoding', () => {
    for (const fmt of [{ ...s16, sampleRate: 8000 }, { ...s16, sampleRate: 192000 }, { ...s16, channels: 64 }, ...ENCODINGS.map((e) => format(e))]) {
      assert.doesNotThrow(() => new addon.AudioStream(fmt).close(), JSON.stringify(fmt));
    }
  });
});
