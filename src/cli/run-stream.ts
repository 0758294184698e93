// One stream over one connection: start, the audio in chunks (paced or as fast as the socket
// takes it), stop with disconnect; the server's events as they arrive, timed against the sends.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type WebSocket from 'ws';
import { connect } from './connect.js';
import { CliError } from './errors.js';
import { frameBytes } from '../audio-format.js';
import { bytesPerSecond, secondsOf, wireFormat, type Audio } from './wav.js';

export interface ServerEvent {
  type: string;
  channel: number;
  [key: string]: unknown;
}

interface StreamOptions {
  url: URL;
  token?: string | undefined;
  /** PEM certificates to trust for wss:// instead of the default roots (--ca). */
  ca?: string | undefined;
  audio: Audio;
  chunkBytes: number;
  /** Multiple of real time to pace the audio at; Infinity sends as fast as the socket drains. */
  speed: number;
  interim: boolean;
  traceId?: string | null | undefined;
  connectTimeoutMs: number;
  /** How long to wait after `stop` for the final results and the close. */
  waitMs: number;
  /** Aborting stops sending audio early: `stop` is sent and the final results awaited. */
  signal?: AbortSignal | undefined;
  /** Each event, with ms since the start message was sent. */
  onEvent?: ((event: ServerEvent, elapsedMs: number) => void) | undefined;
  /** After each chunk, the bytes sent so far. */
  onSent?: ((bytes: number) => void) | undefined;
  /** Called once connected, with the connect time in ms. */
  onOpen?: ((connectMs: number) => void) | undefined;
}

export interface FinalText {
  channel: number;
  start_time: number;
  end_time: number;
  text: string;
}

interface StreamError {
  code: string;
  message: string;
}

export interface StreamResult {
  /** Set when the stream failed: a code (CONNECT_*, HTTP_<status>, a server error code, CLOSED_<code>, WAIT_TIMEOUT) and one line. */
  failure: { code: string; reason: string } | undefined;
  connected: boolean;
  connectMs: number | null;
  /** From the start message to the first event. */
  firstEventMs: number | null;
  /** From the connection attempt to the end. */
  totalMs: number;
  bytesSent: number;
  audioSecondsSent: number;
  events: number;
  /** For each final (every segment on the simple route): arrival minus when the audio at its end_time was sent. */
  finalLagsMs: number[];
  /** For each interim (is_final false): the same measure, how stale its words were on arrival. */
  interimStalenessMs: number[];
  /** The finals (every segment on the simple route) in arrival order: for scoring their words. */
  finals: FinalText[];
  errors: StreamError[];
  closeCode: number | null;
  /** The server ended the connection other than by a clean close after our stop (or never closed it). */
  dropped: boolean;
}

/** Errors after which the stream is not running: sending more audio would only earn NOT_STARTED. */
const REJECTING = new Set(['INVALID_FORMAT', 'BAD_MESSAGE', 'UNKNOWN_REQUEST', 'NOT_STARTED', 'BAD_JSON']);
/** Keep at most this much unsent data queued in the socket. */
const HIGH_WATER = 4 << 20;
/** Unpaced, send at most this much audio beyond what the server reports done (its `progress`
 *  events, asked for with `"progress": true`): well inside MAX_BACKLOG_SECONDS, so a file of any
 *  length goes through as fast as the server can take it instead of being cut off with BACKLOG. */
const FLOW_WINDOW_SECONDS = 10;
/** A server that sends no progress at all within this long does not know the request (an older
 *  version): send on without flow control. */
const PROGRESS_SILENCE_MS = 5000;

