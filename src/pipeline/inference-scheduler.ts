// Decides which channel's model job runs next. Model jobs are the expensive ones (tens of ms), so
// they are not handed to the threadpool as they come: at most `slots` run at once in the process
// and the rest wait here, earliest deadline first. A job's deadline is the moment its audio would
// have finished arriving at real time: its stream's start plus the window's end in stream seconds,
// i.e. the time it was queued plus how far it was ahead of real time then. A live stream's
// utterance is due about when it is queued; a client uploading faster than real time is due far in
// the future. So uploads and floods get what capacity live streams leave, instead of queueing in
// front of them, and the threadpool queue stays short enough that VAD and decode jobs never wait
// behind a crowd. (Ordering by how far ahead a job was when queued would ignore its wait since:
// under overload, a job queued slightly less late than others is overtaken for seconds.)
//
// Sustained overload (more live streams than the model keeps up with) would make every stream
// late together. Instead, once the job furthest behind is more than `maxLagSeconds` past its
// deadline while two or more streams wait, the youngest waiting streams are shed (their jobs
// reject with OVERLOADED; their sessions close them with 1013) until what is left waiting would
// run within half that bound at the jobs' measured mean run time; a shed stream sends no more
// work, so a few such rounds (at most one per SHED_INTERVAL_MS) bring the load under capacity.
// While shedding, new streams are refused (`overloaded`). Older streams keep real time.
//
// With several worker threads, each has a scheduler for its own streams, but the slots are the
// process's (SchedulerShare, implemented by SharedState): a worker takes a free slot unless
// another worker's waiting job is due more than DEFER_MS earlier, so the process runs about one
// earliest-deadline-first queue. Slots split per worker instead would leave one worker's slot
// idle while the other's queue, holding more of the streams, fell seconds behind. A worker learns
// that another freed a slot by retrying every RETRY_MS while its jobs wait; deferring only to a
// job DEFER_MS more urgent keeps that handoff off the path of short jobs that are all on time.
import { TaskFailure } from '../tasks.js';

/** Sheds at most one stream per interval: each shed frees capacity the queue needs time to show. */
const SHED_INTERVAL_MS = 200;
/** New streams are refused this long after the last shed. */
const REFUSE_AFTER_SHED_MS = 2000;
/** How often a scheduler whose jobs wait looks for a slot another worker freed. */
const RETRY_MS = 2;
/** A worker leaves a free slot to another whose waiting job is due this much earlier. */
export const DEFER_MS = 100;

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
function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

export interface SchedulerOptions {
  /** Model jobs running at once in the process. */
  slots: number;
  /** 0 (default): never shed. */
  maxLagSeconds?: number;
  /** The schedulers' common clock, in ms. */
  now?: () => number;
  share?: SchedulerShare;
  /** This scheduler's index among the share's parties. */
  party?: number;
}

/** Which stream a job belongs to: the youngest is shed first. */
export interface StreamKey {
  readonly startedAt: number;
}

interface Entry {
  /** now() when the job's audio would have finished arriving at real time. */
  due: number;
  seq: number;
  stream: StreamKey;
  start: () => void;
  shed: (failure: TaskFailure) => void;
}

export class InferenceScheduler {
  private readonly heap: Entry[] = [];
  private seq = 0;
  private lastShedAt = -Infinity;
  // Mean run time of a job (exponentially weighted), to tell how long the waiting jobs will take.
  private meanRunMs = 0;
  private retry: NodeJS.Timeout | undefined;
  private readonly slots: number;
  private readonly maxLagSeconds: number;
  private readonly now: () => number;
  private readonly share: SchedulerShare;
  private readonly party: number;

  constructor(options: SchedulerOptions) {
    this.slots = options.slots;
    this.maxLagSeconds = options.maxLagSeconds ?? 0;
    this.now = options.now ?? epochNow;
    this.share = options.share ?? new LocalShare(this.now);
    this.party = options.party ?? 0;
  }

  /** Jobs waiting for a slot. */
  get waiting(): number {
    return this.heap.length;
  }

