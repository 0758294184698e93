// MEMORY_BUDGET_BYTES: the audio waiting in the whole process is bounded in bytes, whatever the
// number of connections. A frame that would take the process over the budget is refused with
// MEMORY_BUDGET and 1013, new streams are refused above 90 % of it, the other streams go on, and
// every byte is given back when its stream ends, however it ends (memory_held_bytes returns to 0).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { Client } from '../helpers/client.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { sendPaced } from '../helpers/pace.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const wav = readWav('two_utterances_16k_mono_s16.wav');
const BUDGET = 2 << 20;

async function gauge(server: TestServer, name: string): Promise<number> {
  const value = (await scrapeMetrics(server.http('/metrics'))).get(name);
  assert.notEqual(value, undefined, `/metrics has ${name}`);
  return value!;
}

async function heldReturnsToZero(server: TestServer): Promise<void> {
  const deadline = Date.now() + 5000;
  let held = await gauge(server, 'memory_held_bytes');
  while (held !== 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    held = await gauge(server, 'memory_held_bytes');
  }
  assert.equal(held, 0, 'every byte held is given back once the streams have ended');
}

/** 48 kHz float32, 8 channels: 1.5 MB/s of wire and eight channels of VAD per second of audio. */
const HEAVY = { channels: 8, sampleRate: 48_000, bitDepth: 32, isFloat: true };

/** Sends HEAVY audio as fast as the socket takes it, in 64 KiB frames; resolves with the close code. */
async function flood(url: string, seconds: number): Promise<{ code: number; client: Client }> {
  const client = await Client.connect(url);
  client.sendJson(startMessage(HEAVY));
  const frame = Buffer.from(new Float32Array(16_384).map(() => (Math.random() - 0.5) * 0.01).buffer);
  const deadline = Date.now() + seconds * 1000;
  while (client.ws.readyState === WebSocket.OPEN && Date.now() < deadline) {
    if (client.ws.bufferedAmount < 1 << 20) client.ws.send(frame, { binary: true });
    else await new Promise((r) => setTimeout(r, 1));
  }
  if (client.ws.readyState === WebSocket.OPEN) client.ws.terminate();
  return { code: await client.closed, client };
}

