// Overload, in three phases, each while /api/v1/health is probed every 20 ms (alternately on one
// kept-alive connection, as a load balancer does, and on a fresh connection, as a kubelet does)
// and three well-behaved clients stream at real time, each followed by a fresh real-time stream
// that measures recovery:
//   flood        40 clients send audio far faster than real time, reconnecting when shed;
//   flood_nice   the same flood with the load generator at nice 19: on these 2 cores it would
//                otherwise take a core from the server at equal priority, which clients on other
//                machines never do; this phase is the one the target is judged on;
//   2x_capacity  twice the measured Moonshine capacity (bench/results.json, capacity: real speech,
//                bursts, no interims) of real-time real-speech streams (the client CLI's `load`,
//                its own process): the streams kept must hold p99 <= 2 s, the rest be refused.
// Reports health latency (target p99 <= 50 ms; a day-one server measured 1.4 s here), how the
// flood was shed (close codes), the live streams' final lag and the recovery lag.
// Peer: the same probe against an idle server, same run. The flood runs in a process of its own
// (bench/flood-client.ts): in this one its frame masking would delay the probes themselves.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import { readWav, startMessage } from '../test/helpers/wav.js';
import { ROOT, startServerProcess } from './server-process.js';
import { percentile } from './statistics.js';

const quick = process.argv.includes('--quick');
const FLOODERS = quick ? 4 : 40;
// PHASE_SECONDS=N lengthens each phase (more probes, a steadier p99) when comparing variants.
const FLOOD_SECONDS = quick ? 3 : Number(process.env['PHASE_SECONDS'] ?? 15);
// Twice the capacity bench's latest figure for Moonshine on real speech, bursts, no interims
// (bench/results.json), so this phase follows the engine as it improves.
const OVER_CAPACITY_STREAMS = quick ? 8 : 2 * measuredCapacity();
const wav = readWav('two_utterances_16k_mono_s16.wav');
const model = process.env['MODEL'] ?? 'moonshine-tiny';
// PHASES=2x_capacity,flood runs only those (for investigating one); all three by default.
const only = (process.env['PHASES'] ?? '').split(',').filter((p) => p !== '');


function measuredCapacity(): number {
  const results = JSON.parse(readFileSync(path.join(ROOT, 'bench/results.json'), 'utf8')) as { capacity?: { result?: Record<string, unknown> } };
  const streams = results.capacity?.result?.['bursts_off_ours_streams'];
  if (typeof streams !== 'number' || streams <= 0) throw new Error('bench/results.json has no capacity figure (bursts_off_ours_streams): run `npm run bench -- capacity` first');
  return streams;
}

/** One health request on a connection of its own, as a kubelet probes: connect, GET, close. */
function freshProbe(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/api/v1/health', agent: false }, (res) => {
      res.resume();
      res.once('end', resolve);
    }).once('error', reject);
  });
}

/**
 * Probes health every 20 ms, alternating two kinds: on one kept-alive connection (a load
 * balancer or Prometheus), and on a fresh connection each time (a kubelet), which also waits for
 * the accept. Resolves with each kind's latencies.
 */
