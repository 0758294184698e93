// The overload bench's flood, in a process of its own so that building and masking its large
// frames does not delay the bench's own health probes and real-time streams (a prober such as a
// kubelet or Prometheus never shares a process with the traffic). Usage:
//   flood-client.ts <port> <clients> <seconds>
// Each client sends the fixture over and over as fast as its socket takes it, reconnecting when
// shed; the last line is JSON: how the server closed the flood's connections, by close code.
import WebSocket from 'ws';
import { readWav, startMessage } from '../test/helpers/wav.js';

const [port, clients, seconds] = process.argv.slice(2).map(Number) as [number, number, number];
const wav = readWav('two_utterances_16k_mono_s16.wav');
// FLOOD_FRAME_BYTES cuts the fixture into frames of that size (default: the whole fixture, 11.8 s, per frame).
const frameBytes = Number(process.env['FLOOD_FRAME_BYTES'] || wav.data.length);
const frames = Array.from({ length: Math.ceil(wav.data.length / frameBytes) }, (_, k) => wav.data.subarray(k * frameBytes, (k + 1) * frameBytes));

async function flood(until: number, closes: Map<number, number>): Promise<void> {
  while (performance.now() < until) {
    // An all-zero mask lets ws skip masking the frames (a pure-JS loop without bufferutil): the
    // load generator shares the server's 2 cores, and its own cost should not be the test.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/segmented`, { generateMask: (mask: Buffer) => { mask.fill(0); } });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const opened = await new Promise<boolean>((resolve) => { ws.once('open', () => resolve(true)); ws.once('error', () => resolve(false)); });
    if (opened) {
      ws.send(startMessage(wav));
      while (ws.readyState === WebSocket.OPEN && performance.now() < until) {
        if (ws.bufferedAmount < 1 << 20) for (const frame of frames) ws.send(frame);
        await new Promise((r) => setTimeout(r, 1));
      }
      if (ws.readyState === WebSocket.OPEN) ws.terminate();
    }
    const code = await closed;
    closes.set(code, (closes.get(code) ?? 0) + 1);
  }
}

const until = performance.now() + seconds * 1000;
const closes = new Map<number, number>();
await Promise.all(Array.from({ length: clients }, () => flood(until, closes)));
console.log(JSON.stringify(Object.fromEntries(closes)));
