// deploy/k8s/: every manifest is one valid YAML document of the expected kind; the selectors,
// ports, probes, shutdown timings, autoscaling metric and ingress routes agree with each other
// and with the server (its defaults, routes, metric names and measured capacity).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { loadConfig, settingsTable } from '../../src/config.js';
import { HEALTH_PATH, LIVENESS_PATH } from '../../src/server.js';
import { loadStaticFiles } from '../../src/static-files.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const K8S = path.join(ROOT, 'deploy/k8s');

// The probes' routes are the server's own: readiness (HEALTH_PATH) answers 503 while the models
// load or while draining; liveness (LIVENESS_PATH) answers 200 whenever the event loop does.
const READY_PATH = HEALTH_PATH;
const LIVE_PATH = LIVENESS_PATH;

// ---------------------------------------------------------------------------------------------
// The parts of the Kubernetes objects these tests read.

type Labels = Record<string, string>;
interface Meta { name?: string; namespace?: string; labels?: Labels; annotations?: Record<string, string> }
interface Manifest { apiVersion?: string; kind?: string; metadata?: Meta }
interface HttpGet { path?: string; port?: string | number }
interface Probe { httpGet?: HttpGet; periodSeconds?: number; timeoutSeconds?: number; failureThreshold?: number }
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { resourceFieldRef?: { containerName?: string; resource?: string; divisor?: string | number } };
}
interface Resources { requests?: Record<string, string | number>; limits?: Record<string, string | number> }
interface Container {
  name: string;
  image?: string;
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  env?: EnvVar[];
  resources?: Resources;
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command?: string[] }; sleep?: { seconds?: number } } };
}
interface Deployment extends Manifest {
  spec: {
    replicas?: number;
    selector: { matchLabels: Labels };
    template: {
      metadata: Meta;
      spec: {
        terminationGracePeriodSeconds?: number;
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
        containers: Container[];
        topologySpreadConstraints?: { labelSelector?: { matchLabels?: Labels } }[];
      };
    };
  };
}
interface Service extends Manifest {
  spec: { type?: string; selector: Labels; ports: { name?: string; port: number; targetPort?: string | number }[] };
}
interface IngressPath { path: string; pathType: string; backend: { service: { name: string; port: { name?: string; number?: number } } } }
interface Ingress extends Manifest {
  spec: { ingressClassName?: string; rules: { host?: string; http: { paths: IngressPath[] } }[] };
}
interface MetricTarget { type: string; averageValue?: string | number; averageUtilization?: number }
interface HpaMetric {
  type: string;
  pods?: { metric: { name: string }; target: MetricTarget };
  resource?: { name: string; target: MetricTarget };
}
interface ScalingRules { stabilizationWindowSeconds?: number; policies?: { type: string; value: number; periodSeconds: number }[] }
interface Hpa extends Manifest {
  spec: {
    scaleTargetRef: { apiVersion: string; kind: string; name: string };
    minReplicas?: number;
    maxReplicas: number;
    metrics: HpaMetric[];
    behavior?: { scaleUp?: ScalingRules; scaleDown?: ScalingRules };
  };
}
interface Pdb extends Manifest { spec: { maxUnavailable?: number | string; minAvailable?: number | string; selector: { matchLabels: Labels } } }
interface ConfigMap extends Manifest { data: Record<string, string> }
interface AdapterRule {
  seriesQuery: string;
  resources?: { overrides?: Record<string, { resource: string }> };
  name?: { matches?: string; as?: string };
  metricsQuery: string;
}
interface Kustomization extends Manifest { resources: string[]; images?: { name: string; newName?: string; newTag?: string }[] }

/** One YAML document, parsed strictly (duplicate keys, warnings and several documents fail). */
function parseOne(text: string, what: string): unknown {
  const docs = parseAllDocuments(text);
  assert.ok(Array.isArray(docs), `${what}: YAML`);
  assert.equal(docs.length, 1, `${what}: one YAML document`);
  const doc = docs[0]!;
  assert.deepEqual(doc.errors.map((e) => e.message), [], `${what}: YAML errors`);
  assert.deepEqual(doc.warnings.map((e) => e.message), [], `${what}: YAML warnings`);
  const value: unknown = doc.toJS();
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), `${what}: a mapping`);
  return value;
}

function load<T extends Manifest>(file: string): T {
  return parseOne(readFileSync(path.join(K8S, file), 'utf8'), `deploy/k8s/${file}`) as T;
}