export async function runStream(opts: StreamOptions): Promise<StreamResult> {
  const t0 = performance.now();
  const result: StreamResult = {
    failure: undefined, connected: false, connectMs: null, firstEventMs: null, totalMs: 0, bytesSent: 0,
    audioSecondsSent: 0, events: 0, finalLagsMs: [], interimStalenessMs: [], finals: [], errors: [], closeCode: null, dropped: false,
  };
  let ws: WebSocket;
  try {
    ws = await connect(opts.url, opts.token, opts.connectTimeoutMs, opts.ca);
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    result.failure = { code: e.code, reason: e.message };
    result.totalMs = performance.now() - t0;
    return result;
  }
  result.connected = true;
  result.connectMs = performance.now() - t0;
  opts.onOpen?.(result.connectMs);

  const { audio, chunkBytes } = opts;
  const frame = frameBytes(audio.format);
  const chunks = Math.ceil(audio.data.length / chunkBytes);
  const sentAt = new Float64Array(chunks);
  let chunksSent = 0;
  let startAt = performance.now();
  let rejected: StreamError | undefined;
  let lastError: StreamError | undefined;
  let stopSent = false;
  let progressTime = 0; // seconds the server reports done
  let progressSeen = false;
  let progressWake: (() => void) | undefined;
  let closed: { code: number; reason: string } | undefined;
  let wakeClose: (() => void) | undefined;
  const closedPromise = new Promise<void>((resolve) => { wakeClose = resolve; });

  /** When the chunk holding the audio up to `seconds` went out. */
  const sentTimeOf = (seconds: number): number | undefined => {
    if (chunksSent === 0) return undefined;
    const byte = Math.round(seconds * audio.format.sampleRate) * frame;
    const index = Math.min(chunksSent - 1, Math.max(0, Math.ceil(byte / chunkBytes) - 1));
    return sentAt[index];
  };

  ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
    const arrival = performance.now();
    let event: ServerEvent;
    try {
      if (isBinary) throw new Error('binary frame');
      event = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8')) as ServerEvent;
      if (typeof event !== 'object' || event === null || typeof event.type !== 'string') throw new Error('not an event object');
    } catch (e) {
      const error = { code: 'BAD_SERVER_MESSAGE', message: `the server sent something that is not a JSON event: ${(e as Error).message}` };
      result.errors.push(error);
      return;
    }
    result.events++;
    result.firstEventMs ??= arrival - startAt;
    if (event.type === 'segment' && typeof event['end_time'] === 'number') {
      const sent = sentTimeOf(event['end_time']);
      if (event['is_final'] === false) {
        if (sent !== undefined) result.interimStalenessMs.push(arrival - sent);
      } else {
        if (sent !== undefined) result.finalLagsMs.push(arrival - sent);
        const start = event['start_time'];
        const text = event['text'];
        result.finals.push({ channel: event.channel, start_time: typeof start === 'number' ? start : 0, end_time: event['end_time'], text: typeof text === 'string' ? text : '' });
      }
    } else if (event.type === 'progress' && typeof event['time'] === 'number') {
      progressTime = event['time'];
      progressSeen = true;
      progressWake?.();
    } else if (event.type === 'error') {
      const code = event['code'];
      const message = event['message'];
      const error = { code: typeof code === 'string' ? code : 'UNKNOWN', message: typeof message === 'string' ? message : JSON.stringify(message ?? '') };
      result.errors.push(error);
      lastError = error;
      if (!stopSent && REJECTING.has(error.code)) rejected ??= error;
    }
    opts.onEvent?.(event, arrival - startAt);
  });
  ws.on('error', () => {
    // The close event that follows says how it ended.
  });
  ws.once('close', (code: number, reason: Buffer) => {
    closed = { code, reason: reason.toString('utf8') };
    result.closeCode = code;
    wakeClose?.();
  });

  /** Waits while sending audio up to `seconds` would run more than FLOW_WINDOW_SECONDS ahead of
   *  the server's progress (not at all with a server that never reports any). */
  const flowControl = async (seconds: number): Promise<void> => {
    let silentSince = performance.now();
    while (!closed && !rejected && seconds - progressTime > FLOW_WINDOW_SECONDS) {
      if (!progressSeen && performance.now() - silentSince > PROGRESS_SILENCE_MS) return;
      const before = progressTime;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        progressWake = () => { clearTimeout(timer); resolve(); };
      });
      progressWake = undefined;
      if (progressTime !== before) silentSince = performance.now();
    }
  };

  // Chunk i is due once its last byte would have been recorded: a live source cannot send earlier.
  const paced = Number.isFinite(opts.speed);
  ws.send(JSON.stringify({ request: 'start', format: wireFormat(audio.format), interim_results: opts.interim, trace_id: opts.traceId ?? null, ...(paced ? {} : { progress: true }) }));
  startAt = performance.now();
  // The protocol does not acknowledge a start; a ping right behind it does: the server answers
  // frames in order, so a refusal of the start (INVALID_FORMAT) arrives before the pong, and no
  // audio is sent into a stream that never started.
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      ws.off('pong', done);
      ws.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(opts.connectTimeoutMs, 5000));
    ws.on('pong', done);
    ws.on('close', done);
    ws.ping();
  });

  const msPerByte = 1000 / bytesPerSecond(audio.format) / opts.speed;
  let lastYield = startAt;
  for (let i = 0; i < chunks; i++) {
    if (closed || rejected || opts.signal?.aborted) break;
    const end = Math.min(audio.data.length, (i + 1) * chunkBytes);
    if (paced) {
      const wait = startAt + end * msPerByte - performance.now();
      if (wait > 0) await sleep(wait);
    } else if (performance.now() - lastYield > 10) {
      // Let arriving events be read (and timed) while a whole file goes out.
      await sleep(0);
      lastYield = performance.now();
    }
    while (!closed && ws.bufferedAmount > HIGH_WATER) await sleep(2);
    if (!paced) await flowControl(secondsOf(audio.format, end));
    if (closed || rejected) break;
    ws.send(audio.data.subarray(i * chunkBytes, end), { binary: true });
    sentAt[i] = performance.now();
    chunksSent = i + 1;
    result.bytesSent = end;
    opts.onSent?.(end);
  }
  result.audioSecondsSent = secondsOf(audio.format, result.bytesSent);

  if (rejected && !closed) {
    ws.close(1000);
    result.failure = { code: rejected.code, reason: `the server rejected the stream: ${rejected.code}: ${rejected.message}` };
  } else if (!closed) {
    ws.send(JSON.stringify({ request: 'stop', disconnect: true }));
    stopSent = true;
  }
  const timer = setTimeout(() => {
    if (!closed) {
      result.failure ??= { code: 'WAIT_TIMEOUT', reason: `the server did not finish the stream within ${opts.waitMs / 1000} s of stop` };
      result.dropped = true;
      ws.terminate();
    }
  }, opts.waitMs);
  await closedPromise;
  clearTimeout(timer);

  const end = closed!;
  if (!result.failure && (!stopSent || end.code !== 1000)) {
    result.dropped = true;
    const how = end.code === 1006 ? 'dropped (1006, no close frame)' : `closed by the server (${end.code}${end.reason ? `: ${end.reason}` : ''})`;
    result.failure = lastError && end.code !== 1000 && end.code !== 1006
      ? { code: lastError.code, reason: `server error ${lastError.code}: ${lastError.message} (connection closed with ${end.code})` }
      : { code: `CLOSED_${end.code}`, reason: `the connection was ${how}${stopSent ? '' : ' while sending audio'}` };
  }
  result.totalMs = performance.now() - t0;
  return result;
}
