// Property-based fuzz of the control-message parser, parseRequest() in src/protocol.ts (TypeScript,
// so not a libFuzzer target). Every generated text frame must either parse into a well-formed
// request equal to what the protocol (README, "Client → server") says it means, or throw a
// ProtocolError whose code names one of the rules the message breaks; nothing else may be
// thrown, and no call may hang. Run by test/fuzz/run.sh:
//
//   node --import tsx test/fuzz/message_fuzz.ts [--iterations N] [--seed S] [--out failure.json]
//   node --import tsx test/fuzz/message_fuzz.ts --replay failure.json
//
// Inputs: valid start/stop messages from the spec, then mutated structurally (fields dropped,
// retyped, set to boundary values, keys like __proto__ added) and textually (bytes flipped,
// inserted, truncated, duplicate keys, lone surrogates, huge numbers such as 1e400), random JSON,
// and pathological frames (deep nesting, megabyte strings). The parse runs in a worker; the main
// thread is a watchdog that regenerates the input a stuck iteration was working on (each
// iteration's input depends only on the seed and its index) and saves it.
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ERROR_CODES, ProtocolError, parseRequest, type ErrorCode } from '../../src/protocol.js';

// --- Deterministic generation --------------------------------------------------------------------

class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number { // mulberry32
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

function iterationSeed(seed: number, i: number): number {
  let h = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const NUMBERS = [0, -0, 1, -1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65, 128, 7999, 8000, 8001, 11025, 16000,
  44100, 48000, 191999, 192000, 192001, 1.5, 0.1, 16000.5, 1e-7, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 53, 2 ** 53 + 2,
  Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, Number.MIN_VALUE, 1e21, -1e21];
// Number literals JSON allows that JS numbers cannot hold exactly (1e400 parses as Infinity).
const NUMBER_TEXTS = ['1e400', '-1e400', '8000.0000000000001', '16000.000', '1.6e4', '0.0', '-0.0', '1E1', '24e0',
  '9007199254740993', '1e-400', '192000.00000000001'];
const STRINGS = ['', 'pcm', 'mulaw', 'alaw', 'PCM', 'Mulaw', ' pcm', 'pcm ', 'pcm\u0000', 'ulaw', 'a-law', 'start', 'stop',
  'START', 'Start', 'stop\u0000', '\ud800', '\u{1f600}', 'true', '16000', 'null', '__proto__', 'constructor',
  'x'.repeat(255), 'y'.repeat(256), 'z'.repeat(257), '\u{1f600}'.repeat(128), '\u{1f600}'.repeat(129)];
const KEYS = ['request', 'format', 'encoding', 'channels', 'sample_rate', 'bit_depth', 'is_float', 'interim_results', 'progress',
  'trace_id', 'disconnect', '__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', 'prototype',
  'sampleRate', 'bitDepth', 'isFloat', 'Request', ''];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function randomScalar(r: Rng): Json {
  switch (r.int(5)) {
    case 0: return null;
    case 1: return r.chance(0.5);
    case 2: return r.chance(0.7) ? r.pick(NUMBERS) : (r.next() - 0.5) * 10 ** r.int(12);
    case 3: return r.pick(STRINGS);
    default: return String.fromCharCode(...Array.from({ length: r.int(8) }, () => r.int(0x10000)));
  }
}

function randomJson(r: Rng, depth: number): Json {
  if (depth <= 0 || r.chance(0.4)) return randomScalar(r);
  if (r.chance(0.4)) return Array.from({ length: r.int(4) }, () => randomJson(r, depth - 1));
  const o: { [k: string]: Json } = {};
  for (let i = r.int(5); i > 0; i--) o[r.chance(0.8) ? r.pick(KEYS) : JSON.stringify(randomScalar(r))] = randomJson(r, depth - 1);
  return o;
}

function validFormat(r: Rng, maxChannels: number): { [k: string]: Json } {
  const encoding = r.pick(['pcm', 'pcm', 'pcm', 'mulaw', 'alaw', undefined]);
  const f: { [k: string]: Json } = {
    channels: 1 + r.int(maxChannels),
    sample_rate: r.chance(0.5) ? r.pick([8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000]) : 8000 + r.int(184001),
  };
  if (encoding !== undefined) f['encoding'] = encoding;
  if (encoding === 'mulaw' || encoding === 'alaw') {
    if (r.chance(0.5)) f['bit_depth'] = 8;
    if (r.chance(0.3)) f['is_float'] = false;
  } else {
    const isFloat = r.chance(0.3);
    if (isFloat || r.chance(0.3)) f['is_float'] = isFloat;
    f['bit_depth'] = isFloat ? r.pick([32, 64]) : r.pick([8, 16, 24, 32]);
  }
  return f;
}

function validMessage(r: Rng, maxChannels: number): { [k: string]: Json } {
  if (r.chance(0.3)) {
    const m: { [k: string]: Json } = { request: 'stop' };
    if (r.chance(0.6)) m['disconnect'] = r.chance(0.5);
    return m;
  }
  const m: { [k: string]: Json } = { request: 'start', format: validFormat(r, maxChannels) };
  if (r.chance(0.5)) m['interim_results'] = r.chance(0.5);
  if (r.chance(0.3)) m['progress'] = r.chance(0.5);
  if (r.chance(0.5)) m['trace_id'] = r.chance(0.8) ? r.pick(STRINGS) : null;
  return m;
}

function mutateValue(r: Rng, v: Json, depth = 0): Json {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && depth < 3 && r.chance(0.7)) {
    const o = { ...v };
    const keys = Object.keys(o);
    switch (r.int(5)) {
      case 0: if (keys.length) delete o[r.pick(keys)]; break;
      case 1: o[r.pick(KEYS)] = randomJson(r, 2); break;
      case 2: if (keys.length) o[r.pick(keys)] = randomScalar(r); break;
      case 3: if (keys.length) { const k = r.pick(keys); o[k] = mutateValue(r, o[k]!, depth + 1); } break;
      default: if (keys.length) { const k = r.pick(keys); o[k] = r.pick([null, [], {}, [o[k]!], JSON.stringify(o[k]) ?? '']); }
    }
    return o;
  }
  return r.chance(0.5) ? randomScalar(r) : randomJson(r, 2);
}

function mutateText(r: Rng, s: string): string {
  switch (r.int(10)) {
    case 0: { const i = r.int(s.length + 1); return s.slice(0, i) + String.fromCharCode(r.int(128)) + s.slice(i); }
    case 1: { const i = r.int(s.length); return s.slice(0, i) + s.slice(i + 1); }
    case 2: { const i = r.int(s.length); return s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) ^ (1 << r.int(7))) + s.slice(i + 1); }
    case 3: return s.slice(0, r.int(s.length));
    case 4: { // replace a number with a literal JS cannot hold exactly
      const nums = [...s.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?/g)];
      if (!nums.length) return s;
      const m = r.pick(nums);
      return s.slice(0, m.index) + r.pick(NUMBER_TEXTS) + s.slice(m.index + m[0].length);
    }
    case 5: { // a duplicate key: the last one wins
      const i = s.indexOf('{');
      if (i < 0) return s;
      return `${s.slice(0, i + 1)}"${r.pick(KEYS)}":${JSON.stringify(randomScalar(r))},${s.slice(i + 1)}`;
    }
    case 6: return r.pick(['\ufeff', ' \t\r\n', '/*x*/', '']) + s + r.pick(['', ' ', '\n', '\u0000', ',', '}', 'x']);
    case 7: { const i = r.int(s.length + 1); return s.slice(0, i) + r.pick(['\ud800', '\udc00', '\\ud800', '\\u0000', '"', '\\', '\\"']) + s.slice(i); }
    case 8: { const i = r.int(s.length), j = i + r.int(s.length - i + 1); return s.slice(0, j) + s.slice(i, j) + s.slice(j); }
    default: return s.replace(/"(true|false|null)"|\b(true|false|null)\b/, (m) => (m.startsWith('"') ? m.slice(1, -1) : `"${m}"`));
  }
}

