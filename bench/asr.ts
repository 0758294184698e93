// Moonshine tiny speech recognition, one thread per transcription, on the two utterances of the
// test fixture (A = 0.5–4.35 s, B = 5.85–10.84 s):
//   1. real-time factor (processing time / audio duration, medians) of the native path
//      (addon model.run on a libuv worker: its runSeconds and the wall time around the await)
//      against the peer, bench/peers/moonshine-js.ts (onnxruntime-node from JavaScript, the same
//      model files and greedy decoding), run alternately in the same process; both must produce
//      the same tokens and text;
//   2. the native path's overhead over the bare ONNX Runtime Run calls: a C++ harness
//      (bench/native/asr_bench.cc, built with g++ into bench/out/, git-ignored) times each Run
//      inside the real MoonshineModel::Transcribe, so each call's wall time is compared with its
//      own Run calls (immune to load from other processes); the addon's own cost on top (worker
//      hand-off, N-API, promise) is its wall time around the await over its runSeconds;
//   3. main-thread event-loop lag (perf_hooks.monitorEventLoopDelay at 1 ms, less the 1 ms
//      interval) while 2 transcriptions run concurrently in a loop, native vs the peer;
//   4. load time and resident memory before load, after load and after a run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { addon } from '../src/native/binding.js';
import { readWav } from '../test/helpers/wav.js';
import { buildMoonshineBench } from './native-binary.js';
import { median } from './statistics.js';

const quick = process.argv.includes('--quick');
const root = path.resolve(import.meta.dirname, '..');
const MODEL_DIR = path.join(root, 'models/moonshine-tiny');
const REPEATS = quick ? 2 : 11; // timed transcriptions per utterance and path (after one warm-up)
const HARNESS_RUNS = quick ? 2 : 11;
const LOOP_SECONDS = quick ? 0.5 : 5; // per path, for the event-loop lag
const CONCURRENT = 2;
const LAG_RESOLUTION_MS = 1;

// --- The audio: the fixture's two utterances as 16 kHz float samples, as the server feeds them ---
const wav = readWav('two_utterances_16k_mono_s16.wav');
if (wav.sampleRate !== 16000 || wav.channels !== 1 || wav.bitDepth !== 16 || wav.isFloat) throw new Error('fixture is not 16 kHz s16 mono');
const all = new Float32Array(wav.frames);
for (let i = 0; i < all.length; i++) all[i] = wav.data.readInt16LE(2 * i) / 32768;
const utterances = [
  { name: 'A', samples: all.slice(Math.round(0.5 * 16000), Math.round(4.35 * 16000)) },
  { name: 'B', samples: all.slice(Math.round(5.85 * 16000), Math.round(10.84 * 16000)) },
].map((u) => ({ ...u, seconds: u.samples.length / 16000 }));
const audioSeconds = utterances.reduce((s, u) => s + u.seconds, 0);

const rssMb = () => process.memoryUsage().rss / 2 ** 20;
const fmt = (x: number, digits = 1) => x.toFixed(digits);

// --- The C++ harness ---

interface HarnessFile {
  samples: number;
  ids: number[];
  text: string;
  encoder_runs: number;
  decoder_runs: number;
  total_s: number;
  run_sum_s: number;
  overhead: number;
  encoder_run_s: number;
  decoder_run_s: number;
  encoder_timer_s: number;
  decoder_timer_s: number;
}

