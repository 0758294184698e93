// How many concurrent real-time streams of real speech the server holds on this machine, against a
// peer built on sherpa-onnx-node (bench/peers/sherpa-onnx-server.ts: the same Silero and Moonshine
// tiny files, 2 decode threads as our THREADS=2) measured in the same run, scenario by scenario.
//
// Every stream plays test/fixtures/real-speech/prompts_16k_mono_s16.wav (75 s, twelve read
// sentences with their pauses) in 20 ms frames (640 bytes) at speech speed, on /api/v1/segmented:
//   bursts: every stream from the file's start, starts spread over 5 s: their utterances end within
//           the same 5 s, twelve times per step (the worst case for a scheduler);
//   spread: utterance ends spread evenly over the file, as if the streams had started at random
//           moments long ago: stream w plays the file rotated to begin in the pause before its
//           (w mod 12)-th sentence (load --rotate-at) and the starts are spread over one mean
//           sentence period (75.2 s / 12). Spreading the starts themselves over the file's 75 s,
//           one pass each, would hold all N streams for only an instant.
// each with interim results off and on. A step of N passes when every stream completes, no error
// event (so nothing shed: OVERLOADED), no drop, and the p99 final lag is at most 1 s (lag = a
// final's arrival minus the moment the audio at its end_time had been sent; interim staleness is
// the same measure for interims). N steps up (10, 20, 30, 40, 60, 80, 100, 120) until a step fails,
// then one step halfway between the last pass and the failure refines the figure. WER: each
// stream's finals, joined, against prompts.tsv in the order the stream played them. The load is
// the client CLI's `load` in its own process, on the same 2 cores as the server (its CPU is
// reported beside the server's). Each server runs fresh for each scenario.
//
// Flags: --quick (2 streams, the first two sentences, bursts and spread; the smoke test),
// --scenario=bursts_off,spread_on,... --server=ours|peer --steps=10,20,... --no-refine.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readWav, wavFile } from '../test/helpers/wav.js';
import { runLoad, servedWhole } from './load-run.js';
import { ROOT as root, startServerProcess, type ServerProcess } from './server-process.js';
import { addToTally, werOf, type WerTally } from './wer.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const refine = !quick && !argv.includes('--no-refine');
const flag = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const onlyScenarios = flag('scenario')?.split(',');
const onlyServers = flag('server')?.split(',');
// --model=moonshine-base measures this server on that model (the peer keeps tiny's files).
const model = flag('model') ?? 'moonshine-tiny';
const STEPS = flag('steps')?.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0) ?? (quick ? [2] : [10, 20, 30, 40, 60, 80, 100, 120]);
const FRAME_BYTES = 640; // 20 ms of 16 kHz s16 mono
const BOUND_MS = 1000;
const BURST_SECONDS = quick ? 1 : 5;

// ---- the fixture and its transcript ----
interface Utterance { start: number; end: number; text: string }
const FIXTURE_DIR = path.join(root, 'test/fixtures/real-speech');
const allUtterances: Utterance[] = readFileSync(path.join(FIXTURE_DIR, 'prompts.tsv'), 'utf8').trim().split('\n').slice(1).map((line) => {
  const [, start, end, , text] = line.split('\t');
  return { start: Number(start), end: Number(end), text: text ?? '' };
});
const wav = readWav('real-speech/prompts_16k_mono_s16.wav');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'capacity-'));
let fixture = path.join(FIXTURE_DIR, 'prompts_16k_mono_s16.wav');
let utterances = allUtterances;
let fileSeconds = wav.seconds;
if (quick) {
  // The first two sentences and the pause after them: a 12 s file.
  utterances = allUtterances.slice(0, 2);
  fileSeconds = (utterances[1]!.end + allUtterances[2]!.start) / 2;
  fixture = path.join(tmp, 'quick.wav');
  writeFileSync(fixture, wavFile(wav.data.subarray(0, Math.round(fileSeconds * wav.sampleRate) * 2), wav.sampleRate));
}
/** Where each stream's rotation may begin: the file's start and the middle of every pause. */
const CUTS = [0, ...utterances.slice(1).map((u, i) => Number(((utterances[i]!.end + u.start) / 2).toFixed(3)))];
const SPREAD_SECONDS = Number((fileSeconds / utterances.length).toFixed(2));


/** The transcript of the file as a stream rotated to begin at `cut` s plays it. */
function referenceFrom(cut: number): string {
  const first = utterances.findIndex((u) => u.start >= cut);
  const order = first <= 0 ? utterances : [...utterances.slice(first), ...utterances.slice(0, first)];
  return order.map((u) => u.text).join(' ');
}

// ---- scenarios and servers ----
interface Scenario { name: string; pattern: 'bursts' | 'spread'; interim: boolean }
const SCENARIOS: Scenario[] = (['bursts', 'spread'] as const).flatMap((pattern) =>
  [false, true].map((interim) => ({ name: `${pattern}_${interim ? 'on' : 'off'}`, pattern, interim })));