describe('process-wide memory budget', () => {
  it('sheds the flood that would go over MEMORY_BUDGET_BYTES (MEMORY_BUDGET, 1013); the other streams keep streaming; the gauge stays within the budget and returns to 0', { timeout: 60_000 }, async () => {
    // MAX_BACKLOG_SECONDS far above: only the byte budget can stop the flood.
    const server = await startServer({ MODEL: 'stub', WORKERS: '1', MEMORY_BUDGET_BYTES: String(BUDGET), MAX_BACKLOG_SECONDS: '600' });
    try {
      assert.equal(await gauge(server, 'memory_budget_bytes'), BUDGET);
      assert.equal(await gauge(server, 'memory_held_bytes'), 0);
      const url = server.url('/api/v1/segmented');
      let peak = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peak = Math.max(peak, await gauge(server, 'memory_held_bytes'));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      // Three streams at twice real time: 5 s of speech each (utterance A and its silence).
      const live = await Promise.all(Array.from({ length: 3 }, () => Client.connect(url)));
      for (const c of live) c.sendJson(startMessage(wav));
      const streaming = Promise.all(live.map(async (c) => {
        await sendPaced(c, wav.data.subarray(0, 32_000 * 5), 32_000, 0.1, 2);
        c.sendJson({ request: 'stop', disconnect: true });
        return c.closed;
      }));
      await new Promise((r) => setTimeout(r, 200));
      const flooded = await flood(url, 15);
      const codes = await streaming;
      sampling = false;
      await sampler;

      assert.equal(flooded.code, 1013, 'the flood is closed with 1013 (try again later)');
      const errors = flooded.client.events.filter((e) => e.type === 'error');
      assert.deepEqual(errors.map((e) => e['code']), ['MEMORY_BUDGET'], JSON.stringify(errors));
      assert.match(errors[0]!['message'] as string, /MEMORY_BUDGET_BYTES/);
      assert.deepEqual(codes, [1000, 1000, 1000], 'the live streams were not shed');
      for (const c of live) {
        assert.deepEqual(c.events.filter((e) => e.type === 'error'), [], 'no error on a live stream');
        assert.equal(c.events.filter((e) => e.type === 'segment' && e['is_final'] === true).length, 1, 'each gets its final');
      }
      // The refusal says what the process held: not over the budget, and its frame (64 KiB, at its
      // own size: 48 kHz float shrinks when decoded) would have taken it into the last tenth,
      // which only streams holding at most their share may use.
      const held = Number(/holds (\d+) bytes/.exec(errors[0]!['message'] as string)![1]);
      assert.ok(held <= BUDGET && held + (64 << 10) > 0.9 * BUDGET, `held ${held} of ${BUDGET} when the flood's frame was refused`);
      assert.ok(peak <= BUDGET, `memory_held_bytes, scraped every 20 ms, peaked at ${peak}: within the budget ${BUDGET}`);
      assert.equal(await gauge(server, 'errors_total{kind="MEMORY_BUDGET"}'), 1, 'counted in errors_total');
      await heldReturnsToZero(server);
    } finally {
      await server.stop();
    }
  });

  it('bytes waiting behind a stop\'s flush count too: above 90 % a new stream is refused at start, the frame that would go over is refused, an abnormal close gives its bytes back', { timeout: 60_000 }, async () => {
    // A 3 s model run makes the stop's flush long; frames sent meanwhile wait in the mailbox.
    const server = await startServer({
      MODEL: 'stub', WORKERS: '1', SIMPLE_WINDOW_SECONDS: '1', STUB: '{"delay_ms":3000}', MEMORY_BUDGET_BYTES: String(BUDGET), MAX_BACKLOG_SECONDS: '600',
    });
    try {
      const url = server.url('/api/v1/simple');
      /** A stream stopped without disconnect (its flush runs 3 s), then `chunks` frames behind it. */
      const hold = async (): Promise<Client> => {
        const holder = await Client.connect(url);
        holder.sendJson(startMessage(wav));
        await holder.sendAudio(wav.data.subarray(0, 16_000), 16_000);
        holder.sendJson({ request: 'stop', disconnect: false });
        for (let i = 0; i < 3; i++) holder.ws.send(chunk, { binary: true });
        const deadline = Date.now() + 2000;
        while (await gauge(server, 'memory_held_bytes') < held && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        assert.equal(await gauge(server, 'memory_held_bytes'), held, 'the mailbox\'s bytes, at their decoded size');
        return holder;
      };
      // 16 kHz 16-bit audio counts twice (its decoded size): 3 x 320 KiB is 1.875 MiB of 2 MiB, over 90 %.
      const chunk = Buffer.alloc(320 << 10);
      const held = 3 * 2 * chunk.length;

      const first = await hold();
      const newcomer = await Client.connect(url);
      newcomer.sendJson(startMessage(wav));
      assert.equal(await newcomer.closed, 1013, 'a new stream is refused above 90 % of the budget');
      assert.deepEqual(newcomer.events.map((e) => e['code']), ['MEMORY_BUDGET']);
      assert.match(newcomer.events[0]!['message'] as string, /90 %/);
      // Cut off without a close frame, its flush still running: its bytes come back all the same.
      first.ws.terminate();
      await first.closed;
      await heldReturnsToZero(server);

      // One more frame would go over: refused, the connection closed, its mailbox given back.
      const second = await hold();
      second.ws.send(Buffer.alloc(128 << 10), { binary: true });
      assert.equal(await second.closed, 1013);
      assert.deepEqual(second.events.filter((e) => e.type === 'error').map((e) => e['code']), ['MEMORY_BUDGET']);
      assert.match(second.events.find((e) => e.type === 'error')!['message'] as string, /MEMORY_BUDGET_BYTES/);
      assert.equal(await gauge(server, 'errors_total{kind="MEMORY_BUDGET"}'), 2, 'the refused start and the refused frame');
      await heldReturnsToZero(server);
    } finally {
      await server.stop();
    }
  });

  it('counts every worker thread\'s streams once: the budget is reported once, the held bytes summed, and back to 0 after an abrupt close', { timeout: 60_000 }, async () => {
    const server = await startServer({ MODEL: 'stub', WORKERS: '2', MEMORY_BUDGET_BYTES: String(BUDGET), MAX_BACKLOG_SECONDS: '600' });
    try {
      assert.equal(await gauge(server, 'memory_budget_bytes'), BUDGET, 'the budget, not its sum over workers');
      const floods = await Promise.all([0, 1, 2, 3].map(() => flood(server.url('/api/v1/segmented'), 10)));
      assert.ok(floods.some((f) => f.code === 1013 && f.client.events.some((e) => e['code'] === 'MEMORY_BUDGET')), `a flood met the process's budget: ${floods.map((f) => f.code).join(',')}`);
      await heldReturnsToZero(server);
    } finally {
      await server.stop();
    }
  });

  it('uWebSockets.js\'s maxPayloadLength follows MAX_FRAME_BYTES: a frame over twice it is dropped unread, the server unharmed', { timeout: 30_000 }, async () => {
    const server = await startServer({ MODEL: 'stub', WORKERS: '1', MAX_FRAME_BYTES: '4096', SIMPLE_WINDOW_SECONDS: '1' });
    try {
      const url = server.url('/api/v1/simple');
      const client = await Client.connect(url);
      client.sendJson(startMessage(wav));
      client.ws.send(Buffer.alloc(3 * 4096), { binary: true });
      const code = await client.closed;
      assert.ok(code === 1006 || code === 1009, `closed by uWebSockets.js (${code})`);
      assert.deepEqual(client.events.filter((e) => e.type === 'segment'), [], 'nothing of it was taken');
      // Fragments add up: a message sent in pieces under the limit each, over twice it in all.
      const fragmented = await Client.connect(url);
      fragmented.sendJson(startMessage(wav));
      for (let i = 0; i < 4; i++) fragmented.ws.send(Buffer.alloc(3000), { binary: true, fin: i === 3 });
      const fragmentedCode = await fragmented.closed;
      assert.ok(fragmentedCode === 1006 || fragmentedCode === 1009, `a fragmented message over the limit is refused too (${fragmentedCode})`);
      const healthy = await Client.connect(url);
      healthy.sendJson(startMessage(wav));
      await healthy.sendAudio(wav.data.subarray(0, 32_000), 4000);
      healthy.sendJson({ request: 'stop', disconnect: true });
      assert.equal(await healthy.closed, 1000);
      assert.deepEqual(healthy.events.map((e) => e.type), ['segment']);
      assert.equal((await fetch(server.http('/api/v1/health'))).status, 200);
      await heldReturnsToZero(server);
    } finally {
      await server.stop();
    }
  });
});
