/**
 * issue 14: the guests' IPv6 address table (ipv6/guest-addresses.ts), the neighbour-table learner
 * (ipv6/neighbours.ts) and what LocalNames answers from them (AAAA, ip6.arpa PTR, bogus-priv for IPv6).
 */
import { describe, expect, it } from 'vitest';
import { GuestAddresses } from '../../src/ipv6/guest-addresses.js';
import { isUsable, NeighbourLearner, parseNeighbourLine } from '../../src/ipv6/neighbours.js';
import { parseIpv6 } from '../../src/ipv6/address.js';
import { LocalNames, policyFor } from '../../src/dns/local-names.js';
import { ip6ArpaName, ip6ReverseZone } from '../../src/dns/reverse6.js';
import { makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';
import { DNS_CLASS_IN, DnsRcode, DnsType } from '../../src/dns/types.js';
import { clientFromText, formatClient, isLinkLocalV6Client, isUnicastV6Client, v6ClientFromBytes, v6ClientFromWords, v6ClientWords, v6PrefixKey } from '../../src/dns/client-address.js';
import { recordingLogger } from '../support/recording-logger.js';

const NET = parseIpv6('fd00:10:10::')!;
const MAC_A = '52:54:00:00:00:0a';
const MAC_B = '52:54:00:00:00:0b';

describe('GuestAddresses', () => {
  it('keeps addresses in the /64 only, canonical, per guest; an empty list forgets the guest', () => {
    const t = new GuestAddresses(NET);
    expect(t.set('slaac', MAC_A.toUpperCase(), 'a', ['FD00:10:10:0:0:0:0:5', 'fe80::5', '2001:db8::5', 'fd00:10:10::5', 'junk'])).toEqual(['fd00:10:10::5']);
    expect(t.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::5']);
    expect(t.ownerOf('fd00:10:10:0::5')).toEqual({ source: 'slaac', mac: MAC_A, name: 'a' });
    expect(t.stats()).toMatchObject({ addresses: 1, guests: 1, refusedOutsidePrefix: 3 });
    t.set('slaac', MAC_A, 'a', []);
    expect(t.addressesOfMac(MAC_A)).toEqual([]);
    expect(t.ownerOf('fd00:10:10::5')).toBeUndefined();
  });

  it('tells onChanged only when a guest\'s addresses or name change (the learner repeats itself every poll)', () => {
    const t = new GuestAddresses(NET);
    let changes = 0;
    t.onChanged = () => changes++;
    t.set('slaac', MAC_A, 'a', ['fd00:10:10::5']);
    t.set('slaac', MAC_A, 'a', ['fd00:10:10::5']); // the same again: no change
    t.set('slaac', MAC_B, undefined, []); // nothing about an unknown guest: no change
    t.set('slaac', MAC_A, 'a', ['fd00:10:10:0::5']);
    expect(changes).toBe(1);
    t.set('slaac', MAC_A, 'a', ['fd00:10:10::6']);
    t.set('slaac', MAC_A, 'web', ['fd00:10:10::6']);
    t.set('slaac', MAC_A, 'web', []);
    t.set('slaac', MAC_A, 'web', []);
    expect(changes).toBe(4);
  });

  it('caps each guest and the total, and the first holder of an address keeps it', () => {
    const t = new GuestAddresses(NET, { perGuest: 3, total: 5 });
    const many = Array.from({ length: 10 }, (_, i) => `fd00:10:10::${i + 1}`);
    expect(t.set('slaac', MAC_A, 'a', many)).toEqual(many.slice(0, 3));
    expect(t.stats().refusedPerGuest).toBe(7);
    // B asks for A's address and four more: A's stays A's, the total stops B at 2
    expect(t.set('slaac', MAC_B, 'b', ['fd00:10:10::1', 'fd00:10:10::b1', 'fd00:10:10::b2', 'fd00:10:10::b3'])).toEqual(['fd00:10:10::b1', 'fd00:10:10::b2']);
    expect(t.stats()).toMatchObject({ addresses: 5, refusedConflict: 1, refusedTotal: 1 });
    expect(t.ownerOf('fd00:10:10::1')?.mac).toBe(MAC_A);
  });

  it('keeps sources apart: a DHCPv6 entry (with or without a MAC) is found by name, a SLAAC one with a MAC is not', () => {
    const t = new GuestAddresses(NET);
    t.set('slaac', MAC_A, 'a', ['fd00:10:10::a']);
    t.set('dhcpv6', undefined, 'v6only', ['fd00:10:10::100']);
    t.set('dhcpv6', MAC_A, 'a', ['fd00:10:10::101']);
    expect(t.addressesOfMac(MAC_A).sort()).toEqual(['fd00:10:10::101', 'fd00:10:10::a']);
    expect(t.addressesOfName('v6only')).toEqual(['fd00:10:10::100']);
    // SLAAC entries with a MAC are found by MAC only; a DHCPv6 entry by its (vetted) name too, for a name no IPv4
    // lease or reservation holds (LocalNames asks only then)
    expect(t.addressesOfName('a')).toEqual(['fd00:10:10::101']);
    t.set('slaac', MAC_B, 'b', ['fd00:10:10::b']);
    expect(t.addressesOfName('b')).toEqual([]);
    t.clearSource('slaac');
    expect(t.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::101']);
    expect(t.set('dhcpv6', undefined, undefined, ['fd00:10:10::1'])).toEqual([]);
  });
});

describe('neighbour lines', () => {
  it('reads ip -6 neigh lines with and without dev', () => {
    expect(parseNeighbourLine('fd00:10:10::5 dev br0 lladdr 52:54:00:AB:00:01 router REACHABLE')).toEqual({ address: 'fd00:10:10::5', dev: 'br0', mac: '52:54:00:ab:00:01', states: ['router', 'REACHABLE'] });
    expect(parseNeighbourLine('fd00:10:10::6 lladdr 52:54:00:ab:00:02 STALE')).toEqual({ address: 'fd00:10:10::6', mac: '52:54:00:ab:00:02', states: ['STALE'] });
    const failed = parseNeighbourLine('fd00:10:10::7 dev br0  FAILED')!;
    expect(failed).toEqual({ address: 'fd00:10:10::7', dev: 'br0', states: ['FAILED'] });
    expect(isUsable(failed)).toBe(false);
    expect(isUsable(parseNeighbourLine('fd00:10:10::8 lladdr 52:54:00:ab:00:02 INCOMPLETE')!)).toBe(false);
    expect(parseNeighbourLine('10.0.0.1 dev br0 lladdr 52:54:00:ab:00:02 STALE')).toBeUndefined();
    expect(parseNeighbourLine('')).toBeUndefined();
    expect(parseNeighbourLine('fd00::1 lladdr')).toEqual({ address: 'fd00::1', states: [] });
  });
});

describe('NeighbourLearner', () => {
  function learner(now: { t: number }, names = new Map([[MAC_A, 'a']])) {
    const table = new GuestAddresses(NET, { perGuest: 2, total: 100 });
    const l = new NeighbourLearner({ bridge: 'br0', network: NET, table, namesByMac: () => names, read: () => Promise.resolve(''), logger: recordingLogger(), now: () => now.t, graceMs: 1000, freshMs: 100, maxTracked: 4 });
    return { table, l };
  }

  it('publishes usable entries in the /64 by MAC, oldest first under the cap, and drops them after the grace time', () => {
    const now = { t: 0 };
    const { table, l } = learner(now);
    l.learn([
      'fd00:10:10::1 dev br0 lladdr 52:54:00:00:00:0a REACHABLE',
      'fe80::1 dev br0 lladdr 52:54:00:00:00:0a STALE',
      '2001:db8::1 dev br0 lladdr 52:54:00:00:00:0a STALE',
      'fd00:10:10::9 dev other lladdr 52:54:00:00:00:0a STALE',
      'fd00:10:10::2 dev br0 FAILED',
      'garbage line',
    ].join('\n'));
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::1']);
    expect(table.ownerOf('fd00:10:10::1')?.name).toBe('a');
    expect(l.stats()).toMatchObject({ linesInvalid: 1, tracked: 1 });
    now.t = 500;
    l.learn('fd00:10:10::1 lladdr 52:54:00:00:00:0a STALE\nfd00:10:10::3 lladdr 52:54:00:00:00:0a STALE\nfd00:10:10::4 lladdr 52:54:00:00:00:0a STALE');
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::1', 'fd00:10:10::3']); // the oldest of those seen now
    now.t = 600;
    l.learn('fd00:10:10::3 lladdr 52:54:00:00:00:0a STALE\nfd00:10:10::4 lladdr 52:54:00:00:00:0a STALE');
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::3', 'fd00:10:10::4']); // ::1 left the table: last (capped)
    now.t = 1550; // ::1 last seen at 500: gone; ::3 and ::4 still within the grace time
    l.learn('');
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::3', 'fd00:10:10::4']);
    now.t = 5000;
    l.learn('');
    expect(table.stats().addresses).toBe(0);
  });

  it('an address in use (REACHABLE lately) comes before a STALE one: forwards follow a guest to its new address', () => {
    const now = { t: 0 };
    const { table, l } = learner(now);
    l.learn('fd00:10:10::1 dev br0 lladdr 52:54:00:00:00:0a REACHABLE');
    now.t = 200;
    l.learn('fd00:10:10::1 dev br0 lladdr 52:54:00:00:00:0a STALE\nfd00:10:10::2 dev br0 lladdr 52:54:00:00:00:0a REACHABLE');
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::2', 'fd00:10:10::1']);
    now.t = 250; // both in use: the older first (a stable address before a temporary one)
    l.learn('fd00:10:10::1 dev br0 lladdr 52:54:00:00:00:0a REACHABLE\nfd00:10:10::2 dev br0 lladdr 52:54:00:00:00:0a REACHABLE');
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::1', 'fd00:10:10::2']);
    now.t = 400; // the kernel checking ::1 (DELAY, PROBE) is no answer from the guest: ::2 first again
    l.learn('fd00:10:10::1 dev br0 lladdr 52:54:00:00:00:0a PROBE\nfd00:10:10::2 dev br0 lladdr 52:54:00:00:00:0a REACHABLE');
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::2', 'fd00:10:10::1']);
  });

  it('an address the kernel marks FAILED (the guest moved to a new SLAAC address) is dropped at once', () => {
    const now = { t: 0 };
    const { table, l } = learner(now);
    l.learn('fd00:10:10::1 dev br0 lladdr 52:54:00:00:00:0a STALE');
    now.t = 100;
    l.learn('fd00:10:10::1 dev br0 FAILED\nfd00:10:10::5 dev br0 lladdr 52:54:00:00:00:0a REACHABLE');
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::5']);
    // INCOMPLETE (being resolved) is not proof of anything: the pair stays until the grace time
    l.learn('fd00:10:10::5 dev br0 INCOMPLETE');
    expect(table.addressesOfMac(MAC_A)).toEqual(['fd00:10:10::5']);
  });

  it('caps the pairs tracked, and another MAC never takes an address its holder still has', () => {
    const now = { t: 0 };
    const { table, l } = learner(now);
    l.learn('fd00:10:10::1 lladdr 52:54:00:00:00:0a STALE');
    now.t = 100;
    l.learn('fd00:10:10::1 lladdr 52:54:00:00:00:0b STALE\nfd00:10:10::2 lladdr 52:54:00:00:00:0b STALE\nfd00:10:10::3 lladdr 52:54:00:00:00:0b STALE\nfd00:10:10::4 lladdr 52:54:00:00:00:0b STALE');
    expect(table.ownerOf('fd00:10:10::1')?.mac).toBe(MAC_A);
    expect(l.stats()).toMatchObject({ tracked: 4, trackedRefused: 1 });
    expect(table.addressesOfMac(MAC_B)).not.toContain('fd00:10:10::1');
  });
});

describe('LocalNames over IPv6', () => {
  const subnet = makeSubnet(parseIpv4('10.10.0.0')!, 24);
  function names() {
    const t = new GuestAddresses(NET);
    const n = new LocalNames({ domain: 'vm', subnet, gatewayAddress: parseIpv4('10.10.0.1')! });
    n.setIpv6({ network: NET, gateway: parseIpv6('fd00:10:10::1')!, addressesOfMac: (m) => t.addressesOfMac(m), addressesOfName: (x) => t.addressesOfName(x), ownerOf: (a) => t.ownerOf(a) });
    n.setHost('web', parseIpv4('10.10.0.5')!, 'lease', { mac: MAC_A, clientId: 'x' });
    n.setHost('db', parseIpv4('10.10.0.6')!, 'reservation', { mac: MAC_B });
    return { t, n };
  }
  const q = (name: string, type: number) => ({ name, type, class: DNS_CLASS_IN });

  it('answers AAAA for a name from its MAC\'s addresses, and the gateway', () => {
    const { t, n } = names();
    expect(n.lookup(q('web.vm', DnsType.AAAA))).toEqual({ rcode: DnsRcode.NOERROR, records: [], authoritative: true });
    t.set('slaac', MAC_A, 'web', ['fd00:10:10::5']);
    expect(n.lookup(q('web.vm', DnsType.AAAA))?.records).toEqual([{ type: DnsType.AAAA, ttl: 0, data: 'fd00:10:10::5' }]);
    expect(n.lookup(q('web', DnsType.ANY))?.records.map((r) => r.data)).toEqual(['10.10.0.5', 'fd00:10:10::5']);
    expect(n.lookup(q('gateway.vm', DnsType.AAAA))?.records.map((r) => r.data)).toEqual(['fd00:10:10::1']);
    expect(n.namesByMac()).toEqual(new Map([[MAC_A, 'web'], [MAC_B, 'db']]));
  });

  it('PTR for the /64: forward-confirmed names only, NXDOMAIN for other addresses in it, nothing outside', () => {
    const { t, n } = names();
    t.set('slaac', MAC_A, 'web', ['fd00:10:10::5']);
    // a guest naming itself after another guest: its address has no PTR, the name's AAAA stays the owner's
    t.set('slaac', '52:54:00:00:00:0c', 'db', ['fd00:10:10::c']);
    const ptr = (a: string) => n.lookup(q(ip6ArpaName(parseIpv6(a)!), DnsType.PTR));
    expect(ptr('fd00:10:10::5')?.records).toEqual([{ type: DnsType.PTR, ttl: 0, data: 'web.vm' }]);
    expect(ptr('fd00:10:10::1')?.records).toEqual([{ type: DnsType.PTR, ttl: 0, data: 'gateway.vm' }]);
    expect(ptr('fd00:10:10::c')?.rcode).toBe(DnsRcode.NXDOMAIN);
    expect(n.lookup(q('db.vm', DnsType.AAAA))?.records).toEqual([]);
    expect(ptr('fd00:10:10::77')?.rcode).toBe(DnsRcode.NXDOMAIN);
    expect(ptr('fd00:99::5')).toBeUndefined();
  });

  it('a name only a MAC-less IPv6 source gives answers AAAA, but never one an IPv4 lease or reservation holds', () => {
    const { t, n } = names();
    t.set('dhcpv6', undefined, 'v6host', ['fd00:10:10::66']);
    t.set('dhcpv6', undefined, 'web', ['fd00:10:10::67']);
    expect(n.lookup(q('v6host.vm', DnsType.AAAA))?.records.map((r) => r.data)).toEqual(['fd00:10:10::66']);
    expect(n.lookup(q('v6host.vm', DnsType.A))?.records).toEqual([]);
    expect(n.lookup(q('web.vm', DnsType.AAAA))?.records).toEqual([]);
    expect(n.lookup(q(ip6ArpaName(parseIpv6('fd00:10:10::66')!), DnsType.PTR))?.records.map((r) => r.data)).toEqual(['v6host.vm']);
  });

  it('bogus-priv for IPv6: ULA, link-local, site-local, loopback and documentation reverse names stay local; the /64 is natd\'s own', () => {
    const opts = { domain: 'vm', subnet, ipv6Network: NET };
    const rev = (a: string) => policyFor(q(ip6ArpaName(parseIpv6(a)!), DnsType.PTR), opts);
    expect(rev('fd00:10:10::99')).toBe('local');
    expect(rev('fd12::1')).toBe('private-reverse');
    expect(rev('fe80::1')).toBe('private-reverse');
    expect(rev('febf::1')).toBe('private-reverse');
    expect(rev('fec0::1')).toBe('private-reverse');
    expect(rev('::1')).toBe('private-reverse');
    expect(rev('2001:db8::1')).toBe('private-reverse');
    expect(rev('2a00:1450::1')).toBe('forward');
    expect(rev('fc00::1')).toBe('forward'); // fc00::/8 is not assigned for local use (RFC 4193 L=0)
    expect(policyFor(q('d.f.ip6.arpa', DnsType.SOA), opts)).toBe('private-reverse');
    expect(policyFor(q('junk.d.f.ip6.arpa', DnsType.SOA), opts)).toBe('private-reverse');
    expect(policyFor(q('f.ip6.arpa', DnsType.SOA), opts)).toBe('forward');
    expect(policyFor(q('ip6.arpa', DnsType.NS), opts)).toBe('forward');
  });
});

describe('ip6.arpa names and IPv6 client keys', () => {
  it('round-trips addresses through ip6.arpa names', () => {
    for (const a of ['fd00:10:10::5', '::', '2001:db8:1:2:3:4:5:6', 'fe80::1']) {
      const zone = ip6ReverseZone(ip6ArpaName(parseIpv6(a)!))!;
      expect(zone).toEqual({ network: parseIpv6(a), prefix: 128, exact: true });
    }
    expect(ip6ReverseZone('example.com')).toBeUndefined();
    expect(ip6ReverseZone('x.1.ip6.arpa')).toMatchObject({ prefix: 4, exact: false });
  });

  it('client keys: words, text, prefixes and special space', () => {
    const words = new Uint32Array(4);
    const key = clientFromText('fd00:10:10::5', parseIpv4) as string;
    expect(key).toBe('fd000010001000000000000000000005');
    v6ClientWords(key, words, 0);
    expect(v6ClientFromWords(words[0]!, words[1]!, words[2]!, words[3]!)).toBe(key);
    expect(formatClient(key)).toBe('fd00:10:10::5');
    expect(clientFromText('::ffff:10.0.0.1', parseIpv4)).toBe(parseIpv4('10.0.0.1'));
    expect(key.startsWith(v6PrefixKey(NET))).toBe(true);
    expect(isLinkLocalV6Client(clientFromText('fe80::1', parseIpv4) as string)).toBe(true);
    expect(isLinkLocalV6Client(clientFromText('febf::1', parseIpv4) as string)).toBe(true);
    expect(isLinkLocalV6Client(clientFromText('fec0::1', parseIpv4) as string)).toBe(false);
    for (const bad of ['::', '::1', 'ff02::1', '::ffff:1.2.3.4', '::1.2.3.4']) expect(isUnicastV6Client(v6ClientFromBytes(parseIpv6(bad)!)), bad).toBe(false);
    expect(isUnicastV6Client(key)).toBe(true);
  });
});
