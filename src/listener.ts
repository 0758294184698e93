// The uWebSockets.js app(s) that serve the routes on the port: a plain App, or with TLS_* set an
// SSLApp. uWS cannot swap the certificate of a listening SSLApp (addServerName only covers
// clients that send that SNI name, and clients of an IP address send none), so a reload builds
// a second SSLApp with the same routes, listens with it on the same port (uSockets sets
// SO_REUSEPORT on a fixed port) and then closes the old listen socket: new connections get the
// new certificate while the old app keeps serving the connections it already holds.
import net from 'node:net';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocketBehavior, us_listen_socket } from 'uWebSockets.js';
import type { Config } from './config.js';
import { uws } from './native/binding.js';
import { TlsError, loadTls, tlsEnabled, type CertificateInfo } from './tls.js';

type HttpHandler = (res: HttpResponse, req: HttpRequest) => void | Promise<void>;

/** The routes, recorded once and applied to each app built (the first, and one per reload). */
export class RouteTable {
  private readonly steps: ((app: TemplatedApp) => void)[] = [];

  ws<UserData>(pattern: string, behavior: WebSocketBehavior<UserData>): this {
    this.steps.push((app) => app.ws<UserData>(pattern, behavior));
    return this;
  }

  get(pattern: string, handler: HttpHandler): this {
    this.steps.push((app) => app.get(pattern, handler));
    return this;
  }

  post(pattern: string, handler: HttpHandler): this {
    this.steps.push((app) => app.post(pattern, handler));
    return this;
  }

  any(pattern: string, handler: HttpHandler): this {
    this.steps.push((app) => app.any(pattern, handler));
    return this;
  }

  applyTo(app: TemplatedApp): TemplatedApp {
    for (const step of this.steps) step(app);
    return app;
  }
}

interface Listener {
  readonly port: number;
  /**
   * TLS: reads and checks the files again and serves new connections with them; live
   * connections keep theirs. Rejects (and the previous certificate stays) when the files are bad.
   */
  reload(): Promise<CertificateInfo>;
  /** Stops accepting connections; open ones stay. */
  close(): void;
}

function build(config: Config, routes: RouteTable): { app: TemplatedApp; certificate: CertificateInfo | undefined } {
  if (!tlsEnabled(config)) return { app: routes.applyTo(uws.App()), certificate: undefined };
  const material = loadTls(config);
  try {
    let app: TemplatedApp;
    try {
      app = uws.SSLApp(material.options); // reads the files now
    } catch (e) {
      throw new TlsError(`uWebSockets.js refused TLS_CERT_FILE ${config.tlsCertFile} with TLS_KEY_FILE ${config.tlsKeyFile}: ${e instanceof Error ? e.message : String(e)}`);
    }
    return { app: routes.applyTo(app), certificate: material.info };
  } finally {
    material.dispose();
  }
}

function listenOn(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (s) => {
      if (s) resolve(s);
      else reject(new Error(`cannot listen on ${host}:${port}`));
    });
  });
}

/**
 * Listens on `port` and serves `routes`; `onListen` runs after each listen (the first and every
 * reload's) with the port, to tune the new listen socket.
 */
export async function listen(config: Config, port: number, routes: RouteTable, onListen: (port: number) => void): Promise<Listener> {
  const tls = tlsEnabled(config);
  // A reload listens a second time on the port, which needs SO_REUSEPORT, which uSockets only
  // sets on a fixed port: PORT=0 is resolved first (worker threads get a fixed one already).
  const fixed = tls && port === 0 ? await freePort(config.host) : port;
  const first = build(config, routes);
  let socket: us_listen_socket | false = await listenOn(first.app, config.host, fixed);
  // The listen socket is a socket: its local port is the one the OS picked for PORT=0.
  const bound = uws.us_socket_local_port(socket);
  onListen(bound);
  // Retired apps stay referenced: they still serve the connections they accepted.
  const apps: TemplatedApp[] = [first.app];
  let reloading: Promise<unknown> = Promise.resolve();

  async function swap(): Promise<CertificateInfo> {
    if (!tls) throw new Error('TLS is off (TLS_CERT_FILE and TLS_KEY_FILE are not set): nothing to reload');
    if (!socket) throw new Error('the server is no longer listening (draining)');
    const next = build(config, routes);
    const nextSocket = await listenOn(next.app, config.host, bound);
    if (!socket) {
      // Drained while listening: this one must not accept either.
      uws.us_listen_socket_close(nextSocket);
      throw new Error('the server is no longer listening (draining)');
    }
    // Connections the kernel queued on the old socket but uWS has not accepted yet are reset
    // when it closes (SO_REUSEPORT does not move them; Linux's net.ipv4.tcp_migrate_req does).
    uws.us_listen_socket_close(socket);
    socket = nextSocket;
    apps.push(next.app);
    onListen(bound);
    return next.certificate!;
  }

  return {
    port: bound,
    reload() {
      // One at a time: a second SIGHUP waits for the first's swap.
      const result = reloading.then(swap, swap);
      reloading = result.catch(() => {});
      return result;
    },
    close() {
      if (socket) uws.us_listen_socket_close(socket);
      socket = false;
    },
  };
}

/** A port the OS hands out now (for PORT=0 where the port must be fixed: see above). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
