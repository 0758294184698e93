// Hostile and broken clients: each case gets a specific error event or close code, is counted in
// errors_total, and leaves the server and a healthy live stream running beside it unharmed.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client, streamFile } from '../helpers/client.js';
import { sendPaced } from '../helpers/pace.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { sine, toF32, toS16 } from '../helpers/signal.js';
import { readWav, startMessage } from '../helpers/wav.js';

const wav = readWav('two_utterances_16k_mono_s16.wav');
const S16 = { channels: 1, sampleRate: 16000, bitDepth: 16, isFloat: false };
let server: TestServer;
let healthy: Promise<Client>;

async function errorsCounted(kind: string, on: TestServer = server): Promise<number> {
  const text = await (await fetch(on.http('/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith(`errors_total{kind="${kind}"}`));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** Sends `messages`; expects exactly one error with `code`, counted; then proves the socket still streams. */
async function expectError(messages: (string | Uint8Array)[], code: string, mention?: RegExp): Promise<void> {
  const before = await errorsCounted(code);
  const client = await Client.connect(server.url('/api/v1/simple'));
  for (const m of messages) {
    if (typeof m === 'string') client.ws.send(m);
    else client.ws.send(m, { binary: true });
  }
  await client.waitFor((ev) => ev.some((e) => e.type === 'error'));
  const errors = client.events.filter((e) => e.type === 'error');
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.equal(errors[0]!['code'], code, JSON.stringify(errors[0]));
  if (mention) assert.match(errors[0]!['message'] as string, mention);
  assert.equal(await errorsCounted(code), before + 1, `errors_total{kind="${code}"} counted once`);
  client.sendJson(startMessage(wav));
  await client.sendAudio(wav.data.subarray(0, 16000), 4000);
  client.sendJson({ request: 'stop', disconnect: true });
  assert.equal(await client.closed, 1000, 'the connection stayed usable');
  assert.equal(client.events.at(-1)!['type'], 'segment');
}

const start = (format: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ request: 'start', format, ...extra });

before(async () => {
  server = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '1', MAX_TEXT_BYTES: '65536' });
  // A well-behaved live client streaming at real time through the whole suite.
  healthy = (async () => {
    const client = await Client.connect(server.url('/api/v1/simple'));
    client.sendJson(startMessage(wav));
    await sendPaced(client, wav.data, 32000, 0.02, 1.5);
    client.sendJson({ request: 'stop', disconnect: true });
    await client.closed;
    return client;
  })();
});

after(async () => {
  const client = await healthy;
  // The healthy stream got every window, in order, and nothing else.
  assert.equal(client.closeCode, 1000);
  assert.deepEqual(client.events.map((e) => e.type), Array<string>(12).fill('segment'));
  client.events.forEach((e, i) => assert.equal(e['start_time'], i));
  const health = await fetch(server.http('/api/v1/health'));
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as Record<string, unknown>)['panics'], 0);
  await server.stop();
});

