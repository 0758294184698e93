// Hostile clients beside live streams: does abuse cost the attacker more than the server? One
// server (defaults, THREADS=2), two phases of the same live load, LIVE real-time streams of real
// speech (bursts: starts over 5 s, test/fixtures/real-speech/, the client CLI's `load`):
//   peer     the live load alone (the same server, same run: the figures abuse is judged against);
//   hostile  the live load while bench/hostile-client.ts attacks from 127.0.0.2 (another address,
//            as attackers are): 3000 sockets that never start, clients sending 1-byte frames as
//            fast as they can, new odd sample rates in a loop, frames over the payload limit, and
//            /metrics scrapes in a loop.
// Through both, the server's RSS is sampled (/proc/PID/status, every 250 ms) and /api/v1/health
// probed on a kept-alive connection every 50 ms. Passes when the live streams keep p99 final lag
// <= 1 s with nothing shed and RSS stays under RSS_BUDGET_MB (default 1024: two thirds of the
// deployment's 1.5 GiB limit). Ratios: hostile against peer, same run.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { runLoad, servedWhole, type LoadReport } from './load-run.js';
import { ROOT, startServerProcess } from './server-process.js';
import { percentile } from './statistics.js';

const quick = process.argv.includes('--quick');
const LIVE = quick ? 2 : Number(process.env['LIVE'] ?? 20);
const RSS_BUDGET_MB = Number(process.env['RSS_BUDGET_MB'] ?? 1024);
const BOUND_MS = 1000;
// --quick (the smoke test): the 11.8 s two-utterance fixture instead of the 75 s recording.
const fixture = path.join(ROOT, quick ? 'test/fixtures/two_utterances_16k_mono_s16.wav' : 'test/fixtures/real-speech/prompts_16k_mono_s16.wav');
// The live load plays the whole 75 s file; the attack covers it, with a few seconds on each side.
const ATTACK_SECONDS = quick ? 14 : 85;
const loadArgs = ['--ramp-up', quick ? '1' : '5'];

const server = await startServerProcess('src/main.ts', { THREADS: '2', MODEL: 'moonshine-tiny' });
const pid = server.child.pid!;
const rssMb = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

/** Samples RSS and health latency until `stop()`: max RSS (MB) and health latencies (ms). */
function watch(port: number): { stop(): Promise<{ rssMaxMb: number; health: number[] }> } {
  let rssMax = rssMb();
  const health: number[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let running = true;
  const rssTimer = setInterval(() => { rssMax = Math.max(rssMax, rssMb()); }, 250);
  const probing = (async () => {
    while (running) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        http.get({ host: '127.0.0.1', port, path: '/api/v1/health', agent }, (res) => { res.resume(); res.once('end', () => resolve()); }).once('error', () => resolve());
      });
      health.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    async stop() {
      running = false;
      await probing;
      clearInterval(rssTimer);
      agent.destroy();
      return { rssMaxMb: Math.round(rssMax), health };
    },
  };
}

interface Phase { load: LoadReport; rssMaxMb: number; healthP99: number; healthP50: number; attack?: unknown }
async function phase(attack: boolean): Promise<Phase> {
  const w = watch(server.port);
  let attacker: Promise<unknown> | undefined;
  if (attack) {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/hostile-client.ts'), String(server.port), String(ATTACK_SECONDS)],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...(quick ? { IDLE: '50', TINY: '2', SCRAPERS: '1' } : {}) } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    attacker = new Promise((resolve) => child.on('exit', () => resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}'))));
    await new Promise((r) => setTimeout(r, quick ? 1000 : 5000)); // the attack in full swing first
  }
  const load = await runLoad(server.port, LIVE, fixture, loadArgs);
  const attackResult = attacker ? await attacker : undefined;
  const { rssMaxMb, health } = await w.stop();
  return { load, rssMaxMb, healthP50: percentile(health, 50), healthP99: percentile(health, 99), attack: attackResult };
}

const fmt = (v: number | null): string => (v === null ? '—' : `${Math.round(v)} ms`);
try {
  const rssIdleMb = Math.round(rssMb());
  const peer = await phase(false);
  console.log(`peer (live load alone): ${LIVE} streams, final lag p50 ${fmt(peer.load.final_lag_ms.p50)} p99 ${fmt(peer.load.final_lag_ms.p99)}, errors ${JSON.stringify(peer.load.errors)}; RSS max ${peer.rssMaxMb} MB (idle ${rssIdleMb} MB); health p50 ${peer.healthP50.toFixed(1)} ms p99 ${peer.healthP99.toFixed(1)} ms`);
  const hostile = await phase(true);
  await new Promise((r) => setTimeout(r, quick ? 1000 : 15_000)); // the attackers' sockets gone, buffers freed
  const rssAfterMb = Math.round(rssMb());
  console.log(`hostile (the same load under attack): final lag p50 ${fmt(hostile.load.final_lag_ms.p50)} p99 ${fmt(hostile.load.final_lag_ms.p99)}, errors ${JSON.stringify(hostile.load.errors)}, failed ${JSON.stringify(hostile.load.failures)}; RSS max ${hostile.rssMaxMb} MB, ${rssAfterMb} MB 15 s after; health p50 ${hostile.healthP50.toFixed(1)} ms p99 ${hostile.healthP99.toFixed(1)} ms`);
  console.log(`attackers (what the server answered): ${JSON.stringify(hostile.attack)}`);
  const p99 = hostile.load.final_lag_ms.p99;
  const pass = servedWhole(hostile.load, LIVE) && p99 !== null && p99 <= BOUND_MS && hostile.rssMaxMb <= RSS_BUDGET_MB;
  console.log(JSON.stringify({
    bench: 'hostile',
    ratio_final_lag_p99_hostile_vs_peer: peer.load.final_lag_ms.p99 && p99 ? Number((p99 / peer.load.final_lag_ms.p99).toFixed(2)) : null,
    ratio_rss_max_hostile_vs_peer: Number((hostile.rssMaxMb / peer.rssMaxMb).toFixed(2)),
    ratio_health_p99_hostile_vs_peer: Number((hostile.healthP99 / peer.healthP99).toFixed(2)),
    pass,
    live_streams: LIVE,
    peer_final_lag_p99_ms: peer.load.final_lag_ms.p99 === null ? null : Math.round(peer.load.final_lag_ms.p99),
    hostile_final_lag_p99_ms: p99 === null ? null : Math.round(p99),
    hostile_live_errors: hostile.load.errors,
    hostile_live_failures: hostile.load.failures,
    rss_idle_mb: rssIdleMb, rss_peer_max_mb: peer.rssMaxMb, rss_hostile_max_mb: hostile.rssMaxMb, rss_after_mb: rssAfterMb, rss_budget_mb: RSS_BUDGET_MB,
    health_p99_ms_peer: Number(peer.healthP99.toFixed(1)), health_p99_ms_hostile: Number(hostile.healthP99.toFixed(1)),
    attackers: hostile.attack,
    peer: 'the same live load on the same server without the attackers, same run',
  }));
} finally {
  await server.stop();
}