function runHarness(): { load_s: number; files: HarnessFile[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'asr-bench-'));
  try {
    const files = utterances.map((u) => {
      const file = path.join(dir, `${u.name}.f32`);
      writeFileSync(file, new Uint8Array(u.samples.buffer, u.samples.byteOffset, u.samples.byteLength));
      return file;
    });
    const out = execFileSync(harness, [MODEL_DIR, String(HARNESS_RUNS), ...files], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    return JSON.parse(out) as { load_s: number; files: HarnessFile[] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- Event-loop lag while CONCURRENT transcriptions run back to back for LOOP_SECONDS ---
async function lagWhile(transcribe: (samples: Float32Array) => Promise<unknown>): Promise<{ p50: number; p99: number; max: number; done: number; audio: number }> {
  const h = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  const end = performance.now() + LOOP_SECONDS * 1000;
  let done = 0;
  let audio = 0;
  h.enable();
  await Promise.all(Array.from({ length: CONCURRENT }, async (_, k) => {
    for (let i = k; performance.now() < end; i++) {
      const u = utterances[i % utterances.length]!;
      await transcribe(u.samples);
      done++;
      audio += u.seconds;
    }
  }));
  h.disable();
  // The histogram holds whole timer intervals: the lag is what exceeds the 1 ms resolution.
  const lag = (ns: number) => Math.max(0, ns / 1e6 - LAG_RESOLUTION_MS);
  return { p50: lag(h.percentile(50)), p99: lag(h.percentile(99)), max: lag(h.max), done, audio };
}

const harness = buildMoonshineBench('asr_bench');
const loadAtStart = os.loadavg()[0]!;

// --- 4. Native load and memory (before the peer's onnxruntime-node is imported) ---
const task = new addon.Task('inference');
const rssBefore = rssMb();
let t = performance.now();
const model = await addon.loadModel(task, { kind: 'moonshine', dir: MODEL_DIR, weights: 'auto' });
const loadMs = performance.now() - t;
const rssLoaded = rssMb();
const nativeText = new Map<string, string>();
for (const u of utterances) nativeText.set(u.name, (await model.run(task, u.samples)).text ?? ''); // warm-up
const rssRun = rssMb();

// --- The peer ---
const { MoonshineJs } = await import('./peers/moonshine-js.js');
t = performance.now();
const peer = await MoonshineJs.load(MODEL_DIR);
const peerLoadMs = performance.now() - t;
const peerIds = new Map<string, number[]>();
const peerText = new Map<string, string>();
for (const u of utterances) {
  const r = await peer.transcribe(u.samples); // warm-up
  peerIds.set(u.name, r.ids);
  peerText.set(u.name, r.text);
}
const rssPeer = rssMb();

// --- 1. RTF: the two paths alternately, utterance by utterance ---
const times = new Map(utterances.map((u) => [u.name, { run: [] as number[], wall: [] as number[], js: [] as number[], jsEnc: [] as number[], jsDec: [] as number[] }]));
for (let i = 0; i < REPEATS; i++) {
  for (const u of utterances) {
    const m = times.get(u.name)!;
    t = performance.now();
    const out = await model.run(task, u.samples);
    m.wall.push((performance.now() - t) / 1000);
    m.run.push(out.runSeconds);
    if (out.text !== nativeText.get(u.name)) throw new Error(`native: ${u.name} transcribed differently on repeat ${i}`);
    t = performance.now();
    const r = await peer.transcribe(u.samples);
    m.js.push((performance.now() - t) / 1000);
    m.jsEnc.push(r.encoderSeconds);
    m.jsDec.push(r.decoderSeconds);
    if (r.text !== peerText.get(u.name)) throw new Error(`peer: ${u.name} transcribed differently on repeat ${i}`);
  }
}

// --- 2. Overhead over bare ORT Run calls (C++ harness, a separate process, nothing else running) ---
const h = runHarness();

// --- Same output? Native text (addon) = peer text, and harness tokens = peer tokens ---
let same = true;
for (const [k, u] of utterances.entries()) {
  const hf = h.files[k]!;
  const idsSame = JSON.stringify(hf.ids) === JSON.stringify(peerIds.get(u.name));
  const textSame = nativeText.get(u.name) === peerText.get(u.name) && hf.text === nativeText.get(u.name);
  if (!idsSame || !textSame) {
    same = false;
    console.log(`MISMATCH ${u.name}: native ${JSON.stringify(nativeText.get(u.name))} ${JSON.stringify(hf.ids)}; JS ${JSON.stringify(peerText.get(u.name))} ${JSON.stringify(peerIds.get(u.name))}`);
  }
}
if (!same) throw new Error('the native model and the JS peer transcribe differently');

// --- 3. Event-loop lag: native, then the peer (2 at once each) ---
const lagNative = await lagWhile((s) => model.run(task, s));
const lagJs = await lagWhile((s) => peer.transcribe(s));
task.close();

// --- Report ---
const sumMedian = (key: 'run' | 'wall' | 'js' | 'jsEnc' | 'jsDec') => utterances.reduce((s, u) => s + median(times.get(u.name)![key]), 0);
const nativeRun = sumMedian('run');
const nativeWall = sumMedian('wall');
const js = sumMedian('js');
const bareOrt = h.files.reduce((s, f) => s + f.run_sum_s, 0);
// Per call, Transcribe's wall time over its own Run calls (median per utterance), weighted by
// the utterances' Run time; then the addon's wall time around the await over its worker time.
const modelOverhead = h.files.reduce((s, f) => s + f.overhead * f.run_sum_s, 0) / bareOrt;
const addonOverhead = nativeWall / nativeRun;
const overhead = modelOverhead * addonOverhead;

console.log(`Moonshine tiny, ${REPEATS} timed runs per utterance and path (medians), one thread per transcription; ` +
  `${os.cpus().length} cores, load average ${fmt(loadAtStart)} at start (other processes skew every figure here)`);
for (const [k, u] of utterances.entries()) {
  const m = times.get(u.name)!;
  const hf = h.files[k]!;
  console.log(`  ${u.name}  ${fmt(u.seconds, 2)} s, ${hf.decoder_runs} decoder steps: "${nativeText.get(u.name)}"`);
  console.log(`     native  run ${fmt(median(m.run) * 1e3)} ms, wall ${fmt(median(m.wall) * 1e3)} ms (RTF ${fmt(median(m.wall) / u.seconds, 4)})`);
  console.log(`     JS peer      ${fmt(median(m.js) * 1e3)} ms (encoder ${fmt(median(m.jsEnc) * 1e3)}, decoder ${fmt(median(m.jsDec) * 1e3)}) (RTF ${fmt(median(m.js) / u.seconds, 4)})`);
  console.log(`     harness Transcribe ${fmt(hf.total_s * 1e3)} ms = ORT Run ${fmt(hf.run_sum_s * 1e3)} ms (encoder ${fmt(hf.encoder_run_s * 1e3)}, decoder ${fmt(hf.decoder_run_s * 1e3)}) x ${fmt(hf.overhead, 3)}`);
}
console.log(`same tokens and text from native and JS: ${same ? 'yes' : 'NO'}`);
console.log(`RTF over A+B (${fmt(audioSeconds, 2)} s): native ${fmt(nativeWall / audioSeconds, 4)} wall / ${fmt(nativeRun / audioSeconds, 4)} on the worker; JS ${fmt(js / audioSeconds, 4)} -> JS/native ${fmt(js / nativeWall, 3)} (wall), ${fmt(js / nativeRun, 3)} (worker time)`);
console.log(`overhead over bare ORT Run calls: Transcribe / its Run calls x ${fmt(modelOverhead, 4)} (harness), addon wall / runSeconds x ${fmt(addonOverhead, 4)} -> native total x ${fmt(overhead, 3)}` +
  ` (across processes: addon runSeconds ${fmt(nativeRun * 1e3)} ms vs harness Run calls ${fmt(bareOrt * 1e3)} ms for A+B)`);
console.log(`event-loop lag with ${CONCURRENT} transcriptions at once for ${LOOP_SECONDS} s: native p50 ${fmt(lagNative.p50, 2)} / p99 ${fmt(lagNative.p99, 2)} / max ${fmt(lagNative.max, 2)} ms (${lagNative.done} done, ${fmt(lagNative.audio / LOOP_SECONDS)} s audio/s); ` +
  `JS p50 ${fmt(lagJs.p50, 2)} / p99 ${fmt(lagJs.p99, 2)} / max ${fmt(lagJs.max, 2)} ms (${lagJs.done} done, ${fmt(lagJs.audio / LOOP_SECONDS)} s audio/s)`);
console.log(`load: native ${fmt(loadMs)} ms (harness, no Node: ${fmt(h.load_s * 1e3)} ms), JS peer ${fmt(peerLoadMs)} ms`);
console.log(`rss: ${fmt(rssBefore)} MB before load, ${fmt(rssLoaded)} after, ${fmt(rssRun)} after a run of each utterance; ${fmt(rssPeer)} with the JS peer also loaded and run (+${fmt(rssPeer - rssRun)})`);
console.log(JSON.stringify({
  bench: 'asr',
  ratio_vs_js: Number((js / nativeWall).toFixed(3)),
  ratio_vs_js_worker_time: Number((js / nativeRun).toFixed(3)),
  overhead_vs_bare_ort: Number(overhead.toFixed(3)),
  overhead_model_vs_bare_ort: Number(modelOverhead.toFixed(4)),
  overhead_addon_wall_vs_worker: Number(addonOverhead.toFixed(4)),
  native_rtf: Number((nativeWall / audioSeconds).toFixed(4)),
  native_rtf_worker: Number((nativeRun / audioSeconds).toFixed(4)),
  js_rtf: Number((js / audioSeconds).toFixed(4)),
  event_loop_p99_ms_native: Number(lagNative.p99.toFixed(2)),
  event_loop_p99_ms_js: Number(lagJs.p99.toFixed(2)),
  load_ms: Number(loadMs.toFixed(1)),
  rss_mb: Number(rssRun.toFixed(1)),
  rss_mb_before_load: Number(rssBefore.toFixed(1)),
  rss_mb_after_load: Number(rssLoaded.toFixed(1)),
  js_load_ms: Number(peerLoadMs.toFixed(1)),
  js_rss_mb_added: Number((rssPeer - rssRun).toFixed(1)),
  same_text: same,
  peer: 'onnxruntime-node from JS, same greedy decoding',
}));
