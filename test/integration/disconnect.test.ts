// Clients that vanish mid-utterance: their pending work is cancelled, nothing leaks.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { Client } from '../helpers/client.js';
import { scrapeMetrics, total } from '../helpers/metrics.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const scrape = (server: TestServer): Promise<Map<string, number>> => scrapeMetrics(server.http('/metrics'));

/** Tasks alive per subsystem: created minus ended. */
function liveTasks(m: Map<string, number>): Record<string, number> {
  const live: Record<string, number> = {};
  for (const task of ['api_routing', 'client', 'audio_decoding', 'vad', 'inference', 'metrics']) {
    live[task] = (m.get(`task_instrumented_total{task="${task}"}`) ?? 0) - (m.get(`task_dropped_total{task="${task}"}`) ?? 0);
  }
  return live;
}

/**
 * Metrics once every connection is closed and every job done, with the resident memory taken as
 * the least of a few samples: buffers the last clients left await the next GC for a moment.
 */
async function settled(server: TestServer): Promise<Map<string, number>> {
  let m = await scrape(server);
  for (let i = 0; i < 50 && ((total(m, 'connections_active') ?? 1) > 0 || (m.get('threadpool_jobs_running') ?? 1) > 0); i++) {
    await new Promise((r) => setTimeout(r, 100));
    m = await scrape(server);
  }
  let rss = m.get('process_resident_memory_bytes') ?? 0;
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 200));
    rss = Math.min(rss, (await scrape(server)).get('process_resident_memory_bytes') ?? rss);
  }
  m.set('process_resident_memory_bytes', rss);
  return m;
}

describe('disconnects', () => {
  it('thousands of clients dropping mid-utterance: work cancelled, tasks and memory back to baseline', async (t: TestContext) => {
    // A slow model keeps utterances in flight when the clients vanish.
    // Two worker threads: every one's heap and connections count.
    const server = await startServer({ MODEL: 'stub', STUB: JSON.stringify({ delay_ms: 20 }), WORKERS: '2' });
    try {
      const wav = readWav('two_utterances_16k_mono_s16.wav');
      const speech = wav.data.subarray(0, 32000 * 2); // into utterance A
      const round = async () => {
        const client = await Client.connect(server.url('/api/v1/segmented'));
        client.sendJson(startMessage(wav, { interim_results: true }));
        await client.sendAudio(speech, 8000);
        client.ws.terminate(); // no close handshake, like a dropped network
      };
      // Warm-up: resident memory climbs over the first few hundred clients (allocator arenas,
      // JIT, socket buffers) and then stays flat within about ±15 MB (measured from 500 to
      // 3,700 clients): the baseline is taken after 1000.
      for (let batch = 0; batch < 10; batch++) await Promise.all(Array.from({ length: 100 }, round));
      const before = await settled(server);
      // 2000 clients: a leak of the audio each one sent (64 kB) would add 128 MB, twice the bound
      // below, which sits above the allocator's noise (up to ~50 MB seen with the machine busy);
      // the JS heap and the task counts are checked exactly.
      for (let batch = 0; batch < 20; batch++) await Promise.all(Array.from({ length: 100 }, round));
      const after = await settled(server);
      assert.equal(total(after, 'connections_active'), 0);
      assert.equal(after.get('streams_active{route="segmented"}'), 0);
      assert.equal(after.get('threadpool_jobs_queued'), 0);
      assert.equal(after.get('threadpool_jobs_running'), 0);
      assert.deepEqual(liveTasks(after), liveTasks(before), 'every task the clients made has ended');
      assert.equal((after.get('connections_total') ?? 0) - (before.get('connections_total') ?? 0), 2000);
      assert.equal((after.get('streams_total{route="segmented"}') ?? 0) - (before.get('streams_total{route="segmented"}') ?? 0), 2000);
      const grew = (name: string) => ((total(after, name) ?? 0) - (total(before, name) ?? 0)) / 2 ** 20;
      t.diagnostic(`resident memory ${grew('process_resident_memory_bytes').toFixed(1)} MB, JS heap ${grew('nodejs_heap_size_used_bytes').toFixed(1)} MB over 2000 dropped clients`);
      assert.ok(grew('process_resident_memory_bytes') < 64, `resident memory grew by ${grew('process_resident_memory_bytes').toFixed(1)} MB over 2000 dropped clients`);
      assert.ok(grew('nodejs_heap_size_used_bytes') < 8, `the JS heap grew by ${grew('nodejs_heap_size_used_bytes').toFixed(1)} MB`);
      assert.equal(after.get('task_panic_total{task="inference"}'), 0);
    } finally {
      await server.stop();
    }
  });
});
