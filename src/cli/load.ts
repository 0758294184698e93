// `speech-client load`: N concurrent streams for a while, then the figures a capacity test needs:
// latency percentiles, errors, drops, and the server's CPU and memory from its /metrics.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { CliError } from './errors.js';
import { MetricsSampler } from './server-metrics.js';
import { runStream, type FinalText, type StreamResult } from './run-stream.js';
import { formatSummary, summarize } from './stats.js';
import { frameBytes } from '../audio-format.js';
import { loadAudio, secondsOf, type Audio, type RawFlags } from './wav.js';

interface LoadCommandOptions {
  files: string[];
  raw: RawFlags;
  url: URL;
  token: string | undefined;
  ca: string | undefined;
  streams: number;
  rampUpSeconds: number;
  /** Multiple of real time; Infinity: unpaced. */
  speed: number;
  /** Stop starting streams (and cut running ones short) after this long; undefined: no limit. */
  durationSeconds: number | undefined;
  /** Streams each of the N runs one after another; undefined with a duration: as many as fit. */
  repeat: number | undefined;
  interim: boolean;
  chunkBytes: number;
  connectTimeoutMs: number;
  waitMs: number;
  metricsUrl: URL;
  metricsIntervalMs: number;
  /** Put each stream's finals (text and times) in the JSON report, for scoring their words. */
  transcripts?: boolean | undefined;
  /**
   * Stream w plays its file rotated to begin at rotateAtSeconds[w % length] (wrapping round to
   * the file's start): with cuts in the pauses between utterances, streams started together
   * still end their utterances at different moments, as streams started long apart would.
   */
  rotateAtSeconds?: number[] | undefined;
}

/** One stream's finals, in the JSON report with --transcripts. */
interface StreamTranscript {
  stream: number;
  pass: number;
  file: string;
  /** Where its audio began, with --rotate-at; 0 otherwise. */
  rotated_s: number;
  finals: FinalText[];
}

/** `audio` begun at `seconds` (cut on a whole frame) and wrapped round: the same bytes, reordered. */
export function rotateAudio(audio: Audio, seconds: number): Audio {
  const frame = frameBytes(audio.format);
  const frames = audio.data.length / frame;
  const cut = Math.min(Math.max(0, Math.round(seconds * audio.format.sampleRate)), Math.floor(frames)) * frame;
  if (cut === 0 || cut >= audio.data.length) return audio;
  return { ...audio, name: `${audio.name}@${seconds}s`, data: Buffer.concat([audio.data.subarray(cut), audio.data.subarray(0, cut)]) };
}

const count = (map: Map<string, number>, key: string): void => {
  map.set(key, (map.get(key) ?? 0) + 1);
};
const sorted = (map: Map<string, number>): Record<string, number> => Object.fromEntries([...map].sort(([a], [b]) => a.localeCompare(b)));
const list = (map: Map<string, number>): string => (map.size ? [...map].map(([k, v]) => `${k} ${v}`).join(', ') : 'none');
const mb = (v: number | null): string => (v === null ? '—' : `${(v / 1e6).toFixed(1)} MB`);

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return;
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    // aborted: go on at once
  }
}

