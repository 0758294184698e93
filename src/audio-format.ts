// The audio formats the decoder takes, and the arithmetic of their frames: one rule for the wire
// protocol (protocol.ts, a start's format), the OpenAI routes and the client CLI (cli/wav.ts,
// before it connects). The native decoder checks the same rules again (native/pcm.cc
// ValidateFormat) as an assertion of its own boundary: what reaches it was validated here.
import type { NativeFormat } from './native/binding.js';

/** The rate everything after the decoder runs at: Silero VAD and Moonshine take 16 kHz. */
export const SAMPLE_RATE = 16_000;
export const MIN_SAMPLE_RATE = 8000;
export const MAX_SAMPLE_RATE = 192_000;

/** Why the decoder cannot take `f` (in the wire protocol's names), or undefined when it can. */
export function formatProblem(f: NativeFormat, maxChannels = Infinity): string | undefined {
  const encoding: string = f.encoding; // as sent: not yet known to be one of the three
  if (encoding !== 'pcm' && encoding !== 'mulaw' && encoding !== 'alaw') {
    return `format.encoding must be one of pcm, mulaw, alaw; got ${JSON.stringify(f.encoding).slice(0, 64)}`;
  }
  if (!Number.isInteger(f.channels) || f.channels < 1 || f.channels > maxChannels) {
    return `format.channels must be ${maxChannels === Infinity ? 'a positive integer' : `an integer from 1 to ${maxChannels}`}; got ${f.channels}`;
  }
  if (!Number.isInteger(f.sampleRate) || f.sampleRate < MIN_SAMPLE_RATE || f.sampleRate > MAX_SAMPLE_RATE) {
    return `format.sample_rate must be an integer from ${MIN_SAMPLE_RATE} to ${MAX_SAMPLE_RATE}; got ${f.sampleRate}`;
  }
  if (f.encoding === 'pcm') {
    const allowed = f.isFloat ? [32, 64] : [8, 16, 24, 32];
    if (!allowed.includes(f.bitDepth)) {
      return `format.bit_depth must be one of ${allowed.join(', ')} for ${f.isFloat ? 'float' : 'integer'} PCM; got ${f.bitDepth}`;
    }
  } else if (f.bitDepth !== 8 || f.isFloat) {
    return `format.bit_depth must be 8 and is_float false for ${f.encoding}; got ${f.bitDepth}${f.isFloat ? ' float' : ''}`;
  }
  return undefined;
}

/** Bytes of one interleaved frame (all channels, one sample each). */
export function frameBytes(format: NativeFormat): number {
  return (format.bitDepth / 8) * format.channels;
}
