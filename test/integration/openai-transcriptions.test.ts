// POST /v1/audio/transcriptions and GET /v1/models through the official `openai` SDK, pointed at a
// real server (Moonshine tiny) with `baseURL`: every response format, streaming, each container
// format, the errors an app meets, a long upload fed faster than real time, and a WER bound on the
// real-speech fixture.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { REAL_SPEECH, prompts, scoreWer } from '../helpers/real-speech.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { FIXTURES, wavFile } from '../helpers/wav.js';
import { UTTERANCE_A, UTTERANCE_B } from '../helpers/wer.js';

// Measured here (2026-12-01): the real-speech fixture uploaded as WAV, 8 errors in 156 words (0.051).
const REAL_SPEECH_WER_BOUND = 0.1;
// The espeak fixture: "the lazy dog" comes out as "the rainy dog" (1-2 errors in 24 words) in
// every container; lossy codecs may cost a word more.
const FIXTURE_WER_BOUND = 0.2;
// Measured: 0 or 1 error ("pound" heard as "pan") in 25 words whatever the codec.
const COMPRESSED_WER_BOUND = 0.1;
const TOKEN = 'sk-test-token';
const TWO = path.join(FIXTURES, 'two_utterances_16k_mono_s16.wav');
const TWO_REFERENCE = `${UTTERANCE_A} ${UTTERANCE_B}`;

let server: TestServer;
let client: OpenAI;
before(async () => {
  server = await startServer({ MODEL: 'moonshine-tiny', AUTH_TOKEN: TOKEN, MAX_UPLOAD_BYTES: String(16 << 20), MAX_UPLOAD_SECONDS: '400', WORKERS: '1' });
  client = new OpenAI({ apiKey: TOKEN, baseURL: server.http('/v1'), maxRetries: 0 });
});
after(async () => { await server.stop(); });

const file = async (p: string, name = path.basename(p)) => toFile(readFileSync(p), name);

async function apiError(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof OpenAI.APIError) return e;
    throw e;
  }
  throw new Error('the request succeeded');
}

