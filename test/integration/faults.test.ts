// Injected model failures and panics: the affected windows get error events, everything else
// goes on, the counters move, and neither the server nor a parallel stream is harmed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client, streamFile } from '../helpers/client.js';
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
