// `npm start`: read the settings, size the threadpool, serve until SIGINT/SIGTERM. With one
// worker the server runs on this thread; with more, this thread is the primary of N worker
// threads sharing the port (src/cluster/primary.ts).
import { ConfigError, helpText, loadConfig, threadpoolSize, workerCount, type Config } from './config.js';
import { Logger } from './log.js';
import { TlsError, loadTls, tlsEnabled, type CertificateInfo } from './tls.js';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(helpText() + '\n');
  process.exit(0);
}

let config: Config;
try {
  config = loadConfig(process.env, argv);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  process.stderr.write(`configuration error: ${e.message}\n`);
  process.exit(2);
}

// libuv sizes its pool (shared by the worker threads) from UV_THREADPOOL_SIZE when the first job
// is queued, and Node's ESM loader queued one (an async file read) before this module ran. So
// when the variable is not already right, the process replaces itself (execv: same pid, same
// arguments) with it set; the new image starts its pool at the right size.
const poolSize = String(threadpoolSize(config));
if (process.env.UV_THREADPOOL_SIZE !== poolSize) {
  process.env.UV_THREADPOOL_SIZE = poolSize;
  (await import('./native/binding.js')).addon.reexec([process.execPath, ...process.execArgv, ...process.argv.slice(1)]);
}
const log = new Logger(config.logLevel);
let tracing: typeof import('./tracing.js');
try {
  tracing = await import('./tracing.js'); // sets up OpenTelemetry when OTEL_EXPORTER_OTLP_ENDPOINT is set
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  process.stderr.write(`configuration error: ${e.message}\n`);
  process.exit(2);
}
// TLS files are checked here, before anything starts, so a bad one is a configuration error
// naming the setting and the file; each server reads them again for its SSLApp.
let certificate: CertificateInfo | undefined;
if (tlsEnabled(config)) {
  try {
    const material = loadTls(config);
    material.dispose();
    certificate = material.info;
  } catch (e) {
    if (!(e instanceof TlsError)) throw e;
    process.stderr.write(`configuration error: ${e.message}\n`);
    process.exit(2);
  }
}
const workers = workerCount(config);
const { addon } = await import('./native/binding.js');
addon.setThreadpoolNice(config.threadpoolNice);
// Process-wide, so once here for every worker thread: what odd sample rates may cost.
addon.setResamplerBudget(config.maxRateDesignsPerSecond, config.maxSampleRates);

interface Running {
  readonly port: number;
  /** With worker threads: rejects when one fails. */
  readonly crashed?: Promise<never>;
  ready(): Promise<void>;
  reload(): Promise<CertificateInfo>;
  drain(graceSeconds: number): Promise<number>;
}

const cluster = workers === 1 ? undefined : await import('./cluster/primary.js');
// The process ends through the addon, with one thread or many: with worker threads Node's exit
// would stop each worker and assert on the sockets uWebSockets.js still holds, and one exit path
// for every configuration is one to test. Logs are written by then (stdout and files are
// synchronous on Linux).
const exit = (code: number): never => addon.exitProcess(code);
// How often the C heap's free pages go back to the OS (src/memory-release.ts): a trim of a quiet
// heap costs 0.2-1.5 ms of one threadpool thread (measured, scheduling included).
const MEMORY_RELEASE_SECONDS = 10;

async function start(): Promise<Running> {
  if (!cluster) {
    const [{ startServer }, { SharedState }] = await Promise.all([import('./server.js'), import('./cluster/shared-state.js')]);
    return startServer(config, log, { worker: 0, shared: new SharedState(1), port: config.port });
  }
  return cluster.startPrimary(config, workers);
}

function logCertificate(msg: string, info: CertificateInfo): void {
  const fields = { subject: info.subject, serial: info.serial, fingerprint256: info.fingerprint256, valid_to: info.validTo, chain_length: info.chainLength };
  if (Date.parse(info.validTo) < Date.now()) log.warn(`${msg}: it has expired`, fields);
  else log.info(msg, fields);
}

try {
  // Listen first so health can say "not ready" while the models load and warm up.
  const server = await start();
  log.announce('listening', { host: config.host, port: server.port, model: config.model, threads: config.threads, workers, tls: certificate !== undefined });
  if (certificate) logCertificate('tls certificate', certificate);
  const exposed = (await import('./admission.js')).exposureWarning(config);
  if (exposed) {
    // Loud: on the log and on stderr, where a terminal user sees it whatever reads the JSON.
    log.warn('no token', { warning: exposed });
    process.stderr.write(`WARNING: ${exposed}\n`);
  }
  if (tracing.tracingEnabled()) log.info('tracing', { endpoint: tracing.tracesEndpoint() });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      exit(1);
    }
    stopping = true;
    log.info('draining', { signal, grace_seconds: config.drainSeconds });
    server.drain(config.drainSeconds).then(
      async (cut) => {
        log.info('drained', { cut_connections: cut });
        await tracing.shutdownTracing(); // spans still batched go out before the exit (at most 5 s)
        exit(0);
      },
      (e: unknown) => {
        log.error('drain failed', { error: String(e) });
        exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  // SIGHUP re-reads the certificate and key (e.g. after a renewal); live streams keep theirs.
  // Without TLS, SIGHUP keeps its default (the process ends), as before.
  if (certificate) {
    process.on('SIGHUP', () => {
      if (stopping) return;
      server.reload().then(
        (info) => logCertificate('tls certificate reloaded', info),
        (e: unknown) => log.error('tls reload failed: new connections keep the previous certificate', { error: e instanceof Error ? e.message : String(e) }),
      );
    });
  }
  await server.ready();
  log.announce('ready', { port: server.port, model: config.model, workers });
  (await import('./memory-release.js')).releaseMemoryEvery(MEMORY_RELEASE_SECONDS, log);
  // Before this, a failed worker is a failed start-up (above); from now on it ends the process.
  if (server.crashed) {
    server.crashed.catch((e: unknown) => {
      log.error('worker failed', { error: e instanceof Error ? e.message : String(e) });
      exit(1);
    });
  }
} catch (e) {
  log.error('start-up failed', { error: e instanceof Error ? e.message : String(e) });
  exit(1);
}
