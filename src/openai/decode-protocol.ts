// Messages between an upload and its decode worker (decode-worker.ts).

import type { NativeFormat } from '../native/binding.js';

export type CompressedContainer = 'flac' | 'mp3' | 'ogg-opus' | 'ogg-vorbis' | 'webm';

export type WorkerInput =
  | { container: CompressedContainer; bytes: Uint8Array }
  /** A multi-channel WAV's data chunk, to be mixed to mono. */
  | { container: 'pcm'; format: NativeFormat; bytes: Uint8Array };

export type DecodeRequest = { type: 'more' };

export type DecoderMessage =
  /** Mono samples (channels averaged) at `sampleRate`. */
  | { type: 'chunk'; sampleRate: number; samples: Float32Array }
  | { type: 'end' }
  | { type: 'error'; message: string };
