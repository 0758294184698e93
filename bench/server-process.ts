// Starts a server under test (this project's src/main.ts, or a peer in bench/peers/) in its own
// process, on 127.0.0.1 and a free port, and waits for the log line that says it is serving.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

export const ROOT = path.resolve(import.meta.dirname, '..');

export interface ServerProcess {
  port: number;
  child: ChildProcess;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/** `until`: the log message to wait for — `ready` (models warm) for our server. */
export async function startServerProcess(script: string, env: Record<string, string> = {}, until = 'ready'): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, script)], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not log "${until}" in 60 s`)), 60_000);
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === until && entry.port !== undefined) {
          clearTimeout(timer);
          resolve(entry.port);
        }
      } catch { /* not a log line */ }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before it logged "${until}"`));
    });
  });
  return {
    port,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
