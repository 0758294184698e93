// The peer for the capacity benchmark: this project's segmented WebSocket protocol served by
// sherpa-onnx-node (k2-fsa's runtime, from npm), wired as its own Node examples wire VAD and a
// non-streaming recognizer (nodejs-addon-examples/test_vad_asr_non_streaming_moonshine_microphone.js:
// a CircularBuffer feeds the Vad 512-sample windows, each speech segment the Vad pops is decoded by
// an OfflineRecognizer; test_asr_non_streaming_moonshine_v2.js: the `moonshine.encoder` +
// `moonshine.mergedDecoder` config; *_async.js: one recognizer, concurrent decodeAsync).
//
// It loads the same files as our server: models/silero-vad/silero_vad.onnx for its Vad and
// models/moonshine-tiny/{encoder_model,decoder_model_merged}.onnx for its recognizer (sherpa-onnx
// 1.13 reads this encoder + merged-decoder export as "Moonshine v2"). The one file it needs that
// we lack is tokens.txt, sherpa's "base64(token bytes) id" form: it is derived at start, into a
// temporary directory, from models/moonshine-tiny/vocab.txt (byte pieces <0xNN> become the byte).
//
// Scheduling, to compare like with like against THREADS=2: at most DECODE_SLOTS (2) decodes at
// once, each with one ONNX Runtime thread; queued finals go before queued interims; an interim is
// skipped while a decode of its stream is queued or running (a newer one replaces a queued one),
// and one that completes after its utterance's final is dropped. The Vad (one per stream, Silero
// with one thread) runs on the main thread, as the examples run it.
//
// Times: start_time is the segment's start as the Vad gives it (it includes its lookback of two
// windows plus the minimum speech duration). The Vad ends a segment where the silence began and
// pops it MIN_SILENCE later; end_time is reported at that later point, where the utterance was
// closed, as our server's end_time includes VAD_PAD_AFTER_MS (= its VAD_MIN_SILENCE_MS) of
// trailing audio: so both servers' final lag runs from the moment the end of speech was decidable.
//
// Accepts only what the bench sends: PCM s16 16 kHz mono (anything else: INVALID_FORMAT).
// Prints {"msg":"ready","port":N} on stdout once listening (bench/server-process.ts waits for it).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SAMPLE_RATE = 16_000;
const WINDOW = 512; // Silero's window at 16 kHz, as the examples use
const env = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  return Number.isFinite(v) ? v : fallback;
};
const DECODE_SLOTS = Math.max(1, Math.round(env('DECODE_SLOTS', 2)));
const INTERIM_INTERVAL_SAMPLES = Math.round(env('INTERIM_INTERVAL_SECONDS', 0.5) * SAMPLE_RATE);
// Our server's defaults (src/config.ts), so that both cut the same utterances.
const VAD_THRESHOLD = env('VAD_START_THRESHOLD', 0.5);
const MIN_SPEECH_S = env('VAD_MIN_SPEECH_MS', 250) / 1000;
const MIN_SILENCE_S = env('VAD_MIN_SILENCE_MS', 300) / 1000;
const MAX_SPEECH_S = env('MAX_UTTERANCE_SECONDS', 30);
/** Vads made before listening (and on GET /peer/warm?vads=N): making one reads the model and builds a session (~50 ms, ~14 MB). */
const VAD_POOL = Math.max(0, Math.round(env('VAD_POOL', 0)));

