// Who may open a WebSocket, and what every HTTP answer must carry: the checks server.ts makes
// before an upgrade (token, Host, Origin, readiness, per-address and process connection limits),
// the Host allowlist of the HTTP routes, the live page's security headers and the subprotocol
// echo. Kept out of server.ts so the transport there stays small.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Authenticator } from './auth.js';
import { ADDRESS_SLOTS, type SharedState } from './cluster/shared-state.js';
import type { Config } from './config.js';
import type { Metrics } from './metrics/registry.js';

/** The subprotocol the server speaks; the only one it ever echoes (RFC 6455 4.2.2). */
export const SUBPROTOCOL = 'speech-server';

/** An admitted upgrade: what its close must give back. */
export interface Admitted {
  /** The per-address slot taken (-1: none). */
  addressSlot: number;
  /** The Sec-WebSocket-Protocol to answer with ('' for none). */
  protocol: string;
}

/** Refusal reasons, the `reason` label of connections_refused_total. */
export const REFUSAL_REASONS = ['max_connections', 'max_per_address', 'not_ready', 'draining', 'unauthorized', 'origin', 'host'] as const;

export class Admission {
  constructor(
    private readonly config: Config,
    private readonly shared: SharedState,
    private readonly metrics: Metrics,
    private readonly auth: Authenticator,
  ) {}

  /**
   * Checks an upgrade, in the upgrade handler (before res.upgrade). Answers the refusal itself
   * (HTTP 401/403/429/503 with a JSON reason, counted) and returns undefined, or returns the
   * slots it took; `ready`: the models are loaded.
   */
  upgrade(res: HttpResponse, req: HttpRequest, ready: boolean): Admitted | undefined {
    const { config, shared } = this;
    const host = req.getHeader('host');
    if (!hostAllowed(host, config.allowedHosts)) {
      return this.refuse(res, 'host', '403 Forbidden', `the Host ${JSON.stringify(host.slice(0, 256))} is not served here (ALLOWED_HOSTS)`);
    }
    // Before the token: a foreign page must not learn whether a visitor's browser holds one.
    const origin = req.getHeader('origin');
    if (!originAllowed(origin, host, config.allowedOrigins)) {
      return this.refuse(res, 'origin', '403 Forbidden', `the Origin ${JSON.stringify(origin.slice(0, 256))} may not open WebSockets here (ALLOWED_ORIGINS)`);
    }
    if (!this.auth.allows(req)) {
      return this.refuse(res, 'unauthorized', '401 Unauthorized', 'a valid token is required');
    }
    if (!ready) return this.refuse(res, 'not_ready', '503 Service Unavailable', 'the server is still loading its models');
    if (shared.draining) return this.refuse(res, 'draining', '503 Service Unavailable', 'the server is shutting down');
    let addressSlot = -1;
    if (config.maxConnectionsPerAddress > 0) {
      addressSlot = addressSlotOf(new Uint8Array(res.getRemoteAddress()));
      if (!shared.tryConnectFrom(addressSlot, config.maxConnectionsPerAddress)) {
        return this.refuse(res, 'max_per_address', '429 Too Many Requests',
          `this address holds the limit of ${config.maxConnectionsPerAddress} connections (MAX_CONNECTIONS_PER_ADDRESS)`);
      }
    }
    if (!shared.tryConnect(config.maxConnections)) {
      if (addressSlot >= 0) shared.disconnectedFrom(addressSlot);
      return this.refuse(res, 'max_connections', '503 Service Unavailable', `the server is at its limit of ${config.maxConnections} connections`);
    }
    return { addressSlot, protocol: selectProtocol(req.getHeader('sec-websocket-protocol')) };
  }

  /** The connection admitted with `admitted` closed. */
  closed(admitted: Admitted): void {
    this.shared.disconnected();
    if (admitted.addressSlot >= 0) this.shared.disconnectedFrom(admitted.addressSlot);
  }

