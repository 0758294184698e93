// Odd sample rates (issue #17 item 3): a rate whose resampler filter bank is not designed yet
// costs milliseconds of design and ~1 MB. The design runs on a threadpool worker, never on the
// event loop, and new uncommon rates are admitted within a process-wide budget: a client looping
// `start` over 191999, 191998, ... gets SAMPLE_RATE_BUSY instead of stalling everyone.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, type ServerEventJson } from '../helpers/client.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { sendPaced } from '../helpers/pace.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const wav = readWav('two_utterances_16k_mono_s16.wav');

function start(sampleRate: number): string {
  return startMessage({ channels: 1, sampleRate, bitDepth: 16, isFloat: false });
}

/** `seconds` of 16-bit mono silence at `rate` (whole frames). */
function silence(rate: number, seconds: number): Uint8Array {
  return new Uint8Array(2 * Math.round(rate * seconds));
}

const busy = (events: ServerEventJson[]): ServerEventJson[] => events.filter((e) => e['code'] === 'SAMPLE_RATE_BUSY');
const segments = (events: ServerEventJson[]): ServerEventJson[] => events.filter((e) => e.type === 'segment');

describe('odd sample rates: a start flood', () => {
  let server: TestServer;
  before(async () => { server = await startServer({ SIMPLE_WINDOW_SECONDS: '1' }); });
  after(async () => { await server.stop(); });

  it('gets SAMPLE_RATE_BUSY beyond MAX_RATE_DESIGNS_PER_SECOND, counted, designs nothing on the event loop, and a live stream beside it keeps its results', async () => {
    const metricsBefore = await scrapeMetrics(server.http('/metrics'));
    const live = await Client.connect(server.url('/api/v1/simple'));
    live.sendJson(startMessage(wav));
    const liveAudio = sendPaced(live, wav.data.subarray(0, 32000 * 3), 32000, 0.1, 1);

    const flood = await Client.connect(server.url('/api/v1/simple'));
    const starts = 100;
    // Starts alone: an admitted one designs its bank at once (audio after a refused one would
    // earn NOT_STARTED).
    for (let i = 0; i < starts; i++) flood.sendJson(start(191_999 - i));
    // The connection is still usable: a common rate starts at once and gives its results.
    flood.sendJson(start(16000));
    await flood.sendAudio(silence(16000, 1), 3200);
    flood.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await flood.closed, 1000);

    const refused = busy(flood.events);
    const admitted = starts - refused.length;
    // 4 a second, bursts of 4: the flood takes a few seconds at most, so most starts are refused.
    assert.ok(refused.length >= starts / 2, `${refused.length} of ${starts} odd-rate starts refused`);
    assert.ok(admitted >= 1, 'the budget admits some');
    for (const e of refused) assert.match(String(e['message']), /MAX_RATE_DESIGNS_PER_SECOND/);
    assert.equal(flood.events.filter((e) => e.type === 'error').length, refused.length, 'no other error');
    assert.deepEqual(segments(flood.events).at(-1)?.['end_time'], 1, 'the 16 kHz stream after the flood gave its result');

    await liveAudio;
    live.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await live.closed, 1000);
    assert.deepEqual(segments(live.events).map((e) => [e['start_time'], e['end_time']]), [[0, 1], [1, 2], [2, 3]]);

    const m = await scrapeMetrics(server.http('/metrics'));
    const counted = (m.get('errors_total{kind="SAMPLE_RATE_BUSY"}') ?? 0) - (metricsBefore.get('errors_total{kind="SAMPLE_RATE_BUSY"}') ?? 0);
    assert.equal(counted, refused.length, 'every refusal counted in errors_total');
    assert.equal(m.get('resampler_filter_designs_total{thread="js"}'), 0, 'no filter bank designed on an event loop');
    const designed = (m.get('resampler_filter_designs_total{thread="worker"}') ?? 0) - (metricsBefore.get('resampler_filter_designs_total{thread="worker"}') ?? 0);
    assert.ok(designed >= admitted, `${designed} designs on workers for ${admitted} admitted odd rates`);
    // Every odd-rate stream has ended: at most 8 unused uncommon banks stay cached.
    const banks = m.get('resampler_filter_banks') ?? NaN;
    assert.ok(banks <= 8, `${banks} filter banks alive`);
    const bytes = m.get('resampler_filter_bank_bytes') ?? NaN;
    assert.ok(bytes > 0 && bytes <= 8 * 2 * 1024 * 1024, `${bytes} bytes of filter banks`);
  });
});

describe('odd sample rates: MAX_SAMPLE_RATES', () => {
  let server: TestServer;
  before(async () => { server = await startServer({ SIMPLE_WINDOW_SECONDS: '1', MAX_SAMPLE_RATES: '2', MAX_RATE_DESIGNS_PER_SECOND: '0' }); });
  after(async () => { await server.stop(); });

  /** Starts a stream at `rate` on `client` and waits for its first result (the stream is live). */
  async function streaming(client: Client, rate: number): Promise<void> {
    const seen = segments(client.events).length;
    client.sendJson(start(rate));
    await client.sendAudio(silence(rate, 1.2), 1 << 16);
    await client.waitFor((events) => segments(events).length > seen);
  }

  it('bounds the uncommon rates in use; rates in use and common rates are always admitted; an ended stream frees its rate', async () => {
    const a = await Client.connect(server.url('/api/v1/simple'));
    const b = await Client.connect(server.url('/api/v1/simple'));
    await streaming(a, 100_001);
    await streaming(b, 100_002);

    const c = await Client.connect(server.url('/api/v1/simple'));
    c.sendJson(start(100_003));
    const [refusal] = busy(await c.waitFor((events) => busy(events).length === 1));
    assert.match(String(refusal!['message']), /MAX_SAMPLE_RATES/);
    await streaming(c, 100_001); // in use by a: its bank is shared
    await streaming(c, 44_100); // common
    await streaming(c, 8_000);

    a.sendJson({ request: 'stop', disconnect: true });
    assert.equal(await a.closed, 1000);
    await streaming(c, 100_003); // a's rate is no longer in use: room for another
    assert.equal(busy(c.events).length, 1);
    for (const client of [b, c]) {
      client.sendJson({ request: 'stop', disconnect: true });
      assert.equal(await client.closed, 1000);
    }
    const m = await scrapeMetrics(server.http('/metrics'));
    assert.equal(m.get('errors_total{kind="SAMPLE_RATE_BUSY"}'), 1);
    assert.equal(m.get('resampler_filter_designs_total{thread="js"}'), 0);
  });
});
