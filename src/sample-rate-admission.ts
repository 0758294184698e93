// Admission of a stream's sample rate against the process-wide filter-design budget
// (MAX_RATE_DESIGNS_PER_SECOND, MAX_SAMPLE_RATES; native/resampler.cc): a new uncommon rate costs
// a filter design, so a client looping over odd rates is refused instead of buying unbounded work.
// One place for the rule and its words, for every route that starts a stream.
import { addon } from './native/binding.js';

/** Why a stream at `rate` is refused now (its message, naming the setting), or null: admitted. */
export function refuseSampleRate(rate: number): string | null {
  const refused = addon.admitSampleRate(rate);
  if (refused === 'designs') return 'too many new sample rates are being set up (MAX_RATE_DESIGNS_PER_SECOND); retry shortly, or use a common rate (e.g. 16000, 48000)';
  if (refused === 'rates') return 'too many distinct uncommon sample rates are in use (MAX_SAMPLE_RATES); retry later, or use a common rate (e.g. 16000, 48000)';
  return null;
}
