import { describe, expect, it } from 'vitest';
import { LeaseTable } from '../../src/dhcp/lease-table.js';
import { AddressPool, fnv1a } from '../../src/dhcp/pool.js';
import type { Lease } from '../../src/dhcp/types.js';
import { makeSubnet } from '../../src/net/ipv4.js';
import { ip } from '../support/addresses.js';

const subnet = makeSubnet(ip('10.10.0.1'), 24);
const T0 = 1_700_000_000_000;

function lease(clientId: string, address: string, expiresAt = T0 + 3_600_000, mac = '52:54:00:00:00:01'): Lease {
  return { clientId, mac, address: ip(address), expiresAt };
}

function makePool(start: string, end: string, isKnownInUse?: (a: number) => boolean) {
  const table = new LeaseTable();
  const pool = new AddressPool({ subnet, rangeStart: ip(start), rangeEnd: ip(end), excluded: [ip('10.10.0.1')] }, table, isKnownInUse);
  return { table, pool };
}

/** Both indexes agree and no address is held twice. */
function expectConsistent(table: LeaseTable): void {
  const all = table.all();
  expect(all.length).toBe(table.size);
  expect(new Set(all.map((l) => l.address)).size).toBe(all.length);
  for (const l of all) {
    expect(table.getByAddress(l.address)?.clientId).toBe(l.clientId);
    expect(table.getByClient(l.clientId)?.address).toBe(l.address);
  }
}

describe('LeaseTable', () => {
  it('keeps both indexes in step through put and remove', () => {
    const table = new LeaseTable();
    table.put(lease('aa', '10.10.0.10'));
    table.put(lease('bb', '10.10.0.11'));
    expect(table.getByAddress(ip('10.10.0.10'))?.clientId).toBe('aa');
    // moving a client frees its old address in the address index
    table.put(lease('aa', '10.10.0.12'));
    expect(table.getByAddress(ip('10.10.0.10'))).toBeUndefined();
    expect(table.getByClient('aa')?.address).toBe(ip('10.10.0.12'));
    expect(table.remove('bb')?.address).toBe(ip('10.10.0.11'));
    expect(table.getByAddress(ip('10.10.0.11'))).toBeUndefined();
    expect(table.size).toBe(1);
    expectConsistent(table);
  });

  it('displaces another client that held the same address', () => {
    const table = new LeaseTable();
    table.put(lease('aa', '10.10.0.10'));
    const displaced = table.put(lease('bb', '10.10.0.10'));
    expect(displaced?.clientId).toBe('aa');
    expect(table.getByClient('aa')).toBeUndefined();
    expectConsistent(table);
  });

  it('does not let a caller mutate a stored lease through its own object', () => {
    const table = new LeaseTable();
    const l = lease('aa', '10.10.0.10');
    table.put(l);
    l.address = ip('10.10.0.99');
    expect(table.getByAddress(ip('10.10.0.10'))?.clientId).toBe('aa');
  });

  it('sweeps expired leases lazily, honouring the grace period, and remembers their addresses', () => {
    const table = new LeaseTable();
    table.put(lease('aa', '10.10.0.10', T0 + 1000));
    table.put(lease('bb', '10.10.0.11', T0 + 5000));
    expect(table.sweepExpired(T0 + 999)).toEqual([]);
    expect(table.sweepExpired(T0 + 1500, 1000)).toEqual([]);
    expect(table.sweepExpired(T0 + 2000, 1000).map((l) => l.clientId)).toEqual(['aa']);
    expect(table.size).toBe(1);
    expect(table.lastAddressOf('aa')).toBe(ip('10.10.0.10'));
    expect(table.lastClientOf(ip('10.10.0.10'))).toBe('aa');
    expectConsistent(table);
  });

  it('bounds the memory of ended leases, forgetting the oldest first', () => {
    const table = new LeaseTable(2);
    for (const [id, a] of [['aa', '10.10.0.10'], ['bb', '10.10.0.11'], ['cc', '10.10.0.12']] as const) {
      table.put(lease(id, a));
      table.remove(id);
    }
    expect(table.lastAddressOf('aa')).toBeUndefined();
    expect(table.lastAddressOf('bb')).toBe(ip('10.10.0.11'));
    expect(table.lastAddressOf('cc')).toBe(ip('10.10.0.12'));
  });

  it('forgets a memory once the address is leased again', () => {
    const table = new LeaseTable();
    table.put(lease('aa', '10.10.0.10'));
    table.remove('aa');
    table.put(lease('bb', '10.10.0.10'));
    expect(table.lastAddressOf('aa')).toBeUndefined();
    expect(table.lastClientOf(ip('10.10.0.10'))).toBeUndefined();
  });

  it('quarantines declined addresses until their time is up', () => {
    const table = new LeaseTable();
    table.decline(ip('10.10.0.10'), T0 + 1000);
    table.decline(ip('10.10.0.10'), T0 + 500); // a shorter decline never shortens the quarantine
    expect(table.isQuarantined(ip('10.10.0.10'), T0 + 999)).toBe(true);
    expect(table.isQuarantined(ip('10.10.0.10'), T0 + 1000)).toBe(false);
    const freed = table.freedGeneration;
    table.sweepExpired(T0 + 1000);
    expect(table.quarantined()).toEqual([]);
    expect(table.freedGeneration).toBeGreaterThan(freed);
  });
});

