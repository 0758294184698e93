// Settings: each has an environment variable, a matching --flag and a default. A bad value stops
// start-up with a message naming the setting.
import { readFileSync } from 'node:fs';
import { cpuBudget } from './cpu-budget.js';
import { memoryBudget } from './memory-budget.js';
import type { StubOptions } from './native/binding.js';

export type ModelName = 'stub' | 'moonshine-tiny' | 'moonshine-base';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Config {
  host: string;
  port: number;
  tlsCertFile: string;
  tlsKeyFile: string;
  tlsKeyPassphrase: string;
  tlsCaFile: string;
  model: ModelName;
  modelWeights: 'auto' | 'package';
  modelsDir: string;
  stub: StubOptions;
  logLevel: LogLevel;
  threads: number;
  workers: number;
  threadpoolNice: number;
  simpleWindowSeconds: number;
  vadStartThreshold: number;
  vadEndThreshold: number;
  vadMinSpeechMs: number;
  vadMinSilenceMs: number;
  vadPadBeforeMs: number;
  vadPadAfterMs: number;
  maxUtteranceSeconds: number;
  interimIntervalSeconds: number;
  maxConnections: number;
  socketReceiveBuffer: number;
  maxChannels: number;
  maxFrameBytes: number;
  maxTextBytes: number;
  maxStreamSeconds: number;
  streamIdleSeconds: number;
  maxOutboundBytes: number;
  maxBacklogSeconds: number;
  memoryBudgetBytes: number;
  maxInferenceLagSeconds: number;
  inferenceBatchRows: number;
  idleTimeoutSeconds: number;
  degradedWindowSeconds: number;
  drainSeconds: number;
  authToken: string;
  authTokenFile: string;
  authAllRoutes: boolean;
  maxConnectionsPerAddress: number;
  startTimeoutSeconds: number;
  maxConnectionSeconds: number;
  maxMessagesPerSecond: number;
  maxProtocolErrors: number;
  maxRateDesignsPerSecond: number;
  maxSampleRates: number;
  allowedOrigins: string[];
  allowedHosts: string[];
  metricsCacheSeconds: number;
  maxUploadBytes: number;
  maxUploadSeconds: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

interface Setting<K extends keyof Config> {
  key: K;
  env: string;
  help: string;
  default: Config[K];
  /** How --help and the README show a default derived from other settings. */
  shownDefault?: string;
  parse(raw: string): Config[K];
}

function integer(min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new Error(`must be an integer from ${min} to ${max}`);
    }
    return n;
  };
}

function decimal(min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new Error(`must be a number from ${min} to ${max}`);
    }
    return n;
  };
}

function boolean(raw: string): boolean {
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new Error('must be true or false');
}

// 0 (derived), or at least 1 MiB: less would refuse a stream's first frames.
function budgetBytes(raw: string): number {
  const n = integer(0, Number.MAX_SAFE_INTEGER)(raw);
  if (n > 0 && n < 1 << 20) throw new Error('must be 0 (derived from the memory limit) or at least 1048576 (1 MiB)');
  return n;
}

// uWebSockets.js aborts the process (not throws) on an idle timeout of 1-7 s or above 960 s.
function idleTimeout(raw: string): number {
  const n = integer(0, 960)(raw);
  if (n > 0 && n < 8) throw new Error('must be 0 (never) or from 8 to 960');
  return n;
}

/** A comma-separated list; empty items are dropped, so "" is the empty list. */
function list(check: (item: string) => string) {
  return (raw: string): string[] => raw.split(',').map((item) => item.trim()).filter((item) => item !== '').map(check);
}

