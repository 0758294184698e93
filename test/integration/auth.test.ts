// AUTH_TOKEN: WebSocket routes need the token (header or query), checked before the upgrade.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const TOKEN = 's3cret-token-value';
let server: TestServer;
before(async () => { server = await startServer({ MODEL: 'stub', AUTH_TOKEN: TOKEN }); });
after(async () => { await server.stop(); });

describe('auth', () => {
  it('refuses a missing or wrong token with HTTP 401 before the upgrade', async () => {
    for (const [url, headers] of [
      [server.url('/api/v1/segmented'), {}],
      [server.url('/api/v1/simple'), { Authorization: 'Bearer wrong' }],
      [server.url('/api/v1/simple?token=wrong'), {}],
      [server.url('/api/v1/simple'), { Authorization: `Basic ${TOKEN}` }],
    ] as [string, Record<string, string>][]) {
      await assert.rejects(Client.connect(url, headers), /Unexpected server response: 401/, `${url} ${JSON.stringify(headers)}`);
    }
  });

  it('accepts the token as a bearer header or a query parameter, and the stream works', async () => {
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    for (const [url, headers] of [
      [server.url('/api/v1/simple'), { Authorization: `Bearer ${TOKEN}` }],
      [server.url(`/api/v1/simple?token=${TOKEN}`), {}],
    ] as [string, Record<string, string>][]) {
      const client = await Client.connect(url, headers);
      client.sendJson(startMessage(wav));
      await client.sendAudio(wav.data.subarray(0, 32000), 4000);
      client.sendJson({ request: 'stop', disconnect: true });
      assert.equal(await client.closed, 1000);
      assert.deepEqual(client.events.map((e) => e.type), ['segment']);
    }
  });

  it('leaves health and metrics open by default, and never logs the token', async () => {
    assert.equal((await fetch(server.http('/api/v1/health'))).status, 200);
    const metrics = await (await fetch(server.http('/metrics'))).text();
    assert.match(metrics, /connections_refused_total\{reason="unauthorized"\} [1-9]/);
    assert.ok(!JSON.stringify(server.logs).includes(TOKEN));
  });

  it('AUTH_ALL_ROUTES protects health and metrics too', async () => {
    const strict = await startServer({ MODEL: 'stub', AUTH_TOKEN: TOKEN, AUTH_ALL_ROUTES: 'true' });
    try {
      assert.equal((await fetch(strict.http('/api/v1/health'))).status, 401);
      assert.equal((await fetch(strict.http('/metrics'))).status, 401);
      assert.equal((await fetch(strict.http('/metrics'), { headers: { Authorization: `Bearer ${TOKEN}` } })).status, 200);
      assert.equal((await fetch(strict.http(`/api/v1/health?token=${TOKEN}`))).status, 200);
      const live = await fetch(strict.http('/api/v1/health/live'));
      assert.equal(live.status, 200, 'liveness stays open: probes carry no token');
      assert.deepEqual(await live.json(), { alive: true }, 'and it tells nothing else');
    } finally {
      await strict.stop();
    }
  });
});
