// Native Silero VAD: the batched path equals an unbatched reference, here onnxruntime-node's own
// JavaScript API run window by window on the same model file.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { addon, isNativeError, type NativeVad, type VadResult } from '../../src/native/binding.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { sine } from '../helpers/signal.js';
import { readWav } from '../helpers/wav.js';

const MODEL = path.join(PROJECT_ROOT, 'models/silero-vad/silero_vad.onnx');

function speech(): Float32Array {
  const wav = readWav('two_utterances_16k_mono_s16.wav');
  const out = new Float32Array(wav.frames);
  for (let i = 0; i < out.length; i++) out[i] = wav.data.readInt16LE(i * 2) / 32768;
  return out;
}

async function reference(audio: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 1 });
  let state: ort.Tensor = new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]);
  const sr = new ort.Tensor('int64', BigInt64Array.from([16000n]), []);
  const windows = Math.floor(audio.length / 512);
  const probs = new Float32Array(windows);
  const input = new Float32Array(576);
  for (let w = 0; w < windows; w++) {
    input.copyWithin(0, 512, 576); // the previous window's last 64 samples
    if (w === 0) input.fill(0, 0, 64);
    input.set(audio.subarray(w * 512, (w + 1) * 512), 64);
    const out = await session.run({ input: new ort.Tensor('float32', input.slice(), [1, 576]), state, sr });
    probs[w] = (out['output']!.data as Float32Array)[0]!;
    state = out['stateN'] as ort.Tensor;
  }
  return probs;
}

async function loadVad(): Promise<NativeVad> {
  const task = new addon.Task('vad');
  const vad = await addon.loadVad(task, MODEL);
  task.close();
  return vad;
}

function probsOf(result: VadResult, channel = 0): Float32Array {
  const probs = result.probs[channel];
  assert.ok(probs instanceof Float32Array, `channel ${channel} failed: ${isNativeError(probs) ? probs.message : 'no result'}`);
  return probs;
}

function vadFailures(): number {
  const schema = addon.taskMetricSchema();
  const field = schema.fields.findIndex((f) => f.field === 'total_failed_count');
  return addon.snapshot().task[schema.subsystems.indexOf('vad') * schema.fields.length + field]!;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

describe('native VAD', () => {
  it('equals the onnxruntime-node reference within 1e-5, alone (batch 1) and batched with other channels', async () => {
    const vad = await loadVad();
    const task = new addon.Task('vad');
    const audio = speech();
    const expected = await reference(audio);
    assert.ok(expected.some((p) => p > 0.9) && expected.some((p) => p < 0.1), 'the fixture has speech and silence');

    const alone = await vad.process(task, [new addon.VadChannel()], [audio]);
    assert.ok(maxDiff(probsOf(alone), expected) < 1e-5, `batch 1 differs by ${maxDiff(probsOf(alone), expected)}`);

    // Five channels in one job: different audio and lengths, so later steps have fewer rows.
    const others = [sine(300, 16000, 2), new Float32Array(16000 * 7), audio.slice(0, 50_000).map((v) => v * 0.3), sine(3000, 16000, 12)];
    const channels = [new addon.VadChannel(), ...others.map(() => new addon.VadChannel())];
    const batched = await vad.process(task, channels, [audio, ...others]);
    assert.ok(maxDiff(probsOf(batched), expected) < 1e-5, `batched differs by ${maxDiff(probsOf(batched), expected)}`);
    assert.deepEqual(channels.map((_, i) => probsOf(batched, i).length), [audio, ...others].map((a) => Math.floor(a.length / 512)));
    task.close();
  });

  it('gives the same probabilities whatever the audio is split into', async () => {
    const vad = await loadVad();
    const task = new addon.Task('vad');
    const audio = speech().subarray(0, 80_000);
    const whole = probsOf(await vad.process(task, [new addon.VadChannel()], [audio]));
    const channel = new addon.VadChannel();
    const parts: number[] = [];
    for (let i = 0; i < audio.length; i += 777) parts.push(...probsOf(await vad.process(task, [channel], [audio.slice(i, i + 777)])));
    assert.ok(maxDiff(Float32Array.from(parts), whole) < 1e-6);
    channel.reset();
    const again = probsOf(await vad.process(task, [channel], [audio]));
    assert.ok(maxDiff(again, whole) < 1e-6, 'reset starts the channel afresh');
    task.close();
  });

  it('a channel that fails in a batch fails alone: the others get their probabilities, it starts afresh, counted', async () => {
    const vad = await loadVad();
    const task = new addon.Task('vad');
    const audio = speech();
    const expected = probsOf(await vad.process(task, [new addon.VadChannel()], [audio]));
    const failedBefore = vadFailures();
    const channels = [new addon.VadChannel(), new addon.VadChannel(), new addon.VadChannel()];
    channels[1]!.injectFailure();
    const out = await vad.process(task, channels, [audio, audio, audio]);
    const failed = out.probs[1];
    assert.ok(isNativeError(failed) && failed.code === 'MODEL_FAILURE', 'the failing channel gets its error');
    for (const i of [0, 2]) assert.ok(maxDiff(probsOf(out, i), expected) < 1e-6, `channel ${i} is unharmed`);
    assert.equal(vadFailures() - failedBefore, 1, 'one failure counted, for the one channel');
    const again = await vad.process(task, channels, [audio, audio, audio]);
    assert.ok(maxDiff(probsOf(again, 1), expected) < 1e-6, 'the failed channel starts afresh');
    task.close();
  });

  it('refuses a channel that is already in a job in flight, and a missing model file', async () => {
    const vad = await loadVad();
    const task = new addon.Task('vad');
    const channel = new addon.VadChannel();
    const first = vad.process(task, [channel], [new Float32Array(16000)]);
    assert.throws(() => vad.process(task, [channel], [new Float32Array(512)]), (e: unknown) => isNativeError(e) && e.code === 'BUSY');
    assert.throws(() => channel.reset(), (e: unknown) => isNativeError(e) && e.code === 'BUSY');
    await first;
    await assert.rejects(addon.loadVad(task, '/nonexistent/silero.onnx'), (e: unknown) => isNativeError(e) && e.code === 'MODEL_LOAD');
    task.close();
  });

  it('refuses a channel twice in one batch, in time that grows like the batch, not its square', async () => {
    const vad = await loadVad();
    const task = new addon.Task('vad');
    const audio = new Float32Array(0);
    // A batch of n distinct channels and the first one again at the end: refused synchronously,
    // after checking every channel, so the refusal's cost is the duplicate check's.
    const refusalMs = (n: number): number => {
      const channels = Array.from({ length: n }, () => new addon.VadChannel());
      channels.push(channels[0]!);
      const audios = channels.map(() => audio);
      let best = Infinity;
      for (let run = 0; run < 3; run++) {
        const started = performance.now();
        assert.throws(() => vad.process(task, channels, audios), (e: unknown) => isNativeError(e) && e.code === 'INVALID_ARGUMENT' && /twice/.test(e.message));
        best = Math.min(best, performance.now() - started);
      }
      return best;
    };
    const small = refusalMs(4000);
    const large = refusalMs(40_000);
    // Ten times the channels: about ten times the work when linear (n log n: ~13), a hundred
    // times when each channel is compared with every one before it (as it was).
    assert.ok(large / small < 40, `4,000 channels: ${small.toFixed(2)} ms, 40,000: ${large.toFixed(2)} ms (x${(large / small).toFixed(1)})`);
    task.close();
  });
});
