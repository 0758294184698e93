// deploy/: the Prometheus config passes promtool, the Grafana dashboard only queries metrics a real
// server exports (in PromQL that promtool parses), and docker-compose mounts files that exist.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { streamFile } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { readWav, startMessage } from '../helpers/wav.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const DEPLOY = path.join(ROOT, 'deploy');

// The deploy files as YAML (the `yaml` package, as the Kubernetes manifest tests read theirs).
type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };
type YamlMap = { [key: string]: Yaml };

function isMap(v: Yaml | undefined): v is YamlMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function map(v: Yaml | undefined, what: string): YamlMap {
  assert.ok(isMap(v), `${what} is a mapping`);
  return v;
}

function list(v: Yaml | undefined, what: string): Yaml[] {
  assert.ok(Array.isArray(v), `${what} is a sequence`);
  return v;
}

/** A scalar as text (YAML reads `8080` as a number, `"8080"` as a string). */
function str(v: Yaml | undefined, what = 'value'): string {
  assert.ok(typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean', `${what} is a scalar`);
  return String(v);
}

function readYaml(file: string): YamlMap {
  return map(parseYaml(readFileSync(path.join(DEPLOY, file), 'utf8')) as Yaml, file);
}

// ---------------------------------------------------------------------------------------------
// The dashboard and its PromQL.

interface Target { refId?: string; expr?: string; datasource?: { type?: string; uid?: string } }
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
  collapsed?: boolean;
}
interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: { name: string; type: string; query?: unknown; definition?: string; current?: { value?: unknown } }[] };
}

const dashboard = JSON.parse(readFileSync(path.join(DEPLOY, 'grafana/dashboard.json'), 'utf8')) as Dashboard;

/** Every panel, with the panels of collapsed rows. */
function allPanels(): Panel[] {
  return (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

function exprs(): { where: string; expr: string }[] {
  return allPanels().flatMap((p) => (p.targets ?? []).map((t) => ({ where: `${p.title} / ${t.refId}`, expr: t.expr ?? '' })));
}

/** Grafana's variables replaced by values PromQL accepts: intervals by 1m, the rest by `.*`. */
function expandVariables(expr: string): string {
  return expr.replace(/\$\{?(\w+)(?::\w+)?\}?/g, (_, name: string) => (name.startsWith('__') ? '1m' : '.*'));
}

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'atan2', 'inf', 'nan']);

/** The metric names a PromQL expression selects (not functions, aggregations, labels or keywords). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names = new Set<string>();
  const token = /(\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])*)|([a-zA-Z_:][\w:]*)(\s*\()?/gi;
  for (const m of bare.matchAll(token)) {
    const name = m[2];
    if (name === undefined || m[3] !== undefined || PROMQL_KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

// ---------------------------------------------------------------------------------------------
// What a real server exports: every sample name, and every series name its TYPE lines promise
// (so families with no series yet, like errors_total before the first error, count too).

let server: TestServer;
let exported: Set<string>;
let withSamples: Set<string>;

before(async () => {
  server = await startServer({ MODEL: 'stub' });
  const wav = readWav('two_utterances_16k_mono_s16.wav');
  await streamFile(server.url('/api/v1/segmented'), startMessage(wav), wav.data, 8192);
  await streamFile(server.url('/api/v1/simple'), startMessage(wav), wav.data, 8192);
  const res = await fetch(server.http('/metrics'));
  assert.equal(res.status, 200);
  exported = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']); // added by Prometheus
  withSamples = new Set();
  for (const line of (await res.text()).split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      const [, name, kind] = type as unknown as [string, string, string];
      const series = kind === 'histogram' ? ['_bucket', '_sum', '_count'] : kind === 'summary' ? ['', '_sum', '_count'] : [''];
      for (const suffix of series) exported.add(name + suffix);
    } else if (line !== '' && !line.startsWith('#')) {
      const name = /^[a-zA-Z_:][\w:]*/.exec(line)?.[0];
      assert.ok(name, `sample line ${line}`);
      exported.add(name);
      withSamples.add(name);
    }
  }
});
after(async () => { await server.stop(); });

