// Settings: env, flags, defaults; a bad value names the setting and stops start-up.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULT_STUB, loadConfig, settingsTable, threadpoolSize } from '../../src/config.js';
import { ERROR_CODES } from '../../src/protocol.js';
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
    assert.equal(threadpoolSize({ ...loadConfig({}, []), threads: 600 }), 1024, 'never more than libuv makes (THREADS=0 on 600 cores)');
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
    [{ MODEL: 'whisper' }, /^MODEL \(--model\) must be one of moonshine-tiny, moonshine-base, stub/],
    [{ STUB: '{"delay":5}' }, /^STUB \(--stub\) has an unknown option "delay"/],
    [{ STUB: '{"failure_rate":2}' }, /^STUB \(--stub\) option "failure_rate" must be a number from 0 to 1/],
    [{ STUB: 'nope' }, /^STUB \(--stub\) must be a JSON object/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL/],
    // uWebSockets.js aborts the process on these instead of throwing.
    [{ IDLE_TIMEOUT_SECONDS: '1' }, /^IDLE_TIMEOUT_SECONDS \(--idle-timeout-seconds\) must be 0 \(never\) or from 8 to 960/],
    [{ IDLE_TIMEOUT_SECONDS: '7' }, /^IDLE_TIMEOUT_SECONDS/],
    [{ IDLE_TIMEOUT_SECONDS: '961' }, /^IDLE_TIMEOUT_SECONDS .* from 0 to 960/],
    [{ ALLOWED_ORIGINS: 'https://app.example/path' }, /^ALLOWED_ORIGINS .*not an origin/],
    [{ ALLOWED_ORIGINS: 'app.example' }, /^ALLOWED_ORIGINS .*not an origin/],
    [{ ALLOWED_HOSTS: 'a host' }, /^ALLOWED_HOSTS .*not a host/],
    [{ MAX_CONNECTIONS_PER_ADDRESS: '-1' }, /^MAX_CONNECTIONS_PER_ADDRESS/],
    [{ START_TIMEOUT_SECONDS: 'soon' }, /^START_TIMEOUT_SECONDS/],
    [{ MAX_CONNECTION_SECONDS: '-5' }, /^MAX_CONNECTION_SECONDS/],
    [{ MAX_MESSAGES_PER_SECOND: '1.5' }, /^MAX_MESSAGES_PER_SECOND/],
    [{ MAX_PROTOCOL_ERRORS: 'many' }, /^MAX_PROTOCOL_ERRORS/],
    [{ METRICS_CACHE_SECONDS: '-1' }, /^METRICS_CACHE_SECONDS/],
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

  it('reads the list settings and the accepted edge values', () => {
    const config = loadConfig({ ALLOWED_ORIGINS: 'https://App.example, http://localhost:3000/', ALLOWED_HOSTS: 'Speech.example,,[::1]', IDLE_TIMEOUT_SECONDS: '8' }, []);
    assert.deepEqual(config.allowedOrigins, ['https://app.example', 'http://localhost:3000']);
    assert.deepEqual(config.allowedHosts, ['speech.example', '[::1]']);
    assert.equal(config.idleTimeoutSeconds, 8);
    assert.equal(loadConfig({ IDLE_TIMEOUT_SECONDS: '0' }, []).idleTimeoutSeconds, 0);
    assert.deepEqual(loadConfig({}, []).allowedOrigins, []);
    assert.equal(loadConfig({}, []).maxConnectionsPerAddress, 2500, 'a quarter of MAX_CONNECTIONS');
    assert.equal(loadConfig({ MAX_CONNECTIONS: '20' }, []).maxConnectionsPerAddress, 100, 'at least 100');
    assert.equal(loadConfig({ MAX_CONNECTIONS_PER_ADDRESS: '0' }, []).maxConnectionsPerAddress, 0, '0: no limit');
  });

  it('IDLE_TIMEOUT_SECONDS=5 stops start-up with exit 2 naming it (uWebSockets.js used to abort the process)', async () => {
    const { code, stderr } = await runMain([], { MODEL: 'stub', IDLE_TIMEOUT_SECONDS: '5' });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /IDLE_TIMEOUT_SECONDS/);
  });

  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  /** The rows of the README table whose header row is `header`: cells with their backticks. */
  function table(header: string): string[][] {
    const lines = readme.split('\n');
    const at = lines.findIndex((l) => l.trim() === header);
    assert.ok(at >= 0, `README has a table headed ${header}`);
    const rows: string[][] = [];
    for (const line of lines.slice(at + 2)) {
      if (!line.startsWith('|')) break;
      rows.push(line.slice(1, -1).split(' | ').map((c) => c.trim()));
    }
    return rows;
  }

  it('the README\'s settings table has exactly one row per setting, with its variable and flag', () => {
    const rows = table('| variable | flag | default | meaning |');
    const documented = rows.map((r) => [r[0], r[1]]);
    const expected = settingsTable().map((s) => [`\`${s.env}\``, `\`${s.flag}\``]);
    for (const row of expected) assert.ok(documented.some((d) => d[0] === row[0] && d[1] === row[1]), `README's settings table lists ${row.join(' ')}`);
    for (const row of documented) assert.ok(expected.some((e) => e[0] === row[0]), `README's settings table lists ${row[0]}, which is no setting`);
    assert.equal(documented.length, expected.length, 'one row each');
  });

  it('the README\'s error table lists every error code, and no other', () => {
    const codes = table('| code | when | then |').map((r) => r[0]);
    assert.deepEqual([...codes].sort(), Object.keys(ERROR_CODES).map((c) => `\`${c}\``).sort());
  });
});