interface Server { name: 'ours' | 'peer'; label: string; start(): Promise<ServerProcess>; warm?(port: number, n: number): Promise<void> }
const SERVERS: Server[] = [
  {
    name: 'ours',
    label: `this server (src/main.ts, MODEL=${model}, THREADS=2)`,
    start: () => startServerProcess('src/main.ts', { THREADS: '2', MAX_CONNECTIONS: '20000', MODEL: model }),
  },
  model === 'moonshine-tiny' ? {
    name: 'peer',
    label: 'sherpa-onnx-node peer (bench/peers/sherpa-onnx-server.ts, DECODE_SLOTS=2, one ORT thread each)',
    start: () => startServerProcess('bench/peers/sherpa-onnx-server.ts', { DECODE_SLOTS: '2' }),
    async warm(port, n) {
      await fetch(`http://127.0.0.1:${port}/peer/warm?vads=${n}`);
    },
  } : {
    // Another model's peer is this server on tiny, in the same run: what the larger model costs.
    name: 'peer',
    label: 'this server on Moonshine tiny (MODEL=moonshine-tiny, THREADS=2)',
    start: () => startServerProcess('src/main.ts', { THREADS: '2', MAX_CONNECTIONS: '20000', MODEL: 'moonshine-tiny' }),
  },
];
const PEER_KEY = model === 'moonshine-tiny' ? 'sherpa_onnx' : 'tiny';

// ---- one step: the load CLI in its own process ----
interface Step {
  n: number;
  pass: boolean;
  finalP50: number | null;
  finalP99: number | null;
  interimP50: number | null;
  interimP99: number | null;
  wer: number | null;
  serverCpu: number | null;
  loadCpu: number;
  rssMb: number | null;
  trouble: string;
}

async function runStep(port: number, scenario: Scenario, n: number): Promise<Step> {
  const r = await runLoad(port, n, fixture, [
    '--ramp-up', String(scenario.pattern === 'bursts' ? BURST_SECONDS : SPREAD_SECONDS),
    ...(scenario.pattern === 'spread' ? ['--rotate-at', CUTS.join(',')] : []),
    ...(scenario.interim ? ['--interim'] : []),
  ]);
  const pass = servedWhole(r, n) && r.final_lag_ms.p99 !== null && r.final_lag_ms.p99 <= BOUND_MS;
  const tally: WerTally = { errors: 0, words: 0 };
  for (const t of r.transcripts) {
    const hyp = [...t.finals].sort((a, b) => a.start_time - b.start_time).map((f) => f.text).join(' ');
    addToTally(tally, referenceFrom(t.rotated_s), hyp);
  }
  const trouble = [
    Object.keys(r.errors).length ? `errors ${JSON.stringify(r.errors)}` : '',
    Object.keys(r.failures).length ? `failed streams ${JSON.stringify(r.failures)}` : '',
    r.dropped_connections ? `dropped ${r.dropped_connections}` : '',
  ].filter(Boolean).join(', ');
  return {
    n, pass, finalP50: r.final_lag_ms.p50, finalP99: r.final_lag_ms.p99, interimP50: r.interim_staleness_ms.p50, interimP99: r.interim_staleness_ms.p99,
    wer: werOf(tally), serverCpu: r.server.cpu_cores_mean, loadCpu: r.client_cpu_cores,
    rssMb: r.server.rss_bytes_max === null ? null : Math.round(r.server.rss_bytes_max / 2 ** 20), trouble,
  };
}

const ms = (v: number | null): string => (v === null ? '—' : `${Math.round(v)} ms`);
const pct = (v: number | null): string => (v === null ? '—' : `${(v * 100).toFixed(1)}%`);
const describe = (s: Step): string => `${String(s.n).padStart(4)} streams: ${s.pass ? 'PASS' : 'FAIL'}  final lag p50 ${ms(s.finalP50)} p99 ${ms(s.finalP99)}`
  + `  interim staleness p50 ${ms(s.interimP50)} p99 ${ms(s.interimP99)}  WER ${pct(s.wer)}  server CPU ${s.serverCpu === null ? '—' : `${Math.round(s.serverCpu * 100)}%`}`
  + `  load CPU ${Math.round(s.loadCpu * 100)}%  RSS ${s.rssMb ?? '—'} MB${s.trouble ? `  ${s.trouble}` : ''}`;

/** One step's figures in one line, for the JSON. */
const brief = (s: Step): string => `${s.n} streams: final p50 ${ms(s.finalP50)} p99 ${ms(s.finalP99)}`
  + `${s.interimP50 === null ? '' : `, interim staleness p50 ${ms(s.interimP50)} p99 ${ms(s.interimP99)}`}, WER ${pct(s.wer)}`
  + `, server CPU ${s.serverCpu ?? '—'} cores${s.trouble ? `, ${s.trouble}` : ''}`;

