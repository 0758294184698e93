// The instrumented executor: jobs on the threadpool, task metrics, failures and panics as typed
// rejections that never take the process down.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addon, isNativeError, type StubOptions, type Subsystem } from '../../src/native/binding.js';
import { DEFAULT_STUB } from '../../src/config.js';

const schema = addon.taskMetricSchema();

function counter(field: string, task: Subsystem): number {
  const f = schema.fields.findIndex((x) => x.field === field);
  const t = schema.subsystems.indexOf(task);
  assert.ok(f >= 0 && t >= 0, `${field}{${task}} exists`);
  return addon.snapshot().task[t * schema.fields.length + f]!;
}

async function stub(options: Partial<StubOptions>) {
  const task = new addon.Task('inference');
  const model = await addon.loadModel(task, { kind: 'stub', stub: { ...DEFAULT_STUB, ...options } });
  return { task, model };
}

describe('executor', () => {
  it('describes every tokio-metrics field once, with an exported name and help', () => {
    const names = schema.fields.map((f) => f.name);
    assert.equal(new Set(names).size, names.length);
    for (const f of schema.fields) {
      assert.match(f.name, /^task_[a-z_]+$/);
      assert.ok(f.kind === 'gauge' || f.name.endsWith('_total'), `${f.name}: a counter ends in _total`);
      assert.ok(f.help.length > 10);
    }
    for (const field of ['instrumented_count', 'dropped_count', 'first_poll_count', 'total_idled_count', 'total_poll_count',
      'total_fast_poll_count', 'total_slow_poll_count', 'total_short_delay_count', 'total_long_delay_count',
      'max_idle_duration', 'total_task_panic_count']) {
      assert.ok(schema.fields.some((f) => f.field === field), field);
    }
  });

  it('counts tasks, polls, first polls, idling and run time of real jobs', async () => {
    const before = Object.fromEntries(['instrumented_count', 'dropped_count', 'first_poll_count', 'total_poll_count',
      'total_idled_count', 'total_poll_duration', 'total_slow_poll_count'].map((f) => [f, counter(f, 'inference')]));
    const { task, model } = await stub({ delay_ms: 15 });
    const samples = new Float32Array(1600);
    const out = await model.run(task, samples);
    assert.equal(out.count, 1600);
    assert.ok(out.runSeconds >= 0.014, `runSeconds ${out.runSeconds}`);
    await model.run(task, samples);
    task.close();
    task.close(); // idempotent
    assert.equal(counter('instrumented_count', 'inference') - before['instrumented_count']!, 1);
    assert.equal(counter('dropped_count', 'inference') - before['dropped_count']!, 1);
    assert.equal(counter('first_poll_count', 'inference') - before['first_poll_count']!, 1);
    assert.equal(counter('total_poll_count', 'inference') - before['total_poll_count']!, 3, 'load + 2 runs');
    assert.equal(counter('total_idled_count', 'inference') - before['total_idled_count']!, 2, 'idle before each later job');
    assert.equal(counter('total_slow_poll_count', 'inference') - before['total_slow_poll_count']!, 2, '15 ms runs are slow polls');
    assert.ok(counter('total_poll_duration', 'inference') - before['total_poll_duration']! >= 0.028);
  });

  it('turns an exception in a job into a NATIVE_PANIC rejection and a counted panic', async () => {
    const { task, model } = await stub({ panic_rate: 1 });
    const panics = counter('total_task_panic_count', 'inference');
    await assert.rejects(model.run(task, new Float32Array(16)), (e: unknown) =>
      isNativeError(e) && e.code === 'NATIVE_PANIC' && e.task === 'inference' && /injected/.test(e.message));
    assert.equal(counter('total_task_panic_count', 'inference'), panics + 1);
    task.close();
  });

  it('turns a typed model failure into a MODEL_FAILURE rejection, counted as failed, not as a panic', async () => {
    const { task, model } = await stub({ failure_rate: 1 });
    const panics = counter('total_task_panic_count', 'inference');
    const failed = counter('total_failed_count', 'inference');
    await assert.rejects(model.run(task, new Float32Array(16)), (e: unknown) => isNativeError(e) && e.code === 'MODEL_FAILURE');
    assert.equal(counter('total_failed_count', 'inference'), failed + 1);
    assert.equal(counter('total_task_panic_count', 'inference'), panics);
    task.close();
  });

  it('runs jobs of several tasks in parallel on the threadpool', async () => {
    const { task, model } = await stub({ delay_ms: 300 });
    const tasks = [task, new addon.Task('inference'), new addon.Task('inference')];
    const runs = Promise.all(tasks.map((t) => model.run(t, new Float32Array(16))));
    await new Promise((r) => setTimeout(r, 150));
    const mid = addon.snapshot();
    await runs;
    assert.equal(mid.jobsRunning, 3, 'three jobs on three workers at once');
    assert.equal(mid.jobsQueued, 0);
    assert.equal(addon.snapshot().jobsRunning, 0);
    tasks.forEach((t) => t.close());
  });

  it('refuses a task argument that is not a Task', async () => {
    const { task, model } = await stub({});
    const stream = new addon.AudioStream({ encoding: 'pcm', channels: 1, sampleRate: 16000, bitDepth: 16, isFloat: false });
    assert.throws(() => model.run(stream as never, new Float32Array(1)), (e: unknown) => isNativeError(e) && e.code === 'INVALID_ARGUMENT');
    assert.throws(() => new addon.Task('nonsense' as Subsystem), (e: unknown) => isNativeError(e) && e.code === 'INVALID_ARGUMENT');
    stream.close();
    task.close();
  });

  it('proves ONNX Runtime runs a real graph and reports its version', async () => {
    const task = new addon.Task('inference');
    assert.match(await addon.probeOrt(task), /^1\.\d+\.\d+/);
    task.close();
  });
});
