// Raw message throughput of the control plane (issue #7): the real server (src/main.ts,
// uWebSockets.js) against the `ws` package serving the same protocol with the same per-message
// control work and no audio work (bench/peers/transport-ws-server.ts), same run, same load. A
// third server, bare uWebSockets.js doing exactly the peer's work
// (bench/peers/transport-uws-bare.ts), splits the server's cost into transport and control path.
//
// Load: K connections to /api/v1/simple, each sends a start, M small binary frames and
// stop{disconnect:true}, all connections at once. The format is 64-bit float mono at 16 kHz (8
// samples per 64-byte frame: the least decoding per byte, no resampling); with the stub model
// and the default 5 s windows, longer than a stream's audio (M × 0.5 ms), the only model work is
// the one final window each stream gets at stop. Every stream must get exactly one segment
// counting all its samples, then close 1000.
// Figures: frames/s from the first send to the last close; server CPU per message (utime+stime
// of the whole process, /proc/<pid>/stat, over the same span ÷ messages); and for each side's
// main thread (the server's, and this process's `ws` client that generates the load) its CPU
// share and how long it sat runnable but waiting for a core (/proc/…/schedstat): busy + waiting
// near 100% means that thread is the bottleneck. The client corks each socket around batches of
// frames so that a batch costs one write, not one syscall per frame.
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startServerProcess, type ServerProcess } from './server-process.js';

const quick = process.argv.includes('--quick');
const root = path.resolve(import.meta.dirname, '..');
const CONNECTIONS = quick ? 8 : 64;
const FRAMES = quick ? 200 : 4000; // binary frames per connection per round
const FRAME_BYTES = 64;
const BATCH = 32; // frames written per corked batch per connection
const ROUNDS = quick ? 1 : 5; // measured rounds per server, order rotating, after one warm-up round each
const FORMAT = { channels: 1, sample_rate: 16000, bit_depth: 64, is_float: true };
const SAMPLES_PER_FRAME = FRAME_BYTES / 8;
const WINDOW_SECONDS = 5; // the default; each stream carries FRAMES × 0.5 ms of audio, less than one window
if ((FRAMES * SAMPLES_PER_FRAME) / FORMAT.sample_rate >= WINDOW_SECONDS) throw new Error('a stream must fit in one window');
const CLK_TCK = 100; // USER_HZ: what /proc/<pid>/stat counts in on Linux

interface Server extends ServerProcess { name: string }

async function startServer(name: string, script: string): Promise<Server> {
  const server = await startServerProcess(script, { MODEL: 'stub', SIMPLE_WINDOW_SECONDS: String(WINDOW_SECONDS) });
  return { ...server, name };
}

/** Seconds of CPU (utime + stime) of a whole process. */
function processCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // fields 14 and 15
}

/** A process's main thread: seconds on a CPU and seconds runnable but waiting for one. */
function mainThread(pid: number): { run: number; wait: number } {
  const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
  return { run: run! / 1e9, wait: wait! / 1e9 };
}

/** Busy CPU seconds of the whole machine, all cores. */
function machineCpu(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = ticks;
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLK_TCK;
}

interface Cpu { server: number; serverMain: number; serverWait: number; client: number; clientMain: number; clientWait: number; machine: number }

function cpuNow(server: Server): Cpu {
  const pid = server.child.pid!;
  const usage = process.cpuUsage();
  const s = mainThread(pid);
  const c = mainThread(process.pid);
  return {
    server: processCpu(pid), serverMain: s.run, serverWait: s.wait,
    client: (usage.user + usage.system) / 1e6, clientMain: c.run, clientWait: c.wait,
    machine: machineCpu(),
  };
}

interface Conn { ws: WebSocket; socket: Socket; events: { type: string; count?: number }[]; closed: Promise<number> }

