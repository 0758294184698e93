// The command-line clients (`speech-client stream|load`), run as child processes against a real
// server with the stub model; plus the WAV header reader on synthesized headers.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli, type CliRun } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { FIXTURES, readWav } from '../helpers/wav.js';
import { parseWav, wireFormat } from '../../src/cli/wav.js';


let server: TestServer;
let tmp: string;
before(async () => {
  server = await startServer({ MODEL: 'stub' });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'speech-cli-'));
});
after(async () => {
  await server.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const cli = (args: string[], env: Record<string, string> = {}): Promise<CliRun> => runCli(args, env, 30_000);

const fixture = (name: string): string => path.join(FIXTURES, name);
const lines = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '');
const finalsOn = (stdout: string, channel: number): string[] => lines(stdout).filter((l) => l.startsWith(`[ch${channel} `) && l.includes('] final: '));

/** A WAV file: `tag` 1 PCM, 3 float, 6 A-law, 7 μ-law; `extensible` wraps it in WAVE_FORMAT_EXTENSIBLE. */
function wavFile(tag: number, channels: number, rate: number, bits: number, data: Uint8Array, extensible = false): Buffer {
  const block = channels * (bits / 8);
  const fmt = Buffer.alloc(extensible ? 40 : 18);
  fmt.writeUInt16LE(extensible ? 0xfffe : tag, 0);
  fmt.writeUInt16LE(channels, 2);
  fmt.writeUInt32LE(rate, 4);
  fmt.writeUInt32LE(rate * block, 8);
  fmt.writeUInt16LE(block, 12);
  fmt.writeUInt16LE(bits, 14);
  fmt.writeUInt16LE(extensible ? 22 : 0, 16);
  if (extensible) {
    fmt.writeUInt16LE(bits, 18);
    fmt.writeUInt32LE(channels === 1 ? 4 : 3, 20);
    fmt.writeUInt16LE(tag, 24);
    Buffer.from([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]).copy(fmt, 26);
  }
  // An odd-sized chunk before fmt checks the padding rule.
  const junk = Buffer.concat([Buffer.from('JUNK'), Buffer.from([3, 0, 0, 0]), Buffer.from([1, 2, 3, 0])]);
  const chunk = (id: string, body: Uint8Array): Buffer => {
    const head = Buffer.alloc(8);
    head.write(id, 0, 'ascii');
    head.writeUInt32LE(body.length, 4);
    return Buffer.concat([head, body, Buffer.alloc(body.length & 1)]);
  };
  const body = Buffer.concat([Buffer.from('WAVE'), junk, chunk('fmt ', fmt), chunk('data', data)]);
  const riff = Buffer.alloc(8);
  riff.write('RIFF', 0, 'ascii');
  riff.writeUInt32LE(body.length, 4);
  return Buffer.concat([riff, body]);
}

/** G.711 μ-law of 16-bit samples (the reference encoder: bias 0x84, clip 32635). */
function mulaw(s16: Buffer): Buffer {
  const out = Buffer.alloc(s16.length / 2);
  for (let i = 0; i < out.length; i++) {
    let x = s16.readInt16LE(2 * i);
    const sign = x < 0 ? 0x80 : 0;
    if (x < 0) x = -x;
    x = Math.min(x, 32635) + 0x84;
    let exponent = 7;
    for (let mask = 0x4000; (x & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
    const mantissa = (x >> (exponent + 3)) & 0x0f;
    out[i] = ~(sign | (exponent << 4) | mantissa) & 0xff;
  }
  return out;
}

describe('speech-client stream', () => {
  for (const name of ['two_utterances_16k_mono_s16.wav', 'two_utterances_8k_mono_s16.wav', 'two_utterances_48k_mono_f32.wav']) {
    it(`${name}: two utterances on the segmented route, readable lines, exit 0`, async () => {
      const r = await cli(['stream', fixture(name), '--url', server.url('/api/v1/segmented')]);
      assert.equal(r.code, 0, r.stderr);
      const out = lines(r.stdout);
      assert.equal(out.filter((l) => /^\[ch0 +\d+\.\d\ds\] ● speaking$/.test(l)).length, 2, r.stdout);
      assert.equal(out.filter((l) => l.endsWith('○ silence')).length, 2, r.stdout);
      const finals = finalsOn(r.stdout, 0);
      assert.equal(finals.length, 2, r.stdout);
      assert.match(finals[0]!, /^\[ch0 \d+\.\d\d–\d+\.\d\ds\] final: \(count \d+\)$/);
      assert.match(r.stdout, /first message after \d+ ms/);
      assert.match(r.stdout, /^ch0 final text: 2 segments/m);
    });
  }

  it('stereo_44k1_f32.wav: one final per channel', async () => {
    const r = await cli(['stream', fixture('stereo_44k1_f32.wav'), '--url', server.url('/api/v1/segmented'), '--chunk-bytes', '4096']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(finalsOn(r.stdout, 0).length, 1, r.stdout);
    assert.equal(finalsOn(r.stdout, 1).length, 1, r.stdout);
  });

  it('--json: one event object per line with elapsed_ms; the summary on stderr', async () => {
    const r = await cli(['stream', fixture('two_utterances_16k_mono_s16.wav'), '--url', server.url('/api/v1/segmented'), '--json', '--speed', '20', '--interim']);
    assert.equal(r.code, 0, r.stderr);
    const events = lines(r.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(events.every((e) => typeof e['type'] === 'string' && typeof e['channel'] === 'number' && typeof e['elapsed_ms'] === 'number'));
    assert.deepEqual(events.filter((e) => e['type'] !== 'segment').map((e) => e['type']), ['active', 'inactive', 'active', 'inactive']);
    assert.equal(events.filter((e) => e['is_final'] === true).length, 2);
    assert.ok(events.some((e) => e['is_final'] === false), 'interims asked for and paced: some arrive');
    const elapsed = events.map((e) => e['elapsed_ms'] as number);
    assert.deepEqual(elapsed, [...elapsed].sort((a, b) => a - b), 'elapsed_ms grows');
    assert.ok(elapsed.at(-1)! >= 11.84 / 20 * 1000 * 0.9, 'paced at 20× real time');
    assert.match(r.stderr, /first message after/);
  });

  it('the simple route: one segment per 5 s window', async () => {
    const r = await cli(['stream', fixture('two_utterances_8k_mono_s16.wav'), '--url', server.url('/api/v1/simple')]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r.stdout).filter((l) => l.includes('] segment: ')).map((l) => l.slice(0, l.indexOf(']') + 1)),
      ['[ch0 0.00–5.00s]', '[ch0 5.00–10.00s]', '[ch0 10.00–11.84s]']);
  });

  it('raw PCM with --rate/--channels/--bits/--float', async () => {
    const s16 = readWav('two_utterances_16k_mono_s16.wav');
    const f32 = readWav('two_utterances_48k_mono_f32.wav');
    writeFileSync(path.join(tmp, 's16.raw'), s16.data);
    writeFileSync(path.join(tmp, 'f32.raw'), f32.data);
    const [a, b] = await Promise.all([
      cli(['stream', path.join(tmp, 's16.raw'), '--rate', '16000', '--url', server.url('/api/v1/segmented')]),
      cli(['stream', path.join(tmp, 'f32.raw'), '--rate', '48000', '--channels', '1', '--bits', '32', '--float', '--url', server.url('/api/v1/segmented')]),
    ]);
    for (const r of [a, b]) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(finalsOn(r.stdout, 0).length, 2, r.stdout);
    }
  });

  it('a μ-law WAV (format tag 7, 8 kHz) and the same as raw --encoding mulaw: the server accepts it', async () => {
    const wav = readWav('two_utterances_8k_mono_s16.wav');
    const ulaw = mulaw(wav.data);
    writeFileSync(path.join(tmp, 'ulaw.wav'), wavFile(7, 1, 8000, 8, ulaw));
    writeFileSync(path.join(tmp, 'ulaw.raw'), ulaw);
    const [w, raw] = await Promise.all([
      cli(['stream', path.join(tmp, 'ulaw.wav'), '--url', server.url('/api/v1/segmented'), '--json']),
      cli(['stream', path.join(tmp, 'ulaw.raw'), '--rate', '8000', '--encoding', 'mulaw', '--url', server.url('/api/v1/segmented'), '--json']),
    ]);
    for (const r of [w, raw]) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /μ-law, 8000 Hz, 1 channel/);
      const events = lines(r.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(events.filter((e) => e['type'] === 'error').length, 0, r.stdout);
      assert.equal(events.filter((e) => e['is_final'] === true).length, 2, r.stdout);
    }
  });

  it('a bad URL, a closed port, an HTTP refusal, a rejected format: non-zero, one line on stderr', async () => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const closedPort = (probe.address() as { port: number }).port;
    probe.close();
    await once(probe, 'close');
    writeFileSync(path.join(tmp, 'short.raw'), Buffer.alloc(3200));
    const file = fixture('two_utterances_8k_mono_s16.wav');
    const [badUrl, badScheme, closed, notFound, rejected, missing] = await Promise.all([
      cli(['stream', file, '--url', 'not a url']),
      cli(['stream', file, '--url', 'http://127.0.0.1:1/']),
      cli(['stream', file, '--url', `ws://127.0.0.1:${closedPort}/api/v1/segmented`]),
      cli(['stream', file, '--url', server.url('/api/v1/nope')]),
      cli(['stream', path.join(tmp, 'short.raw'), '--rate', '16000', '--channels', '9', '--url', server.url('/api/v1/segmented')]),
      cli(['stream', path.join(tmp, 'missing.wav')]),
    ]);
    const check = (r: CliRun, code: number, pattern: RegExp): void => {
      assert.equal(r.code, code, r.stderr);
      const errLines = lines(r.stderr).filter((l) => l.startsWith('speech-client: '));
      assert.equal(errLines.length, 1, r.stderr);
      assert.match(errLines[0]!, pattern);
    };
    check(badUrl, 2, /bad --url "not a url"/);
    check(badScheme, 2, /ws:\/\/ or wss:\/\//);
    check(closed, 1, /cannot connect to 127\.0\.0\.1:\d+: connection refused/);
    assert.equal(closed.stderr.trim().split('\n').length, 1, 'nothing else on stderr');
    check(notFound, 1, /refused the connection: HTTP 404/);
    check(rejected, 1, /rejected the stream: INVALID_FORMAT: format\.channels/);
    assert.doesNotMatch(rejected.stdout, /NOT_STARTED/, 'no audio sent into a stream that never started');
    check(missing, 2, /cannot read .*missing\.wav: no such file/);
  });

  it('--token: 401 without it, streams with it', async () => {
    const authed = await startServer({ MODEL: 'stub', AUTH_TOKEN: 'sesame' });
    try {
      const file = fixture('two_utterances_8k_mono_s16.wav');
      const [without, withToken, fromEnv] = await Promise.all([
        cli(['stream', file, '--url', authed.url('/api/v1/segmented')]),
        cli(['stream', file, '--url', authed.url('/api/v1/segmented'), '--token', 'sesame']),
        cli(['stream', file, '--url', authed.url('/api/v1/segmented')], { SPEECH_CLIENT_TOKEN: 'sesame' }),
      ]);
      assert.equal(without.code, 1);
      assert.match(without.stderr, /^speech-client: server at .* refused the connection: HTTP 401 Unauthorized \(a valid token is required\)\n$/);
      for (const r of [withToken, fromEnv]) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(finalsOn(r.stdout, 0).length, 2);
      }
    } finally {
      await authed.stop();
    }
  });
});

describe('speech-client load', () => {
  it('4 streams at 8× real time: completes, the last line is one JSON object with every figure', async () => {
    const r = await cli(['load', fixture('two_utterances_16k_mono_s16.wav'), fixture('two_utterances_8k_mono_s16.wav'),
      '--streams', '4', '--repeat', '1', '--speed', '8', '--ramp-up', '0.2', '--metrics-interval', '0.25', '--url', server.url('/api/v1/segmented')]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(lines(r.stdout).at(-1)!) as Record<string, unknown> & {
      time_to_first_event_ms: Record<string, number>; final_lag_ms: Record<string, number>; server: Record<string, number | null>;
    };
    assert.equal(report['streams_started'], 4);
    assert.equal(report['streams_completed'], 4);
    assert.equal(report['dropped_connections'], 0);
    assert.deepEqual(report['errors'], {});
    assert.deepEqual(report['failures'], {});
    assert.equal(report.time_to_first_event_ms['count'], 4);
    assert.equal(report.final_lag_ms['count'], 8, 'two finals per stream');
    for (const s of [report.time_to_first_event_ms, report.final_lag_ms]) {
      for (const p of ['p50', 'p95', 'p99']) assert.equal(typeof s[p], 'number', p);
      assert.ok(s['p50']! <= s['p95']! && s['p95']! <= s['p99']!);
    }
    assert.ok(report.final_lag_ms['p99']! < 2000, 'finals arrive soon after their audio');
    assert.ok((report.server['samples'] as number) >= 2);
    assert.equal(report.server['error'], null);
    assert.equal(typeof report.server['cpu_cores_mean'], 'number');
    assert.ok((report.server['rss_bytes_max'] as number) > 10e6);
    assert.ok(Math.abs((report['audio_seconds_sent'] as number) - 4 * 11.84) < 0.1);
    assert.match(r.stdout, /time to first event: p50 /);
  });

  it('--duration: real-time streams are cut at the deadline and finish cleanly', async () => {
    const r = await cli(['load', fixture('two_utterances_16k_mono_s16.wav'), '--streams', '2', '--duration', '1', '--url', server.url('/api/v1/simple')]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(lines(r.stdout).at(-1)!) as Record<string, number>;
    assert.equal(report['streams_completed'], 2);
    assert.ok(report['wall_s']! < 3, `stopped near the deadline (${report['wall_s']} s)`);
    assert.ok(report['audio_seconds_sent']! < 2 * 1.5, 'audio cut at about 1 s per stream');
  });

  it('unreachable server: every stream fails, the report still ends stdout, exit 1', async () => {
    const r = await cli(['load', fixture('two_utterances_8k_mono_s16.wav'), '--streams', '2', '--url', 'ws://127.0.0.1:1/api/v1/segmented']);
    assert.equal(r.code, 1);
    const report = JSON.parse(lines(r.stdout).at(-1)!) as Record<string, unknown>;
    assert.deepEqual(report['failures'], { CONNECT_REFUSED: 2 });
    assert.match(r.stderr, /speech-client: no stream completed; first failure: cannot connect/);
  });
});

describe('speech-client --help', () => {
  it('lists the commands and each command\'s options', async () => {
    const [top, stream, load, none] = await Promise.all([cli(['--help']), cli(['stream', '--help']), cli(['load', '-h']), cli([])]);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /speech-client stream <file>/);
    assert.equal(stream.code, 0);
    for (const flag of ['--url', '--real-time', '--interim', '--chunk-bytes', '--token', '--json', '--rate', '--encoding']) assert.ok(stream.stdout.includes(flag), flag);
    assert.equal(load.code, 0);
    for (const flag of ['--streams', '--ramp-up', '--duration', '--repeat', '--no-real-time', 'final_lag_ms']) assert.ok(load.stdout.includes(flag), flag);
    assert.equal(none.code, 2);
  });
});

describe('WAV header reader', () => {
  const pcm = Buffer.alloc(64);
  const cases: [string, Buffer, Record<string, unknown>][] = [
    ['PCM 8-bit', wavFile(1, 2, 22050, 8, pcm), { channels: 2, sample_rate: 22050, bit_depth: 8, is_float: false }],
    ['PCM 24-bit extensible', wavFile(1, 1, 96000, 24, pcm.subarray(0, 63), true), { channels: 1, sample_rate: 96000, bit_depth: 24, is_float: false }],
    ['float 64 extensible', wavFile(3, 2, 44100, 64, pcm, true), { channels: 2, sample_rate: 44100, bit_depth: 64, is_float: true }],
    ['μ-law', wavFile(7, 1, 8000, 8, pcm), { channels: 1, sample_rate: 8000, bit_depth: 8, is_float: false, encoding: 'mulaw' }],
    ['A-law extensible', wavFile(6, 1, 8000, 8, pcm, true), { channels: 1, sample_rate: 8000, bit_depth: 8, is_float: false, encoding: 'alaw' }],
  ];
  for (const [what, file, format] of cases) {
    it(what, () => {
      const audio = parseWav(file, what);
      assert.deepEqual(wireFormat(audio.format), format);
      assert.equal(audio.data.length, format['bit_depth'] === 24 ? 63 : 64);
    });
  }
  it('refuses compressed formats by name', () => {
    assert.throws(() => parseWav(wavFile(0x55, 1, 44100, 16, pcm), 'x.wav'), /format tag 85 \(MP3\) is not supported/);
  });
});
