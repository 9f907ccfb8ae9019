/** Where things are, from test/support/ in the source tree or from build/test/support/ (the bench's build). */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('test/support: no package.json above this file');
    dir = up;
  }
  return dir;
}

export const PROJECT_ROOT = projectRoot();
/** the built natd (npm run build) */
export const NATD_CLI = path.join(PROJECT_ROOT, 'dist', 'src', 'cli.js');
/** data files and scripts the tests hand to other programs */
export const FIXTURES = path.join(PROJECT_ROOT, 'test', 'fixtures');
/** this folder in the source tree (its .mjs programs run from here, also when the bench imports the .ts from build/) */
export const SUPPORT = path.join(PROJECT_ROOT, 'test', 'support');
