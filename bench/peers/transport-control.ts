// The control work both transport peers do per connection (bench/peers/transport-ws-server.ts on
// `ws`, bench/peers/transport-uws-bare.ts on bare uWebSockets.js): the server's protocol minus
// everything audio. Text frames are start/stop requests; binary frames are counted; a stop
// answers with one segment (the 16 kHz samples the bytes hold, like the stub model's last
// window) and, with `disconnect`, closes with 1000. One implementation, so the two peers differ
// only in their transport.

interface Format { channels: number; sample_rate: number; bit_depth: number; is_float: boolean }
interface Stream { bytesPerSecond: number; frameBytes: number; bytes: number }

export class ControlSession {
  private stream: Stream | undefined;

  constructor(
    private readonly sendText: (text: string) => void,
    private readonly close: (code: number, reason: string) => void,
  ) {}

  /** A binary frame of `length` bytes, already copied by the caller as the real server does. */
  onBinary(length: number): void {
    if (!this.stream) {
      this.error('NOT_STARTED', 'audio before start: send {"request":"start",...} first');
      return;
    }
    this.stream.bytes += length;
  }

  onText(text: string): void {
    let msg: { request?: unknown; format?: Format; disconnect?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch (e) {
      this.error('BAD_JSON', `malformed JSON: ${(e as Error).message}`);
      return;
    }
    if (msg.request === 'start') {
      const f = msg.format;
      if (!f || ![1, 2, 3, 4, 8].includes(f.bit_depth / 8) || !(f.channels >= 1) || !(f.sample_rate >= 8000)) {
        this.error('INVALID_FORMAT', 'bad format');
        return;
      }
      this.finish();
      const frameBytes = (f.bit_depth / 8) * f.channels;
      this.stream = { bytesPerSecond: f.sample_rate * frameBytes, frameBytes, bytes: 0 };
    } else if (msg.request === 'stop') {
      if (!this.stream && msg.disconnect !== true) {
        this.error('NOT_STARTED', 'stop before start: there is no stream to stop');
        return;
      }
      this.finish();
      if (msg.disconnect === true) this.close(1000, 'stopped');
    } else {
      this.error('UNKNOWN_REQUEST', 'expected start or stop');
    }
  }

  private finish(): void {
    const s = this.stream;
    if (!s) return;
    const samples = Math.floor(s.bytes / s.frameBytes);
    const seconds = samples / (s.bytesPerSecond / s.frameBytes);
    this.send({ type: 'segment', channel: 0, start_time: 0, end_time: seconds, count: Math.round(seconds * 16000) });
    this.stream = undefined;
  }

  private error(code: string, message: string): void {
    this.send({ type: 'error', channel: 0, code, message });
  }

  private send(event: unknown): void {
    this.sendText(JSON.stringify(event));
  }
}

/** The log lines bench/server-process.ts waits for. */
export function announce(port: number): void {
  process.stdout.write(JSON.stringify({ msg: 'listening', port }) + '\n');
  process.stdout.write(JSON.stringify({ msg: 'ready', port }) + '\n');
}
