// The peer for bench/transport.ts: the `ws` package serving the same wire protocol with the same
// per-message control work as src/server.ts minus everything audio (bench/peers/transport-control.ts).
// No decoding, no resampling, no native work.
// Run: PORT=0 node --import tsx bench/peers/transport-ws-server.ts; logs {"msg":"ready","port":…}.
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { ControlSession, announce } from './transport-control.js';

const wss = new WebSocketServer({
  host: process.env['HOST'] ?? '127.0.0.1',
  port: Number(process.env['PORT'] ?? 0),
  path: '/api/v1/simple',
  perMessageDeflate: false, // uWebSockets.js serves without compression too
  maxPayload: 2 << 20,
});

wss.on('connection', (ws: WebSocket) => {
  const session = new ControlSession((text) => ws.send(text), (code, reason) => ws.close(code, reason));
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const bytes = data as Buffer; // binaryType 'nodebuffer': one Buffer per message
    // The real server copies each frame before queueing it; so does the peer (and drops it).
    if (isBinary) session.onBinary(Buffer.from(bytes).length);
    else session.onText(bytes.toString('utf8'));
  });
});

wss.on('listening', () => {
  const address = wss.address();
  announce(address && typeof address === 'object' ? address.port : 0);
});

process.on('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
});
