// Who gets a connection and for how long: connections without a stream time out, one address
// cannot hold every slot (process-wide, with worker threads too), connections have a maximum
// lifetime, browsers' Origin and the Host header are checked, the page carries its security
// headers, and listening beyond loopback without a token is announced loudly.
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { Client } from '../helpers/client.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { sendPaced } from '../helpers/pace.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const wav = readWav('two_utterances_16k_mono_s16.wav');
const T = { timeout: 60_000 };

async function counted(server: TestServer, series: string): Promise<number> {
  return (await scrapeMetrics(server.http('/metrics'))).get(series) ?? 0;
}

/** The HTTP status of a WebSocket upgrade to `route` with these headers (101 when it opened). */
function upgradeStatus(server: TestServer, route: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.url(route), { headers });
    ws.once('open', () => { ws.terminate(); resolve(101); });
    ws.once('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode ?? 0); });
    ws.once('error', reject);
  });
}

/** GET `route` with a Host header of our choosing (fetch may not set Host). */
function get(server: TestServer, route: string, host: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: server.port, path: route, headers: { Host: host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.once('error', reject);
  });
}

describe('connections without a stream, per-address cap, lifetime', () => {
  it('START_TIMEOUT_SECONDS: a connection that never starts, or sits after a stop, is closed with START_TIMEOUT and 1008', T, async () => {
    const server = await startServer({ MODEL: 'stub', START_TIMEOUT_SECONDS: '1' });
    try {
      const idle = await Client.connect(server.url('/api/v1/simple'));
      const opened = performance.now();
      assert.equal(await idle.closed, 1008);
      const waited = performance.now() - opened;
      assert.ok(waited >= 900 && waited < 4000, `closed after ${waited.toFixed(0)} ms`);
      assert.deepEqual(idle.events.map((e) => e['code']), ['START_TIMEOUT']);

      // A stream keeps the connection; after a stop without disconnect the clock starts again.
      const client = await Client.connect(server.url('/api/v1/simple'));
      client.sendJson(startMessage(wav));
      await sendPaced(client, wav.data.subarray(0, 32000 * 2), 32000, 0.1, 1); // 2 s, beyond the timeout
      client.sendJson({ request: 'stop', disconnect: false });
      assert.equal(await client.closed, 1008);
      assert.deepEqual(client.events.map((e) => e.type === 'error' ? e['code'] : e.type), ['segment', 'START_TIMEOUT']);
      assert.equal(await counted(server, 'errors_total{kind="START_TIMEOUT"}'), 2);
    } finally {
      await server.stop();
    }
  });

  for (const workers of ['1', '2']) {
    it(`MAX_CONNECTIONS_PER_ADDRESS counts one address process-wide (WORKERS=${workers}): HTTP 429, counted, a slot frees on close`, T, async () => {
      const server = await startServer({ MODEL: 'stub', WORKERS: workers, MAX_CONNECTIONS_PER_ADDRESS: '2' });
      try {
        const held = [await Client.connect(server.url('/api/v1/simple')), await Client.connect(server.url('/api/v1/simple'))];
        // With a count per worker thread, some of these would land on a worker holding none.
        for (let i = 0; i < 6; i++) assert.equal(await upgradeStatus(server, '/api/v1/simple', {}), 429, `attempt ${i}`);
        assert.equal(await counted(server, 'connections_refused_total{reason="max_per_address"}'), 6);
        held[0]!.close();
        await held[0]!.closed;
        const again = await Client.connect(server.url('/api/v1/simple'));
        again.close();
        held[1]!.close();
      } finally {
        await server.stop();
      }
    });
  }

  it('MAX_CONNECTION_SECONDS: a streaming connection gets its results, then CONNECTION_TOO_LONG and 1008', T, async () => {
    const server = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '1', MAX_CONNECTION_SECONDS: '2' });
    try {
      const client = await Client.connect(server.url('/api/v1/simple'));
      client.sendJson(startMessage(wav));
      const opened = performance.now();
      const sending = sendPaced(client, wav.data, 32000, 0.05, 1); // 12 s at real time, cut at ~2 s
      assert.equal(await client.closed, 1008);
      const lived = performance.now() - opened;
      await sending;
      assert.ok(lived >= 1900 && lived < 5000, `closed after ${lived.toFixed(0)} ms`);
      const types = client.events.map((e) => e.type === 'error' ? e['code'] : e.type);
      assert.equal(types.at(-1), 'CONNECTION_TOO_LONG', JSON.stringify(client.events));
      assert.ok(types.slice(0, -1).length >= 1 && types.slice(0, -1).every((t) => t === 'segment'), 'the stream\'s results came first');
      assert.equal(await counted(server, 'errors_total{kind="CONNECTION_TOO_LONG"}'), 1);
    } finally {
      await server.stop();
    }
  });
});

