/** Where the project's files are, whether running from src/ (tsx, vitest) or dist/src/ (built). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'templates'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('Cannot find the Ayni project folder (package.json and templates/)');
    dir = up;
  }
}

export const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
export const TEMPLATES = join(ROOT, 'templates');
export const SURVEYS = join(ROOT, 'surveys');
