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
const { startServer } = await import('./server.js');

try {
  // Listen first so health can say "not ready" while the models load and warm up.
  const server = await startServer(config, log);
  log.announce('listening', { host: config.host, port: server.port, model: config.model, threads: config.threads });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('draining', { signal, grace_seconds: config.drainSeconds });
    server.drain(config.drainSeconds).then(
      (cut) => {
        log.info('drained', { cut_connections: cut });
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
