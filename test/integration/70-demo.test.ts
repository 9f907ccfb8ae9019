/** `natd demo` is a newcomer's first command: it must succeed and leave nothing behind. */
import { describe, expect, it } from 'vitest';
import { isRoot, listNamespaces } from '../support/netns.js';
import { NATD_CLI } from '../support/natd-process.js';
import { runCommand } from '../support/process.js';

describe.skipIf(!isRoot() && !process.env.CI)('natd demo', () => {
  it('shows leases, names and NAT, then deletes its namespaces', async () => {
    let pid = 0;
    const result = await runCommand([process.execPath, NATD_CLI, 'demo'], { timeoutMs: 60_000 }, (child) => (pid = child.pid!));
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/vm alpha got 10\.77\.0\.\d+/);
    expect(result.stdout).toMatch(/alpha resolves beta\.demo → 10\.77\.0\.\d+/);
    expect(result.stdout).toContain('you came from 198.51.100.1:');
    expect(result.stdout).toContain('its nftables table is gone');
    expect(listNamespaces().filter((ns) => ns.startsWith(`natdt-${pid}-`))).toEqual([]);
  });
});
