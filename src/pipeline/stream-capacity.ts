// How many live streams the process can serve, and the admission of new ones against it.
//
// The inference scheduler's reactive checks (the engine behind, the slots saturated, a shed just
// now) see overload only once it hurts: during a ramp nothing is late yet, so a crowd of twice
// the capacity all got in, and the first burst of their utterances made every stream seconds
// late before anything was shed. So a new live stream is also refused once the process holds as
// many as its measured cost per stream says the model slots can serve at TARGET_BUSY.
//
// The cost: the slot time the finals took (smoothed over ~10 s by the scheduler) per live stream,
// each stream weighted by how much of its cost that smoothed figure already shows: none for its
// first SILENT_MS (no utterance of it has ended yet), then rising as the scheduler's smoothing
// does; a stream that ended fades out the same way. Without the weights a ramp would teach a cost
// far too low (streams in, no finals yet) and admit a crowd, and a crowd reconnecting one too high.
// Interims are left out: they are best-effort and fill whatever the finals leave, so counting them
// would make the cost look as high as the slots are free. Uploads are not live streams: they take
// what the live ones leave (their deadlines are in the future) and are never refused here.
//
// Until enough weighted streams have run, the cost is the model's prior: the capacity the bench
// measured on this project's machine (MODEL_STREAMS_PER_SLOT). With the slots saturated the busy
// fraction reads all of them, so saturation teaches a limit of TARGET_BUSY of the streams held.
//
// A dearer cost lowers the limit at once; a cheaper one is not trusted by itself: the cost per
// stream falls as the load rises (bigger batches cost less per utterance), and when the streams'
// utterances end together one burst's queue makes finals late while the slots are busy only part
// of the time. So the limit also has a ceiling, `allowed`, that starts where the prior puts it and
// moves on evidence: when, over LATE_WINDOW_MS, LATE_SHARE of the finals (and at least MIN_LATE)
// finished more than LATE_SECONDS past their deadlines, it is cut to CUT_SHARE of the live streams
// (at most once per CUT_INTERVAL_MS; the streams held are kept, new ones wait); one straggler
// (a pause, one long utterance) cuts nothing. After RECOVER_AFTER_MS without such a window, with
// the process at its limit, it rises by one stream per RAISE_EVERY_MS.
//
// The process's workers each learn their own cost and publish it (CapacityShare); the limit is the
// process's, against its count of live streams, so an uneven spread of connections over the
// workers does not refuse a stream one worker could take. Each worker cuts on its own finals'
// lateness (the workers share the slots earliest deadline first, so they are late together).
import type { ModelName } from '../config.js';

/** The model slots are kept this busy with finals at most; the rest absorbs bursts of utterances. */
export const TARGET_BUSY = 0.8;
/** A stream's first this many ms cost nothing yet: its first utterance has not ended. */
const SILENT_MS = 4000;
/** The time constant of the scheduler's smoothed busy fraction. */
const SMOOTHING_MS = 10_000;
/** Weighted streams the cost is learnt from, at least. */
const MIN_LEARNING_STREAMS = 2;
/** Weight of one second of new measurement in the learnt cost (time constant ~4 s). */
const LEARN_PER_SECOND = 0.25;
/** A final this late past its deadline is late (the scheduler counts them). */
export const LATE_SECONDS = 1.5;
/** Finals are judged over windows this long: late when this share of them (and this many) was. */
const LATE_WINDOW_MS = 5000;
const LATE_SHARE = 0.02;
const MIN_LATE = 3;
/** The cut: this share of the live streams. */
const CUT_SHARE = 0.9;
const CUT_INTERVAL_MS = 10_000;
const RECOVER_AFTER_MS = 30_000;
const RAISE_EVERY_MS = 2000;

/**
 * Live streams of real speech one model slot serves (bench/RESULTS.md, capacity, bursts without
 * interims, p99 final lag <= 1 s, on a 2-core AVX-512 VNNI EPYC: tiny 110 streams on 2 slots; base
 * 30 before its int8 weights, taken as 40). The limit a pod starts with, and the prior cost.
 */
export const MODEL_STREAMS_PER_SLOT: Readonly<Record<ModelName, number>> = {
  'moonshine-tiny': 55,
  'moonshine-base': 20,
  stub: 500,
};

/** What the capacities of one process's workers share: each one's learnt cost, the live streams. */
export interface CapacityShare {
  readonly parties: number;
  /** The party's learnt cost (slot-seconds per stream-second). */
  publishCost(party: number, cost: number): void;
  /** The mean of the parties' published costs (0 before any published). */
  readonly meanCost: number;
  /** Takes a live-stream place unless `max` are taken. */
  tryOpenLive(max: number): boolean;
  closeLive(): void;
  readonly live: number;
}

/** One capacity alone (one worker thread, tests). */
export class LocalCapacityShare implements CapacityShare {
  readonly parties = 1;
  private cost = 0;
  live = 0;

  publishCost(_party: number, cost: number): void {
    this.cost = cost;
  }

  get meanCost(): number {
    return this.cost;
  }

  tryOpenLive(max: number): boolean {
    if (this.live >= max) return false;
    this.live++;
    return true;
  }

  closeLive(): void {
    this.live--;
  }
}

/** What the capacity reads of the worker's inference scheduler. */
export interface FinalsLoad {
  /** Model slots this worker's jobs of finals kept busy on average (~10 s smoothing). */
  readonly finalsBusySlots: number;
  /** The reactive checks: not while shedding, behind or saturated. */
  admits(): boolean;
  /** Finals finished so far, and those of them more than LATE_SECONDS past their deadline. */
  readonly finalsDone: number;
  readonly lateFinals: number;
}

/** A live stream admitted; give it back with close(). */
export interface LiveTicket {
  readonly openedAt: number;
}

