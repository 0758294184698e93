// Percentiles and summaries of latency samples.

interface Summary {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

/** Nearest-rank percentile (`p` in 0…100) of ascending `sorted`; null when empty. */
function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  if (p <= 0) return sorted[0]!;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/** count, p50/p95/p99, max and mean of `values`, rounded to `digits` decimals. */
export function summarize(values: readonly number[], digits = 1): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (v: number | null): number | null => (v === null ? null : Number(v.toFixed(digits)));
  const mean = sorted.length ? sorted.reduce((s, v) => s + v, 0) / sorted.length : null;
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? null),
    mean: round(mean),
  };
}

/** "p50 12.3 / p95 40.1 / p99 52.0 ms (n=120)", or "none". */
export function formatSummary(s: Summary, unit: string): string {
  if (s.count === 0) return 'none';
  return `p50 ${s.p50} / p95 ${s.p95} / p99 ${s.p99} / max ${s.max} ${unit} (n=${s.count})`;
}
