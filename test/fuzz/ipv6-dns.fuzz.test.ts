/**
 * issue 14: property tests for what natd's IPv6 DNS reads from the kernel and the network: `ip -6 neigh` lines
 * (neighbours.ts), ip6.arpa names (reverse6.ts), IPv6 client keys (client-address.ts); and the guest address table's
 * bounds under any sequence of claims (guest-addresses.ts).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIpv6, parseIpv6 } from '../../src/ipv6/address.js';
import { GuestAddresses } from '../../src/ipv6/guest-addresses.js';
import { parseNeighbourLine } from '../../src/ipv6/neighbours.js';
import { ip6ArpaName, ip6ReverseZone } from '../../src/dns/reverse6.js';
import { v6ClientBytes, v6ClientFromBytes, v6ClientFromWords, v6ClientWords } from '../../src/dns/client-address.js';

const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
const state = fc.constantFrom('REACHABLE', 'STALE', 'DELAY', 'PROBE', 'FAILED', 'INCOMPLETE', 'PERMANENT', 'NOARP', 'router', 'extern_learn');

describe('ip -6 neigh lines', () => {
  it('never throws on any text, and what it returns has a canonical address', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (line) => {
      const entry = parseNeighbourLine(line);
      if (entry) expect(formatIpv6(parseIpv6(entry.address)!)).toBe(entry.address);
    }), { numRuns: 3000 });
  });

  it('reads back any line iproute2 can print', () => {
    fc.assert(fc.property(bytes16, fc.option(fc.constantFrom('br0', 'virbr0', 'eth0')), fc.option(mac), fc.array(state, { maxLength: 3 }), fc.boolean(),
      (address, dev, lladdr, states, upper) => {
        const text = formatIpv6(address);
        const parts = [upper ? text.toUpperCase() : text, ...(dev ? ['dev', dev] : []), ...(lladdr ? ['lladdr', upper ? lladdr.toUpperCase() : lladdr] : []), ...states];
        const entry = parseNeighbourLine(parts.join(' '));
        expect(entry).toEqual({ address: text, ...(dev ? { dev } : {}), ...(lladdr ? { mac: lladdr } : {}), states });
      }), { numRuns: 2000 });
  });
});

describe('ip6.arpa names', () => {
  it('round-trip every address; never throw on any name', () => {
    fc.assert(fc.property(bytes16, (address) => {
      expect(ip6ReverseZone(ip6ArpaName(address))).toEqual({ network: address, prefix: 128, exact: true });
    }));
    fc.assert(fc.property(fc.array(fc.oneof(fc.constantFrom('a', 'f', '0', '9', 'ip6', 'arpa', 'x', ''), fc.string({ maxLength: 3 })), { maxLength: 40 }), (labels) => {
      const zone = ip6ReverseZone([...labels, 'ip6', 'arpa'].join('.'));
      expect(zone).toBeDefined();
      expect(zone!.prefix % 4).toBe(0);
      expect(zone!.prefix).toBeLessThanOrEqual(128);
    }), { numRuns: 3000 });
  });
});

describe('IPv6 client keys', () => {
  it('bytes → key → words → key → bytes is the identity', () => {
    fc.assert(fc.property(bytes16, (address) => {
      const key = v6ClientFromBytes(address);
      const words = new Uint32Array(5);
      v6ClientWords(key, words, 1);
      expect(v6ClientFromWords(words[1]!, words[2]!, words[3]!, words[4]!)).toBe(key);
      expect(v6ClientBytes(key)).toEqual(address);
    }));
  });
});

describe('GuestAddresses under any claims', () => {
  it('stays within its caps, gives every address one owner, and never holds an address outside the /64', () => {
    const net = parseIpv6('fd00:1::')!;
    const inPrefix = fc.integer({ min: 0, max: 40 }).map((i) => `fd00:1::${i.toString(16)}`);
    const anywhere = fc.oneof(inPrefix, inPrefix, bytes16.map(formatIpv6), fc.constantFrom('fe80::1', 'junk', ''));
    const claim = fc.record({
      source: fc.constantFrom('slaac' as const, 'dhcpv6' as const),
      mac: fc.option(fc.constantFrom('52:54:00:00:00:01', '52:54:00:00:00:02', '52:54:00:00:00:03', 'nonsense')),
      name: fc.option(fc.constantFrom('a', 'b', 'c')),
      addresses: fc.array(anywhere, { maxLength: 12 }),
    });
    fc.assert(fc.property(fc.array(claim, { maxLength: 40 }), (claims) => {
      const t = new GuestAddresses(net, { perGuest: 4, total: 10 });
      for (const c of claims) t.set(c.source, c.mac ?? undefined, c.name ?? undefined, c.addresses);
      const all = t.list();
      const addresses = all.flatMap((e) => e.addresses);
      expect(new Set(addresses).size).toBe(addresses.length);
      expect(addresses.length).toBe(t.stats().addresses);
      expect(addresses.length).toBeLessThanOrEqual(10);
      for (const e of all) {
        expect(e.addresses.length).toBeLessThanOrEqual(4);
        for (const a of e.addresses) {
          expect(a.startsWith('fd00:1::')).toBe(true);
          expect(t.ownerOf(a)).toEqual({ source: e.source, mac: e.mac, name: e.name });
        }
      }
    }), { numRuns: 1000 });
  });
});
