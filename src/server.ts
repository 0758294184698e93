// The uWebSockets.js app: WebSocket routes, health, metrics. Routing, JSON and byte copies only:
// everything heavier runs natively on the threadpool.
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics/registry.js';
import { Authenticator } from './auth.js';
import { loadSpeechModel, loadVad } from './models.js';
import { loadStaticFiles } from './static-files.js';
import { addon, uws } from './native/binding.js';
import { InferenceScheduler } from './pipeline/inference-scheduler.js';
import { DecodeBatcher } from './pipeline/decode-batcher.js';
import { VadBatcher } from './pipeline/vad-batcher.js';
import { Session, type Route, type SessionDeps } from './session.js';
import { Task, lastPanicAt, spawn } from './tasks.js';

interface Connection {
  session: Session | undefined;
  task: Task;
  closed: boolean;
}

export interface Server {
  readonly port: number;
  readonly metrics: Metrics;
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
const GOING_AWAY = 1001;

interface Loaded {
  onnxruntime: string;
  deps: Omit<SessionDeps, 'route'>;
}

async function loadAndWarm(config: Config, metrics: Metrics, log: Logger): Promise<Loaded> {
  const loader = new Task('inference');
  try {
    const started = performance.now();
    const [onnxruntime, model, vad] = await Promise.all([addon.probeOrt(loader.native), loadSpeechModel(config, loader), loadVad(config, loader)]);
    const loaded = performance.now();
    // One run of each on a second of faint noise: ORT sizes its arenas and picks kernels now,
    // not on a user's first utterance. The stub stays cold: its warm-up penalty and injected
    // faults are meant for clients.
    const noise = new Float32Array(16_000).map(() => (Math.random() - 0.5) * 1e-3);
    await Promise.all([
      config.model === 'stub' ? undefined : model.run(loader.native, noise),
      vad.process(loader.native, [new addon.VadChannel()], [noise]),
    ]);
    log.info('models loaded', { model: config.model, onnxruntime, load_ms: Math.round(loaded - started), warm_ms: Math.round(performance.now() - loaded) });
    const batcher = new VadBatcher(vad, metrics, Math.max(1, Math.floor(config.threads / 2)));
    // Every stream's decode, batched the same way (one job for many streams, on disjoint streams).
    const decoder = new DecodeBatcher(metrics, Math.max(1, Math.floor(config.threads / 2)));
    // At most one model job per threadpool worker; the rest wait in the scheduler, live audio first.
    const shared = { native: model, scheduler: new InferenceScheduler(config.threads) };
    metrics.inferenceWaiting = () => shared.scheduler.waiting;
    return { onnxruntime, deps: { config, model: shared, decoder, vad: batcher, metrics, log } };
  } finally {
    loader.close();
  }
}

export async function startServer(config: Config, log: Logger): Promise<Server> {
  const metrics = new Metrics(config.threads);
  let loaded: Loaded | undefined;
  const routing = new Task('api_routing');
  const auth = new Authenticator(config.authToken);
  const sockets = new Set<WebSocket<Connection>>();
  let connections = 0;
  let listenSocket: us_listen_socket | false = false;
  let draining = false;

  const app: TemplatedApp = uws.App();
  for (const [route, path] of Object.entries(ROUTES) as [Route, string][]) {
    app.ws<Connection>(path, {
      // Frames up to twice the limit are read and refused with an error event and 1009; uWS drops
      // larger ones itself (1006) from their header, before buffering them.
      maxPayloadLength: 2 * config.maxFrameBytes,
      idleTimeout: config.idleTimeoutSeconds,
      // Above MAX_OUTBOUND_BYTES the session closes a client that is not reading (SLOW_CONSUMER).
      maxBackpressure: 2 * config.maxOutboundBytes,
      upgrade: (res, req, context) => routing.poll(() => {
        if (!auth.allows(req)) {
          unauthorized(res, metrics);
          return;
        }
        const refusal = !loaded ? ['not_ready', 'the server is still loading its models']
          : draining ? ['draining', 'the server is shutting down']
          : connections >= config.maxConnections ? ['max_connections', `the server is at its limit of ${config.maxConnections} connections`]
          : undefined;
        if (refusal) {
          metrics.connectionsRefused.inc({ reason: refusal[0] });
          res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '1')
            .writeHeader('Content-Type', 'application/json').end(JSON.stringify({ error: refusal[1] }));
          return;
        }
        connections++;
        res.upgrade<Connection>(
          { session: undefined, task: new Task('client'), closed: false },
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
      }),
      open: (ws) => {
        const conn = ws.getUserData();
        sockets.add(ws);
        metrics.connectionsTotal.inc();
        metrics.connectionsActive.inc();
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
          else conn.session?.onText(Buffer.from(message).toString('utf8'));
        });
      },
      close: (ws) => {
        const conn = ws.getUserData();
        conn.closed = true;
        connections--;
        sockets.delete(ws);
        metrics.connectionsActive.dec();
        conn.session?.onClose();
        conn.task.close();
      },
    });
  }

  app.get('/api/v1/health', (res, req) => routing.poll(() => {
    countUpgradeAttempt(req, metrics);
    if (config.authAllRoutes && !auth.allows(req)) {
      unauthorized(res, metrics);
      return;
    }
    const panics = metrics.native.panicsNow();
    const panicAt = lastPanicAt();
    const degraded = panics > 0 && panicAt !== undefined &&
      performance.now() - panicAt < config.degradedWindowSeconds * 1000;
    const ready = loaded !== undefined && !draining;
    const body = {
      status: degraded ? 'degraded' : 'healthy',
      ready,
      draining,
      connections,
      streams: metrics.liveStreams,
      panics,
      model: config.model,
      onnxruntime: loaded?.onnxruntime ?? null,
      uptime_seconds: Math.round(process.uptime()),
    };
    res.writeStatus(ready ? '200 OK' : '503 Service Unavailable')
      .writeHeader('Content-Type', 'application/json')
      .end(JSON.stringify(body));
  }));

  app.get('/metrics', (res, req) => {
    countUpgradeAttempt(req, metrics);
    if (config.authAllRoutes && !auth.allows(req)) {
      routing.poll(() => unauthorized(res, metrics));
      return;
    }
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    spawn('metrics', async () => {
      const text = await metrics.scrape();
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
    const page = pages.get(req.getUrl());
    if (!page) {
      notFound(res, req.getMethod(), req.getUrl(), metrics);
      return;
    }
    res.writeStatus('200 OK').writeHeader('Content-Type', page.type).writeHeader('Cache-Control', 'no-cache').end(page.body);
  }));

  app.any('/*', (res, req) => routing.poll(() => {
    notFound(res, req.getMethod(), req.getUrl(), metrics);
  }));

  const socket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (s) => {
      if (s) resolve(s);
      else reject(new Error(`cannot listen on ${config.host}:${config.port}`));
    });
  });
  listenSocket = socket;
  // The listen socket is a socket: its local port is the one the OS picked for PORT=0.
  const port = uws.us_socket_local_port(socket);

  return {
    port,
    metrics,
    async ready() {
      loaded = await loadAndWarm(config, metrics, log);
    },
    async drain(graceSeconds) {
      draining = true;
      if (listenSocket) uws.us_listen_socket_close(listenSocket);
      listenSocket = false;
      const finished = Promise.all([...sockets].map((ws) => ws.getUserData().session?.drain() ?? Promise.resolve()));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceSeconds * 1000); });
      await Promise.race([finished, timedOut]);
      clearTimeout(timer);
      clearInterval(idleSweep);
      const cut = sockets.size;
      for (const ws of [...sockets]) ws.end(GOING_AWAY, 'server shutting down');
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
