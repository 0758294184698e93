// Reading a live server's /metrics in tests: every sample keyed by its name and labels as written.
import assert from 'node:assert/strict';

/** One scrape: `name{labels}` (or `name`) → value. */
export async function scrapeMetrics(url: string): Promise<Map<string, number>> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}

/** A family's value summed over its series (worker threads each report their own), if any. */
export function total(samples: Map<string, number>, name: string): number | undefined {
  let sum: number | undefined;
  for (const [key, value] of samples) if (key === name || key.startsWith(name + '{')) sum = (sum ?? 0) + value;
  return sum;
}
