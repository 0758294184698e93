// OpenAI Realtime transcription over WebSocket (`/v1/realtime?intent=transcription`), mapped onto
// the segmented pipeline: appended audio goes through a PipelineFeed (flow-controlled, so a client
// may send faster than real time), Silero VAD's utterances become the server VAD's
// speech_started / speech_stopped / committed events, and each utterance's final transcript its
// item's delta and completed events. Both spellings of the API are served: the beta's
// `transcription_session.update` (answered with `transcription_session.*` events) and the GA
// `session.update` with `session.type: "transcription"` (answered with `session.*`).
//
// Decisions where OpenAI's API leaves room: with `whisper-1` (the default) the transcript of an
// item arrives as one delta (the whole final text, as OpenAI's whisper-1 does) followed by
// completed; with any other model name (`gpt-4o-transcribe`, `moonshine-tiny`, ...) deltas stream
// while the user speaks, from interim results: a word is sent once two interims in a row agree on
// it and on the word after it, and the final sends the rest. Deltas are append-only: when the final
// revises a word already sent (measured: 2 of 12 real utterances, a comma or a word), the rest
// follows the sent words' last match in the final, and completed's transcript is the one to keep,
// as with OpenAI's;
// `turn_detection: null` collects every utterance until `commit` into one item;
// `commit` under server VAD ends the current speech at once; audio formats are PCM16 at any rate
// from 8 to 192 kHz (24 kHz by default) or G.711 μ-law/A-law at 8 kHz.
import { randomBytes } from 'node:crypto';
import type { HttpRequest, TemplatedApp, WebSocket } from 'uWebSockets.js';
import type { RouteTable } from '../listener.js';
import type { NativeFormat } from '../native/binding.js';
import type { ServerEvent } from '../protocol.js';
import { CLOSE_GOING_AWAY, CLOSE_POLICY } from '../session.js';
import { Task, type TaskFailure } from '../tasks.js';
import { OpenAiError, statusLine } from './errors.js';
import { refuseSampleRate } from '../sample-rate-admission.js';
import { MAX_SAMPLE_RATE, MIN_SAMPLE_RATE } from '../audio-format.js';
import { PipelineFeed, type PipelineDeps } from './feed.js';
import type { LiveTicket } from '../pipeline/stream-capacity.js';
import type { OpenAiDeps } from './routes.js';
import { checkLanguage, checkModel, modelIds } from './transcriptions.js';

const REALTIME_PATH = '/v1/realtime';
// OpenAI's limit on one append is 15 MiB of base64; a little over that for the JSON around it.
const MAX_MESSAGE_BYTES = 16 << 20;

type Dialect = 'beta' | 'ga';

interface TurnDetection {
  threshold: number;
  prefixPaddingMs: number;
  silenceDurationMs: number;
}

interface Settings {
  format: NativeFormat;
  formatName: string; // as the client named it (beta: pcm16 / g711_ulaw / g711_alaw)
  model: string;
  language: string | null;
  prompt: string;
  turnDetection: TurnDetection | null; // null: the client commits
}

interface Item {
  id: string;
  previous: string | null;
  /** Stream seconds of its speech_started (server VAD). */
  activeAt?: number;
  /** Its utterance's start_time, as its interims carry it. */
  start?: number;
  /** Words sent as deltas, and the latest interim's words. */
  sent: string[];
  last: string[];
}

/** Where the final's words go on after the words already sent: past the last of them it also has
 *  (compared without case and punctuation, each within a few words of the one before). */
