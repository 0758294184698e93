#!/usr/bin/env node
// speech-client: command-line clients for the speech server. Parses the arguments of each command,
// checks them, and dispatches; every failure ends as one line on stderr and a non-zero exit code.
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { metricsUrl, parseWsUrl } from './connect.js';
import { CliError, UsageError } from './errors.js';
import { loadCommand } from './load.js';
import { streamCommand } from './stream.js';
import type { RawFlags } from './wav.js';

const DEFAULT_URL = 'ws://127.0.0.1:8080/api/v1/segmented';
const DEFAULT_CHUNK_BYTES = 256;
const UNPACED_CHUNK_BYTES = 32 << 10;

const USAGE = `speech-client: stream audio to the speech server and print what it hears, or load-test it

usage:
  speech-client stream <file> [options]     one WAV (or raw PCM) file, events printed as they arrive
  speech-client load <file>... [options]    many concurrent streams; latency, errors, server CPU/RSS
  speech-client <command> --help           the options of a command

Routes: ws://HOST:PORT/api/v1/segmented (voice activity, finals, interims) or /api/v1/simple
(fixed windows). The token can also come from the SPEECH_CLIENT_TOKEN environment variable.
`;

const AUDIO_HELP = `Audio:
  <file>                   a WAV file: integer PCM 8/16/24/32-bit, float 32/64-bit, μ-law (tag 7),
                           A-law (tag 6), WAVE_FORMAT_EXTENSIBLE, RF64; any rate 8000-192000 Hz and
                           channel count. Its header gives the format.
  --rate HZ                raw PCM instead (the whole file is audio): its sample rate; then
  --channels N             channels, interleaved (default 1)
  --bits N                 bits per sample: 8 (unsigned), 16, 24, 32; 32/64 with --float
                           (default 16; 8 for μ-law/A-law; 32 with --float)
  --float                  IEEE float samples
  --encoding E             pcm (default), mulaw or alaw
  Samples are little-endian.`;

const CONNECTION_HELP = `Connection:
  --url URL                WebSocket URL of a route (default ${DEFAULT_URL})
  --token TOKEN            sent as "Authorization: Bearer TOKEN" (default: $SPEECH_CLIENT_TOKEN)
  --ca FILE                PEM CA certificate(s) to trust for wss:// (and https:// metrics) instead
                           of the system's; NODE_EXTRA_CA_CERTS=FILE adds to the system's instead
  --chunk-bytes N          bytes per binary frame (default 256; 32768 for stream when unpaced)
  --interim                ask for interim results (segmented route)
  --connect-timeout S      give up connecting after S seconds (default 10)
  --wait S                 after stop, wait up to S seconds for the final results (default 60)`;

const STREAM_HELP = `usage: speech-client stream <file> [options]

Sends one file: a start message with its format, the audio in binary frames, then stop with
disconnect; prints the server's events as they arrive and, at the end, the time to the first
message, the total time and the final text of each channel. Exit code 0 on success; 1 when the
connection fails (unreachable, HTTP 401/503 refusal), the server rejects the stream or closes it
with an error; 2 for bad arguments or input. The reason is one line on stderr.

${AUDIO_HELP}

${CONNECTION_HELP}

Pacing (default: as fast as the server takes it):
  --real-time              send at the speed of speech, as a live microphone would
  --speed X                send at X times real time (e.g. 8)
  Unpaced, the stream asks the server for progress events and keeps at most 10 s of audio
  beyond what it reports done, so a file of any length (an hour, say) goes through at the
  server's speed without exceeding its backlog limit.

Output:
  (default)                readable lines: "[ch0   0.54s] ● speaking",
                           "[ch0 0.34–4.14s] final: The quick…"; interims dimmed on a terminal;
                           a progress bar on stderr when it is a terminal
  --json                   JSON lines on stdout: each server event with an added "elapsed_ms"
                           (ms since the start message was sent); the summary goes to stderr
  --trace-id ID            the start message's trace_id (appears in the server's logs)
  -h, --help               this help
`;

