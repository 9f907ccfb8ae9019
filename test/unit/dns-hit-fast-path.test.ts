/**
 * issue 18: the fast path's question reader against parseQuery (whatever it takes, parseQuery takes alike), and the
 * cache's index of vetted entries (flavour, question and token checks; hash collisions; removal).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DnsCache, cacheKey } from '../../src/dns/cache.js';
import { FLAVOUR_CD, FLAVOUR_DO, FLAVOUR_EDNS, readFastQuestion, sameQuestion, type FastQuestion } from '../../src/dns/hit-fast-path.js';
import { parseQuery } from '../../src/dns/query.js';
import { FLAG_CD } from '../../src/dns/wire.js';

function question(name: string, type = 1, opts: { flags?: number; opt?: { size: number; flags: number; rdata?: number }; id?: number } = {}): Buffer {
  const labels = name.split('.').filter(Boolean).flatMap((l) => [l.length, ...Buffer.from(l, 'latin1')]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(opts.id ?? 7, 0);
  header.writeUInt16BE(opts.flags ?? 0x0100, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(opts.opt ? 1 : 0, 10);
  const parts = [header, Buffer.from([...labels, 0, type >> 8, type & 0xff, 0, 1])];
  if (opts.opt) {
    const opt = Buffer.alloc(11 + (opts.opt.rdata ?? 0));
    opt.writeUInt16BE(41, 1);
    opt.writeUInt16BE(opts.opt.size, 3);
    opt.writeUInt16BE(opts.opt.flags, 7);
    opt.writeUInt16BE(opts.opt.rdata ?? 0, 9);
    parts.push(opt);
  }
  return Buffer.concat(parts);
}

/** A response to `query`: its header with QR and one A record (TTL 300) after the question. */
function response(query: Buffer): Buffer {
  const fast = readFastQuestion(query)!;
  const head = Buffer.from(query.subarray(0, 12));
  head.writeUInt16BE(0x8180, 2);
  head.writeUInt16BE(1, 6);
  head.writeUInt16BE(0, 10);
  return Buffer.concat([head, query.subarray(12, fast.end), Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1])]);
}

function copy(q: FastQuestion): FastQuestion {
  return { ...q };
}

describe('readFastQuestion', () => {
  it('takes only what parseQuery takes, with the same id, UDP limit and cache key flavour', () => {
    const valid = fc.record({
      name: fc.array(fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/), { minLength: 1, maxLength: 4 }).map((l) => l.join('.')),
      type: fc.nat(0xffff),
      flags: fc.oneof(fc.constantFrom(0x0100, 0x0110, 0), fc.nat(0xffff)),
      opt: fc.option(fc.record({ size: fc.nat(0xffff), flags: fc.nat(0xffff), rdata: fc.nat(4) }), { nil: undefined }),
      id: fc.nat(0xffff),
    }).map((q) => question(q.name, q.type, q));
    // valid queries, cut, extended, or with one byte changed
    const mutated = fc.tuple(valid, fc.nat(), fc.nat(255), fc.nat(3), fc.nat(6)).map(([q, at, byte, how, n]) => {
      if (how === 0) return q.subarray(0, Math.max(0, q.length - n));
      if (how === 1) return Buffer.concat([q, Buffer.alloc(n, byte)]);
      if (how === 2) return q;
      const b = Buffer.from(q);
      b[at % b.length] = byte;
      return b;
    });
    let taken = 0;
    fc.assert(
      fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a))), fc.nat(40), fc.uint8Array({ minLength: 1, maxLength: 16 }), (buf, pad, junk) => {
        // in place in a receive slab (issue 18: no view per datagram): the bytes around it change nothing
        const slab = Buffer.concat([Buffer.alloc(pad, 0x3f), buf, Buffer.from(junk)]);
        const inPlace = readFastQuestion(slab, pad, buf.length);
        const framed = inPlace && copy(inPlace);
        const fast = readFastQuestion(buf);
        expect(framed).toEqual(fast && copy(fast));
        if (!fast) return;
        taken++;
        const parsed = parseQuery(buf);
        expect(parsed.ok).toBe(true);
        if (!parsed.ok) return;
        const { query } = parsed;
        expect(query.cacheKey).toBeDefined(); // the plain-name path
        expect(fast.id).toBe(query.id);
        expect(fast.udpLimit).toBe(query.udpPayloadSize);
        expect((fast.flavour & FLAVOUR_EDNS) !== 0).toBe(query.hasEdns);
        expect((fast.flavour & FLAVOUR_DO) !== 0).toBe(query.dnssecOk);
        expect((fast.flavour & FLAVOUR_CD) !== 0).toBe((query.flags & FLAG_CD) !== 0);
        expect(cacheKey(query).startsWith(`${query.question.name}|`)).toBe(true);
      }),
      { numRuns: 20_000, seed: 18 },
    );
    expect(taken).toBeGreaterThan(2000);
  });

  it('gives questions equal up to letter case the same hash and the same cache key', () => {
    const a = question('Www.Example.COM', 28, { opt: { size: 4096, flags: 0x8000 } });
    const b = question('www.example.com', 28, { opt: { size: 1232, flags: 0x8000 }, id: 99 });
    const fa = copy(readFastQuestion(a)!);
    const fb = copy(readFastQuestion(b)!);
    expect(fa.hash).toBe(fb.hash);
    expect(sameQuestion(a, 0, fa.end, b, 0, b.length)).toBe(true);
    const [pa, pb] = [parseQuery(a), parseQuery(b)];
    expect(pa.ok && pb.ok && cacheKey(pa.query) === cacheKey(pb.query)).toBe(true);
    // another flavour, another type, another name: another hash (and sameQuestion tells names apart anyway)
    expect(readFastQuestion(question('www.example.com', 28))!.hash).not.toBe(fa.hash);
    expect(readFastQuestion(question('www.example.com', 1, { opt: { size: 1232, flags: 0x8000 } }))!.hash).not.toBe(fa.hash);
    const c = question('www.example.con', 28, { opt: { size: 4096, flags: 0x8000 } });
    expect(sameQuestion(c, 0, readFastQuestion(c)!.end, a, 0, a.length)).toBe(false);
    // letters only: '[' (0x5b) and '{' (0x7b) differ by 0x20 but are not the same character
    const d = question('a[b.example.com');
    const e = question('a{b.example.com');
    expect(sameQuestion(d, 0, readFastQuestion(d)!.end, e, 0, e.length)).toBe(false);
  });

  it('leaves to the normal path what it must decide: pointers, escapes, other classes, opcodes, responses, more records', () => {
    const base = question('host.example.com');
    expect(readFastQuestion(base)).toBeDefined();
    expect(readFastQuestion(question('a.b\\c.example'))).toBeUndefined();
    expect(readFastQuestion(question('a b.example'))).toBeUndefined();
    const pointer = Buffer.concat([base.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    expect(readFastQuestion(pointer)).toBeUndefined();
    const chaos = Buffer.from(base);
    chaos[chaos.length - 1] = 3;
    expect(readFastQuestion(chaos)).toBeUndefined();
    const opcode = Buffer.from(base);
    opcode[2] = opcode[2]! | 0x10; // opcode 2
    expect(readFastQuestion(opcode)).toBeUndefined();
    const qr = Buffer.from(base);
    qr[2] = qr[2]! | 0x80;
    expect(readFastQuestion(qr)).toBeUndefined();
    const twoQuestions = Buffer.from(base);
    twoQuestions[5] = 2;
    expect(readFastQuestion(twoQuestions)).toBeUndefined();
    const answerCount = Buffer.from(base);
    answerCount[7] = 1;
    expect(readFastQuestion(answerCount)).toBeUndefined();
    const notOpt = question('host.example.com', 1, { opt: { size: 1232, flags: 0 } });
    notOpt[notOpt.length - 10] = 1; // the additional record's type is no longer OPT (41)
    expect(readFastQuestion(notOpt)).toBeUndefined();
    expect(readFastQuestion(question(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`))).toBeDefined();
    expect(readFastQuestion(question(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`))).toBeUndefined();
  });
});

