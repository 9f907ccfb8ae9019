import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIpv4, normalizeMac, parseCidr, parseIpv4, reverseName, subnetContains } from '../../src/net/ipv4.js';

describe('ipv4', () => {
  it('round-trips every address', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => parseIpv4(formatIpv4(n)) === n));
  });
  it('rejects malformed addresses', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.x', '01234.1.1.1', ' 1.2.3.4']) {
      expect(parseIpv4(bad)).toBeUndefined();
    }
  });
  it('accepts exactly four dot-separated decimal octets of 1-3 digits (leading zeros read as decimal)', () => {
    const reference = (text: string): number | undefined => {
      const parts = text.split('.');
      if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
      return parts.reduce((value, p) => value * 256 + Number(p), 0) >>> 0;
    };
    const text = fc.string({ unit: fc.constantFrom('0', '1', '2', '5', '9', '.', '.', 'x', ' ', '-'), maxLength: 18 });
    fc.assert(fc.property(text, (t) => parseIpv4(t) === reference(t)), { numRuns: 5000 });
    expect(parseIpv4('010.001.000.255')).toBe(parseIpv4('10.1.0.255'));
  });
  it('parses a CIDR into address and subnet', () => {
    const c = parseCidr('10.10.0.1/24')!;
    expect(formatIpv4(c.address)).toBe('10.10.0.1');
    expect(formatIpv4(c.subnet.network)).toBe('10.10.0.0');
    expect(formatIpv4(c.subnet.broadcast)).toBe('10.10.0.255');
    expect(subnetContains(c.subnet, parseIpv4('10.10.0.200')!)).toBe(true);
    expect(subnetContains(c.subnet, parseIpv4('10.10.1.2')!)).toBe(false);
    expect(parseCidr('10.10.0.1/33')).toBeUndefined();
  });
  it('names reverse zones and normalises MACs', () => {
    expect(reverseName(parseIpv4('10.10.0.5')!)).toBe('5.0.10.10.in-addr.arpa');
    expect(normalizeMac('52:54:00:BE:A:F3')).toBe('52:54:00:be:0a:f3');
    expect(normalizeMac('52-54-00-be-0a-f3')).toBe('52:54:00:be:0a:f3');
    expect(normalizeMac('52:54:00:be:0a')).toBeUndefined();
  });
});
