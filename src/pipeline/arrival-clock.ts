// When each part of a stream's audio arrived, so a result can be timed from the arrival of the
// audio it ends with (the user-felt latency), not from when the server got round to it.
//
// Bounded by time and by count, whatever the client's frame size: frames that arrive within
// RESOLUTION_MS of the entry before share it (their audio is dated by the latest of them, so a
// latency reads at most that much short), entries older than KEEP_SECONDS of audio are dropped,
// and there are never more than MAX_ENTRIES (the oldest half goes). One-byte frames used to add
// one entry each.

const KEEP_SECONDS = 120; // longer than any utterance plus its padding
export const RESOLUTION_MS = 10;
export const MAX_ENTRIES = 4096; // 64 KiB a stream at most; finals only ask about recent audio

export class ArrivalClock {
  private ends: number[] = []; // stream seconds at the end of each entry's audio
  private times: number[] = []; // performance.now() when that audio had arrived
  private head = 0; // entries before it are dropped
  private received = 0;

  /** Entries held (for tests). */
  get size(): number {
    return this.ends.length - this.head;
  }

  /** A frame of `seconds` of audio arrived now. */
  arrived(seconds: number, now = performance.now()): void {
    this.received += seconds;
    const last = this.ends.length - 1;
    if (last >= this.head && now - this.times[last]! < RESOLUTION_MS) {
      this.ends[last] = this.received;
      this.times[last] = now;
      return;
    }
    this.ends.push(this.received);
    this.times.push(now);
    while (this.head < this.ends.length - 1 && this.received - this.ends[this.head]! > KEEP_SECONDS) this.head++;
    if (this.size > MAX_ENTRIES) this.head += this.size >> 1;
    // Compact once the dropped head outweighs what is kept: amortised O(1) per entry.
    if (this.head > 1024 && this.head * 2 > this.ends.length) {
      this.ends = this.ends.slice(this.head);
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }

  /** When the audio at stream time `seconds` had arrived, or undefined if it never did. */
  arrivalOf(seconds: number): number | undefined {
    let lo = this.head;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! + 1e-9 < seconds) lo = mid + 1;
      else hi = mid;
    }
    return this.times[lo];
  }
}
