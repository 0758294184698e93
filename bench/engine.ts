// The inference engine's decoding modes on recorded human speech (test/fixtures/real-speech/,
// twelve utterances of 3-7 s), one thread, through the server's own MoonshineModel compiled into
// a C++ harness (bench/native/engine_bench.cc): the peer is single greedy decoding, one utterance
// per call from scratch (what the server did before the engine batched), measured in the same run.
//   1. batching: all utterances in one job, in groups of at most ROWS rows whose lengths are within
//      PAD of the group's longest (each padded with silence to it), for several ROWS and PADs:
//      CPU seconds against single decoding, and the word errors of each against the transcripts
//      and against single decoding (the WER must not rise);
//   2. drafts: every utterance's prefixes each 0.5 s then the whole (its interims and final),
//      decoded from scratch and with the previous answer's tokens as the draft: CPU seconds of
//      all points and of the finals alone, and the points whose text differs;
//   3. Moonshine base beside tiny: word errors and CPU (real-time factor), single and batched;
//   4. the int8 derivation of each (models/derive-int8.mjs, what MODEL_WEIGHTS=auto serves on a
//      CPU with VNNI) against the package's weights: CPU and the words that differ.
// CPU time (the harness's own, std::clock) rather than wall time, which other processes on
// these shared cores would colour.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normalise, realSpeech } from '../test/helpers/real-speech.js';
import { wordErrors } from '../test/helpers/wer.js';
import { buildMoonshineBench } from './native-binary.js';
import { ROOT } from './server-process.js';

const quick = process.argv.includes('--quick');
const harness = buildMoonshineBench('engine_bench');

const { samples, utterances: all } = realSpeech();
const utterances = quick ? all.slice(0, 3) : all;
const spans = utterances.map((u) => `${Math.max(0, Math.round((u.start - 0.2) * 16000))}:${Math.min(samples.length, Math.round((u.end + 0.2) * 16000))}`);
const referenceWords = utterances.reduce((n, u) => n + normalise(u.text).split(' ').length, 0);

interface BatchRun { seconds: number; cpu_seconds: number; utterances: { text: string; steps: number }[] }
interface DraftRun { cpu_seconds: number; points: number; differing: number; differing_finals: number; scratch_seconds: number; draft_seconds: number; scratch_final_seconds: number; draft_final_seconds: number; differences: { scratch: string; draft: string; final: boolean }[] }

const dir = mkdtempSync(path.join(os.tmpdir(), 'engine-bench-'));
const audioFile = path.join(dir, 'speech.f32');
writeFileSync(audioFile, new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength));
function runOn<T>(model: string, weights: 'int8' | 'package', ...mode: string[]): T {
  const out = execFileSync(harness, [path.join(ROOT, 'models', model), audioFile, ...spans, '--', ...mode], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, WEIGHTS: weights } });
  return JSON.parse(out) as T;
}
const run = <T>(...mode: string[]): T => runOn<T>('moonshine-tiny', 'package', ...mode);

