// /api/v1/health and /metrics: real JSON, a real promtool lint, counters that move with work.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Client, streamFile } from '../helpers/client.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const run = promisify(execFile);
let server: TestServer;
// Two worker threads: /metrics must be one coherent registry whichever worker a scrape lands on.
before(async () => { server = await startServer({ MODEL: 'stub', WORKERS: '2' }); });
after(async () => { await server.stop(); });

const scrape = (): Promise<Map<string, number>> => scrapeMetrics(server.http('/metrics'));

describe('health', () => {
  it('answers 200 with status, readiness, live counts and the ONNX Runtime version', async () => {
    const res = await fetch(server.http('/api/v1/health'));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body['status'], 'healthy');
    assert.equal(body['ready'], true);
    assert.equal(body['panics'], 0);
    assert.equal(body['streams'], 0);
    assert.match(body['onnxruntime'] as string, /^1\.\d+/);
  });

  it('answers unknown paths with 404 and refuses a WebSocket upgrade on /metrics and health', async () => {
    assert.equal((await fetch(server.http('/nope'))).status, 404);
    assert.equal((await fetch(server.http('/api/v1/simple'))).status, 404, 'a plain GET on a WebSocket route');
    for (const route of ['/metrics', '/api/v1/health', '/nope']) {
      await assert.rejects(Client.connect(server.url(route)), /Unexpected server response: (200|404)/, route);
    }
    const text = await (await fetch(server.http('/metrics'))).text();
    assert.match(text, /http_rejected_total\{reason="upgrade_on_http_route"\} 2/, 'upgrades on HTTP routes are counted');
  });
});

describe('metrics', () => {
  it('passes promtool check metrics after real streaming, and task counters move with the work', async () => {
    const before = await scrape();
    const wav = readWav('two_utterances_48k_mono_f32.wav');
    await streamFile(server.url('/api/v1/simple'), startMessage(wav), wav.data, 8192);
    const text = await (await fetch(server.http('/metrics'))).text();
    const after = await scrape();

    const child = execFile('promtool', ['check', 'metrics']);
    child.stdin!.end(text);
    let output = '';
    child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(output, '', 'promtool reports nothing');
    assert.equal(code, 0);

    const moved = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    // A stream makes tasks of its own (its decoder, its connection); the router and each worker's
    // inference scheduler are one task each from start-up: their polls move, not their count.
    const startupTasks = ['api_routing', 'inference'];
    for (const task of ['audio_decoding', 'inference', 'client', 'api_routing']) {
      assert.ok(moved(`task_poll_total{task="${task}"}`) > 0, `task_poll_total{task="${task}"} moved`);
      assert.ok(moved(`task_instrumented_total{task="${task}"}`) > 0 || startupTasks.includes(task), `task_instrumented_total{task="${task}"} moved`);
    }
    assert.ok(moved('task_poll_duration_seconds_total{task="audio_decoding"}') > 0);
    assert.equal(after.get('task_panic_total{task="inference"}'), 0);
    assert.ok(after.has('task_panic_total{task="vad"}'), 'every subsystem is exported, idle ones too');
    assert.ok(moved('streams_total{route="simple"}') === 1);
    assert.ok(Math.abs(moved('audio_received_seconds_total') - wav.seconds) < 1e-6);
    assert.ok(moved('rtf_count{pipeline_stage="model_inference"}') >= 3);
    assert.ok(moved('media_duration_seconds_sum{pipeline_stage="audio_decoding"}') > wav.seconds - 0.01);
    assert.equal(after.get('threadpool_jobs_running'), 0);
    // Each stage has buckets of its own scale.
    assert.ok(after.has('rtf_bucket{le="0.00001",pipeline_stage="audio_decoding"}'));
    assert.ok(after.has('rtf_bucket{le="0.015",pipeline_stage="model_inference"}'));
    assert.ok(!after.has('rtf_bucket{le="0.00001",pipeline_stage="model_inference"}'));
    assert.equal(after.get('rtf_bucket{le="+Inf",pipeline_stage="model_inference"}'), after.get('rtf_count{pipeline_stage="model_inference"}'));
    // User-felt latencies: one first event and one stop per stream, one final latency per segment (3 windows of 5 s).
    assert.equal(moved('first_event_latency_seconds_count{route="simple"}'), 1);
    assert.equal(moved('stop_latency_seconds_count{route="simple"}'), 1);
    assert.equal(moved('final_latency_seconds_count{route="simple"}'), 3);
    for (const worker of ['0', '1']) {
      assert.ok((after.get(`eventloop_lag_seconds_count{worker_thread="${worker}"}`) ?? 0) > 0, `worker ${worker}'s event-loop lag sampler runs`);
      const utilization = after.get(`eventloop_utilization{worker_thread="${worker}"}`) ?? -1;
      assert.ok(utilization >= 0 && utilization <= 1);
    }
    assert.ok((after.get('threadpool_size') ?? 0) >= 1);
  });

  it('promtool is the real one', async () => {
    const { stdout, stderr } = await run('promtool', ['--version']);
    assert.match(stdout + stderr, /promtool, version \d+/);
  });
});

describe('metrics under a scrape flood', () => {
  const renders = (text: string): number => Number(/^metrics_renders_total (\d+)$/m.exec(text)?.[1] ?? NaN);
  for (const workers of ['1', '2']) {
    it(`coalesces concurrent scrapes and serves one render for METRICS_CACHE_SECONDS (WORKERS=${workers})`, { timeout: 30_000 }, async () => {
      const flooded = await startServer({ MODEL: 'stub', WORKERS: workers, METRICS_CACHE_SECONDS: '0.25' });
      try {
        await new Promise((r) => setTimeout(r, 300)); // past any render of start-up
        const texts = await Promise.all(Array.from({ length: 40 }, async () => (await fetch(flooded.http('/metrics'))).text()));
        const counts = new Set(texts.map(renders));
        assert.ok(!counts.has(NaN), 'metrics_renders_total is exported');
        // 40 scrapes at once: one render, or two if the flood straddled the end of a period.
        assert.ok(counts.size <= 2 && Math.max(...counts) - Math.min(...counts) <= 1, `renders seen: ${[...counts].join(', ')}`);
        const first = Math.min(...counts);
        await new Promise((r) => setTimeout(r, 400));
        const later = renders(await (await fetch(flooded.http('/metrics'))).text());
        assert.ok(later > Math.max(...counts), 'after the period a scrape gets a new render');
        assert.ok(later - first <= 3, `40 scrapes cost ${later - first} renders`);
      } finally {
        await flooded.stop();
      }
    });
  }
});
