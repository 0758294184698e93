// The hostile-client bench's attackers, in a process of their own (as bench/flood-client.ts), each
// kind from an address of its own (127.0.0.2-6; the live streams come from 127.0.0.1), so that one
// kind filling the per-address cap does not stop the others, as with attackers on many machines.
// Usage: hostile-client.ts <port> <seconds>. Five kinds at once, each reconnecting when closed:
//   idle      IDLE sockets (default 3000, more than the per-address cap) that never send `start` (the start timeout and the per-address cap);
//   tiny      TINY clients that start a stream and send 1-byte frames as fast as they can (the
//             message budget, the arrival clock);
//   rates     one client that starts streams at new odd sample rates, over and over (the filter
//             design budget);
//   big       one client sending frames over MAX_FRAME_BYTES (uWS's payload limit);
//   scrapes   SCRAPERS loops of GET /metrics (the render cache).
// The last line is JSON: per kind, what the server answered (close codes, error codes, statuses).
import http from 'node:http';
import WebSocket from 'ws';

const [port, seconds] = process.argv.slice(2).map(Number) as [number, number];
const IDLE = Number(process.env['IDLE'] ?? 3000);
const TINY = Number(process.env['TINY'] ?? 8);
const SCRAPERS = Number(process.env['SCRAPERS'] ?? 4);
const FROM = { idle: '127.0.0.2', tiny: '127.0.0.3', rates: '127.0.0.4', big: '127.0.0.5', scrapes: '127.0.0.6' } as const;
const url = `ws://127.0.0.1:${port}/api/v1/segmented`;
const until = performance.now() + seconds * 1000;
const live = (): boolean => performance.now() < until;
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

type Tally = Record<string, number>;
const tallies: Record<'idle' | 'tiny' | 'rates' | 'big' | 'scrapes', Tally> = { idle: {}, tiny: {}, rates: {}, big: {}, scrapes: {} };
const count = (t: Tally, key: string): void => { t[key] = (t[key] ?? 0) + 1; };
const start = (rate: number): string => JSON.stringify({ request: 'start', format: { channels: 1, sample_rate: rate, bit_depth: 16, is_float: false }, interim_results: false, trace_id: null });

/** One connection: `use` drives it while open; resolves when it closed, counting how. */
function connect(kind: keyof typeof FROM, use: (ws: WebSocket) => void): Promise<void> {
  const t = tallies[kind];
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress: FROM[kind], generateMask: (mask: Buffer) => { mask.fill(0); } });
    // A refused upgrade (429 over the per-address cap) is ours to end: ws emits no close for it.
    ws.on('unexpected-response', (req, res) => { count(t, `http_${res.statusCode}`); res.resume(); req.destroy(); resolve(); });
    ws.on('error', () => resolve()); // a failed connect: counted by its response, if any
    ws.on('message', (data, binary) => {
      if (binary) return;
      const event = JSON.parse((data as Buffer).toString()) as { type?: string; code?: string };
      if (event.type === 'error' && event.code) count(t, event.code);
    });
    ws.once('open', () => use(ws));
    ws.once('close', (code) => { count(t, `close_${code}`); resolve(); });
  });
}

async function loop(kind: keyof typeof FROM, use: (ws: WebSocket) => void): Promise<void> {
  while (live()) {
    await connect(kind, use);
    await pause(20);
  }
}

const attacks: Promise<void>[] = [];
// Idle sockets: each waits for the server to close it, then comes back.
for (let i = 0; i < IDLE; i++) attacks.push(loop('idle', (ws) => { setTimeout(() => ws.terminate(), Math.max(0, until - performance.now())); }));
// Tiny frames as fast as the socket takes them.
for (let i = 0; i < TINY; i++) {
  attacks.push(loop('tiny', (ws) => {
    ws.send(start(16_000));
    const byte = Buffer.alloc(1);
    const pump = (): void => {
      if (ws.readyState !== WebSocket.OPEN || !live()) { if (ws.readyState === WebSocket.OPEN) ws.terminate(); return; }
      for (let k = 0; k < 64 && ws.bufferedAmount < 1 << 16; k++) ws.send(byte);
      setImmediate(pump);
    };
    pump();
  }));
}
// New odd rates, one `start`/`stop` after another on one connection.
let rate = 191_999;
attacks.push(loop('rates', (ws) => {
  const next = (): void => {
    if (ws.readyState !== WebSocket.OPEN || !live()) { if (ws.readyState === WebSocket.OPEN) ws.terminate(); return; }
    ws.send(start(rate--));
    ws.send(JSON.stringify({ request: 'stop' }));
    setTimeout(next, 5);
  };
  next();
}));
// Frames over the payload limit.
attacks.push(loop('big', (ws) => {
  ws.send(start(16_000));
  ws.send(Buffer.alloc((1 << 20) + 1));
}));
// Scrapes on kept-alive connections.
const agent = new http.Agent({ keepAlive: true, localAddress: FROM.scrapes });
for (let i = 0; i < SCRAPERS; i++) {
  attacks.push((async () => {
    while (live()) {
      const status = await new Promise<number>((resolve) => {
        http.get({ host: '127.0.0.1', port, path: '/metrics', agent }, (res) => { res.resume(); res.once('end', () => resolve(res.statusCode ?? 0)); }).once('error', () => resolve(0));
      });
      count(tallies.scrapes, `http_${status}`);
    }
  })());
}
await Promise.all(attacks);
agent.destroy();
console.log(JSON.stringify(tallies));
