// An uploaded file as PCM for the segmented pipeline. WAV goes to the server's own native decoder
// as it is (the header gives the format, the data chunk is sent in one-second pieces); compressed
// formats are decoded in a worker thread (decode-worker.ts) to mono float samples, which the
// native decoder then takes as 32-bit float PCM and resamples like any other stream.
import { MAX_SAMPLE_RATE, MIN_SAMPLE_RATE } from '../audio-format.js';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { parseWav } from '../cli/wav.js';
import { UsageError } from '../cli/errors.js';
import type { NativeFormat } from '../native/binding.js';
import type { CompressedContainer, DecoderMessage, WorkerInput } from './decode-protocol.js';
import { OpenAiError } from './errors.js';

type Container = 'wav' | CompressedContainer;

export interface AudioSource {
  readonly container: Container;
  readonly format: NativeFormat;
  /** Seconds of audio, when known before decoding (WAV). */
  readonly seconds: number | undefined;
  /** The next piece of PCM in `format` (about a second), or undefined at the end. */
  next(): Promise<Uint8Array | undefined>;
  /** Stops decoding (the request was aborted or failed). */
  close(): void;
}

const SUPPORTED = 'WAV (PCM, float, μ-law, A-law), FLAC, MP3, Ogg Opus, Ogg Vorbis, WebM Opus';

/** What the file is, from its first bytes (never from its name or declared type). */
export function sniff(b: Buffer): Container | undefined {
  const ascii = (from: number, to: number): string => b.toString('latin1', from, to);
  if (b.length >= 12 && ['RIFF', 'RF64', 'RIFX'].includes(ascii(0, 4)) && ascii(8, 12) === 'WAVE') return 'wav';
  if (ascii(0, 4) === 'fLaC') return 'flac';
  if (ascii(0, 4) === 'OggS') {
    // The first page holds the codec's identification header.
    const head = b.subarray(0, Math.min(b.length, 256));
    if (head.includes('OpusHead')) return 'ogg-opus';
    if (head.includes('\x01vorbis', 0, 'latin1')) return 'ogg-vorbis';
    if (head.includes('fLaC')) return undefined; // Ogg FLAC: not served by these decoders
    return undefined;
  }
  if (b.length >= 4 && b.readUInt32BE(0) === 0x1a45dfa3) return 'webm';
  if (ascii(0, 3) === 'ID3') return 'mp3';
  // An MPEG audio frame sync: 11 set bits, a valid layer (01, 10, 11).
  if (b.length >= 2 && b[0] === 0xff && (b[1]! & 0xe0) === 0xe0 && (b[1]! & 0x06) !== 0) return 'mp3';
  return undefined;
}

export async function openAudio(data: Buffer): Promise<AudioSource> {
  const container = sniff(data);
  if (container === undefined) {
    throw new OpenAiError(415, `the file is not in a supported audio format; supported: ${SUPPORTED}`, 'file', 'unsupported_format');
  }
  if (container === 'wav') return await wavSource(data);
  return await decodedSource({ container, bytes: data }, container);
}

function wavSource(data: Buffer): AudioSource | Promise<AudioSource> {
  let audio;
  try {
    audio = parseWav(data, 'the WAV file');
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const status = /not supported|big-endian/.test(e.message) ? 415 : 400;
    throw new OpenAiError(status, e.message, 'file', status === 415 ? 'unsupported_format' : 'invalid_audio');
  }
  const f = audio.format;
  const format: NativeFormat = { encoding: f.encoding, channels: f.channels, sampleRate: f.sampleRate, bitDepth: f.bitDepth, isFloat: f.isFloat };
  // Several channels are one recording (OpenAI's API mixes them too): mixed to mono in the
  // worker, then decoded natively as float like any compressed file.
  if (format.channels > 1) return decodedSource({ container: 'pcm', format, bytes: audio.data }, 'wav');
  const frame = f.channels * (f.bitDepth / 8);
  const piece = f.sampleRate * frame; // one second
  const bytes = audio.data;
  let at = 0;
  return {
    container: 'wav',
    format,
    seconds: Math.floor(bytes.length / frame) / f.sampleRate,
    next() {
      if (at >= bytes.length) return Promise.resolve(undefined);
      // A copy: the pipeline owns what it is given, and the upload's body is dropped meanwhile.
      const out = Uint8Array.prototype.slice.call(bytes, at, at + piece);
      at += piece;
      return Promise.resolve(out);
    },
    close() { at = bytes.length; },
  };
}

