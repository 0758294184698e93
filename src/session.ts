// One WebSocket connection: start -> streaming -> stop/restart -> closed. Client messages are
// handled strictly in arrival order through a bounded mailbox, so audio sent after a `stop` or a
// restarting `start` always belongs to the stream that follows it.
import type { Config } from './config.js';
import type { Logger } from './log.js';
import { START_SHARE, heldWeight, type HeldAudio, type MemoryBudget } from './memory-budget.js';
import type { Metrics } from './metrics/registry.js';
import { refuseSampleRate } from './sample-rate-admission.js';
import { ArrivalClock } from './pipeline/arrival-clock.js';
import type { LiveTicket, StreamCapacity } from './pipeline/stream-capacity.js';
import type { Runner, SharedModel } from './pipeline/runner.js';
import { SegmentedRunner } from './pipeline/segmented-runner.js';
import { SimpleRunner } from './pipeline/simple-runner.js';
import type { DecodeBatcher } from './pipeline/decode-batcher.js';
import type { VadBatcher } from './pipeline/vad-batcher.js';
import { frameBytes } from './audio-format.js';
import { ProtocolError, parseRequest, type ErrorCode, type ServerEvent, type StartRequest } from './protocol.js';
import { clientCode, toTaskFailure, type TaskFailure } from './tasks.js';
import { startStreamTrace, type StreamEnd, type StreamTrace } from './tracing.js';

export type Route = 'simple' | 'segmented';

/** The socket as the session sees it. */
export interface ClientSink {
  send(event: ServerEvent): void;
  /** Closes the connection after what was sent so far. */
  end(code: number, reason: string): void;
}

// Close codes (RFC 6455): 1000 normal, 1001 server going away, 1008 policy (the client broke the protocol's limits),
// 1009 message too big, 1011 internal error.
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY = 1008;
/** RFC 6455 1013: the server is over capacity; the client may reconnect later. */
export const CLOSE_TRY_AGAIN_LATER = 1013;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_INTERNAL = 1011;

// Messages waiting behind a stop's flush; beyond this the client is flooding. Their bytes are
// bounded too (mailboxLimit): a count alone let 4096 frames of MAX_FRAME_BYTES each wait.
const MAX_MAILBOX = 4096;
/** The byte rate a mailbox is bounded by before any stream has told us its format (16 kHz s16 mono). */
const DEFAULT_BYTES_PER_SECOND = 32_000;
/** MAX_MESSAGES_PER_SECOND's bucket holds this many seconds of it: bursts (a file sent at once) pass. */
export const MESSAGE_BURST_SECONDS = 5;
// Errors the client caused by what it sent; MAX_PROTOCOL_ERRORS of them close the connection.
const PROTOCOL_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['BAD_JSON', 'BAD_MESSAGE', 'UNKNOWN_REQUEST', 'INVALID_FORMAT', 'NOT_STARTED', 'MESSAGE_TOO_LARGE']);

export interface SessionDeps {
  route: Route;
  config: Config;
  model: SharedModel;
  /** Admits live streams against what the model can serve. */
  capacity: StreamCapacity;
  decoder: DecodeBatcher;
  vad: VadBatcher;
  metrics: Metrics;
  log: Logger;
  /** The process-wide budget of audio waiting (MEMORY_BUDGET_BYTES). */
  memory: MemoryBudget;
}

export class Session {
  private runner: Runner | undefined;
  private stream: {
    bytesPerSecond: number;
    frameBytes: number;
    log: Logger;
    trace: StreamTrace;
    startedAt: number;
    clock: ArrivalClock;
    firstEventSent: boolean;
    bytes: number; // audio received
    lastAudioAt: number;
    ending: boolean; // a limit has ended it; its finish is queued
    held: HeldAudio; // its pipeline's share of MEMORY_BUDGET_BYTES
    live: LiveTicket; // its place in the process's capacity
  } | undefined;
  private mailbox: Promise<void> = Promise.resolve();
  private queued = 0;
  private queuedBytes = 0;
  /** The latest stream's byte rate: what bounds the bytes waiting in the mailbox. */
  private bytesPerSecond = DEFAULT_BYTES_PER_SECOND;
  /** What a byte of the latest stream's audio may weigh while it waits (memory-budget.ts). */
  private weight = heldWeight(DEFAULT_BYTES_PER_SECOND, 1);
  /** The mailbox's share of MEMORY_BUDGET_BYTES. */
  private readonly mailboxHeld: HeldAudio;
  private readonly openedAt = performance.now();
  /** Since when the connection has had no stream (START_TIMEOUT_SECONDS). */
  private streamlessSince = performance.now();
  private expiring = false;
  private protocolErrors = 0;
  /** MAX_MESSAGES_PER_SECOND's token bucket. */
  private tokens: number;
  private refilledAt = performance.now();
  private closed = false;
  private slow = false;
  private readonly closeWaiters: (() => void)[] = [];

