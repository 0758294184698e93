// Runs in a worker thread: decodes one compressed upload (FLAC, MP3, Ogg Opus, Ogg Vorbis, WebM
// Opus) with WebAssembly decoders, or mixes a multi-channel WAV to mono, so the event loop never
// runs a codec. Pull-based: each `more`
// from the owner gets one `chunk` (mono float samples, about DECODE_INPUT_BYTES of input) or `end`,
// so a long file is decoded only as fast as the pipeline takes it and memory stays flat.
import { parentPort, workerData } from 'node:worker_threads';
import { FLACDecoder } from '@wasm-audio-decoders/flac';
import { OggVorbisDecoder } from '@wasm-audio-decoders/ogg-vorbis';
import { MPEGDecoder } from 'mpg123-decoder';
import { OggOpusDecoder } from 'ogg-opus-decoder';
import { OpusDecoder } from 'opus-decoder';
import type { NativeFormat } from '../native/binding.js';
import type { CompressedContainer, DecodeRequest, DecoderMessage, WorkerInput } from './decode-protocol.js';
import { demuxWebmOpus } from './webm.js';

const DECODE_INPUT_BYTES = 128 << 10;

interface Decoded {
  channelData: Float32Array[];
  samplesDecoded: number;
  sampleRate: number;
  errors: readonly { message: string }[];
}

interface Codec {
  ready: Promise<void>;
  /** Decodes the next input piece (may buffer partial frames). */
  decode(piece: Uint8Array): Decoded | Promise<Decoded>;
  flush(): Decoded | Promise<Decoded> | undefined;
  free(): void;
}

function codecFor(container: Exclude<CompressedContainer, 'webm'>): Codec {
  switch (container) {
    case 'flac': {
      const d = new FLACDecoder();
      return { ready: d.ready, decode: (p) => d.decode(p), flush: () => d.flush(), free: () => d.free() };
    }
    case 'mp3': {
      const d = new MPEGDecoder();
      return { ready: d.ready, decode: (p) => d.decode(p), flush: () => undefined, free: () => d.free() };
    }
    case 'ogg-opus': {
      const d = new OggOpusDecoder();
      return { ready: d.ready, decode: (p) => d.decode(p), flush: () => d.flush(), free: () => d.free() };
    }
    case 'ogg-vorbis': {
      const d = new OggVorbisDecoder();
      return { ready: d.ready, decode: (p) => d.decode(p), flush: () => d.flush(), free: () => d.free() };
    }
  }
}

/** WebM: our demuxer finds the Opus track's frames; opus-decoder decodes them a batch at a time. */
function webmCodec(bytes: Uint8Array): { codec: Codec; pieces: Iterable<Uint8Array> } {
  const { head, frames } = demuxWebmOpus(bytes);
  const d = new OpusDecoder({
    channels: head.channels, preSkip: head.preSkip, streamCount: head.streamCount,
    coupledStreamCount: head.coupledStreamCount, channelMappingTable: head.channelMappingTable,
  });
  // Each piece is one frame; decodeFrames on a batch keeps the calls into WebAssembly few.
  const batch: Uint8Array[] = [];
  const pieces = function* (): Generator<Uint8Array> {
    for (const frame of frames) yield frame;
  };
  return {
    codec: {
      ready: d.ready,
      decode: (frame) => {
        batch.push(frame);
        if (batch.length < 50) return { channelData: [], samplesDecoded: 0, sampleRate: 48_000, errors: [] };
        return d.decodeFrames(batch.splice(0));
      },
      flush: () => (batch.length > 0 ? d.decodeFrames(batch.splice(0)) : undefined),
      free: () => d.free(),
    },
    pieces: pieces(),
  };
}

