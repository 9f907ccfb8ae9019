import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { DnsCache, cacheKey, clampHighBitTtls } from '../../src/dns/cache.js';
import { parseQuery } from '../../src/dns/query.js';
import { DnsRcode } from '../../src/dns/types.js';

/** dns-packet decodes these fields, its type definitions leave them out */
const ttlOf = (record: dnsPacket.Answer) => (record as { ttl?: number }).ttl;
const rcodeOf = (buf: Buffer) => (dnsPacket.decode(buf) as { rcode?: string }).rcode;

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (seconds: number) => void (now += seconds * 1000) };
}

function reply(opts: {
  name?: string;
  answers?: dnsPacket.Answer[];
  authorities?: dnsPacket.Answer[];
  rcode?: number;
  truncated?: boolean;
}): Buffer {
  const buf = dnsPacket.encode({
    type: 'response',
    id: 1,
    flags: dnsPacket.RECURSION_AVAILABLE | (opts.truncated ? dnsPacket.TRUNCATED_RESPONSE : 0),
    questions: [{ type: 'A', name: opts.name ?? 'example.com' }],
    answers: opts.answers ?? [],
    authorities: opts.authorities ?? [],
  });
  buf[3] = (buf[3]! & 0xf0) | (opts.rcode ?? 0);
  return buf;
}

const a = (ttl: number, data = '192.0.2.1'): dnsPacket.Answer => ({ type: 'A', name: 'example.com', ttl, data });
const soa = (ttl: number, minimum: number): dnsPacket.Answer => ({
  type: 'SOA',
  name: 'com',
  ttl,
  data: { mname: 'ns.com', rname: 'hostmaster.com', serial: 1, refresh: 2, retry: 3, expire: 4, minimum },
});

