// Where the project's own files are, whether running from src/ (tsx) or dist/src/ (compiled).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PROJECT_ROOT = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
