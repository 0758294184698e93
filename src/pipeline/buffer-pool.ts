// Sample buffers given back by their owners, for the next to reuse: big buffers allocated and
// dropped at a high rate are what starts V8's full collections (external memory pressure).

/** Free Float32Arrays, kept up to `maxBytes` in all; one thread's. */
export class BufferPool {
  private readonly free: Float32Array[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** A buffer of at least `length` samples (contents undefined). */
  take(length: number): Float32Array {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.length >= length && (best < 0 || b.length < this.free[best]!.length)) best = i;
    }
    if (best < 0) return new Float32Array(length);
    const [buffer] = this.free.splice(best, 1);
    this.bytes -= buffer!.byteLength;
    return buffer!;
  }

  give(buffer: Float32Array): void {
    if (buffer.byteLength === 0 || buffer.byteLength > this.maxBytes) return;
    this.free.push(buffer);
    this.bytes += buffer.byteLength;
    // Over the cap: the smallest go first (a big one saves the most copies and allocations).
    this.free.sort((a, b) => b.length - a.length);
    while (this.bytes > this.maxBytes) this.bytes -= this.free.pop()!.byteLength;
  }
}
