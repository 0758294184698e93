// Flow control for clients that send faster than real time (a file, not a microphone): with
// `"progress": true` in its start message, a stream reports how far the server has got, as
// `{"type":"progress","channel":0,"time":T}`: every channel's audio up to T seconds has been
// decoded and through the VAD, and every result that ends before it has been sent. A client
// keeps what it sends within a window of T (the CLI: 10 s) and is served as fast as the server
// can, however long the file, instead of running into MAX_BACKLOG_SECONDS.
import type { ServerEvent } from '../protocol.js';

/** Reports advance by at least this much (seconds), so a fast stream sends few events. */
const STEP_SECONDS = 0.5;

export class ProgressReporter {
  private reported = 0;

  constructor(
    private readonly emit: (event: ServerEvent) => void,
    /** Seconds of stream audio done, as above; undefined while nothing has begun. */
    private readonly done: () => number,
  ) {}

  /** Call whenever work may have finished (a VAD answer, a result). */
  check(): void {
    const time = this.done();
    if (time - this.reported < STEP_SECONDS) return;
    this.reported = time;
    this.emit({ type: 'progress', channel: 0, time: Math.round(time * 1000) / 1000 });
  }
}
