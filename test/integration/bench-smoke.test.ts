// Keeps the benchmarks from rotting: every bench registered in bench/run.ts runs with --quick
// (tiny sizes, nothing recorded in bench/RESULTS.md) through bench/run.ts exactly as
// `npm run bench -- NAME --quick` would, and must exit 0 with its JSON result as the last line,
// carrying its name and at least one numeric ratio against its peer. A bench that cannot run
// (a missing compiler, package or model) fails here with its own message; nothing is skipped.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RUNNER = path.join(ROOT, 'bench/run.ts');
// Generous: a first run may build a harness with g++. Nothing is installed (the resampler bench
// installs its peers only when given --install-peers, which this test never passes).
const TIMEOUT_MS = 10 * 60_000;

/** BENCHES as bench/run.ts declares it (importing run.ts would run every bench). */
function registeredBenches(): string[] {
  const source = readFileSync(RUNNER, 'utf8');
  const match = /const\s+BENCHES\s*=\s*\[([^\]]*)\]/.exec(source);
  assert.ok(match, 'bench/run.ts no longer declares `const BENCHES = [...]`: update this test');
  const names = [...match[1]!.matchAll(/['"]([^'"]+)['"]/g)].map((m) => m[1]!);
  assert.ok(names.length > 0, 'bench/run.ts declares no benches');
  return names;
}

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number; timedOut: boolean }

function runQuick(name: string): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['NODE_TEST_CONTEXT']; // the bench is not a test file
  const started = performance.now();
  // Its own process group: a bench that hangs or dies is cleaned up with every server it started.
  const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, name, '--quick'], {
    cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch { /* already gone */ }
  };
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup('SIGKILL');
  }, TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      killGroup('SIGTERM'); // servers a failed bench left behind
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started, timedOut });
    });
  });
}

/** All of `text` if short, else its head (where a crash usually names its cause) and its tail. */
function excerpt(text: string, head = 30, tail = 30): string {
  const lines = text.trimEnd().split('\n');
  if (lines.length <= head + tail) return lines.join('\n');
  return [...lines.slice(0, head), `[… ${lines.length - head - tail} lines …]`, ...lines.slice(-tail)].join('\n');
}

describe('benchmarks (--quick)', () => {
  for (const name of registeredBenches()) {
    it(`${name} runs and ends with its JSON result`, { timeout: TIMEOUT_MS + 30_000 }, async (t) => {
      const run = await runQuick(name);
      const context = `\n--- stderr ---\n${excerpt(run.stderr)}\n--- stdout ---\n${excerpt(run.stdout, 5, 10)}`;
      assert.ok(!run.timedOut, `bench ${name} --quick did not finish in ${TIMEOUT_MS / 1000} s${context}`);
      assert.equal(run.code, 0,
        `bench ${name} --quick exited with ${run.code ?? run.signal}; if a tool or package is missing, install it (CI does)${context}`);
      const last = run.stdout.trim().split('\n').at(-1) ?? '';
      let result: Record<string, unknown>;
      try {
        result = JSON.parse(last) as Record<string, unknown>;
      } catch {
        assert.fail(`bench ${name}: the last stdout line is not JSON: ${last.slice(0, 300)}`);
      }
      assert.equal(result['bench'], name, `bench ${name}: the JSON result names ${JSON.stringify(result['bench'])}`);
      const ratios = Object.entries(result).filter(([k, v]) => k.startsWith('ratio_') && typeof v === 'number' && Number.isFinite(v));
      assert.ok(ratios.length > 0, `bench ${name}: no numeric ratio_* key against its peer in ${last.slice(0, 300)}`);
      t.diagnostic(`bench ${name} --quick: ${(run.ms / 1000).toFixed(1)} s, ${ratios.map(([k, v]) => `${k}=${String(v)}`).join(' ')}`);
    });
  }
});