describe('hostile input: messages', () => {
  it('truncated JSON: BAD_JSON', () => expectError(['{"request":"sta'], 'BAD_JSON'));
  it('an empty text frame: BAD_JSON', () => expectError([''], 'BAD_JSON'));
  it('JSON null: BAD_MESSAGE', () => expectError(['null'], 'BAD_MESSAGE', /object/));
  it('a JSON string: BAD_MESSAGE', () => expectError(['"start"'], 'BAD_MESSAGE'));
  it('a JSON number: BAD_MESSAGE', () => expectError(['42'], 'BAD_MESSAGE'));
  it('"request" not a string: BAD_MESSAGE', () => expectError([JSON.stringify({ request: 7 })], 'BAD_MESSAGE', /request/));
  it('a start without format: BAD_MESSAGE', () => expectError([JSON.stringify({ request: 'start' })], 'BAD_MESSAGE', /format/));
  it('a sample rate given as the string "NaN": BAD_MESSAGE', () =>
    expectError([start({ channels: 1, sample_rate: 'NaN', bit_depth: 16, is_float: false })], 'BAD_MESSAGE', /sample_rate/));
  it('a huge channel count (1e308): INVALID_FORMAT', () =>
    expectError([start({ channels: 1e308, sample_rate: 16000, bit_depth: 16, is_float: false })], 'INVALID_FORMAT', /channels/));
  it('a negative sample rate: INVALID_FORMAT', () =>
    expectError([start({ channels: 1, sample_rate: -16000, bit_depth: 16, is_float: false })], 'INVALID_FORMAT', /sample_rate/));
  it('a fractional bit depth: INVALID_FORMAT', () =>
    expectError([start({ channels: 1, sample_rate: 16000, bit_depth: 16.5, is_float: false })], 'INVALID_FORMAT', /bit_depth/));
  it('an encoding that is not a string: BAD_MESSAGE', () =>
    expectError([start({ channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false, encoding: 3 })], 'BAD_MESSAGE', /encoding/));
  it('a trace_id of 10 kB: BAD_MESSAGE', () =>
    expectError([start({ channels: 1, sample_rate: 16000, bit_depth: 16, is_float: false }, { trace_id: 'x'.repeat(10_000) })], 'BAD_MESSAGE', /trace_id/));
  it('JSON nested 30,000 deep: BAD_JSON or BAD_MESSAGE, never a crash', async () => {
    const client = await Client.connect(server.url('/api/v1/simple'));
    client.ws.send('['.repeat(30_000) + ']'.repeat(30_000));
    const [error] = await client.waitFor((ev) => ev.length > 0);
    assert.ok(['BAD_JSON', 'BAD_MESSAGE'].includes(error!['code'] as string), JSON.stringify(error));
    client.close();
  });
  it('a start message carrying __proto__ pollutes nothing', async () => {
    await expectError([`{"request":"start","__proto__":{"polluted":true},"format":{"channels":1,"sample_rate":16000,"bit_depth":16,"is_float":false,"__proto__":{"channels":99}}}`, '{"request":"pause"}'], 'UNKNOWN_REQUEST');
    const health = (await (await fetch(server.http('/api/v1/health'))).json()) as Record<string, unknown>;
    assert.equal(health['status'], 'healthy');
  });
  it('a text message of half a megabyte: MESSAGE_TOO_LARGE, ignored, the connection stays usable', () =>
    expectError([JSON.stringify({ request: 'start', pad: 'x'.repeat(512 << 10) })], 'MESSAGE_TOO_LARGE', /MAX_TEXT_BYTES/));
  it('MAX_TEXT_BYTES counts bytes, not characters: 30,000 three-byte characters (90,000 bytes) are MESSAGE_TOO_LARGE', () =>
    expectError([JSON.stringify({ request: 'start', pad: '\u20ac'.repeat(30_000) })], 'MESSAGE_TOO_LARGE', /90\d{3} bytes/));
});

describe('hostile input: audio and streams', () => {
  it('thousands of tiny frames: 8000 one-byte frames give exactly the whole-frame result', async () => {
    const data = wav.data.subarray(0, 8000);
    const whole = await streamFile(server.url('/api/v1/simple'), startMessage(wav), data, 8000);
    const tiny = await streamFile(server.url('/api/v1/simple'), startMessage(wav), data, 1);
    assert.deepEqual(tiny.events, whole.events);
    assert.equal(tiny.events[0]!['count'], 4000);
  });

  it('a start flood: 200 starts in a row, then one stream, gives exactly that stream\'s results', async () => {
    const client = await Client.connect(server.url('/api/v1/simple'));
    for (let i = 0; i < 200; i++) client.sendJson(startMessage(wav));
    await client.sendAudio(wav.data.subarray(0, 32000 * 1.5), 3200);
    client.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await client.closed, 1000);
    assert.deepEqual(client.events.map((e) => [e['start_time'], e['end_time']]), [[0, 1], [1, 1.5]]);
  });

  it('a restart storm: 50 restarts with audio between give 50 streams\' results, in order', async () => {
    const client = await Client.connect(server.url('/api/v1/simple'));
    for (let i = 0; i < 50; i++) {
      client.sendJson(startMessage(wav));
      await client.sendAudio(wav.data.subarray(0, 6400), 6400); // 0.2 s
    }
    client.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await client.closed, 1000);
    assert.equal(client.events.length, 50);
    assert.ok(client.events.every((e) => e['start_time'] === 0 && e['end_time'] === 0.2));
  });

  it('NaN and Infinity samples in float audio neither fail the stream nor poison what follows', async () => {
    const audio = sine(440, 48000, 2, 0.5);
    for (let i = 1000; i < 1100; i++) audio[i] = i % 2 ? NaN : Infinity;
    const format = { channels: 1, sampleRate: 48000, bitDepth: 32, isFloat: true };
    const { events } = await streamFile(server.url('/api/v1/simple'), startMessage(format), toF32(audio), 4800);
    assert.deepEqual(events.map((e) => [e.type, e['count']]), [['segment', 16000], ['segment', 16000]]);
  });
});

