// Process-wide counters every worker thread reads and writes: the connection limit, health's
// stream count and readiness must describe the process, not whichever worker a request landed on;
// the model-job slots the workers' inference schedulers share (SchedulerShare); and the live
// streams against the capacity each worker measures (CapacityShare).
// One SharedArrayBuffer, created by the primary and handed to each worker; with WORKERS=1 the
// same object lives in the one thread.

import type { HeldCounter } from '../memory-budget.js';
import { DEFER_MS, type SchedulerShare } from '../pipeline/inference-scheduler.js';
import type { CapacityShare } from '../pipeline/stream-capacity.js';

/** Slots in the per-address table of open connections (a power of two; admission.ts hashes into it). */
export const ADDRESS_SLOTS = 1 << 16;

const Slot = { Connections: 0, Streams: 1, WorkersReady: 2, Draining: 3, ModelJobs: 4, LiveStreams: 5, Count: 6 } as const;
const TIMES_AT = 24; // after the ints, 8-byte aligned

export class SharedState implements SchedulerShare, CapacityShare, HeldCounter {
  private readonly ints: Int32Array;
  // Date.now() of the latest panic in any worker (0: none), for health's "degraded", and of the
  // latest stream shed for overload (0: none): every worker refuses new streams for a while
  // after any worker sheds, or the load shed on one would come back through the others.
  private readonly times: Float64Array;
  // Each worker's earliest waiting model-job deadline (epoch ms; Infinity: none waits).
  private readonly tops: Float64Array;
  // Each worker's learnt cost of a live stream (stream-capacity.ts; 0: none published yet).
  private readonly costs: Float64Array;
  // Open connections per client address, hashed into ADDRESS_SLOTS counters (admission.ts), so
  // MAX_CONNECTIONS_PER_ADDRESS holds for the process whichever worker the kernel picked.
  private readonly addresses: Int32Array;
  // Bytes of audio waiting in the process (memory-budget.ts): 64 bits, as a budget may pass 2 GiB.
  private readonly heldBytes: BigInt64Array;

  readonly buffer: SharedArrayBuffer;

  /** A new state, or (`buffer`: the primary's) a worker's view of the process's. */
  constructor(readonly workers: number, buffer?: SharedArrayBuffer) {
    const addressesAt = TIMES_AT + (2 + 2 * workers) * 8;
    const heldAt = addressesAt + ADDRESS_SLOTS * 4; // 8-byte aligned: both terms are
    this.buffer = buffer ?? new SharedArrayBuffer(heldAt + 8);
    this.ints = new Int32Array(this.buffer, 0, Slot.Count);
    this.times = new Float64Array(this.buffer, TIMES_AT, 2);
    this.tops = new Float64Array(this.buffer, TIMES_AT + 16, workers);
    this.costs = new Float64Array(this.buffer, TIMES_AT + 16 + workers * 8, workers);
    this.addresses = new Int32Array(this.buffer, addressesAt, ADDRESS_SLOTS);
    this.heldBytes = new BigInt64Array(this.buffer, heldAt, 1);
    if (!buffer) this.tops.fill(Infinity);
  }

  get parties(): number {
    return this.workers;
  }

  tryAcquire(party: number, due: number, slots: number): boolean {
    for (let w = 0; w < this.workers; w++) {
      if (w !== party && this.tops[w]! < due - DEFER_MS) return false; // another worker's job is due first
    }
    return this.take(Slot.ModelJobs, slots);
  }

  release(): void {
    Atomics.sub(this.ints, Slot.ModelJobs, 1);
  }

  publish(party: number, due: number): void {
    this.tops[party] = due;
  }

  publishCost(party: number, cost: number): void {
    this.costs[party] = cost;
  }

  get meanCost(): number {
    let sum = 0;
    let n = 0;
    for (const c of this.costs) {
      if (c > 0) {
        sum += c;
        n++;
      }
    }
    return n > 0 ? sum / n : 0;
  }

  tryOpenLive(max: number): boolean {
    return this.take(Slot.LiveStreams, max);
  }

  closeLive(): void {
    Atomics.sub(this.ints, Slot.LiveStreams, 1);
  }

  get live(): number {
    return Atomics.load(this.ints, Slot.LiveStreams);
  }

  /** Takes a connection slot unless `max` are taken; false when the process is at its limit. */
  tryConnect(max: number): boolean {
    return this.take(Slot.Connections, max);
  }

  /** Takes a connection of the address in `slot` unless it holds `max`. */
  tryConnectFrom(slot: number, max: number): boolean {
    if (Atomics.add(this.addresses, slot, 1) < max) return true;
    Atomics.sub(this.addresses, slot, 1);
    return false;
  }

  disconnectedFrom(slot: number): void {
    Atomics.sub(this.addresses, slot, 1);
  }

  /** Counts one more in `slot` unless `max` are counted already (then leaves it as it was). */
  private take(slot: number, max: number): boolean {
    if (Atomics.add(this.ints, slot, 1) < max) return true;
    Atomics.sub(this.ints, slot, 1);
    return false;
  }

  addHeld(delta: number): number {
    const d = BigInt(delta);
    return Number(Atomics.add(this.heldBytes, 0, d) + d);
  }

  get held(): number {
    return Number(Atomics.load(this.heldBytes, 0));
  }

  disconnected(): void {
    Atomics.sub(this.ints, Slot.Connections, 1);
  }

  get connections(): number {
    return Atomics.load(this.ints, Slot.Connections);
  }

  streamStarted(): void {
    Atomics.add(this.ints, Slot.Streams, 1);
  }

  streamEnded(): void {
    Atomics.sub(this.ints, Slot.Streams, 1);
  }

  get streams(): number {
    return Atomics.load(this.ints, Slot.Streams);
  }

  workerReady(): void {
    Atomics.add(this.ints, Slot.WorkersReady, 1);
  }

  /** Every worker has loaded and warmed its models. */
  get ready(): boolean {
    return Atomics.load(this.ints, Slot.WorkersReady) >= this.workers;
  }

  startDraining(): void {
    Atomics.store(this.ints, Slot.Draining, 1);
  }

  get draining(): boolean {
    return Atomics.load(this.ints, Slot.Draining) === 1;
  }

  // A torn read of a double is harmless here (health only compares it with a window), but a
  // plain store of an aligned double is atomic on every platform Node runs on anyway.
  panicked(now = Date.now()): void {
    if (now > this.times[0]!) this.times[0] = now;
  }

  /** Date.now() of the latest panic in the process, or undefined. */
  get lastPanicAt(): number | undefined {
    const at = this.times[0]!;
    return at > 0 ? at : undefined;
  }

  /** A worker's inference scheduler shed streams (see SchedulerShare). */
  markShed(now = Date.now()): void {
    if (now > this.times[1]!) this.times[1] = now;
  }

  /** Milliseconds since any worker last shed streams (Infinity: never). */
  msSinceShed(now = Date.now()): number {
    const at = this.times[1]!;
    return at > 0 ? now - at : Infinity;
  }
}
