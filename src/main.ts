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
  const shutdown = (signal: string): void => {
    log.info('shutting down', { signal });
    server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  await server.ready();
  log.announce('ready', { port: server.port, model: config.model });
} catch (e) {
  log.error('start-up failed', { error: e instanceof Error ? e.message : String(e) });
  process.exit(1);
}
