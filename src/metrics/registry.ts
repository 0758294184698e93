// The server's Prometheus registry: service, audio-stage and runtime families, plus the native
// task metrics. Names follow the README's table (brief name -> exported name).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { REFUSAL_REASONS } from '../admission.js';
import type { SharedState } from '../cluster/shared-state.js';
import type { MemoryBudget } from '../memory-budget.js';
import { TARGET_BUSY } from '../pipeline/stream-capacity.js';
import { ERROR_CODES, type ErrorCode } from '../protocol.js';
import { NativeFamilies } from './native-families.js';
import { StageHistogram } from './stage-histogram.js';

/** What the metrics read of a worker's inference scheduler. */
export interface EngineLoad {
  readonly waiting: number;
  readonly busyFraction: number;
}

export const PIPELINE_STAGES = ['audio_decoding', 'vad_processing', 'model_inference'] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

// prom-client's defaults include three gauges named like counters (…_total), which promtool
// rejects; the per-type gauges beside them (nodejs_active_handles etc.) carry the same numbers.
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

// Node's default families: the process_* ones describe the process; the nodejs_* ones (heap, GC,
// handles, event-loop delay) describe one thread's isolate and loop.
const isProcessFamily = (name: string): boolean => name.startsWith('process_');

function registerDefaults(registry: Registry, keep: (name: string) => boolean, labels?: Record<string, string>): void {
  collectDefaultMetrics({ register: registry, labels });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
  for (const metric of registry.getMetricsAsArray()) {
    const { name } = metric as unknown as { name: string };
    if (!keep(name)) registry.removeSingleMetric(name);
  }
}

/** The families that describe the whole process: process_* and the native counters. With several
 *  worker threads only the primary registers them, once (src/cluster/primary.ts). */
export function registerProcessFamilies(registry: Registry, threadpoolSize: number): NativeFamilies {
  registerDefaults(registry, isProcessFamily);
  return new NativeFamilies(registry, threadpoolSize);
}

export interface MetricsOptions {
  /** This thread's index among the worker threads: the `worker_thread` label of per-thread families
   *  (`worker` is taken: it numbers threadpool workers). */
  worker: number;
  /** Process-wide stream count (health's), kept beside streams_active. */
  shared: SharedState;
  /** Registers the process families here too: true when one thread serves everything. */
  processFamilies?: { threadpoolSize: number };
  /** The process-wide budget of audio waiting (MEMORY_BUDGET_BYTES), and this worker's share of it. */
  memory?: MemoryBudget;
}

export class Metrics {
  readonly registry = new Registry();
  /** The native families, when this registry has the process families. */
  private readonly native: NativeFamilies | undefined;
  private readonly shared: SharedState;

  readonly connectionsActive = new Gauge({
    name: 'connections_active', help: 'Open WebSocket connections, by the worker thread serving them', labelNames: ['worker_thread'], registers: [this.registry],
  });
  readonly connectionsTotal = new Counter({ name: 'connections_total', help: 'WebSocket connections accepted', registers: [this.registry] });
  readonly connectionsRefused = new Counter({
    name: 'connections_refused_total', help: 'WebSocket upgrades (and, with AUTH_ALL_ROUTES, HTTP requests) refused, by reason', labelNames: ['reason'], registers: [this.registry],
  });
  readonly httpRejected = new Counter({
    name: 'http_rejected_total', help: 'HTTP requests refused: unknown paths or methods (404), WebSocket upgrades asked of HTTP routes',
    labelNames: ['reason'], registers: [this.registry],
  });
  readonly streamsActive = new Gauge({ name: 'streams_active', help: 'Streams between start and stop', labelNames: ['route'], registers: [this.registry] });
  readonly streamsTotal = new Counter({ name: 'streams_total', help: 'Streams started', labelNames: ['route'], registers: [this.registry] });
  readonly audioReceived = new Counter({
    name: 'audio_received_seconds_total', help: 'Seconds of audio received from clients (per stream, not per channel)', registers: [this.registry],
  });
  readonly eventsSent = new Counter({ name: 'events_sent_total', help: 'Events sent to clients, by type', labelNames: ['type'], registers: [this.registry] });
  readonly errors = new Counter({ name: 'errors_total', help: 'Errors reported to clients, by kind (the error event code)', labelNames: ['kind'], registers: [this.registry] });

