// A reference for bench/transport.ts: bare uWebSockets.js (the same native binary the server
// loads) doing exactly the `ws` peer's work (bench/peers/transport-control.ts). Set beside the
// real server, it splits the server's per-message cost into the transport's share and the
// control path's own (task accounting, mailbox, stream bookkeeping, decode dispatch).
// Run: PORT=0 node --import tsx bench/peers/transport-uws-bare.ts.
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';
import { ControlSession, announce } from './transport-control.js';

const require = createRequire(import.meta.url);
const file = `uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
const uws = require(file) as typeof Uws;

interface Conn { session: ControlSession | undefined }

const app = uws.App();
app.ws<Conn>('/api/v1/simple', {
  maxPayloadLength: 2 << 20,
  idleTimeout: 120,
  upgrade: (res, req, context) => {
    res.upgrade<Conn>({ session: undefined }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => {
    ws.getUserData().session = new ControlSession((text) => { ws.send(text, false); }, (code, reason) => ws.end(code, reason));
  },
  message: (ws, message, isBinary) => {
    const session = ws.getUserData().session!;
    // The ArrayBuffer is only valid during this callback; the server copies it, so do we.
    if (isBinary) session.onBinary(Buffer.from(new Uint8Array(message)).length);
    else session.onText(Buffer.from(message).toString('utf8'));
  },
});

app.listen(process.env['HOST'] ?? '127.0.0.1', Number(process.env['PORT'] ?? 0), (socket) => {
  if (!socket) {
    process.stderr.write('cannot listen\n');
    process.exit(1);
  }
  announce(uws.us_socket_local_port(socket));
});

process.on('SIGTERM', () => process.exit(0));
