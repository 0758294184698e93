// The inference engine's native half, in process (no server): Moonshine transcribing many
// utterances in one job (decoded in lock-step, each padded with silence to its group's longest)
// and decoding with a draft (the previous interim's tokens) give the words single greedy
// decoding gives, on recorded human speech. Differences are bounded, not forbidden: the decoder
// quantizes its activations with one scale per call, so a row's logits shift a little with the
// other rows (and a many-token call with its length), which can tip near-ties (punctuation).
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { addon, isNativeError, type ModelItem, type NativeModel } from '../../src/native/binding.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { Task } from '../../src/tasks.js';
import { normalise, realSpeech } from '../helpers/real-speech.js';
import { wordErrors } from '../helpers/wer.js';

const { samples, utterances } = realSpeech();
// Each utterance with a little padding, as the VAD hands them over.
const clips = utterances.map((u) => samples.slice(Math.max(0, Math.round((u.start - 0.2) * 16000)), Math.round((u.end + 0.2) * 16000)));

let task: Task;
let model: NativeModel;
before(async () => {
  task = new Task('inference');
  model = await addon.loadModel(task.native, { kind: 'moonshine', dir: path.join(PROJECT_ROOT, 'models/moonshine-tiny'), weights: 'auto' });
});
after(() => task.close());

function texts(items: (ModelItem | Error)[]): string[] {
  return items.map((item) => {
    assert.ok(!isNativeError(item), `an item failed: ${isNativeError(item) ? item.message : ""}`);
    return (item as ModelItem).text ?? '';
  });
}

function errorsAgainstReference(hypotheses: string[]): number {
  return hypotheses.reduce((n, h, i) => n + wordErrors(normalise(utterances[i]!.text), normalise(h)), 0);
}

