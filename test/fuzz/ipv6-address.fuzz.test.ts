/**
 * issue 14: parseIpv6's fast path (hex groups and colons, no regexes) accepts exactly what node:net's isIPv6
 * accepts and gives the same bytes as a plain split-based reference, on random text of that alphabet and on every
 * compression of random addresses; other text (IPv4 tails, zones, junk) still goes the isIPv6 way.
 */
import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIpv6, parseIpv6 } from '../../src/ipv6/address.js';

/** the reference: isIPv6 decides, a split expands (hex and colons only) */
function reference(text: string): number[] | undefined {
  if (!isIPv6(text)) return undefined;
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

const hexColon = fc.array(fc.constantFrom(...'0123456789abcdefABCDEF:::'.split('')), { maxLength: 45 }).map((cs) => cs.join(''));
const group = fc.integer({ min: 0, max: 0xffff });

/** every way of writing the groups: each run of zero groups compressed or not, leading zeros, upper case */
const written = fc.record({
  groups: fc.array(fc.oneof(group, fc.constant(0)), { minLength: 8, maxLength: 8 }),
  gapAt: fc.integer({ min: -1, max: 7 }),
  gapLen: fc.integer({ min: 1, max: 8 }),
  pad: fc.boolean(),
  upper: fc.boolean(),
}).map(({ groups, gapAt, gapLen, pad, upper }) => {
  const text = (gs: number[]) => gs.map((g) => (pad ? g.toString(16).padStart(4, '0') : g.toString(16))).join(':');
  let out = text(groups);
  if (gapAt >= 0) {
    const len = Math.min(gapLen, 8 - gapAt);
    const zeroed = groups.map((g, i) => (i >= gapAt && i < gapAt + len ? 0 : g));
    out = `${text(zeroed.slice(0, gapAt))}::${text(zeroed.slice(gapAt + len))}`;
  }
  return upper ? out.toUpperCase() : out;
});

describe('parseIpv6 fast path (issue 14)', () => {
  it('agrees with isIPv6 and the reference on random hex-and-colon text', () => {
    fc.assert(fc.property(hexColon, (text) => {
      const got = parseIpv6(text);
      expect(got ? [...got] : undefined, text).toEqual(reference(text));
    }), { numRuns: 5000 });
  });

  it('reads every compression of random addresses, and formats them back canonically', () => {
    fc.assert(fc.property(written, (text) => {
      const got = parseIpv6(text);
      expect(got ? [...got] : undefined, text).toEqual(reference(text));
      if (got) expect(parseIpv6(formatIpv6(got))).toEqual(got);
    }), { numRuns: 5000 });
  });

  it('edge cases', () => {
    for (const bad of ['', ':', ':::', '1:', ':1', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::', '12345::', '::1:', 'g::1', '1:2:3:4:5:6:7']) expect(parseIpv6(bad), bad).toBeUndefined();
    expect([...parseIpv6('::')!]).toEqual(new Array(16).fill(0));
    expect(formatIpv6(parseIpv6('1:2:3:4:5:6:7::')!)).toBe('1:2:3:4:5:6:7:0');
    expect(formatIpv6(parseIpv6('::ffff:1.2.3.4')!)).toBe('::ffff:102:304'); // the isIPv6 path
    expect(parseIpv6('fe80::1%eth0')).toBeUndefined();
    expect(parseIpv6('fe80::1 ')).toBeUndefined();
  });
});
