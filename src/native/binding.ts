// The one door to native code: loads this project's addon and uWebSockets.js' binary, and
// declares their typed surface. Nothing else in the project loads a `.node` file.
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as UwsTypes from 'uWebSockets.js';
import { PROJECT_ROOT } from '../paths.js';

const require = createRequire(import.meta.url);

export type Subsystem = 'api_routing' | 'client' | 'audio_decoding' | 'vad' | 'inference' | 'metrics';

/** Codes carried by errors that cross the native boundary. */
export type NativeErrorCode =
  | 'NATIVE_PANIC' // an unexpected exception in a job: a bug, counted in task_panic_total
  | 'MODEL_FAILURE' // the model reported a failure for this input
  | 'INVALID_FORMAT'
  | 'INVALID_ARGUMENT'
  | 'UNKNOWN_MODEL'
  | 'MODEL_LOAD' // a model file is missing or cannot be loaded
  | 'BUSY' // a second job on a stream that has one in flight
  | 'CLOSED'
  | 'SOCKET_OPTION' // setListenReceiveBuffer: the kernel refused the option
  | 'EXEC_FAILED'; // reexec: execv returned

interface NativeError extends Error {
  code: NativeErrorCode;
  /** The subsystem whose job failed, for errors from the executor. */
  task?: Subsystem;
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string';
}

/** Every resolved job result carries the time it waited for and ran on a threadpool worker. */
export interface JobTiming {
  waitSeconds: number;
  runSeconds: number;
}

export interface NativeFormat {
  encoding: 'pcm' | 'mulaw' | 'alaw';
  channels: number;
  sampleRate: number;
  bitDepth: number;
  isFloat: boolean;
}

export interface AudioChunk extends JobTiming {
  /** 16 kHz mono samples per channel. */
  channels: Float32Array[];
  inputBytes: number;
  inputSeconds: number;
  /** Bytes of an incomplete trailing frame dropped by flush(). */
  discardedBytes: number;
}

export interface NativeTask {
  /** Records one poll of a task that runs in JS (see src/tasks.ts). */
  recordPoll(delaySeconds: number, runSeconds: number, outcome: 'ok' | 'failed' | 'panicked'): void;
  close(): void;
}

export interface NativeAudioStream {
  /** The bytes are borrowed until the promise settles: do not reuse them before. BUSY while
   *  the stream is in a job in flight (its own, or a decodeBatch). */
  push(bytes: Uint8Array): Promise<AudioChunk>;
  flush(): Promise<AudioChunk>;
  close(): void;
  /** Designs the resampler's filter bank on a threadpool worker when its rate's is not cached
   *  (never on the JS thread); null when there is nothing to design. The stream is busy (BUSY)
   *  until it settles; without it, the first push designs in its own job. */
  prepare(): Promise<void> | null;
}

export interface DecodeBatchResult extends JobTiming {
  /** One per stream, in the order given: its chunk (runSeconds: the time spent on that stream;
   *  waitSeconds: the job's wait for a worker), or the error that failed that stream alone. */
  chunks: (AudioChunk | NativeError)[];
}

export interface StubOptions {
  delay_ms: number;
  constant_factor: number;
  jitter: number;
  failure_rate: number;
  panic_rate: number;
  warmup_penalty_ms: number;
  seed: number;
}

/** Moonshine's weights: as the package publishes them, or the int8 derivation installed beside
 *  them (models/derive-int8.mjs); auto: int8 where the CPU has VNNI (exact there), else package. */
type MoonshineWeights = 'auto' | 'int8' | 'package';
type ModelSpec = { kind: 'stub'; stub: StubOptions } | { kind: 'moonshine'; dir: string; weights: MoonshineWeights };

interface ModelOutput extends JobTiming {
  count?: number;
  text?: string;
}

/** One utterance's answer in a batch. */
export interface ModelItem {
  count?: number;
  text?: string;
  /** The recogniser's tokens: the draft for a later request on the same utterance. */
  ids: Int32Array;
  /** Decoder calls made for the rows this item was decoded with (0: not a recogniser): drafts
   *  the model agrees with save calls. */
  decoderCalls: number;
}

export interface ModelBatchOutput extends JobTiming {
  /** One per utterance, in the order given: its answer, or the error that failed it alone. */
  items: (ModelItem | NativeError)[];
}

export interface NativeModel {
  /** How much (16 kHz samples) the utterances of one runBatch may differ in length and still be
   *  decoded together (Moonshine pads each with silence to the longest); 0: any. */
  readonly maxPadSamples: number;
  /** The weights it runs on: 'int8' or 'package' (Moonshine), 'stub'. */
  readonly weights: 'int8' | 'package' | 'stub';
  /** `samples` (16 kHz) are borrowed until the promise settles. */
  run(task: NativeTask, samples: Float32Array): Promise<ModelOutput>;
  /** One job for many utterances (Moonshine decodes them together); drafts[i]: tokens item i
   *  probably starts with (a previous interim's ids), checked in one decoder call. Samples are
   *  borrowed until the promise settles. INVALID_ARGUMENT synchronously for empty or unequal arrays. */
  runBatch(task: NativeTask, samples: Float32Array[], drafts: (Int32Array | undefined)[]): Promise<ModelBatchOutput>;
}