// The subset of sherpa-onnx-node's API used here (the package ships JSDoc, no .d.ts).
interface SpeechSegment { start: number; samples: Float32Array }
interface SherpaVad {
  acceptWaveform(samples: Float32Array): void;
  isEmpty(): boolean;
  isDetected(): boolean;
  front(enableExternalBuffer?: boolean): SpeechSegment;
  pop(): void;
  flush(): void;
  reset(): void;
}
interface SherpaCircularBuffer {
  push(samples: Float32Array): void;
  get(startIndex: number, n: number, enableExternalBuffer?: boolean): Float32Array;
  pop(n: number): void;
  size(): number;
  head(): number;
  reset(): void;
}
interface SherpaOfflineStream { acceptWaveform(wave: { samples: Float32Array; sampleRate: number }): void }
interface SherpaOfflineRecognizer {
  createStream(): SherpaOfflineStream;
  decodeAsync(stream: SherpaOfflineStream): Promise<{ text: string }>;
}
interface VadConfig {
  sileroVad: { model: string; threshold: number; minSpeechDuration: number; minSilenceDuration: number; maxSpeechDuration: number; windowSize: number };
  sampleRate: number;
  debug: boolean;
  numThreads: number;
}
interface RecognizerConfig {
  featConfig: { sampleRate: number; featureDim: number };
  modelConfig: { moonshine: { encoder: string; mergedDecoder: string }; tokens: string; numThreads: number; provider: string; debug: number };
}
interface SherpaOnnx {
  Vad: new (config: VadConfig, bufferSizeInSeconds: number) => SherpaVad;
  CircularBuffer: new (capacity: number) => SherpaCircularBuffer;
  OfflineRecognizer: { createAsync(config: RecognizerConfig): Promise<SherpaOfflineRecognizer> };
}

const sherpa = createRequire(import.meta.url)('sherpa-onnx-node') as SherpaOnnx;
const sherpaVersion = (createRequire(import.meta.url)('sherpa-onnx-node/package.json') as { version: string }).version;

