/** issue 14: DHCPv6 leases → the guests' IPv6 table, AAAA/PTR answers and the forwards' name lookup (daemon/dhcp6-names.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Dhcp6Names } from '../../src/daemon/dhcp6-names.js';
import { guestIpv6Resolver } from '../../src/daemon/guest-ipv6.js';
import { GuestAddresses } from '../../src/ipv6/guest-addresses.js';
import { parseIpv6 } from '../../src/ipv6/address.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { ip6ArpaName } from '../../src/dns/reverse6.js';
import { makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';
import { DNS_CLASS_IN, DnsRcode, DnsType } from '../../src/dns/types.js';
import type { Lease6 } from '../../src/dhcp6/types.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config.js';
import { RecordBook } from '../../src/daemon/record-book.js';
import { silentLogger } from '../../src/log.js';

const NET = parseIpv6('fd00:10:10::')!;
const MAC_A = '52:54:00:00:00:0a';
const MAC_B = '52:54:00:00:00:0b';
const lease = (duid: string, address: string, extra: Partial<Lease6> = {}): Lease6 => ({ duid, iaid: 1, address, expiresAt: Date.now() + 3600_000, ...extra });

function setup(extra: Partial<ConstructorParameters<typeof Dhcp6Names>[0]> = {}) {
  const table = new GuestAddresses(NET);
  const local = new LocalNames({ domain: 'vm', subnet: makeSubnet(parseIpv4('10.10.0.0')!, 24), gatewayAddress: parseIpv4('10.10.0.1')! });
  local.setIpv6({ network: NET, gateway: parseIpv6('fd00:10:10::1')!, addressesOfMac: (m) => table.addressesOfMac(m), addressesOfName: (x) => table.addressesOfName(x), ownerOf: (a) => table.ownerOf(a) });
  const names = new Dhcp6Names({
    table,
    namesByMac: () => local.namesByMac(),
    v4HolderMac: (name) => {
      const h = local.holderOf(name);
      return h ? (h.mac && (h.source === 'lease' || h.source === 'reservation') ? h.mac : null) : undefined;
    },
    publishable: (name) => local.refusalOf(name) === undefined,
    ...extra,
  });
  const ask = (name: string, type: number = DnsType.AAAA) => local.lookup({ name, type, class: DNS_CLASS_IN });
  return { table, local, names, ask };
}

describe('Dhcp6Names', () => {
  it('a bound lease answers AAAA and PTR under its reservation name; release removes it; restore brings it back', () => {
    const { table, names, ask } = setup();
    names.apply([{ kind: 'bind6', lease: lease('00:03:00:01:52:54:00:00:00:0a', 'fd00:10:10::42', { mac: MAC_A, hostname: 'web' }) }]);
    expect(table.list()).toEqual([{ source: 'dhcpv6', mac: MAC_A, name: 'web', addresses: ['fd00:10:10::42'] }]);
    expect(ask('web.vm')!.records).toEqual([expect.objectContaining({ type: DnsType.AAAA, data: 'fd00:10:10::42' })]);
    expect(ask(ip6ArpaName(parseIpv6('fd00:10:10::42')!), DnsType.PTR)!.records[0]!.data).toBe('web.vm');
    expect(names.addressOf('WEB')).toBe('fd00:10:10::42');
    // a release of another address is not this binding's end
    names.apply([{ kind: 'release6', duid: '00:03:00:01:52:54:00:00:00:0a', iaid: 1, address: 'fd00:10:10::99' }]);
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::42']);
    names.apply([{ kind: 'release6', duid: '00:03:00:01:52:54:00:00:00:0a', iaid: 1, address: 'fd00:10:10::42' }]);
    expect(table.list()).toEqual([]);
    expect(ask('web.vm')!.rcode).toBe(DnsRcode.NXDOMAIN);
    expect(names.addressOf('web')).toBeUndefined();
    names.restore([lease('00:03:00:01:52:54:00:00:00:0a', 'fd00:10:10::42', { mac: MAC_A, hostname: 'web' })]);
    expect(ask('web.vm')!.records).toHaveLength(1);
  });

  it('without a name of its own, a lease takes the name of its MAC\'s IPv4 lease; a move replaces the address', () => {
    const { local, names, ask } = setup();
    local.setHost('db', parseIpv4('10.10.0.6')!, 'lease', { mac: MAC_B, clientId: 'x' });
    names.apply([{ kind: 'bind6', lease: lease('d1', 'fd00:10:10::105', { mac: MAC_B }) }]);
    expect(ask('db.vm')!.records.map((r) => r.data)).toEqual(['fd00:10:10::105']);
    expect(names.addressOf('db')).toBe('fd00:10:10::105');
    names.apply([{ kind: 'bind6', lease: lease('d1', 'fd00:10:10::106', { mac: MAC_B }) }]);
    expect(ask('db.vm')!.records.map((r) => r.data)).toEqual(['fd00:10:10::106']);
    // no MAC and no name: out of DNS
    names.apply([{ kind: 'bind6', lease: lease('d9', 'fd00:10:10::107') }]);
    expect(ask(ip6ArpaName(parseIpv6('fd00:10:10::107')!), DnsType.PTR)!.rcode).toBe(DnsRcode.NXDOMAIN);
  });

  it('refuses a client name another guest holds (IPv4 lease, DHCPv6 reservation or lease), a denied one, not its own', () => {
    const { local, names } = setup();
    local.setHost('db', parseIpv4('10.10.0.6')!, 'lease', { mac: MAC_B, clientId: 'x' });
    names.setReservations([{ duid: 'aa:bb', address: 'fd00:10:10::50', hostname: 'files' }]);
    names.apply([{ kind: 'bind6', lease: lease('d1', 'fd00:10:10::105', { hostname: 'mine' }) }]);
    expect(names.nameAllowed('db', { duid: 'd2', mac: MAC_A })).toBe(false);
    expect(names.nameAllowed('db', { duid: 'd2', mac: MAC_B })).toBe(true);
    expect(names.nameAllowed('files', { duid: 'd2', mac: MAC_A })).toBe(false);
    expect(names.nameAllowed('files', { duid: 'AA:BB' })).toBe(true);
    expect(names.nameAllowed('mine', { duid: 'd2', mac: MAC_A })).toBe(false);
    expect(names.nameAllowed('mine', { duid: 'd1' })).toBe(true);
    expect(names.nameAllowed('gateway', { duid: 'd2' })).toBe(false);
    expect(names.nameAllowed('free', { duid: 'd2' })).toBe(true);
    // counted by reason when binding (an Advertise's check, binding=false, is not)
    expect(names.refused()).toEqual({ 'held-v4': 1, reserved: 1, 'held-v6': 1, denied: 1 });
    expect(names.nameAllowed('db', { duid: 'd2', mac: MAC_A }, false)).toBe(false);
    expect(names.refused()['held-v4']).toBe(1);
  });

  it('refuses a client name that is an operator record\'s (bare or under the domain, any case), as the DHCPv4 names do', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'natd-names6-records-'));
    try {
      const config = resolveConfig({ bridge: 'br0', domain: 'vm', stateDir: dir, hostRecord: ['static6.vm,fd00:10:10::99', 'api.lab,10.10.0.5'], address: ['/wild.vm/fd00:10:10::98'] });
      const records = await RecordBook.load(config, { subnet: makeSubnet(parseIpv4('10.10.0.0')!, 24), logger: silentLogger, reservedNames: () => [] });
      const { names, ask } = setup({ operatorName: records.owns });
      for (const taken of ['static6', 'STATIC6', 'wild']) expect(names.nameAllowed(taken, { duid: 'd1', mac: MAC_A }), taken).toBe(false);
      expect(names.nameAllowed('free', { duid: 'd1', mac: MAC_A })).toBe(true);
      expect(names.refused()).toEqual({ record: 3 });
      // a lease the core bound without the refused name publishes its address under no record's name
      names.apply([{ kind: 'bind6', lease: lease('d1', 'fd00:10:10::105', { mac: MAC_A }) }]);
      expect(ask(ip6ArpaName(parseIpv6('fd00:10:10::105')!), DnsType.PTR)?.records ?? []).toEqual([]);
      expect(names.addressOf('static6')).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the forwards\' lookup: a reservation\'s IPv6 first, then a DHCPv6 lease, then what AAAA answers', () => {
    const { names, table, ask } = setup();
    names.apply([{ kind: 'bind6', lease: lease('d1', 'fd00:10:10::105', { hostname: 'web' }) }]);
    table.set('slaac', undefined, 'slaacy', ['fd00:10:10::77']);
    const aaaa = (n: string) => (ask(n)?.records ?? []).map((r) => String(r.data));
    const resolve = guestIpv6Resolver([{ hostname: 'web', ipv6: '[fd00:10:10::5]' }], { dhcp6Lease: (n) => names.addressOf(n), guests: aaaa });
    expect(resolve('web')).toBe('fd00:10:10::5');
    const noReservation = guestIpv6Resolver([], { dhcp6Lease: (n) => names.addressOf(n), guests: aaaa });
    expect(noReservation('web')).toBe('fd00:10:10::105');
    expect(noReservation('slaacy')).toBe('fd00:10:10::77');
    expect(noReservation('nobody')).toBeUndefined();
  });

  it('property: with namesByMac built once per IPv4 name change, the names published are those of a fresh build each time', () => {
    type V4Op = { kind: 'lease' | 'reservation'; name: string; at: number; mac: string } | { kind: 'remove'; name: string };
    type Op = { v4: V4Op } | { v6: { duid: string; mac: string; at: number; release: boolean } };
    const macs = [MAC_A, MAC_B, '52:54:00:00:00:0c', '52:54:00:00:00:0d'];
    const hostNames = ['web', 'db', 'files', 'cache'];
    const v4Op: fc.Arbitrary<V4Op> = fc.oneof(
      fc.record({ kind: fc.constantFrom('lease' as const, 'reservation' as const), name: fc.constantFrom(...hostNames), at: fc.integer({ min: 10, max: 20 }), mac: fc.constantFrom(...macs) }),
      fc.record({ kind: fc.constant('remove' as const), name: fc.constantFrom(...hostNames) }),
    );
    const op: fc.Arbitrary<Op> = fc.oneof(
      v4Op.map((v4) => ({ v4 })),
      fc.record({ duid: fc.constantFrom('d1', 'd2', 'd3'), mac: fc.constantFrom(...macs), at: fc.integer({ min: 1, max: 9 }), release: fc.boolean() }).map((v6) => ({ v6 })),
    );
    const subnet = makeSubnet(parseIpv4('10.10.0.0')!, 24);
    const playV4 = (local: LocalNames, o: V4Op) => {
      if (o.kind === 'remove') local.removeHost(o.name);
      else local.setHost(o.name, parseIpv4(`10.10.0.${o.at}`)!, o.kind, { mac: o.mac, ...(o.kind === 'lease' ? { clientId: o.mac } : {}) });
    };
    fc.assert(fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const cachedTable = new GuestAddresses(NET);
      const freshTable = new GuestAddresses(NET);
      const local = new LocalNames({ domain: 'vm', subnet, gatewayAddress: parseIpv4('10.10.0.1')! });
      const v4Log: V4Op[] = [];
      // the reference: a LocalNames rebuilt from the IPv4 history on every call, so nothing is remembered between calls
      const freshNamesByMac = () => {
        const fresh = new LocalNames({ domain: 'vm', subnet, gatewayAddress: parseIpv4('10.10.0.1')! });
        for (const o of v4Log) playV4(fresh, o);
        return fresh.namesByMac();
      };
      const cached = new Dhcp6Names({ table: cachedTable, namesByMac: () => local.namesByMac() });
      const reference = new Dhcp6Names({ table: freshTable, namesByMac: freshNamesByMac });
      for (const o of ops) {
        if ('v4' in o) {
          playV4(local, o.v4);
          v4Log.push(o.v4);
          continue;
        }
        const { duid, mac, at, release } = o.v6;
        const address = `fd00:10:10::${at}`;
        const change = release ? { kind: 'release6' as const, duid, iaid: 1, address } : { kind: 'bind6' as const, lease: lease(duid, address, { mac }) };
        cached.apply([change]);
        reference.apply([change]);
        expect(cachedTable.list()).toEqual(freshTable.list());
        expect(local.namesByMac()).toEqual(freshNamesByMac());
        for (const n of hostNames) expect(cached.addressOf(n)).toBe(reference.addressOf(n));
      }
    }), { numRuns: 300 });
  });
});