describe('DnsCache', () => {
  it('serves a copy with the id rewritten and TTLs lowered by whole elapsed seconds, until the shortest expires', () => {
    const t = clock();
    const cache = new DnsCache({ maxEntries: 10, now: t.now });
    const stored = reply({ answers: [a(300), a(60, '192.0.2.2')] });
    cache.store('k', stored);
    stored.fill(0); // the cache kept its own copy

    t.advance(10.9);
    const first = cache.get('k', 0xaaaa)!;
    const decoded = dnsPacket.decode(first);
    expect(decoded.id).toBe(0xaaaa);
    expect(decoded.answers!.map(ttlOf)).toEqual([290, 50]);
    first.fill(0); // callers may scribble on what they get
    expect(dnsPacket.decode(cache.get('k', 1)!).answers!.map(ttlOf)).toEqual([290, 50]);

    t.advance(49);
    expect(cache.get('k', 2)).toBeDefined();
    t.advance(1);
    expect(cache.get('k', 3)).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.stats()).toMatchObject({ hits: 3, misses: 1, evictions: 0 });
  });

  it('caches NXDOMAIN and NODATA for min(SOA TTL, SOA minimum), and not at all without a SOA', () => {
    const t = clock();
    const cache = new DnsCache({ maxEntries: 10, now: t.now });
    cache.store('nx', reply({ rcode: DnsRcode.NXDOMAIN, authorities: [soa(900, 30)] }));
    cache.store('nodata', reply({ authorities: [soa(20, 3600)] }));
    cache.store('bare-nx', reply({ rcode: DnsRcode.NXDOMAIN }));
    expect(cache.size).toBe(2);

    t.advance(19);
    expect(dnsPacket.decode(cache.get('nodata', 1)!).authorities!.map(ttlOf)[0]).toBe(1);
    expect(rcodeOf(cache.get('nx', 1)!)).toBe('NXDOMAIN');
    t.advance(1);
    expect(cache.get('nodata', 1)).toBeUndefined();
    t.advance(9);
    expect(cache.get('nx', 1)).toBeDefined();
    t.advance(1);
    expect(cache.get('nx', 1)).toBeUndefined();
  });

  it('remembers SERVFAIL only for servfailSeconds', () => {
    const t = clock();
    const cache = new DnsCache({ maxEntries: 10, servfailSeconds: 3, now: t.now });
    cache.store('sf', reply({ rcode: DnsRcode.SERVFAIL }));
    t.advance(2.5);
    expect(rcodeOf(cache.get('sf', 1)!)).toBe('SERVFAIL');
    t.advance(0.5);
    expect(cache.get('sf', 1)).toBeUndefined();
  });

  it('never caches truncated, zero-TTL, REFUSED or malformed responses', () => {
    const cache = new DnsCache({ maxEntries: 10 });
    cache.store('tc', reply({ answers: [a(300)], truncated: true }));
    cache.store('zero', reply({ answers: [a(300), a(0)] }));
    cache.store('refused', reply({ rcode: DnsRcode.REFUSED }));
    cache.store('junk', reply({ answers: [a(300)] }).subarray(0, 40));
    cache.store('tiny', Buffer.alloc(5));
    expect(cache.size).toBe(0);
  });

  it('caps lifetimes at maxTtlSeconds', () => {
    const t = clock();
    const cache = new DnsCache({ maxEntries: 10, maxTtlSeconds: 100, now: t.now });
    cache.store('k', reply({ answers: [a(1_000_000)] }));
    t.advance(100);
    expect(cache.get('k', 1)).toBeUndefined();
  });

  it('stays at maxEntries under a flood of 20,000 unique names, evicting the least recently used', () => {
    let clock = 1_000_000;
    const cache = new DnsCache({ maxEntries: 1000, now: () => clock });
    const response = reply({ answers: [a(300)] });
    cache.store('keep', response);
    let largest = 0;
    for (let i = 0; i < 20_000; i++) {
      clock += 5; // 100 s in all, within the TTL; a hit re-orders its entry at most once a second
      cache.store(`name-${i}.example|1|1`, response);
      if (i % 500 === 0) cache.get('keep', 1); // touched often, so never the oldest
      largest = Math.max(largest, cache.size);
    }
    expect(largest).toBe(1000);
    expect(cache.size).toBe(1000);
    expect(cache.get('keep', 1)).toBeDefined();
    expect(cache.get('name-0.example|1|1', 1)).toBeUndefined();
    expect(cache.get('name-19999.example|1|1', 1)).toBeDefined();
    expect(cache.stats().evictions).toBe(20_001 - 1000);
    cache.clear();
    expect(cache.size).toBe(0);
  });

  it('keeps every response intact while responses fill slabs and hits move hot ones to the newest slab', () => {
    const t = clock();
    const cache = new DnsCache({ maxEntries: 2000, now: t.now });
    const name = (i: number) => `host-${i}.example`;
    const big = reply({ name: 'big.example', answers: Array.from({ length: 40 }, (_, i) => a(600, `192.0.2.${i + 1}`)) });
    expect(big.length).toBeGreaterThan(1024); // stored in a buffer of its own
    cache.store('big', big);
    for (let i = 0; i < 1500; i++) {
      cache.store(`k${i}`, reply({ name: name(i), answers: [a(600, `198.51.100.${i % 250}`)] }));
      if (i % 100 === 0) {
        t.advance(1.5); // every hit below re-orders (and moves) its entry
        for (const j of [0, Math.min(7, i), i]) {
          const decoded = dnsPacket.decode(cache.get(`k${j}`, 42)!);
          expect(decoded.questions![0]!.name).toBe(name(j));
          expect(decoded.answers!.map((r) => (r as { data: string }).data)).toEqual([`198.51.100.${j % 250}`]);
        }
        expect(dnsPacket.decode(cache.get('big', 1)!).answers).toHaveLength(40);
      }
    }
    const aged = dnsPacket.decode(cache.get('k0', 1)!);
    expect(aged.answers!.map(ttlOf)).toEqual([600 - Math.floor(15 * 1.5)]);
    expect(dnsPacket.decode(cache.get('k1499', 1)!).questions![0]!.name).toBe(name(1499));
  });

  it('echoes the client spelling of the question (DNS 0x20) when given the query', () => {
    const cache = new DnsCache({ maxEntries: 10 });
    cache.store('k', reply({ name: 'example.com', answers: [a(300)] }));
    const q = dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'ExAmPlE.cOm' }] });
    expect(dnsPacket.decode(cache.get('k', 9, q)!).questions![0]!.name).toBe('ExAmPlE.cOm');
    const other = dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'EXAMPLE.net' }] });
    expect(dnsPacket.decode(cache.get('k', 9, other)!).questions![0]!.name).toBe('example.com');
  });

  it('keys queries by question and EDNS/DNSSEC flavour', () => {
    const key = (opt?: { do: boolean }, cd = false) => {
      const result = parseQuery(
        dnsPacket.encode({
          type: 'query',
          id: 1,
          flags: cd ? dnsPacket.CHECKING_DISABLED : 0,
          questions: [{ type: 'A', name: 'Example.com' }],
          additionals: opt ? [{ type: 'OPT', name: '.', flags: opt.do ? dnsPacket.DNSSEC_OK : 0 } as dnsPacket.Answer] : [],
        }),
      );
      if (!result.ok) throw new Error('rejected');
      return cacheKey(result.query);
    };
    const keys = new Set([key(), key({ do: false }), key({ do: true }), key({ do: true }, true)]);
    expect(keys.size).toBe(4);
    expect(key()).toMatch(/^example\.com\|1\|1\|/);
  });
});