async function probe(port: number, seconds: number): Promise<{ kept: number[]; fresh: number[] }> {
  const kept: number[] = [];
  const fresh: number[] = [];
  await (await fetch(`http://127.0.0.1:${port}/api/v1/health`)).text(); // the connection, untimed
  const end = performance.now() + seconds * 1000;
  for (let k = 0; performance.now() < end; k++) {
    const t = performance.now();
    if (k % 2 === 0) {
      await (await fetch(`http://127.0.0.1:${port}/api/v1/health`)).text();
      kept.push(performance.now() - t);
    } else {
      await freshProbe(port);
      fresh.push(performance.now() - t);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { kept, fresh };
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

/** A child process (node + tsx) running `script`, at `nice` when above 0; resolves with its last stdout line. */
async function runChild(script: string, args: string[], nice = 0): Promise<string> {
  const node = [process.execPath, '--import', 'tsx', path.join(ROOT, script), ...args];
  const [command, ...rest] = nice > 0 ? ['nice', '-n', String(nice), ...node] : node;
  const child = spawn(command!, rest, { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  await new Promise((resolve) => child.on('exit', resolve));
  return out.trim().split('\n').at(-1) ?? '{}';
}

interface Phase {
  health_p50_ms: number;
  health_p99_ms: number;
  health_max_ms: number;
  health_fresh_p50_ms: number;
  health_fresh_p99_ms: number;
  live_finals: number;
  live_final_lag_p99_ms: number;
  live_errors: string[];
  recovery_final_lag_max_ms: number;
  recovery_errors: number;
  flood_closes?: Record<string, number>;
  load_errors?: Record<string, number>;
  /** 2x_capacity: the streams that were kept (the load's finals) and why the others ended. */
  kept_final_lag_p99_ms?: number;
  load_failures?: Record<string, number>;
}

/** One phase: `traffic` runs while health is probed and three real-time streams run beside it. */
async function phase(port: number, name: string, traffic: () => Promise<string>): Promise<Phase> {
  const [loaded, live, report] = await Promise.all([
    probe(port, FLOOD_SECONDS),
    Promise.all([1, 2, 3].map(() => realTimeStream(port))),
    traffic(),
  ]);
  await new Promise((r) => setTimeout(r, 2000)); // the shed work drains
  const recovery = await realTimeStream(port);
  const liveLags = live.flatMap((l) => l.lags);
  const result: Phase = {
    health_p50_ms: Number(percentile(loaded.kept, 50).toFixed(1)),
    health_p99_ms: Number(percentile(loaded.kept, 99).toFixed(1)),
    health_max_ms: Number(Math.max(...loaded.kept).toFixed(1)),
    health_fresh_p50_ms: Number(percentile(loaded.fresh, 50).toFixed(1)),
    health_fresh_p99_ms: Number(percentile(loaded.fresh, 99).toFixed(1)),
    live_finals: liveLags.length,
    live_final_lag_p99_ms: Math.round(percentile(liveLags, 99)),
    live_errors: live.flatMap((l) => l.errors),
    recovery_final_lag_max_ms: Math.round(Math.max(...recovery.lags)),
    recovery_errors: recovery.errors.length,
  };
  if (name.startsWith('flood')) result.flood_closes = JSON.parse(report) as Record<string, number>;
  else {
    const load = JSON.parse(report) as { errors: Record<string, number>; failures: Record<string, number>; final_lag_ms: { p99: number } };
    result.load_errors = load.errors;
    result.load_failures = load.failures;
    result.kept_final_lag_p99_ms = Math.round(load.final_lag_ms.p99);
  }
  console.log(`${name}: health p50 ${result.health_p50_ms} ms, p99 ${result.health_p99_ms} ms, max ${result.health_max_ms} ms; fresh connections p50 ${result.health_fresh_p50_ms} ms, p99 ${result.health_fresh_p99_ms} ms (target p99 <= 50 ms); ` +
    `live finals ${result.live_finals}, lag p99 ${result.live_final_lag_p99_ms} ms, errors ${JSON.stringify(result.live_errors)}; ` +
    `recovery lag max ${result.recovery_final_lag_max_ms} ms, errors ${result.recovery_errors}; ` +
    (result.flood_closes ? `flood closes by code ${JSON.stringify(result.flood_closes)}` : `load errors ${JSON.stringify(result.load_errors)}, failed streams ${JSON.stringify(result.load_failures)}, kept streams' final lag p99 ${result.kept_final_lag_p99_ms} ms (target <= 2000)`));
  return result;
}

const server = await startServerProcess('src/main.ts', { MODEL: model, THREADS: '2' });
try {
  const port = server.port;
  const idle = await probe(port, 2);
  const url = `ws://127.0.0.1:${port}/api/v1/segmented`;
  const flood = (nice: number) => () => runChild('bench/flood-client.ts', [String(port), String(FLOODERS), String(FLOOD_SECONDS)], nice);
  const traffic: Record<string, () => Promise<string>> = {
    flood: flood(0),
    flood_nice: flood(19),
    // Real speech in 20 ms frames, as the capacity bench measures it.
    '2x_capacity': () => runChild('src/cli/main.ts', ['load', '--streams', String(OVER_CAPACITY_STREAMS),
      '--ramp-up', '5', '--duration', String(Math.max(FLOOD_SECONDS, quick ? 3 : 40)), '--real-time', '--chunk-bytes', '640', '--url', url,
      path.join(ROOT, 'test/fixtures/real-speech/prompts_16k_mono_s16.wav')]),
  };
  const phases: Record<string, Phase> = {};
  for (const [name, run] of Object.entries(traffic)) {
    if (only.length === 0 || only.includes(name)) phases[name] = await phase(port, name, run);
  }
  console.log(`model ${model}; health while idle: p50 ${percentile(idle.kept, 50).toFixed(1)} ms, p99 ${percentile(idle.kept, 99).toFixed(1)} ms`);
  const judged = phases['flood_nice']?.health_p99_ms ?? NaN;
  console.log(JSON.stringify({
    bench: 'overload',
    ratio_health_p99_vs_target: Number((judged / 50).toFixed(3)),
    ratio_health_p99_vs_idle: Number((judged / percentile(idle.kept, 99)).toFixed(2)),
    // The same flood at equal priority, the worse of the two probe kinds.
    ratio_flood_equal_priority_vs_target: phases['flood']
      ? Number((Math.max(phases['flood'].health_p99_ms, phases['flood'].health_fresh_p99_ms) / 50).toFixed(3)) : null,
    health_idle_p99_ms: Number(percentile(idle.kept, 99).toFixed(1)),
    ...phases,
    flooders: FLOODERS,
    over_capacity_streams: OVER_CAPACITY_STREAMS,
    model,
    peer: 'the same server idle, same run (a day-one server measured 1.4 s p99 here)',
  }));
} finally {
  await server.stop();
}
