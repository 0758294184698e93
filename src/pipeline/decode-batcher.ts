// Gathers every stream's pending wire bytes and decodes them as few, large native jobs, the way
// VadBatcher does for the VAD: one job takes every stream waiting when a slot frees up
// (addon.decodeBatch), so under load batches grow and jobs get fewer, instead of one job (an
// AsyncWorker, a promise, references) per stream frame. At most `maxInFlight` jobs run at once,
// on disjoint streams: a stream in a running job waits for the next one (its state is in use).
//
// Streams are pulled, not pushed: a client asks for a turn once, and its bytes are taken only when
// its job is dispatched, so frames that arrive while it waits join the same job.
import type { Metrics } from '../metrics/registry.js';
import { addon, type AudioChunk, type DecodeBatchResult, type NativeAudioStream } from '../native/binding.js';
import { Task, TaskFailure, settle, toTaskFailure } from '../tasks.js';

/** A stream that wants its pending bytes decoded (AudioFrontEnd). */
export interface DecodeClient {
  /** Its native decoder and resampler state (an addon.AudioStream). */
  readonly codec: NativeAudioStream;
  /** Called when the client's job is dispatched: everything pending, now owned by the job, or
   *  undefined if there is nothing (after which the client is not in the job). */
  take(): Uint8Array | undefined;
  /** The job decoded the bytes taken. */
  decoded(chunk: AudioChunk): void;
  /** The job failed this client's decode (its stream cannot go on). */
  failed(failure: TaskFailure): void;
}

export class DecodeBatcher {
  // The one audio_decoding task whose polls are the batch jobs; each stream's own native task
  // still counts its idle time and first poll (see native/decode_batch.h).
  private readonly task = new Task('audio_decoding');
  // Clients waiting for a job, in arrival order; a Set so a client asks at most once.
  private readonly pending = new Set<DecodeClient>();
  private readonly busy = new Set<DecodeClient>();
  private inFlight = 0;
  private jobCount = 0;
  // While one job's results are handed out, clients asking again wait, so that they all go
  // together into the next job rather than the first of them alone into a job of its own.
  private delivering = false;

  constructor(
    private readonly metrics: Metrics,
    private readonly maxInFlight: number,
  ) {}

  /** The client has bytes to decode: it will be called back (take, then decoded or failed). A
   *  client asking again before that is still asked once. */
  request(client: DecodeClient): void {
    this.pending.add(client);
    this.dispatch();
  }

  /** The client no longer wants its turn (it was closed). A job already running still calls it
   *  back with its result. */
  cancel(client: DecodeClient): void {
    this.pending.delete(client);
  }

  /** Jobs dispatched so far (for tests). */
  get jobs(): number {
    return this.jobCount;
  }

  close(): void {
    this.task.close();
  }

  private dispatch(): void {
    while (!this.delivering && this.inFlight < this.maxInFlight && this.pending.size > 0) {
      const clients: DecodeClient[] = [];
      const codecs: NativeAudioStream[] = [];
      const bytes: Uint8Array[] = [];
      for (const client of this.pending) {
        if (this.busy.has(client)) continue;
        this.pending.delete(client); // deleting the current entry keeps a Set's iteration valid
        const taken = client.take();
        if (taken === undefined) continue;
        clients.push(client);
        codecs.push(client.codec);
        bytes.push(taken);
      }
      if (clients.length === 0) return;
      this.run(clients, codecs, bytes);
    }
  }

  private run(clients: DecodeClient[], codecs: NativeAudioStream[], bytes: Uint8Array[]): void {
    this.inFlight++;
    this.jobCount++;
    for (const c of clients) this.busy.add(c);
    let job: Promise<DecodeBatchResult>;
    try {
      job = addon.decodeBatch(this.task.native, codecs, bytes);
    } catch (e) {
      // A refused batch (CLOSED, BUSY, ...) is a bug here: the clients guarantee a live stream
      // with no other job. The refusal names no stream, so every client of the batch fails.
      const failure = toTaskFailure(e);
      this.finish(clients, (c) => c.failed(failure));
      return;
    }
    settle('audio_decoding', job,
      (result) => this.finish(clients, (c, i) => {
        const chunk = result.chunks[i];
        if (chunk === undefined || chunk instanceof Error) {
          c.failed(toTaskFailure(chunk ?? new TaskFailure('INTERNAL', 'decodeBatch returned too few chunks', true)));
          return;
        }
        // Recorded per stream chunk, with the time the job spent on that stream alone: the
        // audio_decoding histograms keep describing one stream's unit of audio (its media
        // duration, processing time and RTF), comparable with the unbatched decode and
        // independent of how many streams happened to share a job.
        using record = this.metrics.stage('audio_decoding', chunk.inputSeconds);
        record.ran(chunk.runSeconds);
        c.decoded(chunk);
      }),
      (failure) => this.finish(clients, (c) => c.failed(failure)));
  }

  /** Frees the job's slot and streams, hands each client its outcome, then dispatches once. */
  private finish(clients: DecodeClient[], deliver: (client: DecodeClient, index: number) => void): void {
    for (const c of clients) this.busy.delete(c);
    this.inFlight--;
    this.delivering = true;
    try {
      for (let i = 0; i < clients.length; i++) {
        try {
          deliver(clients[i]!, i);
        } catch (e) {
          // A client's handler threw: a JS panic of this subsystem (as settle() counts one), and
          // no reason to keep the other streams from their results.
          panicInHandler(e);
        }
      }
    } finally {
      this.delivering = false;
    }
    this.dispatch();
  }
}

function panicInHandler(e: unknown): void {
  addon.recordPanic('audio_decoding');
  toTaskFailure(e);
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'panic in a result handler', task: 'audio_decoding', error: String((e as Error)?.stack ?? e) })}\n`);
}