describe('AddressPool', () => {
  it('clamps the range to host addresses and never hands out network, broadcast or the server address', () => {
    const { pool } = makePool('10.10.0.0', '10.10.0.255');
    expect(pool.start).toBe(ip('10.10.0.1'));
    expect(pool.end).toBe(ip('10.10.0.254'));
    expect(pool.isAssignable(ip('10.10.0.0'))).toBe(false);
    expect(pool.isAssignable(ip('10.10.0.255'))).toBe(false);
    expect(pool.isAssignable(ip('10.10.0.1'))).toBe(false);
    expect(pool.isAssignable(ip('10.10.1.5'))).toBe(false);
    expect(pool.freeCount(T0)).toBe(253);
  });

  it('FNV-1a matches the published test vectors', () => {
    expect(fnv1a('')).toBe(0x811c9dc5);
    expect(fnv1a('a')).toBe(0xe40c292c);
    expect(fnv1a('foobar')).toBe(0xbf9cf968);
  });

  it('hashes a client to the same address in a fresh pool (state loss)', () => {
    const first = makePool('10.10.0.100', '10.10.0.199').pool.choose('01525400aabbcc', '52:54:00:aa:bb:cc', T0);
    const again = makePool('10.10.0.100', '10.10.0.199').pool.choose('01525400aabbcc', '52:54:00:aa:bb:cc', T0);
    expect(first).toBeDefined();
    expect(again).toBe(first);
  });

  it('prefers reservation, then current lease, then the offer, then the last address, then the requested one', () => {
    const { table, pool } = makePool('10.10.0.100', '10.10.0.199');
    const mac = '52:54:00:00:00:01';
    pool.setReservations([{ mac, address: ip('10.10.0.50') }]);
    table.put(lease('c1', '10.10.0.120', T0 + 10_000, mac));
    expect(pool.choose('c1', mac, T0)).toBe(ip('10.10.0.50'));
    pool.setReservations([]);
    expect(pool.choose('c1', mac, T0, ip('10.10.0.130'))).toBe(ip('10.10.0.120'));
    table.remove('c1');
    pool.hold('c1', ip('10.10.0.140'), T0 + 30_000);
    expect(pool.choose('c1', mac, T0, ip('10.10.0.130'))).toBe(ip('10.10.0.140'));
    pool.releaseHold('c1');
    expect(pool.choose('c1', mac, T0, ip('10.10.0.130'))).toBe(ip('10.10.0.120'));
    table.put(lease('other', '10.10.0.120', T0 + 10_000, '52:54:00:00:00:02'));
    expect(pool.choose('c1', mac, T0, ip('10.10.0.130'))).toBe(ip('10.10.0.130'));
  });

  it('never chooses an address reserved for another MAC, leased, offered, quarantined or known in use', () => {
    const inUse = new Set([ip('10.10.0.103')]);
    const { table, pool } = makePool('10.10.0.100', '10.10.0.105', (a) => inUse.has(a));
    pool.setReservations([{ mac: '52:54:00:00:00:aa', address: ip('10.10.0.100') }]);
    table.put(lease('x', '10.10.0.101'));
    pool.hold('y', ip('10.10.0.102'), T0 + 30_000);
    table.decline(ip('10.10.0.104'), T0 + 60_000);
    const chosen = new Set<number | undefined>();
    for (let i = 0; i < 50; i++) chosen.add(pool.choose(`client-${i}`, '52:54:00:00:00:01', T0));
    expect([...chosen]).toEqual([ip('10.10.0.105')]);
    // a requested address that is taken is not honoured either
    expect(pool.choose('z', '52:54:00:00:00:02', T0, ip('10.10.0.101'))).toBe(ip('10.10.0.105'));
  });

  it('avoids every address it is told to (a declined one, one a probe found in use), its own held offer too', () => {
    const { pool } = makePool('10.10.0.100', '10.10.0.102');
    pool.hold('c1', ip('10.10.0.100'), T0 + 30_000);
    expect(pool.choose('c1', '52:54:00:00:00:01', T0, ip('10.10.0.101'), [ip('10.10.0.100'), ip('10.10.0.101')])).toBe(ip('10.10.0.102'));
    expect(pool.choose('c1', '52:54:00:00:00:01', T0, undefined, [ip('10.10.0.100'), ip('10.10.0.101'), ip('10.10.0.102')])).toBeUndefined();
    // an avoided address free for others is no exhaustion for them
    expect(pool.choose('c2', '52:54:00:00:00:02', T0)).toBeDefined();
    // nor is an avoided address taken back from another client's offer
    pool.hold('c3', ip('10.10.0.101'), T0 + 30_000);
    pool.hold('c4', ip('10.10.0.102'), T0 + 30_000);
    expect(pool.reclaimOffer('c5', '52:54:00:00:00:05', T0, [ip('10.10.0.100'), ip('10.10.0.101')])).toBe(ip('10.10.0.102'));
  });

  it('spares addresses other clients held recently while others are free', () => {
    const { table, pool } = makePool('10.10.0.100', '10.10.0.101');
    const hashed = pool.choose('newcomer', '52:54:00:00:00:09', T0)!;
    const other = hashed === ip('10.10.0.100') ? ip('10.10.0.101') : ip('10.10.0.100');
    // 'old' held the newcomer's hashed address until a moment ago: the newcomer is sent to the other one
    table.put({ clientId: 'old', mac: '52:54:00:00:00:01', address: hashed, expiresAt: T0 + 1 });
    table.sweepExpired(T0 + 1);
    expect(pool.choose('newcomer', '52:54:00:00:00:09', T0 + 1)).toBe(other);
    expect(pool.choose('old', '52:54:00:00:00:01', T0 + 1)).toBe(hashed);
    // with nothing else free, a remembered address is still given rather than none
    table.put(lease('third', '10.10.0.100'));
    table.put(lease('third', '10.10.0.101'));
    table.put(lease('fourth', '10.10.0.100'));
    table.remove('fourth');
    expect(pool.choose('newcomer', '52:54:00:00:00:09', T0 + 1)).toBe(ip('10.10.0.100'));
  });

  it('returns undefined on exhaustion and finds the address freed later', () => {
    const { table, pool } = makePool('10.10.0.100', '10.10.0.102');
    for (const [i, a] of ['10.10.0.100', '10.10.0.101', '10.10.0.102'].entries()) table.put(lease(`c${i}`, a));
    expect(pool.freeCount(T0)).toBe(0);
    expect(pool.choose('late', '52:54:00:00:00:09', T0)).toBeUndefined();
    // memoised failure: still undefined, and freed addresses invalidate the memo at once
    expect(pool.choose('late', '52:54:00:00:00:09', T0 + 1)).toBeUndefined();
    table.remove('c1');
    expect(pool.choose('late', '52:54:00:00:00:09', T0 + 2)).toBe(ip('10.10.0.101'));
    expect(pool.freeCount(T0 + 2)).toBe(1);
  });

  it('re-probes after a while even when nothing was freed (in-use evidence may change)', () => {
    let busy = true;
    const { pool } = makePool('10.10.0.100', '10.10.0.100', () => busy);
    expect(pool.choose('c', '52:54:00:00:00:09', T0)).toBeUndefined();
    busy = false;
    expect(pool.choose('c', '52:54:00:00:00:09', T0 + 10)).toBeUndefined();
    expect(pool.choose('c', '52:54:00:00:00:09', T0 + 5000)).toBe(ip('10.10.0.100'));
  });

  it('rejects reservations outside the subnet, on the server address, or conflicting', () => {
    const { pool } = makePool('10.10.0.100', '10.10.0.199');
    const rejected = pool.setReservations([
      { mac: '52:54:00:00:00:01', address: ip('10.10.0.5') },
      { mac: '52:54:00:00:00:02', address: ip('10.10.1.5') },
      { mac: '52:54:00:00:00:03', address: ip('10.10.0.1') },
      { mac: '52:54:00:00:00:04', address: ip('10.10.0.5') },
      { mac: '52:54:00:00:00:01', address: ip('10.10.0.6') },
    ]);
    expect(rejected.map((r) => r.mac)).toEqual(['52:54:00:00:00:02', '52:54:00:00:00:03', '52:54:00:00:00:04', '52:54:00:00:00:01']);
    expect(pool.reservationCount).toBe(1);
  });

  it('offers expire: sweepHolds frees them', () => {
    const { pool } = makePool('10.10.0.100', '10.10.0.100');
    pool.hold('a', ip('10.10.0.100'), T0 + 1000);
    expect(pool.choose('b', '52:54:00:00:00:02', T0)).toBeUndefined();
    expect(pool.offerCount(T0 + 999)).toBe(1);
    expect(pool.offerCount(T0 + 1000)).toBe(0); // counted as ended before the sweep
    pool.sweepHolds(T0 + 1000);
    expect(pool.heldFor('a', T0)).toBeUndefined(); // gone, not only past
    expect(pool.choose('b', '52:54:00:00:00:02', T0 + 1000)).toBe(ip('10.10.0.100'));
  });

  it('counts free addresses as of `now` without sweeping: a lease, an offer or a quarantine that ended is free', () => {
    const { table, pool } = makePool('10.10.0.100', '10.10.0.103');
    table.put(lease('a', '10.10.0.100', T0 + 1000));
    pool.hold('b', ip('10.10.0.101'), T0 + 2000);
    table.decline(ip('10.10.0.102'), T0 + 3000);
    const generation = table.generation;
    expect([T0, T0 + 1000, T0 + 2000, T0 + 3000].map((t) => pool.freeCount(t))).toEqual([1, 2, 3, 4]);
    // asked again for an earlier time (the cached count is for later): still right
    expect(pool.freeCount(T0 + 999)).toBe(1);
    expect(table.generation).toBe(generation);
    expect(table.size).toBe(1);
    expect(pool.heldFor('b', T0)).toBe(ip('10.10.0.101'));
  });
});
