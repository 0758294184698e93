// The OpenAI-compatible routes, registered on the server's app by one call (see server.ts):
// transcription uploads, the model list, and Realtime transcription over WebSocket.

import type { Authenticator } from '../auth.js';
import type { SharedState } from '../cluster/shared-state.js';
import type { Config } from '../config.js';
import type { RouteTable } from '../listener.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/registry.js';
import type { Task } from '../tasks.js';
import type { PipelineDeps } from './feed.js';
import { registerRealtime } from './realtime.js';
import { registerTranscriptions } from './transcriptions.js';

export interface OpenAiDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  auth: Authenticator;
  routing: Task;
  shared: SharedState;
  /** The pipeline, once the models are loaded. */
  pipeline(): PipelineDeps | undefined;
}

interface OpenAiRoutes {
  /** Resolves once every transcription request in flight has answered and every realtime
   *  session has finished its audio (each is closed with 1001). */
  drain(): Promise<void>;
  /** Cuts whatever is still open; returns how many connections that was. */
  close(): number;
}

export function registerOpenAi(app: RouteTable, deps: OpenAiDeps): OpenAiRoutes {
  const inFlight = new Set<Promise<void>>();
  registerTranscriptions(app, {
    config: deps.config, log: deps.log, auth: deps.auth, routing: deps.routing, pipeline: () => deps.pipeline(),
    draining: () => deps.shared.draining,
    track: (request) => {
      inFlight.add(request);
      request.then(() => inFlight.delete(request), () => inFlight.delete(request));
    },
  });
  const realtime = registerRealtime(app, deps);
  return {
    async drain() {
      await Promise.all([...inFlight, realtime.drain()]);
    },
    close: () => realtime.close(),
  };
}
