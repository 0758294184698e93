// The live page (src/web/) in a real browser: Debian's chromium driven by playwright-core, with a
// fake microphone playing a fixture in real time, against a real server process. Skipped only
// when /usr/bin/chromium is absent, except the TLS case, which fails then.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startServer, type TestServer } from '../helpers/server.js';
import { UTTERANCE_A, UTTERANCE_B, wordErrors, words } from '../helpers/wer.js';
import { issue, makeCa, spkiHash } from '../helpers/tls-certs.js';

const CHROMIUM = '/usr/bin/chromium';
const FIXTURE = path.resolve(import.meta.dirname, '../fixtures/two_utterances_16k_mono_s16.wav');
const SCREENSHOT = path.resolve(import.meta.dirname, '../out/browser.png');
// Moonshine tiny on this synthetic voice, captured through the browser (at 44.1 kHz here). The
// browser starts sending a little after the fake microphone starts playing, so the utterances'
// cut points, and with them the model's errors on utterance A, shift from run to run. Measured
// over 9 runs (2026-11-26): A 1-6 word errors of 9 ("brown-fark stump told her the rainy dog"),
// B 0-2 of 15; both together at most 6 of 24. Bounds with a margin over that:
const UTTERANCE_WER_BOUND = 0.78; // 7 of A's 9 words
const TOTAL_WER_BOUND = 0.4; // 9 of 24
// The fixture is 11.8 s long and plays in real time; both finals are due well before this.
const FINALS_TIMEOUT_MS = 25_000;

interface Row { final: boolean; times: string; ttfr: string; lag: string; lagMs: number | undefined; interims: number; text: string }