const LOAD_HELP = `usage: speech-client load <file>... [options]

Runs --streams concurrent streams, each a sequence of connections that each send one file (the
files taken round-robin) with start, audio and stop. Reports, in readable lines and as the last
line one JSON object:
  time_to_first_event_ms   start message sent → first event (p50/p95/p99/max)
  final_lag_ms             arrival of each final (each segment on /simple) minus the wall time the
                           audio at its end_time was sent
  interim_staleness_ms     the same for each interim result (with --interim)
  connect_ms, errors (server error events by code), failures (failed streams by cause:
  CONNECT_REFUSED, HTTP_503, CLOSED_1006, WAIT_TIMEOUT, a server error code…),
  dropped_connections, close_codes, and the server's CPU (rate of process_cpu_seconds_total, in
  cores) and RSS (process_resident_memory_bytes), sampled from its /metrics during the run.
Exit code 0 when the run completes (failures are figures), 1 when no stream completed, 2 for
bad arguments.

${AUDIO_HELP}

${CONNECTION_HELP}

Load:
  --streams N              concurrent streams (default 10)
  --ramp-up S              start them evenly over S seconds (default 0)
  --repeat K               files each stream sends, one after another (default 1)
  --duration S             run for S seconds: streams start again until then, and running ones
                           are stopped at the deadline (with --repeat: whichever comes first)
  --real-time              pace each stream at the speed of speech (the default)
  --speed X                pace at X times real time
  --no-real-time           send as fast as each connection takes it
  --metrics-url URL        where to sample the server's metrics (default: the --url's host, /metrics)
  --metrics-interval S     seconds between samples (default 1)
  --rotate-at S,S,...      stream w plays its file rotated to begin at the w-th of these seconds
                           (round-robin, wrapping round to the start): cut in the pauses, streams
                           started together end their utterances at different moments
  --transcripts            add "transcripts" to the JSON: each stream's finals (times, text)
  -h, --help               this help
`;

const COMMON_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  ca: { type: 'string' },
  'chunk-bytes': { type: 'string' },
  interim: { type: 'boolean' },
  'connect-timeout': { type: 'string' },
  wait: { type: 'string' },
  'real-time': { type: 'boolean' },
  speed: { type: 'string' },
  rate: { type: 'string' },
  channels: { type: 'string' },
  bits: { type: 'string' },
  float: { type: 'boolean' },
  encoding: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const STREAM_OPTIONS = {
  ...COMMON_OPTIONS,
  json: { type: 'boolean' },
  'trace-id': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const LOAD_OPTIONS = {
  ...COMMON_OPTIONS,
  streams: { type: 'string' },
  'ramp-up': { type: 'string' },
  repeat: { type: 'string' },
  duration: { type: 'string' },
  'metrics-url': { type: 'string' },
  'metrics-interval': { type: 'string' },
  'rotate-at': { type: 'string' },
  transcripts: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

type Values = Partial<Record<string, string | boolean>>;

/** A numeric flag: undefined when absent; a UsageError unless a finite number in range. */
function num(values: Values, name: string, opts: { min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean } = {}): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const v = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  const { min, max, integer = false, exclusiveMin = false } = opts;
  const wanted = `${integer ? 'an integer' : 'a number'}${min !== undefined ? (exclusiveMin ? ` above ${min}` : ` of at least ${min}`) : ''}${max !== undefined ? ` and at most ${max}` : ''}`;
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || (min !== undefined && (exclusiveMin ? v <= min : v < min)) || (max !== undefined && v > max)) {
    throw new UsageError(`--${name} must be ${wanted}; got ${JSON.stringify(raw)}`);
  }
  return v;
}

function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

function bool(values: Values, name: string): boolean | undefined {
  const v = values[name];
  return typeof v === 'boolean' ? v : undefined;
}

function rawFlags(values: Values): RawFlags {
  return {
    rate: num(values, 'rate', { integer: true, min: 1 }),
    channels: num(values, 'channels', { integer: true, min: 1 }),
    bits: num(values, 'bits', { integer: true, min: 1 }),
    float: bool(values, 'float'),
    encoding: str(values, 'encoding'),
  };
}

