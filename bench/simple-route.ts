// /api/v1/simple with the stub model at zero delay: how long one 11.84 s stream takes end to end
// when sent as fast as possible, alone and with 8 at once. Peer: the day-one server
// (bench/peers/day-one-server.ts: ws + JavaScript audio work on the main thread), same run.
import { streamFile } from '../test/helpers/client.js';
import { readWav, startMessage } from '../test/helpers/wav.js';
import { startServerProcess } from './server-process.js';
import { median } from './statistics.js';

const quick = process.argv.includes('--quick');
const wav = readWav('two_utterances_16k_mono_s16.wav');
const REPEATS = quick ? 2 : 30;
const CONCURRENT = quick ? 2 : 8;
const CHUNK = 3200; // 100 ms of 16 kHz s16 per frame

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

const ours = await startServerProcess('src/main.ts', { MODEL: 'stub', SIMPLE_WINDOW_SECONDS: '5' });
const oursResult = await measure(ours.port);
await ours.stop();
// The day-one peer has no models to warm: it only says `listening`.
const peer = await startServerProcess('bench/peers/day-one-server.ts', { SIMPLE_WINDOW_SECONDS: '5' }, 'listening');
const peerResult = await measure(peer.port);
await peer.stop();

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
