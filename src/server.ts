// The uWebSockets.js app: WebSocket routes, health, metrics. Routing, JSON and byte copies only:
// everything heavier runs natively on the threadpool.
import type { HttpRequest, HttpResponse, WebSocket } from 'uWebSockets.js';
import { SAMPLE_RATE } from './audio-format.js';
import { threadpoolSize, type Config } from './config.js';
import type { Logger } from './log.js';
import type { SharedState } from './cluster/shared-state.js';
import { Metrics } from './metrics/registry.js';
import { nativePanics } from './metrics/native-families.js';
import { coalescedScrape } from './metrics/coalesce.js';
import { Authenticator } from './auth.js';
import { Admission, PAGE_HEADERS, type Admitted } from './admission.js';
import { loadSpeechModel, loadVad } from './models.js';
import { MemoryBudget } from './memory-budget.js';
import { loadStaticFiles } from './static-files.js';
import { addon } from './native/binding.js';
import { RouteTable, listen } from './listener.js';
import type { CertificateInfo } from './tls.js';
import { InferenceScheduler } from './pipeline/inference-scheduler.js';
import { MODEL_STREAMS_PER_SLOT, StreamCapacity } from './pipeline/stream-capacity.js';
import { DecodeBatcher } from './pipeline/decode-batcher.js';
import { VadBatcher } from './pipeline/vad-batcher.js';
import { CLOSE_GOING_AWAY, Session, type Route, type SessionDeps } from './session.js';
import { Task, onPanic, spawn } from './tasks.js';
import { registerOpenAi } from './openai/routes.js';

interface Connection {
  session: Session | undefined;
  task: Task;
  closed: boolean;
  admitted: Admitted;
}

/**
 * What the thread this server runs on is given by whoever started it (src/main.ts with WORKERS=1,
 * else src/cluster/worker.ts for each worker thread): its index, the process's shared state, the
 * port, and who answers /metrics.
 */
interface ServerThread {
  /** This thread's index (0 with WORKERS=1). */
  worker: number;
  /** The process-wide counters: connections, streams, readiness, draining, last panic. */
  shared: SharedState;
  /** The port to listen on: the configured one, or the one the first worker got for PORT=0. */
  port: number;
  /**
   * The /metrics text. Absent: this thread's registry holds the whole process's families
   * (WORKERS=1). With worker threads: the primary's aggregate of every worker's registry.
   */
  scrape?: () => Promise<string>;
}

export const HEALTH_PATH = '/api/v1/health';
/** Liveness: 200 whenever the event loop answers, also while loading or draining. */
export const LIVENESS_PATH = '/api/v1/health/live';

interface Server {
  readonly port: number;
  /** Re-reads the TLS files for new connections; live ones keep theirs (src/listener.ts). */
  reload(): Promise<CertificateInfo>;
  /** This thread's metric families as prom-client JSON (for the primary to aggregate). */
  json(): ReturnType<Metrics['json']>;
  /** Loads and warms the models; the server answers upgrades once this resolves. */
  ready(): Promise<void>;
  /**
   * Graceful shutdown: stop accepting, report draining, let every live stream finish and get
   * its final results, close each connection with 1001; after `graceSeconds` close the rest.
   * Resolves with the number of connections that had to be cut.
   */
  drain(graceSeconds: number): Promise<number>;
}

const ROUTES: Record<Route, string> = { simple: '/api/v1/simple', segmented: '/api/v1/segmented' };

interface Loaded {
  onnxruntime: string;
  deps: Omit<SessionDeps, 'route'>;
}

