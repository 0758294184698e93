// Tracing (issue #6): a real server exporting over OTLP/HTTP to a receiver started here. The
// start message's trace_id becomes the stream span's parent, model inferences are its children,
// and the stream's log lines carry the ids; without the OTLP variables nothing is exported.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, streamFile, type ServerEventJson } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

// OTLP/JSON, as much of it as the assertions read.
interface OtlpValue { stringValue?: string; intValue?: number | string; doubleValue?: number; boolValue?: boolean }
interface OtlpAttribute { key: string; value: OtlpValue }
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: OtlpAttribute[];
  events?: { name: string; attributes?: OtlpAttribute[] }[];
  status?: { code?: number; message?: string };
}
interface OtlpRequest {
  resourceSpans: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans: { spans?: OtlpSpan[] }[] }[];
}

interface Span extends OtlpSpan {
  attrs: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
}

const SPAN_KIND_INTERNAL = 1;
const SPAN_KIND_SERVER = 2;
const STATUS_ERROR = 2;

function flatten(attributes: OtlpAttribute[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of attributes ?? []) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue;
    if (v !== undefined) out[key] = typeof v === 'string' && value.intValue !== undefined ? Number(v) : v;
  }
  return out;
}

/** An OTLP/HTTP receiver on loopback: keeps every span POSTed to /v1/traces. */
class Collector {
  readonly spans: Span[] = [];
  readonly contentTypes: string[] = [];
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      this.contentTypes.push(req.headers['content-type'] ?? '');
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpRequest;
      for (const rs of body.resourceSpans) {
        const resource = flatten(rs.resource?.attributes);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans ?? []) this.spans.push({ ...s, attrs: flatten(s.attributes), resource });
        }
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The spans of `traceId`, once `done` holds for them. */
  async waitFor(traceId: string, done: (spans: Span[]) => boolean, ms = 10_000): Promise<Span[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const spans = this.spans.filter((s) => s.traceId === traceId);
      if (done(spans)) return spans;
      if (Date.now() > deadline) throw new Error(`timed out waiting for the spans of ${traceId}; got ${JSON.stringify(spans.map((s) => s.name))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');
const streamSpanOf = (spans: Span[], route: string): Span | undefined => spans.find((s) => s.name === `${route} stream`);
const logsOf = (server: TestServer, field: string, value: string): Record<string, unknown>[] => server.logs.filter((l) => l[field] === value);
const segments = (events: ServerEventJson[]): ServerEventJson[] => events.filter((e) => e.type === 'segment');

/** Log lines are read from the server's stdout as they come: wait for the line `msg`. */
async function waitForLog(server: TestServer, field: string, value: string, msg: string, ms = 5000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const line = logsOf(server, field, value).find((l) => l['msg'] === msg);
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no "${msg}" log line with ${field}=${value}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('tracing with OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  const collector = new Collector();
  let server: TestServer;
  before(async () => {
    const endpoint = await collector.start();
    server = await startServer({ MODEL: 'stub', LOG_LEVEL: 'debug', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '200', OTEL_SERVICE_NAME: '' });
  });
  after(async () => {
    await server.stop();
    await collector.stop();
  });

  it('a traceparent: the stream span is its child, each utterance\'s inference a child of the stream span', async () => {
    const traceId = hex(16);
    const parentId = hex(8);
    const traceparent = `00-${traceId}-${parentId}-01`;
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    const { events, closeCode } = await streamFile(server.url('/api/v1/segmented'), startMessage(wav, { trace_id: traceparent }), wav.data, 4096);
    assert.equal(closeCode, 1000);
    const finals = segments(events);
    assert.equal(finals.length, 2);

    const spans = await collector.waitFor(traceId, (s) => streamSpanOf(s, 'segmented') !== undefined && s.filter((x) => x.name === 'model_inference').length >= 2);
    assert.ok(collector.contentTypes.every((t) => t.startsWith('application/json')), 'OTLP/HTTP JSON');
    const stream = streamSpanOf(spans, 'segmented')!;
    assert.equal(stream.parentSpanId, parentId, 'the stream span\'s parent is the traceparent\'s span');
    assert.equal(stream.kind, SPAN_KIND_SERVER);
    assert.equal(stream.resource['service.name'], 'speech-server');
    assert.notEqual(stream.status?.code, STATUS_ERROR);
    const a = stream.attrs;
    assert.equal(a['speech.route'], 'segmented');
    assert.equal(a['speech.trace_id'], traceparent);
    assert.equal(a['speech.format.channels'], 1);
    assert.equal(a['speech.format.sample_rate'], 16000);
    assert.equal(a['speech.format.bit_depth'], 16);
    assert.equal(a['speech.format.is_float'], false);
    assert.equal(a['speech.format.encoding'], 'pcm');
    assert.equal(a['speech.interim_results'], false);
    assert.equal(a['speech.outcome'], 'finished');
    assert.ok(Math.abs((a['speech.audio_seconds'] as number) - wav.seconds) < 1e-6, `audio seconds ${a['speech.audio_seconds']} = ${wav.seconds}`);
    assert.equal(a['speech.segments'], 2);
    assert.equal(a['speech.errors'], 0);
    assert.equal(a['speech.model_inference.runs'], 2);
    assert.equal(a['speech.model_inference.failures'], 0);
    assert.ok((a['speech.audio_decoding.jobs'] as number) >= 1);
    assert.ok((a['speech.vad_processing.requests'] as number) >= 1);
    assert.ok((a['speech.vad_processing.max_wait_seconds'] as number) > 0);

    const inferences = spans.filter((s) => s.name === 'model_inference').sort((x, y) => (x.attrs['speech.start_time'] as number) - (y.attrs['speech.start_time'] as number));
    assert.equal(inferences.length, 2, 'one inference span per utterance, none per frame');
    assert.equal(spans.length, 3, 'and no other spans');
    inferences.forEach((s, i) => {
      assert.equal(s.parentSpanId, stream.spanId, 'a child of the stream span');
      assert.equal(s.kind, SPAN_KIND_INTERNAL);
      assert.equal(s.attrs['speech.channel'], 0);
      assert.equal(s.attrs['speech.is_final'], true);
      assert.equal(s.attrs['speech.utterance'], i + 1);
      assert.equal(s.attrs['speech.start_time'], finals[i]!['start_time']);
      assert.equal(s.attrs['speech.end_time'], finals[i]!['end_time']);
      assert.ok(Math.abs((s.attrs['speech.audio_seconds'] as number) - (finals[i]!['count'] as number) / 16000) < 1e-9);
      assert.equal(typeof s.attrs['speech.run_seconds'], 'number');
      assert.ok((s.attrs['speech.run_seconds'] as number) >= 0);
      assert.ok((s.attrs['speech.queue_seconds'] as number) >= 0);
      assert.notEqual(s.status?.code, STATUS_ERROR);
    });

    // The stream's log lines carry the client's trace_id and the span's ids.
    for (const msg of ['stream started', 'stream ended']) {
      const line = await waitForLog(server, 'trace_id', traceparent, msg);
      assert.equal(line['otel_trace_id'], traceId, msg);
      assert.equal(line['otel_span_id'], stream.spanId, msg);
    }
  });

  it('a bare 32-hex trace id: the stream span joins that trace (simple route: a span per window)', async () => {
    const traceId = hex(16);
    const wav = readWav('two_utterances_48k_mono_f32.wav');
    const { events } = await streamFile(server.url('/api/v1/simple'), startMessage(wav, { trace_id: traceId.toUpperCase() }), wav.data, 8192);
    const windows = segments(events);
    assert.ok(windows.length >= 3);
    const spans = await collector.waitFor(traceId, (s) => streamSpanOf(s, 'simple') !== undefined && s.filter((x) => x.name === 'model_inference').length >= windows.length);
    const stream = streamSpanOf(spans, 'simple')!;
    assert.match(stream.parentSpanId ?? '', /^[0-9a-f]{16}$/, 'a remote parent in that trace');
    assert.equal(stream.attrs['speech.route'], 'simple');
    assert.equal(stream.attrs['speech.format.sample_rate'], 48000);
    assert.equal(stream.attrs['speech.format.is_float'], true);
    assert.equal(stream.attrs['speech.interim_results'], undefined, 'the simple route has no interims');
    assert.equal(stream.attrs['speech.segments'], windows.length);
    const inferences = spans.filter((s) => s.name === 'model_inference');
    assert.equal(inferences.length, windows.length);
    for (const s of inferences) {
      assert.equal(s.parentSpanId, stream.spanId);
      assert.equal(s.attrs['speech.is_final'], undefined);
    }
    const line = await waitForLog(server, 'otel_trace_id', traceId, 'stream ended');
    assert.equal(line['trace_id'], traceId.toUpperCase(), 'trace_id is logged as the client sent it');
  });

  it('any other trace_id: a new trace, the value kept as speech.trace_id; a stream without one still gets a span', async () => {
    const opaque = `request-${hex(4)}`;
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    const short = wav.data.subarray(0, 32000 * 2);
    await streamFile(server.url('/api/v1/simple'), startMessage(wav, { trace_id: opaque }), short, 4096);
    const line = await waitForLog(server, 'trace_id', opaque, 'stream ended');
    const traceId = line['otel_trace_id'] as string;
    assert.match(traceId, /^[0-9a-f]{32}$/);
    const stream = streamSpanOf(await collector.waitFor(traceId, (s) => streamSpanOf(s, 'simple') !== undefined), 'simple')!;
    assert.equal(stream.parentSpanId || undefined, undefined, 'a root span');
    assert.equal(stream.attrs['speech.trace_id'], opaque);

    const before = collector.spans.length;
    const ended = (): Record<string, unknown>[] => server.logs.filter((l) => l['msg'] === 'stream ended');
    const endedBefore = ended().length;
    await streamFile(server.url('/api/v1/simple'), startMessage(wav), short, 4096);
    while (ended().length === endedBefore) await new Promise((r) => setTimeout(r, 20));
    const untraced = ended().at(-1)!;
    assert.equal(untraced['trace_id'], undefined);
    const spans = await collector.waitFor(untraced['otel_trace_id'] as string, (s) => streamSpanOf(s, 'simple') !== undefined);
    assert.equal(streamSpanOf(spans, 'simple')!.attrs['speech.trace_id'], undefined);
    assert.ok(collector.spans.length > before);
  });

  it('an unsampled traceparent records nothing; the log lines keep trace_id', async () => {
    const traceId = hex(16);
    const traceparent = `00-${traceId}-${hex(8)}-00`;
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    await streamFile(server.url('/api/v1/segmented'), startMessage(wav, { trace_id: traceparent }), wav.data, 4096);
    const line = await waitForLog(server, 'trace_id', traceparent, 'stream ended');
    assert.equal(line['otel_trace_id'], undefined);
    // A later traced stream's spans have arrived, so these would have too.
    const probe = hex(16);
    await streamFile(server.url('/api/v1/simple'), startMessage(wav, { trace_id: probe }), wav.data.subarray(0, 16000), 4096);
    await collector.waitFor(probe, (s) => s.length > 0);
    assert.deepEqual(collector.spans.filter((s) => s.traceId === traceId), []);
  });

  it('a stream the client abandons ends as disconnected; one closed for an error has status ERROR', async () => {
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    const gone = hex(16);
    const client = await Client.connect(server.url('/api/v1/segmented'));
    client.sendJson(startMessage(wav, { trace_id: gone }));
    await client.sendAudio(wav.data.subarray(0, 64000), 4096);
    await client.waitFor((events) => events.some((e) => e.type === 'active'));
    client.close();
    const abandoned = streamSpanOf(await collector.waitFor(gone, (s) => streamSpanOf(s, 'segmented') !== undefined), 'segmented')!;
    assert.equal(abandoned.attrs['speech.outcome'], 'disconnected');
    assert.notEqual(abandoned.status?.code, STATUS_ERROR);

    const failing = hex(16);
    const flood = await Client.connect(server.url('/api/v1/segmented'));
    flood.sendJson(startMessage(wav, { trace_id: failing }));
    flood.ws.send(Buffer.alloc(1.5 * (1 << 20)), { binary: true }); // over MAX_FRAME_BYTES (1 MiB), under twice it
    assert.equal(await flood.closed, 1009);
    const failed = streamSpanOf(await collector.waitFor(failing, (s) => streamSpanOf(s, 'segmented') !== undefined), 'segmented')!;
    assert.equal(failed.status?.code, STATUS_ERROR);
    assert.equal(failed.attrs['speech.outcome'], 'FRAME_TOO_LARGE');
    assert.equal(failed.attrs['error.type'], 'FRAME_TOO_LARGE');
    assert.equal(failed.attrs['speech.errors'], 1);
    assert.deepEqual(failed.events?.map((e) => e.name), ['speech.error']);
  });
});

describe('tracing: a failing model', () => {
  const collector = new Collector();
  let server: TestServer;
  before(async () => {
    const endpoint = await collector.start();
    server = await startServer({
      MODEL: 'stub', STUB: JSON.stringify({ failure_rate: 1 }), SIMPLE_WINDOW_SECONDS: '2',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint}/v1/traces`, OTEL_BSP_SCHEDULE_DELAY: '200',
    });
  });
  after(async () => {
    await server.stop();
    await collector.stop();
  });

  it('each failed inference is an ERROR span; the stream goes on and counts the errors', async () => {
    const traceId = hex(16);
    const wav = readWav('two_utterances_16k_mono_s16.wav');
    const { events, closeCode } = await streamFile(server.url('/api/v1/simple'), startMessage(wav, { trace_id: `00-${traceId}-${hex(8)}-01` }), wav.data, 4096);
    assert.equal(closeCode, 1000);
    const errors = events.filter((e) => e.type === 'error');
    assert.ok(errors.length >= 5 && errors.every((e) => e['code'] === 'MODEL_FAILURE'));
    const spans = await collector.waitFor(traceId, (s) => streamSpanOf(s, 'simple') !== undefined && s.filter((x) => x.name === 'model_inference').length >= errors.length);
    const stream = streamSpanOf(spans, 'simple')!;
    assert.equal(stream.attrs['speech.outcome'], 'finished');
    assert.notEqual(stream.status?.code, STATUS_ERROR, 'the stream itself finished');
    assert.equal(stream.attrs['speech.errors'], errors.length);
    assert.equal(stream.attrs['speech.model_inference.failures'], errors.length);
    assert.equal(stream.attrs['speech.model_inference.runs'], 0);
    for (const s of spans.filter((x) => x.name === 'model_inference')) {
      assert.equal(s.parentSpanId, stream.spanId);
      assert.equal(s.status?.code, STATUS_ERROR);
      assert.equal(s.attrs['error.type'], 'MODEL_FAILURE');
      assert.deepEqual(s.events?.map((e) => e.name), ['exception']);
    }
  });
});