/** sherpa's tokens.txt from our vocab.txt (one SentencePiece piece per line, by id). */
function writeTokens(dir: string): string {
  const pieces = readFileSync(path.join(ROOT, 'models/moonshine-tiny/vocab.txt'), 'utf8').split('\n');
  if (pieces.at(-1) === '') pieces.pop();
  const lines = pieces.map((piece, id) => {
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    return `${(byte ? Buffer.from([parseInt(byte[1]!, 16)]) : Buffer.from(piece, 'utf8')).toString('base64')} ${id}`;
  });
  const file = path.join(dir, 'tokens.txt');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sherpa-peer-'));
const recognizer = await sherpa.OfflineRecognizer.createAsync({
  featConfig: { sampleRate: SAMPLE_RATE, featureDim: 80 },
  modelConfig: {
    moonshine: {
      encoder: path.join(ROOT, 'models/moonshine-tiny/encoder_model.onnx'),
      mergedDecoder: path.join(ROOT, 'models/moonshine-tiny/decoder_model_merged.onnx'),
    },
    tokens: writeTokens(tmp),
    numThreads: 1,
    provider: 'cpu',
    debug: 0,
  },
});

{
  // Warm, as our server is by "ready": the first decode pays ONNX Runtime's allocations.
  const warm = recognizer.createStream();
  const noise = Float32Array.from({ length: SAMPLE_RATE }, (_, i) => 0.01 * Math.sin(i / 7));
  warm.acceptWaveform({ samples: noise, sampleRate: SAMPLE_RATE });
  await recognizer.decodeAsync(warm);
}

const vadConfig: VadConfig = {
  sileroVad: {
    model: path.join(ROOT, 'models/silero-vad/silero_vad.onnx'),
    threshold: VAD_THRESHOLD, minSpeechDuration: MIN_SPEECH_S, minSilenceDuration: MIN_SILENCE_S,
    maxSpeechDuration: MAX_SPEECH_S, windowSize: WINDOW,
  },
  sampleRate: SAMPLE_RATE,
  debug: false,
  numThreads: 1,
};
interface VadKit { vad: SherpaVad; buffer: SherpaCircularBuffer }
const vadPool: VadKit[] = [];
const makeVad = (): VadKit => ({ vad: new sherpa.Vad(vadConfig, 60), buffer: new sherpa.CircularBuffer(30 * SAMPLE_RATE) });
for (let i = 0; i < VAD_POOL; i++) vadPool.push(makeVad());

// ---- the decode scheduler: DECODE_SLOTS at once, finals first ----
interface Job { session: Session; final: boolean; samples: Float32Array; start: number; end: number; generation: number; queuedAt: number }
/** PEER_DEBUG=1: each decode's wait and duration on stderr. */
const DEBUG = process.env['PEER_DEBUG'] === '1';
const finals: Job[] = [];
const interims: Job[] = [];
let running = 0;

function pump(): void {
  while (running < DECODE_SLOTS) {
    const job = finals.shift() ?? interims.shift();
    if (!job) return;
    run(job).catch((e: unknown) => process.stderr.write(`peer: decode job failed: ${String(e)}\n`));
  }
}

async function run(job: Job): Promise<void> {
  running++;
  job.session.decoding++;
  job.session.started(job);
  const startedAt = performance.now();
  let text: string | undefined;
  try {
    const stream = recognizer.createStream();
    stream.acceptWaveform({ samples: job.samples, sampleRate: SAMPLE_RATE });
    text = (await recognizer.decodeAsync(stream)).text.trim();
  } catch (e) {
    job.session.send({ type: 'error', channel: 0, code: 'MODEL_FAILURE', message: `the model failed on ${job.start.toFixed(3)}-${job.end.toFixed(3)} s: ${(e as Error).message}` });
  } finally {
    running--;
    job.session.decoding--;
  }
  if (DEBUG) {
    process.stderr.write(`${job.final ? 'final  ' : 'interim'} ${job.start.toFixed(2)}-${job.end.toFixed(2)} s: waited ${(startedAt - job.queuedAt).toFixed(0)} ms, decoded in ${(performance.now() - startedAt).toFixed(0)} ms, ${running} running, ${finals.length}+${interims.length} queued\n`);
  }
  if (text !== undefined) job.session.deliver(job, text);
  if (job.final) job.session.finalsPending--;
  job.session.settle();
  pump();
}

// ---- one connection ----
class Session {
  private kit: VadKit | undefined;
  private interim = false;
  /** Samples fed to the Vad since start (its buffer's absolute index). */
  private fed = 0;
  private oddByte: number | undefined;
  /** Recent audio for interims: history[0] is sample historyStart. */
  private history = new Float32Array(10 * SAMPLE_RATE);
  private historyStart = 0;
  private historyLength = 0;
  private utterance: { start: number; nextInterim: number } | undefined;
  /** The end of the last segment: the next one's lookback never reaches before it. */
  private lastEnd = 0;
  generation = 0;
  decoding = 0;
  finalsPending = 0;
  private queuedInterim: Job | undefined;
  private stopping: { disconnect: boolean } | undefined;

  constructor(private readonly ws: WebSocket) {}

  send(event: Record<string, unknown>): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(event));
  }

  onText(text: string): void {
    let msg: { request?: unknown; format?: { sample_rate?: unknown; channels?: unknown; bit_depth?: unknown; is_float?: unknown; encoding?: unknown }; interim_results?: unknown; disconnect?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      this.send({ type: 'error', channel: 0, code: 'BAD_JSON', message: 'malformed JSON' });
      return;
    }
    if (msg.request === 'start') {
      const f = msg.format ?? {};
      if (f.sample_rate !== SAMPLE_RATE || f.channels !== 1 || f.bit_depth !== 16 || f.is_float === true || (f.encoding ?? 'pcm') !== 'pcm') {
        this.send({ type: 'error', channel: 0, code: 'INVALID_FORMAT', message: 'this peer takes PCM s16 16 kHz mono only' });
        return;
      }
      if (this.kit) this.finish({ disconnect: false });
      this.begin(msg.interim_results === true);
    } else if (msg.request === 'stop') {
      if (!this.kit) {
        if (msg.disconnect === true) this.ws.close(1000);
        else this.send({ type: 'error', channel: 0, code: 'NOT_STARTED', message: 'stop before start' });
        return;
      }
      this.finish({ disconnect: msg.disconnect === true });
    } else {
      this.send({ type: 'error', channel: 0, code: 'UNKNOWN_REQUEST', message: 'expected start or stop' });
    }
  }

  private begin(interim: boolean): void {
    this.kit = vadPool.pop() ?? makeVad();
    this.interim = interim;
    this.fed = 0;
    this.oddByte = undefined;
    this.historyStart = 0;
    this.historyLength = 0;
    this.utterance = undefined;
    this.lastEnd = 0;
    this.stopping = undefined;
  }

  onAudio(data: Buffer): void {
    const kit = this.kit;
    if (!kit || this.stopping) {
      this.send({ type: 'error', channel: 0, code: 'NOT_STARTED', message: 'audio before start' });
      return;
    }
    // s16le to float, carrying a split sample over to the next frame.
    let bytes = data;
    if (this.oddByte !== undefined) {
      bytes = Buffer.concat([Buffer.from([this.oddByte]), data]);
      this.oddByte = undefined;
    }
    const n = bytes.length >> 1;
    if (bytes.length & 1) this.oddByte = bytes[bytes.length - 1];
    const samples = new Float32Array(n);
    for (let i = 0; i < n; i++) samples[i] = bytes.readInt16LE(i * 2) / 32768;
    kit.buffer.push(samples);
    while (kit.buffer.size() >= WINDOW) {
      const window = kit.buffer.get(kit.buffer.head(), WINDOW, false);
      kit.buffer.pop(WINDOW);
      kit.vad.acceptWaveform(window);
      this.remember(window);
      this.fed += WINDOW;
      this.drainSegments(false);
      this.track();
    }
  }

  /** Keeps the audio an interim may need: the open utterance, or the lookback before one. */
  private remember(window: Float32Array): void {
    const keepFrom = Math.max(0, Math.min(this.utterance?.start ?? Infinity, this.fed - SAMPLE_RATE));
    const drop = Math.min(this.historyLength, keepFrom - this.historyStart);
    if (drop > 0) {
      this.history.copyWithin(0, drop, this.historyLength);
      this.historyStart += drop;
      this.historyLength -= drop;
    }
    if (this.historyLength + window.length > this.history.length) {
      const grown = new Float32Array(Math.max(this.history.length * 2, this.historyLength + window.length));
      grown.set(this.history.subarray(0, this.historyLength));
      this.history = grown;
    }
    this.history.set(window, this.historyLength);
    this.historyLength += window.length;
  }

  /** Speech starting, and interims while it lasts. */
  private track(): void {
    const kit = this.kit!;
    if (!this.utterance && kit.vad.isDetected()) {
      // Where the Vad itself starts the segment (voice-activity-detector.cc): two windows and the
      // minimum speech before the window that tipped it.
      const start = Math.max(this.lastEnd, this.fed - 2 * WINDOW - Math.round(MIN_SPEECH_S * SAMPLE_RATE));
      this.utterance = { start, nextInterim: this.fed + INTERIM_INTERVAL_SAMPLES };
      this.send({ type: 'active', channel: 0, time: round(start / SAMPLE_RATE) });
    }
    const u = this.utterance;
    if (u && this.interim && this.fed >= u.nextInterim) {
      u.nextInterim = this.fed + INTERIM_INTERVAL_SAMPLES;
      this.requestInterim(u.start);
    }
  }

  private requestInterim(start: number): void {
    const from = Math.max(start, this.historyStart) - this.historyStart;
    const job: Job = {
      session: this, final: false, samples: this.history.slice(from, this.historyLength),
      start: (this.historyStart + from) / SAMPLE_RATE, end: this.fed / SAMPLE_RATE, generation: this.generation, queuedAt: performance.now(),
    };
    if (this.queuedInterim) {
      // A newer interim replaces the one still waiting.
      const at = interims.indexOf(this.queuedInterim);
      if (at >= 0) interims[at] = job;
      this.queuedInterim = job;
      return;
    }
    if (this.decoding > 0 || this.finalsPending > 0) return; // skipped: its stream is being decoded
    this.queuedInterim = job;
    interims.push(job);
    pump();
  }

  private drainSegments(flushed: boolean): void {
    const vad = this.kit!.vad;
    while (!vad.isEmpty()) {
      const segment = vad.front(false);
      vad.pop();
      const speechEnd = segment.start + segment.samples.length;
      // Popped MIN_SILENCE after the speech ended, unless flushed at stop (see the header).
      const closedAt = flushed ? speechEnd : Math.min(this.fed, speechEnd + Math.round(MIN_SILENCE_S * SAMPLE_RATE));
      this.lastEnd = speechEnd;
      this.send({ type: 'inactive', channel: 0, time: round(speechEnd / SAMPLE_RATE) });
      this.utterance = undefined;
      this.generation++;
      if (this.queuedInterim) {
        const at = interims.indexOf(this.queuedInterim);
        if (at >= 0) interims.splice(at, 1);
        this.queuedInterim = undefined;
      }
      this.finalsPending++;
      finals.push({ session: this, final: true, samples: segment.samples, start: segment.start / SAMPLE_RATE, end: closedAt / SAMPLE_RATE, generation: this.generation, queuedAt: performance.now() });
    }
    pump();
  }

  /** A queued interim that starts running is no longer one a newer interim can replace. */
  started(job: Job): void {
    if (this.queuedInterim === job) this.queuedInterim = undefined;
  }

  deliver(job: Job, text: string): void {
    if (job.final) {
      this.send({ type: 'segment', channel: 0, start_time: round(job.start), end_time: round(job.end), is_final: true, text });
      return;
    }
    // None after its utterance's final.
    if (job.generation === this.generation && this.utterance) {
      this.send({ type: 'segment', channel: 0, start_time: round(job.start), end_time: round(job.end), is_final: false, text });
    }
  }

  /** stop (or a new start): the open utterance is ended; the socket closes once its finals are out. */
  private finish(how: { disconnect: boolean }): void {
    const kit = this.kit!;
    kit.vad.flush();
    this.drainSegments(true);
    this.utterance = undefined;
    this.stopping = how;
    this.release();
    this.settle();
  }

  /** Closes after stop once every final of the stream has been sent. */
  settle(): void {
    if (!this.stopping || this.finalsPending > 0) return;
    const { disconnect } = this.stopping;
    this.stopping = undefined;
    if (disconnect) this.ws.close(1000);
  }

  /** The Vad goes back to the pool, reset (its segments were already taken). */
  release(): void {
    if (!this.kit) return;
    this.kit.vad.reset();
    this.kit.buffer.reset();
    vadPool.push(this.kit);
    this.kit = undefined;
  }
}