function readCa(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read --ca ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca ${file} holds no PEM certificate`);
  return pem;
}

function connection(values: Values): { url: URL; token: string | undefined; ca: string | undefined; chunkBytes: number; interim: boolean; connectTimeoutMs: number; waitMs: number } {
  return {
    url: parseWsUrl(str(values, 'url') ?? DEFAULT_URL),
    token: str(values, 'token') ?? process.env['SPEECH_CLIENT_TOKEN'],
    ca: readCa(str(values, 'ca')),
    chunkBytes: num(values, 'chunk-bytes', { integer: true, min: 1, max: 64 << 20 }) ?? 0, // 0: the command's default
    interim: bool(values, 'interim') ?? false,
    connectTimeoutMs: (num(values, 'connect-timeout', { min: 0, exclusiveMin: true }) ?? 10) * 1000,
    waitMs: (num(values, 'wait', { min: 0, exclusiveMin: true }) ?? 60) * 1000,
  };
}

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, command: string): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true, allowNegative: true });
    return { values, positionals };
  } catch (e) {
    const first = (e as Error).message.split('\n')[0]!.split('. To specify')[0]!.replace(/\.$/, '');
    throw new UsageError(`${first} (see speech-client ${command} --help)`);
  }
}

async function stream(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, STREAM_OPTIONS, 'stream');
  if (values['help']) {
    process.stdout.write(STREAM_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`stream takes one file; got ${positionals.length} (see speech-client stream --help)`);
  const speed = num(values, 'speed', { min: 0, exclusiveMin: true }) ?? (values['real-time'] === true ? 1 : Infinity);
  const link = connection(values);
  return streamCommand({
    file: positionals[0]!,
    raw: rawFlags(values),
    ...link,
    // Paced, small frames as a microphone sends; unpaced, 32 KiB frames: a file in 256-byte
    // frames would be far over the server's message-rate budget (MAX_MESSAGES_PER_SECOND).
    chunkBytes: link.chunkBytes || (Number.isFinite(speed) ? DEFAULT_CHUNK_BYTES : UNPACED_CHUNK_BYTES),
    speed,
    json: bool(values, 'json') ?? false,
    traceId: str(values, 'trace-id'),
  });
}

/** --rotate-at's list of seconds, each finite and not negative. */
function rotateAt(raw: string | undefined): number[] | undefined {
  if (raw === undefined) return undefined;
  const list = raw.split(',').map((v) => (v.trim() === '' ? NaN : Number(v)));
  if (list.length === 0 || list.some((v) => !Number.isFinite(v) || v < 0)) throw new UsageError(`--rotate-at must be a comma-separated list of seconds (0 or more); got ${JSON.stringify(raw)}`);
  return list;
}

async function load(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, LOAD_OPTIONS, 'load');
  if (values['help']) {
    process.stdout.write(LOAD_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('load needs at least one file (see speech-client load --help)');
  const speedFlag = num(values, 'speed', { min: 0, exclusiveMin: true });
  if (values['real-time'] === false && speedFlag !== undefined) throw new UsageError('--no-real-time and --speed contradict each other');
  const conn = connection(values);
  const metrics = str(values, 'metrics-url');
  let metricsAt: URL;
  if (metrics === undefined) {
    metricsAt = metricsUrl(conn.url);
  } else {
    try {
      metricsAt = new URL(metrics);
    } catch {
      throw new UsageError(`bad --metrics-url ${JSON.stringify(metrics)}: not a URL`);
    }
    if (metricsAt.protocol !== 'http:' && metricsAt.protocol !== 'https:') throw new UsageError(`bad --metrics-url ${JSON.stringify(metrics)}: the scheme must be http:// or https://`);
  }
  return loadCommand({
    files: positionals,
    raw: rawFlags(values),
    ...conn,
    chunkBytes: conn.chunkBytes || DEFAULT_CHUNK_BYTES,
    streams: num(values, 'streams', { integer: true, min: 1, max: 1_000_000 }) ?? 10,
    rampUpSeconds: num(values, 'ramp-up', { min: 0 }) ?? 0,
    speed: speedFlag ?? (values['real-time'] === false ? Infinity : 1),
    durationSeconds: num(values, 'duration', { min: 0, exclusiveMin: true }),
    repeat: num(values, 'repeat', { integer: true, min: 1 }),
    metricsUrl: metricsAt,
    metricsIntervalMs: (num(values, 'metrics-interval', { min: 0.05 }) ?? 1) * 1000,
    transcripts: bool(values, 'transcripts') ?? false,
    rotateAtSeconds: rotateAt(str(values, 'rotate-at')),
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'stream':
        return await stream(rest);
      case 'load':
        return await load(rest);
      case undefined:
        process.stderr.write(USAGE);
        return 2;
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}: use stream or load (see speech-client --help)`);
    }
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`speech-client: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`speech-client: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}

// Output piped into e.g. `head` that has seen enough: stop quietly, as other tools do.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(process.exitCode ?? 0);
});
process.exitCode = await main(process.argv.slice(2));