describe('DnsCache vetted entries', () => {
  const token = {};
  function cacheWith(...queries: Buffer[]): { cache: DnsCache; keys: string[]; clock: { now: number } } {
    const clock = { now: 1_000_000 };
    const cache = new DnsCache({ now: () => clock.now });
    const keys = queries.map((q) => {
      const parsed = parseQuery(q);
      if (!parsed.ok) throw new Error('bad test query');
      const key = cacheKey(parsed.query);
      cache.store(key, response(q));
      return key;
    });
    return { cache, keys, clock };
  }

  it('serves only the question, flavour and token it was vetted for, as get() would', () => {
    const q = question('a.example.com');
    const { cache, keys, clock } = cacheWith(q);
    const fast = copy(readFastQuestion(q)!);
    expect(cache.getVetted(fast, token, q)).toBeUndefined(); // not vetted yet
    cache.vet(keys[0]!, fast, token, q);
    clock.now += 2500;
    const asked = question('A.EXAMPLE.com', 1, { id: 4242 });
    const got = cache.getVetted({ ...fast, id: 4242 }, token, asked)!;
    const viaGet = cache.get(keys[0]!, 4242, asked)!;
    expect(got.toString('hex')).toBe(viaGet.toString('hex'));
    expect(got.readUInt32BE(got.length - 10)).toBe(298); // TTL aged by the 2 whole seconds
    expect(cache.getVetted(fast, {}, q)).toBeUndefined(); // another token
    expect(cache.getVetted({ ...fast, flavour: FLAVOUR_CD }, token, q)).toBeUndefined(); // same hash, other flavour
    const other = question('b.example.com');
    expect(cache.getVetted({ ...fast, end: readFastQuestion(other)!.end }, token, other)).toBeUndefined(); // same hash, other name
    clock.now += 300_000;
    expect(cache.getVetted(fast, token, q)).toBeUndefined(); // expired: left to get(), which counts and removes it
    expect(cache.size).toBe(1);
  });

  it('keeps one entry per hash: a colliding entry takes the slot, and removing the old one leaves it', () => {
    const a = question('a.example.com');
    const b = question('b.example.com');
    const { cache, keys } = cacheWith(a, b);
    const fa = copy(readFastQuestion(a)!);
    const fb = { ...copy(readFastQuestion(b)!), hash: fa.hash }; // a forced collision
    cache.vet(keys[0]!, fa, token, a);
    cache.vet(keys[1]!, fb, token, b);
    expect(cache.getVetted(fa, token, a)).toBeUndefined();
    expect(cache.getVetted(fb, token, b)).toBeDefined();
    cache.store(keys[0]!, response(a)); // replaces (removes) the old entry for a
    expect(cache.getVetted(fb, token, b)).toBeDefined();
    cache.clear();
    expect(cache.getVetted(fb, token, b)).toBeUndefined();
  });

  it('does not vet an entry whose stored question is not the query question', () => {
    const a = question('a.example.com');
    const { cache, keys } = cacheWith(a);
    const other = question('x.example.com');
    cache.vet(keys[0]!, copy(readFastQuestion(other)!), token, other);
    expect(cache.getVetted(copy(readFastQuestion(other)!), token, other)).toBeUndefined();
  });
});
