// /api/v1/simple with the stub model at zero delay: how long one 11.84 s stream takes end to end
// when sent as fast as possible, alone and with 8 at once. Peer: the day-one server
// (bench/peers/day-one-server.ts: ws + JavaScript audio work on the main thread), same run.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { streamFile } from '../test/helpers/client.js';
import { readWav, startMessage } from '../test/helpers/wav.js';

const quick = process.argv.includes('--quick');
const root = path.resolve(import.meta.dirname, '..');
const wav = readWav('two_utterances_16k_mono_s16.wav');
const REPEATS = quick ? 2 : 30;
const CONCURRENT = quick ? 2 : 8;
const CHUNK = 3200; // 100 ms of 16 kHz s16 per frame

async function start(script: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, script)], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', MODEL: 'stub', LOG_LEVEL: 'warn', SIMPLE_WINDOW_SECONDS: '5' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        // The server announces `ready` once its models are warm; the day-one peer only `listening`.
        if (entry.msg === (script === 'src/main.ts' ? 'ready' : 'listening')) resolve(entry.port!);
      } catch { /* not a log line */ }
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return { port, child };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function measure(port: number): Promise<{ singleMs: number; concurrentMs: number }> {
  const url = `ws://127.0.0.1:${port}/api/v1/simple`;
  const once = async () => {
    const t = performance.now();
    const { events } = await streamFile(url, startMessage(wav), wav.data, CHUNK);
    if (events.length !== 3) throw new Error(`expected 3 segments, got ${JSON.stringify(events)}`);
    return performance.now() - t;
  };
  await once(); // warm-up
  const single: number[] = [];
  for (let i = 0; i < REPEATS; i++) single.push(await once());
  const concurrent: number[] = [];
  for (let i = 0; i < Math.max(2, REPEATS / 5); i++) {
    const t = performance.now();
    await Promise.all(Array.from({ length: CONCURRENT }, once));
    concurrent.push(performance.now() - t);
  }
  return { singleMs: median(single), concurrentMs: median(concurrent) };
}

const ours = await start('src/main.ts');
const oursResult = await measure(ours.port);
ours.child.kill();
const peer = await start('bench/peers/day-one-server.ts');
const peerResult = await measure(peer.port);
peer.child.kill();

const audio = wav.seconds;
console.log(`fixture: ${audio.toFixed(2)} s, 16 kHz s16 mono, ${CHUNK}-byte frames, stub model, 5 s windows`);
console.log(`speech-server  one stream: ${oursResult.singleMs.toFixed(1)} ms (${(audio * 1000 / oursResult.singleMs).toFixed(0)}x real time); ${CONCURRENT} at once: ${oursResult.concurrentMs.toFixed(1)} ms`);
console.log(`day-one peer   one stream: ${peerResult.singleMs.toFixed(1)} ms (${(audio * 1000 / peerResult.singleMs).toFixed(0)}x real time); ${CONCURRENT} at once: ${peerResult.concurrentMs.toFixed(1)} ms`);
console.log(JSON.stringify({
  bench: 'simple-route',
  peer: 'day-one server (ws + JS audio work on the main thread)',
  ratio_vs_peer: Number((peerResult.singleMs / oursResult.singleMs).toFixed(3)),
  ratio_vs_peer_concurrent: Number((peerResult.concurrentMs / oursResult.concurrentMs).toFixed(3)),
  stream_ms: Number(oursResult.singleMs.toFixed(2)),
  x_real_time: Number((audio * 1000 / oursResult.singleMs).toFixed(1)),
  concurrent_streams: CONCURRENT,
  concurrent_ms: Number(oursResult.concurrentMs.toFixed(2)),
  peer_stream_ms: Number(peerResult.singleMs.toFixed(2)),
}));
