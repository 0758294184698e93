// Seed corpus for pcm_fuzz (layout in pcm_fuzz.cc): every format, 1-8 channels, common and odd
// rates, with sine, full-scale square, silence, random and (for floats) NaN/Inf/huge payloads.
// Usage: node --import tsx test/fuzz/pcm_seeds.ts <dir>
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node --import tsx test/fuzz/pcm_seeds.ts <dir>');
mkdirSync(dir, { recursive: true });

const FORMATS = ['u8', 's16', 's24', 's32', 'f32', 'f64', 'mulaw', 'alaw'] as const;
type Format = (typeof FORMATS)[number];
const BYTES: Record<Format, number> = { u8: 1, s16: 2, s24: 3, s32: 4, f32: 4, f64: 8, mulaw: 1, alaw: 1 };
// Indexes into kRates in pcm_fuzz.cc: 8000, 11025, 16000, 44100, 48000, 192000, 12345, 47999.
const RATE_INDEXES = [0, 1, 3, 7, 8, 13, 17, 25];

let state = 12345;
const rand = () => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32);

function sample(kind: string, i: number): number {
  switch (kind) {
    case 'sine': return 0.8 * Math.sin((2 * Math.PI * 997 * i) / 44100);
    case 'square': return Math.floor(i / 7) % 2 ? 1 : -1;
    case 'silence': return 0;
    default: return rand() * 2 - 1;
  }
}

function encode(fmt: Format, x: number, buf: Buffer, off: number): void {
  switch (fmt) {
    case 'u8': buf.writeUInt8(Math.max(0, Math.min(255, Math.round(x * 128 + 128))), off); break;
    case 's16': buf.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(x * 32767))), off); break;
    case 's24': buf.writeIntLE(Math.max(-8388608, Math.min(8388607, Math.round(x * 8388607))), off, 3); break;
    case 's32': buf.writeInt32LE(Math.max(-2147483648, Math.min(2147483647, Math.round(x * 2147483647))), off); break;
    case 'f32': buf.writeFloatLE(x, off); break;
    case 'f64': buf.writeDoubleLE(x, off); break;
    default: buf.writeUInt8(Math.floor(rand() * 256), off); // G.711: any byte is a code word
  }
}

let n = 0;
for (const [f, fmt] of FORMATS.entries()) {
  for (const channels of [1, 2, 3, 8]) {
    for (const rateIndex of RATE_INDEXES) {
      {
        const kind = (['sine', 'square', 'silence', 'noise'] as const)[n % 4]!;
        const frames = 16 + Math.floor(rand() * 300);
        const frame = BYTES[fmt] * channels;
        const payload = Buffer.alloc(frames * frame + (rand() < 0.3 ? 1 : 0));
        for (let i = 0; i < frames; i++) {
          for (let c = 0; c < channels; c++) encode(fmt, sample(kind, i + 31 * c), payload, i * frame + c * BYTES[fmt]);
        }
        if ((fmt === 'f32' || fmt === 'f64') && kind === 'noise') {
          [NaN, Infinity, -Infinity, 1e30, -1e-40].forEach((v, k) => {
            const off = (k * 17 % frames) * frame;
            if (fmt === 'f32') payload.writeFloatLE(v, off);
            else payload.writeDoubleLE(v === 1e30 ? 1e300 : v, off);
          });
        }
        const header = Buffer.from([f, channels - 1, rateIndex, 0, 0, Math.floor(rand() * 8), Math.floor(rand() * 256), Math.floor(rand() * 256)]);
        writeFileSync(path.join(dir, `seed-${String(n++).padStart(4, '0')}`), Buffer.concat([header, payload]));
      }
    }
  }
}
// An arbitrary rate (header[2] >= 0xE0) and a long repeated stream.
writeFileSync(path.join(dir, `seed-${n++}`), Buffer.from([1, 0, 0xe0, 0x12, 0x34, 31, 1, 2, ...Array.from({ length: 512 }, (_, i) => i & 0xff)]));
writeFileSync(path.join(dir, `seed-${n++}`), Buffer.from([4, 1, 13, 0, 0, 31, 9, 9, ...Buffer.alloc(4096, 0x3f)]));
console.log(`${n} seeds in ${dir}`);
