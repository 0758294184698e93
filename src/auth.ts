// Optional bearer-token authentication, checked before any upgrade or response.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRequest } from 'uWebSockets.js';

export class Authenticator {
  private readonly expected: Buffer | undefined;

  /** An empty token disables authentication. */
  constructor(token: string) {
    this.expected = token === '' ? undefined : digest(token);
  }

  get enabled(): boolean {
    return this.expected !== undefined;
  }

  /** A token offered some other way (the Realtime API's `openai-insecure-api-key.<key>` WebSocket
   *  subprotocol, which browsers can set where they cannot set headers). */
  accepts(offered: string): boolean {
    if (!this.expected) return true;
    return timingSafeEqual(digest(offered), this.expected);
  }

  /** `Authorization: Bearer <token>`, or `?token=<token>` for clients that cannot set headers
   *  (browsers' WebSocket API). Must be called inside the request handler. */
  allows(req: HttpRequest): boolean {
    if (!this.expected) return true;
    const header = req.getHeader('authorization');
    const offered = header.startsWith('Bearer ') ? header.slice(7) : req.getQuery('token') ?? '';
    // Digests have equal length, so the comparison's time says nothing about the token.
    return timingSafeEqual(digest(offered), this.expected);
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