  constructor(
    private readonly sink: ClientSink,
    private readonly deps: SessionDeps,
  ) {
    this.tokens = deps.config.maxMessagesPerSecond * MESSAGE_BURST_SECONDS;
    this.mailboxHeld = deps.memory.account();
  }

  /** A text message's UTF-8 bytes, valid only during this call (it is decoded here). */
  onText(utf8: Uint8Array): void {
    if (!this.admit()) return;
    if (utf8.byteLength > this.deps.config.maxTextBytes) {
      // Refused at once, on its bytes before decoding anything, and not queued: a huge message
      // must not wait in the mailbox.
      this.error('MESSAGE_TOO_LARGE', `a text message of ${utf8.byteLength} bytes is over the limit of ${this.deps.config.maxTextBytes} (MAX_TEXT_BYTES)`);
      return;
    }
    const text = Buffer.from(utf8.buffer, utf8.byteOffset, utf8.byteLength).toString('utf8');
    this.post(() => this.handleText(text), utf8.byteLength);
  }

  /**
   * Called about once a second: ends a connection open longer than MAX_CONNECTION_SECONDS (its
   * stream finished first), one without a stream for START_TIMEOUT_SECONDS, and finishes a
   * stream that has gone quiet for too long.
   */
  checkIdle(now: number): void {
    const { maxConnectionSeconds, startTimeoutSeconds } = this.deps.config;
    if (this.closed || this.expiring) return;
    if (maxConnectionSeconds > 0 && now - this.openedAt >= maxConnectionSeconds * 1000) {
      this.expiring = true;
      if (this.stream) this.stream.ending = true; // later audio is not taken
      this.post(() => this.finishThenClose('CONNECTION_TOO_LONG', `the connection was open for the limit of ${maxConnectionSeconds} s (MAX_CONNECTION_SECONDS)`));
      return;
    }
    // A start still queued (behind a flush) is about to give the connection a stream.
    if (startTimeoutSeconds > 0 && !this.runner && this.queued === 0 && now - this.streamlessSince >= startTimeoutSeconds * 1000) {
      this.fatal('START_TIMEOUT', `no stream for ${startTimeoutSeconds} s: send {"request":"start",...} (START_TIMEOUT_SECONDS)`, CLOSE_POLICY);
      return;
    }
    const limit = this.deps.config.streamIdleSeconds;
    if (limit <= 0 || !this.stream || this.closed || this.stream.ending) return;
    if (now - this.stream.lastAudioAt < limit * 1000) return;
    this.stream.ending = true;
    this.post(() => this.finishThenClose('STREAM_IDLE', `no audio for ${limit} s (STREAM_IDLE_SECONDS)`));
  }

  /** The client is not reading its events. */
  onSlowConsumer(buffered: number): void {
    // Once: the error event itself is queued behind the unread ones.
    if (this.closed || this.slow) return;
    this.slow = true;
    this.fatal('SLOW_CONSUMER', `${buffered} bytes of events are unread (MAX_OUTBOUND_BYTES ${this.deps.config.maxOutboundBytes})`, CLOSE_POLICY);
  }

  /** `bytes` must be the session's own copy. */
  onBinary(bytes: Uint8Array): void {
    if (!this.admit()) return;
    const { memory } = this.deps;
    const cost = Math.round(bytes.byteLength * this.weight);
    if (!memory.admits(cost, this.mailboxHeld.held + (this.stream?.held.held ?? 0))) {
      // The process's waiting audio is at its budget: the frame that would take it over is
      // refused, so that memory stays bounded whatever the number of connections; in the last
      // tenth only from connections holding more than their share, so a flood meets it first.
      const why = memory.fits(cost) ? `over ${Math.round(START_SHARE * 100)} % of its limit of ${memory.budget}, and this connection holds more than its share` : `and this frame's ${cost} more would pass its limit of ${memory.budget}`;
      this.fatal('MEMORY_BUDGET', `the server holds ${memory.held} bytes of waiting audio, ${why} (MEMORY_BUDGET_BYTES); try again later`, CLOSE_TRY_AGAIN_LATER);
      return;
    }
    this.post(() => this.handleAudio(bytes), bytes.byteLength);
  }

