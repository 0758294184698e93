// The wire protocol (compatible with the brief's template): client requests, server events,
// and the error codes every `error` event and metric uses.
import { formatProblem } from './audio-format.js';
import type { NativeFormat } from './native/binding.js';

/** Why a request or stream failed; `code` on error events, `kind` on errors_total. */
export const ERROR_CODES = {
  BAD_JSON: 'a text frame that is not valid JSON',
  BAD_MESSAGE: 'JSON that is not a valid request (not an object, missing or mistyped fields)',
  UNKNOWN_REQUEST: 'a "request" other than start or stop',
  INVALID_FORMAT: 'a start whose format cannot be decoded',
  NOT_STARTED: 'audio or stop before start',
  SAMPLE_RATE_BUSY: 'a start at an uncommon sample_rate while the process designs too many new filter banks (MAX_RATE_DESIGNS_PER_SECOND) or holds too many uncommon rates (MAX_SAMPLE_RATES); the stream is not started, the connection stays usable',
  BACKLOG: 'the stream fell too far behind real time and was closed',
  OVERLOADED: 'the server is at capacity: a new stream is refused at its start when the process holds all the live streams it can serve (streams_capacity) or while the model is behind or saturated, and, when audio waits more than MAX_INFERENCE_LAG_SECONDS for the model, the youngest streams are shed; closed with 1013',
  MEMORY_BUDGET: 'the audio waiting in the whole process would go over MEMORY_BUDGET_BYTES: the frame that would is refused, and a new stream is refused at its start while over 90 % of it; closed with 1013',
  FRAME_TOO_LARGE: 'a message over MAX_FRAME_BYTES; the connection is closed with 1009',
  MESSAGE_TOO_LARGE: 'a text message over MAX_TEXT_BYTES; it is ignored, the connection stays usable',
  STREAM_TOO_LONG: 'a stream carried more than MAX_STREAM_SECONDS of audio: finished, then closed with 1008',
  STREAM_IDLE: 'a started stream received no audio for STREAM_IDLE_SECONDS: finished, then closed with 1008',
  SLOW_CONSUMER: 'the client left more than MAX_OUTBOUND_BYTES of events unread; closed with 1008',
  TOO_MANY_MESSAGES: 'the connection sent more than MAX_MESSAGES_PER_SECOND messages per second (beyond its burst); closed with 1008',
  TOO_MANY_ERRORS: 'the connection earned MAX_PROTOCOL_ERRORS protocol errors; closed with 1008',
  START_TIMEOUT: 'the connection had no stream for START_TIMEOUT_SECONDS; closed with 1008',
  CONNECTION_TOO_LONG: 'the connection was open for MAX_CONNECTION_SECONDS: its stream finished, then closed with 1008',
  MODEL_FAILURE: 'the model failed on one segment; the stream goes on',
  NATIVE_PANIC: 'an internal error in native code on one segment; the stream goes on',
  INTERNAL: 'an internal error in the server',
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface StartRequest {
  request: 'start';
  format: NativeFormat;
  interimResults: boolean;
  /** Flow control: report how far the server has got (src/pipeline/progress.ts). */
  progress: boolean;
  traceId: string | null;
}

interface StopRequest {
  request: 'stop';
  disconnect: boolean;
}

type ClientRequest = StartRequest | StopRequest;

export type ServerEvent =
  | { type: 'active' | 'inactive'; channel: number; time: number }
  | {
      type: 'segment';
      channel: number;
      start_time: number;
      end_time: number;
      is_final?: boolean;
      count?: number;
      text?: string;
    }
  | { type: 'error'; channel: number; code: ErrorCode; message: string }
  | { type: 'progress'; channel: 0; time: number };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function field<T>(obj: Record<string, unknown>, name: string, type: string, fallback?: T): T {
  const v = obj[name];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ProtocolError('BAD_MESSAGE', `"${name}" is required`);
  }
  if (typeof v !== type) throw new ProtocolError('BAD_MESSAGE', `"${name}" must be a ${type}`);
  return v as T;
}

/** Checks a start message's format against what the decoder supports and the server allows. */
function parseFormat(v: unknown, maxChannels: number): NativeFormat {
  if (!isObject(v)) throw new ProtocolError('BAD_MESSAGE', '"format" must be an object');
  const encoding = field<string>(v, 'encoding', 'string', 'pcm');
  const channels = field<number>(v, 'channels', 'number');
  const sampleRate = field<number>(v, 'sample_rate', 'number');
  const isFloat = field<boolean>(v, 'is_float', 'boolean', false);
  const bitDepth = field<number>(v, 'bit_depth', 'number', encoding === 'pcm' ? undefined : 8);
  const format = { encoding: encoding as NativeFormat['encoding'], channels, sampleRate, bitDepth, isFloat };
  const problem = formatProblem(format, maxChannels);
  if (problem) throw new ProtocolError('INVALID_FORMAT', problem);
  return format;
}

/** Parses one text frame. Throws ProtocolError with the code to report. */
export function parseRequest(text: string, maxChannels: number): ClientRequest {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    throw new ProtocolError('BAD_JSON', `malformed JSON: ${(e as Error).message}`);
  }
  if (!isObject(msg)) throw new ProtocolError('BAD_MESSAGE', 'a request must be a JSON object');
  const request = msg['request'];
  if (typeof request !== 'string') throw new ProtocolError('BAD_MESSAGE', '"request" must be a string');
  switch (request) {
    case 'start': {
      const traceId = msg['trace_id'];
      if (traceId !== undefined && traceId !== null && (typeof traceId !== 'string' || traceId.length > 256)) {
        throw new ProtocolError('BAD_MESSAGE', '"trace_id" must be a string of at most 256 characters, or null');
      }
      return {
        request,
        format: parseFormat(msg['format'], maxChannels),
        interimResults: field<boolean>(msg, 'interim_results', 'boolean', false),
        progress: field<boolean>(msg, 'progress', 'boolean', false),
        traceId: traceId ?? null,
      };
    }
    case 'stop':
      return { request, disconnect: field<boolean>(msg, 'disconnect', 'boolean', false) };
    default:
      throw new ProtocolError('UNKNOWN_REQUEST', `unknown request ${JSON.stringify(request).slice(0, 64)}; expected start or stop`);
  }
}


