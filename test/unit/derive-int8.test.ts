// models/derive-int8.mjs: the int8 derivation of the Moonshine files is reproducible (the bytes
// the manifest checks at start-up), leaves what it does not rewrite byte for byte, and stores each
// weight it signs as exactly the same products (w - z unchanged).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../../src/paths.js';

const { deriveInt8 } = (await import(path.join(PROJECT_ROOT, 'models/derive-int8.mjs'))) as typeof import('../../models/derive-int8.mjs');
const { decode, text } = (await import(path.join(PROJECT_ROOT, 'models/onnx-wire.mjs'))) as typeof import('../../models/onnx-wire.mjs');
const { readManifest } = (await import(path.join(PROJECT_ROOT, 'models/model-files.mjs'))) as typeof import('../../models/model-files.mjs');

const file = (p: string): Uint8Array => readFileSync(path.join(PROJECT_ROOT, 'models', p));
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

// name -> { type, bytes (raw_data), ints (int32_data, packed) } of a model's top-level initializers.
function initializers(model: Uint8Array): Map<string, { type: bigint; raw?: Uint8Array; ints?: Uint8Array }> {
  const graph = decode(model).find((f) => f.number === 7)!;
  const out = new Map<string, { type: bigint; raw?: Uint8Array; ints?: Uint8Array }>();
  for (const f of decode(graph.body!)) {
    if (f.number !== 5) continue;
    const t = decode(f.body!);
    out.set(text(t.find((x) => x.number === 8)!), { type: t.find((x) => x.number === 2)!.value!, raw: t.find((x) => x.number === 9)?.body, ints: t.find((x) => x.number === 5)?.body });
  }
  return out;
}

describe('int8 derivation of the Moonshine files', () => {
  const derived = readManifest().models.flatMap((m) => m.files.filter((f) => f.derive === 'int8'));

  it('derives, from the package\'s files, exactly the bytes the manifest checks (tiny and base)', () => {
    assert.equal(derived.length, 4);
    for (const f of derived) assert.equal(sha256(deriveInt8(file(f.source!)).bytes), f.sha256, f.path);
  });

  it('rewrites both branches\' output projections of a merged decoder and signs every uint8 weight', () => {
    const decoder = deriveInt8(file('moonshine-tiny/decoder_model_merged.onnx'));
    assert.equal(decoder.projections, 2);
    const before = initializers(file('moonshine-tiny/decoder_model_merged.onnx')), after = initializers(decoder.bytes);
    const uint8 = [...before].filter(([, t]) => t.type === 2n).map(([name]) => name);
    assert.equal(decoder.signed * 2, uint8.length, 'every uint8 tensor is a weight or its zero point');
    const weight = 'model.decoder.embed_tokens.weight_merged_0_quantized';
    assert.equal(after.get(weight)!.type, 3n);
    const [u, s] = [before.get(weight)!.raw!, after.get(weight)!.raw!];
    assert.ok(u.every((b, i) => ((b - 128) << 24 >> 24) === (s[i]! << 24 >> 24)), 'w - 128, byte for byte');
    assert.equal(deriveInt8(file('moonshine-tiny/encoder_model.onnx')).projections, 0, 'an encoder has no projection');
  });

  it('copies a model it has nothing to rewrite in byte for byte (the Silero VAD)', () => {
    const vad = file('silero-vad/silero_vad.onnx');
    const out = deriveInt8(vad);
    assert.equal(out.signed + out.projections, 0);
    assert.equal(sha256(out.bytes), sha256(vad));
  });
});
