// Distributed tracing through @opentelemetry/api: one span per stream, from its `start` to its
// finish or abort, and a child span per model inference (one window or utterance). Work that is
// tiny and frequent (decode jobs) or shared across streams (a VAD batch) gets no span of its own:
// it is summed on the stream span's attributes instead.
//
// Off unless OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and
// OTEL_SDK_DISABLED is not "true"). Then the SDK is loaded when this module is, and spans leave
// over OTLP/HTTP (JSON) through a batch span processor; the standard OTEL_* variables configure
// the exporter (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, ...), the processor (OTEL_BSP_*), the
// sampler (OTEL_TRACES_SAMPLER) and the resource (OTEL_SERVICE_NAME, default `speech-server`;
// OTEL_RESOURCE_ATTRIBUTES). Otherwise nothing of the SDK is even loaded, and every stream shares
// one no-op trace whose methods are empty.
//
// The start message's `trace_id` names the stream span's parent:
//   a W3C traceparent `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`: that remote span;
//   a bare 32-hex trace id: a remote parent in that trace (random span id, sampled);
//   anything else: no parent (a new trace), the value kept as attribute `speech.trace_id`.
// The raw value is always kept as `speech.trace_id`, and the session logs it as `trace_id`.
import { randomBytes } from 'node:crypto';
import {
  DiagLogLevel, ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, diag, isSpanContextValid, trace,
  type Attributes, type Context, type DiagLogger, type Span, type SpanContext, type Tracer,
} from '@opentelemetry/api';
import { ConfigError } from './config.js';
import { Logger, type LogFields } from './log.js';
import type { JobTiming, NativeFormat } from './native/binding.js';
import type { ServerEvent } from './protocol.js';

export type { Attributes };

/** Stages that get a span per unit of work; the names match the metrics' `pipeline_stage`. */
type SpanStage = 'model_inference';
const SPAN_STAGES: readonly SpanStage[] = ['model_inference'];

/** A child span of a stream: one unit of work. */
interface StageSpan {
  /** The work is done: `timing` is its threadpool job's wait and run time. */
  end(timing: JobTiming, attributes?: Attributes): void;
  /** The work failed: the span ends with status ERROR. */
  fail(code: string, message: string): void;
}

export interface StreamEnd {
  /** How it ended: `finished` (stop), `restarted` (a new start), `drained` (server shutdown),
   *  `disconnected` (the client left), `failed`, or the error code that ended it (a limit such as
   *  STREAM_IDLE, or a failure such as BACKLOG). */
  outcome: string;
  /** Seconds of audio the stream received. */
  audioSeconds: number;
  /** Set when a failure ended the stream: its span's status becomes ERROR with this message. */
  error?: string;
}

/** A stream's trace. All methods are cheap and safe to call when nothing is recorded. */
export interface StreamTrace {
  /** False when nothing is recorded (tracing off, or the stream not sampled). */
  readonly recording: boolean;
  /** For the stream's log lines: the span's trace and span id, so a line can be found in a
   *  trace viewer. Empty when nothing is recorded. */
  readonly logFields: LogFields;
  /** Starts a child span of the stream span. */
  stage(stage: SpanStage, attributes: Attributes): StageSpan;
  /** One decode job finished (summed on the stream span). */
  decoded(timing: JobTiming): void;
  /** One VAD request was answered `waitSeconds` after it was made (summed on the stream span). */
  vadAnswered(waitSeconds: number): void;
  /** An event went to the client: segments and errors are counted, errors also become span events. */
  sent(event: ServerEvent): void;
  /** Ends the stream span (only the first call counts). */
  end(end: StreamEnd): void;
}

interface StreamStart {
  route: string;
  /** The start message's `trace_id`, as sent. */
  traceId: string | null;
  format: NativeFormat;
  /** Segmented route only. */
  interimResults?: boolean;
}

const NOOP_STAGE: StageSpan = { end() {}, fail() {} };
const NOOP_TRACE: StreamTrace = {
  recording: false,
  logFields: {},
  stage: () => NOOP_STAGE,
  decoded() {},
  vadAnswered() {},
  sent() {},
  end() {},
};

let tracer: Tracer | undefined;
let shutdownSdk: (() => Promise<void>) | undefined;

