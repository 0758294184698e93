// The peer for bench/transport.ts: the `ws` package serving the same wire protocol with the same
// per-message control work as src/server.ts minus everything audio. Text frames are parsed as
// start/stop requests; binary frames are copied and counted; a stop answers with one segment (the
// count of 16 kHz samples the bytes hold, like the stub model's final window) and, with
// `disconnect`, closes with 1000. No decoding, no resampling, no native work.
// Run: PORT=0 node --import tsx bench/peers/transport-ws-server.ts; logs {"msg":"ready","port":…}.
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

interface Format { channels: number; sample_rate: number; bit_depth: number; is_float: boolean }
interface Stream { bytesPerSecond: number; frameBytes: number; bytes: number }

const wss = new WebSocketServer({
  host: process.env['HOST'] ?? '127.0.0.1',
  port: Number(process.env['PORT'] ?? 0),
  path: '/api/v1/simple',
  perMessageDeflate: false, // uWebSockets.js serves without compression too
  maxPayload: 2 << 20,
});

wss.on('connection', (ws: WebSocket) => {
  let stream: Stream | undefined;
  const send = (event: unknown): void => ws.send(JSON.stringify(event));
  const error = (code: string, message: string): void => send({ type: 'error', channel: 0, code, message });
  const finish = (): void => {
    if (!stream) return;
    const samples = Math.floor(stream.bytes / stream.frameBytes);
    const seconds = samples / (stream.bytesPerSecond / stream.frameBytes);
    send({ type: 'segment', channel: 0, start_time: 0, end_time: seconds, count: Math.round(seconds * 16000) });
    stream = undefined;
  };
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const bytes = data as Buffer; // binaryType 'nodebuffer': one Buffer per message
    if (isBinary) {
      if (!stream) {
        error('NOT_STARTED', 'audio before start: send {"request":"start",...} first');
        return;
      }
      // The real server copies each frame before queueing it; so does the peer (and drops it).
      const copy = Buffer.from(bytes);
      stream.bytes += copy.length;
      return;
    }
    let msg: { request?: unknown; format?: Format; disconnect?: unknown };
    try {
      msg = JSON.parse(bytes.toString('utf8')) as typeof msg;
    } catch (e) {
      error('BAD_JSON', `malformed JSON: ${(e as Error).message}`);
      return;
    }
    if (msg.request === 'start') {
      const f = msg.format;
      if (!f || ![1, 2, 3, 4, 8].includes(f.bit_depth / 8) || !(f.channels >= 1) || !(f.sample_rate >= 8000)) {
        error('INVALID_FORMAT', 'bad format');
        return;
      }
      finish();
      const frameBytes = (f.bit_depth / 8) * f.channels;
      stream = { bytesPerSecond: f.sample_rate * frameBytes, frameBytes, bytes: 0 };
    } else if (msg.request === 'stop') {
      if (!stream && msg.disconnect !== true) {
        error('NOT_STARTED', 'stop before start: there is no stream to stop');
        return;
      }
      finish();
      if (msg.disconnect === true) ws.close(1000, 'stopped');
    } else {
      error('UNKNOWN_REQUEST', 'expected start or stop');
    }
  });
});

wss.on('listening', () => {
  const address = wss.address();
  const port = address && typeof address === 'object' ? address.port : 0;
  process.stdout.write(JSON.stringify({ msg: 'listening', port }) + '\n');
  process.stdout.write(JSON.stringify({ msg: 'ready', port }) + '\n');
});

process.on('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
});
