// The benches' C++ harnesses (bench/native/*.cc): built with g++ into bench/out/ (git-ignored)
// when a source or header is newer than the binary, with the addon's flags (CMakeLists.txt: -O3
// -DNDEBUG, C++17, no -march), so the code under test runs as it is served.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './server-process.js';

export interface NativeBench {
  /** bench/out/<name> */
  name: string;
  /** Compiled and linked, relative to the repository root. */
  sources: string[];
  /** Only watched for changes, relative to the repository root. */
  headers: string[];
  /** Flags before the sources (defines, include folders). */
  flags?: string[];
  /** What follows the sources: libraries, linker flags. */
  link?: string[];
}

/** Builds the harness if it is stale; returns the binary's path. */
export function buildNativeBench(bench: NativeBench): string {
  const binary = path.join(ROOT, 'bench/out', bench.name);
  const sources = bench.sources.map((f) => path.join(ROOT, f));
  const watched = [...sources, ...bench.headers.map((f) => path.join(ROOT, f))];
  const built = existsSync(binary) ? statSync(binary).mtimeMs : 0;
  if (watched.every((f) => statSync(f).mtimeMs < built)) return binary;
  mkdirSync(path.dirname(binary), { recursive: true });
  execFileSync('g++', [
    '-O3', '-DNDEBUG', '-std=c++17', ...(bench.flags ?? []), '-I', path.join(ROOT, 'native'),
    ...sources, ...(bench.link ?? []), '-o', binary,
  ], { stdio: ['ignore', 'inherit', 'inherit'] });
  return binary;
}
