// A minimal WebM (Matroska) demuxer for what browsers' MediaRecorder writes: one Opus audio track
// in SimpleBlocks or BlockGroups, clusters of known or unknown size. Only the elements on the way
// to the frames are entered; everything else is skipped by its size.
import { OpenAiError } from './errors.js';

interface OpusHead {
  channels: number;
  preSkip: number;
  streamCount: number;
  coupledStreamCount: number;
  channelMappingTable: number[];
}

const EBML = 0x1a45dfa3;
const SEGMENT = 0x18538067;
const CLUSTER = 0x1f43b675;
const TRACKS = 0x1654ae6b;
const TRACK_ENTRY = 0xae;
const TRACK_NUMBER = 0xd7;
const CODEC_ID = 0x86;
const CODEC_PRIVATE = 0x63a2;
const BLOCK_GROUP = 0xa0;
const BLOCK = 0xa1;
const SIMPLE_BLOCK = 0xa3;
// Entered, not skipped: their children are what we look for.
const MASTERS = new Set([SEGMENT, CLUSTER, TRACKS, TRACK_ENTRY, BLOCK_GROUP]);

function unsupported(message: string): OpenAiError {
  return new OpenAiError(400, `WebM: ${message}`, 'file', 'invalid_audio');
}

/** A variable-length integer at `at`: its value (marker removed unless `keepMarker`) and length. */
function vint(b: Uint8Array, at: number, keepMarker: boolean): { value: number; length: number; unknown: boolean } {
  const first = b[at];
  if (first === undefined || first === 0) throw unsupported('malformed element header');
  const length = Math.clz32(first) - 23; // 1 for 0b1xxxxxxx ... 8 for 0b00000001
  if (at + length > b.length) throw unsupported('truncated file');
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === (0xff >> length);
  for (let i = 1; i < length; i++) {
    value = value * 256 + b[at + i]!;
    if (b[at + i] !== 0xff) allOnes = false;
  }
  return { value, length, unknown: !keepMarker && allOnes };
}

function parseOpusHead(p: Uint8Array): OpusHead {
  if (p.length < 19 || Buffer.from(p.subarray(0, 8)).toString('latin1') !== 'OpusHead') throw unsupported('the Opus track has no OpusHead');
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const channels = p[9]!;
  const family = p[18]!;
  if (family === 0) return { channels, preSkip: view.getUint16(10, true), streamCount: 1, coupledStreamCount: channels > 1 ? 1 : 0, channelMappingTable: channels > 1 ? [0, 1] : [0] };
  if (p.length < 21 + channels) throw unsupported('a short OpusHead');
  return { channels, preSkip: view.getUint16(10, true), streamCount: p[19]!, coupledStreamCount: p[20]!, channelMappingTable: [...p.subarray(21, 21 + channels)] };
}

export function demuxWebmOpus(b: Uint8Array): { head: OpusHead; frames: Uint8Array[] } {
  if (vint(b, 0, true).value !== EBML) throw unsupported('not an EBML file');
  const tracks: { number?: number; codec?: string; private?: Uint8Array }[] = [];
  const blocks: Uint8Array[] = [];
  let at = 0;
  while (at < b.length) {
    const id = vint(b, at, true);
    const size = vint(b, at + id.length, false);
    const body = at + id.length + size.length;
    if (MASTERS.has(id.value)) {
      if (id.value === TRACK_ENTRY) tracks.push({});
      at = body; // enter: children follow (a flat walk, so unknown sizes need no bookkeeping)
      continue;
    }
    if (size.unknown) throw unsupported(`an element of unknown size (id 0x${id.value.toString(16)}) that is not a segment or cluster`);
    const end = Math.min(body + size.value, b.length);
    const content = b.subarray(body, end);
    const track = tracks[tracks.length - 1];
    if (id.value === TRACK_NUMBER && track) track.number = content.reduce((v, x) => v * 256 + x, 0);
    else if (id.value === CODEC_ID && track) track.codec = Buffer.from(content).toString('latin1');
    else if (id.value === CODEC_PRIVATE && track) track.private = content;
    else if (id.value === SIMPLE_BLOCK || id.value === BLOCK) blocks.push(content);
    at = end;
  }
  const opus = tracks.find((t) => t.codec === 'A_OPUS');
  if (!opus || opus.number === undefined || !opus.private) {
    const codecs = tracks.map((t) => t.codec).filter(Boolean).join(', ');
    throw new OpenAiError(415, `WebM: no Opus audio track${codecs ? ` (tracks: ${codecs})` : ''}; only WebM/Opus is supported`, 'file', 'unsupported_format');
  }
  const frames: Uint8Array[] = [];
  for (const block of blocks) {
    const track = vint(block, 0, false);
    if (track.value !== opus.number) continue;
    const flags = block[track.length + 2]!;
    if ((flags & 0x06) !== 0) throw unsupported('laced blocks are not supported');
    frames.push(block.subarray(track.length + 3));
  }
  return { head: parseOpusHead(opus.private), frames };
}
