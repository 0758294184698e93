// /api/v1/segmented end to end with the stub model: voice activity, finals, interims, stop.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, streamFile, type ServerEventJson } from '../helpers/client.js';
import { sendPaced } from '../helpers/pace.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { sine, toS16 } from '../helpers/signal.js';
import { readWav, startMessage } from '../helpers/wav.js';

let server: TestServer;
before(async () => { server = await startServer({ MODEL: 'stub' }); });
after(async () => { await server.stop(); });

// The fixtures' README: utterance A inside 0.5-4.35 s, B inside 5.85-10.84 s.
const A = [0.5, 4.35] as const;
const B = [5.85, 10.84] as const;

const of = (events: ServerEventJson[], channel: number, type?: string) =>
  events.filter((e) => e.channel === channel && (type === undefined || e.type === type));

function assertUtterances(events: ServerEventJson[], channel: number, windows: (readonly [number, number])[]): void {
  const vad = of(events, channel).filter((e) => e.type === 'active' || e.type === 'inactive');
  assert.deepEqual(vad.map((e) => e.type), windows.flatMap(() => ['active', 'inactive']), `channel ${channel}: active/inactive pairs`);
  windows.forEach(([from, to], i) => {
    const on = vad[2 * i]!['time'] as number;
    const off = vad[2 * i + 1]!['time'] as number;
    assert.ok(on >= from && off <= to && on < off, `channel ${channel} utterance ${i}: ${on}-${off} inside ${from}-${to}`);
  });
  const finals = of(events, channel, 'segment').filter((e) => e['is_final'] === true);
  assert.equal(finals.length, windows.length, `channel ${channel}: one final per utterance`);
  finals.forEach((f, i) => {
    const on = vad[2 * i]!['time'] as number;
    const off = vad[2 * i + 1]!['time'] as number;
    assert.ok((f['start_time'] as number) <= on && (f['end_time'] as number) >= off, 'the final covers its utterance');
    assert.ok(Math.abs((f['count'] as number) / 16000 - ((f['end_time'] as number) - (f['start_time'] as number))) < 1e-9, 'and holds exactly that audio');
    if (i > 0) assert.ok((f['start_time'] as number) >= (finals[i - 1]!['end_time'] as number), 'finals in order, no overlap');
  });
  // Each final comes after its inactive.
  for (const f of finals) {
    const inactive = events.findIndex((e) => e.channel === channel && e.type === 'inactive' && Math.abs((e['time'] as number) - (f['end_time'] as number)) < 0.5);
    assert.ok(inactive >= 0 && inactive < events.indexOf(f));
  }
}