describe('tracing off', () => {
  it('without OTEL_EXPORTER_OTLP_ENDPOINT the server streams as before and exports nothing; trace_id is still logged', async () => {
    const collector = new Collector();
    const endpoint = await collector.start();
    // OTEL_SDK_DISABLED wins over an endpoint; the plain case has no endpoint at all.
    const envs: Record<string, string>[] = [
      { OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: 'true' },
    ];
    for (const env of envs) {
      const server = await startServer({ MODEL: 'stub', LOG_LEVEL: 'debug', OTEL_BSP_SCHEDULE_DELAY: '50', ...env });
      try {
        const traceparent = `00-${hex(16)}-${hex(8)}-01`;
        const wav = readWav('two_utterances_16k_mono_s16.wav');
        const { events, closeCode } = await streamFile(server.url('/api/v1/segmented'), startMessage(wav, { trace_id: traceparent }), wav.data, 4096);
        assert.equal(closeCode, 1000);
        assert.equal(segments(events).length, 2);
        for (const msg of ['stream started', 'stream ended']) {
          const line = await waitForLog(server, 'trace_id', traceparent, msg);
          assert.equal(line['otel_trace_id'], undefined, 'no span, no span ids');
        }
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        await server.stop();
      }
    }
    await collector.stop();
    assert.deepEqual(collector.spans, [], 'nothing was sent');
  });
});

