/** `natd demo` is a newcomer's first command: it must succeed and leave nothing behind. */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { isRoot, listNamespaces } from '../support/netns.js';
import { NATD_CLI } from '../support/natd-process.js';

describe.skipIf(!isRoot() && !process.env.CI)('natd demo', () => {
  it('shows leases, names and NAT, then deletes its namespaces', async () => {
    const result = await new Promise<{ code: number; stdout: string; pid: number }>((resolve) => {
      const child = execFile(process.execPath, [NATD_CLI, 'demo'], { timeout: 60_000 }, (err, stdout) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, pid: child.pid! }));
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/vm alpha got 10\.77\.0\.\d+/);
    expect(result.stdout).toMatch(/alpha resolves beta\.demo → 10\.77\.0\.\d+/);
    expect(result.stdout).toContain('you came from 198.51.100.1:');
    expect(result.stdout).toContain('its nftables table is gone');
    expect(listNamespaces().filter((ns) => ns.startsWith(`natdt-${result.pid}-`))).toEqual([]);
  });
});
