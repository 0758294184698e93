// Overload: clients flooding audio far faster than real time are shed with BACKLOG (1008) while
// health keeps answering and a live stream keeps getting its results; afterwards the server
// serves a new stream as if nothing happened. (How fast it answers is measured in bench/overload.ts.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { Client, streamFile } from '../helpers/client.js';
import { sendPaced } from '../helpers/pace.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const wav = readWav('two_utterances_16k_mono_s16.wav');

/** Sends the fixture over and over as fast as the socket takes it; resolves with the close code. */
async function flood(url: string): Promise<number> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.send(startMessage(wav));
  const deadline = Date.now() + 10_000;
  while (ws.readyState === WebSocket.OPEN && Date.now() < deadline) {
    if (ws.bufferedAmount < 1 << 20) ws.send(wav.data);
    await new Promise((r) => setTimeout(r, 1));
  }
  if (ws.readyState === WebSocket.OPEN) ws.terminate();
  return closed;
}

/** The kernel's receive buffer (`ss` skmem rb) of the server's side of each connection to `port`. */
function serverReceiveBuffers(port: number): number[] {
  const out = execFileSync('ss', ['-tmnH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return [...out.matchAll(/\brb(\d+)/g)].map((m) => Number(m[1]));
}

/** An unlabelled gauge's value as the server's /metrics gives it (NaN when absent). */
async function gaugeOf(server: TestServer, name: string): Promise<number> {
  const text = await (await fetch(server.http('/metrics'))).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
}

describe('overload', () => {
  it('bounds each connection\'s TCP receive buffer at SOCKET_RECEIVE_BUFFER (the default 32 KiB, or as set)', async () => {
    // Linux doubles SO_RCVBUF for its bookkeeping; rb is the doubled figure.
    const osDefault = Number(readFileSync('/proc/sys/net/ipv4/tcp_rmem', 'utf8').split(/\s+/)[1]);
    for (const [env, rb] of [[{}, 2 * 32768], [{ SOCKET_RECEIVE_BUFFER: '20000' }, 40000], [{ SOCKET_RECEIVE_BUFFER: '0' }, osDefault]] as const) {
      const server = await startServer({ ...env, WORKERS: '2' });
      try {
        const clients = await Promise.all(Array.from({ length: 4 }, () => Client.connect(server.url('/api/v1/simple'))));
        assert.deepEqual(serverReceiveBuffers(server.port), [rb, rb, rb, rb], `every accepted connection, on either worker (${JSON.stringify(env)})`);
        for (const c of clients) c.ws.terminate();
      } finally {
        await server.stop();
      }
    }
  });

  it('sheds floods with BACKLOG, keeps health and a live stream served, and recovers', async () => {
    const server = await startServer({ MODEL: 'stub', STUB: JSON.stringify({ delay_ms: 5 }), MAX_BACKLOG_SECONDS: '5' });
    try {
      const url = server.url('/api/v1/segmented');
      const live = (async () => {
        const client = await Client.connect(url);
        client.sendJson(startMessage(wav));
        await sendPaced(client, wav.data.subarray(0, 32000 * 5), 32000, 0.1, 1);
        client.sendJson({ request: 'stop', disconnect: true });
        await client.closed;
        return client;
      })();
      const probes: number[] = [];
      const probing = (async () => {
        for (let i = 0; i < 40; i++) {
          probes.push((await fetch(server.http('/api/v1/health'))).status);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const codes = await Promise.all(Array.from({ length: 4 }, () => flood(url)));
      const [client] = await Promise.all([live, probing]);
      assert.deepEqual(codes, [1008, 1008, 1008, 1008], 'every flood was shed');
      assert.ok(probes.every((s) => s === 200), `health answered 200 throughout: ${probes.join(',')}`);
      assert.deepEqual([client.closeCode, client.events.filter((e) => e.type === 'error')], [1000, []], 'the live stream was not shed');
      assert.deepEqual(client.events.map((e) => e.type), ['active', 'inactive', 'segment'], 'its 5 s hold utterance A');
      const metrics = await (await fetch(server.http('/metrics'))).text();
      assert.match(metrics, /errors_total\{kind="BACKLOG"\} [4-9]/);
      // Under MAX_BACKLOG_SECONDS of audio at once: utterance A and its trailing silence.
      const after = await streamFile(url, startMessage(wav), wav.data.subarray(0, 32000 * 4.5), 3200);
      assert.equal(after.closeCode, 1000);
      assert.equal(after.events.filter((e) => e['is_final'] === true).length, 1, 'a new stream afterwards gets its final');
    } finally {
      await server.stop();
    }
  });

  it('admits live streams up to the capacity it measured, refuses the next with OVERLOADED before it runs, and admits again when one ends', async () => {
    // Two model slots, 450 ms per 1 s window: each stream costs 0.45 slot-seconds per second, so
    // the slots serve floor(0.8 * 2 / 0.45) = 3 at the 80 % target; the prior (0.001) admits far more.
    const server = await startServer({
      MODEL: 'stub', STUB: JSON.stringify({ delay_ms: 450 }), SIMPLE_WINDOW_SECONDS: '1', THREADS: '2', WORKERS: '1', MAX_INFERENCE_LAG_SECONDS: '0',
    });
    const gauge = (name: string): Promise<number> => gaugeOf(server, name);
    try {
      assert.ok(await gauge('streams_capacity') > 100, 'before any stream ran, the prior: room for many');
      const silence = new Uint8Array(32000 * 60);
      const kept: Client[] = [];
      const sending: Promise<void>[] = [];
      for (let i = 0; i < 3; i++) {
        const client = await Client.connect(server.url('/api/v1/simple'));
        client.sendJson(startMessage(wav));
        kept.push(client);
        sending.push(sendPaced(client, silence, 32000, 0.1, 1));
      }
      // The cost shows once the streams' windows have run a while (about 15 s).
      const deadline = Date.now() + 45_000;
      while (await gauge('streams_capacity') > 3) {
        assert.ok(Date.now() < deadline, `the capacity was never learnt: streams_capacity ${await gauge('streams_capacity')}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(await gauge('streams_capacity'), 3);
      assert.equal(await gauge('streams_admissible'), 0);
      const newcomer = await Client.connect(server.url('/api/v1/simple'));
      newcomer.sendJson(startMessage(wav));
      assert.equal(await newcomer.closed, 1013, 'refused at its start, before any of its audio runs');
      assert.equal(newcomer.events.length, 1);
      assert.equal(newcomer.events[0]!['code'], 'OVERLOADED');
      assert.match(String(newcomer.events[0]!['message']), /capacity of 3 live streams/);
      // A Realtime session is a live stream too: refused at its upgrade, as OpenAI's clients expect.
      const realtime = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const ws = new WebSocket(server.url('/v1/realtime?intent=transcription'));
        ws.once('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => { body += chunk.toString(); });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        ws.once('open', () => { ws.terminate(); reject(new Error('the Realtime upgrade was accepted over capacity')); });
      });
      assert.equal(realtime.status, 503);
      assert.equal((JSON.parse(realtime.body) as { error: { code: string } }).error.code, 'overloaded');
      // One stream ends: its place is free at once.
      kept[0]!.ws.close();
      await sending[0];
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(await gauge('streams_admissible'), 1);
      const next = await Client.connect(server.url('/api/v1/simple'));
      next.sendJson(startMessage(wav));
      next.ws.send(silence.subarray(0, 32000 * 2), { binary: true });
      await next.waitFor((events) => events.some((e) => e.type === 'segment'), 5000);
      assert.deepEqual(next.events.filter((e) => e.type === 'error'), []);
      for (const c of kept.slice(1)) assert.deepEqual(c.events.filter((e) => e.type === 'error'), [], 'the streams kept are never refused nor shed');
      for (const c of [...kept, next]) c.ws.terminate();
      await Promise.all(sending);
    } finally {
      await server.stop();
    }
  });

  it('over capacity with real-time streams: sheds the youngest with OVERLOADED and 1013, refuses new ones, the oldest keeps real time', async () => {
    // One model slot, 600 ms per 1 s window: the server keeps up with 1.6 real-time streams; 4 come.
    const server = await startServer({
      MODEL: 'stub', STUB: JSON.stringify({ delay_ms: 600 }), SIMPLE_WINDOW_SECONDS: '1', THREADS: '1', WORKERS: '1', MAX_INFERENCE_LAG_SECONDS: '1.5',
    });
    try {
      const idle = await gaugeOf(server, 'streams_admissible');
      assert.ok(idle > 10, `an idle server has room: streams_admissible ${idle}`);
      const audio = wav.data.subarray(0, 32000 * 8);
      const clients: Client[] = [];
      const sending: Promise<void>[] = [];
      for (let i = 0; i < 4; i++) {
        const client = await Client.connect(server.url('/api/v1/simple'));
        client.sendJson(startMessage(wav));
        clients.push(client);
        sending.push(sendPaced(client, audio, 32000, 0.1, 1).catch(() => undefined)); // a shed client's sends may fail
        await new Promise((r) => setTimeout(r, 300));
      }
      // Wait for a shed, then a newcomer is refused while the server recovers.
      await Promise.race(clients.slice(1).map((c) => c.waitFor((events) => events.some((e) => e['code'] === 'OVERLOADED'), 15_000)));
      const newcomer = await Client.connect(server.url('/api/v1/simple'));
      newcomer.sendJson(startMessage(wav));
      assert.equal(await newcomer.closed, 1013, 'a new stream is refused while streams are shed');
      assert.deepEqual(newcomer.events.map((e) => e['code']), ['OVERLOADED']);
      assert.equal(await gaugeOf(server, 'streams_admissible'), 0, 'the autoscaler\'s signal: no room while streams are refused');
      await Promise.all(sending);
      const [oldest, ...younger] = clients;
      oldest!.sendJson({ request: 'stop', disconnect: true });
      assert.equal(await oldest!.closed, 1000);
      assert.deepEqual(oldest!.events.filter((e) => e.type === 'error'), [], 'the oldest stream is never shed');
      assert.equal(oldest!.events.filter((e) => e.type === 'segment').length, 8, 'and gets every window');
      const shed = younger.filter((c) => c.events.some((e) => e['code'] === 'OVERLOADED'));
      assert.ok(shed.length >= 1, 'at least one younger stream is shed');
      for (const c of shed) assert.equal(await c.closed, 1013);
      const res = await fetch(server.http('/metrics'));
      const counted = Number(/^errors_total\{kind="OVERLOADED"\} (\d+)/m.exec(await res.text())?.[1]);
      assert.equal(counted, shed.length + 1, 'every shed stream and the refused newcomer are counted');
      for (const c of younger) if (!shed.includes(c)) c.ws.terminate();
    } finally {
      await server.stop();
    }
  });
});
