// How many concurrent real-time streams the server holds on this machine: for each scenario, N
// clients stream the fixture (looped: speech with its pauses) at speech speed in 100 ms frames,
// their starts spread evenly over one fixture length, so that their utterances end at independent
// moments as independent speakers' do (started within 5 s, as before 2026-11-27, every stream's
// utterance ended in the same 5 s: a synchronized burst 2.4x the average load); N passes when no
// stream errs or drops and the p99 lag of its final results stays within the bound (lag = a
// result's arrival minus the moment the audio at its end_time had been sent; on the simple route
// every window counts). N steps up until it fails. The load is the client CLI's `load` in its own
// process, on the same 2 cores as the server: its CPU is reported beside the server's.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { readWav } from '../test/helpers/wav.js';
import { ROOT as root, startServerProcess } from './server-process.js';

const quick = process.argv.includes('--quick');
const only = process.argv.find((a) => a.startsWith('--scenario='))?.slice('--scenario='.length);
const FRAME_SECONDS = 0.1;
const FIXTURE_SECONDS = readWav('two_utterances_16k_mono_s16.wav').seconds;
const RAMP_SECONDS = quick ? 1 : Math.round(FIXTURE_SECONDS);

interface Scenario {
  name: string;
  route: 'simple' | 'segmented';
  env: Record<string, string>;
  steps: number[];
  boundMs: number;
  goal: number;
}

// Each stub scenario runs twice: on one worker thread (WORKERS=1, the server on the main thread)
// and on the default, one worker per core; the one-worker run is the peer of the other.
const STUB_SIMPLE_STEPS = quick ? [20] : [500, 750, 1000, 1250, 1500, 2000, 2500, 3000];
const STUB_SEGMENTED_STEPS = quick ? [20] : [200, 400, 600, 800, 1000, 1200, 1400];
const SCENARIOS: Scenario[] = [
  { name: 'stub_simple_1_worker', route: 'simple', env: { MODEL: 'stub', WORKERS: '1' }, steps: STUB_SIMPLE_STEPS, boundMs: 100, goal: 2000 },
  { name: 'stub_simple', route: 'simple', env: { MODEL: 'stub' }, steps: STUB_SIMPLE_STEPS, boundMs: 100, goal: 2000 },
  { name: 'stub_segmented_1_worker', route: 'segmented', env: { MODEL: 'stub', WORKERS: '1' }, steps: STUB_SEGMENTED_STEPS, boundMs: 1000, goal: 600 },
  { name: 'stub_segmented', route: 'segmented', env: { MODEL: 'stub' }, steps: STUB_SEGMENTED_STEPS, boundMs: 1000, goal: 600 },
  { name: 'moonshine_segmented', route: 'segmented', env: { MODEL: 'moonshine-tiny' }, steps: quick ? [4] : [20, 40, 60, 80, 100, 120], boundMs: 1000, goal: 80 },
];

const FIXTURE = path.join(root, 'test/fixtures/two_utterances_16k_mono_s16.wav');
const FRAME_BYTES = Math.round(16_000 * FRAME_SECONDS) * 2; // 100 ms of 16 kHz s16


interface LoadReport {
  final_lag_ms: { count: number; p50: number; p99: number };
  errors: Record<string, number>;
  failures: Record<string, number>;
  dropped_connections: number;
  streams_started: number;
  server: { cpu_cores_mean: number; rss_bytes_max: number };
  client_cpu_cores: number;
}

/** One step: the client CLI's `load` in its own process, N real-time streams. */
async function runStep(port: number, scenario: Scenario, n: number): Promise<{ pass: boolean; report: LoadReport }> {
  const args = ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'load', '--streams', String(n),
    // Each stream sends the fixture twice over (two streams in a row): the ends spread out as the
    // starts do. A --duration cut would stop every stream in the same instant, a herd of stops
    // that real traffic never sends and that would be all the p99 measured.
    '--ramp-up', String(RAMP_SECONDS), ...(quick ? ['--duration', '4'] : ['--repeat', '2']), '--real-time',
    '--chunk-bytes', String(FRAME_BYTES), '--url', `ws://127.0.0.1:${port}/api/v1/${scenario.route}`, FIXTURE];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  await new Promise((resolve) => child.on('exit', resolve));
  const report = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as LoadReport;
  const failed = Object.values(report.errors).reduce((a, b) => a + b, 0) + Object.values(report.failures).reduce((a, b) => a + b, 0);
  const pass = failed === 0 && report.dropped_connections === 0 && report.final_lag_ms.count > 0 && report.final_lag_ms.p99 <= scenario.boundMs;
  return { pass, report };
}

const summary: Record<string, number | string> = {};
for (const scenario of SCENARIOS.filter((s) => !only || s.name === only)) {
  const server = await startServerProcess('src/main.ts', { THREADS: '2', MAX_CONNECTIONS: '20000', ...scenario.env });
  const workers = ((await (await fetch(`http://127.0.0.1:${server.port}/api/v1/health`)).json()) as { workers: number }).workers;
  console.log(`${scenario.name}: ${workers} worker thread(s), THREADS=2`);
  summary[`${scenario.name}_workers`] = workers;
  const port = server.port;
  let best = 0;
  try {
    for (const n of scenario.steps) {
      const { pass, report: r } = await runStep(port, scenario, n);
      console.log(`${scenario.name.padEnd(20)} ${String(n).padStart(5)} streams: ${pass ? 'PASS' : 'FAIL'}  lag p50 ${r.final_lag_ms.p50} ms  p99 ${r.final_lag_ms.p99} ms (bound ${scenario.boundMs})  results ${r.final_lag_ms.count}  errors ${JSON.stringify(r.errors)}  failures ${JSON.stringify(r.failures)}  dropped ${r.dropped_connections}  server CPU ${(r.server.cpu_cores_mean * 100).toFixed(0)}%  load-generator CPU ${(r.client_cpu_cores * 100).toFixed(0)}%  server RSS ${(r.server.rss_bytes_max / 2 ** 20).toFixed(0)} MB`);
      if (!pass) break;
      best = n;
      summary[`${scenario.name}_p99_ms`] = r.final_lag_ms.p99;
    }
  } finally {
    await server.stop();
  }
  summary[`${scenario.name}_streams`] = best;
  summary[`ratio_vs_goal_${scenario.name}`] = Number((best / scenario.goal).toFixed(3));
  console.log(`${scenario.name}: ${best} real-time streams (goal ${scenario.goal})`);
}
for (const name of ['stub_simple', 'stub_segmented']) {
  const one = summary[`${name}_1_worker_streams`];
  const many = summary[`${name}_streams`];
  if (typeof one === 'number' && typeof many === 'number' && one > 0) summary[`ratio_workers_vs_1_worker_${name}`] = Number((many / one).toFixed(3));
}
const ratios = Object.fromEntries(Object.entries(summary).filter(([k]) => k.startsWith('ratio')));
const rest = Object.fromEntries(Object.entries(summary).filter(([k]) => !k.startsWith('ratio')));
console.log(JSON.stringify({ bench: 'capacity', ...ratios, ...rest, peer: 'the same scenario on one worker thread (WORKERS=1), and the goals of ARCHITECTURE.md\'s Targets table (the day-one server holds 20-30 Moonshine streams)', frame_ms: FRAME_SECONDS * 1000, ramp_up_seconds: RAMP_SECONDS, fixture_passes_per_stream: quick ? 'cut at 4 s' : 2 }));
