// PCM decoding to float, one thread: decoded samples/s of native/pcm.cc's DecodeFrames for every
// wire encoding (mono), against a straightforward JavaScript DataView loop decoding the same
// bytes to the same floats in the same run. The native side is a small C++ harness,
// bench/native/decode_bench.cc, built with g++ into bench/out/ (git-ignored); both sides check
// their output against each other by checksum, so neither can win by skipping work.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildNativeBench } from './native-binary.js';
import { median } from './statistics.js';
import { BYTES, ENCODINGS, writeSample, type Encoding } from '../test/helpers/pcm-encode.js';

const quick = process.argv.includes('--quick');

const SAMPLES = quick ? 4096 : 1 << 20;
const RUNS = quick ? 3 : 9;
const MIN_RUN_SECONDS = quick ? 0.002 : 0.04;


// --- The same input for both sides: speech-like audio (two tones and noise) in each encoding ---
function input(encoding: Encoding): Buffer {
  const out = Buffer.alloc(SAMPLES * BYTES[encoding]);
  let seed = 2024;
  for (let i = 0; i < SAMPLES; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const x = 0.4 * Math.sin((2 * Math.PI * 440 * i) / 16000) + 0.2 * Math.sin((2 * Math.PI * 3100 * i) / 16000) + 0.1 * (seed / 2 ** 32 - 0.5);
    writeSample(out, encoding, i, x, () => seed >>> 24);
  }
  return out;
}

// --- The peer: one plain DataView loop per encoding, the same arithmetic as native/pcm.cc ---
function g711Table(law: 'mulaw' | 'alaw'): Float32Array {
  return Float32Array.from({ length: 256 }, (_, code) => {
    if (law === 'mulaw') {
      const u = ~code & 0xff;
      const magnitude = ((((u & 15) << 3) + 0x84) << ((u >> 4) & 7)) - 0x84;
      return (u & 0x80 ? -magnitude : magnitude) / 32768;
    }
    const a = code ^ 0x55, e = (a >> 4) & 7, m = a & 15;
    const magnitude = e === 0 ? (m << 4) + 8 : ((m << 4) + 0x108) << (e - 1);
    return (a & 0x80 ? magnitude : -magnitude) / 32768;
  });
}
const MULAW = g711Table('mulaw');
const ALAW = g711Table('alaw');

type Decoder = (dv: DataView, out: Float32Array) => void;
const JS_DECODERS: Record<Encoding, Decoder> = {
  u8: (dv, out) => { for (let i = 0; i < out.length; i++) out[i] = (dv.getUint8(i) - 128) / 128; },
  s16: (dv, out) => { for (let i = 0; i < out.length; i++) out[i] = dv.getInt16(2 * i, true) / 32768; },
  s24: (dv, out) => {
    for (let i = 0; i < out.length; i++) out[i] = (dv.getUint8(3 * i) | (dv.getUint8(3 * i + 1) << 8) | (dv.getInt8(3 * i + 2) << 16)) / 8388608;
  },
  s32: (dv, out) => { for (let i = 0; i < out.length; i++) out[i] = dv.getInt32(4 * i, true) / 2147483648; },
  f32: (dv, out) => {
    for (let i = 0; i < out.length; i++) {
      const v = dv.getFloat32(4 * i, true);
      out[i] = v !== v ? 0 : v < -1 ? -1 : v > 1 ? 1 : v;
    }
  },
  f64: (dv, out) => {
    for (let i = 0; i < out.length; i++) {
      const v = dv.getFloat64(8 * i, true);
      out[i] = v !== v ? 0 : v < -1 ? -1 : v > 1 ? 1 : v;
    }
  },
  mulaw: (dv, out) => { for (let i = 0; i < out.length; i++) out[i] = MULAW[dv.getUint8(i)]!; },
  alaw: (dv, out) => { for (let i = 0; i < out.length; i++) out[i] = ALAW[dv.getUint8(i)]!; },
};


