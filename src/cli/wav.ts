// Audio input for the clients: a WAV file's header mapped to the start message's format, or raw
// PCM described by flags. Only the format is interpreted; the sample bytes go to the server as is.
import { readFile } from 'node:fs/promises';
import { formatProblem, frameBytes } from '../audio-format.js';
import type { NativeFormat } from '../native/binding.js';
import { CliError, UsageError } from './errors.js';

/** bitDepth: container bits per sample (what the server decodes). */
type AudioFormat = NativeFormat;

export interface Audio {
  /** Where it came from (for messages). */
  name: string;
  format: AudioFormat;
  /** Interleaved little-endian sample bytes (the WAV's data chunk, or the whole raw file). */
  data: Buffer;
}

/** What raw PCM flags say; `rate` is the one without a default. */
export interface RawFlags {
  rate?: number | undefined;
  channels?: number | undefined;
  bits?: number | undefined;
  float?: boolean | undefined;
  encoding?: string | undefined;
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_ALAW = 6;
const WAVE_FORMAT_MULAW = 7;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
// KSDATAFORMAT_SUBTYPE_*: the format tag in the first two bytes, then this fixed tail.
const SUBTYPE_TAIL = Buffer.from([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]);

const TAG_NAMES: Record<number, string> = {
  2: 'Microsoft ADPCM', 0x11: 'IMA ADPCM', 0x31: 'GSM 6.10', 0x50: 'MPEG', 0x55: 'MP3', 0x161: 'WMA',
};

export function bytesPerSecond(f: AudioFormat): number {
  return frameBytes(f) * f.sampleRate;
}

/** Seconds of audio in `bytes` (whole frames only). */
export function secondsOf(f: AudioFormat, bytes: number): number {
  return Math.floor(bytes / frameBytes(f)) / f.sampleRate;
}

/** The `format` object of the start message, as the wire protocol spells it. */
export function wireFormat(f: AudioFormat): Record<string, unknown> {
  const wire: Record<string, unknown> = { channels: f.channels, sample_rate: f.sampleRate, bit_depth: f.bitDepth, is_float: f.isFloat };
  if (f.encoding !== 'pcm') wire['encoding'] = f.encoding;
  return wire;
}

export function describeFormat(f: AudioFormat): string {
  const kind = f.encoding === 'mulaw' ? 'μ-law' : f.encoding === 'alaw' ? 'A-law' : f.isFloat ? `float ${f.bitDepth}-bit` : `${f.bitDepth}-bit PCM`;
  return `${kind}, ${f.sampleRate} Hz, ${f.channels} channel${f.channels === 1 ? '' : 's'}`;
}

/** Throws a UsageError unless the server's decoder supports `f`, in the server's own words. */
function checkFormat(f: AudioFormat, what: string): void {
  const problem = formatProblem(f);
  if (problem) throw new UsageError(`${what}: ${problem}`);
}

function isWav(buf: Buffer): boolean {
  return buf.length >= 12 && ['RIFF', 'RF64'].includes(buf.toString('ascii', 0, 4)) && buf.toString('ascii', 8, 12) === 'WAVE';
}

/** Parses a WAV file (RIFF or RF64): the format from its `fmt ` chunk, the bytes of its `data` chunk. */
export function parseWav(buf: Buffer, name: string): Audio {
  if (buf.toString('ascii', 0, 4) === 'RIFX') throw new UsageError(`${name}: big-endian WAV (RIFX) is not supported`);
  if (!isWav(buf)) throw new UsageError(`${name}: not a WAV file (no RIFF/WAVE header); for raw PCM give --rate (and --channels, --bits, --float, --encoding)`);
  const rf64 = buf.toString('ascii', 0, 4) === 'RF64';
  let rf64DataSize: number | undefined;
  let format: AudioFormat | undefined;
  let offset = 12;
  while (offset + 8 <= buf.length) {
    const id = buf.toString('ascii', offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'ds64' && rf64 && size >= 16) {
      rf64DataSize = Number(buf.readBigUInt64LE(body + 8));
    } else if (id === 'fmt ') {
      format = parseFmt(buf.subarray(body, Math.min(body + size, buf.length)), name);
    } else if (id === 'data') {
      if (!format) throw new UsageError(`${name}: the data chunk comes before the fmt chunk`);
      // Writers that stream (size unknown) leave 0 or 0xFFFFFFFF; RF64 keeps the size in ds64.
      let length = rf64 && size === 0xffffffff && rf64DataSize !== undefined ? rf64DataSize : size;
      if (length === 0 || length === 0xffffffff || body + length > buf.length) length = buf.length - body;
      return { name, format, data: buf.subarray(body, body + length) };
    }
    if (size === 0xffffffff) break;
    offset = body + size + (size & 1);
  }
  throw new UsageError(format ? `${name}: no data chunk` : `${name}: no fmt chunk`);
}

function parseFmt(fmt: Buffer, name: string): AudioFormat {
  if (fmt.length < 16) throw new UsageError(`${name}: the fmt chunk is too short (${fmt.length} bytes)`);
  let tag = fmt.readUInt16LE(0);
  const channels = fmt.readUInt16LE(2);
  const sampleRate = fmt.readUInt32LE(4);
  const blockAlign = fmt.readUInt16LE(12);
  const bits = fmt.readUInt16LE(14);
  if (tag === WAVE_FORMAT_EXTENSIBLE) {
    if (fmt.length < 40) throw new UsageError(`${name}: WAVE_FORMAT_EXTENSIBLE with a short fmt chunk (${fmt.length} bytes)`);
    if (!fmt.subarray(26, 40).equals(SUBTYPE_TAIL)) throw new UsageError(`${name}: WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID`);
    tag = fmt.readUInt16LE(24);
  }
  if (channels < 1) throw new UsageError(`${name}: the fmt chunk says ${channels} channels`);
  // Samples sit in containers of blockAlign / channels bytes (e.g. 20 valid bits in 24): the
  // server decodes the container; the unused low bits are zero.
  const container = blockAlign > 0 && blockAlign % channels === 0 ? (blockAlign / channels) * 8 : Math.ceil(bits / 8) * 8;
  const bitDepth = container >= bits ? container : Math.ceil(bits / 8) * 8;
  let f: AudioFormat;
  switch (tag) {
    case WAVE_FORMAT_PCM:
      f = { channels, sampleRate, bitDepth, isFloat: false, encoding: 'pcm' };
      break;
    case WAVE_FORMAT_IEEE_FLOAT:
      f = { channels, sampleRate, bitDepth, isFloat: true, encoding: 'pcm' };
      break;
    case WAVE_FORMAT_MULAW:
    case WAVE_FORMAT_ALAW:
      f = { channels, sampleRate, bitDepth, isFloat: false, encoding: tag === WAVE_FORMAT_MULAW ? 'mulaw' : 'alaw' };
      break;
    default:
      throw new UsageError(`${name}: WAV format tag ${tag}${TAG_NAMES[tag] ? ` (${TAG_NAMES[tag]})` : ''} is not supported; use PCM, float, μ-law or A-law`);
  }
  checkFormat(f, name);
  return f;
}

/** The format raw PCM flags describe (defaults: 1 channel, 16 bits, or 8 for μ-law/A-law). */
function rawFormat(flags: RawFlags): AudioFormat {
  if (flags.rate === undefined) throw new UsageError('raw PCM needs --rate (and --channels, --bits, --float, --encoding as they differ from 1, 16, integer, pcm)');
  const encoding = flags.encoding ?? 'pcm';
  if (encoding !== 'pcm' && encoding !== 'mulaw' && encoding !== 'alaw') throw new UsageError(`--encoding must be pcm, mulaw or alaw; got ${JSON.stringify(encoding)}`);
  const isFloat = flags.float ?? false;
  const bitDepth = flags.bits ?? (encoding === 'pcm' ? (isFloat ? 32 : 16) : 8);
  const f: AudioFormat = { channels: flags.channels ?? 1, sampleRate: flags.rate, bitDepth, isFloat, encoding };
  checkFormat(f, 'raw PCM');
  return f;
}

function hasRawFlags(flags: RawFlags): boolean {
  return Object.values(flags).some((v) => v !== undefined);
}

/**
 * Loads one input: a WAV file, or (when any raw format flag is given) raw PCM. A WAV file with raw
 * flags is refused rather than sending its header as audio.
 */
export async function loadAudio(file: string, flags: RawFlags): Promise<Audio> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new CliError(`cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, 2);
  }
  if (hasRawFlags(flags)) {
    if (isWav(buf)) throw new UsageError(`${file} is a WAV file: its header gives the format, drop --rate/--channels/--bits/--float/--encoding`);
    return { name: file, format: rawFormat(flags), data: buf };
  }
  return parseWav(buf, file);
}