function pathological(r: Rng): string {
  const n = 1000 + r.int(200_000);
  switch (r.int(7)) {
    case 0: return '['.repeat(n) + ']'.repeat(n);
    case 1: return '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    case 2: return `{"request":"start","format":${'['.repeat(n)}${']'.repeat(n)}}`;
    case 3: return `{"request":"start","format":{"encoding":${JSON.stringify('p'.repeat(n * 5))},"channels":1,"sample_rate":16000,"bit_depth":16}}`;
    case 4: return `{"request":${JSON.stringify('s'.repeat(n * 5))}}`;
    case 5: return `{"request":"stop","trace_id":${JSON.stringify('\\'.repeat(n))},"x":[${'1,'.repeat(n)}1]}`;
    default: return '{"request":"start"' + ',"k":1'.repeat(n) + '}';
  }
}

interface Case {
  text: string;
  maxChannels: number;
}

function generate(seed: number, i: number): Case {
  const r = new Rng(iterationSeed(seed, i));
  const maxChannels = r.chance(0.5) ? 8 : 1 + r.int(64);
  const kind = r.int(100);
  let text: string;
  if (kind < 1) {
    text = pathological(r);
  } else if (kind < 12) {
    text = JSON.stringify(validMessage(r, maxChannels));
  } else if (kind < 35) {
    // A start whose format has one or two fields at a boundary or of another type.
    const f = validFormat(r, maxChannels);
    for (let k = 1 + r.int(2); k > 0; k--) {
      const key = r.pick(['encoding', 'channels', 'sample_rate', 'bit_depth', 'is_float']);
      const v = r.int(6);
      if (v === 0) delete f[key];
      else f[key] = v === 1 ? r.pick(STRINGS) : v === 2 ? r.chance(0.5) : v === 3 ? null : r.pick(NUMBERS);
    }
    const m: { [k: string]: Json } = { request: 'start', format: f };
    if (r.chance(0.3)) m['interim_results'] = r.chance(0.8) ? r.chance(0.5) : randomScalar(r);
    if (r.chance(0.2)) m['progress'] = r.chance(0.8) ? r.chance(0.5) : randomScalar(r);
    text = JSON.stringify(m);
    if (r.chance(0.2)) text = mutateText(r, text);
  } else if (kind < 55) {
    let v: Json = validMessage(r, maxChannels);
    for (let k = 1 + r.int(3); k > 0; k--) v = mutateValue(r, v);
    text = JSON.stringify(v);
  } else if (kind < 85) {
    text = JSON.stringify(validMessage(r, maxChannels));
    for (let k = 1 + r.int(3); k > 0; k--) text = mutateText(r, text);
  } else if (kind < 95) {
    text = JSON.stringify(randomJson(r, 4));
  } else {
    text = Array.from({ length: r.int(40) }, () => String.fromCharCode(r.int(r.chance(0.8) ? 128 : 0x10000))).join('');
  }
  return { text, maxChannels };
}

