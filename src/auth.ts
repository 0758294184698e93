// Optional bearer-token authentication, checked before any upgrade or response.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRequest } from 'uWebSockets.js';

/** A token carried as a WebSocket subprotocol: `bearer.<token>` (browsers cannot set headers). */
const PROTOCOL_PREFIX = 'bearer.';

export class Authenticator {
  private readonly expected: Buffer | undefined;

  /** An empty token disables authentication (config refuses an empty AUTH_TOKEN, so only unset). */
  constructor(token: string) {
    this.expected = token === '' ? undefined : digest(token);
  }

  /** A token offered some other way (the Realtime API's `openai-insecure-api-key.<key>` WebSocket
   *  subprotocol, which browsers can set where they cannot set headers). */
  accepts(offered: string): boolean {
    if (!this.expected) return true;
    return timingSafeEqual(digest(offered), this.expected);
  }

  /** `Authorization: Bearer <token>` (scheme in any case), the subprotocol `bearer.<token>`
   *  (browsers' WebSocket API, kept out of URLs and so out of access logs), or `?token=<token>`.
   *  Must be called inside the request handler. */
  allows(req: HttpRequest): boolean {
    if (!this.expected) return true;
    const header = /^bearer[ \t]+(.*)$/i.exec(req.getHeader('authorization'))?.[1]?.trim();
    const offered = header ?? fromProtocols(req.getHeader('sec-websocket-protocol')) ?? req.getQuery('token') ?? '';
    // Digests have equal length, so the comparison's time says nothing about the token.
    return timingSafeEqual(digest(offered), this.expected);
  }
}

function fromProtocols(header: string): string | undefined {
  for (const item of header.split(',')) {
    const p = item.trim();
    if (p.toLowerCase().startsWith(PROTOCOL_PREFIX)) return p.slice(PROTOCOL_PREFIX.length);
  }
  return undefined;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
