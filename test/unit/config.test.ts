// Settings: env, flags, defaults; a bad value names the setting and stops start-up.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULT_STUB, loadConfig, settingsTable, threadpoolSize } from '../../src/config.js';
import { cpuBudget } from '../../src/cpu-budget.js';
import { runMain } from '../helpers/server.js';

describe('config', () => {
  it('has a default for everything', () => {
    const config = loadConfig({}, []);
    assert.equal(config.port, 8080);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.model, 'moonshine-tiny');
    assert.deepEqual(config.stub, DEFAULT_STUB);
    assert.equal(config.maxChannels, 8);
  });

  it('runs one model job per core by default (THREADS=0), and THREADS when set', () => {
    assert.equal(loadConfig({}, []).threads, cpuBudget());
    assert.equal(loadConfig({ THREADS: '0' }, []).threads, cpuBudget());
    assert.equal(loadConfig({ THREADS: '3' }, []).threads, 3);
    assert.equal(threadpoolSize(loadConfig({ THREADS: '3' }, [])), 6, 'the threadpool: as many threads again for decode and VAD');
  });

  it('reads environment variables, and flags win over them', () => {
    const config = loadConfig({ PORT: '0', MAX_CHANNELS: '2' }, ['--max-channels', '4', '--stub={"delay_ms":5}']);
    assert.equal(config.port, 0);
    assert.equal(config.maxChannels, 4);
    assert.equal(config.stub.delay_ms, 5);
    assert.equal(config.stub.failure_rate, 0);
  });

  for (const [env, pattern] of [
    [{ PORT: '70000' }, /^PORT \(--port\) must be an integer from 0 to 65535/],
    [{ PORT: 'abc' }, /^PORT/],
    [{ MODEL: 'whisper' }, /^MODEL \(--model\) must be one of moonshine-tiny, stub/],
    [{ STUB: '{"delay":5}' }, /^STUB \(--stub\) has an unknown option "delay"/],
    [{ STUB: '{"failure_rate":2}' }, /^STUB \(--stub\) option "failure_rate" must be a number from 0 to 1/],
    [{ STUB: 'nope' }, /^STUB \(--stub\) must be a JSON object/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL/],
  ] as [Record<string, string>, RegExp][]) {
    it(`refuses ${JSON.stringify(env)} naming the setting`, () => {
      assert.throws(() => loadConfig(env, []), (e: unknown) => e instanceof ConfigError && pattern.test(e.message));
    });
  }

  it('refuses unknown flags', () => {
    assert.throws(() => loadConfig({}, ['--prot', '1']), /unknown argument --prot/);
  });

  it('npm start -- --help lists every setting with its variable, flag and default', async () => {
    const { code, stdout } = await runMain(['--help']);
    assert.equal(code, 0);
    for (const s of settingsTable()) {
      assert.ok(stdout.includes(s.flag) && stdout.includes(s.env), s.env);
    }
  });

  it('a bad value stops start-up with a non-zero exit and a message naming the setting', async () => {
    const { code, stderr } = await runMain([], { MAX_CHANNELS: '0' });
    assert.equal(code, 2);
    assert.match(stderr, /MAX_CHANNELS/);
  });

  it('the README documents every setting', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const s of settingsTable()) assert.ok(readme.includes(`\`${s.env}\``), `README lists ${s.env}`);
  });
});
