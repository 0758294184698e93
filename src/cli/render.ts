// Human-readable output: one line per server event, and a progress bar that redraws in place on a
// terminal without tearing the lines printed around it.
import type { ServerEvent } from './run-stream.js';

const DIM = '\x1b[2m';
const RESET = '\x1b[0m';
const KNOWN_FIELDS = new Set(['type', 'channel', 'time', 'start_time', 'end_time', 'is_final', 'text', 'code', 'message']);

const secs = (v: unknown): string => (typeof v === 'number' ? v.toFixed(2) : '?');

/** The model output of a segment: its text, or (the stub model) its other fields. */
export function segmentContent(event: ServerEvent): string {
  if (typeof event['text'] === 'string') return event['text'];
  const rest = Object.entries(event).filter(([k]) => !KNOWN_FIELDS.has(k));
  return rest.length ? `(${rest.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ')})` : '(no text)';
}

/** One event as a line, e.g. `[ch0  0.54s] ● speaking` or `[ch0 0.34–4.14s] final: The quick…`. */
export function formatEvent(event: ServerEvent, color: boolean): string {
  const ch = `ch${event.channel}`;
  switch (event.type) {
    case 'active':
      return `[${ch} ${secs(event['time']).padStart(5)}s] ● speaking`;
    case 'inactive':
      return `[${ch} ${secs(event['time']).padStart(5)}s] ○ silence`;
    case 'segment': {
      const span = `[${ch} ${secs(event['start_time'])}–${secs(event['end_time'])}s]`;
      const kind = event['is_final'] === true ? 'final' : event['is_final'] === false ? 'interim' : 'segment';
      const line = `${span} ${kind}: ${segmentContent(event)}`;
      return kind === 'interim' && color ? `${DIM}${line}${RESET}` : line;
    }
    case 'error':
      return `[${ch}] error ${String(event['code'])}: ${String(event['message'])}`;
    default:
      return `[${ch}] ${event.type} ${JSON.stringify(event)}`;
  }
}

/** A one-line progress bar on a TTY stream (stderr); a no-op elsewhere. */
export class Progress {
  private shown = false;
  private lastDraw = 0;
  private text = '';

  constructor(private readonly out: NodeJS.WriteStream, private readonly enabled: boolean) {}

  /** Redraws (at most every 100 ms unless `force`) for `done` of `total`. */
  update(done: number, total: number, label: string, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = 30;
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(fraction * width);
    this.text = `${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${(fraction * 100).toFixed(0).padStart(3)}%  ${label}`;
    this.out.write(`\r\x1b[K${this.text}`);
    this.shown = true;
  }

  /** Prints `line` to `stream` above the bar, then redraws the bar. */
  print(stream: NodeJS.WritableStream, line: string): void {
    if (this.shown) this.out.write('\r\x1b[K');
    stream.write(`${line}\n`);
    if (this.shown) this.out.write(this.text);
  }

  clear(): void {
    if (this.shown) this.out.write('\r\x1b[K');
    this.shown = false;
  }
}
