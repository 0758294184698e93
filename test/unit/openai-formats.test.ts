// The OpenAI adapter's pure parts: multipart parsing, response formats, container sniffing, the
// WebM demuxer, and the model/language checks.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { sniff } from '../../src/openai/audio-input.js';
import { OpenAiError } from '../../src/openai/errors.js';
import { render, timestamp } from '../../src/openai/formats.js';
import { boundaryOf, parseMultipart } from '../../src/openai/multipart.js';
import { checkLanguage, checkModel } from '../../src/openai/transcriptions.js';
import { demuxWebmOpus } from '../../src/openai/webm.js';
import { FIXTURES } from '../helpers/wav.js';

function form(boundary: string, parts: string[]): Buffer {
  return Buffer.from(`preamble\r\n${parts.map((p) => `--${boundary}\r\n${p}\r\n`).join('')}--${boundary}--\r\n`, 'latin1');
}

function status(f: () => unknown): number | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof OpenAiError) return e.status;
    throw e;
  }
  return undefined;
}

describe('multipart/form-data', () => {
  it('finds the boundary, quoted or not, and refuses other types', () => {
    assert.equal(boundaryOf('multipart/form-data; boundary=abc'), 'abc');
    assert.equal(boundaryOf('Multipart/Form-Data; charset=utf-8; boundary="a b;c"'), 'a b;c');
    assert.equal(boundaryOf('application/json'), undefined);
    assert.equal(boundaryOf('multipart/form-data'), undefined);
  });

  it('parses fields (repeated ones in order) and files, whose bytes may hold CRLFs and dashes', () => {
    const payload = '\r\n--not-the-boundary\r\n\x00\xff';
    const body = form('XyZ', [
      'Content-Disposition: form-data; name="model"\r\n\r\nwhisper-1',
      'Content-Disposition: form-data; name="timestamp_granularities[]"\r\n\r\nsegment',
      'Content-Disposition: form-data; name="timestamp_granularities[]"\r\n\r\nword',
      `Content-Disposition: form-data; name="file"; filename="a \\"b\\".wav"\r\nContent-Type: audio/wav\r\n\r\n${payload}`,
    ]);
    const parsed = parseMultipart(body, 'XyZ');
    assert.deepEqual(parsed.fields.get('model'), ['whisper-1']);
    assert.deepEqual(parsed.fields.get('timestamp_granularities[]'), ['segment', 'word']);
    const file = parsed.files.get('file')!;
    assert.equal(file.filename, 'a "b".wav');
    assert.equal(file.contentType, 'audio/wav');
    assert.deepEqual(file.data, Buffer.from(payload, 'latin1'));
  });

  it('refuses a truncated body, a part without a name, and a body without the boundary (400)', () => {
    const whole = form('b', ['Content-Disposition: form-data; name="file"; filename="x"\r\n\r\nabc']);
    assert.equal(status(() => parseMultipart(whole.subarray(0, whole.length - 10), 'b')), 400);
    assert.equal(status(() => parseMultipart(form('b', ['Content-Disposition: form-data\r\n\r\nabc']), 'b')), 400);
    assert.equal(status(() => parseMultipart(Buffer.from('hello'), 'b')), 400);
  });
});

describe('response formats', () => {
  const transcript = { duration: 3725.5, segments: [{ start: 0.5, end: 2.25, text: ' Hello there. ' }, { start: 3, end: 3.5, text: '' }, { start: 3723.0004, end: 3725.1, text: 'Bye.' }] };

  it('timestamps: HH:MM:SS,mmm and HH:MM:SS.mmm', () => {
    assert.equal(timestamp(0, ','), '00:00:00,000');
    assert.equal(timestamp(3723.0004, '.'), '01:02:03.000');
    assert.equal(timestamp(59.9996, ','), '00:01:00,000');
  });

  it('json, text, verbose_json, srt and vtt; empty segments left out', () => {
    assert.deepEqual(JSON.parse(render(transcript, 'json').body), { text: 'Hello there. Bye.', usage: { type: 'duration', seconds: 3726 } });
    assert.equal(render(transcript, 'text').body, 'Hello there. Bye.\n');
    const verbose = JSON.parse(render(transcript, 'verbose_json').body) as { segments: { id: number; start: number; end: number; text: string }[]; duration: number };
    assert.deepEqual(verbose.segments.map((s) => [s.id, s.start, s.end, s.text]), [[0, 0.5, 2.25, 'Hello there.'], [1, 3723, 3725.1, 'Bye.']]);
    assert.equal(verbose.duration, 3725.5);
    assert.equal(render(transcript, 'srt').body, '1\n00:00:00,500 --> 00:00:02,250\nHello there.\n\n2\n01:02:03,000 --> 01:02:05,100\nBye.\n');
    assert.equal(render(transcript, 'vtt').body, 'WEBVTT\n\n00:00:00.500 --> 00:00:02.250\nHello there.\n\n01:02:03.000 --> 01:02:05.100\nBye.\n');
    assert.equal(render({ duration: 1, segments: [] }, 'srt').body, '');
  });
});

describe('containers', () => {
  it('are told apart by their first bytes', () => {
    const c = (name: string): Buffer => readFileSync(path.join(FIXTURES, 'compressed', name));
    assert.equal(sniff(readFileSync(path.join(FIXTURES, 'two_utterances_16k_mono_s16.wav'))), 'wav');
    assert.equal(sniff(c('two_prompts.flac')), 'flac');
    assert.equal(sniff(c('two_prompts_44k1_stereo.mp3')), 'mp3');
    assert.equal(sniff(c('two_prompts.opus')), 'ogg-opus');
    assert.equal(sniff(c('two_prompts.ogg')), 'ogg-vorbis');
    assert.equal(sniff(c('two_prompts.webm')), 'webm');
    assert.equal(sniff(Buffer.from([0xff, 0xfb, 0x90, 0x00])), 'mp3', 'a bare MPEG frame');
    assert.equal(sniff(Buffer.from('just text')), undefined);
  });

  it('WebM: the Opus track\'s head and every frame (20 ms each)', () => {
    const { head, frames } = demuxWebmOpus(readFileSync(path.join(FIXTURES, 'compressed', 'two_prompts.webm')));
    assert.equal(head.channels, 1);
    assert.ok(head.preSkip > 0);
    assert.ok(Math.abs(frames.length * 0.02 - 12.2) < 0.1, `${frames.length} frames`);
    assert.equal(status(() => demuxWebmOpus(Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x80]))), 415, 'no Opus track');
  });
});

describe('model and language', () => {
  const config = loadConfig({ MODEL: 'moonshine-tiny' }, []);

  it('the loaded model and OpenAI\'s names for it; anything else is a 400', () => {
    for (const m of ['moonshine-tiny', 'whisper-1', 'gpt-4o-transcribe', 'gpt-4o-mini-transcribe']) assert.equal(status(() => checkModel(config, m)), undefined);
    assert.equal(status(() => checkModel(config, 'stub')), 400);
    assert.equal(status(() => checkModel(config, undefined)), 400);
  });

  it('English only', () => {
    for (const l of [undefined, '', 'en', 'EN', 'en-US', 'en_GB', 'english']) assert.equal(status(() => checkLanguage(l)), undefined, String(l));
    for (const l of ['fr', 'de-DE', 'eng', 'enx']) assert.equal(status(() => checkLanguage(l)), 400, l);
  });
});
