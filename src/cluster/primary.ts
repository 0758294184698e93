// WORKERS > 1: the main thread serves nothing itself. It starts the worker threads (each a full
// server on the shared port, src/cluster/worker.ts), writes their logs, answers /metrics with one
// registry (the process's families plus every worker's, aggregated), and runs the shutdown.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AggregatorRegistry, Registry } from 'prom-client';
import { threadpoolSize, type Config } from '../config.js';
import { registerProcessFamilies } from '../metrics/registry.js';
import { freePort } from '../listener.js';
import { coalescedScrape } from '../metrics/coalesce.js';
import type { CertificateInfo } from '../tls.js';
import type { MetricsJson, PrimaryMessage, WorkerData, WorkerMessage } from './messages.js';
import { SharedState } from './shared-state.js';

/** A worker that does not answer a metrics collection in this time fails the scrape. */
const COLLECT_TIMEOUT_MS = 5000;

interface Handle {
  worker: Worker;
  index: number;
  post(message: PrimaryMessage): void;
}

interface Collection {
  parts: MetricsJson[];
  done: () => void;
}

interface Primary {
  readonly port: number;
  /** Rejects when a worker fails or exits on its own (the process should then exit 1). */
  readonly crashed: Promise<never>;
  /** Resolves once every worker has loaded and warmed its models. */
  ready(): Promise<void>;
  /** Every worker re-reads the TLS files (see Server.reload); rejects naming those that failed. */
  reload(): Promise<CertificateInfo>;
  /** Drains every worker (see Server.drain) and resolves with the connections cut in all. */
  drain(graceSeconds: number): Promise<number>;
}

// Under tsx (tests, benches) the worker is TypeScript: its thread registers tsx itself, because
// Node 20 does not run `--import` hooks before a worker's entry module.
function workerEntry(): URL {
  const ext = path.extname(fileURLToPath(import.meta.url));
  const entry = new URL(`./worker${ext}`, import.meta.url);
  if (ext !== '.ts') return entry;
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); ` +
    `await import(${JSON.stringify(entry.href)});`;
  return new URL('data:text/javascript,' + encodeURIComponent(boot));
}

export async function startPrimary(config: Config, workers: number): Promise<Primary> {
  const shared = new SharedState(workers);
  const processRegistry = new Registry();
  const native = registerProcessFamilies(processRegistry, threadpoolSize(config));
  const handles: Handle[] = [];
  const collections = new Map<number, Collection>();
  let nextCollection = 0;
  let readyCount = 0;
  let onReady: () => void = () => {};
  let failed: (error: string) => void = () => {};
  const drained: number[] = [];
  let onDrained: () => void = () => {};
  let stopping = false;
  const reloads = new Map<number, { results: ({ certificate: CertificateInfo } | { error: string; worker: number })[]; done: () => void }>();
  let nextReload = 0;

  // One scrape: every worker's families, summed by prom-client's aggregator (counters and
  // histograms add up; per-thread families carry a worker_thread label), beside the process's.
  async function render(): Promise<string> {
    native.refresh();
    const id = nextCollection++;
    const parts: MetricsJson[] = [];
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        collections.set(id, { parts, done: resolve });
        timer = setTimeout(() => reject(new Error(`a worker did not report its metrics in ${COLLECT_TIMEOUT_MS} ms`)), COLLECT_TIMEOUT_MS);
        for (const h of handles) h.post({ type: 'collect', id });
      });
    } finally {
      clearTimeout(timer);
      collections.delete(id);
    }
    return Registry.merge([processRegistry, AggregatorRegistry.aggregate(parts)]).metrics();
  }
  const scrape = coalescedScrape(render, config.metricsCacheSeconds, processRegistry);

  function onMessage(h: Handle, message: WorkerMessage, listening: (port: number) => void): void {
    switch (message.type) {
      case 'log':
        process.stdout.write(message.line + '\n');
        break;
      case 'listening':
        listening(message.port);
        break;
      case 'ready':
        if (++readyCount === workers) onReady();
        break;
      case 'failed':
        failed(`worker ${h.index}: ${message.error}`);
        break;
      case 'scrape':
        scrape().then(
          (text) => h.post({ type: 'scraped', id: message.id, text }),
          (e: unknown) => h.post({ type: 'scraped', id: message.id, error: e instanceof Error ? e.message : String(e) }),
        );
        break;
      case 'metrics': {
        const c = collections.get(message.id);
        if (!c) break;
        c.parts.push(message.json);
        if (c.parts.length === handles.length) c.done();
        break;
      }
      case 'reloaded': {
        const r = reloads.get(message.id);
        if (!r) break;
        r.results.push('certificate' in message ? { certificate: message.certificate } : { error: message.error, worker: h.index });
        if (r.results.length === handles.length) r.done();
        break;
      }
      case 'drained':
        drained.push(message.cut);
        if (drained.length === workers) onDrained();
        break;
    }
  }

  const failure = new Promise<never>((_, reject) => {
    failed = (error) => reject(new Error(error));
  });
  failure.catch(() => {}); // observed by whoever awaits it next; never unhandled

  function spawnWorker(index: number, port: number): Promise<void> {
    const data: WorkerData = { config, index, workers, port, shared: shared.buffer };
    const worker = new Worker(workerEntry(), { workerData: data });
    const h: Handle = { worker, index, post: (m) => worker.postMessage(m) };
    handles.push(h);
    return new Promise<void>((resolve) => {
      worker.on('message', (m: WorkerMessage) => onMessage(h, m, () => resolve()));
      worker.on('error', (e) => failed(`worker ${index} crashed: ${e.message}`));
      worker.on('exit', (code) => {
        if (!stopping) failed(`worker ${index} exited with ${code}`);
      });
    });
  }

  // uSockets sets SO_REUSEPORT only on a fixed port, so PORT=0 is resolved here first: a port
  // the OS hands out now, which every worker then shares.
  const port = config.port !== 0 ? config.port : await freePort(config.host);
  await Promise.race([Promise.all(Array.from({ length: workers }, (_, i) => spawnWorker(i, port))), failure]);
  const allReady = new Promise<void>((resolve) => { onReady = resolve; });

  return {
    port,
    crashed: failure,
    ready: () => Promise.race([allReady, failure]),
    async reload() {
      const id = nextReload++;
      const results: ({ certificate: CertificateInfo } | { error: string; worker: number })[] = [];
      try {
        await Promise.race([new Promise<void>((resolve) => {
          reloads.set(id, { results, done: resolve });
          for (const h of handles) h.post({ type: 'reload', id });
        }), failure]);
      } finally {
        reloads.delete(id);
      }
      const failed = results.filter((r) => 'error' in r);
      if (failed.length > 0) {
        throw new Error(failed.map((r) => `worker ${r.worker}: ${r.error}`).join('; ') + (failed.length < results.length ? ` (the other ${results.length - failed.length} workers reloaded)` : ''));
      }
      return (results[0] as { certificate: CertificateInfo }).certificate;
    },
    async drain(graceSeconds) {
      stopping = true;
      const all = new Promise<void>((resolve) => { onDrained = resolve; });
      for (const h of handles) h.post({ type: 'drain', graceSeconds });
      await Promise.race([all, failure]);
      return drained.reduce((a, b) => a + b, 0);
    },
  };
}

