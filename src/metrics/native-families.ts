// Metric families whose values live in native counters. They are read from one snapshot taken
// at the start of each scrape (no timers, no per-family native calls).
import type { Registry } from 'prom-client';
import { addon, type NativeSnapshot } from '../native/binding.js';

type MetricType = 'counter' | 'gauge';
interface Sample {
  labels: Record<string, string | number>;
  value: number;
}

// The shape prom-client's Registry expects of a registered metric.
class SnapshotFamily {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    private readonly read: (snap: NativeSnapshot) => Sample[],
    private readonly current: () => NativeSnapshot,
  ) {}

  get(): { name: string; help: string; type: MetricType; values: Sample[]; aggregator: 'sum' } {
    return { name: this.name, help: this.help, type: this.type, values: this.read(this.current()), aggregator: 'sum' };
  }
}

export class NativeFamilies {
  private snap: NativeSnapshot;
  private readonly schema = addon.taskMetricSchema();

  constructor(registry: Registry, threadpoolSize: number) {
    this.snap = addon.snapshot();
    const current = (): NativeSnapshot => this.snap;
    const { subsystems, fields } = this.schema;
    const add = (name: string, help: string, type: MetricType, read: (s: NativeSnapshot) => Sample[]): void => {
      registry.registerMetric(new SnapshotFamily(name, help, type, read, current) as never);
    };
    fields.forEach((field, f) => {
      add(field.name, `${field.help} (tokio-metrics: ${field.field})`, field.kind, (s) =>
        subsystems.map((task, t) => ({ labels: { task }, value: s.task[t * fields.length + f] ?? 0 })),
      );
    });
    add('threadpool_size', 'libuv threadpool workers available to native jobs', 'gauge', () => [
      { labels: {}, value: threadpoolSize },
    ]);
    add('threadpool_jobs_queued', 'Native jobs submitted and waiting for a worker', 'gauge', (s) => [
      { labels: {}, value: s.jobsQueued },
    ]);
    add('threadpool_jobs_running', 'Native jobs running on a worker now (live tasks)', 'gauge', (s) => [
      { labels: {}, value: s.jobsRunning },
    ]);
    add('models_loaded', 'Model instances loaded in the process, by kind; every worker thread shares them', 'gauge', (s) => [
      { labels: { kind: 'speech' }, value: s.modelsLoaded },
      { labels: { kind: 'vad' }, value: s.vadsLoaded },
    ]);
    add('resampler_filter_banks', 'Resampler filter banks alive in the process (one per input rate in use or cached; shared by every stream and worker thread at that rate)', 'gauge', (s) => [
      { labels: {}, value: s.resampler.tables },
    ]);
    add('resampler_filter_bank_bytes', 'Native heap held by the resampler filter banks (also reported to V8 as external memory)', 'gauge', (s) => [
      { labels: {}, value: s.resampler.tableBytes },
    ]);
    add('resampler_filter_designs_total', 'Resampler filter banks designed, by the kind of thread that designed them (js must stay 0: a design blocks that thread for milliseconds)', 'counter', (s) => [
      { labels: { thread: 'worker' }, value: s.resampler.designs - s.resampler.designsOnJsThread },
      { labels: { thread: 'js' }, value: s.resampler.designsOnJsThread },
    ]);
    add('threadpool_worker_busy_seconds_total', 'Time each threadpool worker spent running native jobs', 'counter', (s) =>
      Array.from(s.workerBusySeconds, (value, worker) => ({ labels: { worker }, value })),
    );
  }

  /** Takes the snapshot this scrape reports. */
  refresh(): void {
    this.snap = addon.snapshot();
  }
}

/** Panics counted in every subsystem of the process since start, read now (for health: one
 *  native call summing a few atomics, not a snapshot of every counter). */
export function nativePanics(): number {
  return addon.panicTotal();
}
