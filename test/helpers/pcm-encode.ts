// The wire encodings as a client writes them: one sample at a time, full scale = ±1.
import type { NativeFormat } from '../../src/native/binding.js';

export const ENCODINGS = ['u8', 's16', 's24', 's32', 'f32', 'f64', 'mulaw', 'alaw'] as const;
export type Encoding = (typeof ENCODINGS)[number];
export const BYTES: Record<Encoding, number> = { u8: 1, s16: 2, s24: 3, s32: 4, f32: 4, f64: 8, mulaw: 1, alaw: 1 };

/** Writes sample `i` (value `x`) in `encoding`; G.711 writes `codeWord()` instead (any byte is one). */
export function writeSample(out: Buffer, encoding: Encoding, i: number, x: number, codeWord: () => number): void {
  switch (encoding) {
    case 'u8': out.writeUInt8(Math.round(x * 127) + 128, i); break;
    case 's16': out.writeInt16LE(Math.round(x * 32767), 2 * i); break;
    case 's24': out.writeIntLE(Math.round(x * 8388607), 3 * i, 3); break;
    case 's32': out.writeInt32LE(Math.round(x * 2147483647), 4 * i); break;
    case 'f32': out.writeFloatLE(x, 4 * i); break;
    case 'f64': out.writeDoubleLE(x, 8 * i); break;
    default: out.writeUInt8(codeWord(), i);
  }
}

/** The native AudioStream format of `encoding` (μ-law and A-law are 8-bit; f32/f64 are float PCM). */
export function nativeFormat(encoding: Encoding, sampleRate = 16000, channels = 1): NativeFormat {
  switch (encoding) {
    case 'mulaw':
    case 'alaw':
      return { encoding, channels, sampleRate, bitDepth: 8, isFloat: false };
    case 'f32':
    case 'f64':
      return { encoding: 'pcm', channels, sampleRate, bitDepth: encoding === 'f32' ? 32 : 64, isFloat: true };
    default:
      return { encoding: 'pcm', channels, sampleRate, bitDepth: Number(encoding.slice(1)), isFloat: false };
  }
}