// --- The oracle: what the README says a message means -------------------------------------------

type Expected = { ok: true; value: unknown } | { ok: false; codes: Set<ErrorCode> };

function plainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function expected(text: string, maxChannels: number): Expected {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return { ok: false, codes: new Set(['BAD_JSON']) };
  }
  const codes = new Set<ErrorCode>();
  const own = (o: Record<string, unknown>, k: string) => (Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined);
  const absent = (v: unknown) => v === undefined || v === null;
  if (!plainObject(msg)) return { ok: false, codes: new Set(['BAD_MESSAGE']) };
  const request = own(msg, 'request');
  if (typeof request !== 'string') return { ok: false, codes: new Set(['BAD_MESSAGE']) };
  if (request === 'stop') {
    const d = own(msg, 'disconnect');
    if (absent(d)) return { ok: true, value: { request, disconnect: false } };
    if (typeof d !== 'boolean') return { ok: false, codes: new Set(['BAD_MESSAGE']) };
    return { ok: true, value: { request, disconnect: d } };
  }
  if (request !== 'start') return { ok: false, codes: new Set(['UNKNOWN_REQUEST']) };

  const traceId = own(msg, 'trace_id');
  // At most 256 characters (UTF-16 units): src/protocol.ts's limit, not (yet) in the README.
  if (!absent(traceId) && (typeof traceId !== 'string' || traceId.length > 256)) codes.add('BAD_MESSAGE');
  const interim = own(msg, 'interim_results');
  if (!absent(interim) && typeof interim !== 'boolean') codes.add('BAD_MESSAGE');
  const progress = own(msg, 'progress');
  if (!absent(progress) && typeof progress !== 'boolean') codes.add('BAD_MESSAGE');
  const f = own(msg, 'format');
  if (!plainObject(f)) return { ok: false, codes: new Set([...codes, 'BAD_MESSAGE']) };

  const typed = (k: string, type: string, required: boolean): unknown => {
    const v = own(f, k);
    if (absent(v)) {
      if (required) codes.add('BAD_MESSAGE');
      return undefined;
    }
    if (typeof v !== type) {
      codes.add('BAD_MESSAGE');
      return undefined;
    }
    return v;
  };
  const encoding = (typed('encoding', 'string', false) as string | undefined) ?? (absent(own(f, 'encoding')) ? 'pcm' : undefined);
  const channels = typed('channels', 'number', true) as number | undefined;
  const sampleRate = typed('sample_rate', 'number', true) as number | undefined;
  const isFloat = (typed('is_float', 'boolean', false) as boolean | undefined) ?? (absent(own(f, 'is_float')) ? false : undefined);
  // bit_depth: required for PCM, 8 by default for G.711 (and for an unknown encoding, which fails anyway).
  const bitDepthRaw = typed('bit_depth', 'number', encoding === 'pcm');
  const bitDepth = (bitDepthRaw as number | undefined) ?? (absent(own(f, 'bit_depth')) && encoding !== 'pcm' ? 8 : undefined);

  if (encoding !== undefined && !['pcm', 'mulaw', 'alaw'].includes(encoding)) codes.add('INVALID_FORMAT');
  if (channels !== undefined && !(Number.isInteger(channels) && channels >= 1 && channels <= maxChannels)) codes.add('INVALID_FORMAT');
  if (sampleRate !== undefined && !(Number.isInteger(sampleRate) && sampleRate >= 8000 && sampleRate <= 192000)) codes.add('INVALID_FORMAT');
  if (encoding === 'pcm' && isFloat !== undefined && bitDepth !== undefined) {
    if (!(isFloat ? [32, 64] : [8, 16, 24, 32]).includes(bitDepth)) codes.add('INVALID_FORMAT');
  } else if ((encoding === 'mulaw' || encoding === 'alaw') && ((bitDepth !== undefined && bitDepth !== 8) || isFloat === true)) {
    codes.add('INVALID_FORMAT');
  }
  if (codes.size > 0) return { ok: false, codes };
  return {
    ok: true,
    value: {
      request,
      format: { encoding, channels, sampleRate, bitDepth, isFloat },
      interimResults: absent(interim) ? false : interim,
      progress: absent(progress) ? false : progress,
      traceId: absent(traceId) ? null : traceId,
    },
  };
}