  /** Shedding streams now: new ones should be refused (OVERLOADED). */
  get overloaded(): boolean {
    return this.share.msSinceShed() < REFUSE_AFTER_SHED_MS;
  }

  /**
   * Runs `job` when a slot is free and no job with an earlier deadline is waiting (`aheadSeconds`:
   * how far the job's audio is ahead of real time now, negative when behind). Resolves or
   * rejects as the job does, or rejects with OVERLOADED if its stream is shed while it waits;
   * `cancelled()` is asked when its turn comes (a client that left).
   */
  run<T>(aheadSeconds: number, job: () => Promise<T>, cancelled: () => boolean, stream: StreamKey): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      this.push({
        due: this.now() + aheadSeconds * 1000,
        seq: this.seq++,
        stream,
        shed: reject,
        start: () => {
          if (cancelled()) {
            resolve(undefined);
            this.release();
            return;
          }
          const startedAt = this.now();
          let started: Promise<T>;
          try {
            started = job();
          } catch (e) {
            // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the job's own error, unchanged
            reject(e);
            this.release();
            return;
          }
          started.then(
            (value) => { resolve(value); this.ran(startedAt); },
            // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the job's own error, unchanged
            (e: unknown) => { reject(e); this.ran(startedAt); },
          );
        },
      });
      this.dispatch();
    });
  }

  private ran(startedAt: number): void {
    const ms = this.now() - startedAt;
    this.meanRunMs = this.meanRunMs === 0 ? ms : 0.8 * this.meanRunMs + 0.2 * ms;
    this.release();
  }

  private release(): void {
    this.share.release();
    this.dispatch();
  }

  private dispatch(): void {
    this.shedIfOverloaded();
    while (this.heap.length > 0 && this.share.tryAcquire(this.party, this.heap[0]!.due, this.slots)) {
      this.pop().start();
    }
    const top = this.heap[0];
    this.share.publish(this.party, top ? top.due : Infinity);
    if (top && this.share.parties > 1 && this.retry === undefined) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.dispatch();
      }, RETRY_MS); // not unref'd: jobs are waiting
    }
  }

  private shedIfOverloaded(): void {
    const top = this.heap[0];
    if (this.maxLagSeconds <= 0 || !top) return;
    const now = this.now();
    // The heap's top has the earliest deadline: it is the job furthest behind.
    const lag = (now - top.due) / 1000;
    if (lag <= this.maxLagSeconds || now - this.lastShedAt < SHED_INTERVAL_MS) return;
    // Youngest stream first; each takes all its waiting jobs with it.
    const byStream = new Map<StreamKey, Entry[]>();
    for (const e of this.heap) {
      const jobs = byStream.get(e.stream);
      if (jobs) jobs.push(e);
      else byStream.set(e.stream, [e]);
    }
    // One stream alone behind real time is BACKLOG's to handle: shedding protects other streams.
    if (byStream.size < 2) return;
    const youngestFirst = [...byStream.keys()].sort((a, b) => b.startedAt - a.startedAt);
    // This worker's jobs get about its share of the process's slots.
    const drainMs = (jobs: number): number => (jobs * this.meanRunMs * this.share.parties) / this.slots;
    const shed = new Set<StreamKey>();
    let left = this.heap.length;
    for (const stream of youngestFirst) {
      if (shed.size > 0 && drainMs(left) <= (this.maxLagSeconds * 1000) / 2) break;
      if (shed.size === byStream.size - 1) break; // the oldest stream is never shed
      shed.add(stream);
      left -= byStream.get(stream)!.length;
    }
    this.lastShedAt = now;
    this.share.markShed();
    const failure = new TaskFailure('OVERLOADED', `the server is over capacity: audio waits more than ${this.maxLagSeconds} s for the model; the youngest streams are shed`, false);
    const kept = this.heap.filter((e) => !shed.has(e.stream));
    const dropped = this.heap.filter((e) => shed.has(e.stream));
    this.heap.length = 0;
    for (const e of kept) this.push(e);
    for (const e of dropped) e.shed(failure);
  }

  private before(a: Entry, b: Entry): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): Entry {
    const h = this.heap;
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
}
