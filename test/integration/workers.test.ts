// WORKERS=N: N uWebSockets.js apps in worker threads share the port; the models, the threadpool,
// the connection limit, health and /metrics are the process's.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { cpuBudget } from '../../src/cpu-budget.js';
import { Client, streamFile } from '../helpers/client.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

async function health(server: TestServer): Promise<Record<string, unknown>> {
  return (await (await fetch(server.http('/api/v1/health'))).json()) as Record<string, unknown>;
}

const wav = readWav('two_utterances_16k_mono_s16.wav');
const twoSeconds = wav.data.subarray(0, 32000 * 2);

describe('worker threads', () => {
  let server: TestServer;
  before(async () => { server = await startServer({ MODEL: 'stub', WORKERS: '3', SIMPLE_WINDOW_SECONDS: '1' }); });
  after(async () => { await server.stop(); });

  it('spreads connections over every worker on the one port', async () => {
    const clients = await Promise.all(Array.from({ length: 60 }, () => Client.connect(server.url('/api/v1/simple'))));
    try {
      const m = await scrapeMetrics(server.http('/metrics'));
      const perWorker = ['0', '1', '2'].map((w) => m.get(`connections_active{worker_thread="${w}"}`) ?? 0);
      assert.equal(perWorker.reduce((a, b) => a + b, 0), 60);
      // The kernel hashes each connection to a listener: 60 all on fewer than 3 is ~1e-10 likely.
      for (const n of perWorker) assert.ok(n > 0, `every worker serves some connections: ${perWorker.join(', ')}`);
      assert.equal((await health(server))['connections'], 60, 'health counts the whole process');
    } finally {
      for (const c of clients) c.ws.terminate();
    }
  });

  it('loads each model once for the whole process', async () => {
    const m = await scrapeMetrics(server.http('/metrics'));
    assert.equal(m.get('models_loaded{kind="speech"}'), 1);
    assert.equal(m.get('models_loaded{kind="vad"}'), 1);
    assert.equal(m.get('threadpool_size'), 2 * cpuBudget(), 'one threadpool (2 × THREADS, one per core by default), reported once');
    const h = await health(server);
    assert.equal(h['workers'], 3);
    assert.equal(h['ready'], true);
  });

  it('reports one coherent registry: counters summed over workers, per-thread families labelled', async () => {
    const before = await scrapeMetrics(server.http('/metrics'));
    const runs = await Promise.all(Array.from({ length: 12 }, () =>
      streamFile(server.url('/api/v1/simple'), startMessage(wav), twoSeconds, 3200)));
    for (const run of runs) {
      assert.equal(run.closeCode, 1000);
      assert.deepEqual(run.events.map((e) => [e.type, e['start_time']]), [['segment', 0], ['segment', 1]], 'two 1 s windows each');
    }
    // Whichever worker a scrape lands on, it sees every worker's streams.
    for (let i = 0; i < 4; i++) {
      const m = await scrapeMetrics(server.http('/metrics'));
      assert.equal((m.get('streams_total{route="simple"}') ?? 0) - (before.get('streams_total{route="simple"}') ?? 0), 12);
      assert.equal(m.get('media_duration_seconds_count{pipeline_stage="model_inference"}'), (before.get('media_duration_seconds_count{pipeline_stage="model_inference"}') ?? 0) + 24);
      for (const w of ['0', '1', '2']) assert.ok(m.has(`eventloop_utilization{worker_thread="${w}"}`), `worker ${w} reports its event loop`);
      assert.equal([...m.keys()].filter((k) => k === 'process_cpu_seconds_total').length, 1);
    }
  });
});

describe('worker threads: limits and shutdown', () => {
  it('sizes the one threadpool at 2 × THREADS, though the module loader started it before main ran', async () => {
    // libuv starts every pool thread with the first job; count the process's threads once ready.
    const threads = async (n: number): Promise<number> => {
      const server = await startServer({ MODEL: 'stub', WORKERS: '2', THREADS: String(n) });
      try {
        assert.equal((await scrapeMetrics(server.http('/metrics'))).get('threadpool_size'), 2 * n);
        return readdirSync(`/proc/${server.process.pid}/task`).length;
      } finally {
        await server.stop();
      }
    };
    assert.equal(await threads(3) - await threads(1), 4, '6 pool threads against 2; nothing else depends on THREADS');
  });

  it('holds MAX_CONNECTIONS across all workers', async () => {
    const server = await startServer({ MODEL: 'stub', WORKERS: '2', MAX_CONNECTIONS: '5' });
    try {
      const attempts = await Promise.allSettled(Array.from({ length: 12 }, () => Client.connect(server.url('/api/v1/simple'))));
      const open = attempts.filter((a) => a.status === 'fulfilled');
      assert.equal(open.length, 5, 'exactly the limit is admitted, whichever workers the connections reach');
      for (const a of attempts) if (a.status === 'rejected') assert.match(String(a.reason), /503/);
      const m = await scrapeMetrics(server.http('/metrics'));
      assert.equal(m.get('connections_refused_total{reason="max_connections"}'), 7);
      for (const a of open) a.value.ws.terminate();
    } finally {
      await server.stop();
    }
  });

  it('gives the same results with one worker (the main thread) and with two', async () => {
    const results: string[] = [];
    for (const workers of ['1', '2']) {
      const server = await startServer({ MODEL: 'stub', WORKERS: workers, SIMPLE_WINDOW_SECONDS: '1' });
      try {
        assert.equal((await health(server))['workers'], Number(workers));
        const run = await streamFile(server.url('/api/v1/simple'), startMessage(wav), wav.data, 3200);
        assert.equal(run.closeCode, 1000);
        results.push(JSON.stringify(run.events));
      } finally {
        await server.stop();
      }
    }
    assert.equal(results[0], results[1]);
  });

  it('drains every worker on SIGTERM: streams on each get their finals, then exit 0', async () => {
    const server = await startServer({ MODEL: 'stub', STUB: JSON.stringify({ delay_ms: 200 }), WORKERS: '2', SIMPLE_WINDOW_SECONDS: '1', DRAIN_SECONDS: '20' });
    const clients = await Promise.all(Array.from({ length: 16 }, () => Client.connect(server.url('/api/v1/simple'))));
    const m = await scrapeMetrics(server.http('/metrics'));
    assert.ok((m.get('connections_active{worker_thread="0"}') ?? 0) > 0 && (m.get('connections_active{worker_thread="1"}') ?? 0) > 0,
      'streams on both workers (16 connections all on one of 2 listeners: a 1-in-32,768 chance)');
    for (const c of clients) {
      c.sendJson(startMessage(wav));
      await c.sendAudio(wav.data.subarray(0, 32000 * 2.5), 3200);
    }
    // Drain finishes streams with the audio received so far: wait until all of it has arrived.
    for (let i = 0; i < 100 && ((await scrapeMetrics(server.http('/metrics'))).get('audio_received_seconds_total') ?? 0) < 16 * 2.5; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const exited = once(server.process, 'exit');
    server.process.kill('SIGTERM');
    for (const c of clients) {
      assert.equal(await c.closed, 1001);
      assert.deepEqual(c.events.map((e) => [e['start_time'], e['end_time']]), [[0, 1], [1, 2], [2, 2.5]]);
    }
    const [code] = (await exited) as [number];
    assert.equal(code, 0);
    assert.ok(server.logs.some((l) => l['msg'] === 'drained' && l['cut_connections'] === 0));
  });
});
