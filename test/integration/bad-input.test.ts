// Bad input gets a specific error event, is counted, and leaves the connection usable.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

let server: TestServer;
before(async () => { server = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '1' }); });
after(async () => { await server.stop(); });

const wav = readWav('two_utterances_16k_mono_s16.wav');

/** Sends `message`, expects one error with `code`, then proves the socket still streams. */
async function expectError(message: string | Uint8Array, code: string, mention?: RegExp): Promise<void> {
  const client = await Client.connect(server.url('/api/v1/simple'));
  if (typeof message === 'string') client.sendJson(message);
  else client.ws.send(message, { binary: true });
  const [error] = await client.waitFor((ev) => ev.length >= 1);
  assert.equal(error!['type'], 'error');
  assert.equal(error!['code'], code, JSON.stringify(error));
  assert.equal(typeof error!['message'], 'string');
  if (mention) assert.match(error!['message'] as string, mention);
  // Still usable: a proper stream afterwards gets its segment.
  client.sendJson(startMessage(wav));
  await client.sendAudio(wav.data.subarray(0, 16000), 4000);
  client.sendJson({ request: 'stop', disconnect: true });
  assert.equal(await client.closed, 1000);
  assert.deepEqual(client.events.slice(1).map((e) => e.type), ['segment']);
}

async function errorsCounted(kind: string): Promise<number> {
  const text = await (await fetch(server.http('/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith(`errors_total{kind="${kind}"}`));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('bad input', () => {
  it('audio before start: NOT_STARTED, counted', async () => {
    const before = await errorsCounted('NOT_STARTED');
    await expectError(new Uint8Array([1, 2, 3, 4]), 'NOT_STARTED', /start/);
    assert.equal(await errorsCounted('NOT_STARTED'), before + 1);
  });
  it('malformed JSON: BAD_JSON', () => expectError('{"request": "start", ', 'BAD_JSON', /JSON/));
  it('JSON that is not an object: BAD_MESSAGE', () => expectError('[1,2,3]', 'BAD_MESSAGE', /object/));
  it('a start with a mistyped field: BAD_MESSAGE naming it', () =>
    expectError(JSON.stringify({ request: 'start', format: { channels: '1', sample_rate: 16000, bit_depth: 16, is_float: false } }), 'BAD_MESSAGE', /channels/));
  it('an unknown request: UNKNOWN_REQUEST', () => expectError(JSON.stringify({ request: 'pause' }), 'UNKNOWN_REQUEST', /pause/));
  it('stop before start: NOT_STARTED', () => expectError(JSON.stringify({ request: 'stop', disconnect: false }), 'NOT_STARTED'));
  for (const [format, field] of [
    [{ channels: 1, sample_rate: 16000, bit_depth: 12, is_float: false }, 'bit_depth'],
    [{ channels: 1, sample_rate: 16000, bit_depth: 16, is_float: true }, 'bit_depth'],
    [{ channels: 0, sample_rate: 16000, bit_depth: 16, is_float: false }, 'channels'],
    [{ channels: 9, sample_rate: 16000, bit_depth: 16, is_float: false }, 'channels'],
    [{ channels: 1, sample_rate: 0, bit_depth: 16, is_float: false }, 'sample_rate'],
    [{ channels: 1, sample_rate: 1e9, bit_depth: 16, is_float: false }, 'sample_rate'],
    [{ channels: 1, sample_rate: 8000, bit_depth: 24, is_float: false, encoding: 'mulaw' }, 'bit_depth'],
    [{ channels: 1, sample_rate: 8000, bit_depth: 16, is_float: false, encoding: 'opus' }, 'encoding'],
  ] as const) {
    it(`an unsupported format (${JSON.stringify(format)}): INVALID_FORMAT naming ${field}`, () =>
      expectError(JSON.stringify({ request: 'start', format }), 'INVALID_FORMAT', new RegExp(field)));
  }
});

describe('oversized messages', () => {
  it('a frame over MAX_FRAME_BYTES gets FRAME_TOO_LARGE and close 1009; another stream is unharmed', async () => {
    const small = await startServer({ MODEL: 'stub', MAX_FRAME_BYTES: '4096', SIMPLE_WINDOW_SECONDS: '1' });
    try {
      const healthy = await Client.connect(small.url('/api/v1/simple'));
      healthy.sendJson(startMessage(wav));
      for (const [message, what] of [[new Uint8Array(6000), 'binary'], ['x'.repeat(6000), 'text']] as const) {
        const client = await Client.connect(small.url('/api/v1/simple'));
        client.sendJson(startMessage(wav));
        if (typeof message === 'string') client.sendJson(message);
        else client.ws.send(message, { binary: true });
        assert.equal(await client.closed, 1009, what);
        assert.equal(client.events.length, 1);
        assert.equal(client.events[0]!['code'], 'FRAME_TOO_LARGE');
        assert.match(client.events[0]!['message'] as string, /6000 bytes .* 4096/);
      }
      await healthy.sendAudio(wav.data.subarray(0, 32000), 4000);
      healthy.sendJson({ request: 'stop', disconnect: true });
      assert.equal(await healthy.closed, 1000);
      assert.deepEqual(healthy.events.map((e) => e.type), ['segment']);
    } finally {
      await small.stop();
    }
  });
});
