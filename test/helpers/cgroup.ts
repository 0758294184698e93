// A fake cgroup root: a temporary folder holding the given control files (path -> text).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export function fakeCgroup(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'cgroup-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), text + '\n');
  }
  return root;
}
