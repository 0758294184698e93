// src/tracing.ts without a collector: what a trace_id names, the no-op trace, the endpoint rule.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parentOf, shutdownTracing, startStreamTrace, tracesEndpoint, tracingEnabled } from '../../src/tracing.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parentOf(trace_id)', () => {
  it('a W3C traceparent: that remote span, with its flags', () => {
    assert.deepEqual(parentOf(`00-${TRACE}-${SPAN}-01`), { traceId: TRACE, spanId: SPAN, traceFlags: 1, isRemote: true });
    assert.deepEqual(parentOf(`00-${TRACE}-${SPAN}-00`), { traceId: TRACE, spanId: SPAN, traceFlags: 0, isRemote: true }, 'not sampled');
    assert.equal(parentOf(` 00-${TRACE.toUpperCase()}-${SPAN}-01 `)?.traceId, TRACE, 'either case, spaces around');
    assert.equal(parentOf(`01-${TRACE}-${SPAN}-01-future`)?.spanId, SPAN, 'a later version may add fields');
  });

  it('an invalid traceparent names no parent', () => {
    for (const bad of [
      `ff-${TRACE}-${SPAN}-01`, // version ff is invalid
      `00-${TRACE}-${SPAN}-01-extra`, // version 00 has four fields
      `00-${'0'.repeat(32)}-${SPAN}-01`, // all-zero trace id
      `00-${TRACE}-${'0'.repeat(16)}-01`, // all-zero span id
      `00-${TRACE}-${SPAN}`,
      `00-${TRACE.slice(1)}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-0g`,
    ]) {
      assert.equal(parentOf(bad), undefined, bad);
    }
  });

  it('a bare 32-hex trace id: a sampled remote parent in that trace with a random span id', () => {
    const a = parentOf(TRACE)!;
    const b = parentOf(TRACE.toUpperCase())!;
    assert.equal(a.traceId, TRACE);
    assert.equal(b.traceId, TRACE);
    assert.equal(a.traceFlags, 1);
    assert.equal(a.isRemote, true);
    assert.match(a.spanId, /^[0-9a-f]{16}$/);
    assert.notEqual(a.spanId, b.spanId);
    assert.equal(parentOf('0'.repeat(32)), undefined);
  });

  it('anything else, or null: no parent', () => {
    for (const other of [null, '', 'request-42', TRACE + '0', TRACE.slice(1), `${TRACE}-${SPAN}`, 'x'.repeat(256)]) {
      assert.equal(parentOf(other), undefined, String(other));
    }
  });
});

describe('tracing off', () => {
  it('is off without an OTLP endpoint, on with either variable, off again with OTEL_SDK_DISABLED', () => {
    assert.equal(tracesEndpoint({}), undefined);
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }), undefined);
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), 'http://c:4318');
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t/v1/traces' }), 'http://t/v1/traces');
    assert.equal(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' }), undefined);
  });

  it('every stream shares one no-op trace that records nothing', async () => {
    if (tracingEnabled()) return; // this process was started with an OTLP endpoint
    const format = { encoding: 'pcm' as const, channels: 1, sampleRate: 16000, bitDepth: 16, isFloat: false };
    const a = startStreamTrace({ route: 'segmented', traceId: `00-${TRACE}-${SPAN}-01`, format });
    const b = startStreamTrace({ route: 'simple', traceId: null, format });
    assert.equal(a, b);
    assert.equal(a.recording, false);
    assert.deepEqual(a.logFields, {});
    const stage = a.stage('model_inference', { 'speech.channel': 0 });
    stage.end({ runSeconds: 0.1, waitSeconds: 0 });
    stage.fail('MODEL_FAILURE', 'x');
    a.decoded({ runSeconds: 0.001, waitSeconds: 0 });
    a.vadAnswered(0.01);
    a.sent({ type: 'error', channel: 0, code: 'INTERNAL', message: 'x' });
    a.end({ outcome: 'finished', audioSeconds: 1 });
    await shutdownTracing();
  });
});
