// The peer for the ASR benchmark: Moonshine tiny as a Node developer runs it with
// onnxruntime-node, the same model files and the same greedy decoding as the server's native
// model (native/models/moonshine.cc): one encoder run, then the merged decoder one token at a time
// with its KV cache (step 0 fills the cross-attention cache from the encoder output; later steps
// fetch only the logits and the self-attention cache), argmax over the last logits, stop at EOS or
// after ceil(seconds * 6) tokens; one intra-op thread per session. Detokenised with
// llama-tokenizer-js (Moonshine uses the LLaMA SentencePiece vocabulary).
//
// onnxruntime-node runs each session.run synchronously on the main thread (inside a
// setImmediate), so every encoder run and decoder step blocks the event loop for its duration.
// Audio over 12 s is rejected: the native model cuts it into chunks, which this peer does not.
import path from 'node:path';
import llamaTokenizer from 'llama-tokenizer-js';
import * as ort from 'onnxruntime-node';

const SAMPLE_RATE = 16000;
const MIN_SAMPLES = SAMPLE_RATE / 10; // shorter audio: empty text without running the model
const MAX_SAMPLES = 12 * SAMPLE_RATE; // the native model's longest single chunk
const TOKENS_PER_SECOND = 6;
const BOS = 1n;
const EOS = 2;
const KV_KINDS = ['decoder.key', 'decoder.value', 'encoder.key', 'encoder.value'] as const;

interface JsTranscript {
  ids: number[];
  text: string;
  encoderSeconds: number;
  decoderSeconds: number;
}

export class MoonshineJs {
  private constructor(
    private readonly encoder: ort.InferenceSession,
    private readonly decoder: ort.InferenceSession,
    private readonly layers: number,
    private readonly heads: number,
    private readonly headDim: number,
  ) {}

  /** `dir` holds encoder_model.onnx and decoder_model_merged.onnx. */
  static async load(dir: string): Promise<MoonshineJs> {
    const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
    const encoder = await ort.InferenceSession.create(path.join(dir, 'encoder_model.onnx'), options);
    const decoder = await ort.InferenceSession.create(path.join(dir, 'decoder_model_merged.onnx'), options);
    let layers = 0;
    while (decoder.inputNames.includes(`past_key_values.${layers}.decoder.key`)) layers++;
    const past = decoder.inputMetadata.find((m) => m.name === 'past_key_values.0.decoder.key');
    const shape = past?.isTensor ? past.shape : [];
    const [heads, headDim] = [shape[1], shape[3]];
    if (layers === 0 || typeof heads !== 'number' || typeof headDim !== 'number') {
      throw new Error(`${dir}: not a merged Moonshine decoder with a KV cache`);
    }
    return new MoonshineJs(encoder, decoder, layers, heads, headDim);
  }

  async transcribe(samples: Float32Array): Promise<JsTranscript> {
    const result: JsTranscript = { ids: [], text: '', encoderSeconds: 0, decoderSeconds: 0 };
    if (samples.length < MIN_SAMPLES) return result;
    if (samples.length > MAX_SAMPLES) throw new Error(`the JS peer takes at most ${MAX_SAMPLES / SAMPLE_RATE} s of audio`);

    const encoderStart = performance.now();
    const encoded = await this.encoder.run({ input_values: new ort.Tensor('float32', samples, [1, samples.length]) });
    const hidden = encoded['last_hidden_state']!;
    result.encoderSeconds = (performance.now() - encoderStart) / 1000;

    const decoderStart = performance.now();
    const maxTokens = Math.ceil((samples.length * TOKENS_PER_SECOND) / SAMPLE_RATE);
    const past: Record<string, ort.Tensor> = {};
    for (let layer = 0; layer < this.layers; layer++) {
      for (const kind of KV_KINDS) {
        past[`past_key_values.${layer}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, this.heads, 0, this.headDim]);
      }
    }
    const firstFetches = ['logits'];
    const nextFetches = ['logits'];
    for (let layer = 0; layer < this.layers; layer++) {
      for (const kind of KV_KINDS) firstFetches.push(`present.${layer}.${kind}`);
      nextFetches.push(`present.${layer}.decoder.key`, `present.${layer}.decoder.value`);
    }

    let token = BOS;
    for (let step = 0; step < maxTokens; step++) {
      const first = step === 0;
      const out = await this.decoder.run(
        {
          input_ids: new ort.Tensor('int64', BigInt64Array.of(token), [1, 1]),
          encoder_hidden_states: hidden,
          use_cache_branch: new ort.Tensor('bool', Uint8Array.of(first ? 0 : 1), [1]),
          ...past,
        },
        first ? firstFetches : nextFetches,
      );

      // Greedy: argmax over the last position's logits (first maximum wins).
      const logits = out['logits']!;
      const vocab = logits.dims.at(-1)!;
      const data = logits.data as Float32Array;
      const base = data.length - vocab;
      let best = 0;
      for (let j = 1; j < vocab; j++) if (data[base + j]! > data[base + best]!) best = j;

      if (best === EOS) break;
      result.ids.push(best);
      if (result.ids.length === maxTokens) break;
      token = BigInt(best);

      // The presents become the next step's pasts; the cross-attention cache only from step 0.
      for (let layer = 0; layer < this.layers; layer++) {
        for (const kind of first ? KV_KINDS : KV_KINDS.slice(0, 2)) {
          past[`past_key_values.${layer}.${kind}`] = out[`present.${layer}.${kind}`]!;
        }
      }
    }
    result.decoderSeconds = (performance.now() - decoderStart) / 1000;

    // As the native vocabulary: no control tokens (<unk>, <s>, </s>), "▁" -> " ", one leading
    // space dropped.
    result.text = llamaTokenizer.decode(result.ids.filter((id) => id > EOS), false, false).replace(/^ /, '');
    return result;
  }
}
