// Memory after load (issue #17 item 6): once a peak of hundreds of streams has ended, the server's
// resident memory comes back near where it was idle. glibc keeps the pages freed by the streams'
// buffers; the server hands them back every 10 s (src/memory-release.ts). Measured before: 220 MB
// idle, 760 MB after 400 stub-model streams, and still 757 MB 20 s later.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { FIXTURES } from '../helpers/wav.js';

let server: TestServer;
before(async () => { server = await startServer({ MODEL: 'stub', MAX_CONNECTIONS: '2000' }); });
after(async () => { await server.stop(); });

const rssMb = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.process.pid}/status`, 'utf8'))![1]) / 1024;

describe('memory after load', () => {
  it('comes back to within half of a 400-stream peak above idle within 25 s, and says so in the log', async (t: TestContext) => {
    const idle = rssMb();
    let peak = idle;
    const sampler = setInterval(() => { peak = Math.max(peak, rssMb()); }, 100);
    const load = await runCli(['load', '--streams', '400', '--no-real-time', '--ramp-up', '1', '--url', server.url('/api/v1/segmented'),
      path.join(FIXTURES, 'two_utterances_16k_mono_s16.wav')], {}, 120_000);
    clearInterval(sampler);
    assert.equal(load.code, 0, load.stderr);
    assert.ok(peak - idle >= 100, `the load must raise RSS to test its return: ${idle.toFixed(0)} -> ${peak.toFixed(0)} MB`);
    const deadline = Date.now() + 25_000;
    let now = rssMb();
    while (now > idle + (peak - idle) / 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      now = rssMb();
    }
    t.diagnostic(`RSS idle ${idle.toFixed(0)} MB, peak ${peak.toFixed(0)} MB, after ${now.toFixed(0)} MB`);
    assert.ok(now <= idle + (peak - idle) / 2, `RSS stayed at ${now.toFixed(0)} MB (idle ${idle.toFixed(0)}, peak ${peak.toFixed(0)})`);
    assert.ok(server.logs.some((l) => l['msg'] === 'memory released'), 'the release is logged');
  });
});
