// SIGTERM drains: no new connections, health says draining, live streams get their finals, exit 0,
// with one worker thread or several.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Client } from '../helpers/client.js';
import { startServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

describe('graceful shutdown', () => {
  // One worker thread or two: the same drain, and the same exit (through the addon).
  for (const workers of ['1', '2']) it(`finishes streams in flight with their final results, refuses new ones, then exits 0 (WORKERS=${workers})`, async () => {
    // A slow model (300 ms per window) so work is still in flight when the signal arrives.
    const server = await startServer({ MODEL: 'stub', STUB: JSON.stringify({ delay_ms: 300 }), SIMPLE_WINDOW_SECONDS: '1', DRAIN_SECONDS: '20', WORKERS: workers });
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    const clients = await Promise.all([1, 2, 3].map(() => Client.connect(server.url('/api/v1/simple'))));
    for (const c of clients) {
      c.sendJson(startMessage(wav));
      await c.sendAudio(wav.data.subarray(0, 32000 * 3.5), 3200);
    }
    await clients[0]!.waitFor((ev) => ev.length >= 1);
    const exited = once(server.process, 'exit');
    server.process.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    // Still listening while it drains: probes read "draining", upgrades get 503.
    const health = await fetch(server.http('/api/v1/health'));
    assert.equal(health.status, 503);
    const body = (await health.json()) as Record<string, unknown>;
    assert.equal(body['draining'], true);
    assert.equal(body['ready'], false);
    assert.equal((await fetch(server.http('/api/v1/health/live'))).status, 200, 'alive while draining');
    await assert.rejects(Client.connect(server.url('/api/v1/simple')), /503/, 'no new connections while draining');
    for (const c of clients) {
      assert.equal(await c.closed, 1001);
      // 3.5 s in 1 s windows: 0-1, 1-2, 2-3 and the partial 3-3.5, all delivered.
      assert.deepEqual(c.events.map((e) => [e['start_time'], e['end_time']]), [[0, 1], [1, 2], [2, 3], [3, 3.5]]);
    }
    const [code] = (await exited) as [number];
    assert.equal(code, 0);
    assert.ok(server.logs.some((l) => l['msg'] === 'drained' && l['cut_connections'] === 0));
  });
});