// The last spans go out when the server drains, once src/main.ts calls shutdownTracing().
const mainFlushes = readFileSync(path.resolve(import.meta.dirname, '../../src/main.ts'), 'utf8').includes('shutdownTracing');
describe('tracing at shutdown', { skip: mainFlushes ? false : 'src/main.ts does not call shutdownTracing() yet' }, () => {
  it('spans still batched when the server drains are flushed before it exits', async () => {
    const collector = new Collector();
    const endpoint = await collector.start();
    const server = await startServer({ MODEL: 'stub', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '600000' });
    const traceId = hex(16);
    try {
      const wav = readWav('two_utterances_16k_mono_s16.wav');
      const client = await Client.connect(server.url('/api/v1/segmented'));
      client.sendJson(startMessage(wav, { trace_id: traceId }));
      await client.sendAudio(wav.data, 4096);
      await client.waitFor((events) => events.some((e) => e.type === 'inactive'));
      assert.equal(await server.stop(), 0);
      assert.equal(await client.closed, 1001);
      const stream = streamSpanOf(collector.spans.filter((s) => s.traceId === traceId), 'segmented');
      assert.ok(stream, 'the stream span arrived before the process exited');
      assert.equal(stream.attrs['speech.outcome'], 'drained');
    } finally {
      await server.stop();
      await collector.stop();
    }
  });
});
