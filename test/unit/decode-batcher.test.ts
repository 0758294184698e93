// Batched decoding: addon.decodeBatch (many streams' bytes in one native job) and the
// DecodeBatcher that feeds it from every stream's AudioFrontEnd. Batched output must be
// bit-identical to each stream decoded alone, in order per stream, however the bytes are cut.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SharedState } from '../../src/cluster/shared-state.js';
import { Metrics } from '../../src/metrics/registry.js';
import { addon, isNativeError, type AudioChunk, type DecodeBatchResult, type NativeAudioStream, type NativeFormat } from '../../src/native/binding.js';
import { AudioFrontEnd } from '../../src/pipeline/audio-front-end.js';
import { DecodeBatcher } from '../../src/pipeline/decode-batcher.js';
import { TaskFailure } from '../../src/tasks.js';
import type { StreamTrace } from '../../src/tracing.js';
import { BYTES, nativeFormat, writeSample, type Encoding } from '../helpers/pcm-encode.js';
import { concat, seededRandom } from '../helpers/signal.js';

/** A registry like one worker thread's (no process families). */
const testMetrics = (): Metrics => new Metrics({ worker: 0, shared: new SharedState(1) });

interface Case { encoding: Encoding; sampleRate: number; channels: number }

const CASES: Case[] = [
  { encoding: 's16', sampleRate: 16000, channels: 1 },
  { encoding: 's16', sampleRate: 44100, channels: 2 },
  { encoding: 'f32', sampleRate: 48000, channels: 1 },
  { encoding: 's24', sampleRate: 22050, channels: 2 },
  { encoding: 'u8', sampleRate: 11025, channels: 1 },
  { encoding: 'f64', sampleRate: 32000, channels: 3 },
  { encoding: 'mulaw', sampleRate: 8000, channels: 1 },
  { encoding: 'alaw', sampleRate: 8000, channels: 2 },
  { encoding: 's32', sampleRate: 24000, channels: 1 },
];

function format({ encoding, sampleRate, channels }: Case): NativeFormat {
  return nativeFormat(encoding, sampleRate, channels);
}

/** `seconds` of a tone per channel (a different one each) plus noise, in the case's wire format;
 *  an odd number of trailing bytes makes an incomplete last frame. */
function wire(c: Case, seconds: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const frames = Math.round(seconds * c.sampleRate);
  const out = Buffer.alloc(frames * c.channels * BYTES[c.encoding] + 1);
  for (let f = 0; f < frames; f++) {
    for (let ch = 0; ch < c.channels; ch++) {
      const x = 0.4 * Math.sin((2 * Math.PI * (200 + 150 * ch) * f) / c.sampleRate) + 0.2 * (random() - 0.5);
      writeSample(out, c.encoding, f * c.channels + ch, x, () => Math.floor(random() * 256));
    }
  }
  out[out.length - 1] = 7;
  return out;
}

/** Splits `bytes` into pieces of random sizes (1 byte up to `max`). */
function cut(bytes: Uint8Array, random: () => number, max: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = 1 + Math.floor(random() * max);
    pieces.push(bytes.slice(i, Math.min(i + n, bytes.length)));
    i += n;
  }
  return pieces;
}

interface Decoded { channels: Float32Array[]; discarded: number }

/** The reference: the stream alone, one push per piece, then its flush. */
async function alone(fmt: NativeFormat, pieces: Uint8Array[]): Promise<Decoded> {
  const stream = new addon.AudioStream(fmt);
  const parts: Float32Array[][] = [];
  for (const p of pieces) parts.push((await stream.push(p)).channels);
  const tail = await stream.flush();
  parts.push(tail.channels);
  stream.close();
  return { channels: Array.from({ length: fmt.channels }, (_, c) => concat(parts.map((p) => p[c]!))), discarded: tail.discardedBytes };
}