/** Interleaved PCM (any format the native decoder takes) to float samples per channel. */
function pcmCodec(format: NativeFormat): Codec {
  const { channels, bitDepth, isFloat, encoding } = format;
  const width = bitDepth / 8;
  const frame = channels * width;
  let carry = new Uint8Array(0);
  const g711 = encoding === 'mulaw' ? mulaw : encoding === 'alaw' ? alaw : undefined;
  const sample = (v: DataView, at: number): number => {
    if (g711) return g711(v.getUint8(at));
    if (isFloat) return width === 4 ? v.getFloat32(at, true) : v.getFloat64(at, true);
    switch (width) {
      case 1: return (v.getUint8(at) - 128) / 128;
      case 2: return v.getInt16(at, true) / 32_768;
      case 3: return ((v.getUint8(at) | (v.getUint8(at + 1) << 8) | (v.getInt8(at + 2) << 16))) / 8_388_608;
      default: return v.getInt32(at, true) / 2_147_483_648;
    }
  };
  return {
    ready: Promise.resolve(),
    decode: (piece) => {
      // Frames may straddle pieces: the partial one waits for the next.
      const bytes = carry.length > 0 ? Buffer.concat([carry, piece]) : piece;
      const n = Math.floor(bytes.length / frame);
      carry = bytes.slice(n * frame);
      const view = new DataView(bytes.buffer, bytes.byteOffset, n * frame);
      const channelData = Array.from({ length: channels }, () => new Float32Array(n));
      for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) channelData[c]![i] = sample(view, i * frame + c * width);
      return { channelData, samplesDecoded: n, sampleRate: format.sampleRate, errors: [] };
    },
    flush: () => undefined,
    free: () => undefined,
  };
}

function mulaw(byte: number): number {
  const u = ~byte & 0xff;
  const magnitude = ((((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4)) - 0x84;
  return ((u & 0x80) ? -magnitude : magnitude) / 32_768;
}

function alaw(byte: number): number {
  const a = byte ^ 0x55;
  const exponent = (a & 0x70) >> 4;
  let magnitude = (a & 0x0f) << 4;
  magnitude = exponent === 0 ? magnitude + 8 : (magnitude + 0x108) << (exponent - 1);
  return ((a & 0x80) ? magnitude : -magnitude) / 32_768;
}

function* slices(bytes: Uint8Array): Generator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += DECODE_INPUT_BYTES) yield bytes.subarray(at, at + DECODE_INPUT_BYTES);
}

function mono(out: Decoded): Float32Array {
  const n = out.samplesDecoded;
  const channels = out.channelData.filter((c) => c.length >= n);
  if (channels.length === 1) return channels[0]!.slice(0, n);
  const mixed = new Float32Array(n);
  for (const c of channels) for (let i = 0; i < n; i++) mixed[i]! += c[i]!;
  if (channels.length > 1) for (let i = 0; i < n; i++) mixed[i]! /= channels.length;
  return mixed;
}

async function main(): Promise<void> {
  const port = parentPort!;
  const input = workerData as WorkerInput;
  const post = (m: DecoderMessage): void => {
    if (m.type === 'chunk') port.postMessage(m, [m.samples.buffer as ArrayBuffer]); // mono() made it: ours to give
    else port.postMessage(m);
  };
  let codec: Codec;
  let pieces: Iterator<Uint8Array>;
  try {
    if (input.container === 'webm') {
      const webm = webmCodec(input.bytes);
      codec = webm.codec;
      pieces = webm.pieces[Symbol.iterator]();
    } else if (input.container === 'pcm') {
      codec = pcmCodec(input.format);
      pieces = slices(input.bytes);
    } else {
      codec = codecFor(input.container);
      pieces = slices(input.bytes);
    }
    await codec.ready;
  } catch (e) {
    post({ type: 'error', message: e instanceof Error ? e.message : String(e) });
    return;
  }
  let decodedAny = false;
  let firstError: string | undefined;
  let flushed = false;
  const emit = (out: Decoded | undefined): boolean => {
    if (!out) return false;
    if (out.errors.length > 0) firstError ??= out.errors[0]!.message;
    if (out.samplesDecoded === 0) return false;
    decodedAny = true;
    post({ type: 'chunk', sampleRate: out.sampleRate, samples: mono(out) });
    return true;
  };
  port.on('message', (request: DecodeRequest) => {
    if (request.type !== 'more') return;
    (async () => {
      try {
        for (;;) {
          const piece = pieces.next();
          if (piece.done) break;
          if (emit(await codec.decode(piece.value))) return;
        }
        if (!flushed) {
          flushed = true;
          if (emit(await codec.flush())) return;
        }
        codec.free();
        if (!decodedAny) post({ type: 'error', message: firstError ?? 'no audio could be decoded from the file' });
        else post({ type: 'end' });
      } catch (e) {
        post({ type: 'error', message: e instanceof Error ? e.message : String(e) });
      }
    })().catch(() => undefined); // the body catches everything itself
  });
}

main().catch((e: unknown) => parentPort?.postMessage({ type: 'error', message: String(e) }));
