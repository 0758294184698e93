// Opening a WebSocket to the server, every way it can fail turned into a one-line reason and a code.
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import WebSocket from 'ws';
import { CliError, UsageError } from './errors.js';

/** Checks a `--url` value: ws:// or wss:// with a host. */
export function parseWsUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`bad --url ${JSON.stringify(value)}: not a URL (e.g. ws://127.0.0.1:8080/api/v1/segmented)`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new UsageError(`bad --url ${JSON.stringify(value)}: the scheme must be ws:// or wss://, not ${url.protocol}//`);
  }
  if (!url.hostname) throw new UsageError(`bad --url ${JSON.stringify(value)}: no host`);
  return url;
}

/** The server's `/metrics` URL for a WebSocket URL: same host and port, http(s). */
export function metricsUrl(ws: URL): URL {
  const url = new URL(ws.href);
  url.protocol = ws.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = '/metrics';
  url.search = '';
  url.hash = '';
  return url;
}

export function authHeaders(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { Authorization: `Bearer ${token}` };
}

const NETWORK_REASONS: Record<string, [string, string]> = {
  ECONNREFUSED: ['CONNECT_REFUSED', 'connection refused (is the server running on that port?)'],
  ENOTFOUND: ['CONNECT_DNS', 'host not found'],
  EAI_AGAIN: ['CONNECT_DNS', 'host name lookup failed'],
  ECONNRESET: ['CONNECT_RESET', 'connection reset'],
  EHOSTUNREACH: ['CONNECT_UNREACHABLE', 'host unreachable'],
  ENETUNREACH: ['CONNECT_UNREACHABLE', 'network unreachable'],
  ETIMEDOUT: ['CONNECT_TIMEOUT', 'connection timed out'],
};

/**
 * GETs `url` as text. `ca` (PEM, from --ca) is trusted instead of the default roots, as with
 * connect(); NODE_EXTRA_CA_CERTS extends the default roots without it.
 */
export function getText(url: URL, headers: Record<string, string>, ca: string | undefined, timeoutMs: number): Promise<{ status: number; text: string }> {
  const get = url.protocol === 'https:' ? https.get : http.get;
  return new Promise((resolve, reject) => {
    // No agent: a kept-alive socket would outlive the command.
    const req = get(url, { headers, agent: false, timeout: timeoutMs, ...(ca !== undefined ? { ca } : {}) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs / 1000} s`)));
    req.on('error', reject);
  });
}

/**
 * Connects, sending `token` as `Authorization: Bearer`. Rejects with a CliError whose `code` is
 * CONNECT_* for network failures, HTTP_<status> when the server refuses the upgrade (its JSON
 * `error` quoted), CONNECT_TIMEOUT when no handshake completes in `timeoutMs`.
 */
export async function connect(url: URL, token: string | undefined, timeoutMs: number, ca?: string): Promise<WebSocket> {
  const where = url.host;
  const ws = new WebSocket(url, { headers: authHeaders(token), handshakeTimeout: timeoutMs, perMessageDeflate: false, ...(ca !== undefined ? { ca } : {}) });
  return new Promise<WebSocket>((resolve, reject) => {
    let settled = false;
    const fail = (error: CliError): void => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    ws.on('error', (err: NodeJS.ErrnoException) => {
      if (settled) return;
      const known = err.code ? NETWORK_REASONS[err.code] : undefined;
      if (known) fail(new CliError(`cannot connect to ${where}: ${known[1]}`, 1, known[0]));
      else if (/timed out|timeout/i.test(err.message)) fail(new CliError(`cannot connect to ${where}: no handshake in ${timeoutMs / 1000} s`, 1, 'CONNECT_TIMEOUT'));
      else fail(new CliError(`cannot connect to ${where}: ${err.message}`, 1, 'CONNECT_FAILED'));
    });
    ws.on('unexpected-response', (req: ClientRequest, res: IncomingMessage) => {
      const socket = res.socket;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { if (body.length < 4096) body += d; });
      const done = (): void => {
        let reason = body.trim();
        try {
          const parsed = JSON.parse(reason) as { error?: unknown };
          if (typeof parsed.error === 'string') reason = parsed.error;
        } catch {
          // not JSON: quote the text as it is
        }
        const status = res.statusCode ?? 0;
        const text = `${status} ${res.statusMessage ?? ''}`.trim();
        fail(new CliError(`server at ${where} refused the connection: HTTP ${text}${reason ? ` (${reason.split('\n')[0]!.slice(0, 200)})` : ''}`, 1, `HTTP_${status}`));
        // The socket is this request's alone (no agent); Node would only half-close it and wait
        // for the server to hang up. (res.socket is already detached here.)
        socket?.destroy();
        req.destroy();
      };
      res.on('end', done);
      res.on('error', done);
    });
    ws.once('open', () => {
      if (settled) {
        ws.terminate();
        return;
      }
      settled = true;
      resolve(ws);
    });
    ws.once('close', (code: number) => fail(new CliError(`cannot connect to ${where}: closed during the handshake (${code})`, 1, 'CONNECT_FAILED')));
  });
}