function checksum(x: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]!;
  return sum;
}

function timeJs(encoding: Encoding, bytes: Buffer): { samplesPerS: number; checksum: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(SAMPLES);
  const decode = JS_DECODERS[encoding];
  let t = performance.now();
  for (let i = 0; i < 5; i++) decode(dv, out); // warm-up: let the JIT optimise the loop
  const once = (performance.now() - t) / 5 / 1000;
  const passes = Math.max(1, Math.floor(MIN_RUN_SECONDS / Math.max(once, 1e-9)) + 1);
  const speeds: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    t = performance.now();
    for (let p = 0; p < passes; p++) decode(dv, out);
    speeds.push((SAMPLES * passes) / ((performance.now() - t) / 1000));
  }
  return { samplesPerS: median(speeds), checksum: checksum(out) };
}

interface HarnessOutput {
  runs: number;
  results: { encoding: Encoding; samples: number; samples_per_s: number; checksum: number }[];
}

const binary = buildNativeBench({ name: 'decode_bench', sources: ['bench/native/decode_bench.cc', 'native/pcm.cc'], headers: ['native/pcm.h', 'bench/native/bench_stats.h'] });
const dir = mkdtempSync(path.join(os.tmpdir(), 'decode-bench-'));
const inputs = new Map<Encoding, Buffer>();
let native: HarnessOutput;
try {
  for (const e of ENCODINGS) {
    inputs.set(e, input(e));
    writeFileSync(path.join(dir, `${e}.bin`), inputs.get(e)!);
  }
  native = JSON.parse(
    execFileSync(binary, [dir, String(RUNS), String(MIN_RUN_SECONDS)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }),
  ) as HarnessOutput;
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const rows = ENCODINGS.map((encoding) => {
  const n = native.results.find((r) => r.encoding === encoding);
  if (!n || n.samples !== SAMPLES) throw new Error(`native harness: no result for ${encoding}`);
  const js = timeJs(encoding, inputs.get(encoding)!);
  if (Math.abs(js.checksum - n.checksum) > 1e-9 * Math.max(1, Math.abs(n.checksum))) {
    throw new Error(`${encoding}: native and JavaScript decode differently (checksums ${n.checksum} and ${js.checksum})`);
  }
  return { encoding, native: n.samples_per_s, js: js.samplesPerS, ratio: n.samples_per_s / js.samplesPerS };
});

console.log(`PCM decoding to float, mono, one thread, ${SAMPLES} samples per pass, median of ${RUNS} runs${quick ? ' (quick: tiny sizes, figures meaningless)' : ''}`);
console.log('peer: a plain JavaScript DataView loop (same bytes, same floats: checksums agree), same run');
console.log('\nencoding    native M samples/s   JS DataView M samples/s   ratio');
for (const r of rows) {
  console.log(`  ${r.encoding.padEnd(8)} ${(r.native / 1e6).toFixed(0).padStart(20)} ${(r.js / 1e6).toFixed(0).padStart(25)} ${r.ratio.toFixed(2).padStart(7)}`);
}
const geomean = Math.exp(rows.reduce((s, r) => s + Math.log(r.ratio), 0) / rows.length);
console.log(`  geometric mean ratio ${geomean.toFixed(2)}`);

const result: Record<string, number | string> = { bench: 'decode', ratio_vs_peer: Number(geomean.toFixed(3)) };
for (const r of rows) result[`ratio_vs_peer_${r.encoding}`] = Number(r.ratio.toFixed(3));
for (const r of rows) result[`msamples_per_s_${r.encoding}`] = Number((r.native / 1e6).toFixed(0));
for (const r of rows) result[`peer_msamples_per_s_${r.encoding}`] = Number((r.js / 1e6).toFixed(0));
result['peer'] = 'JavaScript DataView loop';
console.log(JSON.stringify(result));
