// Messages between an upload and its decode worker (decode-worker.ts).

export type CompressedContainer = 'flac' | 'mp3' | 'ogg-opus' | 'ogg-vorbis' | 'webm';

export interface WorkerInput {
  container: CompressedContainer;
  bytes: Uint8Array;
}

export type DecodeRequest = { type: 'more' };

export type DecoderMessage =
  /** Mono samples (channels averaged) at `sampleRate`. */
  | { type: 'chunk'; sampleRate: number; samples: Float32Array }
  | { type: 'end' }
  | { type: 'error'; message: string };