describe('hostile input: transport', () => {
  it('a half-open connection that never finishes its upgrade does not block anyone', async () => {
    const socket = net.connect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /api/v1/simple HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'); // and then nothing
    const res = await fetch(server.http('/api/v1/health'));
    assert.equal(res.status, 200);
    const { events } = await streamFile(server.url('/api/v1/simple'), startMessage(wav), wav.data.subarray(0, 32000), 3200);
    assert.equal(events.length, 1);
    socket.destroy();
  });

  it('bytes that are not HTTP get the connection closed, nothing else', async () => {
    const socket = net.connect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x00, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]));
    await new Promise((resolve) => { socket.once('close', resolve); setTimeout(resolve, 3000); });
    socket.destroy();
    assert.equal((await fetch(server.http('/api/v1/health'))).status, 200);
  });

  it('wrong HTTP methods and unknown paths answer 404 with a JSON reason', async () => {
    for (const [method, route] of [['POST', '/metrics'], ['DELETE', '/api/v1/health'], ['PUT', '/'], ['GET', '/api/v1/nope']]) {
      const res = await fetch(server.http(route!), { method });
      assert.equal(res.status, 404, `${method} ${route}`);
      assert.match(((await res.json()) as { error: string }).error, /no route/);
    }
    assert.match(await (await fetch(server.http('/metrics'))).text(), /http_rejected_total\{reason="not_found"\} [4-9]/, 'counted');
  });

  it('a path that climbs out of the page folder, sent as written (fetch would normalise it away), answers 404', async () => {
    for (const target of ['/../../etc/passwd', '/..%2f..%2fetc%2fpasswd', '/%2e%2e/%2e%2e/etc/passwd', '/../src/server.ts', '//etc/passwd']) {
      const socket = net.connect(server.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      let response = '';
      socket.on('data', (d: Buffer) => { response += d.toString('latin1'); });
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      await new Promise((resolve) => { socket.once('close', resolve); setTimeout(resolve, 3000); });
      socket.destroy();
      assert.match(response, /^HTTP\/1\.1 404 /, `${target}: ${response.slice(0, 200)}`);
      assert.ok(!response.includes('root:') && !response.includes('import '), `${target} leaks no file`);
    }
  });

  it('s16 audio in odd-sized frames is reassembled, never rejected', async () => {
    const data = toS16(sine(300, 16000, 1));
    const { events } = await streamFile(server.url('/api/v1/simple'), startMessage(S16), data, 4097);
    assert.deepEqual(events.map((e) => e['count']), [16000]);
  });
});