function assertBitIdentical(actual: Float32Array[], expected: Float32Array[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: channel count`);
  expected.forEach((e, c) => {
    const a = actual[c]!;
    assert.equal(a.length, e.length, `${what}: channel ${c} length`);
    assert.ok(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(e.buffer, e.byteOffset, e.byteLength)), `${what}: channel ${c} differs`);
  });
}

/** A trace that counts the decode jobs it is told about. */
function countingTrace(): StreamTrace & { runs: number } {
  const trace = {
    runs: 0,
    recording: false,
    logFields: {},
    stage: () => ({ end() {}, fail() {} }),
    decoded() { trace.runs++; },
    vadAnswered() {},
    sent() {},
    end() {},
  };
  return trace;
}

/** An AudioFrontEnd whose sink collects everything (or the failure). */
function frontEnd(fmt: NativeFormat, decoder: DecodeBatcher, maxBacklogSeconds = 60) {
  const parts: Float32Array[][] = [];
  const failures: TaskFailure[] = [];
  const trace = countingTrace();
  const fe = new AudioFrontEnd(fmt, { audio: (chunks) => parts.push(chunks), fail: (f) => failures.push(f) }, decoder, maxBacklogSeconds, trace);
  return {
    fe, failures, trace,
    channels: () => Array.from({ length: fmt.channels }, (_, c) => concat(parts.map((p) => p[c]!))),
  };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function taskField(field: string): number {
  const schema = addon.taskMetricSchema();
  const row = schema.subsystems.indexOf('audio_decoding');
  const col = schema.fields.findIndex((f) => f.field === field);
  return addon.snapshot().task[row * schema.fields.length + col]!;
}

/** Replaces addon.decodeBatch for one test (the batcher calls it through the addon object). */
function wrapDecodeBatch(wrap: (real: typeof addon.decodeBatch) => typeof addon.decodeBatch): () => void {
  const real = addon.decodeBatch.bind(addon);
  addon.decodeBatch = wrap(real);
  return () => { addon.decodeBatch = real; };
}

describe('decodeBatch (native)', () => {
  it('is bit-identical to each stream decoded alone, for every format and rate, however the bytes are cut', async () => {
    const random = seededRandom(1);
    const task = new addon.Task('audio_decoding');
    for (let round = 0; round < 3; round++) {
      const inputs = CASES.map((c, i) => ({ c, fmt: format(c), bytes: wire(c, 0.7, 100 * round + i) }));
      // The reference cuts differently again: chunking must not matter either way.
      const expected = await Promise.all(inputs.map(({ fmt, bytes }) => alone(fmt, cut(bytes, random, 5000))));
      const streams = inputs.map(({ fmt }) => new addon.AudioStream(fmt));
      const queues = inputs.map(({ bytes }) => cut(bytes, random, round === 0 ? 7 : 3000));
      const parts: Float32Array[][][] = inputs.map(() => []);
      while (queues.some((q) => q.length > 0)) {
        // Each job: a random subset of the streams that still have bytes, each with 1-3 pieces.
        const members = queues.map((q, i) => i).filter((i) => queues[i]!.length > 0 && random() < 0.8);
        if (members.length === 0) continue;
        const bytes = members.map((i) => {
          const take = queues[i]!.splice(0, 1 + Math.floor(random() * 3));
          return new Uint8Array(Buffer.concat(take));
        });
        const result = await addon.decodeBatch(task, members.map((i) => streams[i]!), bytes);
        assert.equal(result.chunks.length, members.length);
        members.forEach((s, k) => {
          const chunk = result.chunks[k]!;
          assert.ok(!(chunk instanceof Error), `stream ${s} failed: ${chunk instanceof Error ? chunk.message : ''}`);
          assert.equal(chunk.inputBytes, bytes[k]!.length);
          assert.equal(chunk.discardedBytes, 0);
          assert.ok(chunk.runSeconds >= 0 && chunk.runSeconds <= result.runSeconds + 1e-6, 'a stream ran within the job');
          assert.equal(chunk.waitSeconds >= 0, true);
          parts[s]!.push(chunk.channels);
        });
      }
      for (let s = 0; s < streams.length; s++) {
        const tail = await streams[s]!.flush();
        parts[s]!.push(tail.channels);
        streams[s]!.close();
        const what = `${JSON.stringify(inputs[s]!.c)} round ${round}`;
        assert.equal(tail.discardedBytes, expected[s]!.discarded, `${what}: discarded bytes`);
        assertBitIdentical(Array.from({ length: inputs[s]!.fmt.channels }, (_, c) => concat(parts[s]!.map((p) => p[c]!))), expected[s]!.channels, what);
      }
    }
    task.close();
  });

  it('runs a thousand streams as one job: one poll of the batch task, each stream reserved meanwhile', async () => {
    const task = new addon.Task('audio_decoding');
    const fmt = format(CASES[1]!);
    const bytes = wire(CASES[1]!, 0.1, 5);
    const streams = Array.from({ length: 1000 }, () => new addon.AudioStream(fmt));
    const polls = taskField('total_poll_count');
    const firstPolls = taskField('first_poll_count');
    const job = addon.decodeBatch(task, streams, streams.map(() => bytes));
    assert.throws(() => streams[500]!.push(bytes), (e: unknown) => isNativeError(e) && e.code === 'BUSY');
    const result = await job;
    assert.equal(taskField('total_poll_count') - polls, 1, 'one job, one poll');
    assert.equal(taskField('first_poll_count') - firstPolls, 1001, 'the batch task and every stream had their first poll');
    assert.equal(result.chunks.length, 1000);
    const first = result.chunks[0] as AudioChunk;
    for (const chunk of result.chunks) assertBitIdentical((chunk as AudioChunk).channels, first.channels, 'same input, same output');
    // Released: each stream takes a job of its own again.
    await streams[500]!.push(new Uint8Array(0));
    for (const s of streams) s.close();
    task.close();
  });

  it('a stream closed while its batch runs still gets its chunk; the others are untouched; then it is closed', async () => {
    const task = new addon.Task('audio_decoding');
    const fmt = format(CASES[1]!);
    const bytes = wire(CASES[1]!, 0.5, 9);
    const reference = new addon.AudioStream(fmt);
    const expected = await reference.push(bytes);
    reference.close();
    const streams = [0, 1, 2].map(() => new addon.AudioStream(fmt));
    const job = addon.decodeBatch(task, streams, streams.map(() => bytes));
    streams[1]!.close();
    const result = await job;
    for (const chunk of result.chunks) {
      assert.ok(!(chunk instanceof Error));
      assertBitIdentical(chunk.channels, expected.channels, 'batched chunk');
    }
    assert.throws(() => streams[1]!.push(bytes), (e: unknown) => isNativeError(e) && e.code === 'CLOSED');
    assert.throws(() => addon.decodeBatch(task, [streams[0]!, streams[1]!], [bytes, bytes]), (e: unknown) => isNativeError(e) && e.code === 'CLOSED');
    for (const s of [streams[0]!, streams[2]!]) {
      const tail = await s.flush(); // not reserved by the refused batch
      assert.equal(tail.discardedBytes, 1);
      s.close();
    }
    task.close();
  });

  it('refuses bad batches whole and synchronously, reserving nothing', async () => {
    const task = new addon.Task('audio_decoding');
    const fmt = format(CASES[0]!);
    const a = new addon.AudioStream(fmt);
    const b = new addon.AudioStream(fmt);
    const bytes = new Uint8Array(320);
    const refuses = (code: string, call: () => unknown) =>
      assert.throws(call, (e: unknown) => isNativeError(e) && e.code === code, `expected ${code}`);
    const decodeBatch = addon.decodeBatch.bind(addon) as (...args: unknown[]) => Promise<DecodeBatchResult>;
    refuses('INVALID_ARGUMENT', () => decodeBatch({}, [a], [bytes]));
    refuses('INVALID_ARGUMENT', () => decodeBatch(task, a, [bytes]));
    refuses('INVALID_ARGUMENT', () => decodeBatch(task, [a, b], [bytes]));
    refuses('INVALID_ARGUMENT', () => decodeBatch(task, [a, {}], [bytes, bytes]));
    refuses('INVALID_ARGUMENT', () => decodeBatch(task, [a, b], [bytes, new Float32Array(4)]));
    refuses('INVALID_ARGUMENT', () => decodeBatch(task, [a, b, a], [bytes, bytes, bytes]));

    // BUSY: a stream with its own job in flight, and one already in a batch.
    const own = a.push(bytes);
    refuses('BUSY', () => addon.decodeBatch(task, [b, a], [bytes, bytes]));
    await own;
    const batch = addon.decodeBatch(task, [a], [bytes]);
    refuses('BUSY', () => addon.decodeBatch(task, [b, a], [bytes, bytes]));
    refuses('BUSY', () => a.push(bytes));
    refuses('BUSY', () => a.flush());
    await batch;

    // Nothing was reserved by the refusals: both streams take jobs again.
    const again = await addon.decodeBatch(task, [a, b], [bytes, bytes]);
    assert.equal(again.chunks.length, 2);
    assert.equal((await addon.decodeBatch(task, [], [])).chunks.length, 0);
    a.close();
    b.close();
    task.close();
  });
});

describe('DecodeBatcher', () => {
  it('decodes many front ends, pushing at random, exactly as each alone, in order, in fewer jobs than pushes', async () => {
    const random = seededRandom(7);
    const decoder = new DecodeBatcher(testMetrics(), 1);
    const inputs = Array.from({ length: 24 }, (_, i) => {
      const c = CASES[i % CASES.length]!;
      const bytes = wire(c, 1, 1000 + i);
      return { c, fmt: format(c), pieces: cut(bytes, random, 1500), bytes };
    });
    const expected = await Promise.all(inputs.map(({ fmt, bytes }) => alone(fmt, [bytes])));
    const ends = inputs.map(({ fmt }) => frontEnd(fmt, decoder));
    let pushes = 0;
    while (inputs.some((x) => x.pieces.length > 0)) {
      for (let s = 0; s < inputs.length; s++) {
        const piece = random() < 0.6 ? inputs[s]!.pieces.shift() : undefined;
        if (piece) {
          ends[s]!.fe.push(piece);
          pushes++;
        }
      }
      if (random() < 0.5) await tick();
    }
    await Promise.all(ends.map((e) => e.fe.finish()));
    ends.forEach((e, s) => {
      assert.deepEqual(e.failures, []);
      assertBitIdentical(e.channels(), expected[s]!.channels, JSON.stringify(inputs[s]!.c));
      e.fe.close();
    });
    assert.ok(decoder.jobs < pushes / 4, `${decoder.jobs} jobs for ${pushes} pushes`);
    decoder.close();
  });

  it('keeps at most maxInFlight jobs running, on disjoint streams, and a waiting stream joins the next job', async () => {
    let running = 0;
    let most = 0;
    const seen: NativeAudioStream[][] = [];
    const restore = wrapDecodeBatch((real) => (task, streams, bytes) => {
      running++;
      most = Math.max(most, running);
      seen.push([...streams]);
      const job = real(task, streams, bytes);
      return job.finally(() => { running--; });
    });
    try {
      const decoder = new DecodeBatcher(testMetrics(), 2);
      const fmt = format(CASES[0]!);
      const ends = Array.from({ length: 300 }, () => frontEnd(fmt, decoder));
      const frame = wire(CASES[0]!, 0.02, 3).subarray(0, 640);
      for (let round = 0; round < 5; round++) {
        for (const e of ends) e.fe.push(frame);
        await tick();
      }
      await Promise.all(ends.map((e) => e.fe.finish()));
      assert.ok(most <= 2, `${most} jobs ran at once`);
      for (const streams of seen) assert.equal(new Set(streams).size, streams.length, 'a stream twice in one job');
      // 1500 pushes: in each round the first two start jobs at once, the rest wait and go in bulk.
      assert.ok(decoder.jobs <= 50, `${decoder.jobs} jobs for 1500 pushes`);
      for (const e of ends) {
        assert.deepEqual(e.failures, []);
        assert.equal(e.channels()[0]!.length, 5 * 320);
        e.fe.close();
      }
    } finally {
      restore();
    }
  });

  it('a front end closed while waiting leaves the batch; closed while decoding, its chunk is dropped; the others go on', async () => {
    const decoder = new DecodeBatcher(testMetrics(), 1);
    const fmt = format(CASES[0]!);
    const frame = wire(CASES[0]!, 0.1, 4).subarray(0, 3200);
    const [a, b, c, d] = [0, 1, 2, 3].map(() => frontEnd(fmt, decoder)) as [ReturnType<typeof frontEnd>, ReturnType<typeof frontEnd>, ReturnType<typeof frontEnd>, ReturnType<typeof frontEnd>];
    const members: number[] = [];
    const restore = wrapDecodeBatch((real) => (task, streams, bytes) => {
      members.push(streams.length);
      return real(task, streams, bytes);
    });
    try {
      a.fe.push(frame); // a job of its own at once
      b.fe.push(frame); // b, c, d wait for the next
      c.fe.push(frame);
      d.fe.push(frame);
      a.fe.close(); // while decoding
      c.fe.close(); // while waiting
      await Promise.all([b.fe.finish(), d.fe.finish(), a.fe.finish(), c.fe.finish()]);
      assert.deepEqual(members, [1, 2], 'the second job holds b and d only');
      assert.equal(a.channels()[0]!.length, 0, 'a closed front end delivers nothing');
      assert.equal(c.channels()[0]!.length, 0);
      assert.equal(a.trace.runs, 1, 'the job that had a still counts on its trace');
      for (const e of [b, d]) {
        assert.equal(e.channels()[0]!.length, 1600);
        e.fe.close();
      }
      assert.deepEqual([a, b, c, d].flatMap((e) => e.failures), []);
    } finally {
      restore();
    }
  });

  it("one stream's failed decode fails that stream alone", async () => {
    const restore = wrapDecodeBatch((real) => async (task, streams, bytes) => {
      const result = await real(task, streams, bytes);
      const broken = Object.assign(new Error('audio_decoding task panicked: injected'), { code: 'NATIVE_PANIC' as const });
      return { ...result, chunks: result.chunks.map((chunk, i) => (i === 1 ? broken : chunk)) };
    });
    try {
      const decoder = new DecodeBatcher(testMetrics(), 1);
      const fmt = format(CASES[0]!);
      const frame = wire(CASES[0]!, 0.1, 4).subarray(0, 3200);
      const ends = [0, 1, 2, 3].map(() => frontEnd(fmt, decoder));
      for (const e of ends) e.fe.push(frame); // jobs: [0], then [1, 2, 3]
      await tick();
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(ends.map((e) => e.failures.map((f) => f.code)), [[], [], ['NATIVE_PANIC'], []]);
      assert.ok(ends[2]!.failures[0]!.panicked);
      for (const i of [0, 1, 3]) assert.equal(ends[i]!.channels()[0]!.length, 1600);
      for (const e of ends) e.fe.close();
    } finally {
      restore();
    }
  });

  it('a refused batch fails its streams instead of wedging the batcher', async () => {
    let refuse = true;
    const restore = wrapDecodeBatch((real) => (task, streams, bytes) => {
      if (refuse) {
        refuse = false;
        throw Object.assign(new Error('injected'), { code: 'BUSY' });
      }
      return real(task, streams, bytes);
    });
    try {
      const decoder = new DecodeBatcher(testMetrics(), 1);
      const fmt = format(CASES[0]!);
      const frame = new Uint8Array(640);
      const a = frontEnd(fmt, decoder);
      const b = frontEnd(fmt, decoder);
      a.fe.push(frame);
      assert.deepEqual(a.failures.map((f) => f.code), ['BUSY']);
      b.fe.push(frame);
      await b.fe.finish();
      assert.deepEqual(b.failures, []);
      assert.equal(b.channels()[0]!.length, 320);
      a.fe.close();
      b.fe.close();
    } finally {
      restore();
    }
  });
});
