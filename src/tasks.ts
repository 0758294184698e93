// JS-side tasks, counted exactly like native ones (native/task_metrics.h defines each field).
// Every asynchronous piece of JS work starts here; the lint config forbids the bypasses
// (bare timers, queueMicrotask, un-awaited native calls outside the runners).
import { addon, isNativeError, type NativeErrorCode, type NativeTask, type Subsystem } from './native/binding.js';
import type { ErrorCode } from './protocol.js';

/** A long-lived JS task: a client connection, a scrape, a batcher's jobs. */
export class Task implements Disposable {
  readonly native: NativeTask;
  private closed = false;

  constructor(readonly subsystem: Subsystem) {
    this.native = new addon.Task(subsystem);
  }

  /** Runs one synchronous poll of this task and records it; exceptions count as panics. */
  poll<T>(fn: () => T, delaySeconds = 0): T {
    const start = performance.now();
    try {
      const result = fn();
      this.native.recordPoll(delaySeconds, (performance.now() - start) / 1000, 'ok');
      return result;
    } catch (e) {
      this.native.recordPoll(delaySeconds, (performance.now() - start) / 1000, jsOutcome(e));
      throw e;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

// A native error was already counted by the executor, in its own subsystem, and a TaskFailure is
// a typed failure: the JS task that met either merely failed. Only untyped exceptions born in JS
// are JS panics, so no panic is counted twice.
function jsOutcome(e: unknown): 'failed' | 'panicked' {
  return isNativeError(e) || e instanceof TaskFailure ? 'failed' : 'panicked';
}

/** What a failed task reports: a stable code and a human-readable message. */
export class TaskFailure extends Error {
  constructor(
    readonly code: ErrorCode | NativeErrorCode,
    message: string,
    readonly panicked: boolean,
  ) {
    super(message);
  }
}

/** The code a client is told when its stream's work failed (protocol.ts ERROR_CODES): the
 *  stream's own limits and the model's verdict as they are, any other failure as a bug. */
export function clientCode(failure: TaskFailure): ErrorCode {
  switch (failure.code) {
    case 'BACKLOG':
    case 'OVERLOADED':
    case 'MODEL_FAILURE':
      return failure.code;
    default:
      return failure.panicked ? 'NATIVE_PANIC' : 'INTERNAL';
  }
}

let panicListener: (() => void) | undefined;

/** Called at every panic this thread sees (the server keeps the latest time for health). */
export function onPanic(listener: () => void): void {
  panicListener = listener;
}

export function toTaskFailure(e: unknown): TaskFailure {
  const failure =
    e instanceof TaskFailure ? e
    : isNativeError(e) ? new TaskFailure(e.code, e.message, e.code === 'NATIVE_PANIC')
    : new TaskFailure('INTERNAL', e instanceof Error ? e.message : String(e), true);
  if (failure.panicked) panicListener?.();
  return failure;
}

/**
 * Starts `fn` as a one-shot task of `subsystem` and never lets it reject unobserved: a failure
 * is recorded (as a panic unless it is a typed native failure) and handed to `onError`.
 */
export function spawn(subsystem: Subsystem, fn: () => Promise<void>, onError: (f: TaskFailure) => void): void {
  const task = new Task(subsystem);
  const queued = performance.now();
  // eslint-disable-next-line @typescript-eslint/no-floating-promises -- the one sanctioned spawn
  Promise.resolve()
    .then(() => {
      const start = performance.now();
      return fn().then(
        () => task.native.recordPoll((start - queued) / 1000, (performance.now() - start) / 1000, 'ok'),
        (e: unknown) => {
          task.native.recordPoll((start - queued) / 1000, (performance.now() - start) / 1000, jsOutcome(e));
          onError(toTaskFailure(e));
        },
      );
    })
    .finally(() => task.close());
}

/**
 * Consumes a native job's promise without awaiting it: exactly one handler runs. A handler that
 * throws is a JS panic of `subsystem`, counted and logged, never an unhandled rejection. This and
 * `spawn` are the only places a promise may be left un-awaited.
 */
export function settle<T>(subsystem: Subsystem, promise: Promise<T>, onOk: (value: T) => void, onError: (failure: TaskFailure) => void): void {
  promise.then(onOk, (e: unknown) => onError(toTaskFailure(e))).catch((e: unknown) => {
    addon.recordPanic(subsystem);
    toTaskFailure(e);
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'panic in a result handler', task: subsystem, error: String((e as Error)?.stack ?? e) })}\n`);
  });
}
