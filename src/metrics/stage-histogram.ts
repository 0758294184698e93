// A histogram family labelled by pipeline stage, where each stage has its own buckets: one unit
// of decoding covers milliseconds and runs for microseconds, one utterance covers seconds and
// runs for tens of milliseconds, and shared buckets would be blind to one or the other.
// (prom-client's Histogram takes one bucket list per family.)
import type { Registry } from 'prom-client';

interface Series {
  buckets: number[];
  counts: number[];
  sum: number;
  count: number;
}

interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

export class StageHistogram<Stage extends string> {
  private readonly series = new Map<Stage, Series>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    bucketsByStage: Record<Stage, number[]>,
  ) {
    for (const [stage, buckets] of Object.entries(bucketsByStage) as [Stage, number[]][]) {
      this.series.set(stage, { buckets: [...buckets].sort((a, b) => a - b), counts: buckets.map(() => 0), sum: 0, count: 0 });
    }
    registry.registerMetric(this as never);
  }

  get type(): 'histogram' {
    return 'histogram';
  }

  observe(stage: Stage, value: number): void {
    const s = this.series.get(stage);
    if (!s) return;
    const i = s.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  // What prom-client's Registry reads at each scrape.
  get(): { name: string; help: string; type: 'histogram'; values: Sample[]; aggregator: 'sum' } {
    const values: Sample[] = [];
    for (const [stage, s] of this.series) {
      let cumulative = 0;
      s.buckets.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, pipeline_stage: stage }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', pipeline_stage: stage }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: { pipeline_stage: stage }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { pipeline_stage: stage }, value: s.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}