const deployment = load<Deployment>('deployment.yaml');
const service = load<Service>('service.yaml');
const ingress = load<Ingress>('ingress.yaml');
const hpa = load<Hpa>('hpa.yaml');
const pdb = load<Pdb>('pod-disruption-budget.yaml');
const adapter = load<ConfigMap>('prometheus-adapter.yaml');
const kustomization = load<Kustomization>('kustomization.yaml');

const defaults = loadConfig({}, []);
const podLabels = deployment.spec.template.metadata.labels ?? {};

function theContainer(): Container {
  const containers = deployment.spec.template.spec.containers;
  assert.equal(containers.length, 1, 'one container');
  return containers[0]!;
}

function env(name: string): EnvVar | undefined {
  return (theContainer().env ?? []).find((e) => e.name === name);
}

/** The container port a Service targetPort or probe port (a number or a port name) points at. */
function containerPort(port: string | number | undefined): number {
  assert.ok(port !== undefined, 'a port is given');
  if (typeof port === 'number') return port;
  const named = (theContainer().ports ?? []).find((p) => p.name === port);
  assert.ok(named, `the container has a port named ${port}`);
  return named.containerPort;
}

/** Kubernetes CPU quantity in cores ("2", 2, "1500m"). */
function cores(q: string | number | undefined): number {
  assert.ok(q !== undefined, 'a CPU quantity');
  if (typeof q === 'number') return q;
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(q);
  assert.ok(m, `CPU quantity ${q}`);
  return Number(m[1]) / (m[2] === 'm' ? 1000 : 1);
}

/** The value an env var gets in the pod: literal, or a resourceFieldRef on this container. */
function envValue(e: EnvVar): string {
  if (e.value !== undefined) return e.value;
  const ref = e.valueFrom?.resourceFieldRef;
  assert.ok(ref, `${e.name}: a literal value or a resourceFieldRef`);
  assert.equal(ref.containerName, theContainer().name, `${e.name}: refers to this container`);
  const [kind, resource] = (ref.resource ?? '').split('.') as [string, string | undefined];
  assert.ok((kind === 'limits' || kind === 'requests') && resource === 'cpu', `${e.name}: from the CPU request or limit, got ${ref.resource}`);
  const quantity = theContainer().resources?.[kind]?.[resource];
  // The downward API rounds up to whole divisors.
  return String(Math.ceil(cores(quantity) / cores(ref.divisor ?? 1)));
}

/** Seconds from a preStop hook (`exec: [sleep, N]` or the `sleep` action). */
function preStopSeconds(): number {
  const hook = theContainer().lifecycle?.preStop;
  assert.ok(hook, 'a preStop hook');
  if (hook.sleep) return hook.sleep.seconds ?? 0;
  const command = hook.exec?.command ?? [];
  assert.equal(command.length, 2, `preStop is ["sleep", N], got ${JSON.stringify(command)}`);
  assert.equal(command[0], 'sleep');
  const seconds = Number(command[1]);
  assert.ok(Number.isFinite(seconds) && seconds > 0, `preStop sleeps a positive number of seconds, got ${command[1]}`);
  return seconds;
}

function includes(labels: Labels, selector: Labels | undefined, what: string): void {
  assert.ok(selector && Object.keys(selector).length > 0, `${what} selects by some label`);
  for (const [k, v] of Object.entries(selector)) assert.equal(labels[k], v, `${what}: pod label ${k}=${v}`);
}

/** Does an Ingress path rule take `url` (Kubernetes' Exact and Prefix semantics)? */
function ingressTakes(rule: IngressPath, url: string): boolean {
  if (rule.pathType === 'Exact') return url === rule.path;
  assert.equal(rule.pathType, 'Prefix', `path ${rule.path}: Exact or Prefix`);
  const prefix = rule.path.replace(/\/+$/, '');
  return prefix === '' || url === prefix || url.startsWith(prefix + '/');
}

// ---------------------------------------------------------------------------------------------