function resumeAt(sent: string[], final: string[]): number {
  const norm = (w: string): string => w.toLowerCase().replace(/[^\p{L}\p{N}']/gu, '');
  let at = 0;
  for (const word of sent) {
    const k = final.slice(at, at + 3).findIndex((f) => norm(f) === norm(word));
    if (k >= 0) at += k + 1;
  }
  return at;
}

/** The words `a` and `b` agree on from the start, each followed by a word both agree on too. */
function stablePrefix(a: string[], b: string[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return Math.max(0, n - 1);
}

interface Connection {
  session: RealtimeSession | undefined;
  /** Its place among the process's live streams, taken at the upgrade. */
  live: LiveTicket;
  dialect: Dialect;
  task: Task;
  closed: boolean;
}

const pcm16 = (rate: number): NativeFormat => ({ encoding: 'pcm', channels: 1, sampleRate: rate, bitDepth: 16, isFloat: false });
const g711 = (encoding: 'mulaw' | 'alaw'): NativeFormat => ({ encoding, channels: 1, sampleRate: 8000, bitDepth: 8, isFloat: false });

function id(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('base64url')}`;
}

class RealtimeError extends Error {
  constructor(readonly code: string, message: string, readonly param: string | null = null) {
    super(message);
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class RealtimeSession {
  private readonly id = id('sess');
  private settings: Settings;
  private feed: PipelineFeed | undefined;
  private offsetMs = 0; // audio of the feeds before the current one
  private mailbox: Promise<void> = Promise.resolve();
  private queued = 0;
  private closed = false;
  // The current item: opened by speech (server VAD) or by the first append (manual commit).
  private open: Item | undefined;
  private lastItem: string | null = null;
  private bytesSinceItem = 0;
  // Items whose audio went to the model, oldest first, with the texts gathered for each.
  private readonly transcribing: { item: Item; texts: string[]; finals: number }[] = [];
  private manualTexts: string[] = [];

  constructor(
    private readonly deps: PipelineDeps,
    private readonly config: OpenAiDeps['config'],
    private readonly dialect: Dialect,
    private readonly send: (event: Json) => void,
    private readonly end: (code: number, reason: string) => void,
  ) {
    const { vadStartThreshold, vadPadBeforeMs, vadMinSilenceMs } = deps.config;
    this.settings = {
      format: pcm16(24_000), formatName: 'pcm16', model: 'whisper-1', language: 'en', prompt: '',
      turnDetection: { threshold: vadStartThreshold, prefixPaddingMs: vadPadBeforeMs, silenceDurationMs: vadMinSilenceMs },
    };
    this.emit(this.dialect === 'beta' ? 'transcription_session.created' : 'session.created', { session: this.describe() });
  }

  onText(text: string): void {
    if (this.closed) return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.error(new RealtimeError('invalid_json', 'the message is not valid JSON'));
      return;
    }
    if (!isObject(message) || typeof message['type'] !== 'string') {
      this.error(new RealtimeError('invalid_event', 'an event must be a JSON object with a string "type"', 'type'));
      return;
    }
    const event = message;
    // In order: a commit waits for its transcript before the audio after it goes in.
    if (this.queued > 4096) {
      this.fatal('too many events are waiting behind a commit');
      return;
    }
    this.queued++;
    this.mailbox = this.mailbox
      .then(() => (this.closed ? undefined : this.handle(event)))
      .catch((e: unknown) => {
        if (e instanceof RealtimeError) this.error(e, typeof event['event_id'] === 'string' ? event['event_id'] : undefined);
        else this.fatal(e instanceof Error ? e.message : String(e));
      })
      .finally(() => { this.queued--; });
  }

  onBinary(): void {
    this.error(new RealtimeError('invalid_event', 'events are JSON text messages; audio goes base64-encoded in input_audio_buffer.append'));
  }

  /** Server shutdown: the audio so far is transcribed, then 1001. */
  async drain(): Promise<void> {
    await this.mailbox;
    if (this.closed) return;
    await this.endFeed();
    if (!this.closed) {
      this.closed = true;
      this.end(CLOSE_GOING_AWAY, 'server shutting down');
    }
  }

  onClose(): void {
    this.closed = true;
    this.feed?.abort('disconnected');
    this.feed = undefined;
  }

  private async handle(event: Json): Promise<void> {
    switch (event['type']) {
      case 'transcription_session.update':
      case 'session.update':
        await this.update(event);
        return;
      case 'input_audio_buffer.append':
        this.append(event);
        return;
      case 'input_audio_buffer.commit':
        await this.commit();
        return;
      case 'input_audio_buffer.clear':
        this.clear();
        return;
      default:
        throw new RealtimeError('unknown_event', `unknown or unsupported event type ${JSON.stringify(event['type'])}; this server serves transcription: session.update / transcription_session.update, input_audio_buffer.append, .commit, .clear`, 'type');
    }
  }

  private async update(event: Json): Promise<void> {
    const session = event['session'];
    if (!isObject(session)) throw new RealtimeError('invalid_value', 'the event needs a "session" object', 'session');
    const next: Settings = { ...this.settings };
    if (event['type'] === 'session.update') this.applyGa(session, next);
    else this.applyBeta(session, next);
    const audioSettings = (x: Settings): string => JSON.stringify([x.format, x.turnDetection]);
    const restart = this.feed !== undefined && audioSettings(next) !== audioSettings(this.settings);
    // New audio settings start a new stream: the audio so far is transcribed with the old ones.
    if (restart) await this.endFeed();
    this.settings = next;
    this.emit(event['type'] === 'session.update' ? 'session.updated' : 'transcription_session.updated', { session: this.describe() });
  }

  private applyBeta(session: Json, next: Settings): void {
    if ('input_audio_format' in session) {
      const f = session['input_audio_format'];
      if (f === 'pcm16') next.format = pcm16(24_000);
      else if (f === 'g711_ulaw') next.format = g711('mulaw');
      else if (f === 'g711_alaw') next.format = g711('alaw');
      else throw new RealtimeError('invalid_value', `input_audio_format must be pcm16, g711_ulaw or g711_alaw; got ${JSON.stringify(f)}`, 'session.input_audio_format');
      next.formatName = f;
    }
    if ('input_audio_transcription' in session) this.applyTranscription(session['input_audio_transcription'], next, 'session.input_audio_transcription');
    if ('turn_detection' in session) next.turnDetection = this.turnDetection(session['turn_detection'], 'session.turn_detection');
  }

  private applyGa(session: Json, next: Settings): void {
    if ('type' in session && session['type'] !== 'transcription') {
      throw new RealtimeError('invalid_value', `this server serves transcription sessions only: session.type must be "transcription"; got ${JSON.stringify(session['type'])}`, 'session.type');
    }
    const audio = session['audio'];
    const input = isObject(audio) ? audio['input'] : undefined;
    if (!isObject(input)) return;
    if ('format' in input) {
      const f = input['format'];
      if (!isObject(f)) throw new RealtimeError('invalid_value', 'audio.input.format must be an object such as {"type":"audio/pcm","rate":24000}', 'session.audio.input.format');
      if (f['type'] === 'audio/pcm') {
        const rate = f['rate'] ?? 24_000;
        if (typeof rate !== 'number' || !Number.isInteger(rate) || rate < MIN_SAMPLE_RATE || rate > MAX_SAMPLE_RATE) {
          throw new RealtimeError('invalid_value', `audio.input.format.rate must be an integer from ${MIN_SAMPLE_RATE} to ${MAX_SAMPLE_RATE} Hz; got ${JSON.stringify(rate)}`, 'session.audio.input.format.rate');
        }
        const refused = rate === this.settings.format.sampleRate ? null : refuseSampleRate(rate);
        if (refused) throw new RealtimeError('sample_rate_busy', `audio.input.format.rate ${rate} Hz: ${refused}`, 'session.audio.input.format.rate');
        next.format = pcm16(rate);
        next.formatName = 'audio/pcm';
      } else if (f['type'] === 'audio/pcmu' || f['type'] === 'audio/pcma') {
        next.format = g711(f['type'] === 'audio/pcmu' ? 'mulaw' : 'alaw');
        next.formatName = f['type'];
      } else {
        throw new RealtimeError('invalid_value', `audio.input.format.type must be audio/pcm, audio/pcmu or audio/pcma; got ${JSON.stringify(f['type'])}`, 'session.audio.input.format.type');
      }
    }
    if ('transcription' in input) this.applyTranscription(input['transcription'], next, 'session.audio.input.transcription');
    if ('turn_detection' in input) next.turnDetection = this.turnDetection(input['turn_detection'], 'session.audio.input.turn_detection');
  }

  private applyTranscription(t: unknown, next: Settings, param: string): void {
    if (t === null) return;
    if (!isObject(t)) throw new RealtimeError('invalid_value', `${param} must be an object`, param);
    const wrap = (check: () => void, field: string): void => {
      try {
        check();
      } catch (e) {
        if (e instanceof OpenAiError) throw new RealtimeError(e.code ?? 'invalid_value', e.message, `${param}.${field}`);
        throw e;
      }
    };
    if (t['model'] !== undefined) {
      wrap(() => checkModel(this.config, typeof t['model'] === 'string' ? t['model'] : String(t['model'])), 'model');
      next.model = t['model'] as string;
    }
    if (t['language'] !== undefined && t['language'] !== null) {
      wrap(() => checkLanguage(typeof t['language'] === 'string' ? t['language'] : String(t['language'])), 'language');
      next.language = t['language'] as string;
    }
    // Accepted and ignored: the model takes no prompt.
    if (typeof t['prompt'] === 'string') next.prompt = t['prompt'];
  }

  private turnDetection(t: unknown, param: string): TurnDetection | null {
    if (t === null) return null;
    if (!isObject(t)) throw new RealtimeError('invalid_value', `${param} must be an object or null`, param);
    // semantic_vad has no model here: it is served as server_vad.
    if (t['type'] !== undefined && t['type'] !== 'server_vad' && t['type'] !== 'semantic_vad') {
      throw new RealtimeError('invalid_value', `${param}.type must be server_vad (or semantic_vad, served as server_vad); got ${JSON.stringify(t['type'])}`, `${param}.type`);
    }
    const current = this.settings.turnDetection ?? { threshold: this.deps.config.vadStartThreshold, prefixPaddingMs: this.deps.config.vadPadBeforeMs, silenceDurationMs: this.deps.config.vadMinSilenceMs };
    const number = (key: string, min: number, max: number, fallback: number): number => {
      const v = t[key];
      if (v === undefined || v === null) return fallback;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
        throw new RealtimeError('invalid_value', `${param}.${key} must be a number from ${min} to ${max}; got ${JSON.stringify(v)}`, `${param}.${key}`);
      }
      return v;
    };
    return {
      threshold: number('threshold', 0.05, 0.99, current.threshold),
      prefixPaddingMs: Math.round(number('prefix_padding_ms', 0, 2000, current.prefixPaddingMs)),
      silenceDurationMs: Math.round(number('silence_duration_ms', 32, 10_000, current.silenceDurationMs)),
    };
  }

  private append(event: Json): void {
    const audio = event['audio'];
    if (typeof audio !== 'string') throw new RealtimeError('invalid_value', 'input_audio_buffer.append needs "audio": base64-encoded audio', 'audio');
    const bytes = Buffer.from(audio, 'base64');
    if (bytes.length === 0) return;
    const feed = this.feed ?? this.startFeed();
    const bytesPerSecond = this.settings.format.sampleRate * (this.settings.format.bitDepth / 8);
    // The client may run ahead of the pipeline (flow control holds the rest), up to a bound.
    if ((feed.backlogSeconds * bytesPerSecond) + bytes.length > this.config.maxUploadBytes) {
      this.fatal(`more than ${this.config.maxUploadBytes} bytes of audio are waiting to be transcribed (MAX_UPLOAD_BYTES)`);
      return;
    }
    if (this.settings.turnDetection === null && !this.open) this.open = this.newItem();
    this.bytesSinceItem += bytes.length;
    this.deps.metrics.audioReceived.inc(bytes.length / bytesPerSecond);
    feed.write(bytes);
  }

  private async commit(): Promise<void> {
    if (!this.feed || this.bytesSinceItem === 0) {
      throw new RealtimeError('input_audio_buffer_commit_empty', 'the input audio buffer is empty: nothing to commit');
    }
    if (this.settings.turnDetection === null) {
      const item = this.open ?? this.newItem();
      this.open = undefined;
      this.committed(item);
      await this.endFeed();
      const transcript = this.manualTexts.join(' ');
      this.manualTexts = [];
      this.transcribed(item, transcript);
      this.bytesSinceItem = 0;
      return;
    }
    // Server VAD: the speech so far ends here; audio with no speech still makes an (empty) item.
    const hadSpeech = this.open !== undefined;
    await this.endFeed();
    if (!hadSpeech && this.bytesSinceItem > 0) {
      const item = this.newItem();
      this.committed(item);
      this.transcribed(item, '');
    }
    this.bytesSinceItem = 0;
  }

  private clear(): void {
    if (this.feed) {
      const feed = this.feed;
      this.feed = undefined;
      this.offsetMs += (feed.seconds + feed.backlogSeconds) * 1000;
      feed.abort('cleared');
    }
    this.open = undefined;
    this.manualTexts = [];
    this.transcribing.length = 0;
    this.bytesSinceItem = 0;
    this.emit('input_audio_buffer.cleared', {});
  }

  private startFeed(): PipelineFeed {
    const td = this.settings.turnDetection;
    const config = td === null ? this.deps.config : {
      ...this.deps.config,
      vadStartThreshold: td.threshold,
      vadEndThreshold: Math.min(this.deps.config.vadEndThreshold, td.threshold - 0.01),
      vadPadBeforeMs: td.prefixPaddingMs,
      vadMinSilenceMs: td.silenceDurationMs,
    };
    const feed = new PipelineFeed(this.deps, {
      format: this.settings.format, route: 'realtime', config,
      onEvent: (event) => this.onPipeline(feed, event),
      onFailure: (failure) => this.onFailure(failure),
      // Deltas while the user speaks, but for whisper-1's one delta per item; not when the client commits.
      interimResults: td !== null && this.settings.model !== 'whisper-1',
    });
    this.feed = feed;
    return feed;
  }

  /** Everything appended so far through the pipeline, every transcript sent; the next append starts a new stream. */
  private async endFeed(): Promise<void> {
    const feed = this.feed;
    if (!feed) return;
    await feed.end();
    if (this.feed === feed) this.feed = undefined;
    this.offsetMs += feed.seconds * 1000;
  }

  private onPipeline(feed: PipelineFeed, event: ServerEvent): void {
    if (this.closed || feed !== this.feed) return;
    const ms = (seconds: number): number => Math.round(this.offsetMs + seconds * 1000);
    const manual = this.settings.turnDetection === null;
    switch (event.type) {
      case 'active':
        if (manual) return;
        this.open = { ...this.newItem(), activeAt: event.time };
        this.emit('input_audio_buffer.speech_started', { audio_start_ms: ms(event.time), item_id: this.open.id });
        return;
      case 'inactive': {
        if (manual) return;
        const item = this.open ?? this.newItem();
        this.open = undefined;
        this.bytesSinceItem = 0;
        this.emit('input_audio_buffer.speech_stopped', { audio_end_ms: ms(event.time), item_id: item.id });
        this.committed(item);
        this.transcribing.push({ item, texts: [], finals: 0 });
        return;
      }
      case 'segment': {
        const text = (event.text ?? '').trim();
        if (event.is_final === false) {
          if (!manual) this.interim(event.start_time, text);
          return;
        }
        if (manual) {
          if (text !== '') this.manualTexts.push(text);
          return;
        }
        const pending = this.transcribing.shift();
        if (pending) this.transcribed(pending.item, text);
        return;
      }
      case 'error': {
        if (manual) {
          this.manualTexts.push('');
          return;
        }
        const pending = this.transcribing.shift();
        if (pending) {
          this.emit('conversation.item.input_audio_transcription.failed', {
            item_id: pending.item.id, content_index: 0,
            error: { type: 'server_error', code: event.code.toLowerCase(), message: event.message, param: null },
          });
        }
      }
    }
  }

  // An interim of the open item (or of one waiting for its final): the words it and the previous
  // interim agree on go out as a delta. Interims are never after their final.
  private interim(start: number, text: string): void {
    const padBefore = this.settings.turnDetection?.prefixPaddingMs ?? 0;
    let item = this.transcribing.find((t) => t.item.start === start)?.item ?? (this.open?.start === start ? this.open : undefined);
    // The first interim of the open utterance starts at most its padding (and a VAD window) before speech_started.
    if (!item && this.open && this.open.start === undefined && this.open.activeAt !== undefined && start >= this.open.activeAt - padBefore / 1000 - 0.1) {
      item = this.open;
      item.start = start;
    }
    if (!item) return;
    const words = text.split(/\s+/).filter(Boolean);
    const stable = stablePrefix(item.last, words);
    item.last = words;
    if (stable <= item.sent.length || item.sent.some((w, i) => w !== words[i])) return;
    const fresh = words.slice(item.sent.length, stable);
    this.delta(item, fresh);
    item.sent.push(...fresh);
  }

  /** Words after those `item` has sent, as one append-only delta (with its joining space). */
  private delta(item: Item, words: string[]): void {
    if (words.length === 0) return;
    this.emit('conversation.item.input_audio_transcription.delta', { item_id: item.id, content_index: 0, delta: (item.sent.length > 0 ? ' ' : '') + words.join(' ') });
  }

  private newItem(): Item {
    const item: Item = { id: id('item'), previous: this.lastItem, sent: [], last: [] };
    this.lastItem = item.id;
    return item;
  }

  private committed(item: Item): void {
    this.emit('input_audio_buffer.committed', { previous_item_id: item.previous, item_id: item.id });
    const body = { type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: null }] };
    this.emit(this.dialect === 'beta' ? 'conversation.item.created' : 'conversation.item.added', {
      previous_item_id: item.previous, item: { id: item.id, object: 'realtime.item', status: 'completed', ...body },
    });
  }

  private transcribed(item: Item, transcript: string): void {
    // The words the deltas have not sent yet.
    const words = transcript.split(/\s+/).filter(Boolean);
    this.delta(item, words.slice(resumeAt(item.sent, words)));
    this.emit('conversation.item.input_audio_transcription.completed', { item_id: item.id, content_index: 0, transcript });
  }

  private onFailure(failure: TaskFailure): void {
    this.fatal(failure.code === 'OVERLOADED' ? `the server is over capacity: ${failure.message}` : `transcription failed: ${failure.message}`);
  }

  private describe(): Json {
    const s = this.settings;
    const td = s.turnDetection && { type: 'server_vad', threshold: s.turnDetection.threshold, prefix_padding_ms: s.turnDetection.prefixPaddingMs, silence_duration_ms: s.turnDetection.silenceDurationMs };
    const transcription = { model: s.model, language: s.language, prompt: s.prompt };
    if (this.dialect === 'beta') {
      return {
        id: this.id, object: 'realtime.transcription_session', input_audio_format: s.formatName,
        input_audio_transcription: transcription, turn_detection: td, input_audio_noise_reduction: null, include: [],
      };
    }
    const format = s.format.encoding === 'pcm' ? { type: 'audio/pcm', rate: s.format.sampleRate } : { type: s.format.encoding === 'mulaw' ? 'audio/pcmu' : 'audio/pcma' };
    return {
      type: 'transcription', id: this.id, object: 'realtime.transcription_session',
      audio: { input: { format, transcription, turn_detection: td, noise_reduction: null } }, include: [],
    };
  }

  private emit(type: string, fields: Json): void {
    if (this.closed) return;
    this.send({ event_id: id('event'), type, ...fields });
  }

  private error(e: RealtimeError, eventId?: string): void {
    this.emit('error', { error: { type: 'invalid_request_error', code: e.code, message: e.message, param: e.param, event_id: eventId ?? null } });
  }

  /** A failure the session cannot go on after: reported, then closed with 1008. */
  private fatal(message: string): void {
    if (this.closed) return;
    this.emit('error', { error: { type: 'server_error', code: 'session_failed', message, param: null, event_id: null } });
    this.closed = true;
    this.feed?.abort('failed');
    this.feed = undefined;
    this.end(CLOSE_POLICY, 'session failed');
  }
}

/** The key offered in Authorization, ?token=, or the `openai-insecure-api-key.<key>` subprotocol. */
function authorized(deps: OpenAiDeps, req: HttpRequest, protocols: string[]): boolean {
  const key = protocols.find((p) => p.startsWith('openai-insecure-api-key.'));
  if (key !== undefined) return deps.auth.accepts(key.slice('openai-insecure-api-key.'.length));
  return deps.auth.allows(req);
}

function refuse(res: Parameters<NonNullable<Parameters<TemplatedApp['ws']>[1]['upgrade']>>[0], error: OpenAiError): void {
  res.writeStatus(statusLine(error.status)).writeHeader('Content-Type', 'application/json');
  if (error.status === 401) res.writeHeader('WWW-Authenticate', 'Bearer');
  if (error.status === 503) res.writeHeader('Retry-After', '1');
  res.end(JSON.stringify(error.toJSON()));
}

export function registerRealtime(app: RouteTable, deps: OpenAiDeps): { drain(): Promise<void>; close(): number } {
  const { config, metrics, shared, routing } = deps;
  const sockets = new Set<WebSocket<Connection>>();
  app.ws<Connection>(REALTIME_PATH, {
    maxPayloadLength: MAX_MESSAGE_BYTES,
    idleTimeout: config.idleTimeoutSeconds,
    maxBackpressure: 2 * config.maxOutboundBytes,
    upgrade: (res, req, context) => routing.poll(() => {
      const protocols = req.getHeader('sec-websocket-protocol').split(',').map((p) => p.trim()).filter(Boolean);
      const intent = req.getQuery('intent');
      // The SDK's client always names a model in the URL: it must be one this server has.
      const model = req.getQuery('model');
      const refusal = !authorized(deps, req, protocols) ? new OpenAiError(401, 'a valid API key is required: Authorization: Bearer <AUTH_TOKEN>', null, 'invalid_api_key')
        : intent !== undefined && intent !== '' && intent !== 'transcription' ? new OpenAiError(400, `this server serves Realtime transcription only: intent must be "transcription"; got ${JSON.stringify(intent)}`, 'intent', 'invalid_value')
        : model !== undefined && model !== '' && !modelIds(config).includes(model) ? new OpenAiError(400, `this server serves Realtime transcription with ${modelIds(config).map((m) => JSON.stringify(m)).join(', ')}; got model ${JSON.stringify(model)}`, 'model', 'model_not_found')
        : !deps.pipeline() ? new OpenAiError(503, 'the server is still loading its models', null, 'not_ready')
        : shared.draining ? new OpenAiError(503, 'the server is shutting down', null, 'draining')
        : !shared.tryConnect(config.maxConnections) ? new OpenAiError(503, `the server is at its limit of ${config.maxConnections} connections`, null, 'max_connections')
        : undefined;
      if (refusal) {
        if (refusal.status !== 400) metrics.connectionsRefused.inc({ reason: refusal.status === 401 ? 'unauthorized' : refusal.code ?? 'refused' });
        refuse(res, refusal);
        return;
      }
      // A Realtime session is a live stream for as long as it is open: refused before the upgrade
      // when the process holds all the streams it can serve.
      const live = deps.pipeline()!.capacity.open();
      if ('refused' in live) {
        shared.disconnected();
        metrics.connectionsRefused.inc({ reason: 'overloaded' });
        refuse(res, new OpenAiError(503, live.refused, null, 'overloaded'));
        return;
      }
      // The beta API is asked for with `OpenAI-Beta: realtime=v1` (or its subprotocol).
      const beta = req.getHeader('openai-beta').includes('realtime=v1') || protocols.includes('openai-beta.realtime-v1');
      // A subprotocol offered must be answered with one of them; `realtime` is the API's own.
      const protocol = protocols.includes('realtime') ? 'realtime' : (protocols[0] ?? '');
      res.upgrade<Connection>(
        { session: undefined, live, dialect: beta ? 'beta' : 'ga', task: new Task('client'), closed: false },
        req.getHeader('sec-websocket-key'), protocol, req.getHeader('sec-websocket-extensions'), context,
      );
    }),
    open: (ws) => {
      const conn = ws.getUserData();
      sockets.add(ws);
      metrics.connectionOpened();
      const pipeline = deps.pipeline()!;
      conn.session = new RealtimeSession(pipeline, config, conn.dialect,
        (event) => {
          if (conn.closed) return;
          ws.send(JSON.stringify(event), false);
          if (ws.getBufferedAmount() > config.maxOutboundBytes) {
            conn.closed = true;
            ws.end(CLOSE_POLICY, 'SLOW_CONSUMER');
          }
        },
        (code, reason) => {
          if (!conn.closed) ws.end(code, reason);
        });
    },
    message: (ws, message, isBinary) => {
      const conn = ws.getUserData();
      conn.task.poll(() => {
        if (isBinary) {
          conn.session?.onBinary();
          return;
        }
        conn.session?.onText(Buffer.from(message).toString('utf8'));
      });
    },
    close: (ws) => {
      const conn = ws.getUserData();
      conn.closed = true;
      shared.disconnected();
      deps.pipeline()?.capacity.close(conn.live);
      sockets.delete(ws);
      metrics.connectionClosed();
      conn.session?.onClose();
      conn.task.close();
    },
  });
  return {
    drain: async () => {
      await Promise.all([...sockets].map((ws) => ws.getUserData().session?.drain().catch(() => undefined) ?? Promise.resolve()));
    },
    close: () => {
      const cut = sockets.size;
      for (const ws of [...sockets]) ws.end(CLOSE_GOING_AWAY, 'server shutting down');
      return cut;
    },
  };
}

