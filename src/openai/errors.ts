// Errors in the OpenAI API's shape: {"error":{"message","type","param","code"}}, with the HTTP
// status an OpenAI client expects for each kind (its SDK maps the status to an error class).
import type { HttpResponse } from 'uWebSockets.js';

type OpenAiErrorType = 'invalid_request_error' | 'authentication_error' | 'server_error';

interface OpenAiErrorBody {
  error: { message: string; type: OpenAiErrorType; param: string | null; code: string | null };
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large',
  415: 'Unsupported Media Type', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

export class OpenAiError extends Error {
  override name = 'OpenAiError';

  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: OpenAiErrorType = status === 401 ? 'authentication_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
  }

  toJSON(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Error'}`;
}

/** Writes the whole error response; call inside the handler or a cork. */
export function sendError(res: HttpResponse, error: OpenAiError): void {
  res.writeStatus(statusLine(error.status)).writeHeader('Content-Type', 'application/json');
  if (error.status === 401) res.writeHeader('WWW-Authenticate', 'Bearer');
  if (error.status === 503) res.writeHeader('Retry-After', '1');
  res.end(JSON.stringify(error.toJSON()));
}

/** Any failure as an OpenAI error: ours as they are, anything else a 500 that names it. */
export function asOpenAiError(e: unknown): OpenAiError {
  if (e instanceof OpenAiError) return e;
  return new OpenAiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, null, 'internal_error');
}
