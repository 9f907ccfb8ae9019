/** issue 14: DHCPv6 bindings in the lease journal: same file, same group commit, compaction and recovery as v4. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JOURNAL_FILE, LeaseStore, parseJournalLine, type JournalChange } from '../../src/dhcp/lease-store.js';
import type { Lease, LeaseChange } from '../../src/dhcp/types.js';
import type { Lease6, Lease6Change } from '../../src/dhcp6/types.js';
import { silentLogger } from '../../src/log.js';
import { ip } from '../support/addresses.js';
import { recordingLogger } from '../support/recording-logger.js';

const NOW = 1_700_000_000_000;
const HOUR = 3_600_000;

function lease6(n: number, expiresAt = NOW + HOUR, extra: Partial<Lease6> = {}): Lease6 {
  return { duid: `00:03:00:01:52:54:00:00:00:${n.toString(16).padStart(2, '0')}`, iaid: 1, address: `fd00:10::${(0x100 + n).toString(16)}`, expiresAt, ...extra };
}
function lease4(n: number): Lease {
  const mac = `52:54:00:00:01:${n.toString(16).padStart(2, '0')}`;
  return { clientId: '01' + mac.replaceAll(':', ''), mac, address: ip('10.10.0.0') + 10 + n, expiresAt: NOW + HOUR };
}
const bind6 = (l: Lease6): Lease6Change => ({ kind: 'bind6', lease: l });
const bind4 = (l: Lease): LeaseChange => ({ kind: 'bind', lease: l });
const sorted6 = (l: Lease6[]): Lease6[] => [...l].sort((a, b) => a.duid.localeCompare(b.duid) || a.iaid - b.iaid);

let dir: string;
const open = (opts: Partial<Parameters<typeof LeaseStore.open>[1]> = {}): Promise<LeaseStore> =>
  LeaseStore.open(dir, { logger: silentLogger, now: () => NOW, ...opts });

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'natd-leases6-')), 'state');
});
afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

describe('v6 records in the lease journal', () => {
  it('writes readable bind6/release6/decline6 lines next to v4 ones and restores both', async () => {
    const store = await open();
    await store.commit([bind4(lease4(1)), bind6(lease6(1, NOW + HOUR, { mac: '52:54:00:00:00:01', hostname: 'db' })), bind6(lease6(2)), bind6({ ...lease6(3), iaid: 7 })]);
    await store.commit([{ kind: 'release6', duid: lease6(2).duid, iaid: 1, address: lease6(2).address }]);
    await store.commit([{ kind: 'decline6', address: 'fd00:10::1ff', until: NOW + 600_000 }]);
    expect(store.stats().syncs).toBe(3);
    await store.close();

    const lines = (await readFile(join(dir, JOURNAL_FILE), 'utf8')).trim().split('\n');
    expect(lines[1]).toBe(`{"op":"bind6","duid":"00:03:00:01:52:54:00:00:00:01","iaid":1,"address":"fd00:10::101","expiresAt":${NOW + HOUR},"mac":"52:54:00:00:00:01","hostname":"db"}`);
    expect(lines[5]).toBe(`{"op":"decline6","address":"fd00:10::1ff","until":${NOW + 600_000}}`);

    const reopened = await open();
    expect(reopened.load(NOW)).toEqual({ leases: [lease4(1)], declined: [] });
    expect(sorted6(reopened.load6(NOW).leases)).toEqual(sorted6([lease6(1, NOW + HOUR, { mac: '52:54:00:00:00:01', hostname: 'db' }), { ...lease6(3), iaid: 7 }]));
    expect(reopened.load6(NOW).declined).toEqual([{ address: 'fd00:10::1ff', until: NOW + 600_000 }]);
    expect(reopened.load6(NOW + HOUR).leases).toEqual([]);
    await reopened.close();
  });

  it('a v4-only journal loads as before, with no v6 state', async () => {
    const store = await open();
    await store.commit([bind4(lease4(1)), bind4(lease4(2))]);
    await store.close();
    const before = await readFile(join(dir, JOURNAL_FILE), 'utf8');
    expect(before).not.toContain('6"');
    const reopened = await open();
    expect(reopened.load(NOW).leases).toHaveLength(2);
    expect(reopened.load6(NOW)).toEqual({ leases: [], declined: [] });
    await reopened.close();
    expect(await readFile(join(dir, JOURNAL_FILE), 'utf8')).toBe(before);
  });

  it('v4 and v6 commits issued together share one fdatasync (group commit)', async () => {
    const store = await open();
    await Promise.all([store.commit([bind4(lease4(1))]), store.commit([bind6(lease6(1))]), store.commit([bind6(lease6(2))])]);
    expect(store.stats()).toMatchObject({ commits: 3, syncs: 1 });
    await store.close();
  });

  it('an address moves to its newest holder; a release of another address does not end the binding', async () => {
    const store = await open();
    await store.commit([bind6(lease6(1)), bind6({ ...lease6(2), address: lease6(1).address })]);
    await store.commit([{ kind: 'release6', duid: lease6(2).duid, iaid: 1, address: 'fd00:10::999' }]);
    expect(store.load6(NOW).leases).toEqual([{ ...lease6(2), address: lease6(1).address }]);
    await store.close();
  });

  it('compaction keeps the live v6 bindings and quarantines and drops the rest', async () => {
    const store = await open({ compactMinBytes: 0 });
    for (let round = 1; round <= 10; round++) await store.commit(Array.from({ length: 5 }, (_, i) => bind6(lease6(i, NOW + round * 1000))));
    await store.commit([bind6(lease6(40, NOW - 1)), { kind: 'decline6', address: 'fd00:10::1ff', until: NOW + HOUR }]);
    await store.compact();
    await store.close();
    const text = await readFile(join(dir, JOURNAL_FILE), 'utf8');
    expect(text.trim().split('\n')).toHaveLength(6);
    const reopened = await open();
    expect(sorted6(reopened.load6(NOW).leases)).toEqual(sorted6(Array.from({ length: 5 }, (_, i) => lease6(i, NOW + 10_000))));
    expect(reopened.load6(NOW).declined).toHaveLength(1);
    await reopened.close();
  });

  it('refuses to journal a v6 change that would not load back', async () => {
    const store = await open();
    await expect(store.commit([bind6({ ...lease6(1), address: 'FD00:10:0::1' })])).rejects.toMatchObject({ code: 'NATD_ERR_STATE' });
    await expect(store.commit([bind6({ ...lease6(1), duid: 'zz' })])).rejects.toMatchObject({ code: 'NATD_ERR_STATE' });
    await expect(store.commit([bind6({ ...lease6(1), iaid: -1 })])).rejects.toMatchObject({ code: 'NATD_ERR_STATE' });
    expect(store.stats().bytes).toBe(0);
    await store.close();
  });

  it('parses only what natd writes', () => {
    const good = `{"op":"bind6","duid":"00:03:00:01:52:54:00:00:00:01","iaid":1,"address":"fd00:10::101","expiresAt":${NOW}}`;
    expect(parseJournalLine(good)).toEqual({ kind: 'bind6', lease: { duid: '00:03:00:01:52:54:00:00:00:01', iaid: 1, address: 'fd00:10::101', expiresAt: NOW } });
    for (const bad of [
      good.replace('fd00:10::101', '10.10.0.5'),
      good.replace('fd00:10::101', 'fd00:10:0:0::101'),
      good.replace('"iaid":1', '"iaid":4294967296'),
      good.replace('"iaid":1', '"iaid":"1"'),
      good.replace('00:03:00:01:52:54:00:00:00:01', '0003'),
      good.replace(`${NOW}`, '"soon"'),
      '{"op":"decline6","address":"fd00::1"}',
      '{"op":"release6","address":"fd00::1","iaid":1}',
      '{"op":"bind","clientId":"01","mac":"","address":"fd00::1","expiresAt":1}',
    ]) expect(parseJournalLine(bad), bad).toBeUndefined();
  });
});

describe('v6 journal recovery', () => {
  async function journalOf(batches: JournalChange[][]): Promise<Buffer> {
    const store = await open();
    for (const batch of batches) await store.commit(batch);
    await store.close();
    return readFile(join(dir, JOURNAL_FILE));
  }

  it('cuts a torn v6 tail away with a warning and keeps everything before it', async () => {
    const bytes = await journalOf([[bind6(lease6(1))], [bind4(lease4(1))]]);
    const torn = Buffer.concat([bytes, Buffer.from('{"op":"bind6","duid":"00:03:00:01:52:54:00:00')]);
    await writeFile(join(dir, JOURNAL_FILE), torn);
    const logger = recordingLogger();
    const store = await open({ logger });
    expect(store.load6(NOW).leases).toEqual([lease6(1)]);
    expect(store.load(NOW).leases).toEqual([lease4(1)]);
    expect(logger.messages('warn')[0]).toMatchObject({ droppedBytes: torn.length - bytes.length });
    expect((await readFile(join(dir, JOURNAL_FILE))).equals(bytes)).toBe(true);
    await store.commit([bind6(lease6(2))]);
    await store.close();
    const reopened = await open();
    expect(reopened.load6(NOW).leases).toHaveLength(2);
    await reopened.close();
  });

  it('survives a crash at every byte of a mixed v4/v6 journal: exactly the complete lines count', async () => {
    const changes: JournalChange[] = [
      bind6(lease6(1, NOW + HOUR, { hostname: 'alpha' })),
      bind4(lease4(1)),
      bind6(lease6(2)),
      { kind: 'decline6', address: 'fd00:10::1ff', until: NOW + HOUR },
      bind6(lease6(1, NOW + 2 * HOUR, { hostname: 'alpha' })),
      { kind: 'release6', duid: lease6(2).duid, iaid: 1, address: lease6(2).address },
      bind6(lease6(3)),
    ];
    const bytes = await journalOf(changes.map((c) => [c]));
    const modelAfter = (k: number): { v6: Lease6[]; v4: number; declined: number } => {
      const m = new Map<string, Lease6>();
      let v4 = 0;
      let declined = 0;
      for (const c of changes.slice(0, k)) {
        if (c.kind === 'bind6') m.set(c.lease.duid, c.lease);
        else if (c.kind === 'release6') m.delete(c.duid);
        else if (c.kind === 'decline6') declined++;
        else v4++;
      }
      return { v6: sorted6([...m.values()]), v4, declined };
    };
    for (let cut = 0; cut <= bytes.length; cut++) {
      await writeFile(join(dir, JOURNAL_FILE), bytes.subarray(0, cut));
      const store = await open();
      const complete = bytes.subarray(0, cut).toString().split('\n').length - 1;
      const expected = modelAfter(complete);
      expect(sorted6(store.load6(NOW).leases), `cut at ${cut}`).toEqual(expected.v6);
      expect(store.load6(NOW).declined).toHaveLength(expected.declined);
      expect(store.load(NOW).leases).toHaveLength(expected.v4);
      await store.commit([bind6(lease6(50))]);
      await store.close();
      const reopened = await open();
      expect(reopened.load6(NOW).leases).toHaveLength(expected.v6.length + 1);
      await reopened.close();
    }
    expect((await readdir(dir)).filter((f) => f.includes('corrupt'))).toEqual([]);
  });
});
