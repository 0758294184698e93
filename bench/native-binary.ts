// The benches' C++ harnesses (bench/native/*.cc): built with g++ into bench/out/ (git-ignored)
// when a source or header is newer than the binary, with the addon's flags (CMakeLists.txt: -O3
// -DNDEBUG, C++17, no -march), so the code under test runs as it is served.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './server-process.js';

interface NativeBench {
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

/**
 * A harness compiled with the server's own Moonshine (native/models/moonshine.cc) and ONNX
 * Runtime: `bench/native/<name>.cc`. job.h pulls in napi.h, whose unused inline N-API code is
 * dropped by --gc-sections: no Node symbols are needed.
 */
export function buildMoonshineBench(name: string): string {
  const ortLib = path.join(ROOT, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64');
  // CMakeLists.txt's ONNX Runtime headers (fetched there at the first addon build).
  const ortInclude = path.join(ROOT, 'node_modules/.cache/ort-headers-0.4.9/package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64_x86_64-simulator/onnxruntime.framework/Headers');
  return buildNativeBench({
    name,
    sources: [`bench/native/${name}.cc`, 'native/models/moonshine.cc', 'native/models/vocabulary.cc', 'native/ort_env.cc'],
    headers: ['native/models/moonshine.h', 'native/models/model.h', 'native/models/vocabulary.h', 'native/ort_env.h', 'native/job.h', 'bench/native/bench_stats.h'],
    flags: [
      '-ffunction-sections', '-fdata-sections', '-Wl,--gc-sections',
      '-isystem', ortInclude, '-isystem', path.join(ROOT, 'node_modules/node-addon-api'), '-isystem', path.join(ROOT, 'node_modules/node-api-headers/include'),
      '-DNAPI_VERSION=8', '-DNODE_ADDON_API_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED',
    ],
    link: [path.join(ortLib, 'libonnxruntime.so.1'), `-Wl,-rpath,${ortLib}`, '-lpthread'],
  });
}