describe('Origin and Host', () => {
  it('by default: no Origin and same-origin pages may upgrade; other origins and "null" get 403, counted', T, async () => {
    const server = await startServer({ MODEL: 'stub' });
    try {
      const self = `http://127.0.0.1:${server.port}`;
      assert.equal(await upgradeStatus(server, '/api/v1/simple', {}), 101, 'no Origin (a non-browser client)');
      assert.equal(await upgradeStatus(server, '/api/v1/simple', { Origin: self }), 101, 'the server\'s own page');
      for (const origin of ['http://evil.example', `http://127.0.0.1:${server.port + 1}`, `https://127.0.0.1:${server.port}.evil.example`, 'null']) {
        assert.equal(await upgradeStatus(server, '/api/v1/simple', { Origin: origin }), 403, origin);
      }
      assert.equal(await counted(server, 'connections_refused_total{reason="origin"}'), 4);
    } finally {
      await server.stop();
    }
  });

  it('ALLOWED_ORIGINS adds listed origins; * allows any', T, async () => {
    const listed = await startServer({ MODEL: 'stub', ALLOWED_ORIGINS: 'https://app.example, http://localhost:3000' });
    const any = await startServer({ MODEL: 'stub', ALLOWED_ORIGINS: '*' });
    try {
      assert.equal(await upgradeStatus(listed, '/api/v1/simple', { Origin: 'https://app.example' }), 101);
      assert.equal(await upgradeStatus(listed, '/api/v1/simple', { Origin: 'http://localhost:3000' }), 101);
      assert.equal(await upgradeStatus(listed, '/api/v1/simple', { Origin: 'https://other.example' }), 403);
      assert.equal(await upgradeStatus(listed, '/api/v1/simple', { Origin: `http://127.0.0.1:${listed.port}` }), 101, 'same-origin still');
      assert.equal(await upgradeStatus(any, '/api/v1/simple', { Origin: 'https://other.example' }), 101);
    } finally {
      await Promise.all([listed.stop(), any.stop()]);
    }
  });

  it('ALLOWED_HOSTS: another Host gets 403 on upgrades, metrics, health and the page (DNS rebinding); liveness stays open', T, async () => {
    const server = await startServer({ MODEL: 'stub', ALLOWED_HOSTS: 'speech.example,localhost' });
    try {
      const port = server.port;
      for (const route of ['/metrics', '/api/v1/health', '/']) {
        assert.equal((await get(server, route, `localhost:${port}`)).status, 200, route);
        assert.equal((await get(server, route, `Speech.Example:${port}`)).status, 200, `${route}: names compare in any case`);
        const refused = await get(server, route, `rebound.evil.example:${port}`);
        assert.equal(refused.status, 403, route);
        assert.match(refused.body, /ALLOWED_HOSTS/);
      }
      assert.equal((await get(server, '/api/v1/health/live', `rebound.evil.example:${port}`)).status, 200);
      assert.equal(await upgradeStatus(server, '/api/v1/simple', { Host: `rebound.evil.example:${port}` }), 403);
      assert.equal(await upgradeStatus(server, '/api/v1/simple', { Host: `localhost:${port}` }), 101);
      const metrics = (await get(server, '/metrics', `localhost:${port}`)).body;
      assert.match(metrics, /^http_rejected_total\{reason="host"\} 3$/m);
      assert.match(metrics, /^connections_refused_total\{reason="host"\} 1$/m);
    } finally {
      await server.stop();
    }
  });

  it('the live page is served with a CSP (frame-ancestors none), nosniff and no framing', T, async () => {
    const server = await startServer({ MODEL: 'stub' });
    try {
      for (const route of ['/', '/app.js']) {
        const res = await fetch(server.http(route));
        assert.equal(res.status, 200);
        const csp = res.headers.get('content-security-policy') ?? '';
        assert.match(csp, /frame-ancestors 'none'/, route);
        assert.match(csp, /default-src 'self'/, route);
        assert.match(csp, /connect-src 'self'/, route);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff', route);
        assert.equal(res.headers.get('x-frame-options'), 'DENY', route);
      }
    } finally {
      await server.stop();
    }
  });
});

describe('start-up warning', () => {
  it('warns loudly (a warn log line, also on stderr) when listening beyond loopback without a token, and only then', T, async () => {
    const warned = (s: TestServer) => s.logs.some((l) => l['level'] === 'warn' && /without AUTH_TOKEN/.test(String(l['warning'])));
    const open = await startServer({ MODEL: 'stub', HOST: '0.0.0.0' }, 'listening');
    const local = await startServer({ MODEL: 'stub' }, 'ready');
    const guarded = await startServer({ MODEL: 'stub', HOST: '0.0.0.0', AUTH_TOKEN: 'a-token' }, 'ready');
    try {
      // The warning follows "listening" at once; give the line a moment to arrive.
      for (let i = 0; i < 50 && !warned(open); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(warned(open), JSON.stringify(open.logs.slice(0, 4)));
      assert.ok(!warned(local), '127.0.0.1');
      assert.ok(!warned(guarded), 'with a token');
    } finally {
      await Promise.all([open.stop(), local.stop(), guarded.stop()]);
    }
  });
});