describe('inference engine (native, real speech)', () => {
  let single: string[] = [];

  it('one utterance per job: the reference decoding, WER within its measured bound', async (t: TestContext) => {
    single = [];
    for (const clip of clips) single.push(...texts((await model.runBatch(task.native, [clip], [undefined])).items));
    const errors = errorsAgainstReference(single);
    const total = utterances.reduce((n, u) => n + normalise(u.text).split(' ').length, 0);
    t.diagnostic(`single: ${errors}/${total} word errors (WER ${(errors / total).toFixed(3)})`);
    // Measured 2026-12-01: 7 errors in 147 words.
    assert.ok(errors / total <= 0.08, `WER ${(errors / total).toFixed(3)}`);
  });

  it('all utterances in one job give the same words, within one word in all (the WER does not rise)', async (t: TestContext) => {
    const out = await model.runBatch(task.native, clips, clips.map(() => undefined));
    const batched = texts(out.items);
    const differing = batched.reduce((n, b, i) => n + wordErrors(single[i]!, b), 0);
    t.diagnostic(`batched: ${differing} words differ from single decoding; ${errorsAgainstReference(batched)} errors against the reference (single: ${errorsAgainstReference(single)})`);
    assert.ok(differing <= 1, `${differing} words differ`);
    assert.ok(errorsAgainstReference(batched) <= errorsAgainstReference(single), 'the WER does not rise');
    assert.equal(out.items.length, clips.length);
    for (const item of out.items) assert.ok((item as ModelItem).ids.length > 0, 'each item carries its tokens');
  });

  it('interims chained by drafts: each final is the one decoded from scratch; interims differ only slightly', async (t: TestContext) => {
    let interimDiffs = 0;
    let interims = 0;
    for (const [i, clip] of clips.slice(0, 6).entries()) {
      let draft: Int32Array | undefined;
      for (let end = 16000; ; end += 8000) {
        const isFinal = end >= clip.length;
        const audio = clip.subarray(0, Math.min(end, clip.length));
        const [drafted] = (await model.runBatch(task.native, [audio], [draft])).items as ModelItem[];
        if (isFinal) {
          assert.equal(wordErrors(single[i]!, drafted!.text!), 0, `utterance ${i + 1}: "${drafted!.text}" vs "${single[i]}"`);
          break;
        }
        const [scratch] = (await model.runBatch(task.native, [audio], [undefined])).items as ModelItem[];
        interims++;
        interimDiffs += wordErrors(scratch!.text!, drafted!.text!) > 0 ? 1 : 0;
        draft = drafted!.ids;
      }
    }
    t.diagnostic(`${interimDiffs} of ${interims} interims differ from decoding from scratch`);
    assert.ok(interimDiffs <= interims / 5, `${interimDiffs} of ${interims} interims differ`);
  });

  it('drafted rows batched in one job: the words of the same job decoded from scratch; a junk draft among them costs nothing', async (t: TestContext) => {
    // Each utterance's first 70 % is the draft of the whole, six utterances in one job. Against
    // the same job from scratch: batching alone may move a near-tie (the other engine tests bound that).
    const prefixes = clips.slice(0, 6);
    const drafts = (await model.runBatch(task.native, prefixes.map((c) => c.subarray(0, Math.round(c.length * 0.7))), prefixes.map(() => undefined))).items.map((it) => (it as ModelItem).ids);
    const job = async (withDrafts: (Int32Array | undefined)[]): Promise<{ texts: string[]; calls: number }> => {
      const items = (await model.runBatch(task.native, prefixes, withDrafts)).items as ModelItem[];
      return { texts: items.map((it) => it.text!), calls: Math.max(...items.map((it) => it.decoderCalls)) };
    };
    const scratch = await job(prefixes.map(() => undefined));
    const differ = (got: string[]): number => got.reduce((n, text, i) => n + wordErrors(scratch.texts[i]!, text), 0);
    const withDrafts = await job(drafts);
    const drafted = differ(withDrafts.texts);
    const junk = Int32Array.from({ length: 12 }, (_, k) => 1000 + k);
    const withJunk = differ((await job([junk, ...drafts.slice(1)])).texts);
    t.diagnostic(`words differing from the job decoded from scratch: ${drafted} with drafts, ${withJunk} with a junk draft in the job; decoder calls ${withDrafts.calls} with drafts, ${scratch.calls} from scratch`);
    assert.ok(withDrafts.calls < scratch.calls, 'the drafts save decoder calls');
    assert.ok(drafted <= 1, `${drafted} words differ with drafts`);
    assert.ok(withJunk <= 1, `${withJunk} words differ with a junk draft in the job`);
  });

  it('a draft the model disagrees with from its first token costs nothing in words', async () => {
    const junk = Int32Array.from({ length: 12 }, (_, k) => 1000 + k);
    const [withJunk] = (await model.runBatch(task.native, [clips[0]!], [junk])).items as ModelItem[];
    assert.equal(withJunk!.text, single[0]);
  });

  it('Moonshine base (8 decoder layers, its geometry read from the model) batches the same way, within its WER bound', async (t: TestContext) => {
    const base = await addon.loadModel(task.native, { kind: 'moonshine', dir: path.join(PROJECT_ROOT, 'models/moonshine-base'), weights: 'auto' });
    const alone: string[] = [];
    for (const clip of clips) alone.push(...texts((await base.runBatch(task.native, [clip], [undefined])).items));
    const batched = texts((await base.runBatch(task.native, clips, clips.map(() => undefined))).items);
    const errors = errorsAgainstReference(alone);
    const differing = batched.reduce((n, b, i) => n + wordErrors(alone[i]!, b), 0);
    t.diagnostic(`base: ${errors} word errors alone (tiny: ${errorsAgainstReference(single)}), ${differing} words differ batched`);
    assert.ok(errors <= errorsAgainstReference(single) + 2, `base made ${errors} word errors`);
    assert.ok(differing <= 1, `${differing} words differ batched`);
  });

  it('the int8 derivation (signed weights, int8 output projection) gives the package\'s words, and auto serves it where the CPU has VNNI', async (t: TestContext) => {
    const int8 = await addon.loadModel(task.native, { kind: 'moonshine', dir: path.join(PROJECT_ROOT, 'models/moonshine-tiny'), weights: 'int8' });
    const published = await addon.loadModel(task.native, { kind: 'moonshine', dir: path.join(PROJECT_ROOT, 'models/moonshine-tiny'), weights: 'package' });
    assert.equal(int8.weights, 'int8');
    assert.equal(published.weights, 'package');
    const vnni = /\b(avx512_vnni|avx_vnni)\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
    assert.equal(model.weights, vnni ? 'int8' : 'package', 'auto follows the CPU');
    const a = texts((await int8.runBatch(task.native, clips, clips.map(() => undefined))).items);
    const b = texts((await published.runBatch(task.native, clips, clips.map(() => undefined))).items);
    const differing = a.reduce((n, x, i) => n + wordErrors(normalise(b[i]!), normalise(x)), 0);
    t.diagnostic(`int8: ${differing} words differ from the package's weights; ${errorsAgainstReference(a)} errors against the reference (package: ${errorsAgainstReference(b)})`);
    assert.ok(differing <= 1, `${differing} words differ`);
    assert.ok(errorsAgainstReference(a) <= errorsAgainstReference(b) + 1, 'the WER does not rise by more than one word');
  });

  it('refuses malformed batches synchronously with INVALID_ARGUMENT', () => {
    for (const [s, d] of [[[], []], [[clips[0]!], []], [[new Float64Array(4)], [undefined]], [[clips[0]!], [new Float32Array(2)]]] as const) {
      assert.throws(() => model.runBatch(task.native, s as unknown as Float32Array[], d as unknown as (Int32Array | undefined)[]), (e: unknown) => isNativeError(e) && e.code === 'INVALID_ARGUMENT');
    }
  });

  it('a model without batching (the stub) answers item by item; a failing item fails alone, counted', async () => {
    const stub = await addon.loadModel(task.native, { kind: 'stub', stub: { delay_ms: 0, constant_factor: 0, jitter: 0, failure_rate: 1, panic_rate: 0, warmup_penalty_ms: 0, seed: 3 } });
    const out = await stub.runBatch(task.native, [clips[0]!, clips[1]!], [undefined, undefined]);
    assert.equal(out.items.length, 2);
    for (const item of out.items) assert.ok(isNativeError(item) && item.code === 'MODEL_FAILURE', JSON.stringify(item));
    const ok = await addon.loadModel(task.native, { kind: 'stub', stub: { delay_ms: 0, constant_factor: 0, jitter: 0, failure_rate: 0, panic_rate: 0, warmup_penalty_ms: 0, seed: 3 } });
    const counts = (await ok.runBatch(task.native, [clips[0]!, clips[1]!], [undefined, undefined])).items as ModelItem[];
    assert.deepEqual(counts.map((c) => c.count), [clips[0]!.length, clips[1]!.length]);
    assert.equal(ok.maxPadSamples, 0, 'the stub batches any lengths');
  });

  it('tells the scheduler how far the lengths in one job may differ: 2 s of silence padding for Moonshine', () => {
    assert.equal(model.maxPadSamples, 32000);
  });
});