export async function loadCommand(o: LoadCommandOptions): Promise<number> {
  const audios: Audio[] = [];
  for (const file of o.files) audios.push(await loadAudio(file, o.raw));
  const repeat = o.repeat ?? (o.durationSeconds === undefined ? 1 : Infinity);
  const stderr = process.stderr;
  const tty = stderr.isTTY === true;
  const pace = Number.isFinite(o.speed) ? (o.speed === 1 ? 'real time' : `${o.speed}× real time`) : 'unpaced';
  stderr.write(`load: ${o.streams} streams${Number.isFinite(repeat) ? ` × ${repeat}` : ''}${o.durationSeconds !== undefined ? ` for ${o.durationSeconds} s` : ''}`
    + ` to ${o.url.href}, ${audios.length} file${audios.length === 1 ? '' : 's'} round-robin, ${pace}, ramp-up ${o.rampUpSeconds} s\n`);

  const stop = new AbortController();
  const deadline = o.durationSeconds === undefined ? undefined : setTimeout(() => stop.abort(), o.durationSeconds * 1000);
  const onSigint = (): void => {
    if (stop.signal.aborted) process.exit(130);
    stderr.write('\ninterrupted: finishing the running streams (Ctrl-C again to quit)\n');
    stop.abort();
  };
  process.on('SIGINT', onSigint);

  const sampler = new MetricsSampler(o.metricsUrl, o.token, o.metricsIntervalMs, o.ca);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  sampler.start();

  const results: StreamResult[] = [];
  const transcripts: StreamTranscript[] = [];
  // One rotated copy per (file, cut), shared by the streams that play it.
  const rotations = new Map<string, Audio>();
  const rotated = (audio: Audio, index: number, seconds: number): Audio => {
    const key = `${index}:${seconds}`;
    let r = rotations.get(key);
    if (!r) rotations.set(key, (r = rotateAudio(audio, seconds)));
    return r;
  };
  const errors = new Map<string, number>();
  const failures = new Map<string, number>();
  const closeCodes = new Map<string, number>();
  let live = 0;
  let next = 0;
  let firstFailure: string | undefined;

  const record = (r: StreamResult): void => {
    results.push(r);
    for (const e of r.errors) count(errors, e.code);
    if (r.failure) {
      count(failures, r.failure.code);
      firstFailure ??= r.failure.reason;
    }
    if (r.closeCode !== null) count(closeCodes, String(r.closeCode));
  };

  const status = (): string => {
    const failed = results.filter((r) => r.failure).length;
    const last = sampler.samples.at(-1);
    return `${((performance.now() - t0) / 1000).toFixed(0)} s: ${live} live, ${results.length} done, ${failed} failed, errors ${list(errors)}`
      + (last?.rssBytes !== undefined ? `; server RSS ${mb(last.rssBytes)}` : '');
  };
  const ticker = setInterval(() => stderr.write(tty ? `\r\x1b[K${status()}` : `${status()}\n`), tty ? 500 : 5000);

  const worker = async (w: number): Promise<void> => {
    await pause((o.rampUpSeconds * 1000 * w) / o.streams, stop.signal);
    for (let k = 0; k < repeat && !stop.signal.aborted; k++) {
      const index = next++ % audios.length;
      const cuts = o.rotateAtSeconds;
      const rotateS = cuts && cuts.length > 0 ? cuts[w % cuts.length]! : 0;
      const audio = rotateS > 0 ? rotated(audios[index]!, index, rotateS) : audios[index]!;
      live++;
      let r: StreamResult;
      try {
        r = await runStream({
          url: o.url, token: o.token, ca: o.ca, audio, chunkBytes: o.chunkBytes, speed: o.speed, interim: o.interim,
          traceId: `load-${w}-${k}`, connectTimeoutMs: o.connectTimeoutMs, waitMs: o.waitMs, signal: stop.signal,
        });
      } finally {
        live--;
      }
      record(r);
      if (o.transcripts) transcripts.push({ stream: w, pass: k, file: audios[index]!.name, rotated_s: rotateS, finals: r.finals });
      // A refused or unreachable server, or one that said try again later (1013): do not spin,
      // as a real client backs off (each retry would cost the server an upgrade and a refusal).
      if ((!r.connected || r.closeCode === 1013) && k + 1 < repeat) await pause(500, stop.signal);
    }
  };
  try {
    await Promise.all(Array.from({ length: o.streams }, (_, w) => worker(w)));
  } finally {
    clearInterval(ticker);
    clearTimeout(deadline);
    process.off('SIGINT', onSigint);
    if (tty) stderr.write('\r\x1b[K');
  }
  const wallS = (performance.now() - t0) / 1000;
  const server = await sampler.stop();
  const cpu = process.cpuUsage(cpu0);

  const completed = results.filter((r) => !r.failure).length;
  const report = {
    url: o.url.href,
    files: audios.map((a) => a.name),
    streams: o.streams,
    ramp_up_s: o.rampUpSeconds,
    speed: Number.isFinite(o.speed) ? o.speed : null,
    repeat: Number.isFinite(repeat) ? repeat : null,
    duration_s: o.durationSeconds ?? null,
    interim: o.interim,
    wall_s: Number(wallS.toFixed(3)),
    streams_started: results.length,
    streams_completed: completed,
    streams_failed: results.length - completed,
    audio_seconds_sent: Number(results.reduce((s, r) => s + r.audioSecondsSent, 0).toFixed(3)),
    events: results.reduce((s, r) => s + r.events, 0),
    connect_ms: summarize(results.flatMap((r) => (r.connectMs === null ? [] : [r.connectMs]))),
    time_to_first_event_ms: summarize(results.flatMap((r) => (r.firstEventMs === null ? [] : [r.firstEventMs]))),
    final_lag_ms: summarize(results.flatMap((r) => r.finalLagsMs)),
    interim_staleness_ms: summarize(results.flatMap((r) => r.interimStalenessMs)),
    errors: sorted(errors),
    failures: sorted(failures),
    dropped_connections: results.filter((r) => r.dropped).length,
    close_codes: sorted(closeCodes),
    server,
    client_cpu_cores: Number(((cpu.user + cpu.system) / 1e6 / wallS).toFixed(3)),
    ...(o.transcripts ? { transcripts: transcripts.sort((a, b) => a.stream - b.stream || a.pass - b.pass) } : {}),
  };

  const audioTotal = audios.reduce((s, a) => s + secondsOf(a.format, a.data.length), 0) / audios.length;
  const out = [
    `streams: ${report.streams_started} run (${report.streams_completed} completed, ${report.streams_failed} failed); ${report.audio_seconds_sent.toFixed(1)} s of audio (files average ${audioTotal.toFixed(1)} s) in ${wallS.toFixed(1)} s`,
    `time to first event: ${formatSummary(report.time_to_first_event_ms, 'ms')}`,
    `final-result lag:    ${formatSummary(report.final_lag_ms, 'ms')}`,
    ...(report.interim_staleness_ms.count > 0 ? [`interim staleness:   ${formatSummary(report.interim_staleness_ms, 'ms')}`] : []),
    `connect:             ${formatSummary(report.connect_ms, 'ms')}`,
    `server errors: ${list(errors)}; failed streams: ${list(failures)}; dropped connections: ${report.dropped_connections}`,
    server.error !== null
      ? `server usage: unavailable (${server.error})`
      : `server: CPU ${server.cpu_cores_mean ?? '—'} cores mean, ${server.cpu_cores_max ?? '—'} max; RSS ${mb(server.rss_bytes_first)} → max ${mb(server.rss_bytes_max)}, last ${mb(server.rss_bytes_last)} (${server.samples} samples)`,
    `client: CPU ${report.client_cpu_cores} cores`,
    JSON.stringify(report),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  if (completed === 0 && results.length > 0) throw new CliError(`no stream completed; first failure: ${firstFailure ?? 'unknown'}`, 1, 'ALL_FAILED');
  return 0;
}