/** Where spans go, or undefined when tracing is off. */
export function tracesEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return undefined;
  return env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_ENDPOINT'] || undefined;
}

export function tracingEnabled(): boolean {
  return tracer !== undefined;
}

async function setUp(env: NodeJS.ProcessEnv): Promise<void> {
  const endpoint = tracesEndpoint(env);
  if (endpoint === undefined) return;
  const setting = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    throw new ConfigError(`${setting} must be an http:// or https:// URL (OTLP over HTTP); got ${JSON.stringify(endpoint)}`);
  }
  const [{ BasicTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, resources] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  // The SDK reports failed exports and bad settings through `diag`: into our log, warnings up.
  diag.setLogger(diagLogger(new Logger('warn', { component: 'opentelemetry' })), DiagLogLevel.WARN);
  const resource = resources.defaultResource()
    .merge(resources.resourceFromAttributes({ 'service.name': 'speech-server' }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new BasicTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  trace.setGlobalTracerProvider(provider);
  tracer = trace.getTracer('speech-server');
  shutdownSdk = () => provider.shutdown();
}

function diagLogger(log: Logger): DiagLogger {
  const write = (level: 'error' | 'warn' | 'info' | 'debug') => (message: string, ...args: unknown[]): void => {
    const details = args.map(readable);
    log[level](`tracing: ${readable(message)}`, details.length > 0 ? { details } : undefined);
  };
  return { error: write('error'), warn: write('warn'), info: write('info'), debug: write('debug'), verbose: write('debug') };
}

/** One line for a diag argument; a failed export arrives as the JSON of its error. */
function readable(v: unknown): string {
  if (v instanceof Error) return v.message;
  if (typeof v === 'string') {
    if (!v.startsWith('{')) return v;
    try {
      const parsed = JSON.parse(v) as { message?: unknown };
      return typeof parsed.message === 'string' ? parsed.message : v;
    } catch {
      return v;
    }
  }
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

await setUp(process.env);

/**
 * Sends the spans still buffered and stops the exporter; call once the streams are drained.
 * Resolves within `timeoutMs` even if the collector does not answer. Tracing stays off afterwards.
 */
export async function shutdownTracing(timeoutMs = 5000): Promise<void> {
  const shutdown = shutdownSdk;
  if (!shutdown) return;
  shutdownSdk = undefined;
  tracer = undefined;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref();
  });
  try {
    await Promise.race([shutdown().catch((e: unknown) => diag.error('tracing shutdown failed', e)), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const TRACE_ID = /^[0-9a-f]{32}$/;

/**
 * The remote parent a `trace_id` names, or undefined when it names none (see the top of this
 * file). Hex is accepted in either case and surrounding spaces are ignored.
 */
export function parentOf(traceId: string | null): SpanContext | undefined {
  if (traceId === null) return undefined;
  const value = traceId.trim().toLowerCase();
  const m = TRACEPARENT.exec(value);
  if (m) {
    const [, version, id, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
    // Version ff is invalid; version 00 has exactly four fields (later versions may add more).
    if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
    const parent: SpanContext = { traceId: id, spanId, traceFlags: parseInt(flags, 16), isRemote: true };
    return isSpanContextValid(parent) ? parent : undefined;
  }
  if (TRACE_ID.test(value)) {
    const parent: SpanContext = { traceId: value, spanId: randomSpanId(), traceFlags: TraceFlags.SAMPLED, isRemote: true };
    return isSpanContextValid(parent) ? parent : undefined;
  }
  return undefined;
}

function randomSpanId(): string {
  for (;;) {
    const id = randomBytes(8).toString('hex');
    if (id !== '0000000000000000') return id;
  }
}

/** Starts a stream's span; without tracing, returns the shared no-op trace. */
export function startStreamTrace(start: StreamStart): StreamTrace {
  if (!tracer) return NOOP_TRACE;
  const parent = parentOf(start.traceId);
  const { format } = start;
  const attributes: Attributes = {
    'speech.route': start.route,
    'speech.format.channels': format.channels,
    'speech.format.sample_rate': format.sampleRate,
    'speech.format.bit_depth': format.bitDepth,
    'speech.format.is_float': format.isFloat,
    'speech.format.encoding': format.encoding ?? 'pcm',
  };
  if (start.interimResults !== undefined) attributes['speech.interim_results'] = start.interimResults;
  if (start.traceId !== null) attributes['speech.trace_id'] = start.traceId;
  const span = tracer.startSpan(`${start.route} stream`, { kind: SpanKind.SERVER, attributes },
    parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT);
  if (!span.isRecording()) return NOOP_TRACE;
  return new RecordingStreamTrace(tracer, span);
}

interface StageTotals {
  runs: number;
  failures: number;
  runSeconds: number;
  waitSeconds: number;
}

class RecordingStreamTrace implements StreamTrace {
  readonly recording = true;
  readonly logFields: LogFields;
  private readonly context: Context;
  private ended = false;
  private segments = 0;
  private errors = 0;
  private readonly decoding: StageTotals = { runs: 0, failures: 0, runSeconds: 0, waitSeconds: 0 };
  private vadRequests = 0;
  private vadWait = 0;
  private vadMaxWait = 0;
  private readonly stages = new Map<SpanStage, StageTotals>(SPAN_STAGES.map((s) => [s, { runs: 0, failures: 0, runSeconds: 0, waitSeconds: 0 }]));

  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
  ) {
    const { traceId, spanId } = span.spanContext();
    this.logFields = { otel_trace_id: traceId, otel_span_id: spanId };
    this.context = trace.setSpan(ROOT_CONTEXT, span);
  }

  stage(stage: SpanStage, attributes: Attributes): StageSpan {
    return new RecordingStage(this.stages.get(stage)!, this.tracer.startSpan(stage, { kind: SpanKind.INTERNAL, attributes }, this.context));
  }

  decoded(timing: JobTiming): void {
    this.decoding.runs++;
    this.decoding.runSeconds += timing.runSeconds;
    this.decoding.waitSeconds += timing.waitSeconds;
  }

  vadAnswered(waitSeconds: number): void {
    this.vadRequests++;
    this.vadWait += waitSeconds;
    if (waitSeconds > this.vadMaxWait) this.vadMaxWait = waitSeconds;
  }

  sent(event: ServerEvent): void {
    if (event.type === 'segment') {
      this.segments++;
    } else if (event.type === 'error') {
      this.errors++;
      if (!this.ended) {
        this.span.addEvent('speech.error', { 'speech.channel': event.channel, 'error.type': event.code, 'speech.error.message': event.message });
      }
    }
  }

  end(end: StreamEnd): void {
    if (this.ended) return;
    this.ended = true;
    const attributes: Attributes = {
      'speech.outcome': end.outcome,
      'speech.audio_seconds': end.audioSeconds,
      'speech.segments': this.segments,
      'speech.errors': this.errors,
      'speech.audio_decoding.jobs': this.decoding.runs,
      'speech.audio_decoding.run_seconds': this.decoding.runSeconds,
      'speech.audio_decoding.wait_seconds': this.decoding.waitSeconds,
      'speech.vad_processing.requests': this.vadRequests,
      'speech.vad_processing.wait_seconds': this.vadWait,
      'speech.vad_processing.max_wait_seconds': this.vadMaxWait,
    };
    for (const [stage, t] of this.stages) {
      attributes[`speech.${stage}.runs`] = t.runs;
      attributes[`speech.${stage}.failures`] = t.failures;
      attributes[`speech.${stage}.run_seconds`] = t.runSeconds;
      attributes[`speech.${stage}.wait_seconds`] = t.waitSeconds;
    }
    this.span.setAttributes(attributes);
    if (end.error !== undefined) {
      this.span.setAttribute('error.type', end.outcome);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: end.error });
    }
    this.span.end();
  }
}

class RecordingStage implements StageSpan {
  constructor(
    private readonly totals: StageTotals,
    private readonly span: Span,
  ) {}

  end(timing: JobTiming, attributes?: Attributes): void {
    this.totals.runs++;
    this.totals.runSeconds += timing.runSeconds;
    this.totals.waitSeconds += timing.waitSeconds;
    this.span.setAttributes({ 'speech.run_seconds': timing.runSeconds, 'speech.wait_seconds': timing.waitSeconds });
    if (attributes) this.span.setAttributes(attributes);
    this.span.end();
  }

  fail(code: string, message: string): void {
    this.totals.failures++;
    this.span.setAttribute('error.type', code);
    this.span.recordException({ name: code, message });
    this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    this.span.end();
  }
}