describe('deploy/k8s', () => {
  it('kustomization.yaml lists every manifest in the folder, and only those', () => {
    const files = readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
    assert.ok(files.length >= 6, `${files.length} manifests`);
    assert.deepEqual([...kustomization.resources].sort(), files);
    assert.equal(new Set(kustomization.resources).size, kustomization.resources.length, 'no manifest listed twice');
    const image = theContainer().image ?? '';
    assert.ok((kustomization.images ?? []).some((i) => i.name === image.split(':')[0]), `kustomization sets the image ${image}`);
  });

  it('every manifest is of the expected kind and API version, with a valid name', () => {
    const expected: [string, Manifest, string, string][] = [
      ['deployment.yaml', deployment, 'apps/v1', 'Deployment'],
      ['service.yaml', service, 'v1', 'Service'],
      ['ingress.yaml', ingress, 'networking.k8s.io/v1', 'Ingress'],
      ['hpa.yaml', hpa, 'autoscaling/v2', 'HorizontalPodAutoscaler'],
      ['pod-disruption-budget.yaml', pdb, 'policy/v1', 'PodDisruptionBudget'],
      ['prometheus-adapter.yaml', adapter, 'v1', 'ConfigMap'],
      ['kustomization.yaml', kustomization, 'kustomize.config.k8s.io/v1beta1', 'Kustomization'],
    ];
    for (const [file, m, apiVersion, kind] of expected) {
      assert.equal(m.apiVersion, apiVersion, `${file}: apiVersion`);
      assert.equal(m.kind, kind, `${file}: kind`);
      if (kind === 'Kustomization') continue;
      assert.match(m.metadata?.name ?? '', /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, `${file}: metadata.name is a DNS label`);
    }
  });

  it('the Deployment, Service, PDB and spread constraint all select the pods by their labels', () => {
    includes(podLabels, deployment.spec.selector.matchLabels, 'Deployment selector');
    includes(podLabels, service.spec.selector, 'Service selector');
    includes(podLabels, pdb.spec.selector.matchLabels, 'PodDisruptionBudget selector');
    for (const c of deployment.spec.template.spec.topologySpreadConstraints ?? []) {
      includes(podLabels, c.labelSelector?.matchLabels, 'topology spread constraint');
    }
  });

  it('Service targetPort = container port = the server\'s default PORT (and the scrape annotation)', () => {
    assert.equal(defaults.port, 8080);
    assert.equal(env('PORT'), undefined, 'PORT is left at its default');
    const ports = theContainer().ports ?? [];
    assert.equal(ports.length, 1, 'one container port');
    assert.equal(ports[0]!.containerPort, defaults.port);
    assert.equal(service.spec.type ?? 'ClusterIP', 'ClusterIP');
    assert.equal(service.spec.ports.length, 1, 'one Service port');
    assert.equal(containerPort(service.spec.ports[0]!.targetPort ?? service.spec.ports[0]!.port), defaults.port);
    assert.equal(Number(deployment.spec.template.metadata.annotations?.['prometheus.io/port']), defaults.port);
    assert.equal(deployment.spec.template.metadata.annotations?.['prometheus.io/path'], '/metrics');
  });

  it('readiness and startup probe the health route, liveness the live route, on the server port', () => {
    const c = theContainer();
    for (const [which, probe, route] of [
      ['readiness', c.readinessProbe, READY_PATH],
      ['startup', c.startupProbe, READY_PATH],
      ['liveness', c.livenessProbe, LIVE_PATH],
    ] as const) {
      assert.ok(probe?.httpGet, `${which} probe is an HTTP GET`);
      assert.equal(probe.httpGet.path, route, `${which} probe path`);
      assert.equal(containerPort(probe.httpGet.port), defaults.port, `${which} probe port`);
    }
    // Loading and warming the models took about a second here; the startup probe allows a minute
    // at least before liveness (which never fails a loading server anyway) takes over.
    const startup = c.startupProbe!;
    assert.ok((startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3) >= 60, 'startup probe allows at least 60 s');
  });

  it('every env var is a server setting whose value the server accepts', () => {
    const known = new Set(settingsTable().map((s) => s.env));
    const values: Record<string, string> = {};
    for (const e of theContainer().env ?? []) {
      assert.ok(known.has(e.name), `${e.name} is a setting of src/config.ts`);
      values[e.name] = envValue(e);
    }
    assert.doesNotThrow(() => loadConfig(values, []), 'loadConfig accepts the pod\'s environment');
  });

  it('terminationGracePeriodSeconds > preStop sleep + DRAIN_SECONDS + the trace flush', () => {
    const drain = env('DRAIN_SECONDS');
    assert.ok(drain, 'DRAIN_SECONDS is set explicitly, next to the grace period it is tied to');
    const drainSeconds = loadConfig({ DRAIN_SECONDS: envValue(drain) }, []).drainSeconds;
    // After the drain, main.ts flushes batched spans for at most shutdownTracing()'s timeout.
    const flush = /export async function shutdownTracing\(timeoutMs = (\d+)\)/.exec(readFileSync(path.join(ROOT, 'src/tracing.ts'), 'utf8'));
    assert.ok(flush, 'src/tracing.ts: shutdownTracing(timeoutMs = N)');
    const flushSeconds = Number(flush[1]) / 1000;
    const grace = deployment.spec.template.spec.terminationGracePeriodSeconds;
    assert.ok(typeof grace === 'number', 'terminationGracePeriodSeconds is set');
    const preStop = preStopSeconds();
    assert.ok(grace > preStop + drainSeconds + flushSeconds,
      `grace ${grace} s > preStop ${preStop} s + DRAIN_SECONDS ${drainSeconds} s + trace flush ${flushSeconds} s`);
  });

  it('CPU requests = limits in whole cores; THREADS and WORKERS, when set, follow the CPU limit', () => {
    const r = theContainer().resources;
    const limit = cores(r?.limits?.['cpu']);
    assert.equal(cores(r?.requests?.['cpu']), limit, 'CPU request = limit');
    assert.ok(Number.isInteger(limit) && limit >= 1, `whole cores, got ${limit}`);
    assert.ok(r?.limits?.['memory'] !== undefined && r.requests?.['memory'] === r.limits['memory'], 'memory request = limit (Guaranteed QoS)');
    for (const name of ['THREADS', 'WORKERS']) {
      const e = env(name);
      if (e) assert.equal(envValue(e), String(limit), `${name} = the CPU limit`);
    }
  });

  it('the pod runs as a non-root user', () => {
    const sc = deployment.spec.template.spec.securityContext;
    assert.equal(sc?.runAsNonRoot, true);
    assert.ok(typeof sc.runAsUser === 'number' && sc.runAsUser > 0, 'runAsUser is a non-root uid');
  });

  it('the HPA scales the Deployment on streams per pod and on CPU, and scales down slowly', () => {
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: deployment.apiVersion, kind: 'Deployment', name: deployment.metadata?.name });
    assert.equal(deployment.spec.replicas, undefined, 'the Deployment leaves replicas to the HPA');
    const streams = hpa.spec.metrics.find((m) => m.type === 'Pods' && m.pods?.metric.name === 'streams_active');
    assert.equal(streams?.pods?.target.type, 'AverageValue');
    const used = hpa.spec.metrics.find((m) => m.type === 'Pods' && m.pods?.metric.name === 'stream_capacity_used');
    assert.equal(used?.pods?.target.type, 'AverageValue');
    assert.equal(used.pods.target.averageValue, '700m', 'scale out at 70 % of the capacity the pods report');
    const cpu = hpa.spec.metrics.find((m) => m.type === 'Resource');
    assert.equal(cpu?.resource?.name, 'cpu');
    assert.equal(cpu.resource.target.type, 'Utilization');
    const min = hpa.spec.minReplicas ?? 1;
    assert.ok(min >= 2 && hpa.spec.maxReplicas >= min, `${min}..${hpa.spec.maxReplicas} replicas`);
    const down = hpa.spec.behavior?.scaleDown?.stabilizationWindowSeconds;
    const up = hpa.spec.behavior?.scaleUp?.stabilizationWindowSeconds ?? 0;
    assert.ok(typeof down === 'number' && down >= 300 && down > up, `scale-down stabilization ${down} s (>= 300 s, longer than scale-up's ${up} s)`);
    // A voluntary disruption never takes every pod of the smallest fleet.
    assert.ok(typeof pdb.spec.maxUnavailable === 'number' && pdb.spec.maxUnavailable < min, 'PDB maxUnavailable < minReplicas');
  });

  it('the streams-per-pod target is below the measured capacity of a pod', () => {
    const target = Number(hpa.spec.metrics.find((m) => m.type === 'Pods' && m.pods?.metric.name === 'streams_active')?.pods?.target.averageValue);
    const results = readFileSync(path.join(ROOT, 'bench/RESULTS.md'), 'utf8');
    // The capacity bench's conservative figure: real speech, utterances ending in bursts, no interims.
    const measured = /^\| bursts_off_ours_streams \| (\d+) \|$/m.exec(results);
    assert.ok(measured, 'bench/RESULTS.md has capacity: bursts_off_ours_streams');
    // The figure is for the bench machine's 2 cores; scale by the pod's CPU limit.
    const perPod = Number(measured[1]) * cores(theContainer().resources?.limits?.['cpu']) / 2;
    assert.ok(target > 0 && target < perPod, `target ${target} streams per pod < measured ${perPod}`);
  });

  it('the adapter rules serve streams_active and the capacity in use (from streams_admissible) per pod, under the HPA\'s metric names', () => {
    assert.equal(adapter.metadata?.namespace, 'monitoring', 'the adapter\'s namespace');
    const config = parseOne(adapter.data['config.yaml'] ?? '', 'prometheus-adapter config.yaml') as { rules?: AdapterRule[] };
    const rules = config.rules ?? [];
    assert.equal(rules.length, 2, 'two rules');
    const hpaNames = hpa.spec.metrics.filter((m) => m.type === 'Pods').map((m) => m.pods?.metric.name);
    for (const [rule, series, served] of [[rules[0]!, 'streams_active', 'streams_active'], [rules[1]!, 'streams_admissible', 'stream_capacity_used']] as const) {
      assert.equal(/^([a-zA-Z_:][\w:]*)/.exec(rule.seriesQuery)?.[1], series, 'the series queried');
      assert.equal(rule.resources?.overrides?.['namespace']?.resource, 'namespace');
      assert.equal(rule.resources?.overrides?.['pod']?.resource, 'pod');
      assert.ok(new RegExp(rule.name?.matches ?? '^$').test(series), 'name.matches takes the series');
      assert.equal(rule.name?.as, served);
      assert.ok(hpaNames.includes(served), `the HPA scales on ${served}`);
    }
    // Summed over routes per pod, so the route label does not split the per-pod value.
    assert.match(rules[0]!.metricsQuery, /^sum\(<<\.Series>>\{<<\.LabelMatchers>>\}\) by \(<<\.GroupBy>>\)$/);
    assert.match(rules[1]!.metricsQuery, /^sum\(streams_active\{<<\.LabelMatchers>>\}\) by \(<<\.GroupBy>>\) \/ clamp_min\(/);
  });

  it('the Ingress reaches every /api/v1 route and the live page, not /metrics, through the Service', () => {
    assert.equal(ingress.spec.ingressClassName, 'nginx');
    const paths = ingress.spec.rules.flatMap((r) => r.http.paths);
    for (const p of paths) {
      assert.equal(p.backend.service.name, service.metadata?.name, `${p.path}: backend is the Service`);
      const port = p.backend.service.port;
      assert.ok(service.spec.ports.some((sp) => (port.name !== undefined ? sp.name === port.name : sp.port === port.number)), `${p.path}: a Service port`);
    }
    const server = readFileSync(path.join(ROOT, 'src/server.ts'), 'utf8');
    const apiRoutes = [...new Set([...server.matchAll(/'(\/api\/v1\/[\w/]+)'/g)].map((m) => m[1]!)), READY_PATH, LIVE_PATH];
    assert.ok(apiRoutes.includes('/api/v1/simple') && apiRoutes.includes('/api/v1/segmented'), `routes found in src/server.ts: ${apiRoutes.join(', ')}`);
    const pages = [...loadStaticFiles().keys()];
    assert.ok(pages.includes('/'), 'the live page');
    for (const url of [...apiRoutes, ...pages]) assert.ok(paths.some((p) => ingressTakes(p, url)), `the Ingress routes ${url}`);
    assert.ok(!paths.some((p) => ingressTakes(p, '/metrics')), '/metrics stays inside the cluster');
  });

  it('ingress-nginx keeps quiet WebSockets open longer than the server does, and buffers nothing', () => {
    const a = ingress.metadata?.annotations ?? {};
    for (const timeout of ['proxy-read-timeout', 'proxy-send-timeout']) {
      const seconds = Number(a[`nginx.ingress.kubernetes.io/${timeout}`]);
      assert.ok(seconds > defaults.idleTimeoutSeconds, `${timeout} ${seconds} s > IDLE_TIMEOUT_SECONDS ${defaults.idleTimeoutSeconds} s`);
    }
    assert.equal(a['nginx.ingress.kubernetes.io/proxy-buffering'], 'off');
    assert.equal(a['nginx.ingress.kubernetes.io/proxy-request-buffering'], 'off');
    assert.match(a['nginx.ingress.kubernetes.io/proxy-body-size'] ?? '', /^\d+[kmg]?$/);
  });

  it('ingressTakes() follows Kubernetes path matching', () => {
    const rule = (p: string, pathType: string): IngressPath => ({ path: p, pathType, backend: { service: { name: 's', port: { name: 'http' } } } });
    assert.equal(ingressTakes(rule('/api/v1/', 'Prefix'), '/api/v1/simple'), true);
    assert.equal(ingressTakes(rule('/api/v1/', 'Prefix'), '/api/v1'), true);
    assert.equal(ingressTakes(rule('/api/v1', 'Prefix'), '/api/v10'), false);
    assert.equal(ingressTakes(rule('/', 'Prefix'), '/metrics'), true);
    assert.equal(ingressTakes(rule('/', 'Exact'), '/metrics'), false);
    assert.equal(ingressTakes(rule('/app.js', 'Exact'), '/app.js'), true);
  });
});