describe('POST /v1/audio/transcriptions (openai SDK)', () => {
  it(`the real-speech fixture (75 s, 12 prompts) transcribes within WER ${REAL_SPEECH_WER_BOUND}`, async (t: TestContext) => {
    const out = await client.audio.transcriptions.create({ file: await file(REAL_SPEECH), model: 'whisper-1' });
    const reference = prompts().map((p) => p.text).join(' ');
    const score = scoreWer(reference, out.text);
    t.diagnostic(`real speech WER ${score.wer.toFixed(3)} (${score.errors}/${score.words}): "${out.text}"`);
    assert.ok(score.wer <= REAL_SPEECH_WER_BOUND, `WER ${score.wer.toFixed(3)} over ${REAL_SPEECH_WER_BOUND}`);
  });

  it('json (default): {text, usage}; the server\'s own model name works too', async () => {
    const out = await client.audio.transcriptions.create({ file: await file(TWO), model: 'moonshine-tiny', language: 'en', prompt: 'ignored' });
    assert.ok(scoreWer(TWO_REFERENCE, out.text).wer <= FIXTURE_WER_BOUND, out.text);
    assert.deepEqual(out.usage, { type: 'duration', seconds: 12 }, 'the fixture is 11.84 s');
  });

  it('text: the transcript as plain text', async () => {
    const out: string = await client.audio.transcriptions.create({ file: await file(TWO), model: 'whisper-1', response_format: 'text' });
    assert.equal(typeof out, 'string');
    assert.ok(scoreWer(TWO_REFERENCE, out).wer <= FIXTURE_WER_BOUND, out);
  });

  it('verbose_json: one segment per utterance with id, start, end and text, inside the fixture\'s windows', async () => {
    const out = await client.audio.transcriptions.create({ file: await file(TWO), model: 'whisper-1', response_format: 'verbose_json', timestamp_granularities: ['segment'] });
    assert.equal(out.language, 'english');
    assert.ok(Math.abs(out.duration - 11.84) < 0.01, `duration ${out.duration}`);
    const segments = out.segments ?? [];
    assert.deepEqual(segments.map((s) => s.id), [0, 1]);
    // The fixtures' README: utterance A inside 0.5-4.35 s, B inside 5.85-10.84 s (plus padding).
    assert.ok(segments[0]!.start < 0.6 && segments[0]!.end > 3.8 && segments[0]!.end <= 5.85, JSON.stringify(segments[0]));
    assert.ok(segments[1]!.start >= segments[0]!.end && segments[1]!.start < 6 && segments[1]!.end > 10, JSON.stringify(segments[1]));
    assert.ok(scoreWer(UTTERANCE_A, segments[0]!.text).wer <= 0.25, segments[0]!.text);
    assert.ok(scoreWer(UTTERANCE_B, segments[1]!.text).wer <= 0.25, segments[1]!.text);
    assert.equal(out.text, segments.map((s) => s.text).join(' '));
  });

  it('srt and vtt: numbered cues / a WEBVTT header, with HH:MM:SS timestamps', async () => {
    const srt: string = await client.audio.transcriptions.create({ file: await file(TWO), model: 'whisper-1', response_format: 'srt' });
    assert.match(srt, /^1\n00:00:00,\d{3} --> 00:00:0\d,\d{3}\n.+\n\n2\n00:00:0\d,\d{3} --> 00:00:1\d,\d{3}\n.+\n$/);
    const vtt: string = await client.audio.transcriptions.create({ file: await file(TWO), model: 'whisper-1', response_format: 'vtt' });
    assert.match(vtt, /^WEBVTT\n\n00:00:00\.\d{3} --> 00:00:0\d\.\d{3}\n.+\n\n00:00:0\d\.\d{3} --> 00:00:1\d\.\d{3}\n.+\n$/);
  });

  it('stream: true: transcript.text.delta events, append-only, then transcript.text.done', async () => {
    const stream = await client.audio.transcriptions.create({ file: await file(REAL_SPEECH), model: 'gpt-4o-transcribe', stream: true });
    const events: { type: string; delta?: string; text?: string }[] = [];
    for await (const event of stream) events.push(event);
    const deltas = events.filter((e) => e.type === 'transcript.text.delta');
    assert.ok(deltas.length >= 10, `one delta per utterance: ${deltas.length}`);
    assert.equal(events.at(-1)!.type, 'transcript.text.done');
    assert.equal(events.filter((e) => e.type === 'transcript.text.done').length, 1);
    assert.equal(deltas.map((e) => e.delta).join(''), events.at(-1)!.text);
    assert.ok(scoreWer(prompts().map((p) => p.text).join(' '), events.at(-1)!.text!).wer <= REAL_SPEECH_WER_BOUND);
  });

  // The first two real-speech prompts, encoded by real encoders (test/fixtures/compressed/README.md).
  // The espeak fixture is too fragile for lossy codecs: a little codec noise turns this small
  // model's "brown fox jumped over" into "brown-fark stump told her", even decoded by ffmpeg.
  for (const [name, what] of [
    ['two_prompts.flac', 'FLAC'],
    ['two_prompts_44k1_stereo.mp3', 'MP3 (44.1 kHz stereo, downmixed)'],
    ['two_prompts.opus', 'Ogg Opus'],
    ['two_prompts.ogg', 'Ogg Vorbis'],
    ['two_prompts.webm', 'WebM Opus'],
  ] as const) {
    it(`${what} is decoded (in a worker) and transcribed`, async () => {
      const out = await client.audio.transcriptions.create({ file: await file(path.join(FIXTURES, 'compressed', name)), model: 'whisper-1', response_format: 'verbose_json' });
      const reference = prompts().slice(0, 2).map((p) => p.text).join(' ');
      assert.ok(scoreWer(reference, out.text).wer <= COMPRESSED_WER_BOUND, `${name}: ${out.text}`);
      assert.equal(out.segments?.length, 2, `${name}: two utterances`);
      assert.ok(Math.abs(out.duration - 12.2) < 0.05, `${name}: duration ${out.duration}`);
    });
  }

  it('a stereo WAV is one recording: mixed to mono (in the worker), not transcribed twice', async () => {
    const mono = readFileSync(REAL_SPEECH);
    const at = mono.indexOf('data') + 8;
    const samples = mono.subarray(at, at + Math.round(12.2 * 16_000) * 2);
    const n = samples.length / 2;
    const stereo = Buffer.alloc(44 + n * 4);
    stereo.write('RIFF', 0);
    stereo.writeUInt32LE(36 + n * 4, 4);
    stereo.write('WAVEfmt ', 8);
    stereo.writeUInt32LE(16, 16);
    stereo.writeUInt16LE(1, 20); // PCM
    stereo.writeUInt16LE(2, 22);
    stereo.writeUInt32LE(16_000, 24);
    stereo.writeUInt32LE(64_000, 28);
    stereo.writeUInt16LE(4, 32);
    stereo.writeUInt16LE(16, 34);
    stereo.write('data', 36);
    stereo.writeUInt32LE(n * 4, 40);
    for (let i = 0; i < n; i++) {
      const v = samples.readInt16LE(i * 2);
      stereo.writeInt16LE(v, 44 + i * 4);
      stereo.writeInt16LE(v, 46 + i * 4);
    }
    const out = await client.audio.transcriptions.create({ file: await toFile(stereo, 'stereo.wav'), model: 'whisper-1', response_format: 'verbose_json' });
    assert.equal(out.segments?.length, 2, 'two utterances, once each');
    assert.ok(Math.abs(out.duration - 12.2) < 0.01, `duration ${out.duration}`);
    assert.ok(scoreWer(prompts().slice(0, 2).map((p) => p.text).join(' '), out.text).wer <= COMPRESSED_WER_BOUND, out.text);
  });

  it('a 300 s upload (the real-speech fixture 4 times) sent at once is fed through the VAD at full speed, not cut off by MAX_BACKLOG_SECONDS', async (t: TestContext) => {
    const wav = readFileSync(REAL_SPEECH);
    const dataAt = wav.indexOf('data') + 8;
    const data = wav.subarray(dataAt);
    const long = Buffer.concat([wav.subarray(0, dataAt), data, data, data, data]);
    long.writeUInt32LE(long.length - 8, 4);
    long.writeUInt32LE(data.length * 4, dataAt - 4);
    const started = performance.now();
    const out = await client.audio.transcriptions.create({ file: await toFile(long, 'long.wav'), model: 'whisper-1', response_format: 'verbose_json' });
    const seconds = (performance.now() - started) / 1000;
    t.diagnostic(`${out.duration.toFixed(1)} s of audio in ${seconds.toFixed(1)} s (${(out.duration / seconds).toFixed(1)}x real time), ${out.segments?.length} segments`);
    assert.ok(Math.abs(out.duration - 300.8) < 1, `duration ${out.duration}`);
    assert.equal(out.segments?.length, 48, 'twelve utterances, four times');
    assert.ok(seconds < out.duration / 3, 'faster than real time');
    const reference = Array.from({ length: 4 }, () => prompts().map((p) => p.text).join(' ')).join(' ');
    assert.ok(scoreWer(reference, out.text).wer <= REAL_SPEECH_WER_BOUND);
  });
});

