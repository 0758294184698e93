// Server TLS (TLS_CERT_FILE, TLS_KEY_FILE, TLS_KEY_PASSPHRASE, TLS_CA_FILE): every route over
// https:// and wss:// on the one port, in every worker thread; bad files stop start-up naming the
// setting and the file; SIGHUP serves new connections a new certificate while a live stream goes
// on. Certificates are made at test time with the openssl CLI (test/helpers/tls-certs.ts).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls, { type PeerCertificate } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { Client } from '../helpers/client.js';
import { sendPaced } from '../helpers/pace.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { runMain, startServer, type TestServer } from '../helpers/server.js';
import { encryptKey, issue, makeCa, type Issued } from '../helpers/tls-certs.js';
import { FIXTURES, readWav, startMessage } from '../helpers/wav.js';
import { UTTERANCE_A, UTTERANCE_B, wordErrors, words } from '../helpers/wer.js';

const FIXTURE = 'two_utterances_16k_mono_s16.wav';
// As test/integration/asr.test.ts bounds Moonshine tiny on this fixture.
const UTTERANCE_WER_BOUND = 0.75;
const TOTAL_WER_BOUND = 0.35;

let dir: string;
let root: Issued; // the CA clients trust
let serverA: Issued;
let serverB: Issued;
let other: Issued; // signed by the same CA, another key: a mismatch with A's certificate
before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'speech-tls-test-'));
  root = makeCa(dir, 'test-root');
  serverA = issue(dir, 'server-a', root);
  serverB = issue(dir, 'server-b', root);
  other = issue(dir, 'other', root);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const tlsEnv = (cert: Issued, extra: Record<string, string> = {}): Record<string, string> => ({ TLS_CERT_FILE: cert.cert, TLS_KEY_FILE: cert.key, ...extra });

interface Answer { status: number; body: string; peer: PeerCertificate }

/** GET over https trusting `ca` only (no agent: every request is a new TLS connection). */
function httpsGet(port: number, route: string, ca: string | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: route, agent: false, timeout: 10_000, ...(ca !== undefined ? { ca: readFileSync(ca) } : {}) }, (res) => {
      const peer = (res.socket as tls.TLSSocket).getPeerCertificate();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peer }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** The certificate a new TLS connection to the port is served. */
function peerCertificate(port: number): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(root.cert) }, () => {
      const peer = socket.getPeerCertificate();
      socket.end();
      resolve(peer);
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
    socket.on('error', reject);
  });
}

const cli = (args: string[], env: Record<string, string> = {}): Promise<CliRun> => runCli(args, env, 60_000);

