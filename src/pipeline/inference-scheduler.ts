// The inference engine's JS half: decides which utterances the model transcribes next and hands
// them over in batches. Model work is the expensive part (tens to hundreds of ms per utterance),
// so requests are not handed to the threadpool as they come: at most `slots` model jobs run at
// once in the process, each job a batch of up to `maxRows` utterances that the model decodes
// together (native/models/moonshine.h: one decoder call per token for the whole batch costs a
// fraction of one call per utterance). The rest wait here, earliest deadline first.
//
// A request's deadline is the moment its audio was queued by the pipeline (it had arrived), or
// would have arrived at real time if the client is ahead: a live stream's utterance is due as it
// ends; an upload's is due in the future, so uploads and floods get what capacity live streams
// leave. A stream behind real time (a client that stalled and caught up) is due when its audio
// came, not when it should have: its lateness is its own and must not jump it ahead of everyone,
// nor make the engine look late. Time spent queued behind the stream's own earlier requests
// (ModelChannel) does count: that lateness is the engine's.
//
// Finals before interims: a job takes the waiting finals; interims run only in jobs of their own,
// a quarter of the rows at most, so a final waits for a slot at most one short interim job (a
// slot kept free for finals measured worse: interims went stale in one slot while the cores had
// room); and a final withdraws its utterance's interim still waiting. Interims are best-effort,
// the freshest first: one is skipped (resolves undefined) when finals are waiting as it is
// submitted, or when it has waited INTERIM_MAX_WAIT_MS; a newer interim of the same utterance
// replaces a queued one upstream (ModelChannel).
//
// Overload. A burst of utterances ending together makes the queue seconds long for a moment;
// batching absorbs it (a longer queue makes bigger, cheaper-per-utterance batches). Only when the
// oldest waiting final is more than `maxLagSeconds` past its deadline while two or more streams
// wait are the youngest waiting streams shed (their requests reject with OVERLOADED; their
// sessions close them with 1013), as few as let the rest run within half that bound at the
// measured cost per utterance, at most one round per SHED_INTERVAL_MS. New streams are refused
// (`admits()`) while the engine is more than ADMIT_LAG_SECONDS behind, while its slots have been
// saturated for ~10 s, and for a while after a shed: refusing a stream before it starts costs its
// user less than shedding it later.
//
// With several worker threads, each has a scheduler for its own streams, but the slots are the
// process's (SchedulerShare, implemented by SharedState): a worker takes a free slot unless
// another worker's waiting final is due more than DEFER_MS earlier, so the process runs about one
// earliest-deadline-first queue. A worker learns that another freed a slot by retrying every
// RETRY_MS while its requests wait.
import type { ModelBatchOutput, ModelItem } from '../native/binding.js';
import { isNativeError } from '../native/binding.js';
import { TaskFailure } from '../tasks.js';
import { LATE_SECONDS } from './stream-capacity.js';

/** Sheds at most one round per interval: each shed frees capacity the queue needs time to show. */
const SHED_INTERVAL_MS = 200;
/** New streams are refused this long after the last shed. */
const REFUSE_AFTER_SHED_MS = 2000;
/** New streams are refused while the oldest waiting final is this late. */
export const ADMIT_LAG_SECONDS = 1;
/** New streams are refused while the model slots are this busy (smoothed over ~10 s). */
const ADMIT_BUSY = 0.95;
/** How often a scheduler whose requests wait looks for a slot another worker freed. */
const RETRY_MS = 2;
/** A worker leaves a free slot to another whose waiting final is due this much earlier. */
export const DEFER_MS = 100;
/** An interim that waited this long is skipped: a newer one or the final is on its way. */
export const INTERIM_MAX_WAIT_MS = 1000;
/** Interims publish their deadline this much later, so another worker's finals go first. */
const INTERIM_DEFER_MS = 10_000;

/** What the schedulers of one process share: its model-job slots, each scheduler's earliest
 *  waiting deadline, and the time of the latest shed (new streams are refused after it). */
