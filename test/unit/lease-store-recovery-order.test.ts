/**
 * Issue 12: repairing a journal damaged in the middle must never leave a crash window in which the next start finds
 * no journal (and starts with no leases). A crash is simulated by making one file-system step of the repair fail,
 * then opening the store again with the real functions.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const crash = vi.hoisted(() => ({ atomicWrite: false, link: false }));

vi.mock('../../src/state/atomic-file.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/state/atomic-file.js')>();
  return {
    ...real,
    writeFileAtomic: async (...args: Parameters<typeof real.writeFileAtomic>) => {
      if (crash.atomicWrite) throw new Error('simulated crash before the readable part is in place');
      return real.writeFileAtomic(...args);
    },
  };
});

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    link: async (...args: Parameters<typeof real.link>) => {
      if (crash.link) throw Object.assign(new Error('operation not permitted'), { code: 'EPERM' });
      return real.link(...args);
    },
  };
});

const { JOURNAL_FILE, LeaseStore } = await import('../../src/dhcp/lease-store.js');
const { silentLogger } = await import('../../src/log.js');

const NOW = 1_700_000_000_000;
const line = (n: number): string =>
  JSON.stringify({ op: 'bind', clientId: `0152540000000${n}`, mac: `52:54:00:00:00:0${n}`, address: `10.10.0.${10 + n}`, expiresAt: NOW + 3_600_000 });
const DAMAGED = [line(1), '{"op":"bind", garbage', line(2), ''].join('\n');

let dir: string;
const open = () => LeaseStore.open(dir, { logger: silentLogger, now: () => NOW });
const asideFiles = async () => (await readdir(dir)).filter((f) => f.startsWith(`${JOURNAL_FILE}.corrupt-`));

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'natd-leases-order-')), 'state');
  await open().then((s) => s.close()); // creates the dir
  await writeFile(join(dir, JOURNAL_FILE), DAMAGED);
  crash.atomicWrite = false;
  crash.link = false;
});
afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

describe('LeaseStore recovery order (damaged journal)', () => {
  it('a crash before the readable part is written still restarts with the readable leases', async () => {
    crash.atomicWrite = true;
    await expect(open()).rejects.toThrow(/simulated crash/);
    crash.atomicWrite = false;
    // the journal was not moved away first: the next start repairs it again and keeps the readable lease
    const store = await open();
    expect(store.load(NOW).leases.map((l) => l.clientId)).toEqual(['01525400000001']);
    await store.close();
    expect(await readFile(join(dir, JOURNAL_FILE), 'utf8')).toBe(line(1) + '\n');
    // the damaged bytes are kept aside (once per attempt), never lost
    const aside = await asideFiles();
    expect(aside.length).toBeGreaterThanOrEqual(1);
    for (const f of aside) expect(await readFile(join(dir, f), 'utf8')).toBe(DAMAGED);
  });

  it('keeps the damaged copy from the bytes read when the file system cannot hard-link', async () => {
    crash.link = true;
    const store = await open();
    expect(store.load(NOW).leases).toHaveLength(1);
    await store.close();
    const aside = await asideFiles();
    expect(aside).toHaveLength(1);
    expect(await readFile(join(dir, aside[0]!), 'utf8')).toBe(DAMAGED);
    expect(await readFile(join(dir, JOURNAL_FILE), 'utf8')).toBe(line(1) + '\n');
  });
});
