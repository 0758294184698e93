// When each part of a stream's audio arrived, so a result can be timed from the arrival of the
// audio it ends with (the user-felt latency), not from when the server got round to it.

const KEEP_SECONDS = 120; // longer than any utterance plus its padding

export class ArrivalClock {
  private ends: number[] = []; // stream seconds at the end of each frame
  private times: number[] = []; // performance.now() when that frame arrived
  private received = 0;

  /** A frame of `seconds` of audio arrived now. */
  arrived(seconds: number, now = performance.now()): void {
    this.received += seconds;
    this.ends.push(this.received);
    this.times.push(now);
    if (this.ends.length > 4096 && this.received - this.ends[0]! > KEEP_SECONDS) {
      const drop = this.ends.findIndex((e) => this.received - e <= KEEP_SECONDS);
      this.ends.splice(0, drop);
      this.times.splice(0, drop);
    }
  }

  /** When the audio at stream time `seconds` had arrived, or undefined if it never did. */
  arrivalOf(seconds: number): number | undefined {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! + 1e-9 < seconds) lo = mid + 1;
      else hi = mid;
    }
    return this.times[lo];
  }
}
