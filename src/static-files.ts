// The live page's files (src/web/), read once at start-up and served from memory.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './paths.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

interface StaticFile {
  type: string;
  body: Buffer;
}

/** url path ("/", "/app.js") -> file; "/" is index.html. */
export function loadStaticFiles(dir = path.join(PROJECT_ROOT, 'src/web')): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[path.extname(name)];
    if (!type) continue;
    const file = { type, body: readFileSync(path.join(dir, name)) };
    files.set(`/${name}`, file);
    if (name === 'index.html') files.set('/', file);
  }
  return files;
}