async function connect(port: number): Promise<Conn> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/simple`, { perMessageDeflate: false });
  let socket: Socket | undefined;
  ws.once('upgrade', (res: IncomingMessage) => { socket = res.socket; });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const events: Conn['events'] = [];
  ws.on('message', (data) => events.push(JSON.parse((data as Buffer).toString('utf8')) as Conn['events'][number]));
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  socket!.setNoDelay(true);
  return { ws, socket: socket!, events, closed };
}

const frame = new Uint8Array(FRAME_BYTES); // silence: the content does not matter here
const startText = JSON.stringify({ request: 'start', format: FORMAT, interim_results: false, trace_id: null });
const stopText = JSON.stringify({ request: 'stop', disconnect: true });

async function drive(conn: Conn): Promise<void> {
  conn.ws.send(startText);
  for (let sent = 0; sent < FRAMES;) {
    const n = Math.min(BATCH, FRAMES - sent);
    const written = new Promise<void>((resolve, reject) => {
      conn.socket.cork();
      for (let i = 0; i < n - 1; i++) conn.ws.send(frame, { binary: true });
      conn.ws.send(frame, { binary: true }, (e) => (e ? reject(e) : resolve()));
      conn.socket.uncork();
    });
    sent += n;
    await written;
  }
  conn.ws.send(stopText);
  const code = await conn.closed;
  if (code !== 1000) throw new Error(`closed with ${code}; events ${JSON.stringify(conn.events).slice(0, 500)}`);
}

interface Round { seconds: number; cpu: Cpu }

async function round(server: Server): Promise<Round> {
  const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => connect(server.port)));
  const before = cpuNow(server);
  const t0 = performance.now();
  await Promise.all(conns.map(drive));
  const seconds = (performance.now() - t0) / 1000;
  const after = cpuNow(server);
  const expected = FRAMES * SAMPLES_PER_FRAME;
  for (const c of conns) {
    if (c.events.length !== 1 || c.events[0]!.type !== 'segment' || c.events[0]!.count !== expected) {
      throw new Error(`${server.name}: expected one segment of ${expected} samples, got ${JSON.stringify(c.events).slice(0, 500)}`);
    }
  }
  const cpu = Object.fromEntries(Object.keys(before).map((k) => [k, after[k as keyof Cpu] - before[k as keyof Cpu]])) as unknown as Cpu;
  return { seconds, cpu };
}

const wsVersion = (JSON.parse(readFileSync(path.join(root, 'node_modules/ws/package.json'), 'utf8')) as { version: string }).version;
const servers: Server[] = [];
const results = new Map<Server, Round[]>();
try {
  servers.push(await startServer('speech-server', 'src/main.ts'));
  servers.push(await startServer('ws peer', 'bench/peers/transport-ws-server.ts'));
  servers.push(await startServer('bare uWS', 'bench/peers/transport-uws-bare.ts'));
  for (const s of servers) {
    results.set(s, []);
    await round(s); // warm-up: JIT, buffers, threadpool
  }
  for (let i = 0; i < ROUNDS; i++) {
    // Rotate which goes first so drift on the machine colours all of them alike.
    for (let j = 0; j < servers.length; j++) {
      const s = servers[(i + j) % servers.length]!;
      results.get(s)!.push(await round(s));
    }
  }
} finally {
  await Promise.all(servers.map((server) => server.stop()));
}

const messagesPerRound = CONNECTIONS * (FRAMES + 2); // + start and stop
function figures(s: Server) {
  const rounds = results.get(s)!;
  const seconds = rounds.reduce((a, r) => a + r.seconds, 0);
  const cpu = (k: keyof Cpu) => rounds.reduce((a, r) => a + r.cpu[k], 0);
  const messages = messagesPerRound * rounds.length;
  const perRound = rounds.map((r) => (CONNECTIONS * FRAMES) / r.seconds);
  return {
    framesPerSecond: (CONNECTIONS * FRAMES * rounds.length) / seconds,
    minFramesPerSecond: Math.min(...perRound),
    maxFramesPerSecond: Math.max(...perRound),
    usPerMessage: (cpu('server') / messages) * 1e6,
    mainUsPerMessage: (cpu('serverMain') / messages) * 1e6,
    serverCores: cpu('server') / seconds,
    serverMainBusy: cpu('serverMain') / seconds,
    serverMainWaiting: cpu('serverWait') / seconds,
    clientMainBusy: cpu('clientMain') / seconds,
    clientMainWaiting: cpu('clientWait') / seconds,
    clientUsPerMessage: (cpu('client') / messages) * 1e6,
    otherCores: Math.max(0, (cpu('machine') - cpu('server') - cpu('client')) / seconds),
  };
}
type Figures = ReturnType<typeof figures>;
const [ours, peer, bare] = servers.map(figures) as [Figures, Figures, Figures];
const pct = (x: number) => `${Math.round(x * 100)}%`;
const int = (x: number) => Math.round(x).toLocaleString('en-US');
function verdict(f: Figures): string {
  const server = f.serverMainBusy + f.serverMainWaiting;
  const client = f.clientMainBusy + f.clientMainWaiting;
  const side = server >= client ? 'server' : 'client (load generator)';
  return `${side} main thread is the bottleneck (busy+waiting: server ${pct(server)}, client ${pct(client)})`;
}

console.log(`transport: ${CONNECTIONS} connections × ${FRAMES} binary frames of ${FRAME_BYTES} bytes (+ start, stop) at once, ` +
  `${ROUNDS} measured round(s) per server after a warm-up, /api/v1/simple, stub model, ${WINDOW_SECONDS} s windows, f64 mono 16 kHz; ` +
  `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}, Node ${process.version}, ws ${wsVersion} (client and peer)` +
  `${quick ? ' (quick: tiny sizes, figures meaningless)' : ''}`);
for (const [name, f] of [['speech-server (uWS)', ours], ['ws peer', peer], ['bare uWS (reference)', bare]] as const) {
  console.log(`${name.padEnd(21)} ${int(f.framesPerSecond).padStart(9)} frames/s (rounds ${int(f.minFramesPerSecond)}–${int(f.maxFramesPerSecond)}); ` +
    `server CPU ${f.usPerMessage.toFixed(2)} µs/message (main thread ${f.mainUsPerMessage.toFixed(2)}), ${f.serverCores.toFixed(2)} cores`);
  console.log(`${''.padEnd(21)} server main thread ${pct(f.serverMainBusy)} busy + ${pct(f.serverMainWaiting)} waiting for a core; ` +
    `client main thread ${pct(f.clientMainBusy)} busy + ${pct(f.clientMainWaiting)} waiting (${f.clientUsPerMessage.toFixed(2)} µs/message); ` +
    `other load on the machine ${f.otherCores.toFixed(2)} cores; ${verdict(f)}`);
}
console.log(`vs the ws peer: throughput ×${(ours.framesPerSecond / peer.framesPerSecond).toFixed(2)}, ` +
  `server CPU per message ×${(peer.usPerMessage / ours.usPerMessage).toFixed(2)} (peer µs ÷ ours: above 1, ours is cheaper); ` +
  `bare uWS vs ws: throughput ×${(bare.framesPerSecond / peer.framesPerSecond).toFixed(2)}, CPU per message ×${(peer.usPerMessage / bare.usPerMessage).toFixed(2)}; ` +
  `the server's control path adds ${(ours.usPerMessage - bare.usPerMessage).toFixed(2)} µs/message over bare uWS`);

