// One WebSocket connection: start -> streaming -> stop/restart -> closed. Client messages are
// handled strictly in arrival order through a bounded mailbox, so audio sent after a `stop` or a
// restarting `start` always belongs to the stream that follows it.
import type { Config } from './config.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics/registry.js';
import type { NativeModel } from './native/binding.js';
import { ArrivalClock } from './pipeline/arrival-clock.js';
import type { Runner } from './pipeline/runner.js';
import { SegmentedRunner } from './pipeline/segmented-runner.js';
import { SimpleRunner } from './pipeline/simple-runner.js';
import type { VadBatcher } from './pipeline/vad-batcher.js';
import { ProtocolError, parseRequest, type ErrorCode, type ServerEvent, type StartRequest } from './protocol.js';
import { toTaskFailure, type TaskFailure } from './tasks.js';

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
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_INTERNAL = 1011;

// Messages waiting behind a stop's flush; beyond this the client is flooding.
const MAX_MAILBOX = 4096;

export interface SessionDeps {
  route: Route;
  config: Config;
  model: NativeModel;
  vad: VadBatcher;
  metrics: Metrics;
  log: Logger;
}

export class Session {
  private runner: Runner | undefined;
  private stream: { bytesPerSecond: number; log: Logger; startedAt: number; clock: ArrivalClock; firstEventSent: boolean } | undefined;
  private mailbox: Promise<void> = Promise.resolve();
  private queued = 0;
  private closed = false;
  private readonly closeWaiters: (() => void)[] = [];

  constructor(
    private readonly sink: ClientSink,
    private readonly deps: SessionDeps,
  ) {}

  onText(text: string): void {
    this.post(() => this.handleText(text));
  }

  /** `bytes` must be the session's own copy. */
  onBinary(bytes: Uint8Array): void {
    this.post(() => this.handleAudio(bytes));
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
        await this.finishStream();
        if (!this.closed) this.sink.end(CLOSE_GOING_AWAY, 'server shutting down');
      });
    });
  }

  /** The connection is gone (either side closed it). */
  onClose(): void {
    this.closed = true;
    this.endStream(true);
    for (const wake of this.closeWaiters.splice(0)) wake();
  }

  private post(op: () => void | Promise<void>): void {
    if (this.closed) return;
    if (++this.queued > MAX_MAILBOX) {
      this.fatal('BACKLOG', `more than ${MAX_MAILBOX} messages are waiting to be handled`, CLOSE_POLICY);
      return;
    }
    this.mailbox = this.mailbox.then(async () => {
      this.queued--;
      if (this.closed) return;
      try {
        await op();
      } catch (e) {
        this.onFailure(toTaskFailure(e));
      }
    });
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
      if (this.runner) await this.finishStream();
      if (!this.closed) this.startStream(request);
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

  private handleAudio(bytes: Uint8Array): void {
    if (!this.runner || !this.stream) {
      this.error('NOT_STARTED', 'audio before start: send {"request":"start",...} first');
      return;
    }
    const seconds = bytes.length / this.stream.bytesPerSecond;
    this.deps.metrics.audioReceived.inc(seconds);
    this.stream.clock.arrived(seconds);
    this.runner.push(bytes);
  }

  private startStream(request: StartRequest): void {
    const { config, model, vad, metrics, log, route } = this.deps;
    const format = request.format;
    const fail = (failure: TaskFailure): void => this.onFailure(failure);
    const emit = (event: ServerEvent): void => this.send(event);
    this.runner = route === 'segmented'
      ? new SegmentedRunner({ format, model, vad, config, metrics, emit, fail, interimResults: request.interimResults })
      : new SimpleRunner({
        format, model, metrics, emit, fail,
        windowSeconds: config.simpleWindowSeconds,
        maxBacklogSeconds: config.maxBacklogSeconds,
      });
    this.stream = {
      bytesPerSecond: format.sampleRate * format.channels * (format.bitDepth / 8),
      log: request.traceId ? log.child({ trace_id: request.traceId }) : log,
      startedAt: performance.now(),
      clock: new ArrivalClock(),
      firstEventSent: false,
    };
    metrics.streamStarted(route);
    this.stream.log.debug('stream started', { route, format });
  }

  private async finishStream(): Promise<void> {
    const runner = this.runner;
    if (!runner) return;
    try {
      await runner.finish();
    } finally {
      this.endStream(false);
    }
  }

  /** Forgets the current stream; `abort` drops its pending work. */
  private endStream(abort: boolean): void {
    if (!this.runner) return;
    if (abort) this.runner.abort();
    this.runner = undefined;
    this.stream?.log.debug('stream ended', { aborted: abort });
    this.stream = undefined;
    this.deps.metrics.streamEnded(this.deps.route);
  }

  private onFailure(failure: TaskFailure): void {
    if (this.closed) return;
    if (failure.code === 'BACKLOG') {
      this.fatal('BACKLOG', failure.message, CLOSE_POLICY);
    } else {
      this.deps.log.error('stream failed', { code: failure.code, error: failure.message });
      this.fatal(failure.panicked ? 'NATIVE_PANIC' : 'INTERNAL', failure.message, CLOSE_INTERNAL);
    }
  }

  /** Reports the error, drops the stream and closes the connection. */
  private fatal(code: ErrorCode, message: string, closeCode: number): void {
    this.error(code, message);
    this.closed = true;
    this.endStream(true);
    this.sink.end(closeCode, code);
  }

  private error(code: ErrorCode, message: string): void {
    this.send({ type: 'error', channel: 0, code, message });
  }

  private send(event: ServerEvent): void {
    if (this.closed) return;
    const { metrics, route } = this.deps;
    if (event.type === 'error') metrics.countError(event.code);
    metrics.eventsSent.inc({ type: event.type });
    this.sink.send(event);
    const stream = this.stream;
    if (!stream) return;
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
