// Decides which channel's model job runs next. Model jobs are the expensive ones (tens of ms),
// so they are not handed to the threadpool as they come: at most `slots` run at once and the
// rest wait here, ordered by how far their audio is ahead of real time (its end in stream
// seconds minus the seconds the stream has existed). A live stream's utterance has just arrived
// (about zero or below); a client uploading faster than real time is far ahead. So uploads and
// floods get what capacity live streams leave, instead of queueing in front of them, and the
// threadpool queue stays short enough that VAD and decode jobs never wait behind a crowd.

interface Entry {
  ahead: number;
  seq: number;
  start: () => void;
}

export class InferenceScheduler {
  private readonly heap: Entry[] = [];
  private running = 0;
  private seq = 0;

  constructor(private readonly slots: number) {}

  /** Jobs waiting for a slot. */
  get waiting(): number {
    return this.heap.length;
  }

  /**
   * Runs `job` when a slot is free and no job further behind real time is waiting. Resolves or
   * rejects as the job does; `cancelled()` is asked when its turn comes (a client that left).
   */
  run<T>(aheadSeconds: number, job: () => Promise<T>, cancelled: () => boolean): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      this.push({
        ahead: aheadSeconds,
        seq: this.seq++,
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
    while (this.running < this.slots && this.heap.length > 0) {
      this.running++;
      this.pop().start();
    }
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