describe('errors in OpenAI\'s shape', () => {
  it('an unknown model is a 400 model_not_found', async () => {
    const e = await apiError(client.audio.transcriptions.create({ file: await file(TWO), model: 'whisper-large' }));
    assert.equal(e.status, 400);
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.code, 'model_not_found');
    assert.equal(e.param, 'model');
    assert.equal(e.type, 'invalid_request_error');
  });

  it('a language other than English is a 400 naming the field', async () => {
    const e = await apiError(client.audio.transcriptions.create({ file: await file(TWO), model: 'whisper-1', language: 'fr' }));
    assert.equal(e.status, 400);
    assert.equal(e.param, 'language');
    assert.match(e.message, /English only/);
  });

  it('a wrong token is a 401', async () => {
    const wrong = new OpenAI({ apiKey: 'nope', baseURL: server.http('/v1'), maxRetries: 0 });
    const e = await apiError(wrong.audio.transcriptions.create({ file: await file(TWO), model: 'whisper-1' }));
    assert.equal(e.status, 401);
    assert.ok(e instanceof OpenAI.AuthenticationError);
    assert.equal((await apiError(wrong.models.list())).status, 401);
  });

  it('a file that is not audio is a 415; a corrupt one a 400', async () => {
    const e = await apiError(client.audio.transcriptions.create({ file: await toFile(Buffer.from('hello, not audio'), 'notes.wav'), model: 'whisper-1' }));
    assert.equal(e.status, 415);
    assert.equal(e.code, 'unsupported_format');
    const flac = readFileSync(path.join(FIXTURES, 'compressed', 'two_prompts.flac'));
    const broken = Buffer.concat([flac.subarray(0, 4), Buffer.alloc(2000, 0x5a)]);
    const c = await apiError(client.audio.transcriptions.create({ file: await toFile(broken, 'broken.flac'), model: 'whisper-1' }));
    assert.equal(c.status, 400);
    assert.equal(c.code, 'invalid_audio');
  });

  it('a body over MAX_UPLOAD_BYTES is a 413, refused from its Content-Length', async () => {
    const e = await apiError(client.audio.transcriptions.create({ file: await toFile(Buffer.alloc(17 << 20), 'big.wav'), model: 'whisper-1' }));
    assert.equal(e.status, 413);
    assert.equal(e.code, 'file_too_large');
  });

  it('a body over MAX_UPLOAD_BYTES without a Content-Length (chunked) is a 413 once it goes over', async () => {
    let sent = 0;
    const chunks = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 20) controller.enqueue(new Uint8Array(1 << 20));
        else controller.close();
      },
    });
    const response = await fetch(server.http('/v1/audio/transcriptions'), {
      method: 'POST', body: chunks, duplex: 'half',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'multipart/form-data; boundary=x' },
    });
    // 20 MiB against a 16 MiB limit: read and dropped to its end, then answered.
    assert.equal(response.status, 413);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'file_too_large');
  });

  it('uploads at new odd sample rates spend the process-wide filter-design budget: beyond it a 429 sample_rate_busy', async () => {
    // Half a second of faint noise at each of 8 distinct uncommon rates, all at once: the default
    // budget designs 4 new rates per second (MAX_RATE_DESIGNS_PER_SECOND).
    const uploads = Array.from({ length: 8 }, async (_, k) => {
      const rate = 22_051 + k * 7;
      const pcm = Buffer.alloc(Math.round(rate / 2) * 2);
      for (let i = 0; i < pcm.length; i += 2) pcm.writeInt16LE(Math.round((Math.random() - 0.5) * 20), i);
      const file = await toFile(wavFile(pcm, rate), `odd-${rate}.wav`);
      return client.audio.transcriptions.create({ file, model: 'whisper-1' }).then(() => null, (e: unknown) => e);
    });
    const outcomes = await Promise.all(uploads);
    const refused = outcomes.filter((e) => e instanceof OpenAI.APIError && e.status === 429 && e.code === 'sample_rate_busy');
    assert.ok(refused.length >= 1 && refused.length <= 4, `${refused.length} of 8 refused`);
    assert.equal(outcomes.filter((e) => e !== null).length, refused.length, 'the rest are transcribed');
    assert.match((refused[0] as InstanceType<typeof OpenAI.APIError>).message, /MAX_RATE_DESIGNS_PER_SECOND/);
  });

  it('audio over MAX_UPLOAD_SECONDS is a 400 audio_too_long', async () => {
    const header = readFileSync(TWO).subarray(0, 44);
    const seconds = 401;
    const wav = Buffer.concat([header, Buffer.alloc(seconds * 32_000)]);
    wav.writeUInt32LE(wav.length - 8, 4);
    wav.writeUInt32LE(seconds * 32_000, 40);
    const e = await apiError(client.audio.transcriptions.create({ file: await toFile(wav, 'long.wav'), model: 'whisper-1' }));
    assert.equal(e.status, 400);
    assert.equal(e.code, 'audio_too_long');
  });

  it('a form without a file, a bad response_format, word timestamps, and a request that is not a form are 400s', async () => {
    const noFile = await fetch(server.http('/v1/audio/transcriptions'), {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: (() => { const f = new FormData(); f.set('model', 'whisper-1'); return f; })(),
    });
    assert.equal(noFile.status, 400);
    assert.equal(((await noFile.json()) as { error: { param: string } }).error.param, 'file');
    const format = await apiError(client.audio.transcriptions.create({ file: await file(TWO), model: 'whisper-1', response_format: 'xml' as 'json' }));
    assert.equal(format.param, 'response_format');
    const words = await apiError(client.audio.transcriptions.create({ file: await file(TWO), model: 'whisper-1', response_format: 'verbose_json', timestamp_granularities: ['word'] }));
    assert.equal(words.param, 'timestamp_granularities');
    const json = await fetch(server.http('/v1/audio/transcriptions'), { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(json.status, 400);
    const body = (await json.json()) as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  });
});

describe('GET /v1/models (openai SDK)', () => {
  it('lists the loaded model and the OpenAI names that alias it', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['moonshine-tiny', 'whisper-1', 'gpt-4o-transcribe', 'gpt-4o-mini-transcribe']);
    assert.equal((await client.models.retrieve('whisper-1')).id, 'whisper-1');
    assert.equal((await apiError(client.models.retrieve('dall-e-3'))).status, 404);
  });
});