const round = (s: number): number => Math.round(s * 1000) / 1000;

const server = http.createServer((req, res) => {
  if (req.url === '/metrics') {
    // The two series the load CLI samples (src/cli/server-metrics.ts); CPU of every thread.
    const cpu = process.cpuUsage();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(`process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}\nprocess_resident_memory_bytes ${process.memoryUsage.rss()}\n`);
  } else if (req.url?.startsWith('/peer/warm?vads=')) {
    // The bench asks for a step's Vads before the step: made during one, each would block the
    // event loop ~50 ms, a cost of this wiring's setup rather than of serving (ours has none).
    const want = Math.min(10_000, Number(req.url.slice('/peer/warm?vads='.length)) || 0);
    while (vadPool.length < want) vadPool.push(makeVad());
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ vads: vadPool.length }));
  } else if (req.url === '/api/v1/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'healthy', ready: true, workers: 1, peer: `sherpa-onnx-node ${sherpaVersion}`, decode_slots: DECODE_SLOTS }));
  } else {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found"}');
  }
});
const wss = new WebSocketServer({ server, path: '/api/v1/segmented', maxPayload: 1 << 20 });
wss.on('connection', (ws) => {
  const session = new Session(ws);
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (isBinary) session.onAudio(buf);
    else session.onText(buf.toString('utf8'));
  });
  ws.on('close', () => session.release());
  ws.on('error', () => { /* the close follows */ });
});

const shutdown = (): void => {
  wss.close();
  server.close();
  rmSync(tmp, { recursive: true, force: true });
  process.exit(0);
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

server.listen(Number(process.env['PORT'] ?? 0), process.env['HOST'] ?? '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ msg: 'ready', port, peer: `sherpa-onnx-node ${sherpaVersion}`, decode_slots: DECODE_SLOTS, vad_pool: VAD_POOL })}\n`);
});
