// Overload: clients flood audio far faster than real time while /api/v1/health is probed every
// 20 ms and a few well-behaved clients stream at real time; then the flood stops and a fresh
// real-time stream measures recovery. Reports health latency (target p99 <= 50 ms; a day-one
// server measured 1.4 s here), how the flood was shed (close codes), and the recovery lag.
// Peer: the same probe against an idle server, same run. The flood runs in a process of its own
// (bench/flood-client.ts): in this one its frame masking would delay the probes themselves.
import { spawn } from 'node:child_process';
import path from 'node:path';
import WebSocket from 'ws';
import { readWav, startMessage } from '../test/helpers/wav.js';
import { startServerProcess } from './server-process.js';
import { percentile } from './statistics.js';

const quick = process.argv.includes('--quick');
const FLOODERS = quick ? 4 : 40;
const FLOOD_SECONDS = quick ? 3 : 15;
const wav = readWav('two_utterances_16k_mono_s16.wav');
const model = process.env['MODEL'] ?? 'moonshine-tiny';


async function probe(port: number, seconds: number): Promise<number[]> {
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    await (await fetch(`http://127.0.0.1:${port}/api/v1/health`)).text();
    times.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
  return times;
}

/** One paced real-time stream of the fixture; resolves with the lags of its finals. */
async function realTimeStream(port: number): Promise<{ lags: number[]; errors: string[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/segmented`);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const frame = 3200;
  const sentAt: number[] = [];
  const lags: number[] = [];
  const errors: string[] = [];
  ws.on('message', (data: Buffer) => {
    const e = JSON.parse(data.toString('utf8')) as { type: string; is_final?: boolean; end_time?: number; code?: string };
    if (e.type === 'error') errors.push(e.code ?? '?');
    if (e.is_final === true && e.end_time !== undefined) {
      const sent = sentAt[Math.max(0, Math.ceil(e.end_time * 10 - 1e-9) - 1)];
      if (sent !== undefined) lags.push(performance.now() - sent);
    }
  });
  const closed = new Promise((resolve) => ws.once('close', resolve));
  ws.send(startMessage(wav));
  const t0 = performance.now();
  for (let k = 0; k * frame < wav.data.length; k++) {
    const wait = t0 + k * 100 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    ws.send(wav.data.subarray(k * frame, (k + 1) * frame));
    sentAt.push(performance.now());
  }
  ws.send(JSON.stringify({ request: 'stop', disconnect: true }));
  await closed;
  return { lags, errors };
}

/** The flood, from bench/flood-client.ts in its own process; resolves with its close codes. */
async function flood(port: number): Promise<Record<string, number>> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'flood-client.ts'), String(port), String(FLOODERS), String(FLOOD_SECONDS)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  await new Promise((resolve) => child.on('exit', resolve));
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
}

const server = await startServerProcess('src/main.ts', { MODEL: model, THREADS: '2' });
try {
  const port = server.port;
  const idle = await probe(port, 2);
  const [loaded, live, closes] = await Promise.all([
    probe(port, FLOOD_SECONDS),
    Promise.all([1, 2, 3].map(() => realTimeStream(port))),
    flood(port),
  ]);
  await new Promise((r) => setTimeout(r, 2000)); // the shed work drains
  const recovery = await realTimeStream(port);
  const p99 = percentile(loaded, 99);
  console.log(`model ${model}; ${FLOODERS} clients flooding audio as fast as they can for ${FLOOD_SECONDS} s`);
  console.log(`health while idle: p50 ${percentile(idle, 50).toFixed(1)} ms, p99 ${percentile(idle, 99).toFixed(1)} ms`);
  console.log(`health under flood: p50 ${percentile(loaded, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...loaded).toFixed(1)} ms (target p99 <= 50 ms)`);
  console.log(`flood connections closed by code: ${JSON.stringify(closes)}`);
  const liveLags = live.flatMap((l) => l.lags);
  console.log(`real-time streams during the flood: finals ${liveLags.length}, lag p50 ${percentile(liveLags, 50).toFixed(0)} ms, p99 ${percentile(liveLags, 99).toFixed(0)} ms, errors ${JSON.stringify(live.flatMap((l) => l.errors))}`);
  console.log(`a fresh real-time stream after: finals ${recovery.lags.length}, lag max ${Math.max(...recovery.lags).toFixed(0)} ms, errors ${JSON.stringify(recovery.errors)}`);
  console.log(JSON.stringify({
    bench: 'overload',
    ratio_health_p99_vs_idle: Number((p99 / percentile(idle, 99)).toFixed(2)),
    ratio_health_p99_vs_target: Number((p99 / 50).toFixed(3)),
    health_p99_ms: Number(p99.toFixed(1)),
    health_max_ms: Number(Math.max(...loaded).toFixed(1)),
    health_idle_p99_ms: Number(percentile(idle, 99).toFixed(1)),
    flood_closes: closes,
    live_final_lag_p99_ms: Math.round(percentile(liveLags, 99)),
    recovery_final_lag_max_ms: Math.round(Math.max(...recovery.lags)),
    recovery_errors: recovery.errors.length,
    model,
    peer: 'the same server idle, same run (a day-one server measured 1.4 s p99 here)',
  }));
} finally {
  await server.stop();
}

