// /api/v1/simple end to end: a real server, a real WebSocket client, the stub model.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { streamFile, type ServerEventJson } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const WINDOW = 2; // seconds, small so every fixture spans several windows
const FIXTURES = ['two_utterances_16k_mono_s16.wav', 'two_utterances_8k_mono_s16.wav', 'two_utterances_48k_mono_f32.wav', 'stereo_44k1_f32.wav'];

let server: TestServer;
// MAX_MESSAGES_PER_SECOND=0: the 1-byte-frame case sends half a million messages at once to test
// reassembly; the message budget that refuses such a client is tested in hostile-input.test.ts.
before(async () => { server = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: String(WINDOW), MAX_MESSAGES_PER_SECOND: '0' }); });
after(async () => { await server.stop(); });

function segmentsOf(events: ServerEventJson[], channel: number): ServerEventJson[] {
  return events.filter((e) => e.type === 'segment' && e.channel === channel);
}

describe('/api/v1/simple', () => {
  for (const name of FIXTURES) {
    it(`streams ${name} into ordered windows per channel that cover the audio`, async () => {
      const wav = readWav(name);
      const { events, closeCode } = await streamFile(server.url('/api/v1/simple'), startMessage(wav), wav.data, 4096);
      assert.equal(closeCode, 1000);
      assert.deepEqual(events.filter((e) => e.type === 'error'), []);
      for (let c = 0; c < wav.channels; c++) {
        const segments = segmentsOf(events, c);
        assert.equal(segments.length, Math.ceil(wav.seconds / WINDOW), `channel ${c}: one segment per window`);
        let expectedStart = 0;
        for (const s of segments) {
          assert.ok(Math.abs((s['start_time'] as number) - expectedStart) < 1e-9, `contiguous: ${JSON.stringify(s)}`);
          const length = (s['end_time'] as number) - (s['start_time'] as number);
          assert.ok(Math.abs((s['count'] as number) / 16000 - length) < 1e-9, 'count is the window length in 16 kHz samples');
          expectedStart = s['end_time'] as number;
        }
        assert.ok(Math.abs(expectedStart - wav.seconds) <= 1 / 16000 + 1e-9, `channel ${c} covers ${wav.seconds} s, got ${expectedStart}`);
        assert.equal(segments.at(-1)!['is_final'], undefined, 'the simple route has no is_final');
      }
      assert.ok(events.every((e) => e.type !== 'segment' || e.channel < wav.channels));
    });
  }

  for (const chunk of [333, 1, 65537]) {
    it(`gives exactly the same events when frames split samples anywhere (${chunk}-byte frames)`, async () => {
      const wav = readWav('stereo_44k1_f32.wav');
      // 1-byte frames over the whole file would be 3.9 M messages; a 1.5 s slice keeps the case quick.
      const data = chunk === 1 ? wav.data.subarray(0, 8 * 44100 * 1.5 + 5) : wav.data;
      const whole = await streamFile(server.url('/api/v1/simple'), startMessage(wav), data, 8 * 4410);
      const split = await streamFile(server.url('/api/v1/simple'), startMessage(wav), data, chunk);
      assert.ok(whole.events.length > 0);
      // Order is guaranteed per channel; channels run independently.
      for (const c of [0, 1]) assert.deepEqual(segmentsOf(split.events, c), segmentsOf(whole.events, c));
      assert.equal(split.events.length, whole.events.length);
    });
  }
});
