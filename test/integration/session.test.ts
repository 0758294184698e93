// The session state machine: restart mid-stream, stop without disconnect, stop with disconnect.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

let server: TestServer;
before(async () => { server = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '1' }); });
after(async () => { await server.stop(); });

const wav = readWav('two_utterances_16k_mono_s16.wav');
const bytesPerSecond = 32000;
const seconds = (s: number) => wav.data.subarray(0, s * bytesPerSecond);

describe('session', () => {
  it('a start mid-stream finishes the current stream, then starts anew from time 0', async () => {
    const client = await Client.connect(server.url('/api/v1/simple'));
    client.sendJson(startMessage(wav));
    await client.sendAudio(seconds(2.5), 3200);
    client.sendJson(startMessage(wav));
    await client.sendAudio(seconds(1.5), 3200);
    client.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await client.closed, 1000);
    const spans = client.events.map((e) => [e['start_time'], e['end_time']]);
    // first stream: 0-1, 1-2, and its partial 2-2.5 at the restart; second: 0-1, 1-1.5
    assert.deepEqual(spans, [[0, 1], [1, 2], [2, 2.5], [0, 1], [1, 1.5]]);
  });

  it('stop without disconnect keeps the socket open for a second stream', async () => {
    const client = await Client.connect(server.url('/api/v1/simple'));
    client.sendJson(startMessage(wav));
    await client.sendAudio(seconds(1.25), 1000);
    client.sendJson({ request: 'stop', disconnect: false });
    await client.waitFor((ev) => ev.length === 2);
    assert.equal(client.closeCode, undefined, 'still open');
    client.sendJson(startMessage(wav));
    await client.sendAudio(seconds(0.5), 1000);
    client.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await client.closed, 1000);
    assert.deepEqual(client.events.map((e) => [e['start_time'], e['end_time']]), [[0, 1], [1, 1.25], [0, 0.5]]);
  });

  it('audio after a stop without disconnect is refused until the next start', async () => {
    const client = await Client.connect(server.url('/api/v1/simple'));
    client.sendJson(startMessage(wav));
    await client.sendAudio(seconds(0.5), 3200);
    client.sendJson({ request: 'stop' });
    await client.sendAudio(seconds(0.1), 3200);
    await client.waitFor((ev) => ev.some((e) => e.type === 'error'));
    assert.equal(client.events[0]!['type'], 'segment');
    assert.equal(client.events[1]!['code'], 'NOT_STARTED');
    client.close();
  });

  it('stop with disconnect closes cleanly with 1000 after the final segments', async () => {
    const client = await Client.connect(server.url('/api/v1/simple'));
    client.sendJson(startMessage(wav));
    await client.sendAudio(seconds(0.3), 3200);
    client.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await client.closed, 1000);
    assert.equal(client.events.length, 1);
    assert.equal(client.events[0]!['end_time'], 0.3);
  });

  it('a stop with disconnect and no stream just closes', async () => {
    const client = await Client.connect(server.url('/api/v1/simple'));
    client.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await client.closed, 1000);
    assert.deepEqual(client.events, []);
  });
});