export interface SchedulerShare {
  /** Schedulers sharing the slots (worker threads). */
  readonly parties: number;
  /** Takes one of `slots` slots, unless none is free or another party's waiting job is due
   *  more than DEFER_MS before `due` (ms on the schedulers' common clock). */
  tryAcquire(party: number, due: number, slots: number): boolean;
  release(): void;
  /** The party's earliest waiting deadline (Infinity: nothing waits). */
  publish(party: number, due: number): void;
  markShed(): void;
  msSinceShed(): number;
}

/** One scheduler alone (one worker thread, tests). */
class LocalShare implements SchedulerShare {
  readonly parties = 1;
  private taken = 0;
  private shedAt = -Infinity;

  constructor(private readonly now: () => number = epochNow) {}

  tryAcquire(_party: number, _due: number, slots: number): boolean {
    if (this.taken >= slots) return false;
    this.taken++;
    return true;
  }

  release(): void {
    this.taken--;
  }

  publish(): void {}

  markShed(): void {
    this.shedAt = this.now();
  }

  msSinceShed(): number {
    return this.now() - this.shedAt;
  }
}

/** Milliseconds on a clock every thread of the process reads alike (performance.now() alone
 *  starts at each thread's own origin). */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Runs one batch: item i transcribes samples[i], checking drafts[i] first when given. */
export type BatchRunner = (samples: Float32Array[], drafts: (Int32Array | undefined)[]) => Promise<ModelBatchOutput>;

export interface SchedulerOptions {
  /** Model jobs running at once in the process. */
  slots: number;
  runBatch: BatchRunner;
  /** Utterances in one model job (1: no batching). */
  maxRows?: number;
  /** Utterances of one job differ in length by at most this (16 kHz samples; the model's
   *  NativeModel.maxPadSamples; 0 or absent: any). */
  maxPadSamples?: number;
  /** 0 (default): never shed. */
  maxLagSeconds?: number;
  /** The schedulers' common clock, in ms. */
  now?: () => number;
  share?: SchedulerShare;
  /** This scheduler's index among the share's parties. */
  party?: number;
}

/** Which stream a request belongs to: the youngest is shed first. */
export interface StreamKey {
  /** performance.now() of this thread at the stream's start. */
  readonly startedAt: number;
}

export interface InferenceRequest {
  samples: Float32Array;
  /** The previous answer's tokens for the same utterance. */
  draft?: Int32Array;
  /** Interims are best-effort (see above); finals and simple-route windows are not. */
  interim: boolean;
  /** How far the request's audio was ahead of real time when the pipeline queued it, in seconds
   *  (negative: behind), and how long ago that was: it is due then, or when real time reaches it. */
  aheadSeconds: number;
  queuedSecondsAgo?: number;
  stream: StreamKey;
  /** Asked when its turn comes: true when the client left. */
  cancelled: () => boolean;
}

/** A request's answer, with what its batch cost. */
export interface InferenceResult extends ModelItem {
  /** The batch's wait for a threadpool worker, and its run time. */
  waitSeconds: number;
  runSeconds: number;
  /** This request's share of the run time (the run time over the batch's rows). */
  costSeconds: number;
  rows: number;
}

interface Entry {
  request: InferenceRequest;
  /** now() when the audio was due: queued time plus how far ahead it was, never before queued. */
  due: number;
  queuedAt: number;
  seq: number;
  resolve: (result: InferenceResult | undefined) => void;
  reject: (failure: unknown) => void;
}

