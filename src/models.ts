// Loading the models a server runs: the speech model (stub or Moonshine) and the VAD. Files are
// checked against models/manifest.json (size and sha256) before they are loaded, so a missing or
// corrupt file stops start-up with a message naming it instead of failing later.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Config } from './config.js';
import { addon, type NativeModel, type NativeVad } from './native/binding.js';
import { PROJECT_ROOT } from './paths.js';
import type { Task } from './tasks.js';

type ModelFiles = typeof import('../models/model-files.mjs');

class ModelFileError extends Error {
  override name = 'ModelFileError';
}

async function modelFiles(): Promise<ModelFiles> {
  return (await import(pathToFileURL(path.join(PROJECT_ROOT, 'models/model-files.mjs')).href)) as ModelFiles;
}

async function checkedDir(config: Config, name: string): Promise<string> {
  const files = await modelFiles();
  const dir = config.modelsDir || files.MODELS_DIR;
  const problems = files.modelProblems(name, dir);
  if (problems.length > 0) {
    throw new ModelFileError(`model ${name} in ${dir}: ${problems.join('; ')}. Run \`node models/fetch.mjs\` to fetch it again.`);
  }
  return path.join(dir, name);
}

export async function loadSpeechModel(config: Config, task: Task): Promise<NativeModel> {
  if (config.model === 'stub') return addon.loadModel(task.native, { kind: 'stub', stub: config.stub });
  return addon.loadModel(task.native, { kind: 'moonshine', dir: await checkedDir(config, config.model), weights: config.modelWeights });
}

export async function loadVad(config: Config, task: Task): Promise<NativeVad> {
  return addon.loadVad(task.native, path.join(await checkedDir(config, 'silero-vad'), 'silero_vad.onnx'));
}