// Quick runs are too short for /proc's 10 ms CPU ticks: a figure that came out 0 or infinite is null.
const r = (x: number, d = 3) => (Number.isFinite(x) && x > 0 ? Number(x.toFixed(d)) : null);
console.log(JSON.stringify({
  bench: 'transport',
  ratio_vs_peer: r(ours.framesPerSecond / peer.framesPerSecond),
  ratio_server_cpu_per_message: r(peer.usPerMessage / ours.usPerMessage),
  ratio_bare_uws_vs_peer: r(bare.framesPerSecond / peer.framesPerSecond),
  ratio_bare_uws_cpu_per_message: r(peer.usPerMessage / bare.usPerMessage),
  msgs_per_s: Math.round(ours.framesPerSecond),
  peer_msgs_per_s: Math.round(peer.framesPerSecond),
  bare_uws_msgs_per_s: Math.round(bare.framesPerSecond),
  server_us_per_msg: r(ours.usPerMessage),
  peer_us_per_msg: r(peer.usPerMessage),
  bare_uws_us_per_msg: r(bare.usPerMessage),
  server_main_thread_busy: r(ours.serverMainBusy),
  server_main_thread_waiting: r(ours.serverMainWaiting),
  client_main_thread_busy: r(ours.clientMainBusy),
  peer_server_main_thread_busy: r(peer.serverMainBusy),
  peer_client_main_thread_busy: r(peer.clientMainBusy),
  other_load_cores: r(ours.otherCores, 2),
  connections: CONNECTIONS,
  frames_per_connection: FRAMES,
  frame_bytes: FRAME_BYTES,
  peer: `ws ${wsVersion}, same protocol`,
}));
