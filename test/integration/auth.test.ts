// AUTH_TOKEN: WebSocket routes need the token (header or query), checked before the upgrade.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { Client } from '../helpers/client.js';
import { runMain, startServer, type TestServer } from '../helpers/server.js';
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
      [server.url('/api/v1/simple'), { 'Sec-WebSocket-Protocol': 'speech-server, bearer.wrong' }],
    ] as [string, Record<string, string>][]) {
      await assert.rejects(Client.connect(url, headers), /Unexpected server response: 401/, `${url} ${JSON.stringify(headers)}`);
    }
  });

  it('accepts the token as a bearer header or a query parameter, and the stream works', async () => {
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    for (const [url, headers] of [
      [server.url('/api/v1/simple'), { Authorization: `Bearer ${TOKEN}` }],
      [server.url('/api/v1/simple'), { Authorization: `bearer ${TOKEN}` }], // the scheme is case-insensitive (RFC 7235)
      [server.url('/api/v1/simple'), { Authorization: `BEARER  ${TOKEN}` }],
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

  it('accepts the token as the subprotocol bearer.<token> and echoes only "speech-server", never the list', async () => {
    const ws = new WebSocket(server.url('/api/v1/simple'), ['speech-server', `bearer.${TOKEN}`]);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    assert.equal(ws.protocol, 'speech-server');
    ws.close();
    // The raw answer: exactly one protocol, the name; the token never travels back.
    const echoed = await new Promise<string | undefined>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: server.port, path: '/api/v1/simple', headers: {
          Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
          'Sec-WebSocket-Protocol': `speech-server, bearer.${TOKEN}`,
        },
      });
      req.once('upgrade', (res, socket) => { socket.destroy(); resolve(res.headers['sec-websocket-protocol']); });
      req.once('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
      req.once('error', reject);
      req.end();
    });
    assert.equal(echoed, 'speech-server');
  });

  it('AUTH_TOKEN_FILE: the token is read from a file (its trailing newline dropped)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'token-'));
    const file = path.join(dir, 'token');
    writeFileSync(file, 'from-a-file\n');
    const filed = await startServer({ MODEL: 'stub', AUTH_TOKEN_FILE: file });
    try {
      await assert.rejects(Client.connect(filed.url('/api/v1/simple')), /401/);
      const client = await Client.connect(filed.url('/api/v1/simple'), { Authorization: 'Bearer from-a-file' });
      client.close();
    } finally {
      await filed.stop();
      rmSync(dir, { recursive: true });
    }
  });

  it('refuses an empty, whitespace or padded token, an empty token file, and both settings at once, at start-up (exit 2)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'token-'));
    const blank = path.join(dir, 'blank');
    writeFileSync(blank, '  \n');
    try {
      for (const [env, pattern] of [
        [{ AUTH_TOKEN: '' }, /AUTH_TOKEN .*empty/],
        [{ AUTH_TOKEN: '   ' }, /AUTH_TOKEN .*whitespace/],
        [{ AUTH_TOKEN: ' padded ' }, /AUTH_TOKEN .*whitespace/],
        [{ AUTH_TOKEN_FILE: blank }, /AUTH_TOKEN_FILE .*empty/],
        [{ AUTH_TOKEN_FILE: path.join(dir, 'missing') }, /AUTH_TOKEN_FILE .*cannot be read/],
        [{ AUTH_TOKEN: 'x', AUTH_TOKEN_FILE: blank }, /both set/],
      ] as [Record<string, string>, RegExp][]) {
        const { code, stderr } = await runMain([], { MODEL: 'stub', ...env });
        assert.equal(code, 2, `${JSON.stringify(env)}: ${stderr}`);
        assert.match(stderr, pattern);
      }
    } finally {
      rmSync(dir, { recursive: true });
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