describe('deploy/prometheus.yml', () => {
  it('passes promtool check config', async () => {
    const { stdout } = await run('promtool', ['check', 'config', path.join(DEPLOY, 'prometheus.yml')]);
    assert.match(stdout, /SUCCESS/);
  });

  it('scrapes the compose service speech-server:8080 every 5 s as job speech-server', () => {
    const config = readYaml('prometheus.yml');
    const jobs = list(config['scrape_configs'], 'scrape_configs').map((j) => map(j, 'a scrape config'));
    const job = jobs.find((j) => j['job_name'] === 'speech-server');
    assert.ok(job, 'job speech-server');
    assert.equal(job['scrape_interval'] ?? map(config['global'], 'global')['scrape_interval'], '5s');
    assert.equal(job['metrics_path'] ?? '/metrics', '/metrics');
    const targets = list(job['static_configs'], 'static_configs').flatMap((s) => list(map(s, 'static config')['targets'], 'targets'));
    assert.deepEqual(targets, ['speech-server:8080']);
  });
});

describe('deploy/grafana/dashboard.json', () => {
  it('is a Grafana dashboard whose panels all have a title, a place and at least one query', () => {
    assert.equal(typeof dashboard.uid, 'string');
    assert.equal(typeof dashboard.title, 'string');
    assert.ok((dashboard.schemaVersion ?? 0) >= 36 && (dashboard.schemaVersion ?? 0) <= 41, `schemaVersion ${dashboard.schemaVersion}`);
    const panels = allPanels();
    assert.ok(panels.length >= 10, `${panels.length} panels`);
    const ids = new Set<number>();
    for (const p of panels) {
      assert.ok(typeof p.title === 'string' && p.title.trim() !== '', `panel ${p.id} has a title`);
      assert.ok(typeof p.id === 'number' && !ids.has(p.id), `panel "${p.title}" has a unique id`);
      ids.add(p.id);
      assert.ok(p.gridPos && p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24 && p.gridPos.h > 0, `panel "${p.title}" fits the 24-column grid`);
      if (p.type === 'row') continue; // a row heads a group of panels; it has no query of its own
      assert.ok((p.targets ?? []).length >= 1, `panel "${p.title}" has a target`);
      for (const t of p.targets ?? []) {
        assert.ok(typeof t.expr === 'string' && t.expr.trim() !== '', `panel "${p.title}" target ${t.refId} has an expression`);
        for (const ds of [p.datasource, t.datasource]) {
          assert.equal(ds?.type, 'prometheus', `panel "${p.title}" queries Prometheus`);
          assert.ok(ds.uid === '${datasource}' || ds.uid === 'prometheus', `panel "${p.title}" uses the datasource variable or uid prometheus`);
        }
      }
    }
  });

  it('covers the brief: connections, streams, RTF and latency per stage, task metrics, panics, errors, event loop, threadpool, audio, user-felt latency', () => {
    const all = exprs().map((e) => e.expr).join('\n');
    for (const needed of [
      'connections_active', 'streams_active',
      'histogram_quantile(0.5, sum by (le, pipeline_stage) (rate(rtf_bucket', 'histogram_quantile(0.99, sum by (le, pipeline_stage) (rate(rtf_bucket',
      'processing_duration_seconds_bucket',
      'task_poll_total', 'task_slow_poll_total', 'task_long_delay_total', 'task_scheduled_duration_seconds_total', 'task_scheduled_total', 'task_idled_total',
      'task_panic_total', 'errors_total', 'nodejs_eventloop_lag_p99_seconds',
      'threadpool_jobs_queued', 'threadpool_jobs_running', 'threadpool_worker_busy_seconds_total', 'audio_received_seconds_total',
      'final_latency_seconds_bucket', 'first_event_latency_seconds_bucket', 'eventloop_utilization',
    ]) assert.ok(all.includes(needed), `the dashboard queries ${needed}`);
  });

  it('defaults its datasource variable to the provisioned Prometheus (uid prometheus)', () => {
    const vars = dashboard.templating?.list ?? [];
    const ds = vars.find((v) => v.name === 'datasource');
    assert.ok(ds, 'a datasource variable');
    assert.equal(ds.type, 'datasource');
    assert.equal(ds.query, 'prometheus');
    assert.equal(ds.current?.value, 'prometheus');
    const provisioned = list(readYaml('grafana/provisioning/datasources/prometheus.yml')['datasources'], 'datasources').map((d) => map(d, 'a datasource'));
    assert.ok(provisioned.some((d) => d['uid'] === 'prometheus' && d['type'] === 'prometheus'), 'provisioned datasource uid prometheus');
  });

  it('every expression is PromQL that promtool parses', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'deploy-test-'));
    try {
      const rules = exprs().map((e, i) => ({ record: `dashboard:expr_${i}`, expr: expandVariables(e.expr) }));
      const file = path.join(dir, 'rules.yml');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }, null, 2)); // JSON is YAML
      const { stdout } = await run('promtool', ['check', 'rules', file]).catch((e: { stdout?: string; stderr?: string }) => {
        assert.fail(`promtool check rules: ${e.stdout ?? ''}${e.stderr ?? ''}\n${rules.map((r) => `${r.record}: ${r.expr}`).join('\n')}`);
      });
      assert.match(stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('queries only metric names the server exports', (t) => {
    const unknown: string[] = [];
    const noSeries = new Set<string>();
    const queries = [...exprs()];
    for (const v of dashboard.templating?.list ?? []) {
      const def = v.definition ?? (typeof v.query === 'string' ? v.query : '');
      const labelValues = /label_values\(\s*([a-zA-Z_:][\w:]*)\s*,/.exec(def);
      if (labelValues) queries.push({ where: `variable ${v.name}`, expr: labelValues[1]! });
    }
    for (const { where, expr } of queries) {
      const names = metricNames(expr);
      assert.ok(names.length >= 1, `${where}: selects some metric (${expr})`);
      for (const name of names) {
        if (!exported.has(name)) unknown.push(`${where}: ${name}`);
        else if (!withSamples.has(name) && !['up', 'scrape_duration_seconds', 'scrape_samples_scraped'].includes(name)) noSeries.add(name);
      }
    }
    assert.deepEqual(unknown, [], 'metric names in the dashboard that the server does not export');
    if (noSeries.size > 0) t.diagnostic(`declared but without series after streaming (panels show "No data" until they occur): ${[...noSeries].join(', ')}`);
  });

  it('metricNames() finds metrics, not functions, labels, keywords or durations', () => {
    assert.deepEqual(
      metricNames('histogram_quantile(0.99, sum by (le, pipeline_stage) (rate(rtf_bucket{instance=~"$instance", x="a{b}"}[1m] offset 5m)))'),
      ['rtf_bucket'],
    );
    assert.deepEqual(
      metricNames('sum by (task) (rate(a_total[1m])) / on (task) group_left sum without (x) (b_total) > bool 0.5e3 and c'),
      ['a_total', 'b_total', 'c'],
    );
  });
});

