// After a load peak, glibc keeps the freed pages of hundreds of streams' buffers (its arenas, and
// allocations below its dynamic mmap threshold): measured, RSS stayed at 760 MB after 400 stub-model
// streams against 220 MB idle. Every few seconds the process hands the C heap's free pages back
// (malloc_trim, natively, on a threadpool thread: the event loop only schedules it). Once per
// process: the primary, or the one server thread. Accounted as housekeeping of the metrics
// subsystem (its task counters).
import type { Logger } from './log.js';
import { addon } from './native/binding.js';
import { Task } from './tasks.js';

/** Releases every `seconds` for the life of the process; logs a release of 16 MiB or more. */
export function releaseMemoryEvery(seconds: number, log: Logger): void {
  const task = new Task('metrics');
  let inFlight = false;
  const timer = setInterval(() => {
    if (inFlight) return;
    inFlight = true;
    addon.releaseMemory(task.native).then(
      ({ before, after }) => {
        if (before - after >= 16 << 20) log.info('memory released', { rss_before_bytes: before, rss_after_bytes: after });
      },
      (e: unknown) => log.warn('memory release failed', { error: e instanceof Error ? e.message : String(e) }),
    ).finally(() => { inFlight = false; });
  }, seconds * 1000);
  timer.unref();
}
