// POST /v1/audio/transcriptions and GET /v1/models, as OpenAI's API serves them, so the official
// SDKs and the apps built on them work with `baseURL` pointed here. The body is buffered up to
// MAX_UPLOAD_BYTES (refused from Content-Length before a byte is read, else as soon as it goes
// over), parsed as multipart/form-data on the event loop (a scan for boundaries), and the file is
// decoded off it: WAV natively on the threadpool, compressed formats in a worker thread.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { RouteTable } from '../listener.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Authenticator } from '../auth.js';
import { spawn, type Task } from '../tasks.js';
import { openAudio } from './audio-input.js';
import { OpenAiError, asOpenAiError, sendError, statusLine } from './errors.js';
import { refuseSampleRate } from '../sample-rate-admission.js';
import { transcribe, type PipelineDeps } from './feed.js';
import { RESPONSE_FORMATS, joinText, render, type ResponseFormat, type Segment } from './formats.js';
import { boundaryOf, parseMultipart, type Form } from './multipart.js';

const TRANSCRIPTIONS_PATH = '/v1/audio/transcriptions';
const MODELS_PATH = '/v1/models';

/** Model names an OpenAI client may send: they all mean the model this server loaded. */
const MODEL_ALIASES = ['whisper-1', 'gpt-4o-transcribe', 'gpt-4o-mini-transcribe'] as const;

interface HttpDeps {
  config: Config;
  log: Logger;
  auth: Authenticator;
  routing: Task;
  /** The pipeline, once the models are loaded. */
  pipeline(): PipelineDeps | undefined;
  draining(): boolean;
  /** Counts requests in flight, so a drain can wait for them. */
  track(request: Promise<void>): void;
}

export function modelIds(config: Config): string[] {
  return [config.model, ...MODEL_ALIASES];
}

/** The request's `model`: the loaded model's name or an alias of it; anything else is a 400. */
export function checkModel(config: Config, model: string | undefined): void {
  if (model === undefined || model === '') throw new OpenAiError(400, 'you must provide a model parameter', 'model', 'missing_required_parameter');
  if (!modelIds(config).includes(model)) {
    throw new OpenAiError(400, `the model ${JSON.stringify(model)} does not exist here; use ${modelIds(config).map((m) => JSON.stringify(m)).join(', ')}`, 'model', 'model_not_found');
  }
}

/** English only: absent, `en`, `en-US`, ... or `english`. */
export function checkLanguage(language: string | undefined): void {
  if (language === undefined || language === '') return;
  if (/^en([-_][a-z0-9]+)*$/i.test(language) || language.toLowerCase() === 'english') return;
  throw new OpenAiError(400, `language ${JSON.stringify(language)} is not supported: this server's model transcribes English only (language "en")`, 'language', 'unsupported_language');
}

interface Request {
  data: Buffer;
  format: ResponseFormat;
  stream: boolean;
}

function one(form: Form, name: string): string | undefined {
  const values = form.fields.get(name);
  if (values && values.length > 1) throw new OpenAiError(400, `the field ${name} is given ${values.length} times`, name, 'invalid_value');
  return values?.[0]?.trim();
}

function parseRequest(config: Config, form: Form): Request {
  const file = form.files.get('file');
  if (!file) throw new OpenAiError(400, 'you must provide a file (the form field "file", sent as a file)', 'file', 'missing_required_parameter');
  if (file.data.length === 0) throw new OpenAiError(400, 'the file is empty', 'file', 'invalid_value');
  checkModel(config, one(form, 'model'));
  checkLanguage(one(form, 'language'));
  // `prompt`, `temperature`, `include[]` and `chunking_strategy` are accepted and ignored: the
  // model takes no prompt, decodes greedily, has no logprobs, and the VAD always cuts the audio.
  const format = (one(form, 'response_format') ?? 'json') as ResponseFormat;
  if (!RESPONSE_FORMATS.includes(format)) {
    throw new OpenAiError(400, `response_format must be one of ${RESPONSE_FORMATS.join(', ')}; got ${JSON.stringify(format)}`, 'response_format', 'invalid_value');
  }
  const streamField = one(form, 'stream') ?? 'false';
  if (streamField !== 'true' && streamField !== 'false') throw new OpenAiError(400, `stream must be true or false; got ${JSON.stringify(streamField)}`, 'stream', 'invalid_value');
  const stream = streamField === 'true';
  if (stream && format !== 'json' && format !== 'text') {
    throw new OpenAiError(400, `stream=true sends transcript.text.delta events: response_format must be json or text, not ${format}`, 'response_format', 'invalid_value');
  }
  const granularities = [...(form.fields.get('timestamp_granularities[]') ?? []), ...(form.fields.get('timestamp_granularities') ?? [])];
  for (const g of granularities) {
    if (g === 'segment') continue;
    throw new OpenAiError(400, `timestamp_granularities ${JSON.stringify(g)} is not supported: only "segment" (the model gives no word timings)`, 'timestamp_granularities', 'invalid_value');
  }
  return { data: file.data, format, stream };
}

