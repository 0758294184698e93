// `npm run bench [-- NAME ...]`: runs each benchmark in a fresh process (so one's heap, JIT and
// threadpool never colour another's), prints its output, and records its last line, a JSON
// object, in bench/RESULTS.md with the date, the machine and the commit.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BENCHES = ['simple-route', 'resampler', 'decode', 'vad', 'asr', 'engine', 'capacity', 'capacity-base', 'metrics-scrape', 'transport', 'overload', 'hostile', 'tls'] as const;
const here = import.meta.dirname;
const resultsFile = path.join(here, 'RESULTS.md');
const jsonFile = path.join(here, 'results.json');

const requested = process.argv.slice(2).filter((a) => !a.startsWith('-'));
// --render: no bench runs; bench/RESULTS.md is written again from bench/results.json.
const renderOnly = process.argv.includes('--render');
const quick = process.argv.includes('--quick'); // tiny sizes: the smoke test that keeps benches from rotting
// Every flag goes to each bench run (e.g. capacity's --scenario=bursts_off); each ignores the ones it does not know.
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
for (const name of requested) {
  if (!(BENCHES as readonly string[]).includes(name)) {
    process.stderr.write(`unknown bench ${name}; known: ${BENCHES.join(', ')}\n`);
    process.exit(2);
  }
}

async function runOne(name: string): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, `${name}.ts`), ...flags], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    process.stdout.write(d);
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`bench ${name} exited with ${code}`);
  const last = out.trim().split('\n').at(-1) ?? '';
  const result = JSON.parse(last) as Record<string, unknown>;
  if (result['bench'] !== name) throw new Error(`bench ${name}: last line is not its JSON result`);
  return result;
}

function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} cores, ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

function commit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return 'unknown';
  }
}

type Recorded = Record<string, { date: string; machine: string; commit: string; result: Record<string, unknown> }>;

const recorded: Recorded = existsSync(jsonFile) ? (JSON.parse(readFileSync(jsonFile, 'utf8')) as Recorded) : {};
for (const name of renderOnly ? [] : requested.length > 0 ? requested : BENCHES) {
  const result = await runOne(name);
  if (!quick) recorded[name] = { date: new Date().toISOString().slice(0, 10), machine: machine(), commit: commit(), result };
}
if (!quick) {
  writeFileSync(jsonFile, JSON.stringify(recorded, null, 2) + '\n');
  const lines = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/run.ts) from each benchmark\'s JSON line; do not edit by hand.',
    'Ratios compare with the peer measured in the same run on the same machine.',
    '',
  ];
  for (const [name, r] of Object.entries(recorded)) {
    lines.push(`## ${name}`, '', `${r.date}, ${r.machine}, commit ${r.commit}`, '', '| figure | value |', '|---|---|');
    for (const [k, v] of Object.entries(r.result)) if (k !== 'bench') lines.push(`| ${k} | ${typeof v === 'number' ? Number(v.toPrecision(4)) : typeof v === 'string' ? v : JSON.stringify(v)} |`);
    lines.push('');
  }
  writeFileSync(resultsFile, lines.join('\n'));
}
