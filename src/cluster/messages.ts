// What the primary thread and the worker threads say to each other (src/cluster/primary.ts,
// src/cluster/worker.ts), over each worker's parentPort.
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Config } from '../config.js';
import type { CertificateInfo } from '../tls.js';

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export interface WorkerData {
  config: Config;
  index: number;
  workers: number;
  /** The port to listen on (the first worker's, once it has one for PORT=0). */
  port: number;
  /** SharedState's buffer. */
  shared: SharedArrayBuffer;
}

/** Worker → primary. */
export type WorkerMessage =
  | { type: 'log'; line: string } // log lines travel with the other messages, in order
  | { type: 'listening'; port: number }
  | { type: 'ready' }
  | { type: 'failed'; error: string } // start-up failed: the primary exits 1
  | { type: 'scrape'; id: number } // a /metrics request landed on this worker
  | { type: 'metrics'; id: number; json: MetricsJson } // this worker's share of scrape `id`
  | { type: 'drained'; cut: number }
  | { type: 'reloaded'; id: number; certificate: CertificateInfo } | { type: 'reloaded'; id: number; error: string };

/** Primary → worker. */
export type PrimaryMessage =
  | { type: 'collect'; id: number }
  | { type: 'scraped'; id: number; text: string } | { type: 'scraped'; id: number; error: string }
  | { type: 'drain'; graceSeconds: number }
  | { type: 'reload'; id: number }; // SIGHUP (signals reach the main thread only): re-read the TLS files
