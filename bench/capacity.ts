// How many concurrent real-time streams the server holds on this machine: for each scenario, N
// clients stream the fixture at speech speed in 100 ms frames for a while; N passes when no
// stream errs or drops and the p99 lag of its results stays within the bound (lag = a result's
// arrival minus the moment the audio at its end_time had been sent). N steps up until it fails.
// The load generator runs in this process, on the same 2 cores as the server: its own CPU is
// reported beside the server's.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import WebSocket from 'ws';
import { readWav, startMessage } from '../test/helpers/wav.js';

const quick = process.argv.includes('--quick');
const only = process.argv.find((a) => a.startsWith('--scenario='))?.slice('--scenario='.length);
const root = path.resolve(import.meta.dirname, '..');
const FRAME_SECONDS = 0.1;
const RUN_SECONDS = quick ? 4 : 20;

interface Scenario {
  name: string;
  route: 'simple' | 'segmented';
  env: Record<string, string>;
  steps: number[];
  boundMs: number;
  goal: number;
}

const SCENARIOS: Scenario[] = [
  { name: 'stub_simple', route: 'simple', env: { MODEL: 'stub' }, steps: quick ? [20] : [500, 1000, 1500, 2000, 2500, 3000], boundMs: 100, goal: 2000 },
  { name: 'stub_segmented', route: 'segmented', env: { MODEL: 'stub' }, steps: quick ? [20] : [200, 400, 600, 800, 1000, 1200], boundMs: 1000, goal: 600 },
  { name: 'moonshine_segmented', route: 'segmented', env: { MODEL: 'moonshine-tiny' }, steps: quick ? [4] : [20, 40, 60, 80, 100, 120], boundMs: 1000, goal: 80 },
];

const wav = readWav('two_utterances_16k_mono_s16.wav');
const frameBytes = Math.round(wav.sampleRate * FRAME_SECONDS) * 2;

async function startServer(env: Record<string, string>): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', THREADS: '2', MAX_CONNECTIONS: '20000', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'ready') resolve(entry.port!);
      } catch { /* not a log line */ }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { port, child };
}

async function serverStats(port: number): Promise<{ cpu: number; rss: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const get = (name: string) => Number(text.split('\n').find((l) => l.startsWith(name + ' '))?.split(' ')[1] ?? NaN);
  return { cpu: get('process_cpu_seconds_total'), rss: get('process_resident_memory_bytes') };
}