  /** An HTTP route's Host check (ALLOWED_HOSTS): answers 403 and returns false when refused. */
  httpHost(res: HttpResponse, req: HttpRequest): boolean {
    const host = req.getHeader('host');
    if (hostAllowed(host, this.config.allowedHosts)) return true;
    this.metrics.httpRejected.inc({ reason: 'host' });
    res.writeStatus('403 Forbidden').writeHeader('Content-Type', 'application/json')
      .end(JSON.stringify({ error: `the Host ${JSON.stringify(host.slice(0, 256))} is not served here (ALLOWED_HOSTS)` }));
    return false;
  }

  private refuse(res: HttpResponse, reason: (typeof REFUSAL_REASONS)[number], status: string, message: string): undefined {
    this.metrics.connectionsRefused.inc({ reason });
    res.writeStatus(status);
    if (reason === 'unauthorized') res.writeHeader('WWW-Authenticate', 'Bearer');
    if (status.startsWith('503') || status.startsWith('429')) res.writeHeader('Retry-After', '1');
    res.writeHeader('Content-Type', 'application/json').end(JSON.stringify({ error: message }));
    return undefined;
  }
}

/**
 * Browsers send Origin on every WebSocket upgrade; other clients usually send none. Allowed: no
 * Origin, a page of this very server (its origin's host:port is the Host it connects to), an
 * origin in ALLOWED_ORIGINS, or any with `*`. "null" (sandboxed frames, file:) never matches.
 */
export function originAllowed(origin: string, host: string, allowed: readonly string[]): boolean {
  if (origin === '') return true;
  if (allowed.includes('*')) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.origin === 'null') return false;
  if (allowed.includes(url.origin)) return true;
  if (host === '') return false;
  try {
    // Parsed with the page's scheme, so that a default port written out (:80, :443) compares equal.
    return new URL(`${url.protocol}//${host}`).host === url.host;
  } catch {
    return false;
  }
}

/** ALLOWED_HOSTS: the Host header's name (port ignored) must be listed; an empty list allows any. */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const lower = host.toLowerCase();
  const name = lower.startsWith('[') ? lower.slice(0, lower.indexOf(']') + 1) : lower.replace(/:\d*$/, '');
  return name !== '' && allowed.includes(name);
}

/** Echo `speech-server` if the client offered it, else nothing: never the list, which may carry a token. */
export function selectProtocol(header: string): string {
  return header.split(',').some((p) => p.trim() === SUBPROTOCOL) ? SUBPROTOCOL : '';
}


/**
 * The per-address table's slot for a peer address as uWS gives it (4 or 16 bytes). IPv4-mapped
 * IPv6 counts as its IPv4 address; other IPv6 addresses count per /64, the block one subscriber
 * usually gets. Distinct addresses whose hash collides share a count (1 in 65,536).
 */
export function addressSlotOf(address: Uint8Array): number {
  let bytes = address;
  if (address.length === 16) {
    const mapped = address.subarray(0, 10).every((b) => b === 0) && address[10] === 0xff && address[11] === 0xff;
    bytes = mapped ? address.subarray(12) : address.subarray(0, 8);
  }
  let hash = 0x811c9dc5; // FNV-1a
  for (const b of bytes) hash = Math.imul(hash ^ b, 0x01000193);
  return (hash >>> 0) & (ADDRESS_SLOTS - 1);
}

/**
 * The live page's headers: nothing but its own files may load or be connected to, no other site
 * may frame it (clickjacking the microphone button), and no type sniffing.
 */
export const PAGE_HEADERS: readonly (readonly [string, string])[] = [
  ['Content-Security-Policy', "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-Frame-Options', 'DENY'],
  ['Referrer-Policy', 'no-referrer'],
];

/** Listening beyond loopback without a token: anyone who reaches the port may stream and scrape. */
export function exposureWarning(config: Config): string | undefined {
  if (config.authToken !== '') return undefined;
  const host = config.host.toLowerCase();
  if (host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host)) return undefined;
  return `listening on ${config.host} without AUTH_TOKEN: anyone who can reach port ${config.port === 0 ? '(any)' : config.port} can open streams, use the models and read /metrics; set AUTH_TOKEN (or AUTH_TOKEN_FILE) or HOST=127.0.0.1`;
}
