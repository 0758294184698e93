// How much memory the audio waiting in the process may take (MEMORY_BUDGET_BYTES), and the
// accounts that hold it. Every bound on a stream is per stream; times MAX_CONNECTIONS they exceed
// any pod's limit, so the bytes of audio waiting (in a session's mailbox, for the decoder, for the
// VAD) are also counted for the whole process, across worker threads (SharedState), and a frame
// that would take the process over the budget is refused (MEMORY_BUDGET) before the pod is.
// The derived default follows cpu-budget.ts: the cgroup's memory limit, else physical memory.
import { SAMPLE_RATE } from './audio-format.js';
import { CGROUP_ROOT, readCgroupFile } from './cgroup.js';
import { totalmem } from 'node:os';

/** MEMORY_BUDGET_BYTES=0: audio waiting may take this share of the memory the process may use. */
export const MEMORY_SHARE = 0.5;
/**
 * New streams are refused at `start` while the audio held is above this share of the budget, and
 * beyond it only streams holding at most their fair share (the budget over the streams) may add.
 */
export const START_SHARE = 0.9;
/** Bytes one second of a channel takes once decoded: 16 kHz float32. */
export const DECODED_BYTES_PER_SECOND = SAMPLE_RATE * 4;

/** The cgroup's memory limit in bytes (v2 `memory.max`, else v1 `memory.limit_in_bytes`), or undefined if none. */
export function cgroupMemoryLimit(root = CGROUP_ROOT): number | undefined {
  const v2 = readCgroupFile(root, 'memory.max');
  if (v2 !== undefined) {
    const n = Number(v2);
    return v2 === 'max' || !(n > 0) ? undefined : n;
  }
  // v1 writes "no limit" as a page-rounded 2^63 - 1; min() with physical memory takes care of it.
  const v1 = Number(readCgroupFile(root, 'memory/memory.limit_in_bytes'));
  return v1 > 0 ? v1 : undefined;
}

/** The budget: `configured` when set, else MEMORY_SHARE of the cgroup limit or of physical memory, whichever is less. */
export function memoryBudget(configured: number, limit = cgroupMemoryLimit(), physical = totalmem()): number {
  if (configured > 0) return configured;
  return Math.floor(MEMORY_SHARE * (limit === undefined ? physical : Math.min(limit, physical)));
}

/** Where the process-wide count lives (SharedState: one 64-bit slot, Atomics). */
export interface HeldCounter {
  /** Adds `delta` (may be negative) to the process's count; returns the new total. */
  addHeld(delta: number): number;
  readonly held: number;
  /** Streams in the process. */
  readonly streams: number;
}

/**
 * One worker thread's view of the budget: the process-wide count (for the checks) and this
 * worker's own share of it (its gauge, summed over workers like streams_admissible).
 */
export class MemoryBudget {
  /** Bytes held by this worker's accounts. */
  local = 0;

  constructor(
    readonly budget: number,
    private readonly counter: HeldCounter,
  ) {}

  /** Bytes held in the whole process. */
  get held(): number {
    return this.counter.held;
  }

  /** Whether `bytes` more keep the process within the budget. */
  fits(bytes: number): boolean {
    return this.counter.held + bytes <= this.budget;
  }

  /**
   * Whether a connection holding `own` bytes may add `bytes`: within the budget, and past
   * START_SHARE of it only while it holds at most its fair share. A flood is then what meets the
   * budget, not the live stream whose small frame happens to arrive when it is nearly full.
   */
  admits(bytes: number, own: number): boolean {
    const after = this.counter.held + bytes;
    if (after > this.budget) return false;
    return after <= START_SHARE * this.budget || own + bytes <= this.budget / Math.max(1, this.counter.streams);
  }

  /** Whether a new stream may start: the process holds at most START_SHARE of the budget. */
  admitsStream(): boolean {
    return this.counter.held <= START_SHARE * this.budget;
  }

  /** A new account (a session's mailbox, a stream's pipeline). */
  account(): HeldAudio {
    return new HeldAudio(this);
  }

  /** @internal */
  change(delta: number): void {
    if (delta === 0) return;
    this.local += delta;
    this.counter.addHeld(delta);
  }
}

/**
 * The bytes one holder has in the count. `set` and `add` move the count by the difference;
 * `release` gives everything back, and the account ignores any later change (a job still in
 * flight when its stream ended reports into it harmlessly).
 */
export class HeldAudio {
  private bytes = 0;
  private released = false;

  constructor(private readonly budget: MemoryBudget | undefined) {}

  /** An account that counts nothing (pipelines not fed by a WebSocket session). */
  static none(): HeldAudio {
    return new HeldAudio(undefined);
  }

  get held(): number {
    return this.bytes;
  }

  set(bytes: number): void {
    if (this.released || !this.budget) return;
    const next = Math.max(0, Math.round(bytes));
    this.budget.change(next - this.bytes);
    this.bytes = next;
  }

  add(delta: number): void {
    this.set(this.bytes + delta);
  }

  release(): void {
    this.set(0);
    this.released = true;
  }
}

/**
 * What one wire byte of a stream may come to weigh while it waits: its own size until decoded,
 * then its share of the 16 kHz float32 samples (8 kHz μ-law grows 8 times, 48 kHz float shrinks).
 * Audio is counted at the larger of the two from arrival, so decoding never takes the count up.
 */
export function heldWeight(bytesPerSecond: number, channels: number): number {
  return Math.max(1, (DECODED_BYTES_PER_SECOND * channels) / bytesPerSecond);
}
