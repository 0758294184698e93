// Files of any length over the native WebSocket: a client that sends faster than real time asks
// for `progress` events and keeps its audio within a window of what the server reports done, so
// it is served as fast as the server can instead of being cut off at MAX_BACKLOG_SECONDS. The
// CLI does this by default; here with an hour of recorded speech, sent at full speed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Client } from '../helpers/client.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { prompts, scoreWer } from '../helpers/real-speech.js';
import { runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage, wavFile } from '../helpers/wav.js';

const speech = readWav('real-speech/prompts_16k_mono_s16.wav');
const PASSES = 48; // 48 × 75.2 s: just over an hour


let server: TestServer;
let tmp: string;
before(async () => {
  server = await startServer({ MODEL: 'moonshine-tiny' });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'speech-long-'));
});
after(async () => {
  await server.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('long files over the WebSocket', () => {
  it('progress events: with "progress": true the server reports how far it got, in order, never beyond the audio sent', async () => {
    const client = await Client.connect(server.url('/api/v1/segmented'));
    client.sendJson(startMessage(speech, { progress: true }));
    const audio = speech.data.subarray(0, 32000 * 20);
    await client.sendAudio(audio, 32000); // 20 s at once
    await client.waitFor((events) => events.some((e) => e.type === 'progress' && (e['time'] as number) >= 15), 30_000);
    // One event per 0.5 s of progress at most: the VAD answers a second at a time when ahead.
    client.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await client.closed, 1000);
    const times = client.events.filter((e) => e.type === 'progress').map((e) => e['time'] as number);
    assert.ok(times.length >= 5 && times.length <= 40, `${times.length} progress events`);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!, 'progress only moves forward');
    assert.ok(times.at(-1)! <= 20, 'never beyond the audio sent');
    assert.ok(client.events.every((e) => e.type !== 'progress' || e.channel === 0));

    // Without asking, no progress events (existing clients see the protocol as before).
    const plain = await Client.connect(server.url('/api/v1/segmented'));
    plain.sendJson(startMessage(speech));
    await plain.sendAudio(speech.data.subarray(0, 32000 * 8), 32000);
    plain.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await plain.closed, 1000);
    assert.ok(plain.events.length > 0 && plain.events.every((e) => e.type !== 'progress'));
  });

  it('speech-client stream sends an hour of speech at full speed: every utterance transcribed, nothing shed', { timeout: 600_000 }, async (t: TestContext) => {
    const pcm = Buffer.concat(Array.from({ length: PASSES }, () => speech.data));
    const file = path.join(tmp, 'hour.wav');
    writeFileSync(file, wavFile(pcm, speech.sampleRate));
    const backlog = async (): Promise<number | undefined> => (await scrapeMetrics(server.http('/metrics'))).get('errors_total{kind="BACKLOG"}');
    const backlogBefore = await backlog();
    const started = performance.now();
    const { code, stdout, stderr } = await runCli(['stream', '--json', '--url', server.url('/api/v1/segmented'), file], {}, 600_000);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(code, 0, `exit ${code}: ${stderr.slice(-500)}`);
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(events.filter((e) => e['type'] === 'error'), []);
    const finals = events.filter((e) => e['type'] === 'segment' && e['is_final'] === true).map((e) => e['text'] as string);
    const references = prompts().map((p) => p.text);
    assert.equal(finals.length, PASSES * references.length, 'one final per utterance');
    const score = scoreWer(Array.from({ length: PASSES }, () => references.join(' ')).join(' '), finals.join(' '));
    t.diagnostic(`${(pcm.length / 32000 / 60).toFixed(1)} min of audio in ${seconds.toFixed(1)} s (${(pcm.length / 32000 / seconds).toFixed(0)}x real time), WER ${score.wer.toFixed(3)}`);
    assert.ok(score.wer <= 0.1, `WER ${score.wer.toFixed(3)}`);
    assert.equal(await backlog(), backlogBefore, 'no BACKLOG');
  });
});