const errors = (texts: string[]): number => texts.reduce((n, t, i) => n + wordErrors(normalise(utterances[i]!.text), normalise(t)), 0);
const fmt = (x: number, d = 3): string => x.toFixed(d);
const summary: Record<string, number | string> = {};
try {
  // The peer first and again at the end: its CPU time bounds the noise of the run.
  const singles = [run<BatchRun>('single')];
  const reference = singles[0]!.utterances.map((u) => u.text);
  const singleErrors = errors(reference);
  console.log(`single greedy decoding (peer): CPU ${fmt(singles[0]!.cpu_seconds)} s for ${utterances.length} utterances, ${singleErrors}/${referenceWords} word errors`);
  const configs: [number, number][] = quick ? [[16, 32000]] : [[4, 8000], [8, 8000], [16, 8000], [16, 32000], [16, 80000]];
  const batches = configs.map(([rows, pad]) => ({ rows, pad, out: run<BatchRun>('batch', String(rows), String(pad)) }));
  singles.push(run<BatchRun>('single'));
  const peerCpu = Math.min(...singles.map((s) => s.cpu_seconds));
  for (const { rows, pad, out } of batches) {
    const texts = out.utterances.map((u) => u.text);
    const vsSingle = texts.reduce((n, t, i) => n + wordErrors(reference[i]!, t), 0);
    const key = `batch_${rows}_rows_${pad / 16000}s_pad`;
    summary[`ratio_cpu_single_vs_${key}`] = Number((peerCpu / out.cpu_seconds).toFixed(2));
    summary[`${key}_word_errors`] = errors(texts);
    summary[`${key}_words_differing_from_single`] = vsSingle;
    console.log(`batch ≤${rows} rows, pad ≤${pad / 16000} s: CPU ${fmt(out.cpu_seconds)} s (${fmt(peerCpu / out.cpu_seconds, 2)}x less than single), ${errors(texts)}/${referenceWords} word errors, ${vsSingle} words differ from single`);
  }
  const drafts = run<DraftRun>('interims', '8000');
  summary['ratio_draft_vs_scratch_all_points'] = Number((drafts.scratch_seconds / drafts.draft_seconds).toFixed(2));
  summary['ratio_draft_vs_scratch_finals'] = Number((drafts.scratch_final_seconds / drafts.draft_final_seconds).toFixed(2));
  summary['draft_points'] = drafts.points;
  summary['draft_points_differing'] = drafts.differing;
  summary['draft_finals_differing'] = drafts.differing_finals;
  console.log(`drafts: ${drafts.points} points (interims every 0.5 s and finals): from scratch ${fmt(drafts.scratch_seconds)} s, with drafts ${fmt(drafts.draft_seconds)} s (${fmt(drafts.scratch_seconds / drafts.draft_seconds, 2)}x); finals alone ${fmt(drafts.scratch_final_seconds)} s vs ${fmt(drafts.draft_final_seconds)} s; ${drafts.differing} points differ (${drafts.differing_finals} finals)`);
  for (const d of drafts.differences) console.log(`  ${d.final ? 'final' : 'interim'}: "${d.scratch}" | with draft: "${d.draft}"`);
  // Moonshine base (MODEL=moonshine-base) beside tiny: words and compute, single and batched.
  const audioSeconds = spans.reduce((n, span) => { const [a, b] = span.split(':').map(Number); return n + (b! - a!) / 16000; }, 0);
  const base = runOn<BatchRun>('moonshine-base', 'package', 'single');
  const baseBatch = runOn<BatchRun>('moonshine-base', 'package', 'batch', '16', '32000');
  const baseErrors = errors(base.utterances.map((u) => u.text));
  summary['ratio_cpu_base_vs_tiny_single'] = Number((base.cpu_seconds / peerCpu).toFixed(2));
  summary['ratio_cpu_base_single_vs_batch'] = Number((base.cpu_seconds / baseBatch.cpu_seconds).toFixed(2));
  summary['base_word_errors'] = baseErrors;
  summary['base_batched_word_errors'] = errors(baseBatch.utterances.map((u) => u.text));
  summary['base_rtf_single'] = Number((base.cpu_seconds / audioSeconds).toFixed(4));
  summary['tiny_rtf_single'] = Number((peerCpu / audioSeconds).toFixed(4));
  console.log(`moonshine-base: ${baseErrors}/${referenceWords} word errors (tiny ${singleErrors}), CPU ${fmt(base.cpu_seconds)} s single (RTF ${fmt(base.cpu_seconds / audioSeconds, 4)}; tiny ${fmt(peerCpu / audioSeconds, 4)}), ${fmt(baseBatch.cpu_seconds)} s batched`);
  // The int8 derivation against the package's weights, single and batched, tiny and base.
  for (const [model, packageSingle, packageBatch] of [['moonshine-tiny', singles[0]!, batches.find((b) => b.rows === 16 && b.pad === 32000)?.out], ['moonshine-base', base, baseBatch]] as const) {
    const single = runOn<BatchRun>(model, 'int8', 'single');
    const batch = runOn<BatchRun>(model, 'int8', 'batch', '16', '32000');
    const name = model.replace('moonshine-', '');
    const packageTexts = packageSingle.utterances.map((u) => u.text);
    const differing = single.utterances.reduce((n, u, i) => n + wordErrors(normalise(packageTexts[i]!), normalise(u.text)), 0);
    const packageCpu = model === 'moonshine-tiny' ? peerCpu : packageSingle.cpu_seconds;
    summary[`ratio_cpu_${name}_package_vs_int8_single`] = Number((packageCpu / single.cpu_seconds).toFixed(2));
    if (packageBatch) summary[`ratio_cpu_${name}_package_vs_int8_batch`] = Number((packageBatch.cpu_seconds / batch.cpu_seconds).toFixed(2));
    summary[`${name}_int8_word_errors`] = errors(single.utterances.map((u) => u.text));
    summary[`${name}_int8_words_differing_from_package`] = differing;
    summary[`${name}_int8_rtf_single`] = Number((single.cpu_seconds / audioSeconds).toFixed(4));
    console.log(`${model} int8 weights: CPU ${fmt(single.cpu_seconds)} s single (${fmt(packageCpu / single.cpu_seconds, 2)}x less than the package's), ${fmt(batch.cpu_seconds)} s batched${packageBatch ? ` (${fmt(packageBatch.cpu_seconds / batch.cpu_seconds, 2)}x)` : ''}; ${errors(single.utterances.map((u) => u.text))}/${referenceWords} word errors, ${differing} words differ from the package's`);
  }
  summary['single_word_errors'] = singleErrors;
  summary['reference_words'] = referenceWords;
  summary['single_cpu_seconds'] = Number(peerCpu.toFixed(3));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const ratios = Object.fromEntries(Object.entries(summary).filter(([k]) => k.startsWith('ratio')));
const rest = Object.fromEntries(Object.entries(summary).filter(([k]) => !k.startsWith('ratio')));
console.log(JSON.stringify({ bench: 'engine', ...ratios, ...rest, peer: 'single greedy decoding, one utterance per call from scratch (the server before batching), same harness, same run; CPU seconds of one thread', utterances: utterances.length }));