// An Origin as browsers send it: scheme://host[:port], lower-case, no path; or "*".
function origin(item: string): string {
  if (item === '*') return item;
  let url: URL;
  try {
    url = new URL(item);
  } catch {
    throw new Error(`has "${item}", which is not an origin like https://example.com`);
  }
  if (url.origin === 'null' || url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || /\/./.test(item.replace(/^[a-z]+:\/\//i, ''))) {
    throw new Error(`has "${item}", which is not an origin like https://example.com (scheme, host and port only)`);
  }
  return url.origin;
}

function hostName(item: string): string {
  if (!/^[a-z0-9.\-:[\]]+$/i.test(item)) throw new Error(`has "${item}", which is not a host name or address`);
  return item.toLowerCase();
}

// A token must survive an HTTP header: header values lose surrounding whitespace, so such a token
// could never match; an empty one would silently turn authentication off.
function checkToken(raw: string): string {
  if (raw.trim() === '') throw new Error('must not be empty or only whitespace (leave it unset to turn authentication off)');
  if (raw.trim() !== raw) throw new Error('must not start or end with whitespace');
  if ([...raw].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) throw new Error('must not contain control characters');
  return raw;
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string): T => {
    if (!(values as string[]).includes(raw)) throw new Error(`must be one of ${values.join(', ')}`);
    return raw as T;
  };
}

export const DEFAULT_STUB: StubOptions = {
  delay_ms: 0,
  constant_factor: 0,
  jitter: 0,
  failure_rate: 0,
  panic_rate: 0,
  warmup_penalty_ms: 0,
  seed: 0,
};

const STUB_LIMITS: Record<keyof StubOptions, [number, number]> = {
  delay_ms: [0, 600_000],
  constant_factor: [0, 1000],
  jitter: [0, 1],
  failure_rate: [0, 1],
  panic_rate: [0, 1],
  warmup_penalty_ms: [0, 600_000],
  seed: [0, Number.MAX_SAFE_INTEGER],
};

function parseStub(raw: string): StubOptions {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new Error('must be a JSON object, e.g. {"delay_ms":50,"failure_rate":0.1}');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('must be a JSON object');
  }
  const stub = { ...DEFAULT_STUB };
  for (const [key, v] of Object.entries(value)) {
    if (!(key in STUB_LIMITS)) {
      throw new Error(`has an unknown option "${key}"; known: ${Object.keys(STUB_LIMITS).join(', ')}`);
    }
    const [min, max] = STUB_LIMITS[key as keyof StubOptions];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw new Error(`option "${key}" must be a number from ${min} to ${max}`);
    }
    stub[key as keyof StubOptions] = v;
  }
  return stub;
}

