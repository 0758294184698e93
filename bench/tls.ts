// What server TLS (TLS_CERT_FILE/TLS_KEY_FILE, issue #20) costs: the same server started twice in
// the same run, plain and with TLS (an ECDSA P-256 certificate made now with openssl, as a
// real deployment would likely use), stub model, default WORKERS. Peer: the plain server.
//
// Figures, each side measured alternately in rounds (order rotating) after a warm-up:
// - /metrics scrape latency, client-side from request to last byte, with LIVE live streams open
//   (half per route, each has sent 2 s of audio): on one kept-alive connection (as Prometheus
//   scrapes), and on a fresh connection per request (TCP + TLS handshake included: what a probe
//   or a new client pays).
// - WebSocket transport throughput: CONNECTIONS connections to /api/v1/simple each send a
//   start, FRAMES binary frames of FRAME_BYTES and a stop, all at once (as bench/transport.ts);
//   frames/s from the first send to the last close, and the server process's CPU per message.
// The load generator runs on the same cores and pays its own side of TLS too.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { issue, makeCa } from '../test/helpers/tls-certs.js';
import { readWav, startMessage } from '../test/helpers/wav.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { percentile } from './statistics.js';

const quick = process.argv.includes('--quick');
const LIVE = quick ? 20 : 200;
const SCRAPES = quick ? 10 : 100; // per side per round, kept alive
const FRESH = quick ? 10 : 100; // per side per round, one connection each
const CONNECTIONS = quick ? 8 : 32;
const FRAMES = quick ? 200 : 2000;
const FRAME_BYTES = 64;
const BATCH = 32;
const ROUNDS = quick ? 1 : 3;
const FORMAT = { channels: 1, sample_rate: 16000, bit_depth: 64, is_float: true };
const CLK_TCK = 100;

const dir = mkdtempSync(path.join(os.tmpdir(), 'speech-bench-tls-'));
const ca = makeCa(dir, 'bench-root');
const cert = issue(dir, 'bench-server', ca);
const caPem = readFileSync(ca.cert);
const wav = readWav('two_utterances_16k_mono_s16.wav');

interface Side {
  name: 'plain' | 'tls';
  server: ServerProcess;
  scheme: { http: string; ws: string };
  agent: http.Agent;
  scrapeMs: number[];
  freshMs: number[];
  seconds: number;
  serverCpu: number;
  messages: number;
}

function processCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function get(side: Side, route: string, agent: http.Agent | false): Promise<string> {
  const request = side.name === 'tls' ? https.get : http.get;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: side.server.port, path: route, agent, ca: caPem }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${side.name} ${route}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
  });
}

function open(side: Side, route: string): Promise<{ ws: WebSocket; socket: Socket }> {
  const ws = new WebSocket(`${side.scheme.ws}://127.0.0.1:${side.server.port}${route}`, { perMessageDeflate: false, ca: caPem });
  let socket: Socket | undefined;
  ws.once('upgrade', (res: IncomingMessage) => { socket = res.socket; });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      socket!.setNoDelay(true);
      resolve({ ws, socket: socket! });
    });
    ws.once('error', reject);
  });
}

async function scrapes(side: Side): Promise<void> {
  for (let i = 0; i < SCRAPES; i++) {
    const t = performance.now();
    await get(side, '/metrics', side.agent);
    side.scrapeMs.push(performance.now() - t);
  }
  for (let i = 0; i < FRESH; i++) {
    const t = performance.now();
    await get(side, '/metrics', false);
    side.freshMs.push(performance.now() - t);
  }
}

const frame = new Uint8Array(FRAME_BYTES);
const startText = JSON.stringify({ request: 'start', format: FORMAT, interim_results: false, trace_id: null });
const stopText = JSON.stringify({ request: 'stop', disconnect: true });

async function transport(side: Side): Promise<void> {
  const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => open(side, '/api/v1/simple')));
  const pid = side.server.child.pid!;
  const cpu0 = processCpu(pid);
  const t0 = performance.now();
  await Promise.all(conns.map(async ({ ws, socket }) => {
    const closed = new Promise<number>((resolve) => ws.once('close', resolve));
    ws.send(startText);
    for (let sent = 0; sent < FRAMES;) {
      const n = Math.min(BATCH, FRAMES - sent);
      await new Promise<void>((resolve, reject) => {
        socket.cork();
        for (let i = 0; i < n - 1; i++) ws.send(frame, { binary: true });
        ws.send(frame, { binary: true }, (e) => (e ? reject(e) : resolve()));
        socket.uncork();
      });
      sent += n;
    }
    ws.send(stopText);
    const code = await closed;
    if (code !== 1000) throw new Error(`${side.name}: a transport stream closed with ${code}`);
  }));
  side.seconds += (performance.now() - t0) / 1000;
  side.serverCpu += processCpu(pid) - cpu0;
  side.messages += CONNECTIONS * (FRAMES + 2);
}

