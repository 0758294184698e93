// Process-wide counters every worker thread reads and writes: the connection limit, health's
// stream count and readiness must describe the process, not whichever worker a request landed on.
// One SharedArrayBuffer, created by the primary and handed to each worker; with WORKERS=1 the
// same object lives in the one thread.

const Slot = { Connections: 0, Streams: 1, WorkersReady: 2, Draining: 3, Count: 4 } as const;

export class SharedState {
  private readonly ints: Int32Array;
  // Date.now() of the latest panic in any worker (0: none), for health's "degraded", and of the
  // latest stream shed for overload (0: none): every worker refuses new streams for a while
  // after any worker sheds, or the load shed on one would come back through the others.
  private readonly times: Float64Array;

  constructor(
    readonly workers: number,
    readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(Slot.Count * 4 + 2 * 8),
  ) {
    this.ints = new Int32Array(buffer, 0, Slot.Count);
    this.times = new Float64Array(buffer, Slot.Count * 4, 2);
  }

  /** Takes a connection slot unless `max` are taken; false when the process is at its limit. */
  tryConnect(max: number): boolean {
    if (Atomics.add(this.ints, Slot.Connections, 1) < max) return true;
    Atomics.sub(this.ints, Slot.Connections, 1);
    return false;
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

  /** A worker's inference scheduler shed streams (see ShedRecord). */
  markShed(now = Date.now()): void {
    if (now > this.times[1]!) this.times[1] = now;
  }

  /** Milliseconds since any worker last shed streams (Infinity: never). */
  msSinceShed(now = Date.now()): number {
    const at = this.times[1]!;
    return at > 0 ? now - at : Infinity;
  }
}