// The order here is the order of --help and of the README's table.
const SETTINGS: { [K in keyof Config]: Setting<K> }[keyof Config][] = [
  { key: 'port', env: 'PORT', default: 8080, help: 'TCP port; 0 takes a free one', parse: integer(0, 65535) },
  { key: 'host', env: 'HOST', default: '0.0.0.0', help: 'address to listen on', parse: (raw) => {
    if (raw.trim() === '') throw new Error('must not be empty');
    return raw;
  } },
  { key: 'tlsCertFile', env: 'TLS_CERT_FILE', default: '', parse: (raw) => raw,
    help: 'PEM certificate (then any intermediates): with TLS_KEY_FILE, every route is served over TLS (wss://, https://) on PORT; re-read on SIGHUP (unset: plain HTTP)' },
  { key: 'tlsKeyFile', env: 'TLS_KEY_FILE', default: '', parse: (raw) => raw,
    help: 'PEM private key of TLS_CERT_FILE; re-read with it on SIGHUP' },
  { key: 'tlsKeyPassphrase', env: 'TLS_KEY_PASSPHRASE', default: '', parse: (raw) => raw,
    help: 'passphrase of an encrypted TLS_KEY_FILE (prefer the variable: a flag shows in ps)' },
  { key: 'tlsCaFile', env: 'TLS_CA_FILE', default: '', parse: (raw) => raw,
    help: 'PEM intermediate CA certificates sent after TLS_CERT_FILE\'s, for a chain kept apart from the certificate' },
  { key: 'model', env: 'MODEL', default: 'moonshine-tiny', parse: oneOf<ModelName>('moonshine-tiny', 'moonshine-base', 'stub'),
    help: 'speech model: moonshine-tiny (English ASR), moonshine-base (larger, fewer word errors, slower) or stub (the template\'s test model)' },
  { key: 'modelWeights', env: 'MODEL_WEIGHTS', default: 'auto', parse: oneOf<'auto' | 'package'>('auto', 'package'),
    help: 'Moonshine weights: auto (the int8 derivation installed beside the package\'s files, where the CPU has VNNI: 1.2-1.4x less CPU for tiny, 1.5-1.9x for base, the same words on the real-speech fixture) or package (the files as published)' },
  { key: 'modelsDir', env: 'MODELS_DIR', default: '', parse: (raw) => raw,
    help: 'folder holding the fetched model files (default: the project\'s models/)' },
  { key: 'stub', env: 'STUB', default: DEFAULT_STUB, parse: parseStub,
    help: 'stub model options as JSON: delay_ms, constant_factor, jitter, failure_rate, panic_rate, warmup_penalty_ms, seed' },
  { key: 'logLevel', env: 'LOG_LEVEL', default: 'info', help: 'debug, info, warn or error',
    parse: oneOf<LogLevel>('debug', 'info', 'warn', 'error') },
  { key: 'threads', env: 'THREADS', default: 0, parse: integer(0, 512),
    help: 'model jobs run at once, one core each (0: one per core, within a cgroup CPU limit); the libuv threadpool gets twice as many threads (UV_THREADPOOL_SIZE), so decoding and VAD never wait behind inference' },
  { key: 'threadpoolNice', env: 'THREADPOOL_NICE', default: 0, parse: integer(0, 19),
    help: 'CPU niceness of threadpool workers (Linux): above 0, event loops win the CPU when compute saturates the cores (0: same as the loops)' },
  { key: 'workers', env: 'WORKERS', default: 0, parse: integer(0, 256),
    help: 'worker threads serving WebSockets on the shared port (0: one per core, within a cgroup CPU limit); models and the threadpool are shared' },
  { key: 'simpleWindowSeconds', env: 'SIMPLE_WINDOW_SECONDS', default: 5, parse: decimal(0.1, 60),
    help: '/api/v1/simple: length of the fixed windows each channel is cut into' },
  { key: 'vadStartThreshold', env: 'VAD_START_THRESHOLD', default: 0.5, parse: decimal(0.01, 0.99),
    help: '/api/v1/segmented: speech probability at which speech starts' },
  { key: 'vadEndThreshold', env: 'VAD_END_THRESHOLD', default: 0.35, parse: decimal(0.01, 0.99),
    help: 'speech probability below which silence is counted (at most VAD_START_THRESHOLD)' },
  { key: 'vadMinSpeechMs', env: 'VAD_MIN_SPEECH_MS', default: 250, parse: integer(0, 10_000),
    help: 'speech shorter than this is ignored (no events)' },
  { key: 'vadMinSilenceMs', env: 'VAD_MIN_SILENCE_MS', default: 300, parse: integer(32, 10_000),
    help: 'silence that ends an utterance' },
  { key: 'vadPadBeforeMs', env: 'VAD_PAD_BEFORE_MS', default: 400, parse: integer(0, 2000),
    help: 'audio before the detected speech given to the model with each utterance' },
  { key: 'vadPadAfterMs', env: 'VAD_PAD_AFTER_MS', default: 300, parse: integer(0, 2000),
    help: 'audio after the detected speech given to the model (at most VAD_MIN_SILENCE_MS)' },
  { key: 'maxUtteranceSeconds', env: 'MAX_UTTERANCE_SECONDS', default: 30, parse: decimal(1, 300),
    help: 'longer speech is split into utterances of this length' },
  { key: 'interimIntervalSeconds', env: 'INTERIM_INTERVAL_SECONDS', default: 0.5, parse: decimal(0.1, 60),
    help: 'with interim_results, the least audio between two interim results of an utterance (a fifth of the speech so far once that is longer)' },
  { key: 'maxConnections', env: 'MAX_CONNECTIONS', default: 10_000, parse: integer(1, 1_000_000),
    help: 'WebSocket connections served at once; more are refused with HTTP 503' },
  // -1: derived from MAX_CONNECTIONS once every setting is read (see loadConfig).
  { key: 'maxConnectionsPerAddress', env: 'MAX_CONNECTIONS_PER_ADDRESS', default: -1, parse: integer(0, 1_000_000),
    shownDefault: 'a quarter of MAX_CONNECTIONS, at least 100',
    help: 'WebSocket connections one client address (IPv6: one /64) may hold at once, process-wide; more are refused with HTTP 429. Behind a proxy every client has the proxy\'s address: raise it or use 0 (no limit)' },
  { key: 'startTimeoutSeconds', env: 'START_TIMEOUT_SECONDS', default: 10, parse: decimal(0, 3600),
    help: 'a connection without a stream (no start yet, or after a stop) for this long is closed: START_TIMEOUT, close 1008 (0: never)' },
  { key: 'maxConnectionSeconds', env: 'MAX_CONNECTION_SECONDS', default: 0, parse: decimal(0, 30 * 86_400),
    help: 'longest a connection may stay open; then its stream is finished, CONNECTION_TOO_LONG, close 1008 (0: no limit)' },
  { key: 'maxMessagesPerSecond', env: 'MAX_MESSAGES_PER_SECOND', default: 2000, parse: integer(0, 1_000_000),
    help: 'WebSocket messages a connection may send per second on average, with bursts of 5 s worth; beyond it TOO_MANY_MESSAGES, close 1008 (0: no limit)' },
  { key: 'maxProtocolErrors', env: 'MAX_PROTOCOL_ERRORS', default: 100, parse: integer(0, 1_000_000_000),
    help: 'protocol errors (BAD_JSON, NOT_STARTED, ...) a connection may earn; at the limit TOO_MANY_ERRORS, close 1008 (0: no limit)' },
  { key: 'maxRateDesignsPerSecond', env: 'MAX_RATE_DESIGNS_PER_SECOND', default: 4, parse: integer(0, 10_000),
    help: 'streams per second, process-wide, that may start at an uncommon sample_rate whose filter bank is not designed yet (each design takes ~5-25 ms of a threadpool worker and ~1-2 MB; bursts of as many pass); beyond it the start gets SAMPLE_RATE_BUSY. The common rates (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000) and rates already designed never count (0: no limit)' },
  { key: 'maxSampleRates', env: 'MAX_SAMPLE_RATES', default: 16, parse: integer(0, 10_000),
    help: 'distinct uncommon sample rates streams may use at once, process-wide (a filter bank of ~1-2 MB each; 8 unused ones stay cached); a start at one more gets SAMPLE_RATE_BUSY (0: no limit)' },
  { key: 'socketReceiveBuffer', env: 'SOCKET_RECEIVE_BUFFER', default: 32 << 10, parse: integer(0, 64 << 20),
    help: 'TCP receive buffer (SO_RCVBUF, bytes) of every connection: bounds how much a client pushes ahead of the server, so that a flood stays cheap; one connection then carries about 0.4 MB/s at 100 ms round trip (0: the OS default, autotuned)' },
  { key: 'maxChannels', env: 'MAX_CHANNELS', default: 8, parse: integer(1, 64),
    help: 'audio channels per stream' },
  { key: 'maxFrameBytes', env: 'MAX_FRAME_BYTES', default: 1 << 20, parse: integer(1024, 64 << 20),
    help: 'largest WebSocket message accepted; a larger one gets FRAME_TOO_LARGE and close 1009' },
  { key: 'maxTextBytes', env: 'MAX_TEXT_BYTES', default: 64 << 10, parse: integer(256, 16 << 20),
    help: 'largest JSON (text) message; a larger one gets MESSAGE_TOO_LARGE and is ignored' },
  { key: 'maxStreamSeconds', env: 'MAX_STREAM_SECONDS', default: 4 * 3600, parse: decimal(1, 7 * 86_400),
    help: 'audio one stream may carry; beyond it the stream is finished, STREAM_TOO_LONG, close 1008' },
  { key: 'streamIdleSeconds', env: 'STREAM_IDLE_SECONDS', default: 60, parse: decimal(0, 86_400),
    help: 'a started stream that receives no audio for this long is finished, STREAM_IDLE, close 1008 (0: never)' },
  { key: 'maxOutboundBytes', env: 'MAX_OUTBOUND_BYTES', default: 4 << 20, parse: integer(64 << 10, 1 << 30),
    help: 'events a client leaves unread; beyond it the client is too slow: SLOW_CONSUMER, close 1008' },
  { key: 'maxBacklogSeconds', env: 'MAX_BACKLOG_SECONDS', default: 30, parse: decimal(0.5, 3600),
    help: 'audio a stream may have waiting for processing before it gets a BACKLOG error and is closed' },
  // 0: derived once every setting is read (see loadConfig).
  { key: 'memoryBudgetBytes', env: 'MEMORY_BUDGET_BYTES', default: 0, parse: budgetBytes,
    shownDefault: 'half the cgroup memory limit, or of physical memory without one',
    help: 'bytes of audio the whole process may hold waiting (in sessions\' mailboxes, for the decoder and the VAD, across worker threads); a frame that would go over it gets MEMORY_BUDGET, close 1013; above 90 % new streams are refused with it and only connections within their share (the budget over the streams) may add (0: half the cgroup memory limit, or of physical memory)' },
  { key: 'maxInferenceLagSeconds', env: 'MAX_INFERENCE_LAG_SECONDS', default: 5, parse: decimal(0, 3600),
    help: 'over capacity: once audio waits this long behind real time for the model, the youngest streams are shed (OVERLOADED, close 1013) and new ones refused for 2 s (0: never)' },
  { key: 'inferenceBatchRows', env: 'INFERENCE_BATCH_ROWS', default: 16, parse: integer(1, 64),
    help: 'utterances the model transcribes together in one job (decoded in lock-step; 1: one at a time)' },
  { key: 'idleTimeoutSeconds', env: 'IDLE_TIMEOUT_SECONDS', default: 120, parse: idleTimeout,
    help: 'close a WebSocket silent for this long: 0 (never) or 8 to 960' },
  { key: 'drainSeconds', env: 'DRAIN_SECONDS', default: 30, parse: decimal(0, 3600),
    help: 'on SIGTERM/SIGINT, time live streams get to finish and receive their final results' },
  { key: 'authToken', env: 'AUTH_TOKEN', default: '', parse: checkToken,
    help: 'when set, WebSocket routes and the OpenAI-compatible /v1/ routes need it: "Authorization: Bearer <token>", the subprotocol "bearer.<token>" or ?token=<token> (else HTTP 401); empty or whitespace is refused' },
  { key: 'authTokenFile', env: 'AUTH_TOKEN_FILE', default: '', parse: (raw) => raw,
    help: 'a file holding AUTH_TOKEN (one trailing newline is dropped), e.g. a mounted Secret; not both' },
  { key: 'authAllRoutes', env: 'AUTH_ALL_ROUTES', default: false, parse: boolean,
    help: 'with AUTH_TOKEN, also protect /metrics and /api/v1/health (not the liveness route)' },
  { key: 'allowedOrigins', env: 'ALLOWED_ORIGINS', default: [], parse: list(origin),
    help: 'WebSocket upgrades from these browser origins (comma-separated, e.g. https://app.example.com; * for any) are allowed besides those without Origin (non-browser clients) and same-origin pages (Origin host = Host); others get HTTP 403' },
  { key: 'allowedHosts', env: 'ALLOWED_HOSTS', default: [], parse: list(hostName),
    help: 'Host header names (comma-separated, port ignored) the server answers; others get HTTP 403 on every route but liveness, against DNS rebinding (empty: any)' },
  { key: 'maxUploadBytes', env: 'MAX_UPLOAD_BYTES', default: 128 << 20, parse: integer(1024, 4 * 2 ** 30),
    help: 'largest request body of POST /v1/audio/transcriptions (413 above it; the default holds an hour of 16 kHz 16-bit mono WAV)' },
  { key: 'maxUploadSeconds', env: 'MAX_UPLOAD_SECONDS', default: 4 * 3600, parse: decimal(1, 7 * 86_400),
    help: 'longest audio one transcription request may hold (400 above it)' },
  { key: 'degradedWindowSeconds', env: 'DEGRADED_WINDOW_SECONDS', default: 300, parse: decimal(0, 86_400),
    help: 'health reads "degraded" for this long after a panic' },
  { key: 'metricsCacheSeconds', env: 'METRICS_CACHE_SECONDS', default: 0.25, parse: decimal(0, 60),
    help: 'one /metrics render serves every scrape for this long; concurrent scrapes always share one render (0: only those)' },
];

