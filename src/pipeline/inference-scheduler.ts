// Decides which channel's model job runs next. Model jobs are the expensive ones (tens of ms),
// so they are not handed to the threadpool as they come: at most `slots` run at once and the
// rest wait here, ordered by how far their audio is ahead of real time (its end in stream
// seconds minus the seconds the stream has existed). A live stream's utterance has just arrived
// (about zero or below); a client uploading faster than real time is far ahead. So uploads and
// floods get what capacity live streams leave, instead of queueing in front of them, and the
// threadpool queue stays short enough that VAD and decode jobs never wait behind a crowd.

//
// Sustained overload (more live streams than the model keeps up with) would make every stream
// late together. Instead, once the job furthest behind is more than `maxLagSeconds` behind real
// time while two or more streams wait, the youngest waiting stream is shed (its job rejects with
// OVERLOADED; its session closes it with 1013), one every SHED_INTERVAL_MS, until the rest keep
// up; while shedding, new streams are refused (`overloaded`). Older streams keep real time.
import { TaskFailure } from '../tasks.js';

/** Sheds at most one stream per interval: each shed frees capacity the queue needs time to show. */
const SHED_INTERVAL_MS = 200;
/** New streams are refused this long after the last shed. */
const REFUSE_AFTER_SHED_MS = 2000;

/** Which stream a job belongs to: the youngest is shed first. */
export interface StreamKey {
  readonly startedAt: number;
}

interface Entry {
  ahead: number;
  seq: number;
  enqueuedAt: number;
  stream: StreamKey;
  start: () => void;
  shed: (failure: TaskFailure) => void;
}

export class InferenceScheduler {
  private readonly heap: Entry[] = [];
  private running = 0;
  private seq = 0;
  private lastShedAt = -Infinity;

  constructor(
    private readonly slots: number,
    /** 0: never shed. */
    private readonly maxLagSeconds = 0,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Jobs waiting for a slot. */
  get waiting(): number {
    return this.heap.length;
  }

  /** Shedding streams now: new ones should be refused (OVERLOADED). */
  get overloaded(): boolean {
    return this.now() - this.lastShedAt < REFUSE_AFTER_SHED_MS;
  }

  /**
   * Runs `job` when a slot is free and no job further behind real time is waiting. Resolves or
   * rejects as the job does, or rejects with OVERLOADED if its stream is shed while it waits;
   * `cancelled()` is asked when its turn comes (a client that left).
   */
  run<T>(aheadSeconds: number, job: () => Promise<T>, cancelled: () => boolean, stream: StreamKey): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      this.push({
        ahead: aheadSeconds,
        seq: this.seq++,
        enqueuedAt: this.now(),
        stream,
        shed: reject,
        start: () => {
          if (cancelled()) {
            resolve(undefined);
            this.release();
            return;
          }
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
            (value) => { resolve(value); this.release(); },
            // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the job's own error, unchanged
            (e: unknown) => { reject(e); this.release(); },
          );
        },
      });
      this.dispatch();
    });
  }

  private release(): void {
    this.running--;
    this.dispatch();
  }

  private dispatch(): void {
    this.shedIfOverloaded();
    while (this.running < this.slots && this.heap.length > 0) {
      this.running++;
      this.pop().start();
    }
  }

  private shedIfOverloaded(): void {
    const top = this.heap[0];
    if (this.maxLagSeconds <= 0 || !top) return;
    const now = this.now();
    // The heap's top is the job furthest behind; it has fallen further since it was queued.
    const lag = (now - top.enqueuedAt) / 1000 - top.ahead;
    if (lag <= this.maxLagSeconds || now - this.lastShedAt < SHED_INTERVAL_MS) return;
    let youngest: StreamKey | undefined;
    let streams = 0;
    const seen = new Set<StreamKey>();
    for (const e of this.heap) {
      if (!seen.has(e.stream)) {
        seen.add(e.stream);
        streams++;
      }
      if (!youngest || e.stream.startedAt > youngest.startedAt) youngest = e.stream;
    }
    // One stream alone behind real time is BACKLOG's to handle: shedding protects other streams.
    if (streams < 2 || !youngest) return;
    this.lastShedAt = now;
    const failure = new TaskFailure('OVERLOADED', `the server is over capacity: audio waits more than ${this.maxLagSeconds} s for the model; the youngest streams are shed`, false);
    const kept = this.heap.filter((e) => e.stream !== youngest);
    const shed = this.heap.filter((e) => e.stream === youngest);
    this.heap.length = 0;
    for (const e of kept) this.push(e);
    for (const e of shed) e.shed(failure);
  }

  private before(a: Entry, b: Entry): boolean {
    return a.ahead < b.ahead || (a.ahead === b.ahead && a.seq < b.seq);
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
