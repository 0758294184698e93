// One worker thread: a full server (uWebSockets.js app, sessions, batchers) on the shared port.
// Native models and the threadpool are the process's; logs, /metrics and shutdown go through the
// primary (src/cluster/primary.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { Logger } from '../log.js';
import type { MetricsJson, PrimaryMessage, WorkerData, WorkerMessage } from './messages.js';
import { SharedState } from './shared-state.js';

const data = workerData as WorkerData;
const port = parentPort!;
const post = (message: WorkerMessage): void => port.postMessage(message);
const log = new Logger(data.config.logLevel, { worker: data.index }, (line) => post({ type: 'log', line }));

try {
  const tracing = await import('../tracing.js');
  const { startServer } = await import('../server.js');
  let nextScrape = 0;
  const scrapes = new Map<number, { resolve: (text: string) => void; reject: (e: Error) => void }>();
  const server = await startServer(data.config, log, {
    worker: data.index,
    shared: new SharedState(data.workers, data.shared),
    port: data.port,
    // The primary gathers every worker's families (this one's included) and answers.
    scrape: () => new Promise<string>((resolve, reject) => {
      const id = nextScrape++;
      scrapes.set(id, { resolve, reject });
      post({ type: 'scrape', id });
    }),
  });
  port.on('message', (message: PrimaryMessage) => {
    switch (message.type) {
      case 'collect':
        server.json().then(
          (json: MetricsJson) => post({ type: 'metrics', id: message.id, json }),
          (e: unknown) => log.error('metrics collection failed', { error: String(e) }),
        );
        break;
      case 'scraped': {
        const waiting = scrapes.get(message.id);
        scrapes.delete(message.id);
        if ('text' in message) waiting?.resolve(message.text);
        else waiting?.reject(new Error(message.error));
        break;
      }
      case 'reload':
        server.reload().then(
          (certificate) => post({ type: 'reloaded', id: message.id, certificate }),
          (e: unknown) => post({ type: 'reloaded', id: message.id, error: e instanceof Error ? e.message : String(e) }),
        );
        break;
      case 'drain':
        server.drain(message.graceSeconds).then(
          async (cut) => {
            await tracing.shutdownTracing();
            post({ type: 'drained', cut });
          },
          (e: unknown) => post({ type: 'failed', error: `drain failed: ${String(e)}` }),
        );
        break;
    }
  });
  post({ type: 'listening', port: server.port });
  await server.ready();
  post({ type: 'ready' });
} catch (e) {
  post({ type: 'failed', error: e instanceof Error ? e.message : String(e) });
}