// --- Checking one case ---------------------------------------------------------------------------

const SLOW_MS = 1000; // a single parse this slow is a failure (the largest frames are ~1 MB)
const MAX_ECHO = 1024; // error messages go back to the client; longer ones are reported (soft)

interface Outcome {
  failure?: string;
  longMessage?: { length: number; code: ErrorCode };
}

function check(c: Case): Outcome {
  const want = expected(c.text, c.maxChannels);
  const t0 = performance.now();
  let got: unknown;
  let thrown: unknown;
  let threw = false;
  try {
    got = parseRequest(c.text, c.maxChannels);
  } catch (e) {
    threw = true;
    thrown = e;
  }
  const ms = performance.now() - t0;
  if (ms > SLOW_MS) return { failure: `parse took ${ms.toFixed(0)} ms` };
  if (threw) {
    if (!(thrown instanceof ProtocolError)) {
      return { failure: `threw a non-ProtocolError: ${thrown instanceof Error ? thrown.stack : String(thrown)}` };
    }
    if (!(thrown.code in ERROR_CODES)) return { failure: `ProtocolError with an unknown code ${String(thrown.code)}` };
    if (typeof thrown.message !== 'string' || thrown.message.length === 0) return { failure: 'ProtocolError without a message' };
    if (want.ok) return { failure: `rejected a valid message (${thrown.code}: ${thrown.message.slice(0, 200)}); want ${JSON.stringify(want.value)}` };
    if (!want.codes.has(thrown.code)) {
      return { failure: `code ${thrown.code} (${thrown.message.slice(0, 200)}), want one of ${[...want.codes].join(', ')}` };
    }
    return thrown.message.length > MAX_ECHO ? { longMessage: { length: thrown.message.length, code: thrown.code } } : {};
  }
  if (!want.ok) return { failure: `accepted an invalid message (want ${[...want.codes].join(' or ')}): ${JSON.stringify(got)}` };
  try {
    assert.deepStrictEqual(got, want.value);
  } catch {
    return { failure: `parsed as ${JSON.stringify(got)}, want ${JSON.stringify(want.value)}` };
  }
  return {};
}

// --- Driver --------------------------------------------------------------------------------------

