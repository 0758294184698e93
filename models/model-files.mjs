// The model files the manifest lists, where they live, and whether each is intact (size and
// sha256). Shared by models/fetch.mjs (install time) and the server (start-up).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MODELS_DIR = path.dirname(fileURLToPath(import.meta.url));

export function readManifest() {
  return JSON.parse(readFileSync(path.join(MODELS_DIR, 'manifest.json'), 'utf8'));
}

/** The problem with one manifest file as installed in `dir`, or null when it is intact. */
export function fileProblem(file, dir = MODELS_DIR) {
  const target = path.join(dir, file.path);
  if (!existsSync(target)) return `${file.path} is missing`;
  const size = statSync(target).size;
  if (size !== file.bytes) return `${file.path} has ${size} bytes, expected ${file.bytes}`;
  const digest = createHash('sha256').update(readFileSync(target)).digest('hex');
  if (digest !== file.sha256) return `${file.path} has sha256 ${digest}, expected ${file.sha256}`;
  return null;
}

/** Every problem with the named model's files in `dir` (empty when all are intact). */
export function modelProblems(name, dir = MODELS_DIR) {
  const model = readManifest().models.find((m) => m.name === name);
  if (!model) return [`${name} is not in models/manifest.json`];
  return model.files.map((f) => fileProblem(f, dir)).filter((p) => p !== null);
}