export function registerTranscriptions(app: RouteTable, deps: HttpDeps): void {
  const { config, auth, routing } = deps;

  const refuse = (req: HttpRequest): OpenAiError | undefined => {
    if (!auth.allows(req)) return new OpenAiError(401, 'a valid API key is required: Authorization: Bearer <AUTH_TOKEN>', null, 'invalid_api_key');
    if (deps.draining()) return new OpenAiError(503, 'the server is shutting down', null, 'draining');
    if (!deps.pipeline()) return new OpenAiError(503, 'the server is still loading its models', null, 'not_ready');
    return undefined;
  };

  app.get(MODELS_PATH, (res, req) => routing.poll(() => {
    if (!auth.allows(req)) {
      sendError(res, new OpenAiError(401, 'a valid API key is required: Authorization: Bearer <AUTH_TOKEN>', null, 'invalid_api_key'));
      return;
    }
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json')
      .end(JSON.stringify({ object: 'list', data: modelIds(config).map(modelObject) }));
  }));

  app.get(`${MODELS_PATH}/:id`, (res, req) => routing.poll(() => {
    if (!auth.allows(req)) {
      sendError(res, new OpenAiError(401, 'a valid API key is required: Authorization: Bearer <AUTH_TOKEN>', null, 'invalid_api_key'));
      return;
    }
    const id = decodeURIComponent(req.getParameter(0) ?? '');
    if (!modelIds(config).includes(id)) {
      sendError(res, new OpenAiError(404, `the model ${JSON.stringify(id)} does not exist`, 'model', 'model_not_found'));
      return;
    }
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end(JSON.stringify(modelObject(id)));
  }));

  app.post(TRANSCRIPTIONS_PATH, (res, req) => routing.poll(() => {
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    const early = refuse(req);
    const contentType = req.getHeader('content-type');
    const declared = req.getHeader('content-length');
    const refusal = early
      ?? (declared !== '' && Number(declared) > config.maxUploadBytes
        ? new OpenAiError(413, `the request body is ${declared} bytes, over the limit of ${config.maxUploadBytes} (MAX_UPLOAD_BYTES)`, 'file', 'file_too_large')
        : undefined)
      ?? (boundaryOf(contentType) === undefined
        ? new OpenAiError(400, `the request must be multipart/form-data with a boundary; got Content-Type ${JSON.stringify(contentType)}`, null, 'invalid_form')
        : undefined);
    if (refusal) {
      refuseAfterBody(res, refusal, declared, config.maxUploadBytes, () => aborted);
      return;
    }
    const boundary = boundaryOf(contentType)!;
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    let tooLarge: OpenAiError | undefined;
    res.onData((chunk, isLast) => {
      if (done || aborted) return;
      size += chunk.byteLength;
      if (tooLarge || size > config.maxUploadBytes) {
        // Over the limit: what was kept is dropped, the rest is read and dropped (see
        // refuseAfterBody), and the 413 goes out at its end.
        chunks.length = 0;
        tooLarge ??= new OpenAiError(413, `the request body is over the limit of ${config.maxUploadBytes} bytes (MAX_UPLOAD_BYTES)`, 'file', 'file_too_large');
        if (isLast || size > 2 * config.maxUploadBytes) {
          done = true;
          answerNow(res, tooLarge, !isLast);
        }
        return;
      }
      // The ArrayBuffer is only valid during this callback.
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (!isLast) return;
      done = true;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      chunks.length = 0;
      const request = handle(deps, res, body, boundary, () => aborted);
      deps.track(request);
    });
  }));
}