function workerEntry(): URL {
  const ext = path.extname(fileURLToPath(import.meta.url));
  const entry = new URL(`./decode-worker${ext}`, import.meta.url);
  if (ext !== '.ts') return entry;
  // Under tsx (tests, development) the worker registers the TypeScript loader first.
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); ` +
    `await import(${JSON.stringify(entry.href)});`;
  return new URL('data:text/javascript,' + encodeURIComponent(boot));
}

// Decode workers running at once in this thread; more uploads wait for a slot. Each holds a
// thread, its heap and the codec's WebAssembly memory, so their number is kept near the cores'.
const MAX_DECODERS = Math.max(2, 2 * availableParallelism());
let decoders = 0;
const slotWaiters: (() => void)[] = [];

async function decoderSlot(): Promise<() => void> {
  while (decoders >= MAX_DECODERS) await new Promise<void>((resolve) => slotWaiters.push(resolve));
  decoders++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    decoders--;
    slotWaiters.shift()?.();
  };
}

async function decodedSource(input: WorkerInput, container: Container): Promise<AudioSource> {
  const release = await decoderSlot();
  const worker = new Worker(workerEntry(), { workerData: input });
  let waiter: { resolve: (m: DecoderMessage) => void } | undefined;
  let failed: DecoderMessage | undefined;
  worker.on('message', (m: DecoderMessage) => {
    const w = waiter;
    waiter = undefined;
    w?.resolve(m);
  });
  const crash = (message: string): void => {
    failed = { type: 'error', message };
    const w = waiter;
    waiter = undefined;
    w?.resolve(failed);
  };
  worker.on('error', (e) => crash(`the decoder failed: ${e.message}`));
  worker.on('exit', (code) => crash(`the decoder stopped (exit ${code})`));
  let ended = false;
  const more = (): Promise<DecoderMessage> => {
    if (failed) return Promise.resolve(failed);
    return new Promise((resolve) => {
      waiter = { resolve };
      worker.postMessage({ type: 'more' });
    });
  };
  const close = (): void => {
    ended = true;
    release();
    worker.removeAllListeners('exit');
    worker.on('exit', () => undefined);
    // Terminating is the cheapest stop for a decoder mid-file; its promise only reports the exit.
    worker.terminate().catch(() => undefined);
  };
  const asBytes = (samples: Float32Array): Uint8Array => new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  const first = await more();
  if (first.type !== 'chunk') {
    close();
    throw new OpenAiError(400, `the ${describe(container)} file could not be decoded: ${first.type === 'error' ? first.message : 'it holds no audio'}`, 'file', 'invalid_audio');
  }
  const sampleRate = first.sampleRate;
  if (sampleRate < MIN_SAMPLE_RATE || sampleRate > MAX_SAMPLE_RATE) {
    close();
    throw new OpenAiError(415, `the file's sample rate is ${sampleRate} Hz; supported: ${MIN_SAMPLE_RATE} to ${MAX_SAMPLE_RATE} Hz`, 'file', 'unsupported_format');
  }
  // Pieces of at most a second, cut from the worker's chunks.
  const piece = sampleRate;
  let current: Float32Array | undefined = first.samples;
  return {
    container,
    format: { encoding: 'pcm', channels: 1, sampleRate, bitDepth: 32, isFloat: true },
    seconds: undefined,
    async next() {
      while (!ended) {
        if (current && current.length > 0) {
          const out = current.subarray(0, piece);
          current = current.subarray(out.length);
          return asBytes(out);
        }
        const m = await more();
        if (m.type === 'end') {
          close();
          return undefined;
        }
        if (m.type === 'error') {
          close();
          throw new OpenAiError(400, `the ${describe(container)} file could not be decoded: ${m.message}`, 'file', 'invalid_audio');
        }
        if (m.sampleRate !== sampleRate) {
          close();
          throw new OpenAiError(415, `the file changes its sample rate (${sampleRate} to ${m.sampleRate} Hz)`, 'file', 'unsupported_format');
        }
        current = m.samples;
      }
      return undefined;
    },
    close,
  };
}

function describe(container: Container): string {
  return { wav: 'WAV', flac: 'FLAC', mp3: 'MP3', 'ogg-opus': 'Ogg Opus', 'ogg-vorbis': 'Ogg Vorbis', webm: 'WebM' }[container];
}
