// Injected model failures and panics: the affected windows get error events, everything else
// goes on, the counters move, and neither the server nor a parallel stream is harmed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client, streamFile } from '../helpers/client.js';
import { sendPaced } from '../helpers/pace.js';
import { startServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const wav = readWav('two_utterances_16k_mono_s16.wav'); // 11.84 s: 12 windows of 1 s

async function metric(url: string, line: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const found = text.split('\n').find((l) => l.startsWith(line + ' '));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

for (const [option, code, counter] of [
  ['panic_rate', 'NATIVE_PANIC', 'task_panic_total{task="inference"}'],
  ['failure_rate', 'MODEL_FAILURE', 'task_failed_total{task="inference"}'],
] as const) {
  describe(`stub ${option}: 1`, () => {
    it(`answers every window with a ${code} error, counts each, and harms no other stream`, async () => {
      const server = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '1', STUB: JSON.stringify({ [option]: 1 }) });
      try {
        const before = await metric(server.http('/metrics'), counter);
        // Two streams in parallel, plus one that stays open idle the whole time.
        const idle = await Client.connect(server.url('/api/v1/simple'));
        const runs = await Promise.all([1, 2].map(() => streamFile(server.url('/api/v1/simple'), startMessage(wav), wav.data, 3200)));
        for (const { events, closeCode } of runs) {
          assert.equal(closeCode, 1000, 'the stream ends normally at its stop');
          assert.equal(events.length, 12);
          for (const e of events) {
            assert.equal(e.type, 'error');
            assert.equal(e['code'], code);
            assert.match(e['message'] as string, /failed on \d+\.\d{3}-\d+\.\d{3} s/);
          }
        }
        assert.equal(await metric(server.http('/metrics'), counter), before + 24);
        assert.equal(await metric(server.http('/metrics'), `errors_total{kind="${code}"}`), 24);
        const health = (await (await fetch(server.http('/api/v1/health'))).json()) as Record<string, unknown>;
        assert.equal(health['status'], option === 'panic_rate' ? 'degraded' : 'healthy');
        assert.equal(health['panics'], option === 'panic_rate' ? 24 : 0);
        // The idle connection is still there and still works.
        assert.equal(idle.closeCode, undefined);
        idle.sendJson({ request: 'stop', disconnect: true });
        assert.equal(await idle.closed, 1000);
        assert.equal(server.process.exitCode, null, 'the server is still running');
      } finally {
        await server.stop();
      }
    });
  });
}

describe('stub panic_rate: 0.5', () => {
  it('fails only the affected windows: every window gets exactly one segment or error, in order', async () => {
    const server = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '1', STUB: JSON.stringify({ panic_rate: 0.5, seed: 7 }) });
    try {
      const { events } = await streamFile(server.url('/api/v1/simple'), startMessage(wav), wav.data, 3200);
      assert.equal(events.length, 12);
      const errors = events.filter((e) => e.type === 'error').length;
      assert.ok(errors > 0 && errors < 12, `${errors} of 12 windows failed`);
      const segments = events.filter((e) => e.type === 'segment');
      assert.ok(segments.every((s, i) => i === 0 || (s['start_time'] as number) > (segments[i - 1]!['start_time'] as number)));
      assert.equal(await metric(server.http('/metrics'), 'task_panic_total{task="inference"}'), errors);
    } finally {
      await server.stop();
    }
  });
});

describe('stub faults at 10 %', () => {
  it('only the affected windows get errors, every other result arrives, counters match the injected faults exactly', async () => {
    const server = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '0.5', STUB: JSON.stringify({ failure_rate: 0.1, panic_rate: 0.1, seed: 42 }) });
    try {
      const runs = await Promise.all([1, 2, 3, 4].map(() => streamFile(server.url('/api/v1/simple'), startMessage(wav), wav.data, 3200)));
      const events = runs.flatMap((r) => r.events);
      const windows = Math.ceil(wav.seconds / 0.5);
      for (const r of runs) {
        assert.equal(r.closeCode, 1000);
        assert.equal(r.events.length, windows, 'one segment or one error per window');
      }
      const failures = events.filter((e) => e['code'] === 'MODEL_FAILURE').length;
      const panics = events.filter((e) => e['code'] === 'NATIVE_PANIC').length;
      const segments = events.filter((e) => e.type === 'segment').length;
      assert.ok(failures > 0 && panics > 0, `${failures} failures, ${panics} panics injected`);
      assert.equal(segments + failures + panics, 4 * windows);
      const url = server.http('/metrics');
      assert.equal(await metric(url, 'task_failed_total{task="inference"}'), failures);
      assert.equal(await metric(url, 'task_panic_total{task="inference"}'), panics);
      assert.equal(await metric(url, 'errors_total{kind="MODEL_FAILURE"}'), failures);
      assert.equal(await metric(url, 'errors_total{kind="NATIVE_PANIC"}'), panics);
    } finally {
      await server.stop();
    }
  });
});

describe('a model slower than real time', () => {
  it('sheds the stream that falls behind with BACKLOG and close 1008, without unbounded growth', async () => {
    // 1 s windows, 1.5 s of model time each: the queue grows by half a window per second.
    const server = await startServer({ MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '1', MAX_BACKLOG_SECONDS: '3', STUB: JSON.stringify({ delay_ms: 1500 }) });
    try {
      const client = await Client.connect(server.url('/api/v1/simple'));
      client.sendJson(startMessage(wav));
      await sendPaced(client, wav.data, 32000, 0.1, 4).catch(() => undefined); // 4x real time; the server may close first
      assert.equal(await client.closed, 1008);
      const errors = client.events.filter((e) => e.type === 'error');
      assert.deepEqual(errors.map((e) => e['code']), ['BACKLOG']);
      assert.match(errors[0]!['message'] as string, /waiting for the model/);
      assert.ok(client.events.filter((e) => e.type === 'segment').length <= 2, 'the queue never held more than its bound');
      const url = server.http('/metrics');
      assert.equal(await metric(url, 'errors_total{kind="BACKLOG"}'), 1);
      assert.equal(await metric(url, 'streams_active{route="simple"}'), 0);
      assert.equal((await (await fetch(server.http('/api/v1/health'))).json() as Record<string, unknown>)['status'], 'healthy');
    } finally {
      await server.stop();
    }
  });
});
