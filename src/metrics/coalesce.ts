// /metrics renders are not free (with worker threads each is a round trip to every worker and
// an aggregation), so scrapes share them: concurrent scrapes wait for the one render in flight,
// and a render serves every scrape for `ttlSeconds` after it finished.
import { Counter, type Registry } from 'prom-client';

export function coalescedScrape(render: () => Promise<string>, ttlSeconds: number, registry: Registry): () => Promise<string> {
  const renders = new Counter({
    name: 'metrics_renders_total', help: 'Renders of the /metrics text (concurrent scrapes, and those within METRICS_CACHE_SECONDS, share one)',
    registers: [registry],
  });
  let inFlight: Promise<string> | undefined;
  let last: { text: string; at: number } | undefined;
  return () => {
    if (last && performance.now() - last.at < ttlSeconds * 1000) return Promise.resolve(last.text);
    if (inFlight) return inFlight;
    renders.inc(); // before rendering, so the render counts itself
    const pending = render().then((text) => {
      last = { text, at: performance.now() };
      return text;
    }).finally(() => { inFlight = undefined; });
    inFlight = pending;
    return pending;
  };
}
