// Real speech recognition (Moonshine tiny, native) on both routes. The fixtures are synthetic
// (espeak-ng) speech, on which this small model makes word errors that shift with the exact
// utterance boundaries, so each route is held to a bound on its word error rate over all the
// fixtures (measured, plus a margin), and every utterance must come out mostly right.
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { streamFile, type ServerEventJson } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage, type Wav } from '../helpers/wav.js';
import { UTTERANCE_A, UTTERANCE_B, wordErrors, words } from '../helpers/wer.js';

// Measured here (2026-11-26): segmented 21 errors in 96 words (0.22), simple 18/96 (0.19).
const WER_BOUND = { '/api/v1/segmented': 0.35, '/api/v1/simple': 0.3 } as const;
// No single utterance may lose more than this share of its words.
const UTTERANCE_WER_BOUND = 0.75;

const FIXTURES: [string, number, string[]][] = [
  ['two_utterances_16k_mono_s16.wav', 0, [UTTERANCE_A, UTTERANCE_B]],
  ['two_utterances_8k_mono_s16.wav', 0, [UTTERANCE_A, UTTERANCE_B]],
  ['two_utterances_48k_mono_f32.wav', 0, [UTTERANCE_A, UTTERANCE_B]],
  ['stereo_44k1_f32.wav', 0, [UTTERANCE_A]],
  ['stereo_44k1_f32.wav', 1, [UTTERANCE_B]],
];

let server: TestServer;
// One window holds a whole fixture on the simple route, so no word is cut in two.
before(async () => { server = await startServer({ MODEL: 'moonshine-tiny', SIMPLE_WINDOW_SECONDS: '12' }); });
after(async () => { await server.stop(); });

async function transcribe(route: string, wav: Wav): Promise<ServerEventJson[]> {
  const { events, closeCode } = await streamFile(server.url(route), startMessage(wav), wav.data, 4096);
  assert.equal(closeCode, 1000);
  assert.deepEqual(events.filter((e) => e.type === 'error'), []);
  return events;
}

describe('speech recognition', () => {
  for (const route of ['/api/v1/segmented', '/api/v1/simple'] as const) {
    it(`${route}: the fixtures at 8, 16, 44.1 (stereo) and 48 kHz transcribe within WER ${WER_BOUND[route]}`, async (t: TestContext) => {
      let errors = 0;
      let total = 0;
      for (const [name, channel, references] of FIXTURES) {
        const events = await transcribe(route, readWav(name));
        const texts = events
          .filter((e) => e.type === 'segment' && e.channel === channel && (route === '/api/v1/simple' || e['is_final'] === true))
          .map((e) => e['text'] as string);
        // Segmented: one final per utterance; simple: one window holding them all.
        const pairs = route === '/api/v1/segmented' ? references.map((r, i) => [r, texts[i] ?? ''] as const) : [[references.join(' '), texts.join(' ')] as const];
        if (route === '/api/v1/segmented') assert.equal(texts.length, references.length, `${name}: one final per utterance`);
        for (const [reference, hypothesis] of pairs) {
          const e = wordErrors(reference, hypothesis);
          const n = words(reference).length;
          t.diagnostic(`${name} ch${channel}: ${e}/${n} word errors: "${hypothesis}"`);
          assert.ok(e / n <= UTTERANCE_WER_BOUND, `${name} ch${channel}: ${e}/${n} word errors in "${hypothesis}"`);
          errors += e;
          total += n;
        }
      }
      t.diagnostic(`${route}: WER ${(errors / total).toFixed(3)} (${errors}/${total})`);
      assert.ok(errors / total <= WER_BOUND[route], `WER ${(errors / total).toFixed(3)} over ${WER_BOUND[route]}`);
    });
  }

  it('gives the same text on repeated runs and with 8 streams at once', async () => {
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    const finals = (events: ServerEventJson[]) => events.filter((e) => e['is_final'] === true).map((e) => e['text']);
    const first = finals(await transcribe('/api/v1/segmented', wav));
    assert.equal(first.length, 2);
    assert.deepEqual(finals(await transcribe('/api/v1/segmented', wav)), first);
    const concurrent = await Promise.all(Array.from({ length: 8 }, () => transcribe('/api/v1/segmented', wav)));
    for (const events of concurrent) assert.deepEqual(finals(events), first);
  });
});