describe('/api/v1/segmented', () => {
  for (const name of ['two_utterances_16k_mono_s16.wav', 'two_utterances_8k_mono_s16.wav', 'two_utterances_48k_mono_f32.wav']) {
    it(`${name}: exactly two utterances, each inside its window, finals in order`, async () => {
      const wav = readWav(name);
      const { events, closeCode } = await streamFile(server.url('/api/v1/segmented'), startMessage(wav), wav.data, 4096);
      assert.equal(closeCode, 1000);
      assert.deepEqual(events.filter((e) => e.type === 'error'), []);
      assertUtterances(events, 0, [A, B]);
      assert.equal(events.filter((e) => e['is_final'] === false).length, 0, 'no interims unless asked');
    });
  }

  it('stereo: each channel gets its own utterance at its own time, nothing on the other', async () => {
    const wav = readWav('stereo_44k1_f32.wav');
    const { events } = await streamFile(server.url('/api/v1/segmented'), startMessage(wav), wav.data, 8820);
    // Channel 0: 0.5 s silence then A (3.85 s); channel 1: 1 s silence then B (4.99 s).
    assertUtterances(events, 0, [A]);
    assertUtterances(events, 1, [[1.0, 1.0 + 4.99]]);
  });

  it('with interim_results, live-paced: interims every ~500 ms of audio inside each utterance (a fifth of the speech so far once longer), never after its final', async () => {
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    const client = await Client.connect(server.url('/api/v1/segmented'));
    client.sendJson(startMessage(wav, { interim_results: true }));
    await sendPaced(client, wav.data, 32000, 0.02, 4);
    client.sendJson({ request: 'stop', disconnect: true });
    await client.closed;
    const events = client.events;
    assertUtterances(events, 0, [A, B]);
    const finals = events.filter((e) => e['is_final'] === true);
    for (const final of finals) {
      const interims = events.filter((e) => e['is_final'] === false && e['start_time'] === final['start_time']);
      assert.ok(interims.length >= 2, `utterance at ${String(final['start_time'])}: ${interims.length} interims`);
      const ends = interims.map((e) => e['end_time'] as number);
      for (let i = 1; i < ends.length; i++) {
        const gap = ends[i]! - ends[i - 1]!;
        const spacing = Math.max(0.5, 0.2 * (ends[i - 1]! - (final['start_time'] as number)));
        assert.ok(gap >= 0.5 - 1e-9 && gap <= spacing + 0.25, `interims ${gap.toFixed(3)} s of audio apart (spacing ${spacing.toFixed(3)} s)`);
      }
      assert.ok(events.indexOf(interims.at(-1)!) < events.indexOf(final), 'no interim after its final');
    }
  });

  it('silence and low noise alone give no events', async () => {
    const noise = new Float32Array(16000 * 4).map(() => (Math.random() - 0.5) * 0.004);
    const hum = sine(50, 16000, 4, 0.01);
    for (const audio of [new Float32Array(16000 * 4), noise, hum]) {
      const { events } = await streamFile(server.url('/api/v1/segmented'), startMessage({ channels: 1, sampleRate: 16000, bitDepth: 16, isFloat: false }), toS16(audio), 3200);
      assert.deepEqual(events, []);
    }
  });

  it('stop in the middle of speech ends the utterance: inactive at the end of the audio, then its final', async () => {
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    const { events } = await streamFile(server.url('/api/v1/segmented'), startMessage(wav), wav.data.subarray(0, 32000 * 3), 3200);
    assert.deepEqual(events.map((e) => e.type), ['active', 'inactive', 'segment']);
    assert.ok(Math.abs((events[1]!['time'] as number) - 3) < 1e-9);
    assert.equal(events[2]!['end_time'], 3);
  });

  it('a restart resets the VAD: the new stream starts from time 0 with fresh state', async () => {
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    const client = await Client.connect(server.url('/api/v1/segmented'));
    client.sendJson(startMessage(wav));
    await client.sendAudio(wav.data.subarray(0, 32000 * 2), 3200); // mid-utterance A
    client.sendJson(startMessage(wav));
    await client.sendAudio(wav.data, 3200);
    client.sendJson({ request: 'stop', disconnect: true });
    await client.closed;
    const types = client.events.map((e) => e.type);
    assert.deepEqual(types.slice(0, 3), ['active', 'inactive', 'segment'], 'the first stream is finished at the restart');
    assertUtterances(client.events.slice(3), 0, [A, B]);
  });

  it('speech longer than MAX_UTTERANCE_SECONDS is split into utterances of that length', async () => {
    const short = await startServer({ MODEL: 'stub', MAX_UTTERANCE_SECONDS: '2', VAD_PAD_BEFORE_MS: '200' });
    try {
      const wav = readWav('two_utterances_16k_mono_s16.wav');
      const { events } = await streamFile(short.url('/api/v1/segmented'), startMessage(wav), wav.data, 4096);
      const finals = events.filter((e) => e['is_final'] === true);
      // Speech per piece: 2 s less the 0.2 s padding before it. A: 0.544-3.936 (3.4 s) -> 2 pieces;
      // B: 5.92-10.528 (4.6 s) -> 3 pieces.
      assert.equal(finals.length, 5);
      for (const f of finals) assert.ok((f['end_time'] as number) - (f['start_time'] as number) <= 2 + 1e-9, 'model input within the maximum, padding included');
      const actives = events.filter((e) => e.type === 'active').map((e) => e['time']);
      const inactives = events.filter((e) => e.type === 'inactive').map((e) => e['time']);
      assert.ok(Math.abs((actives[1] as number) - (inactives[0] as number)) < 1e-9, 'the split is seamless');
    } finally {
      await short.stop();
    }
  });
});
