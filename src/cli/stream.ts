// `speech-client stream`: one file to one route, the server's events printed as they arrive.
import { formatEvent, Progress, segmentContent } from './render.js';
import { runStream, type ServerEvent } from './run-stream.js';
import { describeFormat, loadAudio, secondsOf, type RawFlags } from './wav.js';
import { CliError } from './errors.js';

interface StreamCommandOptions {
  file: string;
  raw: RawFlags;
  url: URL;
  token: string | undefined;
  ca: string | undefined;
  /** Multiple of real time; Infinity: as fast as the socket takes it. */
  speed: number;
  interim: boolean;
  chunkBytes: number;
  json: boolean;
  traceId: string | undefined;
  connectTimeoutMs: number;
  waitMs: number;
}

const ms = (v: number | null): string => (v === null ? '—' : `${Math.round(v)} ms`);

/** Runs the command; resolves with the exit code (failures throw CliError). */
export async function streamCommand(o: StreamCommandOptions): Promise<number> {
  const audio = await loadAudio(o.file, o.raw);
  const seconds = secondsOf(audio.format, audio.data.length);
  const stdout = process.stdout;
  const stderr = process.stderr;
  const color = stdout.isTTY === true && !o.json && process.env['NO_COLOR'] === undefined;
  const progress = new Progress(stderr, stderr.isTTY === true);
  const finals = new Map<number, ServerEvent[]>();
  const print = (line: string): void => progress.print(stdout, line);
  const pace = Number.isFinite(o.speed) ? (o.speed === 1 ? 'at real time' : `at ${o.speed}× real time`) : 'as fast as it goes';

  // Ctrl-C: stop sending and collect the final results; a second one quits at once.
  const abort = new AbortController();
  const onSigint = (): void => {
    if (abort.signal.aborted) {
      progress.clear();
      process.exit(130);
    }
    progress.print(stderr, 'interrupted: sending stop and waiting for the final results (Ctrl-C again to quit)');
    abort.abort();
  };
  process.on('SIGINT', onSigint);

  let result;
  try {
    result = await runStream({
      url: o.url,
      token: o.token,
      ca: o.ca,
      audio,
      chunkBytes: o.chunkBytes,
      speed: o.speed,
      interim: o.interim,
      traceId: o.traceId,
      connectTimeoutMs: o.connectTimeoutMs,
      waitMs: o.waitMs,
      signal: abort.signal,
      onOpen: (connectMs) => {
        progress.print(stderr, `connected to ${o.url.href} in ${ms(connectMs)}; sending ${audio.name} (${describeFormat(audio.format)}, ${seconds.toFixed(2)} s) ${pace}`);
      },
      onSent: (bytes) => {
        const done = bytes >= audio.data.length;
        progress.update(bytes, audio.data.length, `${secondsOf(audio.format, bytes).toFixed(1)}/${seconds.toFixed(1)} s sent${done ? '; waiting for the final results' : ''}`, done);
      },
      onEvent: (event, elapsedMs) => {
        if (event.type === 'progress') return; // flow control, not a result
        if (event.type === 'segment' && event['is_final'] !== false) {
          const list = finals.get(event.channel) ?? [];
          list.push(event);
          finals.set(event.channel, list);
        }
        print(o.json ? JSON.stringify({ ...event, elapsed_ms: Math.round(elapsedMs * 10) / 10 }) : formatEvent(event, color));
      },
    });
  } finally {
    process.off('SIGINT', onSigint);
    progress.clear();
  }
  if (result.failure) throw new CliError(result.failure.reason, 1, result.failure.code);

  // The summary: on stdout with the readable lines, on stderr beside JSON lines.
  const out = o.json ? stderr : stdout;
  const lines = [
    `--- ${result.audioSecondsSent.toFixed(2)} s of audio in ${(result.totalMs / 1000).toFixed(2)} s; connect ${ms(result.connectMs)}; first message after ${ms(result.firstEventMs)}; ${result.events} events`,
  ];
  if (result.errors.length) {
    const byCode = new Map<string, number>();
    for (const e of result.errors) byCode.set(e.code, (byCode.get(e.code) ?? 0) + 1);
    lines.push(`errors: ${[...byCode].map(([code, n]) => `${code} ×${n}`).join(', ')}`);
  }
  for (let ch = 0; ch < audio.format.channels; ch++) {
    const segments = finals.get(ch) ?? [];
    const texts = segments.filter((s) => typeof s['text'] === 'string').map((s) => (s['text'] as string).trim()).filter((t) => t);
    const content = texts.length ? texts.join(' ')
      : segments.length ? `${segments.length} segment${segments.length === 1 ? '' : 's'}, no text: ${segments.map(segmentContent).join(' ')}`
      : '(nothing)';
    lines.push(`ch${ch} final text: ${content}`);
  }
  out.write(`${lines.join('\n')}\n`);
  return 0;
}