describe('deploy/docker-compose.yml', () => {
  const compose = readYaml('docker-compose.yml');
  const services = map(compose['services'], 'services');
  const service = (name: string) => map(services[name], `service ${name}`);
  const env = (name: string) => map(service(name)['environment'], `${name} environment`);
  const volumes = (name: string) => list(service(name)['volumes'] ?? [], `${name} volumes`).map((v) => str(v, `a ${name} volume`));

  it('has the speech server, Prometheus, Grafana and Jaeger', () => {
    assert.deepEqual(Object.keys(services).sort(), ['grafana', 'jaeger', 'prometheus', 'speech-server']);
  });

  it('builds the server from the repository root on port 8080 and sends traces to Jaeger over OTLP/HTTP', () => {
    const build = map(service('speech-server')['build'], 'build');
    const context = path.resolve(DEPLOY, str(build['context'], 'build context'));
    assert.equal(context, ROOT);
    assert.equal(path.resolve(context, str(build['dockerfile'] ?? 'Dockerfile', 'dockerfile')), path.join(ROOT, 'Dockerfile'));
    assert.ok(list(service('speech-server')['ports'], 'ports').map((x) => str(x)).some((p) => /^(\d+:)?8080$/.test(p)));
    assert.equal(str(env('speech-server')['PORT'] ?? '8080', 'PORT'), '8080');
    assert.equal(env('speech-server')['OTEL_EXPORTER_OTLP_ENDPOINT'], 'http://jaeger:4318');
    assert.match(str(service('jaeger')['image'], 'jaeger image'), /^jaegertracing\/all-in-one(:|$)/);
    assert.ok(list(service('jaeger')['ports'], 'jaeger ports').map((x) => str(x)).some((p) => p.endsWith(':4318:4318')));
  });

  it('publishes Grafana (anonymous admin), Prometheus and Jaeger on 127.0.0.1 only', () => {
    for (const name of ['grafana', 'prometheus', 'jaeger']) {
      const ports = list(service(name)['ports'] ?? [], `${name} ports`).map((x) => str(x));
      assert.ok(ports.length > 0, `${name} publishes a port`);
      // "HOST:CONTAINER" publishes on every interface; only "127.0.0.1:HOST:CONTAINER" stays local.
      for (const p of ports) assert.match(p, /^127\.0\.0\.1:\d+:\d+$/, `${name} publishes ${p}`);
    }
  });

  it('mounts files and folders that exist, with Prometheus and Grafana reading them where they look', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const v of list(map(svc, name)['volumes'] ?? [], `${name} volumes`).map((x) => str(x))) {
        const [source] = v.split(':') as [string];
        if (!source.startsWith('.') && !source.startsWith('/')) {
          assert.ok(Object.hasOwn(map(compose['volumes'], 'top-level volumes'), source), `${name}: named volume ${source} is declared`);
          continue;
        }
        assert.ok(existsSync(path.resolve(DEPLOY, source)), `${name}: ${source} exists`);
      }
    }
    const mountOf = (name: string, source: string) => {
      const v = volumes(name).find((x) => x.split(':')[0] === source);
      assert.ok(v, `${name} mounts ${source}`);
      return v.split(':')[1]!;
    };

    assert.match(str(service('prometheus')['image'], 'prometheus image'), /^prom\/prometheus(:|$)/);
    const promConfig = mountOf('prometheus', './prometheus.yml');
    const command = list(service('prometheus')['command'] ?? [], 'prometheus command').map((x) => str(x));
    assert.equal(command.find((c) => c.startsWith('--config.file='))?.split('=')[1] ?? '/etc/prometheus/prometheus.yml', promConfig);

    // Grafana: provisioning folders, and the dashboard inside the folder the provider reads.
    assert.equal(mountOf('grafana', './grafana/provisioning/datasources'), '/etc/grafana/provisioning/datasources');
    assert.equal(mountOf('grafana', './grafana/provisioning/dashboards'), '/etc/grafana/provisioning/dashboards');
    const dashboardPath = mountOf('grafana', './grafana/dashboard.json');
    const providers = list(readYaml('grafana/provisioning/dashboards/speech-server.yml')['providers'], 'providers').map((p) => map(p, 'provider'));
    assert.ok(providers.some((p) => p['type'] === 'file' && path.posix.dirname(dashboardPath) === map(p['options'], 'options')['path']),
      `a file provider reads ${path.posix.dirname(dashboardPath)}`);
    assert.equal(env('grafana')['GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH'], dashboardPath);

    // The provisioned datasource is the compose Prometheus.
    const sources = list(readYaml('grafana/provisioning/datasources/prometheus.yml')['datasources'], 'datasources').map((d) => map(d, 'datasource'));
    assert.ok(list(service('prometheus')['ports'], 'prometheus ports').map((x) => str(x)).some((p) => p.endsWith(':9090') || p === '9090'));
    assert.ok(sources.some((d) => d['url'] === 'http://prometheus:9090'));
  });
});