interface WorkerInput {
  seed: number;
  iterations: number;
  progress: SharedArrayBuffer;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function save(out: string | undefined, c: Case, seed: number, iteration: number, failure: string): void {
  const file = out ?? 'message-fuzz-failure.json';
  writeFileSync(file, JSON.stringify({ seed, iteration, maxChannels: c.maxChannels, failure, text: c.text }));
  const shown = c.text.length > 300 ? `${JSON.stringify(c.text.slice(0, 300))}... (${c.text.length} chars)` : JSON.stringify(c.text);
  console.error(`message fuzz FAILURE at iteration ${iteration} (seed ${seed}, maxChannels ${c.maxChannels}): ${failure}\n  input: ${shown}\n  saved to ${file}`);
}

async function main(): Promise<number> {
  const replay = arg('replay');
  if (replay) {
    const saved = JSON.parse(readFileSync(replay, 'utf8')) as Case;
    const outcome = check(saved);
    console.log(outcome.failure ?? 'passes');
    return outcome.failure ? 1 : 0;
  }
  const iterations = Number(arg('iterations') ?? 200_000);
  const seed = Number(arg('seed') ?? Date.now() % 2 ** 31);
  const out = arg('out');
  const hangSeconds = Number(arg('hang-seconds') ?? 10);
  const progress = new SharedArrayBuffer(8);
  const done = new Int32Array(progress); // [0] iteration being checked
  const start = performance.now();
  console.log(`message fuzz: ${iterations} messages, seed ${seed}`);
  // The worker runs this same file, so it needs the TypeScript loader too: on Node 20 a worker
  // does not get the parent's `--import tsx` hooks, so it registers tsx itself first.
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(boot, { eval: true, workerData: { seed, iterations, progress } satisfies WorkerInput });
  return new Promise((resolve) => {
    let last = -1;
    let stuck = 0;
    const watchdog = setInterval(() => {
      const now = Atomics.load(done, 0);
      stuck = now === last ? stuck + 1 : 0;
      last = now;
      if (stuck >= hangSeconds) {
        clearInterval(watchdog);
        void worker.terminate();
        save(out, generate(seed, now), seed, now, `no progress for ${hangSeconds} s (hang)`);
        resolve(1);
      }
    }, 1000);
    worker.on('message', (m: { failure?: { iteration: number; text: string }; done?: { long: number; longExample?: number; longCodes: string[]; byCode: Record<string, number> } }) => {
      clearInterval(watchdog);
      if (m.failure) {
        save(out, generate(seed, m.failure.iteration), seed, m.failure.iteration, m.failure.text);  // deterministic
        resolve(1);
        return;
      }
      const d = m.done!;
      console.log(`outcomes: ${Object.entries(d.byCode).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      if (d.long > 0) {
        console.log(`warning (not a failure): ${d.long} error messages longer than ${MAX_ECHO} chars (longest ${d.longExample}, codes ${d.longCodes.join(', ')}): they echo client input back unbounded`);
      }
      console.log(`${iterations} messages in ${((performance.now() - start) / 1000).toFixed(1)} s: every one parsed as the protocol says or was refused with a fitting ProtocolError`);
      resolve(0);
    });
    worker.on('error', (e) => {
      clearInterval(watchdog);
      save(out, generate(seed, Atomics.load(done, 0)), seed, Atomics.load(done, 0), `worker died: ${e.stack ?? e}`);
      resolve(1);
    });
  });
}

function workerMain(input: WorkerInput): void {
  const done = new Int32Array(input.progress);
  const byCode: Record<string, number> = {};
  let long = 0;
  let longExample = 0;
  const longCodes = new Set<string>();
  for (let i = 0; i < input.iterations; i++) {
    Atomics.store(done, 0, i);
    const c = generate(input.seed, i);
    const outcome = check(c);
    if (outcome.failure) {
      parentPort!.postMessage({ failure: { iteration: i, text: outcome.failure } });
      return;
    }
    if (outcome.longMessage) {
      long++;
      longExample = Math.max(longExample, outcome.longMessage.length);
      longCodes.add(outcome.longMessage.code);
    }
    const w = expected(c.text, c.maxChannels);
    const key = w.ok ? 'ok' : [...w.codes].sort().join('|');
    byCode[key] = (byCode[key] ?? 0) + 1;
  }
  parentPort!.postMessage({ done: { long, longExample, longCodes: [...longCodes], byCode } });
}

if (isMainThread) {
  process.exitCode = await main();
} else {
  workerMain(workerData as WorkerInput);
}