async function loadAndWarm(config: Config, thread: ServerThread, metrics: Metrics, memory: MemoryBudget, log: Logger): Promise<Loaded> {
  const { shared, worker: index } = thread;
  const { workers } = shared;
  const loader = new Task('inference');
  try {
    const started = performance.now();
    const [onnxruntime, model, vad] = await Promise.all([addon.probeOrt(loader.native), loadSpeechModel(config, loader), loadVad(config, loader)]);
    const loaded = performance.now();
    // One run of each on a second of faint noise: ORT sizes its arenas and picks kernels now,
    // not on a user's first utterance. The stub stays cold: its warm-up penalty and injected
    // faults are meant for clients.
    const noise = new Float32Array(SAMPLE_RATE).map(() => (Math.random() - 0.5) * 1e-3);
    await Promise.all([
      config.model === 'stub' ? undefined : model.run(loader.native, noise),
      vad.process(loader.native, [new addon.VadChannel()], [noise]),
    ]);
    log.info('models loaded', { model: config.model, weights: model.weights, onnxruntime, load_ms: Math.round(loaded - started), warm_ms: Math.round(performance.now() - loaded) });
    // The threadpool is the process's: each worker thread gets its share of the job slots.
    const slots = Math.max(1, Math.floor(config.threads / 2 / workers));
    const batcher = new VadBatcher(vad, metrics, slots);
    // Every stream's decode, batched the same way (one job for many streams, on disjoint streams).
    const decoder = new DecodeBatcher(metrics, slots);
    // At most one model job per threadpool thread in the process; the rest wait in the
    // schedulers, earliest deadline first across the workers (SharedState is their share). A
    // shed in any worker refuses new streams in all of them.
    // Each model job is a batch of utterances of this worker's streams (INFERENCE_BATCH_ROWS).
    const inference = new Task('inference');
    const scheduler = new InferenceScheduler({
      slots: config.threads, maxRows: config.inferenceBatchRows, maxPadSamples: model.maxPadSamples, maxLagSeconds: config.maxInferenceLagSeconds, share: shared, party: index,
      runBatch: (samples, drafts) => model.runBatch(inference.native, samples, drafts),
    });
    const capacity = new StreamCapacity({ engine: scheduler, slots: config.threads, streamsPerSlot: MODEL_STREAMS_PER_SLOT[config.model], share: shared, party: index });
    metrics.inference = scheduler;
    metrics.capacity = capacity;
    return { onnxruntime, deps: { config, model: { scheduler }, capacity, decoder, vad: batcher, metrics, log, memory } };
  } finally {
    loader.close();
  }
}

