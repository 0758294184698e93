// Reads the PCM WAV fixtures: format from the header, raw interleaved sample bytes.
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const FIXTURES = path.resolve(import.meta.dirname, '../fixtures');

export interface Wav {
  channels: number;
  sampleRate: number;
  bitDepth: number;
  isFloat: boolean;
  data: Buffer;
  frames: number;
  seconds: number;
}

export function readWav(name: string): Wav {
  const buf = readFileSync(path.join(FIXTURES, name));
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${name}: not a WAV file`);
  let offset = 12;
  let fmt: Omit<Wav, 'data' | 'frames' | 'seconds'> | undefined;
  while (offset + 8 <= buf.length) {
    const id = buf.toString('ascii', offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      let tag = buf.readUInt16LE(body);
      if (tag === 0xfffe) tag = buf.readUInt16LE(body + 24); // WAVE_FORMAT_EXTENSIBLE: sub-format GUID
      fmt = { channels: buf.readUInt16LE(body + 2), sampleRate: buf.readUInt32LE(body + 4), bitDepth: buf.readUInt16LE(body + 14), isFloat: tag === 3 };
    } else if (id === 'data') {
      if (!fmt) throw new Error(`${name}: data before fmt`);
      const data = buf.subarray(body, body + size);
      const frames = data.length / (fmt.channels * fmt.bitDepth / 8);
      return { ...fmt, data, frames, seconds: frames / fmt.sampleRate };
    }
    offset = body + size + (size & 1);
  }
  throw new Error(`${name}: no data chunk`);
}

/** The start message for a WAV, as the wire protocol spells it. */
export function startMessage(wav: Pick<Wav, 'channels' | 'sampleRate' | 'bitDepth' | 'isFloat'>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    request: 'start',
    format: { channels: wav.channels, sample_rate: wav.sampleRate, bit_depth: wav.bitDepth, is_float: wav.isFloat },
    interim_results: false,
    trace_id: null,
    ...extra,
  });
}

/** A WAV file of 16-bit mono PCM `pcm` at `rate` Hz. */
export function wavFile(pcm: Buffer, rate: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + pcm.length, 4);
  h.write('WAVEfmt ', 8, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}