  /**
   * MAX_MESSAGES_PER_SECOND: each message costs the event loop a fixed amount whatever it
   * carries, so one-byte frames would buy a lot of server work (and arrival-clock entries) for
   * little bandwidth. A token bucket: the rate on average, bursts of MESSAGE_BURST_SECONDS of it.
   */
  private admit(now = performance.now()): boolean {
    if (this.closed) return false;
    const rate = this.deps.config.maxMessagesPerSecond;
    if (rate === 0) return true;
    this.tokens = Math.min(rate * MESSAGE_BURST_SECONDS, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.fatal('TOO_MANY_MESSAGES', `more than ${rate} messages per second (MAX_MESSAGES_PER_SECOND, bursts of ${MESSAGE_BURST_SECONDS} s of it)`, CLOSE_POLICY);
    return false;
  }

  /** A message over MAX_FRAME_BYTES: refused without reading it, and the connection closed. */
  onOversized(bytes: number, limit: number): void {
    if (this.closed) return;
    this.fatal('FRAME_TOO_LARGE', `a message of ${bytes} bytes is over the limit of ${limit} bytes (MAX_FRAME_BYTES)`, CLOSE_TOO_BIG);
  }

  /**
   * Server shutdown: after the messages already received, finish the stream (its final results
   * are sent) and close with 1001. Resolves when the connection is closed.
   */
  drain(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      this.post(async () => {
        await this.finishStream('drained');
        if (!this.closed) this.sink.end(CLOSE_GOING_AWAY, 'server shutting down');
      });
    });
  }

  /** The connection is gone (either side closed it). */
  onClose(): void {
    this.closed = true;
    this.mailboxHeld.release();
    this.endStream(true, { outcome: 'disconnected' });
    for (const wake of this.closeWaiters.splice(0)) wake();
  }

  /** `bytes`: what the message holds, counted against the mailbox's byte bound while it waits. */
  private post(op: () => void | Promise<void>, bytes = 0): void {
    if (this.closed) return;
    if (this.queued === 0) {
      // Nothing is waiting: run it now. Only an op that really awaits (a stop's flush, a restart)
      // makes later messages queue behind it, so an audio frame costs no promise.
      this.run(op);
      return;
    }
    if (this.queued >= MAX_MAILBOX) {
      this.fatal('BACKLOG', `more than ${MAX_MAILBOX} messages are waiting to be handled`, CLOSE_POLICY);
      return;
    }
    const limit = this.mailboxLimit();
    if (this.queuedBytes + bytes > limit) {
      this.fatal('BACKLOG', `more than ${limit} bytes (MAX_BACKLOG_SECONDS of the stream's audio) are waiting to be handled`, CLOSE_POLICY);
      return;
    }
    this.queued++;
    this.queuedBytes += bytes;
    // Counted at the weight it has now: the same amount comes off however the format changes.
    const held = bytes * this.weight;
    this.mailboxHeld.add(held);
    // `queued` drops only once the op has finished, so nothing overtakes an op still running.
    this.mailbox = this.mailbox
      .then(() => {
        // Its bytes leave the mailbox for the stream's pipeline (which counts them) as it runs.
        this.mailboxHeld.add(-held);
        return this.closed ? undefined : this.running(op);
      })
      .then(() => { this.queued--; this.queuedBytes -= bytes; });
  }

  /** Bytes that may wait behind a flush: MAX_BACKLOG_SECONDS at the latest stream's byte rate,
   *  the same bound audio has at every later stage. */
  private mailboxLimit(): number {
    return Math.ceil(this.deps.config.maxBacklogSeconds * this.bytesPerSecond);
  }

  /** Runs `op` at once; if it returns a promise, later messages wait for it. */
  private run(op: () => void | Promise<void>): void {
    const pending = this.running(op);
    if (pending) {
      this.queued++;
      this.mailbox = pending.then(() => { this.queued--; });
    }
  }

  /** Runs `op`, turning its failure into the stream's; a promise if it has not finished. */
  private running(op: () => void | Promise<void>): Promise<void> | undefined {
    try {
      const result = op();
      if (result instanceof Promise) return result.catch((e: unknown) => this.onFailure(toTaskFailure(e)));
    } catch (e) {
      this.onFailure(toTaskFailure(e));
    }
    return undefined;
  }

  private async handleText(text: string): Promise<void> {
    let request;
    try {
      request = parseRequest(text, this.deps.config.maxChannels);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.error(e.code, e.message);
      return;
    }
    if (request.request === 'start') {
      if (this.runner) await this.finishStream('restarted');
      if (this.closed) return;
      if (!this.deps.memory.admitsStream()) {
        // Near the budget, a new stream would only take room the streams already served need.
        this.fatal('MEMORY_BUDGET', `the server holds over ${Math.round(START_SHARE * 100)} % of its ${this.deps.memory.budget} bytes of waiting audio (MEMORY_BUDGET_BYTES); try again later`, CLOSE_TRY_AGAIN_LATER);
        return;
      }
      // A new uncommon rate costs a filter design (milliseconds of a worker, ~1-2 MB): a client
      // looping `start` over odd rates gets this instead of buying unbounded design work.
      const refused = refuseSampleRate(request.format.sampleRate);
      if (refused) {
        this.error('SAMPLE_RATE_BUSY', refused);
        return;
      }
      // Last, as it takes a place: refused before anything of the stream runs.
      const live = this.deps.capacity.open();
      if ('refused' in live) {
        this.fatal('OVERLOADED', live.refused, CLOSE_TRY_AGAIN_LATER);
        return;
      }
      try {
        this.startStream(request, live);
      } catch (e) {
        this.deps.capacity.close(live); // close() ignores a ticket given back twice
        throw e;
      }
      return;
    }
    if (this.runner) {
      const stoppedAt = performance.now();
      await this.finishStream();
      this.deps.metrics.stopLatency.observe({ route: this.deps.route }, (performance.now() - stoppedAt) / 1000);
    } else if (!request.disconnect) {
      this.error('NOT_STARTED', 'stop before start: there is no stream to stop');
      return;
    }
    if (request.disconnect && !this.closed) this.sink.end(CLOSE_NORMAL, 'stopped');
  }

  /** Synchronous unless a limit ends the stream (then the promise of its finish). */
  private handleAudio(bytes: Uint8Array): void | Promise<void> {
    const stream = this.stream;
    if (!this.runner || !stream) {
      this.error('NOT_STARTED', 'audio before start: send {"request":"start",...} first');
      return;
    }
    if (stream.ending) return; // a limit ended this stream; its finish is queued behind us
    const limit = this.deps.config.maxStreamSeconds;
    // Counted in bytes, exactly: summing seconds would drift.
    const room = Math.floor((limit * stream.bytesPerSecond) / stream.frameBytes) * stream.frameBytes - stream.bytes;
    const accepted = bytes.length > room ? bytes.subarray(0, Math.max(0, room)) : bytes;
    if (accepted.length > 0) {
      const seconds = accepted.length / stream.bytesPerSecond;
      stream.bytes += accepted.length;
      stream.lastAudioAt = performance.now();
      this.deps.metrics.audioReceived.inc(seconds);
      stream.clock.arrived(seconds);
      this.runner.push(accepted);
    }
    if (accepted !== bytes) {
      // The stream carries exactly MAX_STREAM_SECONDS: what fits is kept, the rest refused.
      stream.ending = true;
      return this.finishThenClose('STREAM_TOO_LONG', `the stream reached the limit of ${limit} s of audio (MAX_STREAM_SECONDS)`);
    }
  }

  /** A limit ends the stream: its results so far are delivered, then the error and 1008. */
  private async finishThenClose(code: ErrorCode, message: string): Promise<void> {
    await this.finishStream(code);
    if (this.closed) return;
    this.error(code, message);
    this.closed = true;
    this.sink.end(CLOSE_POLICY, code);
  }

  private startStream(request: StartRequest, live: LiveTicket): void {
    const { config, decoder, model, vad, metrics, log, route } = this.deps;
    const format = request.format;
    const fail = (failure: TaskFailure): void => this.onFailure(failure);
    const emit = (event: ServerEvent): void => this.send(event);
    const trace = startStreamTrace({
      route, format, traceId: request.traceId,
      interimResults: route === 'segmented' ? request.interimResults : undefined,
    });
    const stream = { startedAt: performance.now() };
    const held = this.deps.memory.account();
    this.runner = route === 'segmented'
      ? new SegmentedRunner({ format, decoder, model, vad, config, metrics, emit, fail, trace, stream, held, progress: request.progress, interimResults: request.interimResults })
      : new SimpleRunner({
        format, decoder, model, metrics, emit, fail, trace, stream, held, progress: request.progress,
        windowSeconds: config.simpleWindowSeconds,
        maxBacklogSeconds: config.maxBacklogSeconds,
      });
    // The client's trace_id as sent, and the span's ids when one is recorded.
    const logFields = request.traceId ? { trace_id: request.traceId, ...trace.logFields } : trace.logFields;
    this.bytesPerSecond = format.sampleRate * frameBytes(format);
    this.weight = heldWeight(this.bytesPerSecond, format.channels);
    this.stream = {
      bytesPerSecond: this.bytesPerSecond,
      frameBytes: frameBytes(format),
      log: Object.keys(logFields).length > 0 ? log.child(logFields) : log,
      trace,
      startedAt: performance.now(),
      clock: new ArrivalClock(),
      firstEventSent: false,
      bytes: 0,
      lastAudioAt: performance.now(),
      ending: false,
      held,
      live,
    };
    metrics.streamStarted(route);
    this.stream.log.debug('stream started', { route, format });
  }

  /** Finishes the current stream, its final results delivered; `outcome` is why (for its trace). */
  private async finishStream(outcome = 'finished'): Promise<void> {
    const runner = this.runner;
    if (!runner) return;
    const end: Omit<StreamEnd, 'audioSeconds'> = { outcome };
    try {
      await runner.finish();
    } catch (e) {
      end.outcome = 'failed';
      end.error = e instanceof Error ? e.message : String(e);
      throw e;
    } finally {
      this.endStream(false, end);
    }
  }

  /** Forgets the current stream; `abort` drops its pending work. */
  private endStream(abort: boolean, end: Omit<StreamEnd, 'audioSeconds'>): void {
    if (!this.runner) return;
    if (abort) this.runner.abort();
    this.runner = undefined;
    const stream = this.stream;
    if (stream) {
      // Its audio is dropped or consumed: none of it waits any more, whatever is still in flight.
      stream.held.release();
      this.deps.capacity.close(stream.live);
      const audioSeconds = stream.bytes / stream.bytesPerSecond;
      stream.trace.end({ ...end, audioSeconds });
      stream.log.debug('stream ended', { aborted: abort, outcome: end.outcome, audio_seconds: audioSeconds });
    }
    this.stream = undefined;
    this.streamlessSince = performance.now();
    this.deps.metrics.streamEnded(this.deps.route);
  }

  private onFailure(failure: TaskFailure): void {
    if (this.closed) return;
    const code = clientCode(failure);
    if (code === 'BACKLOG') {
      this.fatal(code, failure.message, CLOSE_POLICY);
    } else if (code === 'OVERLOADED') {
      this.fatal(code, failure.message, CLOSE_TRY_AGAIN_LATER);
    } else {
      (this.stream?.log ?? this.deps.log).error('stream failed', { code: failure.code, error: failure.message });
      this.fatal(code, failure.message, CLOSE_INTERNAL);
    }
  }

  /** Reports the error, drops the stream and closes the connection. */
  private fatal(code: ErrorCode, message: string, closeCode: number): void {
    this.error(code, message);
    this.closed = true;
    this.endStream(true, { outcome: code, error: message });
    this.sink.end(closeCode, code);
  }

  private error(code: ErrorCode, message: string): void {
    this.send({ type: 'error', channel: 0, code, message });
    const max = this.deps.config.maxProtocolErrors;
    if (max > 0 && PROTOCOL_ERRORS.has(code) && ++this.protocolErrors >= max && !this.closed) {
      // A client that keeps sending garbage buys an error event (and a log-free metric) each time.
      this.fatal('TOO_MANY_ERRORS', `${this.protocolErrors} protocol errors on this connection (MAX_PROTOCOL_ERRORS)`, CLOSE_POLICY);
    }
  }

  private send(event: ServerEvent): void {
    if (this.closed) return;
    const { metrics, route } = this.deps;
    if (event.type === 'error') metrics.countError(event.code);
    metrics.eventsSent.inc({ type: event.type });
    this.sink.send(event);
    const stream = this.stream;
    if (!stream) return;
    stream.trace.sent(event);
    const now = performance.now();
    if (!stream.firstEventSent) {
      stream.firstEventSent = true;
      metrics.firstEventLatency.observe({ route }, (now - stream.startedAt) / 1000);
    }
    if (event.type === 'segment' && event.is_final !== false) {
      const arrived = stream.clock.arrivalOf(event.end_time);
      if (arrived !== undefined) metrics.finalLatency.observe({ route }, (now - arrived) / 1000);
    }
  }
}