export async function startServer(config: Config, log: Logger, thread: ServerThread): Promise<Server> {
  const { shared } = thread;
  // Audio waiting, counted for the whole process in shared memory (MEMORY_BUDGET_BYTES).
  const memory = new MemoryBudget(config.memoryBudgetBytes, shared);
  const metrics = new Metrics({
    worker: thread.worker, shared, memory, processFamilies: thread.scrape ? undefined : { threadpoolSize: threadpoolSize(config) },
  });
  const scrape = thread.scrape ?? coalescedScrape(() => metrics.scrape(), config.metricsCacheSeconds, metrics.registry);
  onPanic(() => shared.panicked());
  let loaded: Loaded | undefined;
  const routing = new Task('api_routing');
  const auth = new Authenticator(config.authToken);
  const admission = new Admission(config, shared, metrics, auth);
  const sockets = new Set<WebSocket<Connection>>();

  // Recorded, then applied to the App or SSLApp (a TLS reload builds another: src/listener.ts).
  const app = new RouteTable();
  for (const [route, path] of Object.entries(ROUTES) as [Route, string][]) {
    app.ws<Connection>(path, {
      // Frames up to twice the limit are read and refused with an error event and 1009; uWS drops
      // larger ones itself (1006) from their header, before buffering them.
      maxPayloadLength: 2 * config.maxFrameBytes,
      idleTimeout: config.idleTimeoutSeconds,
      // Above MAX_OUTBOUND_BYTES the session closes a client that is not reading (SLOW_CONSUMER).
      maxBackpressure: 2 * config.maxOutboundBytes,
      upgrade: (res, req, context) => routing.poll(() => {
        const admitted = admission.upgrade(res, req, loaded !== undefined);
        if (!admitted) return; // refused, answered and counted
        res.upgrade<Connection>(
          { session: undefined, task: new Task('client'), closed: false, admitted },
          req.getHeader('sec-websocket-key'),
          admitted.protocol,
          req.getHeader('sec-websocket-extensions'),
          context,
        );
      }),
      open: (ws) => {
        const conn = ws.getUserData();
        sockets.add(ws);
        metrics.connectionOpened();
        conn.session = new Session({
          send: (event) => {
            if (conn.closed) return;
            ws.send(JSON.stringify(event), false);
            const buffered = ws.getBufferedAmount();
            if (buffered > config.maxOutboundBytes) conn.session?.onSlowConsumer(buffered);
          },
          end: (code, reason) => {
            if (!conn.closed) ws.end(code, reason);
          },
        }, { route, ...loaded!.deps });
      },
      message: (ws, message, isBinary) => {
        const conn = ws.getUserData();
        // The ArrayBuffer is only valid during this callback: copy it (into Buffer's pooled slabs,
        // cheaper than an ArrayBuffer each) before anything is queued.
        conn.task.poll(() => {
          if (message.byteLength > config.maxFrameBytes) {
            conn.session?.onOversized(message.byteLength, config.maxFrameBytes);
          } else if (isBinary) conn.session?.onBinary(Buffer.from(new Uint8Array(message)));
          else conn.session?.onText(new Uint8Array(message)); // measured in bytes, then decoded
        });
      },
      close: (ws) => {
        const conn = ws.getUserData();
        conn.closed = true;
        admission.closed(conn.admitted);
        sockets.delete(ws);
        metrics.connectionClosed();
        conn.session?.onClose();
        conn.task.close();
      },
    });
  }

  // The OpenAI-compatible routes (src/openai/): /v1/audio/transcriptions, /v1/models, /v1/realtime.
  const openai = registerOpenAi(app, { config, log, metrics, auth, routing, shared, pipeline: () => loaded?.deps });

  app.get(HEALTH_PATH, (res, req) => routing.poll(() => {
    if (!admission.httpHost(res, req)) return;
    countUpgradeAttempt(req, metrics);
    if (config.authAllRoutes && !auth.allows(req)) {
      unauthorized(res, metrics);
      return;
    }
    const panics = nativePanics();
    const panicAt = shared.lastPanicAt;
    const degraded = panics > 0 && panicAt !== undefined && Date.now() - panicAt < config.degradedWindowSeconds * 1000;
    // Ready once every worker thread has its models: a probe may land on any of them.
    const ready = loaded !== undefined && shared.ready && !shared.draining;
    const body = {
      status: degraded ? 'degraded' : 'healthy',
      ready,
      draining: shared.draining,
      workers: shared.workers,
      connections: shared.connections,
      streams: shared.streams,
      panics,
      model: config.model,
      onnxruntime: loaded?.onnxruntime ?? null,
      uptime_seconds: Math.round(process.uptime()),
    };
    res.writeStatus(ready ? '200 OK' : '503 Service Unavailable')
      .writeHeader('Content-Type', 'application/json')
      .end(JSON.stringify(body));
  }));

  // Open even with AUTH_ALL_ROUTES: it says nothing but "alive", and orchestrators' probes
  // cannot carry a secret token.
  app.get(LIVENESS_PATH, (res, req) => routing.poll(() => {
    countUpgradeAttempt(req, metrics);
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end('{"alive":true}');
  }));

  app.get('/metrics', (res, req) => {
    if (!admission.httpHost(res, req)) return;
    countUpgradeAttempt(req, metrics);
    if (config.authAllRoutes && !auth.allows(req)) {
      routing.poll(() => unauthorized(res, metrics));
      return;
    }
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    spawn('metrics', async () => {
      const text = await scrape();
      if (aborted) return;
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('Content-Type', metrics.registry.contentType).end(text);
      });
    }, (failure) => {
      log.error('scrape failed', { error: failure.message });
      if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end(failure.message));
    });
  });

  // Streams that went quiet are finished (STREAM_IDLE); one sweep a second is precise enough.
  const idleSweep = setInterval(() => {
    const now = performance.now();
    for (const ws of sockets) ws.getUserData().session?.checkIdle(now);
  }, 1000);
  idleSweep.unref();

  const pages = loadStaticFiles();
  app.get('/*', (res, req) => routing.poll(() => {
    if (!admission.httpHost(res, req)) return;
    const page = pages.get(req.getUrl());
    if (!page) {
      notFound(res, req.getMethod(), req.getUrl(), metrics);
      return;
    }
    res.writeStatus('200 OK').writeHeader('Content-Type', page.type).writeHeader('Cache-Control', 'no-cache');
    for (const [name, value] of PAGE_HEADERS) res.writeHeader(name, value);
    res.end(page.body);
  }));

  app.any('/*', (res, req) => routing.poll(() => {
    notFound(res, req.getMethod(), req.getUrl(), metrics);
  }));

  // uSockets listens with SO_REUSEPORT: every worker thread listens on the same port and the
  // kernel spreads new connections across them.
  const listener = await listen(config, thread.port, app, (port) => {
    // A small receive window is the read pause uWebSockets.js lacks: a client pushing audio far
    // faster than real time gets at most one buffer per event-loop pass read, instead of megabytes
    // that stretch the pass (and every health probe behind it), including what it keeps sending
    // after being closed. Accepted connections inherit the listening socket's buffer.
    if (config.socketReceiveBuffer > 0 && addon.setListenReceiveBuffer(port, config.socketReceiveBuffer) === 0) {
      log.warn('no listening socket found to set SOCKET_RECEIVE_BUFFER on: connections keep the OS default', { port });
    }
  });
  const port = listener.port;

  return {
    port,
    reload: () => listener.reload(),
    json: () => metrics.json(),
    async ready() {
      loaded = await loadAndWarm(config, thread, metrics, memory, log);
      shared.workerReady();
    },
    async drain(graceSeconds) {
      // Keep listening while streams finish: health answers 503 "draining" to probes and new
      // upgrades are refused with 503 (a closed port would read as a dead server).
      shared.startDraining();
      const finished = Promise.all([...sockets].map((ws) => ws.getUserData().session?.drain() ?? Promise.resolve()).concat(openai.drain()));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceSeconds * 1000); });
      await Promise.race([finished, timedOut]);
      clearTimeout(timer);
      clearInterval(idleSweep);
      listener.close();
      const cut = sockets.size + openai.close();
      for (const ws of [...sockets]) ws.end(CLOSE_GOING_AWAY, 'server shutting down');
      routing.close();
      return cut;
    },
  };
}

function unauthorized(res: HttpResponse, metrics: Metrics): void {
  metrics.connectionsRefused.inc({ reason: 'unauthorized' });
  res.writeStatus('401 Unauthorized').writeHeader('WWW-Authenticate', 'Bearer')
    .writeHeader('Content-Type', 'application/json').end(JSON.stringify({ error: 'a valid token is required' }));
}

/** A WebSocket upgrade asked of an HTTP route is answered as plain HTTP (no 101), and counted. */
function countUpgradeAttempt(req: HttpRequest, metrics: Metrics): void {
  if (req.getHeader('upgrade').toLowerCase() === 'websocket') metrics.httpRejected.inc({ reason: 'upgrade_on_http_route' });
}

function notFound(res: HttpResponse, method: string, url: string, metrics: Metrics): void {
  metrics.httpRejected.inc({ reason: 'not_found' });
  res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json')
    .end(JSON.stringify({ error: `no route for ${method.toUpperCase()} ${url}` }));
}