/** Chromium with a fake microphone playing FIXTURE once, in a fresh profile; closed after `use`. */
async function withPage(t: TestContext, use: (page: Page) => Promise<void>, extraArgs: string[] = []): Promise<void> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'speech-browser-'));
  let context: BrowserContext | undefined;
  const problems: string[] = [];
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 900, height: 800 },
      args: [
        '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
        `--use-file-for-fake-audio-capture=${FIXTURE}%noloop`,
        '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', ...extraArgs,
      ],
    });
    const page = context.pages()[0] ?? await context.newPage();
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => { if (m.type() === 'error') t.diagnostic(`console: ${m.text()}`); });
    await use(page);
    assert.deepEqual(problems, [], 'no uncaught exceptions in the page');
  } finally {
    await context?.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

// The project type-checks without the DOM library; these are the few DOM shapes that the
// functions evaluated inside the page use.
interface PageElement {
  textContent: string | null;
  dataset: Record<string, string | undefined>;
  querySelector(selector: string): PageElement | null;
}
declare const document: { querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>; querySelector(selector: string): PageElement | null };

// (No named functions inside: tsx would wrap them in a helper that does not exist in the page.)
const rows = (page: Page): Promise<Row[]> => page.evaluate(() => [...document.querySelectorAll('#transcript li.utterance')].map((li) => ({
  final: li.dataset['final'] === 'true',
  times: li.querySelector('.times')?.textContent ?? '',
  ttfr: li.querySelector('.ttfr')?.textContent ?? '',
  lag: li.querySelector('.lag')?.textContent ?? '',
  lagMs: li.querySelector('.lag')?.dataset['ms'] === undefined ? undefined : Number(li.querySelector('.lag')?.dataset['ms']),
  interims: Number(li.dataset['interims'] ?? 0),
  text: li.querySelector('.text')?.textContent ?? '',
})));

const messages = (page: Page): Promise<string[]> => page.evaluate(() => [...document.querySelectorAll('#messages li')].map((li) => li.textContent ?? ''));

const vadState = (page: Page): Promise<Record<string, string | undefined>> => page.evaluate(() => ({ ...document.querySelector('#vad')?.dataset }));

const finalCount = (page: Page, n: number, timeout: number) => page.waitForFunction(
  (k) => document.querySelectorAll('#transcript li.utterance[data-final="true"]').length >= k, n, { timeout });

async function waitClosed(page: Page): Promise<string> {
  await page.waitForSelector('#status[data-state="closed"]', { timeout: 15_000 });
  return (await page.textContent('#status')) ?? '';
}

async function withServer(env: Record<string, string>, use: (server: TestServer) => Promise<void>): Promise<void> {
  const server = await startServer(env);
  try {
    await use(server);
  } finally {
    await server.stop();
  }
}

describe('live page in chromium', () => {
  it('transcribes a fake microphone on the segmented route: VAD, interims, two finals, latencies', { timeout: 120_000 }, async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} is absent (apt-get install chromium)`);
      return;
    }
    await withServer({ MODEL: 'moonshine-tiny' }, (server) => withPage(t, async (page) => {
      await page.goto(server.http('/'));
      assert.equal(await page.title(), 'speech-server — live');
      await page.check('input[name="route"][value="segmented"]');
      await page.check('#interim');
      await page.click('#toggle');
      await page.waitForSelector('#status[data-state="streaming"]', { timeout: 10_000 });
      t.diagnostic(`status: ${await page.textContent('#status')}`);
      // A look at the page live: second utterance under way, its interim text shown.
      await page.waitForSelector('#vad[data-vad="speaking"][data-active-count="2"]', { timeout: 15_000 });
      await page.waitForFunction(() => [...document.querySelectorAll('#transcript li.utterance[data-final="false"]')]
        .some((li) => !/^\(empty text\)$/.test(li.querySelector('.text')?.textContent ?? '')), null, { timeout: 5_000 });
      mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-live.png'), fullPage: true });
      await finalCount(page, 2, FINALS_TIMEOUT_MS);
      // The VAD indicator reports silence again after the second utterance.
      await page.waitForSelector('#vad[data-vad="silent"][data-inactive-count="2"]', { timeout: 5_000 });
      await page.click('#toggle');
      const status = await waitClosed(page);
      assert.match(status, /closed normally \(1000\)/);

      const vad = await vadState(page);
      assert.deepEqual(vad, { vad: 'silent', activeCount: '2', inactiveCount: '2' }, 'the indicator went active and back to silent, twice');
      assert.deepEqual(await messages(page), [], 'no error messages');

      const shown = await rows(page);
      for (const r of shown) t.diagnostic(`${r.times} | ${r.ttfr} | ${r.lag} | ${r.interims} interims | "${r.text}"`);
      assert.equal(shown.length, 2, 'two utterance lines');
      let errorsTotal = 0;
      for (const [i, reference] of [UTTERANCE_A, UTTERANCE_B].entries()) {
        const r = shown[i]!;
        assert.ok(r.final, `line ${i} is final`);
        const errors = wordErrors(reference, r.text);
        const n = words(reference).length;
        t.diagnostic(`utterance ${i}: ${errors}/${n} word errors (WER ${(errors / n).toFixed(2)})`);
        assert.ok(errors / n <= UTTERANCE_WER_BOUND, `utterance ${i}: ${errors}/${n} word errors in "${r.text}"`);
        errorsTotal += errors;
        assert.match(r.ttfr, /^first result \d+ ms$/);
        assert.ok(r.lagMs !== undefined && r.lagMs >= 0 && r.lagMs < 5_000, `final lag ${r.lag}`);
        assert.ok(r.interims >= 1, `utterance ${i}: interims were shown before the final`);
      }
      const totalWords = words(UTTERANCE_A).length + words(UTTERANCE_B).length;
      t.diagnostic(`both: ${errorsTotal}/${totalWords} word errors (WER ${(errorsTotal / totalWords).toFixed(2)})`);
      assert.ok(errorsTotal / totalWords <= TOTAL_WER_BOUND, `${errorsTotal}/${totalWords} word errors in both utterances`);

      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      t.diagnostic(`screenshot: ${SCREENSHOT}`);
    }));
  });

  // No skip here: server TLS must be shown working in a browser (.ci/run installs chromium).
  it('over https (TLS_CERT_FILE): the page loads and streams over wss:// on the same port', { timeout: 60_000 }, async (t) => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is needed for the TLS case (apt-get install chromium)`);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'speech-browser-tls-'));
    try {
      const cert = issue(dir, 'server', makeCa(dir, 'browser-root'));
      // Chromium trusts this one key (its profile has no CA store to add the root to); any
      // other certificate is still an error, so the page would not load over a wrong one.
      const trust = [`--ignore-certificate-errors-spki-list=${spkiHash(cert.cert)}`];
      await withServer({ MODEL: 'stub', TLS_CERT_FILE: cert.cert, TLS_KEY_FILE: cert.key }, (server) => withPage(t, async (page) => {
        const url = `https://127.0.0.1:${server.port}/`;
        const response = await page.goto(url);
        assert.equal(response?.status(), 200);
        assert.equal(page.url(), url);
        assert.equal(await page.title(), 'speech-server — live');
        const sockets: string[] = [];
        page.on('websocket', (ws) => sockets.push(ws.url()));
        await page.check('input[name="route"][value="segmented"]');
        await page.click('#toggle');
        await page.waitForSelector('#status[data-state="streaming"]', { timeout: 10_000 });
        await finalCount(page, 1, 15_000);
        await page.click('#toggle');
        assert.match(await waitClosed(page), /closed normally \(1000\)/);
        assert.deepEqual(sockets, [`wss://127.0.0.1:${server.port}/api/v1/segmented`]);
        assert.deepEqual(await messages(page), [], 'no error messages');
        const shown = await rows(page);
        assert.ok(shown.length >= 1);
        assert.match(shown[0]!.text, /^stub model: \d+ samples/);
      }, trust));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with AUTH_TOKEN: a refused connection reveals the token field; with the token it works', { timeout: 60_000 }, async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} is absent (apt-get install chromium)`);
      return;
    }
    const token = 'browser-t0ken';
    await withServer({ MODEL: 'stub', AUTH_TOKEN: token }, (server) => withPage(t, async (page) => {
      const sockets: string[] = [];
      page.on('websocket', (ws) => sockets.push(ws.url()));
      const pageErrors: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
      await page.goto(server.http('/'));
      assert.equal(await page.isVisible('#token'), false, 'no token field until one is needed');

      for (const attempt of [undefined, 'wrong']) {
        if (attempt !== undefined) await page.fill('#token', attempt);
        await page.click('#toggle');
        assert.equal(await waitClosed(page), 'connection refused');
        assert.equal(await page.isVisible('#token'), true, 'the token field is shown');
      }
      const refused = await messages(page);
      assert.equal(refused.length, 2);
      for (const m of refused) assert.match(m, /CONNECTION connection refused \(wrong or missing token\?\)/);

      await page.fill('#token', token);
      await page.click('#toggle');
      await finalCount(page, 1, 15_000);
      await page.click('#toggle');
      assert.match(await waitClosed(page), /closed normally/);
      const shown = await rows(page);
      for (const r of shown) t.diagnostic(`${r.times} | ${r.ttfr} | ${r.lag} | "${r.text}"`);
      assert.ok(shown.length >= 1);
      assert.match(shown[0]!.text, /^stub model: \d+ samples/, 'the stub model\'s count is shown');
      assert.equal((await messages(page)).length, 2, 'no new messages once the token is right');
      // The token went as a subprotocol, never in a URL (where proxies log it).
      assert.ok(sockets.length >= 3 && sockets.every((u) => !u.includes('token')), sockets.join(' '));
      assert.ok(!pageErrors.some((e) => /Content Security Policy/i.test(e)), pageErrors.join('\n'));

      // Remembered for the tab: a reload shows the field already filled in.
      await page.reload();
      assert.equal(await page.inputValue('#token'), token);
      assert.equal(await page.isVisible('#token'), true);
    }));
  });
});
