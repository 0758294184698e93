// The client CLI's `load` (src/cli/main.ts) in a process of its own, as the capacity and
// hostile-client benches drive it: real-time streams of real speech against one server, and its
// report (the last line it prints, JSON).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './server-process.js';

interface Percentiles { count: number; p50: number | null; p99: number | null }
export interface LoadReport {
  streams_completed: number;
  final_lag_ms: Percentiles;
  interim_staleness_ms: Percentiles;
  errors: Record<string, number>;
  failures: Record<string, number>;
  dropped_connections: number;
  server: { cpu_cores_mean: number | null; rss_bytes_max: number | null };
  client_cpu_cores: number;
  transcripts: { rotated_s: number; finals: { start_time: number; text: string }[] }[];
}

/** `load --streams N --real-time --chunk-bytes 640 --transcripts ...extra FILE` on /api/v1/segmented. */
export async function runLoad(port: number, streams: number, file: string, extra: string[]): Promise<LoadReport> {
  const args = ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'load', '--streams', String(streams), '--real-time',
    '--chunk-bytes', '640', '--transcripts', '--wait', '120', ...extra, '--url', `ws://127.0.0.1:${port}/api/v1/segmented`, file];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  await new Promise((resolve) => child.on('exit', resolve));
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as LoadReport;
}

/** Whether a load run was served whole: every stream completed, no error event, nothing dropped. */
export function servedWhole(r: LoadReport, streams: number): boolean {
  const failed = Object.values(r.errors).reduce((a, b) => a + b, 0) + Object.values(r.failures).reduce((a, b) => a + b, 0);
  return failed === 0 && r.dropped_connections === 0 && r.streams_completed === streams && r.final_lag_ms.count > 0;
}
