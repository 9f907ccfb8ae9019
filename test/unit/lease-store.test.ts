import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { appendFileSync, closeSync } from 'node:fs';
import os from 'node:os';
import { JOURNAL_FILE, LOCK_FILE, LeaseStore, REPLY_NOT_SENT } from '../../src/dhcp/lease-store.js';
import { openDeviceUdpSocket, openJournalWriter, type JournalWriter } from '../../src/native.js';
import { waitFor } from '../support/wait.js';
import { silentLogger } from '../../src/log.js';
import { NatdError } from '../../src/errors.js';
import { makeSubnet } from '../../src/net/ipv4.js';
import { DhcpServerCore } from '../../src/dhcp/server-core.js';
import type { Lease, LeaseChange } from '../../src/dhcp/types.js';
import { ip } from '../support/addresses.js';
import { recordingLogger } from '../support/recording-logger.js';

const NOW = 1_700_000_000_000;
const HOUR = 3_600_000;

function lease(n: number, expiresAt = NOW + HOUR, hostname?: string): Lease {
  const mac = `52:54:00:00:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
  const l: Lease = { clientId: '01' + mac.replaceAll(':', ''), mac, address: ip('10.10.0.0') + 10 + n, expiresAt };
  if (hostname !== undefined) l.hostname = hostname;
  return l;
}
const bind = (l: Lease): LeaseChange => ({ kind: 'bind', lease: l });
const byClient = (leases: Lease[]): Lease[] => [...leases].sort((a, b) => a.clientId.localeCompare(b.clientId));


let dir: string;
const open = (opts: Partial<Parameters<typeof LeaseStore.open>[1]> = {}): Promise<LeaseStore> =>
  LeaseStore.open(dir, { logger: silentLogger, now: () => NOW, ...opts });

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'natd-leases-')), 'state');
});
afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

describe('LeaseStore journal', () => {
  it('creates the state dir, and restores binds, releases and declines after a restart', async () => {
    const store = await open();
    expect((await stat(dir)).mode & 0o777).toBe(0o750 & ~process.umask());
    await store.commit([bind(lease(1, NOW + HOUR, 'web')), bind(lease(2)), bind(lease(3))]);
    await store.commit([{ kind: 'release', clientId: lease(2).clientId, address: lease(2).address }]);
    await store.commit([{ kind: 'decline', address: ip('10.10.0.99'), until: NOW + 10 * 60_000 }]);
    await store.commit([bind(lease(3, NOW + 2 * HOUR))]); // renewal
    await store.close();

    const text = await readFile(join(dir, JOURNAL_FILE), 'utf8');
    expect(text.split('\n')[0]).toBe(
      '{"op":"bind","clientId":"01525400000001","mac":"52:54:00:00:00:01","address":"10.10.0.11","expiresAt":1700003600000,"hostname":"web"}',
    );

    const reopened = await open();
    const state = reopened.load(NOW);
    expect(byClient(state.leases)).toEqual([lease(1, NOW + HOUR, 'web'), lease(3, NOW + 2 * HOUR)]);
    expect(state.declined).toEqual([{ address: ip('10.10.0.99'), until: NOW + 10 * 60_000 }]);
    await reopened.close();
  });

  it('drops expired leases and finished quarantines on load', async () => {
    const store = await open();
    await store.commit([bind(lease(1, NOW - 1)), bind(lease(2, NOW + 1000)), { kind: 'decline', address: ip('10.10.0.99'), until: NOW - 5 }]);
    await store.close();
    const reopened = await open();
    expect(reopened.load(NOW)).toEqual({ leases: [lease(2, NOW + 1000)], declined: [] });
    expect(reopened.load(NOW + 1000).leases).toEqual([]);
    await reopened.close();
  });

  it('gives an address to its newest holder', async () => {
    const store = await open();
    const other = { ...lease(7), address: lease(1).address };
    await store.commit([bind(lease(1, NOW - 1)), bind(other)]);
    await store.close();
    const reopened = await open();
    expect(reopened.load(NOW - 10).leases).toEqual([other]);
    await reopened.close();
  });

  it('resolves a commit only once its record is in the file', async () => {
    const store = await open();
    await store.commit([bind(lease(1))]);
    expect(await readFile(join(dir, JOURNAL_FILE), 'utf8')).toContain('"clientId":"01525400000001"');
    await store.close();
  });

  it('rejects a change that could not be read back, without harming later commits', async () => {
    const store = await open();
    await expect(store.commit([bind({ ...lease(1), clientId: 'not hex' })])).rejects.toBeInstanceOf(NatdError);
    await store.commit([bind(lease(2))]);
    expect(store.load(NOW).leases).toEqual([lease(2)]);
    await store.close();
  });
});

describe('LeaseStore group commit', () => {
  it('shares one fdatasync between concurrent clients', async () => {
    const store = await open();
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.commit([bind(lease(i))])));
    const { commits, syncs, bytes } = store.stats();
    expect(commits).toBe(200);
    expect(syncs).toBeLessThanOrEqual(5);
    expect(bytes).toBe((await stat(join(dir, JOURNAL_FILE))).size);
    expect(store.stats().syncSeconds).toBeGreaterThan(0); // issue 18: the time ACKs waited for the disk, for status
    await store.close();
    const reopened = await open();
    expect(reopened.load(NOW).leases).toHaveLength(200);
    await reopened.close();
  });

  it('batches commits that arrive while a sync is in flight', async () => {
    const store = await open();
    const first = store.commit([bind(lease(0))]);
    await new Promise((r) => setImmediate(r)); // the first write/sync is now under way
    const later = Array.from({ length: 50 }, (_, i) => store.commit([bind(lease(i + 1))]));
    await Promise.all([first, ...later]);
    expect(store.stats().commits).toBe(51);
    expect(store.stats().syncs).toBeLessThanOrEqual(3);
    await store.close();
  });

  it('flushes pending commits on close, is idempotent, and refuses commits afterwards', async () => {
    const store = await open();
    const pending = store.commit([bind(lease(1))]);
    const closed = store.close();
    await Promise.all([pending, closed, store.close()]);
    await expect(store.commit([bind(lease(2))])).rejects.toBeInstanceOf(NatdError);
    const reopened = await open();
    expect(reopened.load(NOW).leases).toEqual([lease(1)]);
    await reopened.close();
  });
});

describe('LeaseStore and expiry (issue 13: one expiry path)', () => {
  const coreWith = (store: LeaseStore, now: number): DhcpServerCore => {
    const server = ip('10.10.0.1');
    const core = new DhcpServerCore({ serverAddress: server, subnet: makeSubnet(server, 24), router: server, dnsServers: [], leaseTimeSeconds: 3600, rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.199') }, []);
    const { leases, declined } = store.load(now);
    core.restore(leases, now, declined);
    return core;
  };

  it('journals the expiries the core reports: a restart does not bring the lease back, not even with the clock set back', async () => {
    const store = await open();
    await store.commit([bind(lease(1, NOW + 1000, 'web')), bind(lease(2))]);
    const expired = coreWith(store, NOW).expire(NOW + 1000);
    expect(expired).toEqual([{ kind: 'release', clientId: lease(1).clientId, address: lease(1).address }]);
    await store.commit(expired);
    await store.close();
    expect(await readFile(join(dir, JOURNAL_FILE), 'utf8')).toContain(`{"op":"release","clientId":"${lease(1).clientId}","address":"10.10.0.11"}`);

    const reopened = await open(); // its clock reads NOW, before the expiry (a clock stepped back at boot)
    expect(reopened.load(NOW).leases).toEqual([lease(2)]);
    const core = coreWith(reopened, NOW);
    expect(core.leases.size).toBe(1);
    expect(core.expire(NOW + 1000)).toEqual([]); // nothing to expire a second time
    await reopened.close();
  });

  it('compaction drops the expired lease and its release together', async () => {
    const store = await open();
    await store.commit([bind(lease(1, NOW + 1000)), bind(lease(2))]);
    await store.commit(coreWith(store, NOW).expire(NOW + 1000));
    await store.compact();
    await store.close();
    const text = await readFile(join(dir, JOURNAL_FILE), 'utf8');
    expect(text).not.toContain(lease(1).clientId);
    expect(text.trim().split('\n')).toHaveLength(1);
    const reopened = await open();
    expect(reopened.load(NOW).leases).toEqual([lease(2)]);
    await reopened.close();
  });
});

describe('LeaseStore compaction', () => {
  it('compacts a growing journal and keeps every live lease', async () => {
    const logger = recordingLogger();
    const store = await open({ compactMinBytes: 4096, logger });
    // 20 clients renewing 30 times: the journal grows, the live set stays at 20
    for (let round = 1; round <= 30; round++) {
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.commit([bind(lease(i, NOW + round * 1000))])));
    }
    await store.commit([bind(lease(99, NOW - 1))]); // expired: compaction may drop it
    const stats = store.stats();
    expect(stats.compactions).toBeGreaterThan(0);
    expect(stats.journalBytes).toBeLessThan(stats.bytes / 3);
    expect(stats.journalBytes).toBe((await stat(join(dir, JOURNAL_FILE))).size);
    expect(stats.bytes).toBeGreaterThan(20 * 30 * 100);
    expect(logger.lines.some((l) => l.msg === 'lease journal compacted')).toBe(true);
    await store.close();

    const reopened = await open();
    const expected = Array.from({ length: 20 }, (_, i) => lease(i, NOW + 30_000));
    expect(byClient(reopened.load(NOW).leases)).toEqual(byClient(expected));
    await reopened.close();
  });

  it('never loses a commit racing with a compaction', async () => {
    const store = await open();
    await store.commit(Array.from({ length: 50 }, (_, i) => bind(lease(i))));
    // issued in the same tick: the compaction and the commits all go through the one queue
    const racing = [
      store.commit([bind(lease(100))]),
      store.compact(),
      store.commit([bind(lease(101))]),
      store.commit([{ kind: 'release', clientId: lease(3).clientId, address: lease(3).address }]),
    ];
    await new Promise((r) => setImmediate(r));
    racing.push(store.commit([bind(lease(102))]));
    await Promise.all(racing);
    expect(store.stats().compactions).toBe(1);
    await store.close();

    const reopened = await open();
    const expected = [...Array.from({ length: 50 }, (_, i) => lease(i)).filter((_, i) => i !== 3), lease(100), lease(101), lease(102)];
    expect(byClient(reopened.load(NOW).leases)).toEqual(byClient(expected));
    await reopened.close();
    // the compacted file replaced the journal; no temp files are left behind
    expect((await readdir(dir)).sort()).toEqual([JOURNAL_FILE]);
  });
});

describe('LeaseStore recovery', () => {
  async function journalOf(changes: LeaseChange[][]): Promise<{ bytes: Buffer; ends: number[] }> {
    const store = await open();
    const ends: number[] = [];
    for (const batch of changes) {
      await store.commit(batch);
      ends.push(store.stats().journalBytes);
    }
    await store.close();
    return { bytes: await readFile(join(dir, JOURNAL_FILE)), ends };
  }

  it('tolerates a torn last line and cuts it away', async () => {
    const { bytes } = await journalOf([[bind(lease(1))], [bind(lease(2))]]);
    const torn = Buffer.concat([bytes, Buffer.from('{"op":"bind","clientId":"0152540000')]);
    await writeFile(join(dir, JOURNAL_FILE), torn);
    const logger = recordingLogger();
    const store = await open({ logger });
    expect(byClient(store.load(NOW).leases)).toEqual([lease(1), lease(2)]);
    expect(logger.messages('warn')[0]).toMatchObject({ droppedBytes: torn.length - bytes.length });
    expect((await readFile(join(dir, JOURNAL_FILE))).equals(bytes)).toBe(true);
    // appending after the repair leaves a clean journal
    await store.commit([bind(lease(3))]);
    await store.close();
    const reopened = await open();
    expect(reopened.load(NOW).leases).toHaveLength(3);
    await reopened.close();
  });

  it('treats an unreadable last line as torn even when it ends in a newline', async () => {
    const { bytes } = await journalOf([[bind(lease(1))]]);
    await writeFile(join(dir, JOURNAL_FILE), Buffer.concat([bytes, Buffer.from('{"op":"bi\n\0\0\0')]));
    const store = await open();
    expect(store.load(NOW).leases).toEqual([lease(1)]);
    await store.close();
    expect((await readdir(dir)).filter((f) => f.includes('corrupt'))).toEqual([]);
  });

  it('moves a file damaged in the middle aside, logs it, and keeps what was readable before', async () => {
    const { bytes } = await journalOf([[bind(lease(1))], [bind(lease(2))]]);
    const lines = bytes.toString('utf8').split('\n');
    const damaged = [lines[0], '{"op":"bind", garbage', lines[1], ''].join('\n');
    await writeFile(join(dir, JOURNAL_FILE), damaged);

    const logger = recordingLogger();
    const store = await open({ logger });
    expect(store.load(NOW).leases).toEqual([lease(1)]);
    const error = logger.messages('error')[0];
    expect(error).toMatchObject({ line: 2, leasesKept: 1 });
    const aside = (await readdir(dir)).filter((f) => f.startsWith(`${JOURNAL_FILE}.corrupt-`));
    expect(aside).toHaveLength(1);
    expect(error!.movedTo).toBe(join(dir, aside[0]!));
    expect(await readFile(join(dir, aside[0]!), 'utf8')).toBe(damaged); // nothing discarded
    await store.commit([bind(lease(3))]);
    await store.close();
    const reopened = await open();
    expect(byClient(reopened.load(NOW).leases)).toEqual([lease(1), lease(3)]);
    await reopened.close();

    // damaged again within the same millisecond (fixed clock): the first damaged copy is not overwritten
    await writeFile(join(dir, JOURNAL_FILE), damaged);
    await open().then((s) => s.close());
    const asideNow = (await readdir(dir)).filter((f) => f.startsWith(`${JOURNAL_FILE}.corrupt-`));
    expect(asideNow).toHaveLength(2);
    for (const f of asideNow) expect(await readFile(join(dir, f), 'utf8')).toBe(damaged);
  });

  it('survives a crash at every byte: never throws, never returns a record that was not fully written', async () => {
    // one record per change; a reader must see exactly the changes whose line (newline included) is on disk
    const changes: LeaseChange[] = [
      bind(lease(1, NOW + HOUR, 'alpha')),
      bind(lease(2)),
      bind(lease(3)),
      { kind: 'decline', address: ip('10.10.0.99'), until: NOW + HOUR },
      bind(lease(1, NOW + 2 * HOUR, 'alpha')),
      { kind: 'release', clientId: lease(2).clientId, address: lease(2).address },
      bind(lease(4)),
    ];
    const { bytes } = await journalOf([changes.slice(0, 1), changes.slice(1, 3), ...changes.slice(3).map((c) => [c])]);
    const modelAfter = (k: number): { leases: Lease[]; declined: number } => {
      const m = new Map<string, Lease>();
      let declined = 0;
      for (const change of changes.slice(0, k)) {
        if (change.kind === 'bind') m.set(change.lease.clientId, change.lease);
        else if (change.kind === 'release') m.delete(change.clientId);
        else declined++;
      }
      return { leases: byClient([...m.values()]), declined };
    };
    expect(bytes.toString().split('\n')).toHaveLength(changes.length + 1);

    for (let cut = 0; cut <= bytes.length; cut++) {
      await writeFile(join(dir, JOURNAL_FILE), bytes.subarray(0, cut));
      const store = await open();
      const complete = bytes.subarray(0, cut).toString().split('\n').length - 1;
      const expected = modelAfter(complete);
      const state = store.load(NOW);
      expect(byClient(state.leases), `cut at ${cut}`).toEqual(expected.leases);
      expect(state.declined).toHaveLength(expected.declined);
      // the repaired journal takes new commits and reads back cleanly
      await store.commit([bind(lease(50))]);
      await store.close();
      const reopened = await open();
      expect(reopened.load(NOW).leases).toHaveLength(expected.leases.length + 1);
      await reopened.close();
    }
    expect((await readdir(dir)).filter((f) => f.includes('corrupt'))).toEqual([]);
  });
});

describe('LeaseStore lock', () => {
  it('refuses a second open of the same state dir', async () => {
    const store = await open();
    await expect(open()).rejects.toMatchObject({ code: 'NATD_ERR_STATE' });
    await store.close();
    const again = await open();
    await again.close();
    expect((await readdir(dir)).includes(LOCK_FILE)).toBe(false);
  });

  it('refuses a lock held by another live process, takes over one left by a dead process', async () => {
    await open().then((s) => s.close()); // creates the dir
    const parentPid = process.ppid; // alive and not us
    await writeFile(join(dir, LOCK_FILE), `${parentPid}\n`);
    await expect(open()).rejects.toThrow(new RegExp(`in use by pid ${parentPid}`));

    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(join(dir, LOCK_FILE), `${dead}\n`);
    const store = await open();
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    await store.close();
  });
});

// issue 18: the writer thread (native/journal_writer.c) as the store drives it: replies sent only once durable, and a
// failed batch rolled back before anything after it is acknowledged
describe('LeaseStore writer thread (issue 18)', () => {
  it('sends a commit\'s reply from the writer once durable, and counts the wait', async () => {
    const receiver = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
    const received: string[] = [];
    receiver.on('message', (m) => received.push(m.toString()));
    const fd = openDeviceUdpSocket('lo', '127.0.0.1', 0);
    try {
      const store = await open();
      const reply = { fd, message: Buffer.from('ack'), address: ip('127.0.0.1'), port: receiver.address().port };
      const [sent, plain] = await Promise.all([store.commit([bind(lease(1))], reply), store.commit([bind(lease(2))])]);
      expect(sent).toBe(0);
      expect(plain).toBe(REPLY_NOT_SENT);
      const stats = store.stats();
      expect(stats).toMatchObject({ commits: 2, repliesSent: 1 });
      expect(stats.waitSeconds).toBeGreaterThan(0);
      expect(stats.waitBuckets.at(-1)).toBe(2); // both waited less than the last bucket's second
      await store.close();
      await waitFor('the ACK', () => received.length === 1);
      expect(received).toEqual(['ack']);
    } finally {
      closeSync(fd);
      receiver.close();
    }
  });

  it('without a writer thread (node:fs) the caller sends the reply', async () => {
    const store = await open({ openWriter: () => undefined });
    expect(await store.commit([bind(lease(1))], { fd: 0, message: Buffer.from('ack'), address: 1, port: 68 })).toBe(REPLY_NOT_SENT);
    expect(store.stats()).toMatchObject({ commits: 1, syncs: 1, repliesSent: 0 });
    await store.close();
    expect((await readFile(join(dir, JOURNAL_FILE), 'utf8')).trim().split('\n')).toHaveLength(1);
  });

  it('rolls a failed batch back (torn bytes and all) before acknowledging the commits after it', async () => {
    let failNext = false;
    const journal = join(dir, JOURNAL_FILE);
    // the real writer, except that one batch writes half a line and then reports EIO, as a full disk would
    const openWriter = (fd: number): JournalWriter => {
      const real = openJournalWriter(fd)!;
      return {
        submit: (data, replies, meta, done) => {
          if (!failNext) return real.submit(data, replies, meta, done);
          failNext = false;
          appendFileSync(journal, data.subarray(0, 10));
          setTimeout(() => done(os.constants.errno.EIO, 0, 0, undefined), 5);
        },
        reset: (newFd) => real.reset(newFd),
        close: () => real.close(),
      };
    };
    const store = await open({ openWriter });
    await store.commit([bind(lease(1))]);
    failNext = true;
    const failed = store.commit([bind(lease(2))], { fd: 0, message: Buffer.from('never'), address: 1, port: 68 });
    await expect(failed).rejects.toBeInstanceOf(NatdError);
    await store.commit([bind(lease(3))]);
    expect(store.stats().commits).toBe(2);
    await store.close();
    const lines = (await readFile(journal, 'utf8')).split('\n');
    expect(lines).toHaveLength(3); // two records and the final newline: the torn bytes were cut before lease 3
    const reopened = await open();
    expect(byClient(reopened.load(NOW).leases).map((l) => l.address)).toEqual([lease(1).address, lease(3).address]);
    await reopened.close();
  });
});
