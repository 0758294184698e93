// The server's Prometheus registry: service, audio-stage and runtime families, plus the native
// task metrics. Names follow the README's table (brief name -> exported name).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ErrorCode } from '../protocol.js';
import { NativeFamilies } from './native-families.js';

export const PIPELINE_STAGES = ['audio_decoding', 'vad_processing', 'model_inference'] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

// prom-client's defaults include three gauges named like counters (…_total), which promtool
// rejects; the per-type gauges beside them (nodejs_active_handles etc.) carry the same numbers.
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export class Metrics {
  readonly registry = new Registry();
  readonly native: NativeFamilies;

  readonly connectionsActive = new Gauge({ name: 'connections_active', help: 'Open WebSocket connections', registers: [this.registry] });
  readonly connectionsTotal = new Counter({ name: 'connections_total', help: 'WebSocket connections accepted', registers: [this.registry] });
  readonly connectionsRefused = new Counter({
    name: 'connections_refused_total', help: 'WebSocket upgrades (and, with AUTH_ALL_ROUTES, HTTP requests) refused, by reason', labelNames: ['reason'], registers: [this.registry],
  });
  readonly streamsActive = new Gauge({ name: 'streams_active', help: 'Streams between start and stop', labelNames: ['route'], registers: [this.registry] });
  readonly streamsTotal = new Counter({ name: 'streams_total', help: 'Streams started', labelNames: ['route'], registers: [this.registry] });
  readonly audioReceived = new Counter({
    name: 'audio_received_seconds_total', help: 'Seconds of audio received from clients (per stream, not per channel)', registers: [this.registry],
  });
  readonly eventsSent = new Counter({ name: 'events_sent_total', help: 'Events sent to clients, by type', labelNames: ['type'], registers: [this.registry] });
  readonly errors = new Counter({ name: 'errors_total', help: 'Errors reported to clients, by kind (the error event code)', labelNames: ['kind'], registers: [this.registry] });

  // Per-stage work: how much audio a unit of work covered, how long it ran, and the ratio.
  readonly mediaDuration = new Histogram({
    name: 'media_duration_seconds', help: 'Audio covered by one unit of work, by pipeline stage', labelNames: ['pipeline_stage'],
    buckets: [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30], registers: [this.registry],
  });
  readonly processingDuration = new Histogram({
    name: 'processing_duration_seconds', help: 'Worker time of one unit of work, by pipeline stage', labelNames: ['pipeline_stage'],
    buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry],
  });
  readonly rtf = new Histogram({
    name: 'rtf', help: 'Real-time factor (processing / media duration) of one unit of work, by pipeline stage', labelNames: ['pipeline_stage'],
    buckets: [0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 15], registers: [this.registry],
  });

  constructor(threadpoolSize: number) {
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
    this.native = new NativeFamilies(this.registry, threadpoolSize);
  }

  /** Streams live now, all routes (for the health route). */
  liveStreams = 0;

  streamStarted(route: string): void {
    this.liveStreams++;
    this.streamsTotal.inc({ route });
    this.streamsActive.inc({ route });
  }

  streamEnded(route: string): void {
    this.liveStreams--;
    this.streamsActive.dec({ route });
  }

  countError(code: ErrorCode): void {
    this.errors.inc({ kind: code });
  }

  /** One unit of work of `stage` covering `mediaSeconds` of audio; disposal records it. */
  stage(stage: PipelineStage, mediaSeconds: number): StageRecord {
    return new StageRecord(this, stage, mediaSeconds);
  }

  /** The exposition text; the native snapshot is taken once, here. */
  async scrape(): Promise<string> {
    this.native.refresh();
    return this.registry.metrics();
  }
}

/**
 * Scope guard for one unit of stage work: `using record = metrics.stage(...)`, then
 * `record.ran(result.runSeconds)` once the work reports its worker time. Work that never
 * reported (it failed) is not recorded: a failure has no meaningful RTF.
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
    const labels = { pipeline_stage: this.stageName };
    this.metrics.mediaDuration.observe(labels, this.mediaSeconds);
    this.metrics.processingDuration.observe(labels, this.runSeconds);
    this.metrics.rtf.observe(labels, this.runSeconds / this.mediaSeconds);
  }
}
