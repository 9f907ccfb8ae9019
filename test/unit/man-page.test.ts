import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_OPTIONS } from '../../src/cli.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const page = readFileSync(path.join(ROOT, 'man', 'natd.8'), 'utf8');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { man?: string | string[]; files?: string[] };

describe('natd(8)', () => {
  it('documents every flag the daemon accepts', () => {
    const missing = Object.keys(DAEMON_OPTIONS).filter((flag) => !page.includes(`\\-\\-${flag.replace(/-/g, '\\-')}`));
    expect(missing).toEqual([]);
  });

  it('is installed with the package (npm install -g puts it in the man path)', () => {
    expect([pkg.man].flat()).toContain('./man/natd.8');
    expect(pkg.files).toContain('man');
  });
});