async function waitForLog(server: TestServer, msg: string, from: number, ms = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const hit = server.logs.slice(from).find((l) => l['msg'] === msg);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no "${msg}" log line in ${ms} ms; last: ${JSON.stringify(server.logs.slice(-3))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('server TLS: every route over https:// and wss:// (2 worker threads, Moonshine)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ MODEL: 'moonshine-tiny', WORKERS: '2', ...tlsEnv(serverA) });
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  it('health, liveness, /metrics and the page answer over https to a client trusting the CA', async () => {
    const listening = server.logs.find((l) => l['msg'] === 'listening');
    assert.equal(listening?.['tls'], true);
    const announced = server.logs.find((l) => l['msg'] === 'tls certificate');
    assert.equal(announced?.['serial'], serverA.serial);
    // Several requests, so that both workers' listen sockets answer some.
    for (let i = 0; i < 6; i++) {
      const health = await httpsGet(server.port, '/api/v1/health', root.cert);
      assert.equal(health.status, 200, health.body);
      assert.equal((JSON.parse(health.body) as { workers: number }).workers, 2);
      assert.equal(health.peer.serialNumber, serverA.serial);
    }
    assert.equal((await httpsGet(server.port, '/api/v1/health/live', root.cert)).body, '{"alive":true}');
    const metrics = await httpsGet(server.port, '/metrics', root.cert);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^connections_active\{worker_thread="1"\} \d+$/m);
    const page = await httpsGet(server.port, '/', root.cert);
    assert.equal(page.status, 200);
    assert.match(page.body, /<title>speech-server — live<\/title>/);
  });

  it('a client that does not trust the CA is refused by its TLS stack; plain http gets no answer', async () => {
    await assert.rejects(httpsGet(server.port, '/api/v1/health', undefined), (e: NodeJS.ErrnoException) => e.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    await assert.rejects(new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: server.port, path: '/api/v1/health', agent: false, timeout: 5000 }, resolve);
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
    }));
  });

  const finalTexts = (stdout: string): string[] => stdout.split('\n').filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { type: string; is_final?: boolean; text?: string })
    .filter((e) => e.type === 'segment' && e.is_final === true).map((e) => e.text ?? '');

  function assertTranscript(texts: string[], stdout: string): void {
    assert.equal(texts.length, 2, stdout);
    let errors = 0;
    for (const [i, reference] of [UTTERANCE_A, UTTERANCE_B].entries()) {
      const e = wordErrors(reference, texts[i]!);
      assert.ok(e / words(reference).length <= UTTERANCE_WER_BOUND, `utterance ${i}: ${e} word errors in "${texts[i]}"`);
      errors += e;
    }
    const total = words(UTTERANCE_A).length + words(UTTERANCE_B).length;
    assert.ok(errors / total <= TOTAL_WER_BOUND, `${errors}/${total} word errors in ${JSON.stringify(texts)}`);
  }

  it('speech-client stream --ca streams the fixture over wss:// on the segmented route and gets its transcript', async () => {
    const r = await cli(['stream', path.join(FIXTURES, FIXTURE), '--url', `wss://127.0.0.1:${server.port}/api/v1/segmented`, '--ca', root.cert, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assertTranscript(finalTexts(r.stdout), r.stdout);
  });

  it('NODE_EXTRA_CA_CERTS does for the CLI what --ca does; with neither it fails on the certificate', async () => {
    const url = `wss://127.0.0.1:${server.port}/api/v1/segmented`;
    const trusted = await cli(['stream', path.join(FIXTURES, FIXTURE), '--url', url, '--json'], { NODE_EXTRA_CA_CERTS: root.cert });
    assert.equal(trusted.code, 0, trusted.stderr);
    assertTranscript(finalTexts(trusted.stdout), trusted.stdout);
    const untrusted = await cli(['stream', path.join(FIXTURES, FIXTURE), '--url', url, '--json']);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /cannot connect to 127\.0\.0\.1:\d+: unable to verify the first certificate/);
    const missing = await cli(['stream', path.join(FIXTURES, FIXTURE), '--url', url, '--ca', path.join(dir, 'nope.crt')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read --ca .*nope\.crt: ENOENT/);
  });

  it('speech-client load --ca runs over wss:// and samples the server\'s /metrics over https', async () => {
    const r = await cli(['load', path.join(FIXTURES, FIXTURE), '--url', `wss://127.0.0.1:${server.port}/api/v1/segmented`, '--ca', root.cert,
      '--streams', '2', '--no-real-time', '--repeat', '1', '--metrics-interval', '0.2']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { failures: Record<string, number>; final_lag_ms: { count: number }; server: { samples: number; error: string | null; rss_bytes_max: number | null } };
    assert.deepEqual(report.failures, {});
    assert.equal(report.final_lag_ms.count, 4, 'two finals per stream');
    assert.equal(report.server.error, null);
    assert.ok(report.server.samples >= 1 && report.server.rss_bytes_max !== null && report.server.rss_bytes_max > 0, JSON.stringify(report.server));
  });
});

describe('server TLS: a chain kept apart (TLS_CA_FILE) and an encrypted key (TLS_KEY_PASSPHRASE)', () => {
  it('sends the intermediate so that a client trusting only the root verifies the chain', { timeout: 60_000 }, async () => {
    const chainDir = path.join(dir, 'chain');
    mkdirSync(chainDir);
    const intermediate = issue(chainDir, 'intermediate', root, true);
    const leaf = issue(chainDir, 'leaf', intermediate);
    const key = encryptKey(leaf.key, 'correct horse');
    const server = await startServer({ WORKERS: '1', TLS_CERT_FILE: leaf.cert, TLS_KEY_FILE: key, TLS_KEY_PASSPHRASE: 'correct horse', TLS_CA_FILE: intermediate.cert });
    try {
      const health = await httpsGet(server.port, '/api/v1/health', root.cert);
      assert.equal(health.status, 200);
      assert.equal(health.peer.serialNumber, leaf.serial);
      assert.equal(server.logs.find((l) => l['msg'] === 'tls certificate')?.['chain_length'], 1);
    } finally {
      assert.equal(await server.stop(), 0);
    }
    // The same leaf without its intermediate: the client cannot build the chain.
    const bare = await startServer({ WORKERS: '1', TLS_CERT_FILE: leaf.cert, TLS_KEY_FILE: leaf.key });
    try {
      await assert.rejects(httpsGet(bare.port, '/api/v1/health', root.cert), (e: NodeJS.ErrnoException) => e.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    } finally {
      await bare.stop();
    }
  });
});

describe('server TLS: bad settings and files stop start-up with exit 2, naming the setting and the file', () => {
  const cases: [string, () => { env?: Record<string, string>; args?: string[] }, RegExp][] = [
    ['only TLS_CERT_FILE', () => ({ env: { TLS_CERT_FILE: serverA.cert } }), /TLS_CERT_FILE \(--tls-cert-file\) is set but TLS_KEY_FILE \(--tls-key-file\) is not/],
    ['only TLS_KEY_FILE', () => ({ env: { TLS_KEY_FILE: serverA.key } }), /TLS_KEY_FILE \(--tls-key-file\) is set but TLS_CERT_FILE \(--tls-cert-file\) is not/],
    ['TLS_CA_FILE without the certificate', () => ({ env: { TLS_CA_FILE: root.cert } }), /TLS_CA_FILE \(--tls-ca-file\) is set but TLS_CERT_FILE and TLS_KEY_FILE are not/],
    ['a missing certificate file', () => ({ env: tlsEnv({ ...serverA, cert: path.join(dir, 'missing.crt') }) }), /TLS_CERT_FILE \(--tls-cert-file\) \S+missing\.crt cannot be read: no such file/],
    // Tests run as root, which reads any file whatever its mode: a directory is the unreadable file.
    ['an unreadable key file', () => ({ env: tlsEnv({ ...serverA, key: dir }) }), /TLS_KEY_FILE \(--tls-key-file\) \S+ cannot be read: is a directory/],
    ['a certificate file with no certificate', () => ({ env: tlsEnv({ ...serverA, cert: serverA.key }) }), /TLS_CERT_FILE \(--tls-cert-file\) \S+server-a\.key holds no PEM certificate/],
    ['a corrupt certificate', () => {
      const bad = path.join(dir, 'corrupt.crt');
      writeFileSync(bad, '-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
      return { env: tlsEnv({ ...serverA, cert: bad }) };
    }, /TLS_CERT_FILE \(--tls-cert-file\) \S+corrupt\.crt: certificate 1 cannot be parsed/],
    ['a key file that is no key', () => ({ env: tlsEnv({ ...serverA, key: serverA.cert }) }), /TLS_KEY_FILE \(--tls-key-file\) \S+server-a\.crt is not a PEM private key/],
    ['a key that does not match the certificate', () => ({ env: tlsEnv({ ...serverA, key: other.key }) }),
      /TLS_KEY_FILE \(--tls-key-file\) \S+other\.key does not match the certificate in TLS_CERT_FILE \(--tls-cert-file\) \S+server-a\.crt/],
    ['the mismatch given as flags', () => ({ args: ['--tls-cert-file', serverA.cert, '--tls-key-file', other.key] }), /TLS_KEY_FILE \(--tls-key-file\) \S+other\.key does not match/],
    ['an encrypted key without TLS_KEY_PASSPHRASE', () => ({ env: tlsEnv({ ...serverA, key: encryptKey(serverA.key, 'secret') }) }), /TLS_KEY_FILE \(--tls-key-file\) \S+server-a\.enc\.key is encrypted: set TLS_KEY_PASSPHRASE/],
    ['a wrong TLS_KEY_PASSPHRASE', () => ({ env: tlsEnv({ ...serverA, key: encryptKey(serverA.key, 'secret') }, { TLS_KEY_PASSPHRASE: 'wrong' }) }),
      /TLS_KEY_PASSPHRASE \(--tls-key-passphrase\) does not decrypt TLS_KEY_FILE \(--tls-key-file\) \S+server-a\.enc\.key/],
    ['a TLS_CA_FILE that did not issue the certificate', () => ({ env: tlsEnv(serverA, { TLS_CA_FILE: serverB.cert }) }),
      /TLS_CA_FILE \(--tls-ca-file\) \S+server-b\.crt holds no issuer of the certificate CN=server-a/],
  ];
  for (const [name, setup, pattern] of cases) {
    it(name, async () => {
      const { env = {}, args = [] } = setup();
      const { code, stderr } = await runMain(args, { MODEL: 'stub', ...env });
      assert.equal(code, 2, stderr);
      assert.match(stderr, pattern);
      assert.match(stderr, /^configuration error: /);
    });
  }
});

for (const workers of ['1', '2']) {
  describe(`server TLS: SIGHUP re-reads the certificate, live streams go on (WORKERS=${workers})`, () => {
    it('new connections get the new certificate, a stream open across the reload gets all its results; a bad reload keeps the old certificate', { timeout: 60_000 }, async () => {
      const live = path.join(dir, `live-${workers}`);
      mkdirSync(live);
      const files = { cert: path.join(live, 'server.crt'), key: path.join(live, 'server.key') };
      copyFileSync(serverA.cert, files.cert);
      copyFileSync(serverA.key, files.key);
      const server = await startServer({ MODEL: 'stub', WORKERS: workers, TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.key });
      try {
        // Enough connections to reach every worker's listen socket.
        for (let i = 0; i < 6; i++) assert.equal((await peerCertificate(server.port)).serialNumber, serverA.serial);

        const wav = readWav(FIXTURE);
        const bytesPerSecond = wav.sampleRate * 2;
        const half = Math.round(5 * bytesPerSecond); // the first utterance and the start of the silence after it
        const client = await Client.connect(`wss://127.0.0.1:${server.port}/api/v1/segmented`, {}, { ca: readFileSync(root.cert) });
        client.sendJson(startMessage(wav));
        await sendPaced(client, wav.data.subarray(0, half), bytesPerSecond, 0.1, 10);
        await client.waitFor((events) => events.some((e) => e['is_final'] === true));

        copyFileSync(serverB.cert, files.cert);
        copyFileSync(serverB.key, files.key);
        let from = server.logs.length;
        server.process.kill('SIGHUP');
        const reloaded = await waitForLog(server, 'tls certificate reloaded', from);
        assert.equal(reloaded['serial'], serverB.serial);
        for (let i = 0; i < 6; i++) {
          const peer = await peerCertificate(server.port);
          assert.equal(peer.serialNumber, serverB.serial);
          assert.equal(peer.fingerprint256, serverB.fingerprint256);
        }

        // The stream opened before the reload is still served: the rest of the audio, stop, finals, 1000.
        await sendPaced(client, wav.data.subarray(half), bytesPerSecond, 0.1, 10);
        client.sendJson({ request: 'stop', disconnect: true });
        assert.equal(await client.closed, 1000);
        const finals = client.events.filter((e) => e.type === 'segment' && e['is_final'] === true);
        assert.equal(finals.length, 2, JSON.stringify(client.events));
        assert.deepEqual(client.events.filter((e) => e.type === 'error'), []);

        // A key that does not match: refused, logged, the current certificate stays.
        copyFileSync(other.key, files.key);
        from = server.logs.length;
        server.process.kill('SIGHUP');
        const failed = await waitForLog(server, 'tls reload failed: new connections keep the previous certificate', from);
        assert.match(String(failed['error']), /TLS_KEY_FILE \(--tls-key-file\) \S+server\.key does not match the certificate/);
        assert.equal((await peerCertificate(server.port)).serialNumber, serverB.serial);
        const health = await httpsGet(server.port, '/api/v1/health', root.cert);
        assert.equal(health.status, 200);
        assert.equal((JSON.parse(health.body) as { connections: number }).connections, 0, 'the stream\'s connection was counted out once');
      } finally {
        assert.equal(await server.stop(), 0, 'drains and exits 0 after the reloads');
      }
    });
  });
}