function flagOf(setting: { env: string }): string {
  return '--' + setting.env.toLowerCase().replaceAll('_', '-');
}

export function helpText(): string {
  const lines = ['Usage: npm start -- [--flag value ...]', '', 'Every flag has an environment variable; flags win.', ''];
  for (const s of SETTINGS) {
    const def = s.shownDefault ?? (typeof s.default === 'object' ? JSON.stringify(s.default) : String(s.default));
    lines.push(`  ${flagOf(s).padEnd(26)} ${s.env.padEnd(24)} ${s.help} (default: ${def})`);
  }
  return lines.join('\n');
}

/** Reads settings from `env` and `argv` (flags after the script name). Throws ConfigError. */
export function loadConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): Config {
  const fromFlags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const setting = SETTINGS.find((s) => flagOf(s) === flag);
    if (!setting) throw new ConfigError(`unknown argument ${arg}; see --help`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new ConfigError(`${flag} needs a value`);
    fromFlags.set(setting.env, value);
  }
  const config: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const raw = fromFlags.get(s.env) ?? env[s.env];
    if (raw === undefined) {
      config[s.key] = s.default;
      continue;
    }
    try {
      config[s.key] = s.parse(raw);
    } catch (e) {
      throw new ConfigError(`${s.env} (${flagOf(s)}) ${(e as Error).message}; got ${JSON.stringify(raw)}`);
    }
  }
  const result = config as unknown as Config;
  if (result.authTokenFile !== '') {
    if (result.authToken !== '') throw new ConfigError('AUTH_TOKEN and AUTH_TOKEN_FILE are both set: use one');
    let text: string;
    try {
      text = readFileSync(result.authTokenFile, 'utf8');
    } catch (e) {
      throw new ConfigError(`AUTH_TOKEN_FILE (--auth-token-file) cannot be read: ${(e as Error).message}`);
    }
    try {
      result.authToken = checkToken(text.replace(/\r?\n$/, ''));
    } catch (e) {
      throw new ConfigError(`AUTH_TOKEN_FILE (--auth-token-file) ${result.authTokenFile}: the token ${(e as Error).message}`);
    }
  }
  if (result.threads === 0) result.threads = cpuBudget();
  if (result.memoryBudgetBytes === 0) result.memoryBudgetBytes = memoryBudget(0);
  if ((result.tlsCertFile === '') !== (result.tlsKeyFile === '')) {
    const [set, unset] = result.tlsCertFile !== '' ? ['TLS_CERT_FILE (--tls-cert-file)', 'TLS_KEY_FILE (--tls-key-file)'] : ['TLS_KEY_FILE (--tls-key-file)', 'TLS_CERT_FILE (--tls-cert-file)'];
    throw new ConfigError(`${set} is set but ${unset} is not: TLS needs both`);
  }
  for (const [key, name] of [['tlsKeyPassphrase', 'TLS_KEY_PASSPHRASE (--tls-key-passphrase)'], ['tlsCaFile', 'TLS_CA_FILE (--tls-ca-file)']] as const) {
    if (result[key] !== '' && result.tlsCertFile === '') throw new ConfigError(`${name} is set but TLS_CERT_FILE and TLS_KEY_FILE are not`);
  }
  // One address may hold a quarter of the slots: enough for a load generator or a NAT on a
  // small MAX_CONNECTIONS, never all of them.
  if (result.maxConnectionsPerAddress === -1) result.maxConnectionsPerAddress = Math.max(100, Math.ceil(result.maxConnections / 4));
  if (result.vadEndThreshold > result.vadStartThreshold) {
    throw new ConfigError(`VAD_END_THRESHOLD (${result.vadEndThreshold}) must be at most VAD_START_THRESHOLD (${result.vadStartThreshold})`);
  }
  if (result.vadPadAfterMs > result.vadMinSilenceMs) {
    // The padding after speech must have arrived by the time the silence ends the utterance.
    throw new ConfigError(`VAD_PAD_AFTER_MS (${result.vadPadAfterMs}) must be at most VAD_MIN_SILENCE_MS (${result.vadMinSilenceMs})`);
  }
  return result;
}

export function settingsTable(): { env: string; flag: string; default: string; help: string }[] {
  return SETTINGS.map((s) => ({
    env: s.env,
    flag: flagOf(s),
    default: s.shownDefault ?? (typeof s.default === 'object' ? JSON.stringify(s.default) : String(s.default)),
    help: s.help,
  }));
}

/**
 * The libuv threadpool's size: THREADS threads for model jobs and as many for the short decode
 * and VAD jobs (their slots add up to about THREADS across the workers), which would otherwise
 * queue behind inference in the pool's one FIFO queue. libuv caps UV_THREADPOOL_SIZE at 1024
 * (reached with THREADS=0 on over 512 cores), so the size reported is the pool's real one.
 */
export function threadpoolSize(config: Config): number {
  return Math.min(1024, 2 * config.threads);
}

/** The worker threads to run: WORKERS, or one per core the process may use when it is 0. */
export function workerCount(config: Config, cores = cpuBudget()): number {
  return config.workers > 0 ? config.workers : cores;
}
