// Resampler to 16 kHz, one thread: input samples/s and stopband of native/resampler.cc against
// libsoxr (HQ, MQ) and speexdsp (quality 8, 10), same input, same run, at 44.1, 48 and 8 kHz.
// Builds bench/native/resampler_bench.cc into bench/out/ (git-ignored) with g++ and links the
// peers there; the server itself never depends on them. Missing peers fail the bench with the
// command that installs them; with --install-peers (as root) it runs that command itself. Never
// by default: the smoke test (npm test) runs this bench, and tests must not install packages.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { buildNativeBench } from './native-binary.js';

const quick = process.argv.includes('--quick');

const PEER_PACKAGES = ['libsoxr-dev', 'libspeexdsp-dev'];
const PEER_HEADERS = ['/usr/include/soxr.h', '/usr/include/speex/speex_resampler.h'];

function ensurePeers(): void {
  if (PEER_HEADERS.every((h) => existsSync(h))) return;
  const install = `apt-get install -y ${PEER_PACKAGES.join(' ')}`;
  if (!process.argv.includes('--install-peers') || process.getuid?.() !== 0) {
    throw new Error(`bench resampler needs the peers' headers (${PEER_HEADERS.filter((h) => !existsSync(h)).join(', ')}): run \`sudo ${install}\` (or this bench as root with --install-peers)`);
  }
  process.stderr.write(`installing the benchmark's peers: ${install}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const args = ['install', '-y', '--no-install-recommends', ...PEER_PACKAGES];
  try {
    execFileSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  } catch {
    execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'], env }); // stale or missing package lists
    execFileSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  }
  if (!PEER_HEADERS.every((h) => existsSync(h))) throw new Error(`${install} did not provide ${PEER_HEADERS.join(', ')}`);
}

interface Row {
  impl: string;
  rate: number;
  samples_per_s: number;
  attenuation_db: number;
  edge_gain_db: number;
}
interface HarnessOutput {
  soxr: string;
  runs: number;
  chunk_ms: number;
  results: Row[];
}

function version(pkg: string): string {
  try {
    return execFileSync('pkg-config', ['--modversion', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

ensurePeers();
const binary = buildNativeBench({
  name: 'resampler_bench', sources: ['bench/native/resampler_bench.cc', 'native/resampler.cc'], headers: ['native/resampler.h', 'bench/native/bench_stats.h'],
  link: ['-lsoxr', '-lspeexdsp', '-lm'],
});
const started = performance.now();
const raw = execFileSync(binary, quick ? ['--quick'] : [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
const seconds = (performance.now() - started) / 1000;
const harness = JSON.parse(raw) as HarnessOutput;

const TAG: Record<number, string> = { 44100: '44k1', 48000: '48k', 8000: '8k' };
const PEERS = ['soxr_hq', 'soxr_mq', 'speex_q8', 'speex_q10'];
const LABEL: Record<string, string> = {
  ours: 'speech-server',
  soxr_hq: 'libsoxr HQ',
  soxr_mq: 'libsoxr MQ',
  speex_q8: 'speexdsp q8',
  speex_q10: 'speexdsp q10',
};
const get = (impl: string, rate: number): Row => {
  const row = harness.results.find((r) => r.impl === impl && r.rate === rate);
  if (!row) throw new Error(`no result for ${impl} at ${rate} Hz`);
  return row;
};
const rates = [...new Set(harness.results.map((r) => r.rate))];

console.log(`resampler to 16 kHz, one thread, ${harness.chunk_ms} ms chunks, median of ${harness.runs} interleaved runs${quick ? ' (quick: tiny sizes, figures meaningless)' : ''}`);
console.log(`peers: ${harness.soxr}, speexdsp ${version('speexdsp')}; harness ran ${seconds.toFixed(1)} s`);
console.log('stopband: worst residue of a tone at 8.1-20 kHz below the input Nyquist (for 8 kHz input: of everything beside a 0.5-3.5 kHz tone, i.e. its images)');
console.log('edge gain: at 7 kHz (at 3.6 kHz for 8 kHz input)');
for (const rate of rates) {
  const ours = get('ours', rate);
  console.log(`\n${rate} Hz -> 16 kHz     M input samples/s   ours is x   stopband dB   edge gain dB`);
  for (const impl of ['ours', ...PEERS]) {
    const r = get(impl, rate);
    console.log(`  ${LABEL[impl]!.padEnd(16)} ${(r.samples_per_s / 1e6).toFixed(1).padStart(16)} ${(ours.samples_per_s / r.samples_per_s).toFixed(2).padStart(11)} ${r.attenuation_db.toFixed(1).padStart(13)} ${r.edge_gain_db.toFixed(3).padStart(14)}`);
  }
}

const result: Record<string, number | string> = { bench: 'resampler' };
for (const peer of PEERS) {
  for (const rate of rates) {
    result[`ratio_vs_${peer}_${TAG[rate] ?? rate}`] = Number((get('ours', rate).samples_per_s / get(peer, rate).samples_per_s).toFixed(3));
  }
}
for (const impl of ['ours', ...PEERS]) {
  for (const rate of rates) {
    const r = get(impl, rate);
    result[`${impl}_msamples_per_s_${TAG[rate] ?? rate}`] = Number((r.samples_per_s / 1e6).toFixed(1));
    result[`${impl}_stopband_db_${TAG[rate] ?? rate}`] = Number(r.attenuation_db.toFixed(1));
  }
}
result['peers'] = `${harness.soxr}, speexdsp ${version('speexdsp')}`;
console.log(JSON.stringify(result));
