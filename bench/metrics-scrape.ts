// /metrics at 1000 live streams: how long a scrape takes (server side, from request to the last
// byte) while every stream is open and has sent audio. Peer: a bare prom-client registry with
// only its default metrics, scraped in this process, same run. Target: <= 20 ms.
import { Registry, collectDefaultMetrics } from 'prom-client';
import WebSocket from 'ws';
import { readWav, startMessage } from '../test/helpers/wav.js';
import { startServerProcess } from './server-process.js';
import { percentile } from './statistics.js';

const quick = process.argv.includes('--quick');
const STREAMS = quick ? 50 : 1000;
const SCRAPES = quick ? 10 : 100;
const wav = readWav('two_utterances_16k_mono_s16.wav');


const server = await startServerProcess('src/main.ts', { MODEL: 'stub' });
try {
  const port = server.port;
  // Live streams on both routes, each mid-utterance, so every per-stream structure exists.
  const sockets: WebSocket[] = [];
  for (let i = 0; i < STREAMS; i += 100) {
    sockets.push(...await Promise.all(Array.from({ length: Math.min(100, STREAMS - i) }, (_, j) => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/${(i + j) % 2 ? 'simple' : 'segmented'}`);
      ws.once('open', () => {
        ws.send(startMessage(wav));
        ws.send(wav.data.subarray(0, 32000 * 2));
        resolve(ws);
      });
      ws.once('error', reject);
    }))));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const url = `http://127.0.0.1:${port}/metrics`;
  const health = (await (await fetch(`http://127.0.0.1:${port}/api/v1/health`)).json()) as { streams: number };
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < SCRAPES; i++) {
    const t = performance.now();
    const text = await (await fetch(url)).text();
    times.push(performance.now() - t);
    bytes = text.length;
  }
  // Peer: prom-client's defaults alone, in-process (no HTTP): the floor any prom-client server pays.
  const peer = new Registry();
  collectDefaultMetrics({ register: peer });
  const peerTimes: number[] = [];
  for (let i = 0; i < SCRAPES; i++) {
    const t = performance.now();
    await peer.metrics();
    peerTimes.push(performance.now() - t);
  }
  for (const ws of sockets) ws.terminate();
  const p50 = percentile(times, 50);
  const p99 = percentile(times, 99);
  console.log(`${health.streams} live streams; /metrics ${(bytes / 1024).toFixed(0)} kB; scrape over HTTP p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (target 20 ms)`);
  console.log(`prom-client defaults alone, in-process: p50 ${percentile(peerTimes, 50).toFixed(2)} ms`);
  console.log(JSON.stringify({
    bench: 'metrics-scrape',
    ratio_vs_peer_p50: Number((p50 / percentile(peerTimes, 50)).toFixed(2)),
    ratio_vs_target_p99: Number((p99 / 20).toFixed(3)),
    live_streams: health.streams,
    scrape_p50_ms: Number(p50.toFixed(2)),
    scrape_p99_ms: Number(p99.toFixed(2)),
    exposition_kb: Math.round(bytes / 1024),
    peer_p50_ms: Number(percentile(peerTimes, 50).toFixed(2)),
    peer: 'prom-client 15 default metrics alone, in-process (no HTTP)',
  }));
} finally {
  await server.stop();
}
