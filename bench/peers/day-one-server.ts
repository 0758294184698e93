// The peer for route benchmarks: the server a Node developer writes in a day. The `ws` package,
// the same wire protocol, and all audio work (decode, linear-interpolation resampling, windowing)
// in JavaScript on the main thread. Run: node --import tsx bench/peers/day-one-server.ts (PORT=0).
import { WebSocketServer, type WebSocket } from 'ws';

interface Format { channels: number; sample_rate: number; bit_depth: number; is_float: boolean }

const windowSeconds = Number(process.env['SIMPLE_WINDOW_SECONDS'] ?? 5);
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env['PORT'] ?? 0), path: '/api/v1/simple' });

wss.on('connection', (ws: WebSocket) => {
  let format: Format | undefined;
  let carry = Buffer.alloc(0);
  let channels: { pos: number; window: number[]; start: number; prev: number; t: number }[] = [];
  const send = (o: unknown) => ws.send(JSON.stringify(o));
  const flushWindow = (c: number) => {
    const ch = channels[c]!;
    if (ch.window.length === 0) return;
    const end = ch.start + ch.window.length;
    send({ type: 'segment', channel: c, start_time: ch.start / 16000, end_time: end / 16000, count: ch.window.length });
    ch.start = end;
    ch.window = [];
  };
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      const msg = JSON.parse(data.toString()) as { request: string; format: Format; disconnect?: boolean };
      if (msg.request === 'start') {
        format = msg.format;
        channels = Array.from({ length: format.channels }, () => ({ pos: 0, window: [], start: 0, prev: 0, t: 0 }));
      } else if (msg.request === 'stop') {
        channels.forEach((_, c) => flushWindow(c));
        if (msg.disconnect) ws.close(1000);
      }
      return;
    }
    if (!format) return;
    const bytes = format.bit_depth / 8;
    const frame = bytes * format.channels;
    const buf = Buffer.concat([carry, data]);
    const frames = Math.floor(buf.length / frame);
    carry = buf.subarray(frames * frame);
    const step = format.sample_rate / 16000;
    for (let c = 0; c < format.channels; c++) {
      const ch = channels[c]!;
      for (let i = 0; i < frames; i++) {
        const off = i * frame + c * bytes;
        const x = format.is_float ? buf.readFloatLE(off) : buf.readInt16LE(off) / 32768;
        // Emit every output instant that falls between the previous input sample and this one.
        while (ch.t <= ch.pos) {
          const frac = 1 - (ch.pos - ch.t);
          ch.window.push(ch.prev + (x - ch.prev) * frac);
          ch.t += step;
          if (ch.window.length === windowSeconds * 16000) flushWindow(c);
        }
        ch.prev = x;
        ch.pos++;
      }
    }
  });
});

wss.on('listening', () => {
  const address = wss.address();
  process.stdout.write(JSON.stringify({ msg: 'listening', port: address && typeof address === 'object' ? address.port : 0 }) + '\n');
});
