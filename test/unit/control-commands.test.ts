import { describe, expect, it } from 'vitest';
import { parseArgs } from 'node:util';
import { flagError, formatStatus, formatTable } from '../../src/control/commands.js';
import { ErrorCodes } from '../../src/errors.js';

describe('control command output', () => {
  it('aligns tables under their headers', () => {
    expect(formatTable(['A', 'LONGER'], [['x', 'y'], ['wide-cell', 'z']])).toBe('A          LONGER\nx          y\nwide-cell  z\n');
  });

  it('prints status one line per component with nested counters as dotted key=value pairs', () => {
    const text = formatStatus({ bridge: 'br0', dns: { queries: 3, cache: { hits: 2 } }, firewall: undefined, list: [1, 2] });
    expect(text.split('\n')).toEqual(['bridge  br0', 'dns     queries=3 cache.hits=2', 'list    1,2', '']);
  });

  it('turns a parseArgs error into one short line with a pointer to --help', () => {
    let caught: unknown;
    try {
      parseArgs({ args: ['--nope'], options: {}, strict: true });
    } catch (err) {
      caught = err;
    }
    const err = flagError(caught);
    expect(err.code).toBe(ErrorCodes.CONFIG);
    expect(err.message).not.toContain('\n');
    expect(err.message).toMatch(/--nope.*; see natd --help$/);
  });
});