/** Steps up to the first failure, then (refine) once halfway back. The best pass, and the failure. */
async function capacity(server: Server, port: number, scenario: Scenario): Promise<{ best: Step | undefined; failure: Step | undefined; first: Step | undefined }> {
  let best: Step | undefined;
  let failure: Step | undefined;
  let first: Step | undefined;
  const step = async (n: number): Promise<Step> => {
    await server.warm?.(port, n);
    const s = await runStep(port, scenario, n);
    console.log(`${scenario.name.padEnd(10)} ${server.name.padEnd(4)} ${describe(s)}`);
    return s;
  };
  for (const n of STEPS) {
    const s = await step(n);
    first ??= s;
    if (!s.pass) {
      failure = s;
      break;
    }
    best = s;
  }
  if (refine && failure) {
    const mid = Math.round(((best?.n ?? 0) + failure.n) / 2);
    if (mid > (best?.n ?? 0) && mid < failure.n) {
      const s = await step(mid);
      if (s.pass) best = s;
      else failure = s;
    }
  }
  return { best, failure, first };
}

const summary: Record<string, number | string | null> = {};
// The machine is shared: what else ran beside the bench (1-minute load average, in cores' worth).
const loadAtStart = os.loadavg()[0]!;
const ratios: Record<string, number | null> = {};
const scenarios = SCENARIOS.filter((s) => !onlyScenarios || onlyScenarios.includes(s.name));
const servers = SERVERS.filter((s) => !onlyServers || onlyServers.includes(s.name));
try {
  for (const scenario of scenarios) {
    const found: Partial<Record<Server['name'], number>> = {};
    const firstP99: Partial<Record<Server['name'], number | null>> = {};
    for (const server of servers) {
      const proc = await server.start();
      try {
        const { best, failure, first } = await capacity(server, proc.port, scenario);
        firstP99[server.name] = first?.finalP99 ?? null;
        const key = `${scenario.name}_${server.name}`;
        found[server.name] = best?.n ?? 0;
        summary[`${key}_streams`] = best?.n ?? 0;
        if (best) {
          Object.assign(summary, {
            [`${key}_final_p50_ms`]: best.finalP50, [`${key}_final_p99_ms`]: best.finalP99,
            ...(scenario.interim ? { [`${key}_interim_p50_ms`]: best.interimP50, [`${key}_interim_p99_ms`]: best.interimP99 } : {}),
            [`${key}_wer`]: best.wer, [`${key}_server_cpu_cores`]: best.serverCpu, [`${key}_load_cpu_cores`]: best.loadCpu,
          });
        }
        // The failing step's figures too: where no step passes, they are the only ones.
        if (failure) summary[`${key}_first_failure`] = brief(failure);
        else summary[`${key}_first_failure`] = `none up to ${Math.max(...STEPS)}`;
      } finally {
        await proc.stop();
      }
    }
    if (found.ours !== undefined && found.peer !== undefined) {
      ratios[`ratio_${scenario.name}_vs_${PEER_KEY}`] = found.peer > 0 ? Number((found.ours / found.peer).toFixed(3)) : null;
      // Defined even when one side holds no step: both ran the first step's N in this run.
      const [ours, peer] = [firstP99.ours, firstP99.peer];
      if (typeof ours === 'number' && typeof peer === 'number' && ours > 0) {
        ratios[`ratio_${scenario.name}_p99_lag_at_${STEPS[0]}_${PEER_KEY}_over_ours`] = Number((peer / ours).toFixed(3));
      }
      console.log(`${scenario.name}: this server ${found.ours} streams, ${SERVERS[1]!.label} ${found.peer}: ratio ${ratios[`ratio_${scenario.name}_vs_${PEER_KEY}`] ?? '— (the peer held none)'}`);
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log(JSON.stringify({
  // Another model's figures are a bench of their own (bench/run.ts records each by name).
  bench: model === 'moonshine-tiny' ? 'capacity' : `capacity-${model.replace('moonshine-', '')}`, model, ...ratios, ...summary,
  peer: model === 'moonshine-tiny'
    ? `sherpa-onnx-node ${(JSON.parse(readFileSync(path.join(root, 'node_modules/sherpa-onnx-node/package.json'), 'utf8')) as { version: string }).version} (bench/peers/sherpa-onnx-server.ts) on the same Silero and Moonshine tiny files, measured in the same run`
    : 'this server on Moonshine tiny, measured in the same run',
  fixture: `real-speech/prompts_16k_mono_s16.wav${quick ? ` (first ${fileSeconds.toFixed(1)} s)` : ''}, ${utterances.length} utterances, ${fileSeconds.toFixed(1)} s`,
  host_load_average_1m: `${loadAtStart.toFixed(2)} at start, ${os.loadavg()[0]!.toFixed(2)} at end (${os.cpus().length} cores; the bench itself adds up to about 1)`,
  frame_ms: (FRAME_BYTES / 2 / 16_000) * 1000, bound_p99_ms: BOUND_MS, bursts_ramp_up_s: BURST_SECONDS, spread_ramp_up_s: SPREAD_SECONDS, steps: STEPS.join(','),
}));
