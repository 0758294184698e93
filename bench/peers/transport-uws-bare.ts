// A reference for bench/transport.ts: bare uWebSockets.js (the same native binary the server
// loads) serving the same protocol with exactly the peer's work (bench/peers/transport-ws-server.ts):
// start/stop JSON, binary frames copied and counted, one segment at stop, close 1000 on
// disconnect. Set beside the real server, it splits the server's per-message cost into the
// transport's share and the control path's own (task accounting, mailbox, stream bookkeeping,
// decode dispatch). Run: PORT=0 node --import tsx bench/peers/transport-uws-bare.ts.
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';

const require = createRequire(import.meta.url);
const file = `uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
const uws = require(file) as typeof Uws;

interface Format { channels: number; sample_rate: number; bit_depth: number; is_float: boolean }
interface Conn { stream: { bytesPerSecond: number; frameBytes: number; bytes: number } | undefined }

const app = uws.App();
app.ws<Conn>('/api/v1/simple', {
  maxPayloadLength: 2 << 20,
  idleTimeout: 120,
  upgrade: (res, req, context) => {
    res.upgrade<Conn>({ stream: undefined }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'), context);
  },
  message: (ws, message, isBinary) => {
    const conn = ws.getUserData();
    if (isBinary && conn.stream) {
      // The ArrayBuffer is only valid during this callback; the server copies it, so do we.
      conn.stream.bytes += new Uint8Array(message.slice(0)).length;
      return;
    }
    const send = (event: unknown): void => { ws.send(JSON.stringify(event), false); };
    const error = (code: string, text: string): void => send({ type: 'error', channel: 0, code, message: text });
    if (isBinary) {
      error('NOT_STARTED', 'audio before start: send {"request":"start",...} first');
      return;
    }
    let msg: { request?: unknown; format?: Format; disconnect?: unknown };
    try {
      msg = JSON.parse(Buffer.from(message).toString('utf8')) as typeof msg;
    } catch (e) {
      error('BAD_JSON', `malformed JSON: ${(e as Error).message}`);
      return;
    }
    const finish = (): void => {
      const s = conn.stream;
      if (!s) return;
      const samples = Math.floor(s.bytes / s.frameBytes);
      const seconds = samples / (s.bytesPerSecond / s.frameBytes);
      send({ type: 'segment', channel: 0, start_time: 0, end_time: seconds, count: Math.round(seconds * 16000) });
      conn.stream = undefined;
    };
    if (msg.request === 'start') {
      const f = msg.format;
      if (!f || ![1, 2, 3, 4, 8].includes(f.bit_depth / 8) || !(f.channels >= 1) || !(f.sample_rate >= 8000)) {
        error('INVALID_FORMAT', 'bad format');
        return;
      }
      finish();
      const frameBytes = (f.bit_depth / 8) * f.channels;
      conn.stream = { bytesPerSecond: f.sample_rate * frameBytes, frameBytes, bytes: 0 };
    } else if (msg.request === 'stop') {
      if (!conn.stream && msg.disconnect !== true) {
        error('NOT_STARTED', 'stop before start: there is no stream to stop');
        return;
      }
      finish();
      if (msg.disconnect === true) ws.end(1000, 'stopped');
    } else {
      error('UNKNOWN_REQUEST', 'expected start or stop');
    }
  },
});

app.listen(process.env['HOST'] ?? '127.0.0.1', Number(process.env['PORT'] ?? 0), (socket) => {
  if (!socket) {
    process.stderr.write('cannot listen\n');
    process.exit(1);
  }
  const port = uws.us_socket_local_port(socket);
  process.stdout.write(JSON.stringify({ msg: 'listening', port }) + '\n');
  process.stdout.write(JSON.stringify({ msg: 'ready', port }) + '\n');
});

process.on('SIGTERM', () => process.exit(0));