/** One channel's recurrent VAD state (Silero's LSTM state, the last 64 samples, a partial window). */
export interface NativeVadChannel {
  /** Back to the start of a stream; BUSY while the channel is in a job in flight. */
  reset(): void;
  /** Tests: the channel's next VAD job fails for it (MODEL_FAILURE), as a failing model would. */
  injectFailure(): void;
}

export interface VadResult extends JobTiming {
  /** Per channel, one speech probability per whole 512-sample (32 ms) window; or the error that
   *  failed that channel alone (its state starts afresh), counted in task_failed_total/task_panic_total. */
  probs: (Float32Array | NativeError)[];
}

export interface NativeVad {
  /** One job: each channel's new 16 kHz audio through Silero, batched across channels. */
  process(task: NativeTask, channels: NativeVadChannel[], audio: Float32Array[]): Promise<VadResult>;
}

interface TaskFieldInfo {
  field: string;
  kind: 'counter' | 'gauge';
  name: string;
  help: string;
}

export interface NativeSnapshot {
  /** subsystems × fields, row-major, in the order of taskMetricSchema(). */
  task: Float64Array;
  jobsQueued: number;
  jobsRunning: number;
  workerBusySeconds: Float64Array;
  /** Speech models and Silero instances loaded in the process (each shared by all worker threads). */
  modelsLoaded: number;
  vadsLoaded: number;
  /** The resampler's filter banks, process-wide (native/resampler.h ResamplerStats). */
  resampler: {
    tables: number;
    tableBytes: number;
    designs: number;
    /** Designs that ran on a thread running JS: must stay 0. */
    designsOnJsThread: number;
    refused: number;
  };
}

interface Addon {
  Task: new (subsystem: Subsystem) => NativeTask;
  AudioStream: new (format: NativeFormat) => NativeAudioStream;
  VadChannel: new () => NativeVadChannel;
  loadModel(task: NativeTask, spec: ModelSpec): Promise<NativeModel>;
  /**
   * One job: bytes[i] decoded into streams[i], as streams[i].push(bytes[i]) would (see
   * native/decode_batch.h). Refuses synchronously, for the whole batch: INVALID_ARGUMENT (a
   * stream twice, lengths differ), CLOSED, BUSY (a stream already in a job in flight). Streams
   * and bytes are borrowed until the promise settles.
   */
  decodeBatch(task: NativeTask, streams: NativeAudioStream[], bytes: Uint8Array[]): Promise<DecodeBatchResult>;
  loadVad(task: NativeTask, path: string): Promise<NativeVad>;
  probeOrt(task: NativeTask): Promise<string>;
  taskMetricSchema(): { subsystems: Subsystem[]; fields: TaskFieldInfo[] };
  snapshot(): NativeSnapshot;
  /** task_panic_total over every subsystem, without building a snapshot (health). */
  panicTotal(): number;
  /** Counts a panic in JS code that handled a subsystem's results. */
  recordPanic(subsystem: Subsystem): void;
  /** The niceness (0-19) threadpool workers take on their first job; 0 leaves them as they are. */
  setThreadpoolNice(nice: number): void;
  /**
   * Sets SO_RCVBUF on this process's listening sockets on `port` (connections accepted later
   * inherit it) and returns how many it set. Throws a coded error (SOCKET_OPTION) on failure.
   */
  setListenReceiveBuffer(port: number, bytes: number): number;
  /** Whether a new stream at `rate` may start: null, or why not ('designs': the budget of new
   *  filter designs per second is spent; 'rates': too many uncommon rates in use). Common and
   *  cached rates are always admitted; an admitted uncached uncommon rate spends one design. */
  admitSampleRate(rate: number): 'designs' | 'rates' | null;
  /** The process-wide budget admitSampleRate applies (0: unlimited, the default). */
  setResamplerBudget(designsPerSecond: number, maxRates: number): void;
  /** malloc_trim(0) on a threadpool thread: the C heap's free pages back to the OS; resident
   *  bytes before and after (src/memory-release.ts). */
  releaseMemory(task: NativeTask): Promise<{ before: number; after: number }>;
  /** Replaces the process image with `argv[0]` run on `argv` (same pid and environment); throws only on failure (EXEC_FAILED). */
  reexec(argv: string[]): never;
  /** Ends the process at once with `code`, worker threads and all (see src/cluster/primary.ts). */
  exitProcess(code: number): never;
}

export const addon: Addon = require(path.join(PROJECT_ROOT, 'build/Release/speech_native.node')) as Addon;

// uWebSockets.js' package silently falls back to a slow pure-JS server when its binary does not
// load. Load the binary ourselves and fail loudly instead.
function loadUws(): typeof UwsTypes {
  const file = `uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  const uws = require(file) as typeof UwsTypes;
  if (typeof uws.SSLApp !== 'function' || typeof uws.App !== 'function') {
    throw new Error(`${file} is not the native uWebSockets.js build`);
  }
  return uws;
}

export const uws = loadUws();
