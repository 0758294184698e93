// What a route's pipeline offers its session.
export interface Runner {
  /** Audio bytes in the stream's wire format; ownership passes to the runner. May throw TaskFailure. */
  push(bytes: Uint8Array): void;
  /** End of stream: resolves once every final event has been emitted. */
  finish(): Promise<void>;
  /** The client is gone: drop everything, emit nothing more. */
  abort(): void;
}
