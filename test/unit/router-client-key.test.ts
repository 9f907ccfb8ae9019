/**
 * Issue 17: the name router's per-client limit counts an IPv4 client by its address and an IPv6 client by its /64
 * (router/client-key.ts): examples of every form a socket reports, and properties over random addresses (two
 * addresses share a key exactly when they are in one /64; every written form of an address gives the same key).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIpv6 } from '../../src/ipv6/address.js';
import { clientLimitKey } from '../../src/router/client-key.js';

const SEED = Number(process.env.NATD_FUZZ_SEED ?? 0x6417);

describe('clientLimitKey', () => {
  it('IPv4: the address; v4-mapped IPv6 is the same client as its IPv4 address', () => {
    expect(clientLimitKey('198.51.100.2')).toBe('198.51.100.2');
    expect(clientLimitKey('::ffff:198.51.100.2')).toBe('198.51.100.2');
    expect(clientLimitKey('::FFFF:198.51.100.2')).toBe('198.51.100.2');
    expect(clientLimitKey('198.51.100.3')).not.toBe(clientLimitKey('198.51.100.2'));
  });

  it('IPv6: every address of one /64 is one client, the next /64 another', () => {
    const key = clientLimitKey('2001:db8:51:7::2');
    expect(key).toBe('2001:db8:51:7::/64');
    for (const same of ['2001:db8:51:7::3', '2001:db8:51:7:a1b2:c3d4:e5f6:789', '2001:DB8:51:7:FFFF:FFFF:FFFF:FFFF', '2001:0db8:0051:0007::1']) {
      expect(clientLimitKey(same), same).toBe(key);
    }
    for (const other of ['2001:db8:51:8::2', '2001:db8:51:6:ffff:ffff:ffff:ffff', '2001:db8:52:7::2']) {
      expect(clientLimitKey(other), other).not.toBe(key);
    }
    expect(clientLimitKey('::1')).toBe('::/64');
    expect(clientLimitKey('64:ff9b::192.0.2.1')).toBe('64:ff9b::/64'); // NAT64: one translator is one client here
  });

  it('link-local IPv6: by full address and zone (every host on a link has fe80::/64)', () => {
    expect(clientLimitKey('fe80::1%eth0')).toBe('fe80::1%eth0');
    expect(clientLimitKey('fe80::2%eth0')).toBe('fe80::2%eth0');
    expect(clientLimitKey('fe80::1%eth1')).not.toBe(clientLimitKey('fe80::1%eth0'));
    expect(clientLimitKey('FE80:0::1')).toBe('fe80::1');
  });

  it('anything else is counted as given (never throws)', () => {
    expect(clientLimitKey('')).toBe('');
    expect(clientLimitKey('not:an:address')).toBe('not:an:address');
  });

  const ipv6Bytes = fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((b) => !(b[0] === 0xfe && (b[1]! & 0xc0) === 0x80));
  const isV4Mapped = (b: Uint8Array) => b.subarray(0, 10).every((v) => v === 0) && b[10] === 0xff && b[11] === 0xff;

  it('property: two global IPv6 addresses share a key exactly when their first 64 bits are equal', () => {
    fc.assert(
      fc.property(ipv6Bytes, ipv6Bytes, fc.boolean(), (a, b, samePrefix) => {
        if (samePrefix) b.set(a.subarray(0, 8));
        fc.pre(!isV4Mapped(a) && !isV4Mapped(b));
        const same = a.subarray(0, 8).every((v, i) => v === b[i]);
        expect(clientLimitKey(formatIpv6(a)) === clientLimitKey(formatIpv6(b))).toBe(same);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('property: the key does not depend on how the address is written (case, leading zeros, no ::)', () => {
    fc.assert(
      fc.property(ipv6Bytes, fc.boolean(), (a, upper) => {
        fc.pre(!isV4Mapped(a));
        const groups = Array.from({ length: 8 }, (_, i) => ((a[2 * i]! << 8) | a[2 * i + 1]!).toString(16).padStart(4, '0'));
        const long = groups.join(':');
        expect(clientLimitKey(upper ? long.toUpperCase() : long)).toBe(clientLimitKey(formatIpv6(a)));
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });
});