export class InferenceScheduler {
  private readonly finals = new DeadlineHeap(earliestFirst);
  // Interims freshest first: under load the newest of them is worth the most, and the older ones
  // expire (INTERIM_MAX_WAIT_MS) with a newer one on its way.
  private readonly interims = new DeadlineHeap(newestFirst);
  private seq = 0;
  private lastShedAt = -Infinity;
  // Mean run time of one row of a batch (exponentially weighted), to tell how long the waiting
  // requests will take; and the fraction of this scheduler's share of the slots kept busy.
  private meanRowMs = 0;
  private busyMs = 0;
  private busySince = 0;
  private running = 0;
  private utilization = 0;
  // The same for jobs of finals alone, in slots (not capped at the share: see finalsBusySlots).
  private finalsBusyMs = 0;
  private runningFinals = 0;
  private finalsUtilization = 0;
  private late = 0;
  private finished = 0;
  private utilizationAt = 0;
  private retry: NodeJS.Timeout | undefined;
  private readonly slots: number;
  private readonly maxRows: number;
  private readonly maxPadSamples: number;
  private readonly maxLagSeconds: number;
  private readonly runBatch: BatchRunner;
  private readonly now: () => number;
  private readonly share: SchedulerShare;
  private readonly party: number;

  constructor(options: SchedulerOptions) {
    this.slots = options.slots;
    this.runBatch = options.runBatch;
    this.maxRows = Math.max(1, options.maxRows ?? 16);
    this.maxPadSamples = options.maxPadSamples || Infinity;
    this.maxLagSeconds = options.maxLagSeconds ?? 0;
    this.now = options.now ?? epochNow;
    this.share = options.share ?? new LocalShare(this.now);
    this.party = options.party ?? 0;
    this.utilizationAt = this.now();
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.finals.size + this.interims.size;
  }

  /** How late the oldest waiting final is, in seconds (0: none waits past its deadline). */
  get lagSeconds(): number {
    const top = this.finals.top;
    return top ? Math.max(0, (this.now() - top.due) / 1000) : 0;
  }

  /** The fraction of time this scheduler's share of the model slots ran, smoothed over ~10 s. */
  get busyFraction(): number {
    this.sampleUtilization();
    return this.utilization;
  }

  /** Model slots the jobs of finals kept busy on average, smoothed over ~10 s (StreamCapacity's
   *  measure of what the live streams cost: interims only fill what finals leave). */
  get finalsBusySlots(): number {
    this.sampleUtilization();
    return this.finalsUtilization;
  }

  /** Finals finished so far (StreamCapacity judges their lateness). */
  get finalsDone(): number {
    return this.finished;
  }

  /** Finals finished more than LATE_SECONDS past their deadline, so far. */
  get lateFinals(): number {
    return this.late;
  }

  /** Whether a new stream can be taken: not while shedding, nor while the engine is behind or
   *  its slots have been saturated for the last ~10 s. */
  admits(): boolean {
    return this.share.msSinceShed() >= REFUSE_AFTER_SHED_MS && this.lagSeconds <= ADMIT_LAG_SECONDS && this.busyFraction < ADMIT_BUSY;
  }

  /**
   * Transcribes the request in a batch when its turn comes. Resolves with its answer, or
   * undefined when it was cancelled or (an interim) skipped; rejects with the model's error for
   * it, or with OVERLOADED if its stream is shed while it waits.
   */
  submit(request: InferenceRequest): Promise<InferenceResult | undefined> {
    if (request.interim && this.finals.size > 0) return Promise.resolve(undefined); // behind: finals first
    return new Promise<InferenceResult | undefined>((resolve, reject) => {
      const now = this.now();
      const queued = now - (request.queuedSecondsAgo ?? 0) * 1000;
      const entry: Entry = { request, due: queued + Math.max(0, request.aheadSeconds) * 1000, queuedAt: now, seq: this.seq++, resolve, reject };
      (request.interim ? this.interims : this.finals).push(entry);
      this.dispatch();
    });
  }

  /** Takes back a request still waiting (a final superseding its utterance's interim): it
   *  resolves undefined at once. A request already running finishes. */
  withdraw(request: InferenceRequest): void {
    for (const heap of [this.finals, this.interims]) heap.removeWhere((e) => e.request === request, (e) => e.resolve(undefined));
  }