const sides: Side[] = [];
const live: WebSocket[] = [];
try {
  for (const name of ['plain', 'tls'] as const) {
    const env: Record<string, string> = { MODEL: 'stub', ...(name === 'tls' ? { TLS_CERT_FILE: cert.cert, TLS_KEY_FILE: cert.key } : {}) };
    const server = await startServerProcess('src/main.ts', env);
    const scheme = name === 'tls' ? { http: 'https', ws: 'wss' } : { http: 'http', ws: 'ws' };
    const agent = name === 'tls' ? new https.Agent({ keepAlive: true, maxSockets: 1, ca: caPem }) : new http.Agent({ keepAlive: true, maxSockets: 1 });
    const side: Side = { name, server, scheme, agent, scrapeMs: [], freshMs: [], seconds: 0, serverCpu: 0, messages: 0 };
    sides.push(side);
    // Live streams, mid-utterance, so that a scrape has per-stream families to gather.
    for (let i = 0; i < LIVE; i += 50) {
      live.push(...await Promise.all(Array.from({ length: Math.min(50, LIVE - i) }, async (_, j) => {
        const { ws } = await open(side, `/api/v1/${(i + j) % 2 ? 'simple' : 'segmented'}`);
        ws.send(startMessage(wav));
        ws.send(wav.data.subarray(0, 32000 * 2));
        return ws;
      })));
    }
  }
  await new Promise((r) => setTimeout(r, 1000));
  for (const side of sides) {
    // Warm-up: JIT, TLS session state, buffers; not counted.
    await scrapes({ ...side, scrapeMs: [], freshMs: [] });
    await transport({ ...side });
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < sides.length; k++) {
      const side = sides[(r + k) % sides.length]!;
      await scrapes(side);
      await transport(side);
    }
  }
} finally {
  for (const ws of live) ws.terminate();
  for (const side of sides) side.agent.destroy();
  await Promise.all(sides.map((s) => s.server.stop()));
  rmSync(dir, { recursive: true, force: true });
}

const [plain, tls] = sides as [Side, Side];
const fig = (s: Side) => ({
  scrapeP50: percentile(s.scrapeMs, 50), scrapeP99: percentile(s.scrapeMs, 99),
  freshP50: percentile(s.freshMs, 50), freshP99: percentile(s.freshMs, 99),
  framesPerSecond: (CONNECTIONS * FRAMES * ROUNDS) / s.seconds,
  usPerMessage: (s.serverCpu / s.messages) * 1e6,
});
const p = fig(plain);
const t = fig(tls);
const ratio = (a: number, b: number) => Number((a / b).toFixed(3));
const ms = (x: number) => `${x.toFixed(2)} ms`;
console.log(`tls vs plain: same server (src/main.ts, stub model, default WORKERS), ${LIVE} live streams, ${ROUNDS} round(s) per side after a warm-up; ` +
  `certificate ECDSA P-256; ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}, Node ${process.version}${quick ? ' (quick: tiny sizes, figures meaningless)' : ''}`);
for (const [name, f] of [['plain', p], ['tls', t]] as const) {
  console.log(`${name.padEnd(5)} /metrics kept-alive p50 ${ms(f.scrapeP50)} p99 ${ms(f.scrapeP99)}; fresh connection p50 ${ms(f.freshP50)} p99 ${ms(f.freshP99)}; ` +
    `transport ${Math.round(f.framesPerSecond).toLocaleString('en-US')} frames/s, server CPU ${f.usPerMessage.toFixed(2)} µs/message`);
}
console.log(`tls / plain: scrape p50 ${ratio(t.scrapeP50, p.scrapeP50)}×, p99 ${ratio(t.scrapeP99, p.scrapeP99)}×; fresh p50 ${ratio(t.freshP50, p.freshP50)}×; ` +
  `throughput ${ratio(t.framesPerSecond, p.framesPerSecond)}×; CPU per message ${ratio(t.usPerMessage, p.usPerMessage)}×`);
console.log(JSON.stringify({
  bench: 'tls',
  ratio_tls_vs_plain_scrape_p50: ratio(t.scrapeP50, p.scrapeP50),
  ratio_tls_vs_plain_scrape_p99: ratio(t.scrapeP99, p.scrapeP99),
  ratio_tls_vs_plain_fresh_p50: ratio(t.freshP50, p.freshP50),
  ratio_tls_vs_plain_frames_per_s: ratio(t.framesPerSecond, p.framesPerSecond),
  ratio_tls_vs_plain_cpu_per_message: ratio(t.usPerMessage, p.usPerMessage),
  live_streams: LIVE,
  tls_scrape_p50_ms: Number(t.scrapeP50.toFixed(2)),
  tls_scrape_p99_ms: Number(t.scrapeP99.toFixed(2)),
  plain_scrape_p50_ms: Number(p.scrapeP50.toFixed(2)),
  plain_scrape_p99_ms: Number(p.scrapeP99.toFixed(2)),
  tls_fresh_p50_ms: Number(t.freshP50.toFixed(2)),
  tls_fresh_p99_ms: Number(t.freshP99.toFixed(2)),
  plain_fresh_p50_ms: Number(p.freshP50.toFixed(2)),
  plain_fresh_p99_ms: Number(p.freshP99.toFixed(2)),
  tls_frames_per_s: Math.round(t.framesPerSecond),
  plain_frames_per_s: Math.round(p.framesPerSecond),
  tls_server_us_per_message: Number(t.usPerMessage.toFixed(2)),
  plain_server_us_per_message: Number(p.usPerMessage.toFixed(2)),
  peer: 'the same server over plain HTTP and ws://, same run',
}));