describe('DnsCache eviction', () => {
  it('keeps exactly the entries a reference LRU (hits re-ordering at most once a second) keeps, across stores, hits and clears', () => {
    const response = reply({ answers: [a(300)] });
    const op = fc.oneof(
      fc.record({ kind: fc.constant('store' as const), key: fc.integer({ min: 0, max: 30 }), advanceMs: fc.integer({ min: 0, max: 1500 }) }),
      fc.record({ kind: fc.constant('get' as const), key: fc.integer({ min: 0, max: 30 }), advanceMs: fc.integer({ min: 0, max: 1500 }) }),
      fc.record({ kind: fc.constant('clear' as const), advanceMs: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(op, { maxLength: 200 }), (maxEntries, ops) => {
        let clock = 1_000_000;
        const cache = new DnsCache({ maxEntries, now: () => clock });
        const reference: string[] = []; // least recently used first
        const touchedAt = new Map<string, number>();
        const touch = (key: string) => {
          reference.splice(reference.indexOf(key), 1);
          reference.push(key);
          touchedAt.set(key, clock);
        };
        for (const o of ops) {
          clock += o.advanceMs;
          if (o.kind === 'clear') {
            cache.clear();
            reference.length = 0;
          } else if (o.kind === 'store') {
            const key = `k${o.key}`;
            cache.store(key, response);
            if (reference.includes(key)) touch(key);
            else {
              reference.push(key);
              touchedAt.set(key, clock);
            }
            if (reference.length > maxEntries) reference.shift();
          } else {
            const key = `k${o.key}`;
            const hit = cache.get(key, 7) !== undefined;
            expect(hit).toBe(reference.includes(key));
            if (hit && clock - touchedAt.get(key)! >= 1000) touch(key);
          }
          expect(cache.size).toBe(reference.length);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('DnsCache against hostile answers (issue 12)', () => {
  const big = (i: number) => reply({ name: `n${i}.example.com`, answers: [{ type: 'TXT', name: `n${i}.example.com`, ttl: 300, data: ['x'.repeat(250), 'y'.repeat(250), 'z'.repeat(250), 'w'.repeat(250)] }] });
  const keyFor = (i: number) => `n${i}.example.com|16|1|--`;

  it('stays within its byte budget, evicting the least recently used', () => {
    const cache = new DnsCache({ maxEntries: 10_000, maxBytes: 100_000 });
    for (let i = 0; i < 500; i++) cache.store(keyFor(i), big(i));
    expect(cache.bytes).toBeLessThanOrEqual(100_000);
    expect(cache.stats().evictions).toBeGreaterThan(400);
    expect(cache.get(keyFor(499), 1)).toBeDefined();
    expect(cache.get(keyFor(0), 1)).toBeUndefined();
  });

  it('gives every byte back when entries go', () => {
    const c = clock();
    const cache = new DnsCache({ maxBytes: 1_000_000, now: c.now });
    for (let i = 0; i < 50; i++) cache.store(`s${i}|1|1|--`, reply({ name: `s${i}.example.com`, answers: [a(10)] }));
    for (let i = 0; i < 10; i++) cache.store(keyFor(i), big(i));
    expect(cache.bytes).toBeGreaterThan(10 * 1000);
    c.advance(400);
    for (let i = 0; i < 50; i++) expect(cache.get(`s${i}|1|1|--`, 1)).toBeUndefined();
    for (let i = 0; i < 10; i++) expect(cache.get(keyFor(i), 1)).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(16 * 1024); // the current slab only
  });

  it('does not store a response larger than the whole budget', () => {
    const cache = new DnsCache({ maxBytes: 20_000 });
    const huge = reply({ answers: [{ type: 'TXT', name: 'example.com', ttl: 300, data: Array.from({ length: 100 }, () => 'h'.repeat(250)) }] });
    cache.store('example.com|16|1|--', huge);
    expect(cache.size).toBe(0);
    expect(cache.stats().tooLarge).toBe(1);
  });

  it('treats a TTL with the high bit set as 0 (RFC 2181 §8): not cached, rewritten to 0', () => {
    const cache = new DnsCache();
    const response = reply({ answers: [a(2 ** 31 + 100)] });
    cache.store('example.com|1|1|--', response);
    expect(cache.size).toBe(0);
    expect(clampHighBitTtls(response)).toBe(true);
    expect(ttlOf(dnsPacket.decode(response).answers![0]!)).toBe(0);
    const normal = reply({ answers: [a(300)] });
    clampHighBitTtls(normal);
    expect(ttlOf(dnsPacket.decode(normal).answers![0]!)).toBe(300);
  });
});
