// Starts the real server (`src/main.ts`) in a child process on 127.0.0.1 with an ephemeral port.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface TestServer {
  port: number;
  url(route: string): string;
  http(route: string): string;
  /** Log lines (parsed JSON) seen so far. */
  logs: Record<string, unknown>[];
  stop(): Promise<number | null>;
  process: ChildProcess;
}

/** Resolves once the server logs `until`: `ready` (models loaded and warm) or just `listening`. */
export async function startServer(env: Record<string, string> = {}, until: 'ready' | 'listening' = 'ready'): Promise<TestServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    // METRICS_CACHE_SECONDS=0: a test that acts, then scrapes, must see its action counted, not a
    // render cached from before it (test/integration/prometheus.test.ts tests the cache itself).
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', MODEL: 'stub', METRICS_CACHE_SECONDS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const lines = readline.createInterface({ input: child.stdout });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s; stderr: ${stderr}`)), 60_000);
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry['msg'] === until) {
        clearTimeout(timer);
        resolve(entry['port'] as number);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ${until}; log: ${JSON.stringify(logs.slice(-3))}; stderr: ${stderr}`));
    });
  });
  return {
    port,
    url: (route) => `ws://127.0.0.1:${port}${route}`,
    http: (route) => `http://127.0.0.1:${port}${route}`,
    logs,
    process: child,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/** Runs `src/main.ts` to completion with the given arguments (for --help and bad settings). */
export async function runMain(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}