describe('limits', () => {
  it('MAX_CONNECTIONS: one over the limit is refused with HTTP 503 before the upgrade, and counted', async () => {
    const small = await startServer({ MODEL: 'stub', MAX_CONNECTIONS: '3' });
    try {
      const clients = await Promise.all([1, 2, 3].map(() => Client.connect(small.url('/api/v1/simple'))));
      await assert.rejects(Client.connect(small.url('/api/v1/simple')), /Unexpected server response: 503/);
      clients[0]!.close();
      await clients[0]!.closed;
      const again = await Client.connect(small.url('/api/v1/simple'));
      const metrics = await (await fetch(small.http('/metrics'))).text();
      assert.match(metrics, /connections_refused_total\{reason="max_connections"\} 1/);
      for (const c of [again, ...clients.slice(1)]) c.close();
    } finally {
      await small.stop();
    }
  });

  it('STREAM_IDLE_SECONDS and MAX_STREAM_SECONDS finish the stream (its results arrive), then close 1008', async () => {
    const strict = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '1', STREAM_IDLE_SECONDS: '1', MAX_STREAM_SECONDS: '2' });
    try {
      const idle = await Client.connect(strict.url('/api/v1/simple'));
      idle.sendJson(startMessage(wav));
      await idle.sendAudio(wav.data.subarray(0, 16000), 3200); // 0.5 s, then silence on the wire
      assert.equal(await idle.closed, 1008);
      assert.deepEqual(idle.events.map((e) => e['code'] ?? e['end_time']), [0.5, 'STREAM_IDLE']);

      const long = await Client.connect(strict.url('/api/v1/simple'));
      long.sendJson(startMessage(wav));
      await long.sendAudio(wav.data.subarray(0, 32000 * 3), 3200);
      assert.equal(await long.closed, 1008);
      assert.deepEqual(long.events.map((e) => e['code'] ?? e['end_time']), [1, 2, 'STREAM_TOO_LONG']);
    } finally {
      await strict.stop();
    }
  });

  it('MAX_OUTBOUND_BYTES: a client that stops reading its events is closed as SLOW_CONSUMER, once', async () => {
    // Without the message and error budgets, which would close this junk-sending client first.
    const strict = await startServer({ MODEL: 'stub', MAX_OUTBOUND_BYTES: '65536', MAX_MESSAGES_PER_SECOND: '0', MAX_PROTOCOL_ERRORS: '0' });
    try {
      const client = await Client.connect(strict.url('/api/v1/simple'));
      // Stop reading: the kernel buffers fill first, then the server's own queue.
      (client.ws as unknown as { _socket: net.Socket })._socket.pause();
      const counted = async () => {
        const text = await (await fetch(strict.http('/metrics'))).text();
        return Number(/errors_total\{kind="SLOW_CONSUMER"\} (\d+)/.exec(text)?.[1] ?? 0);
      };
      // Each malformed message earns an error event of ~150 bytes.
      for (let round = 0; round < 200 && (await counted()) === 0; round++) {
        for (let i = 0; i < 1000; i++) client.ws.send('x');
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(await counted(), 1);
      const text = await (await fetch(strict.http('/metrics'))).text();
      const active = [...text.matchAll(/^connections_active\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
      assert.equal(active, 0, 'the slow client is gone');
      client.ws.terminate();
    } finally {
      await strict.stop();
    }
  });
});

describe('per-connection budgets', () => {
  it('bytes behind a stop\'s flush are bounded (MAX_BACKLOG_SECONDS at the stream\'s byte rate): BACKLOG, 1008, before the flush ends', { timeout: 30_000 }, async () => {
    // A 3 s model run makes the stop's flush long; 5 MiB sent during it is 164 s of 16 kHz audio,
    // far over 30 s, in only ten messages (the message count alone allowed 4096 of 1 MiB).
    const slow = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '1', STUB: '{"delay_ms":3000}' });
    try {
      const before = await errorsCounted('BACKLOG', slow);
      const client = await Client.connect(slow.url('/api/v1/simple'));
      client.sendJson(startMessage(wav));
      await client.sendAudio(wav.data.subarray(0, 16000), 16000);
      client.sendJson({ request: 'stop', disconnect: false });
      const stoppedAt = performance.now();
      for (let i = 0; i < 10; i++) client.ws.send(Buffer.alloc(512 << 10), { binary: true });
      assert.equal(await client.closed, 1008);
      assert.ok(performance.now() - stoppedAt < 2900, 'closed while the flush was still running');
      const errors = client.events.filter((e) => e.type === 'error');
      assert.deepEqual(errors.map((e) => e['code']), ['BACKLOG'], JSON.stringify(client.events));
      assert.match(errors[0]!['message'] as string, /bytes/);
      assert.equal(await errorsCounted('BACKLOG', slow), before + 1);
    } finally {
      await slow.stop();
    }
  });

  it('one-byte frames beyond MAX_MESSAGES_PER_SECOND (and its 5 s burst): TOO_MANY_MESSAGES, 1008, counted', { timeout: 30_000 }, async () => {
    const strict = await startServer({ MODEL: 'stub', MAX_MESSAGES_PER_SECOND: '100' });
    try {
      const client = await Client.connect(strict.url('/api/v1/simple'));
      client.sendJson(startMessage(wav));
      const one = Buffer.alloc(1);
      for (let i = 0; i < 2000; i++) client.ws.send(one, { binary: true });
      assert.equal(await client.closed, 1008);
      assert.deepEqual(client.events.filter((e) => e.type === 'error').map((e) => e['code']), ['TOO_MANY_MESSAGES']);
      assert.equal(await errorsCounted('TOO_MANY_MESSAGES', strict), 1);
      // Within the budget, the same frames are served: 400 one-byte frames (the burst is 500).
      const fine = await streamFile(strict.url('/api/v1/simple'), startMessage(wav), wav.data.subarray(0, 400), 1);
      assert.equal(fine.closeCode, 1000);
      assert.deepEqual(fine.events.map((e) => e['count']), [200]);
    } finally {
      await strict.stop();
    }
  });

  it('MAX_PROTOCOL_ERRORS: the fifth protocol error closes the connection with TOO_MANY_ERRORS and 1008', { timeout: 30_000 }, async () => {
    const strict = await startServer({ MODEL: 'stub', MAX_PROTOCOL_ERRORS: '5' });
    try {
      const client = await Client.connect(strict.url('/api/v1/simple'));
      for (let i = 0; i < 20; i++) client.ws.send('x');
      assert.equal(await client.closed, 1008);
      assert.deepEqual(client.events.map((e) => e['code']), ['BAD_JSON', 'BAD_JSON', 'BAD_JSON', 'BAD_JSON', 'BAD_JSON', 'TOO_MANY_ERRORS']);
      assert.equal(await errorsCounted('TOO_MANY_ERRORS', strict), 1);
      assert.equal(await errorsCounted('BAD_JSON', strict), 5, 'nothing after the close is handled');
    } finally {
      await strict.stop();
    }
  });
});
