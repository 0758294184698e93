// JSON-lines logger on stdout: one object per line, `trace_id` where a stream has one.
import type { LogLevel } from './config.js';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export class Logger {
  constructor(
    private readonly level: LogLevel,
    private readonly fields: LogFields = {},
    private readonly write: (line: string) => void = (line) => process.stdout.write(line + '\n'),
  ) {}

  child(fields: LogFields): Logger {
    return new Logger(this.level, { ...this.fields, ...fields }, this.write);
  }

  debug(msg: string, fields?: LogFields): void { this.log('debug', msg, fields); }
  info(msg: string, fields?: LogFields): void { this.log('info', msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.log('warn', msg, fields); }
  error(msg: string, fields?: LogFields): void { this.log('error', msg, fields); }

  /** Written whatever LOG_LEVEL says: lines that supervisors and tests wait for (`listening`). */
  announce(msg: string, fields?: LogFields): void { this.log('info', msg, fields, true); }

  private log(level: LogLevel, msg: string, fields?: LogFields, always = false): void {
    if (!always && RANK[level] < RANK[this.level]) return;
    this.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.fields, ...fields }));
  }
}
