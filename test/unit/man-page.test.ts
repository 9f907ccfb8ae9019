import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_OPTIONS, HELP } from '../../src/cli.js';
import { ErrorCodes, exitStatusFor, NatdError } from '../../src/errors.js';

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

  it('EXIT STATUS and --help list every exit status the error codes map to', () => {
    const section = page.slice(page.indexOf('.SH EXIT STATUS'), page.indexOf('.SH', page.indexOf('.SH EXIT STATUS') + 1));
    const statuses = [...new Set([0, 1, ...Object.values(ErrorCodes).map((code) => exitStatusFor(new NatdError(code, '')))])];
    for (const status of statuses) {
      expect(section, `man: ${status}`).toContain(`.B ${status}\n`);
      expect(HELP, `--help: ${status}`).toMatch(new RegExp(`[ ,]${status} [a-z]`));
    }
  });
});
