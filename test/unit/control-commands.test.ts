import { describe, expect, it } from 'vitest';
import { parseArgs } from 'node:util';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { callDaemon } from '../../src/control/client.js';
import { flagError, formatForwards, formatTable } from '../../src/control/commands.js';
import { ErrorCodes, exitStatusFor, NatdError } from '../../src/errors.js';

describe('control command output', () => {
  it('aligns tables under their headers', () => {
    expect(formatTable(['A', 'LONGER'], [['x', 'y'], ['wide-cell', 'z']])).toBe('A          LONGER\nx          y\nwide-cell  z\n');
  });

  it('lists forwards, a forward kept out of the table saying why beside its guest', () => {
    expect(formatForwards([])).toBe('no port forwards\n');
    const text = formatForwards([
      { spec: 'tcp:2222=web:22', protocol: 'tcp', host: '*:2222', guest: '10.77.0.50:22', source: 'config', inTable: true },
      { spec: 'tcp:9090=db:90', protocol: 'tcp', host: '*:9090', guest: 'db:90', source: 'runtime', inTable: false, problem: 'no such reservation' },
    ]);
    expect(text.split('\n')).toEqual([
      'PROTO  HOST    GUEST                                          SPEC',
      'tcp    *:2222  10.77.0.50:22                                  tcp:2222=web:22',
      'tcp    *:9090  db:90 (no such reservation; not in the table)  tcp:9090=db:90',
      '',
    ]);
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

  describe('the daemon\'s error code reaches the CLI', () => {
    async function answer(response: unknown): Promise<unknown> {
      const dir = mkdtempSync(path.join(tmpdir(), 'natd-client-'));
      const socketPath = path.join(dir, 'control.sock');
      const server = net.createServer((conn) => conn.once('data', () => conn.end(JSON.stringify(response))));
      await new Promise<void>((resolve) => server.listen(socketPath, resolve));
      try {
        return await callDaemon(socketPath, 'status').catch((err: unknown) => err);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        rmSync(dir, { recursive: true, force: true });
      }
    }

    it('a refused config change keeps NATD_ERR_CONFIG (exit 78)', async () => {
      const err = await answer({ ok: false, error: 'mac: not a MAC address', code: ErrorCodes.CONFIG });
      expect(err).toBeInstanceOf(NatdError);
      expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
      expect(exitStatusFor(err)).toBe(78);
    });

    it('arguments the daemon refuses keep NATD_ERR_COMMAND (exit 64)', async () => {
      const err = await answer({ ok: false, error: 'forwards.add: invalid arguments: spec: expected string', code: ErrorCodes.COMMAND });
      expect((err as NatdError).code).toBe(ErrorCodes.COMMAND);
      expect(exitStatusFor(err)).toBe(64);
    });

    it('a code the client does not know, or none, is a control error', async () => {
      expect(((await answer({ ok: false, error: 'x', code: 'SOMETHING_NEW' })) as NatdError).code).toBe(ErrorCodes.CONTROL);
      expect(((await answer({ ok: false, error: 'x' })) as NatdError).code).toBe(ErrorCodes.CONTROL);
    });
  });
});
