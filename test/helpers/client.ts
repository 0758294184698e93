// A real WebSocket client (the `ws` package) speaking the wire protocol.
import WebSocket from 'ws';

export interface ServerEventJson {
  type: string;
  channel: number;
  [key: string]: unknown;
}

export class Client {
  readonly events: ServerEventJson[] = [];
  closeCode: number | undefined;
  closeReason = '';
  private waiters: (() => void)[] = [];
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) throw new Error('the server sent a binary frame');
      this.events.push(JSON.parse((data as Buffer).toString('utf8')) as ServerEventJson);
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.wake();
        resolve(code);
      });
    });
  }

  /** `options`: e.g. `ca` for a wss:// server whose certificate a test made. */
  static async connect(url: string, headers: Record<string, string> = {}, options: WebSocket.ClientOptions = {}): Promise<Client> {
    const ws = new WebSocket(url, { ...options, headers });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Client(ws);
  }

  sendJson(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Sends `data` as binary frames of at most `chunk` bytes. */
  async sendAudio(data: Uint8Array, chunk: number): Promise<void> {
    for (let i = 0; i < data.length; i += chunk) {
      this.ws.send(data.subarray(i, Math.min(i + chunk, data.length)), { binary: true });
      // Let the socket drain now and then so huge fixtures do not pile up in memory.
      if (this.ws.bufferedAmount > 1 << 20) await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Resolves when `predicate` holds for the events so far (or rejects after `ms`). */
  async waitFor(predicate: (events: ServerEventJson[]) => boolean, ms = 20_000): Promise<ServerEventJson[]> {
    const deadline = Date.now() + ms;
    while (!predicate(this.events)) {
      if (this.closeCode !== undefined) throw new Error(`socket closed (${this.closeCode}) before the condition held; events: ${JSON.stringify(this.events).slice(0, 2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; events: ${JSON.stringify(this.events).slice(0, 2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    return this.events;
  }

  close(): void {
    this.ws.close();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Streams a whole file with start + audio + stop{disconnect} and returns every event. */
export async function streamFile(url: string, start: string, data: Uint8Array, chunk: number): Promise<{ events: ServerEventJson[]; closeCode: number }> {
  const client = await Client.connect(url);
  client.sendJson(start);
  await client.sendAudio(data, chunk);
  client.sendJson({ request: 'stop', disconnect: true });
  const closeCode = await client.closed;
  return { events: client.events, closeCode };
}
