// What a route's pipeline offers its session, and what every pipeline is given.
import type { HeldAudio } from '../memory-budget.js';
import type { Metrics } from '../metrics/registry.js';
import type { NativeFormat } from '../native/binding.js';
import type { ServerEvent } from '../protocol.js';
import type { TaskFailure } from '../tasks.js';
import type { StreamTrace } from '../tracing.js';
import type { DecodeBatcher } from './decode-batcher.js';
import type { InferenceScheduler, StreamKey } from './inference-scheduler.js';

/** The scheduler that shares the process's one speech model out among channels (it runs it). */
export interface SharedModel {
  scheduler: InferenceScheduler;
}

export interface RunnerOptions {
  format: NativeFormat;
  /** Decodes the stream's wire bytes, batched with every other stream's. */
  decoder: DecodeBatcher;
  model: SharedModel;
  metrics: Metrics;
  /** Sends an event to the client. */
  emit: (event: ServerEvent) => void;
  /** The stream cannot go on. */
  fail: (failure: TaskFailure) => void;
  trace: StreamTrace;
  /** The stream's identity and start, shared by its channels (see InferenceScheduler). */
  stream: StreamKey;
  /** Emit `progress` events (flow control, src/pipeline/progress.ts). */
  progress?: boolean;
  /**
   * The process-wide count of audio waiting (MEMORY_BUDGET_BYTES): the runner keeps it at the
   * bytes it holds for the decoder and the VAD. The session releases it when the stream ends.
   */
  held?: HeldAudio;
}

export interface Runner {
  /** Audio bytes in the stream's wire format; ownership passes to the runner. May throw TaskFailure. */
  push(bytes: Uint8Array): void;
  /** End of stream: resolves once every final event has been emitted. */
  finish(): Promise<void>;
  /** The client is gone: drop everything, emit nothing more. */
  abort(): void;
}