  private dispatch(): void {
    this.shedIfOverloaded();
    for (;;) {
      this.dropStaleInterims();
      const due = this.publishedDue();
      if (due === Infinity || !this.share.tryAcquire(this.party, due, this.slots)) break;
      this.start(this.takeBatch());
    }
    const due = this.publishedDue();
    this.share.publish(this.party, due);
    if (due !== Infinity && this.share.parties > 1 && this.retry === undefined) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.dispatch();
      }, RETRY_MS); // not unref'd: requests are waiting
    }
  }

  /** The deadline this scheduler competes for a slot with: its earliest final's, else a deferred interim's. */
  private publishedDue(): number {
    const final = this.finals.top;
    if (final) return final.due;
    const interim = this.interims.top;
    return interim ? interim.due + INTERIM_DEFER_MS : Infinity;
  }

  private dropStaleInterims(): void {
    const now = this.now();
    this.interims.removeWhere((e) => now - e.queuedAt > INTERIM_MAX_WAIT_MS || e.request.cancelled(), (e) => e.resolve(undefined));
  }

  /** Finals by deadline; or, when none waits, interims (at most a quarter of the rows, so that
   *  a final arriving meanwhile never waits long behind them); cancelled requests resolve now. */
  private takeBatch(): Entry[] {
    const batch: Entry[] = [];
    // Only utterances the model decodes as one group (lengths within maxPadSamples): a job of
    // several groups would decode them one after the other in one slot, while the requests left
    // out can take another slot at once.
    let shortest = Infinity;
    let longest = 0;
    const take = (heap: DeadlineHeap, limit: number): void => {
      const skipped: Entry[] = [];
      while (batch.length < limit && heap.size > 0) {
        const e = heap.pop();
        const n = e.request.samples.length;
        if (e.request.cancelled()) {
          e.resolve(undefined);
        } else if (batch.length > 0 && Math.max(longest, n) - Math.min(shortest, n) > this.maxPadSamples) {
          skipped.push(e);
        } else {
          batch.push(e);
          shortest = Math.min(shortest, n);
          longest = Math.max(longest, n);
        }
      }
      for (const e of skipped) heap.push(e);
    };
    take(this.finals, this.maxRows);
    // Interims only in a job of their own: rows added to a job of finals would make it longer.
    if (batch.length === 0) take(this.interims, Math.max(1, Math.floor(this.maxRows / 4)));
    return batch;
  }

  private start(batch: Entry[]): void {
    if (batch.length === 0) {
      this.share.release();
      return;
    }
    const startedAt = this.now();
    const finals = !batch[0]!.request.interim; // a job is all finals or all interims (takeBatch)
    this.jobStarted(startedAt, finals);
    let job: Promise<ModelBatchOutput>;
    try {
      job = this.runBatch(batch.map((e) => e.request.samples), batch.map((e) => e.request.draft));
    } catch (e) {
      for (const entry of batch) entry.reject(e);
      this.ran(startedAt, batch.length, finals);
      return;
    }
    job.then(
      (out) => {
        const costSeconds = out.runSeconds / batch.length;
        if (finals) {
          const done = this.now();
          this.finished += batch.length;
          for (const entry of batch) if (done - entry.due > LATE_SECONDS * 1000) this.late++;
        }
        batch.forEach((entry, i) => {
          const item = out.items[i];
          if (item === undefined || isNativeError(item)) entry.reject(item ?? new Error('the model returned fewer items than asked'));
          else entry.resolve({ ...item, waitSeconds: out.waitSeconds, runSeconds: out.runSeconds, costSeconds, rows: batch.length });
        });
        this.ran(startedAt, batch.length, finals);
      },
      (e: unknown) => {
        for (const entry of batch) entry.reject(e);
        this.ran(startedAt, batch.length, finals);
      },
    );
  }

  private jobStarted(at: number, finals: boolean): void {
    this.sampleUtilization(at);
    this.running++;
    if (finals) this.runningFinals++;
  }

  private ran(startedAt: number, rows: number, finals: boolean): void {
    const now = this.now();
    this.sampleUtilization(now);
    this.running--;
    if (finals) this.runningFinals--;
    const perRow = (now - startedAt) / rows;
    this.meanRowMs = this.meanRowMs === 0 ? perRow : 0.8 * this.meanRowMs + 0.2 * perRow;
    this.share.release();
    this.dispatch();
  }

  /** Folds the time since the last sample into the busy fraction (time constant ~10 s). */
  private sampleUtilization(now = this.now()): void {
    const elapsed = now - this.utilizationAt;
    if (elapsed <= 0) return;
    this.busyMs += this.running * elapsed;
    this.finalsBusyMs += this.runningFinals * elapsed;
    this.busySince += elapsed;
    if (this.busySince >= 250) {
      const share = Math.max(1, this.slots / this.share.parties);
      const busy = Math.min(1, this.busyMs / (this.busySince * share));
      const weight = Math.min(1, this.busySince / 10_000);
      this.utilization += weight * (busy - this.utilization);
      this.finalsUtilization += weight * (this.finalsBusyMs / this.busySince - this.finalsUtilization);
      this.busyMs = 0;
      this.finalsBusyMs = 0;
      this.busySince = 0;
    }
    this.utilizationAt = now;
  }

  private shedIfOverloaded(): void {
    const top = this.finals.top;
    if (this.maxLagSeconds <= 0 || !top) return;
    const now = this.now();
    const lag = (now - top.due) / 1000;
    if (lag <= this.maxLagSeconds || now - this.lastShedAt < SHED_INTERVAL_MS) return;
    // Youngest stream first; each takes all its waiting requests with it.
    const byStream = new Map<StreamKey, number>();
    for (const e of this.finals.entries) byStream.set(e.request.stream, (byStream.get(e.request.stream) ?? 0) + 1);
    // One stream alone behind real time is BACKLOG's to handle: shedding protects other streams.
    if (byStream.size < 2) return;
    const youngestFirst = [...byStream.keys()].sort((a, b) => b.startedAt - a.startedAt);
    // This worker's requests get about its share of the process's slots, maxRows at a time.
    const drainMs = (requests: number): number => (requests * this.meanRowMs * this.share.parties) / this.slots;
    const shed = new Set<StreamKey>();
    let left = this.finals.size;
    for (const stream of youngestFirst) {
      if (shed.size > 0 && drainMs(left) <= (this.maxLagSeconds * 1000) / 2) break;
      if (shed.size === byStream.size - 1) break; // the oldest stream is never shed
      shed.add(stream);
      left -= byStream.get(stream)!;
    }
    this.lastShedAt = now;
    this.share.markShed();
    const failure = new TaskFailure('OVERLOADED', `the server is over capacity: audio waits more than ${this.maxLagSeconds} s for the model; the youngest streams are shed`, false);
    for (const heap of [this.finals, this.interims]) heap.removeWhere((e) => shed.has(e.request.stream), (e) => e.reject(failure));
  }
}

/** Entries in the order `before` gives. */
class DeadlineHeap {
  private readonly h: Entry[] = [];

  constructor(private readonly before: (a: Entry, b: Entry) => boolean) {}

  get size(): number {
    return this.h.length;
  }

  get top(): Entry | undefined {
    return this.h[0];
  }

  get entries(): readonly Entry[] {
    return this.h;
  }

  push(e: Entry): void {
    const h = this.h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): Entry {
    const h = this.h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  /** Takes out every entry `matches` selects, handing each to `removed` once the heap is whole again. */
  removeWhere(matches: (e: Entry) => boolean, removed: (e: Entry) => void): void {
    if (!this.h.some(matches)) return;
    const all = this.h.splice(0);
    const out: Entry[] = [];
    for (const e of all) {
      if (matches(e)) out.push(e);
      else this.push(e);
    }
    for (const e of out) removed(e);
  }
}

/** By deadline, ties in arrival order. */
function earliestFirst(a: Entry, b: Entry): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

function newestFirst(a: Entry, b: Entry): boolean {
  return earliestFirst(b, a);
}