export interface StreamCapacityOptions {
  engine: FinalsLoad;
  /** Model slots in the process. */
  slots: number;
  /** The model's prior: the streams one slot serves (MODEL_STREAMS_PER_SLOT). */
  streamsPerSlot: number;
  share?: CapacityShare;
  party?: number;
  now?: () => number;
}

export class StreamCapacity {
  private readonly tickets = new Set<LiveTicket>();
  // Streams that ended lately: their cost fades out of the busy fraction as it came in.
  private departed: { weight: number; closedAt: number }[] = [];
  private cost: number;
  private learntAt: number;
  // The ceiling the lateness of finals sets; when it was last cut, a window last was late, and it
  // was last raised; the window being judged (its start, and the counts then).
  private allowed: number;
  private cutAt = -Infinity;
  private lateAt: number;
  private raisedAt = -Infinity;
  private window: { at: number; done: number; late: number };
  private readonly engine: FinalsLoad;
  private readonly slots: number;
  private readonly share: CapacityShare;
  private readonly party: number;
  private readonly now: () => number;

  constructor(options: StreamCapacityOptions) {
    this.engine = options.engine;
    this.slots = options.slots;
    this.cost = TARGET_BUSY / options.streamsPerSlot;
    this.share = options.share ?? new LocalCapacityShare();
    this.party = options.party ?? 0;
    this.now = options.now ?? (() => performance.now());
    this.learntAt = this.now();
    this.lateAt = this.learntAt; // a rise needs RECOVER_AFTER_MS on time at the limit
    this.window = { at: this.learntAt, done: this.engine.finalsDone, late: this.engine.lateFinals };
    this.share.publishCost(this.party, this.cost);
    this.allowed = this.costLimit();
  }

  /**
   * Admits a new live stream, or refuses it (why, for the client) while the engine is behind,
   * saturated or shedding, or while the process holds all the streams its capacity serves.
   */
  open(): LiveTicket | { refused: string } {
    if (!this.engine.admits()) {
      // A new stream would make it later for everyone, or be the next shed.
      return { refused: 'the server is over capacity: its model is behind or shedding streams; try again later' };
    }
    const limit = this.limit;
    if (!this.share.tryOpenLive(limit)) {
      return { refused: `the server is at its capacity of ${limit} live streams (as measured); try again later` };
    }
    const ticket = { openedAt: this.now() };
    this.tickets.add(ticket);
    return ticket;
  }

  close(ticket: LiveTicket): void {
    if (!this.tickets.delete(ticket)) return;
    this.share.closeLive();
    const now = this.now();
    this.departed.push({ weight: shown(now - ticket.openedAt), closedAt: now });
  }

  /** The live streams the process can serve (the limit of open()). */
  get limit(): number {
    this.learn();
    return Math.min(this.allowed, this.costLimit());
  }

  /** The streams the slots serve at TARGET_BUSY at the process's mean cost. */
  private costLimit(): number {
    return Math.floor((TARGET_BUSY * this.slots) / (this.share.meanCost || this.cost));
  }

  /** The streams the process can still take (0 while the engine refuses them). */
  get admissible(): number {
    if (!this.engine.admits()) return 0;
    return Math.max(0, this.limit - this.share.live);
  }

  /** The learnt cost per live stream (slot-seconds per stream-second). */
  get costPerStream(): number {
    return this.cost;
  }

  /** Folds the time since the last call into the learnt cost and the lateness cut. */
  private learn(): void {
    const now = this.now();
    this.followLateness(now);
    const elapsed = (now - this.learntAt) / 1000;
    if (elapsed < 0.25) return;
    this.learntAt = now;
    let weighted = 0;
    for (const t of this.tickets) weighted += shown(now - t.openedAt);
    this.departed = this.departed.filter((d) => now - d.closedAt < 3 * SMOOTHING_MS);
    for (const d of this.departed) weighted += d.weight * Math.exp(-(now - d.closedAt) / SMOOTHING_MS);
    if (weighted < MIN_LEARNING_STREAMS) return;
    const busy = this.engine.finalsBusySlots;
    if (busy <= 0) return;
    const measured = busy / weighted;
    this.cost += Math.min(1, elapsed * LEARN_PER_SECOND) * (measured - this.cost);
    this.share.publishCost(this.party, this.cost);
  }

  private followLateness(now: number): void {
    let lateWindow = false;
    if (now - this.window.at >= LATE_WINDOW_MS) {
      const { finalsDone, lateFinals } = this.engine;
      const late = lateFinals - this.window.late;
      const done = finalsDone - this.window.done;
      this.window = { at: now, done: finalsDone, late: lateFinals };
      lateWindow = late >= MIN_LATE && late >= LATE_SHARE * done;
    }
    if (lateWindow) {
      this.lateAt = now;
      if (now - this.cutAt >= CUT_INTERVAL_MS) {
        this.allowed = Math.min(this.allowed, Math.max(1, Math.floor(this.share.live * CUT_SHARE)));
        this.cutAt = now;
      }
      return;
    }
    const costLimit = this.costLimit();
    // Raised only while the cost allows more and the process holds what it allows (demand).
    const atLimit = this.allowed <= costLimit && this.share.live >= this.allowed - 1;
    if (atLimit && now - this.lateAt >= RECOVER_AFTER_MS && now - this.raisedAt >= RAISE_EVERY_MS) {
      this.allowed++;
      this.raisedAt = now;
    }
  }
}

/** How much of the cost of a stream open for `ms` the smoothed busy fraction shows (0-1). */
function shown(ms: number): number {
  return ms <= SILENT_MS ? 0 : 1 - Math.exp(-(ms - SILENT_MS) / SMOOTHING_MS);
}