/**
 * Answers `error` once the rest of the body has been read and dropped (nothing is kept). HTTP
 * clients such as the SDK's (undici) write the whole body before they read an answer, so a
 * connection closed under them reads as a network error (EPIPE), not as this refusal. A body
 * declared or grown over twice MAX_UPLOAD_BYTES is not worth receiving: the answer is sent and
 * the connection closed at once.
 */
function refuseAfterBody(res: HttpResponse, error: OpenAiError, declared: string, limit: number, aborted: () => boolean, received = 0): void {
  const answer = (close: boolean): void => answerNow(res, error, close);
  if (declared === '0' || (declared !== '' && Number(declared) > 2 * limit)) {
    answer(declared !== '0');
    return;
  }
  let dropped = received;
  let answered = false;
  res.onData((chunk, isLast) => {
    if (answered || aborted()) return;
    dropped += chunk.byteLength;
    if (dropped > 2 * limit || isLast) {
      answered = true;
      res.cork(() => answer(!isLast));
    }
  });
}

function answerNow(res: HttpResponse, error: OpenAiError, close: boolean): void {
  res.writeStatus(statusLine(error.status)).writeHeader('Content-Type', 'application/json');
  if (error.status === 401) res.writeHeader('WWW-Authenticate', 'Bearer');
  res.end(JSON.stringify(error.toJSON()), close);
}

function modelObject(id: string): Record<string, unknown> {
  return { id, object: 'model', created: 0, owned_by: 'speech-server' };
}

async function handle(deps: HttpDeps, res: HttpResponse, body: Buffer, boundary: string, aborted: () => boolean): Promise<void> {
  const { config } = deps;
  let streaming = false;
  const write = (f: () => void): void => {
    if (!aborted()) res.cork(f);
  };
  return new Promise<void>((resolve) => {
    spawn('api_routing', async () => {
      try {
        const request = parseRequest(config, parseMultipart(body, boundary));
        const pipeline = deps.pipeline();
        if (!pipeline) throw new OpenAiError(503, 'the server is still loading its models', null, 'not_ready');
        const source = await openAudio(request.data);
        if (source.seconds !== undefined && source.seconds > config.maxUploadSeconds) {
          source.close();
          throw new OpenAiError(400, `the audio is ${source.seconds.toFixed(1)} s long, over the limit of ${config.maxUploadSeconds} s (MAX_UPLOAD_SECONDS)`, 'file', 'audio_too_long');
        }
        const rateRefused = refuseSampleRate(source.format.sampleRate);
        if (rateRefused) {
          source.close();
          throw new OpenAiError(429, `the file's sample rate, ${source.format.sampleRate} Hz: ${rateRefused}`, 'file', 'sample_rate_busy');
        }
        let onSegment: ((s: Segment) => void) | undefined;
        if (request.stream) {
          streaming = true;
          write(() => {
            res.writeStatus('200 OK').writeHeader('Content-Type', 'text/event-stream').writeHeader('Cache-Control', 'no-cache');
          });
          let first = true;
          onSegment = (s) => {
            // Deltas are append-only: each after the first starts with the space that joins it.
            const delta = `${first ? '' : ' '}${s.text.trim()}`;
            first = false;
            write(() => { res.write(sse({ type: 'transcript.text.delta', delta })); });
          };
        }
        const transcript = await transcribe(pipeline, source, { aborted, onSegment, route: 'transcriptions' });
        if (request.stream) {
          write(() => { res.end(sse({ type: 'transcript.text.done', text: joinText(transcript.segments) })); });
          return;
        }
        const out = render(transcript, request.format);
        write(() => { res.writeStatus('200 OK').writeHeader('Content-Type', out.contentType).end(out.body); });
      } catch (e) {
        const error = asOpenAiError(e);
        if (error.status === 500) deps.log.error('transcription failed', { error: error.message });
        if (aborted()) return;
        if (streaming) write(() => { res.end(sse(error.toJSON())); });
        else write(() => sendError(res, error));
      } finally {
        resolve();
      }
    }, () => resolve());
  });
}

function sse(event: unknown): string {
  return `data: ${JSON.stringify(event)}\n\n`;
}