interface Stream {
  ws: WebSocket;
  sentAt: number[]; // wall time each frame was sent
  next: number; // next frame index
  startAt: number;
  lags: number[];
  errors: string[];
  closed: boolean;
  finalsCounted: boolean;
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function runStep(port: number, scenario: Scenario, n: number): Promise<{ pass: boolean; p50: number; p99: number; results: number; errors: number; dropped: number; serverCpu: number; clientCpu: number; rssMb: number }> {
  const url = `ws://127.0.0.1:${port}/api/v1/${scenario.route}`;
  const streams: Stream[] = [];
  // Connect in batches so the accept queue is never the bottleneck being measured.
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => new Promise<Stream>((resolve, reject) => {
      const ws = new WebSocket(url);
      const stream: Stream = { ws, sentAt: [], next: 0, startAt: 0, lags: [], errors: [], closed: false, finalsCounted: false };
      ws.once('open', () => resolve(stream));
      ws.once('error', reject);
      ws.on('close', () => { stream.closed = true; });
      ws.on('message', (data: Buffer) => {
        const event = JSON.parse(data.toString('utf8')) as { type: string; end_time?: number; is_final?: boolean; code?: string };
        if (event.type === 'error') stream.errors.push(event.code ?? 'unknown');
        if (event.type === 'segment' && event.is_final !== false && event.end_time !== undefined) {
          const frame = Math.max(0, Math.ceil(event.end_time / FRAME_SECONDS - 1e-9) - 1);
          const sent = stream.sentAt[frame];
          if (sent !== undefined) stream.lags.push(performance.now() - sent);
        }
      });
    })));
    streams.push(...batch);
  }
  const statsBefore = await serverStats(port);
  const cpuBefore = process.cpuUsage();
  const t0 = performance.now() + 200;
  // Starts spread over one frame period, so the load is even rather than in bursts.
  streams.forEach((s, i) => { s.startAt = t0 + (i / n) * FRAME_SECONDS * 1000; });
  const totalFrames = Math.round(RUN_SECONDS / FRAME_SECONDS);
  const audioFrames = Math.floor(wav.data.length / frameBytes);
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      let pending = false;
      for (const s of streams) {
        if (s.closed || s.next >= totalFrames) continue;
        pending = true;
        if (s.next === 0 && now >= s.startAt && s.sentAt.length === 0) s.ws.send(startMessage(wav));
        while (s.next < totalFrames && now >= s.startAt + s.next * FRAME_SECONDS * 1000) {
          const k = s.next % audioFrames; // the fixture, looped: continuous speech with its pauses
          s.ws.send(wav.data.subarray(k * frameBytes, (k + 1) * frameBytes));
          s.sentAt.push(performance.now());
          s.next++;
          // Each stream stops right after its last frame: results due at stop are lags too.
          if (s.next === totalFrames) s.ws.send(JSON.stringify({ request: 'stop', disconnect: true }));
        }
      }
      if (!pending) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  const deadline = performance.now() + 15_000;
  while (streams.some((s) => !s.closed) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const statsAfter = await serverStats(port);
  const clientCpu = process.cpuUsage(cpuBefore);
  const dropped = streams.filter((s) => !s.closed).length;
  for (const s of streams) if (!s.closed) s.ws.terminate();
  const lags = streams.flatMap((s) => s.lags);
  const errors = streams.reduce((n, s) => n + s.errors.length, 0);
  const p99 = percentile(lags, 99);
  const elapsed = RUN_SECONDS + 0.2;
  return {
    pass: errors === 0 && dropped === 0 && lags.length > 0 && p99 <= scenario.boundMs,
    p50: percentile(lags, 50),
    p99,
    results: lags.length,
    errors,
    dropped,
    serverCpu: (statsAfter.cpu - statsBefore.cpu) / elapsed,
    clientCpu: (clientCpu.user + clientCpu.system) / 1e6 / elapsed,
    rssMb: statsAfter.rss / 2 ** 20,
  };
}

const summary: Record<string, number | string> = {};
for (const scenario of SCENARIOS.filter((s) => !only || s.name === only)) {
  const { port, child } = await startServer(scenario.env);
  let best = 0;
  try {
    for (const n of scenario.steps) {
      const r = await runStep(port, scenario, n);
      console.log(`${scenario.name.padEnd(20)} ${String(n).padStart(5)} streams: ${r.pass ? 'PASS' : 'FAIL'}  p50 ${r.p50.toFixed(0)} ms  p99 ${r.p99.toFixed(0)} ms (bound ${scenario.boundMs})  results ${r.results}  errors ${r.errors}  dropped ${r.dropped}  server CPU ${(r.serverCpu * 100).toFixed(0)}%  load-generator CPU ${(r.clientCpu * 100).toFixed(0)}%  server RSS ${r.rssMb.toFixed(0)} MB`);
      if (!r.pass) break;
      best = n;
      summary[`${scenario.name}_p99_ms`] = Number(r.p99.toFixed(1));
    }
  } finally {
    child.kill();
  }
  summary[`${scenario.name}_streams`] = best;
  summary[`ratio_vs_goal_${scenario.name}`] = Number((best / scenario.goal).toFixed(3));
  console.log(`${scenario.name}: ${best} real-time streams (goal ${scenario.goal})`);
}
const ratios = Object.fromEntries(Object.entries(summary).filter(([k]) => k.startsWith('ratio')));
const rest = Object.fromEntries(Object.entries(summary).filter(([k]) => !k.startsWith('ratio')));
console.log(JSON.stringify({ bench: 'capacity', ...ratios, ...rest, peer: 'goals in ARCHITECTURE.md (the day-one server holds 20-30 Moonshine streams)', frame_ms: FRAME_SECONDS * 1000, run_seconds: RUN_SECONDS }));
