// `npm start`: read the settings, size the threadpool, serve until SIGINT/SIGTERM.
import { ConfigError, helpText, loadConfig } from './config.js';
import { Logger } from './log.js';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(helpText() + '\n');
  process.exit(0);
}

let config;
try {
  config = loadConfig(process.env, argv);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  process.stderr.write(`configuration error: ${e.message}\n`);
  process.exit(2);
}

// libuv sizes its pool when the first job is queued; nothing has queued one yet, because the
// addon and the server are loaded below, after this line.
process.env.UV_THREADPOOL_SIZE = String(config.threads);
const log = new Logger(config.logLevel);
let tracing: typeof import('./tracing.js');
try {
  tracing = await import('./tracing.js'); // sets up OpenTelemetry when OTEL_EXPORTER_OTLP_ENDPOINT is set
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  process.stderr.write(`configuration error: ${e.message}\n`);
  process.exit(2);
}
const { startServer } = await import('./server.js');

try {
  // Listen first so health can say "not ready" while the models load and warm up.
  const server = await startServer(config, log);
  log.announce('listening', { host: config.host, port: server.port, model: config.model, threads: config.threads });
  if (tracing.tracingEnabled()) log.info('tracing', { endpoint: tracing.tracesEndpoint() });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('draining', { signal, grace_seconds: config.drainSeconds });
    server.drain(config.drainSeconds).then(
      async (cut) => {
        log.info('drained', { cut_connections: cut });
        await tracing.shutdownTracing(); // spans still batched go out before the exit (at most 5 s)
        process.exit(0);
      },
      (e: unknown) => {
        log.error('drain failed', { error: String(e) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  await server.ready();
  log.announce('ready', { port: server.port, model: config.model });
} catch (e) {
  log.error('start-up failed', { error: e instanceof Error ? e.message : String(e) });
  process.exit(1);
}