  // Per-stage work: how much audio a unit of work covered, how long it ran, and the ratio, each
  // stage with buckets around what it was measured to do (bench/RESULTS.md): one stream's part of a decode batch covers
  // one or a few 20-100 ms frames at an RTF near 1e-4; a VAD batch covers every waiting channel's
  // audio at ~1e-3 (batched Silero, ~35k windows/s); an utterance covers seconds at 0.015-0.035
  // (Moonshine tiny, one thread). The RTF buckets reach 15 like the brief's.
  readonly mediaDuration = new StageHistogram<PipelineStage>(this.registry, 'media_duration_seconds',
    'Audio covered by one unit of work, by pipeline stage', {
      audio_decoding: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      vad_processing: [0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      model_inference: [0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 12, 20, 30],
    });
  readonly processingDuration = new StageHistogram<PipelineStage>(this.registry, 'processing_duration_seconds',
    'Worker time of one unit of work, by pipeline stage', {
      audio_decoding: [1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.01],
      vad_processing: [5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1],
      model_inference: [1e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    });
  readonly rtf = new StageHistogram<PipelineStage>(this.registry, 'rtf',
    'Real-time factor (processing / media duration) of one unit of work, by pipeline stage', {
      audio_decoding: [1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05, 15],
      vad_processing: [2.5e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 15],
      model_inference: [1e-3, 5e-3, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2, 15],
    });

  // What users feel. Final latency: a final result's emission minus the arrival of the audio at
  // its end_time (segmented: includes the end-of-speech wait; simple: the window's last frame).
  readonly firstEventLatency = new Histogram({
    name: 'first_event_latency_seconds', help: 'From a stream\'s start request to its first event', labelNames: ['route'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30], registers: [this.registry],
  });
  readonly finalLatency = new Histogram({
    name: 'final_latency_seconds', help: 'From the arrival of the audio at a final result\'s end_time to the result', labelNames: ['route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10], registers: [this.registry],
  });
  readonly stopLatency = new Histogram({
    name: 'stop_latency_seconds', help: 'From a stop request to the last final result of its stream', labelNames: ['route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10], registers: [this.registry],
  });
  readonly eventLoopLag = new Histogram({
    name: 'eventloop_lag_seconds', help: 'Event-loop lag: how late a 20 ms timer fired, by worker thread', labelNames: ['worker_thread'], registers: [this.registry],
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  });
  /** Set once the model is loaded: this worker's inference scheduler. */
  inference: EngineLoad = { waiting: 0, busyFraction: 0 };
  readonly inferenceQueue = new Gauge({
    name: 'inference_jobs_waiting', help: 'Utterances waiting for a model slot in the inference scheduler (finals first, live audio before uploads)',
    registers: [this.registry],
    collect: () => { this.inferenceQueue.set(this.inference.waiting); },
  });
  readonly inferenceBatchRows = new Histogram({
    name: 'inference_batch_rows', help: 'Utterances in the model job that transcribed each utterance (the engine batches what waits)',
    buckets: [1, 2, 4, 8, 12, 16, 24, 32, 64], registers: [this.registry],
  });
  readonly inferenceWait = new Histogram({
    name: 'inference_wait_seconds', help: 'From an utterance\'s request to the start of the model job that transcribed it (scheduler queue and threadpool), by kind (final or interim)',
    labelNames: ['kind'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5], registers: [this.registry],
  });
  readonly inferenceBusy = new Gauge({
    name: 'inference_busy_ratio', help: 'Share of its model slots each worker thread kept busy, smoothed over about 10 s (0-1)',
    labelNames: ['worker_thread'], registers: [this.registry],
    collect: () => { this.inferenceBusy.set({ worker_thread: this.worker }, this.inference.busyFraction); },
  });
  /** Set once the model is loaded: the admission of live streams against measured capacity. */
  capacity: { readonly admissible: number; readonly limit: number } = { admissible: 0, limit: 0 };
  // Both are the process's figures, the same in every worker: the aggregate keeps one (max).
  readonly streamsAdmissible = new Gauge({
    name: 'streams_admissible',
    help: `Live streams the process can still take: its capacity less the live streams it holds (0 while it refuses new streams)`,
    registers: [this.registry], aggregator: 'max',
    collect: () => { this.streamsAdmissible.set(this.capacity.admissible); },
  });
  readonly streamsCapacity = new Gauge({
    name: 'streams_capacity',
    help: `Live streams the process can serve: its model slots, kept ${Math.round(TARGET_BUSY * 100)} % busy with finals, over the measured cost of one stream`,
    registers: [this.registry], aggregator: 'max',
    collect: () => { this.streamsCapacity.set(this.capacity.limit); },
  });
  private readonly memory: MemoryBudget | undefined;
  // The same budget in every worker: the aggregate keeps one (max), not their sum.
  readonly memoryBudget = new Gauge({
    name: 'memory_budget_bytes', help: 'Bytes of audio the process may hold waiting for processing (MEMORY_BUDGET_BYTES, or half its memory limit)',
    registers: [this.registry], aggregator: 'max',
    collect: () => { this.memoryBudget.set(this.memory?.budget ?? 0); },
  });
  // Each worker reports what its own streams hold; the aggregate sums them to the process's.
  readonly memoryHeld = new Gauge({
    name: 'memory_held_bytes', help: 'Bytes of audio held waiting in the process (session mailboxes, decoder and VAD queues), each byte at its decoded size when larger; summed over worker threads',
    registers: [this.registry],
    collect: () => { this.memoryHeld.set(this.memory?.local ?? 0); },
  });
  private lastUtilization = performance.eventLoopUtilization();
  readonly eventLoopUtilization = new Gauge({
    name: 'eventloop_utilization', help: 'Share of time the event loop was busy since the previous scrape (0-1), by worker thread',
    labelNames: ['worker_thread'], registers: [this.registry],
    collect: () => {
      const now = performance.eventLoopUtilization();
      this.eventLoopUtilization.set({ worker_thread: this.worker }, performance.eventLoopUtilization(now, this.lastUtilization).utilization);
      this.lastUtilization = now;
    },
  });

  private readonly worker: string;

  constructor(options: MetricsOptions) {
    this.worker = String(options.worker);
    this.shared = options.shared;
    this.memory = options.memory;
    if (options.processFamilies) {
      registerDefaults(this.registry, () => true);
      this.native = new NativeFamilies(this.registry, options.processFamilies.threadpoolSize);
    } else {
      // One of several worker threads: its isolate's families, told apart by worker_thread.
      registerDefaults(this.registry, (name) => !isProcessFamily(name), { worker_thread: this.worker });
      this.native = undefined;
    }
    // Every known series exists from the start, at 0: rate() and dashboards see "none yet".
    for (const kind of Object.keys(ERROR_CODES) as ErrorCode[]) this.errors.inc({ kind }, 0);
    for (const kind of ['final', 'interim']) this.inferenceWait.zero({ kind });
    for (const reason of REFUSAL_REASONS) this.connectionsRefused.inc({ reason }, 0);
    for (const reason of ['not_found', 'upgrade_on_http_route', 'host']) this.httpRejected.inc({ reason }, 0);
    this.connectionsActive.set({ worker_thread: this.worker }, 0);
    for (const route of ['simple', 'segmented']) {
      this.streamsActive.set({ route }, 0); // an idle pod reports 0 streams, not nothing (autoscalers read it)
      this.streamsTotal.inc({ route }, 0);
    }
    this.sampleEventLoop();
  }

  // A timer that should fire every 20 ms: its lateness is the lag every other callback suffers.
  private sampleEventLoop(): void {
    const period = 20;
    let expected = performance.now() + period;
    setInterval(() => {
      const now = performance.now();
      this.eventLoopLag.observe({ worker_thread: this.worker }, Math.max(0, now - expected) / 1000);
      expected = now + period;
    }, period).unref();
  }

  connectionOpened(): void {
    this.connectionsTotal.inc();
    this.connectionsActive.inc({ worker_thread: this.worker });
  }

  connectionClosed(): void {
    this.connectionsActive.dec({ worker_thread: this.worker });
  }

  streamStarted(route: string): void {
    this.shared.streamStarted();
    this.streamsTotal.inc({ route });
    this.streamsActive.inc({ route });
  }

  streamEnded(route: string): void {
    this.shared.streamEnded();
    this.streamsActive.dec({ route });
  }

  countError(code: ErrorCode): void {
    this.errors.inc({ kind: code });
  }

  /** One unit of work of `stage` covering `mediaSeconds` of audio; disposal records it. */
  stage(stage: PipelineStage, mediaSeconds: number): StageRecord {
    return new StageRecord(this, stage, mediaSeconds);
  }

  /** The exposition text, when this registry is the whole process's (WORKERS=1); the native
   *  snapshot is taken once, here. */
  async scrape(): Promise<string> {
    this.native?.refresh();
    return this.registry.metrics();
  }

  /** This thread's families as prom-client JSON, for the primary to aggregate. */
  json(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return this.registry.getMetricsAsJSON();
  }
}

/**
 * Scope guard for one finished unit of stage work, in the handler of its result:
 * `using record = metrics.stage(stage, mediaSeconds); record.ran(result.runSeconds);` and the
 * three histograms are written when the scope ends, however it ends. The worker time comes from
 * the native job (its wait for a worker is not processing). A failed unit is not recorded: a
 * failure has no meaningful RTF.
 */
export class StageRecord implements Disposable {
  private runSeconds: number | undefined;

  constructor(
    private readonly metrics: Metrics,
    private readonly stageName: PipelineStage,
    private readonly mediaSeconds: number,
  ) {}

  ran(runSeconds: number): void {
    this.runSeconds = runSeconds;
  }

  [Symbol.dispose](): void {
    if (this.runSeconds === undefined || this.mediaSeconds <= 0) return;
    this.metrics.mediaDuration.observe(this.stageName, this.mediaSeconds);
    this.metrics.processingDuration.observe(this.stageName, this.runSeconds);
    this.metrics.rtf.observe(this.stageName, this.runSeconds / this.mediaSeconds);
  }
}
