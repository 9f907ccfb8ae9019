import { describe, expect, it } from 'vitest';
import { registerWithResolved } from '../../src/daemon/resolved.js';
import type { Exec } from '../../src/exec.js';
import { createLogger } from '../../src/log.js';
import { ErrorCodes } from '../../src/errors.js';

/** A fake resolvectl: records calls, fails the subcommands listed in `failing`. */
function fakeResolvectl(failing: string[] = []) {
  const calls: string[] = [];
  const exec: Exec = async (command, args) => {
    calls.push([command, ...args].join(' '));
    return failing.includes(args[0]!) ? { code: 1, stdout: '', stderr: `Failed to ${args[0]}: Link virbr10 not known` } : { code: 0, stdout: '', stderr: '' };
  };
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', write: (l) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { exec, calls, logger, lines };
}

const running = async () => true;

describe('registerWithResolved', () => {
  it('sets the DNS server, a routing-only domain and no default route, and reverts once', async () => {
    const f = fakeResolvectl();
    const reg = await registerWithResolved({ bridge: 'virbr10', address: '10.10.0.1', domain: 'vm', exec: f.exec, logger: f.logger, isRunning: running });
    expect(reg.registered).toBe(true);
    expect(f.calls).toEqual(['resolvectl dns virbr10 10.10.0.1', 'resolvectl domain virbr10 ~vm', 'resolvectl default-route virbr10 false']);
    await Promise.all([reg.undo(), reg.undo()]);
    await reg.undo();
    expect(f.calls.slice(3)).toEqual(['resolvectl revert virbr10']);
  });

  it('registers only the server when natd has no domain', async () => {
    const f = fakeResolvectl();
    await registerWithResolved({ bridge: 'virbr10', address: '10.10.0.1', exec: f.exec, logger: f.logger, isRunning: running });
    expect(f.calls).toEqual(['resolvectl dns virbr10 10.10.0.1', 'resolvectl default-route virbr10 false']);
  });

  it('does nothing when resolved is not running', async () => {
    const f = fakeResolvectl();
    const reg = await registerWithResolved({ bridge: 'virbr10', address: '10.10.0.1', domain: 'vm', exec: f.exec, logger: f.logger, isRunning: async () => false });
    await reg.undo();
    expect(reg.registered).toBe(false);
    expect(f.calls).toEqual([]);
  });

  it('undoes a half-done registration and reports it unregistered', async () => {
    const f = fakeResolvectl(['domain']);
    const reg = await registerWithResolved({ bridge: 'virbr10', address: '10.10.0.1', domain: 'vm', exec: f.exec, logger: f.logger, isRunning: running });
    expect(reg.registered).toBe(false);
    expect(f.calls).toEqual(['resolvectl dns virbr10 10.10.0.1', 'resolvectl domain virbr10 ~vm', 'resolvectl revert virbr10']);
    expect(f.lines.find((l) => l.level === 'warn')).toMatchObject({ command: 'resolvectl domain virbr10 ~vm', stderr: expect.stringContaining('not known') });
  });

  it('keeps the registration when only default-route is unsupported (old systemd), and logs a failed revert', async () => {
    const f = fakeResolvectl(['default-route', 'revert']);
    const reg = await registerWithResolved({ bridge: 'virbr10', address: '10.10.0.1', domain: 'vm', exec: f.exec, logger: f.logger, isRunning: running });
    expect(reg.registered).toBe(true);
    await expect(reg.undo()).resolves.toBeUndefined();
    expect(f.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(['resolvectl default-route failed; continuing', 'resolvectl revert failed']);
  });

  it('rejects an address or domain that is not one', async () => {
    const f = fakeResolvectl();
    await expect(registerWithResolved({ bridge: 'virbr10', address: '10.10.0.300', exec: f.exec, logger: f.logger, isRunning: running })).rejects.toMatchObject({ code: ErrorCodes.CONFIG });
    await expect(registerWithResolved({ bridge: 'virbr10', address: '10.10.0.1', domain: '-bad domain', exec: f.exec, logger: f.logger, isRunning: running })).rejects.toThrow(/not a domain/);
    expect(f.calls).toEqual([]);
  });
});
