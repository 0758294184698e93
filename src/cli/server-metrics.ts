// Samples the server's CPU and memory from its Prometheus `/metrics` while a load runs.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { authHeaders, getText } from './connect.js';

interface MetricsSample {
  /** performance.now() when the scrape answered. */
  at: number;
  cpuSeconds: number | undefined;
  rssBytes: number | undefined;
}

interface ServerUsage {
  samples: number;
  /** Mean CPU over the run in cores (process_cpu_seconds_total rate), and the highest per interval. */
  cpu_cores_mean: number | null;
  cpu_cores_max: number | null;
  rss_bytes_first: number | null;
  rss_bytes_max: number | null;
  rss_bytes_last: number | null;
  /** Why there are no figures, when scraping failed. */
  error: string | null;
}

/** The value of an unlabelled sample `name` in Prometheus text, or undefined. */
function readMetric(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm').exec(text);
  if (!match) return undefined;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value : undefined;
}

export class MetricsSampler {
  readonly samples: MetricsSample[] = [];
  private lastError: string | undefined;
  private stopped = false;
  private wake: AbortController = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly url: URL, private readonly token: string | undefined, private readonly intervalMs: number, private readonly ca?: string) {}

  start(): void {
    this.loop = this.run();
  }

  /** Takes a last sample and ends the loop. */
  async stop(): Promise<ServerUsage> {
    this.stopped = true;
    this.wake.abort();
    await this.loop;
    await this.scrape();
    return this.usage();
  }

  async scrape(): Promise<void> {
    try {
      const { status, text } = await getText(this.url, authHeaders(this.token), this.ca, 5000);
      if (status < 200 || status > 299) {
        this.lastError = `${this.url.href} answered HTTP ${status}`;
        return;
      }
      this.samples.push({ at: performance.now(), cpuSeconds: readMetric(text, 'process_cpu_seconds_total'), rssBytes: readMetric(text, 'process_resident_memory_bytes') });
    } catch (e) {
      this.lastError = `cannot scrape ${this.url.href}: ${(e as Error).message}`;
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      await this.scrape();
      try {
        await sleep(this.intervalMs, undefined, { signal: this.wake.signal });
      } catch {
        // woken by stop()
      }
    }
  }

  usage(): ServerUsage {
    const cpu = this.samples.filter((s) => s.cpuSeconds !== undefined);
    const rss = this.samples.map((s) => s.rssBytes).filter((v): v is number => v !== undefined);
    const rates: number[] = [];
    for (let i = 1; i < cpu.length; i++) {
      const dt = (cpu[i]!.at - cpu[i - 1]!.at) / 1000;
      if (dt > 0.05) rates.push((cpu[i]!.cpuSeconds! - cpu[i - 1]!.cpuSeconds!) / dt);
    }
    const first = cpu[0];
    const last = cpu.at(-1);
    const span = first && last ? (last.at - first.at) / 1000 : 0;
    const round = (v: number): number => Number(v.toFixed(3));
    return {
      samples: this.samples.length,
      cpu_cores_mean: first && last && span > 0 ? round((last.cpuSeconds! - first.cpuSeconds!) / span) : null,
      cpu_cores_max: rates.length ? round(Math.max(...rates)) : null,
      rss_bytes_first: rss[0] ?? null,
      rss_bytes_max: rss.length ? Math.max(...rss) : null,
      rss_bytes_last: rss.at(-1) ?? null,
      error: this.samples.length ? null : (this.lastError ?? 'no samples'),
    };
  }
}
