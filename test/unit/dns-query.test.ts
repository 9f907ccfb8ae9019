import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { parseQuery } from '../../src/dns/query.js';
import { DnsRcode, DnsType, type ParsedQuery } from '../../src/dns/types.js';
import {
  DnsWireError,
  forEachRecord,
  getRcode,
  isTruncated,
  minTtl,
  readName,
  responseQuestionKey,
  rewriteTtls,
  setId,
  skipName,
  skipQuestions,
} from '../../src/dns/wire.js';
import { buildErrorResponse, buildLocalAnswer, truncateForUdp } from '../../src/dns/answers.js';

/** dns-packet decodes these fields, its type definitions leave them out */
const ttlOf = (record: dnsPacket.Answer) => (record as { ttl?: number }).ttl;
const rcodeOf = (buf: Buffer) => (dnsPacket.decode(buf) as { rcode?: string }).rcode;

type Question = dnsPacket.Question;

function query(opts: { id?: number; name?: string; type?: Question['type']; edns?: { size: number; do?: boolean } } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? 0x1234,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: opts.type ?? 'A', name: opts.name ?? 'example.com' }],
    additionals: opts.edns
      ? [{ type: 'OPT', name: '.', udpPayloadSize: opts.edns.size, flags: opts.edns.do ? dnsPacket.DNSSEC_OK : 0 } as dnsPacket.Answer]
      : [],
  });
}

function accepted(buf: Uint8Array): ParsedQuery {
  const result = parseQuery(buf);
  if (!result.ok) throw new Error(`rejected: ${result.rejected.reason}`);
  return result.query;
}

function rejected(buf: Uint8Array) {
  const result = parseQuery(buf);
  if (result.ok) throw new Error('accepted');
  return result.rejected;
}

/** header(id 7, RD, qdcount 1) + the given question bytes */
function rawQuery(question: number[]): Buffer {
  return Buffer.from([0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...question]);
}

function response(answers: dnsPacket.Answer[], opts: { rcode?: number; edns?: boolean; tc?: boolean } = {}): Buffer {
  const flags = dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (opts.tc ? dnsPacket.TRUNCATED_RESPONSE : 0);
  const buf = dnsPacket.encode({
    type: 'response',
    id: 0x4321,
    flags,
    questions: [{ type: 'A', name: 'Example.COM' }],
    answers,
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer] : [],
  });
  buf[3] = (buf[3]! & 0xf0) | (opts.rcode ?? 0);
  return buf;
}

describe('parseQuery: good queries', () => {
  it('reads id, flags, question and key, lower-casing the name', () => {
    const q = accepted(query({ id: 0xbeef, name: 'WWW.Example.COM', type: 'AAAA' }));
    expect(q.id).toBe(0xbeef);
    expect(q.recursionDesired).toBe(true);
    expect(q.question).toEqual({ name: 'www.example.com', type: DnsType.AAAA, class: 1 });
    expect(q.key).toBe(`www.example.com|${DnsType.AAAA}|1`);
    expect(q.hasEdns).toBe(false);
    expect(q.udpPayloadSize).toBe(512);
  });

  it('reads the EDNS payload size (clamped to 512..1232, DNS flag day 2020) and the DO bit', () => {
    for (const [size, expected] of [[1232, 1232], [100, 512], [4096, 1232], [65000, 1232]] as const) {
      const q = accepted(query({ edns: { size, do: size === 1232 } }));
      expect(q.hasEdns).toBe(true);
      expect(q.udpPayloadSize).toBe(expected);
      expect(q.dnssecOk).toBe(size === 1232);
    }
  });

  it('accepts the root name and tolerates bytes after the records', () => {
    expect(accepted(query({ name: '.', type: 'NS' })).question.name).toBe('');
    const padded = Buffer.concat([query({ edns: { size: 1200 } }), Buffer.from([1, 2, 3])]);
    expect(accepted(padded).udpPayloadSize).toBe(1200);
  });

  it('escapes odd label bytes so a dot inside a label never reads as two labels', () => {
    const q = accepted(rawQuery([3, 0x61, 0x2e, 0x62, 1, 0x63, 0, 0, 1, 0, 1]));
    expect(q.question.name).toBe('a\\046b.c');
    expect(q.question.name).not.toBe(accepted(query({ name: 'a.b.c' })).question.name);
  });

  it('round-trips arbitrary valid names from dns-packet', () => {
    const label = fc.stringMatching(/^[a-zA-Z0-9-]{1,20}$/);
    fc.assert(
      fc.property(fc.array(label, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 0xffff }), (labels, id) => {
        const q = accepted(query({ id, name: labels.join('.') }));
        return q.id === id && q.question.name === labels.join('.').toLowerCase();
      }),
    );
  });
});

describe('parseQuery: bad queries', () => {
  const good = query();
  const withByte = (offset: number, value: number) => {
    const copy = Buffer.from(good);
    copy[offset] = value;
    return copy;
  };

  it('drops messages shorter than a header, and responses (no loops)', () => {
    expect(rejected(good.subarray(0, 11))).toEqual({ reason: 'short' });
    expect(rejected(Buffer.alloc(0))).toEqual({ reason: 'short' });
    expect(rejected(response([]))).toEqual({ reason: 'response' });
  });

  it('answers NOTIMP to opcodes other than QUERY', () => {
    for (const opcode of [1, 2, 4, 5, 15]) {
      expect(rejected(withByte(2, (good[2]! & 0x87) | (opcode << 3)))).toEqual({ reason: 'opcode', rcode: DnsRcode.NOTIMP, id: 0x1234 });
    }
  });

  it('answers REFUSED when qdcount is not 1', () => {
    expect(rejected(withByte(5, 0))).toEqual({ reason: 'qdcount', rcode: DnsRcode.REFUSED, id: 0x1234 });
    const two = dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'a' }, { type: 'A', name: 'b' }] });
    expect(rejected(two)).toEqual({ reason: 'qdcount', rcode: DnsRcode.REFUSED, id: 9 });
  });

  it('answers FORMERR to malformed names and overruns', () => {
    const formerr = { reason: 'malformed', rcode: DnsRcode.FORMERR, id: 7 };
    expect(rejected(good.subarray(0, 16))).toEqual({ ...formerr, id: 0x1234 }); // name overrun
    expect(rejected(good.subarray(0, good.length - 2))).toEqual({ ...formerr, id: 0x1234 }); // class missing
    expect(rejected(rawQuery([0xc0, 12, 0, 1, 0, 1]))).toEqual(formerr); // pointer to itself
    expect(rejected(rawQuery([1, 0x61, 0xc0, 12, 0, 1, 0, 1]))).toEqual(formerr); // pointer back to its own start
    expect(rejected(rawQuery([0xc0, 2, 0, 1, 0, 1]))).toEqual(formerr); // pointer into the header
    expect(rejected(rawQuery([0x41, 0x61, 0, 0, 1, 0, 1]))).toEqual(formerr); // label type 01 (extended)
    expect(rejected(rawQuery([0x80, 0x61, 0, 0, 1, 0, 1]))).toEqual(formerr); // label type 10 (reserved)
    expect(rejected(rawQuery([10, 0x61, 0, 0, 1, 0, 1]))).toEqual(formerr); // label longer than the message
    const tooLong = Array.from({ length: 5 }, () => [63, ...Array<number>(63).fill(0x61)]).flat();
    expect(rejected(rawQuery([...tooLong, 0, 0, 1, 0, 1]))).toEqual(formerr); // 321-octet name
  });

  it('answers FORMERR to an overrunning additional record or a second OPT', () => {
    const edns = query({ edns: { size: 1232 } });
    expect(rejected(edns.subarray(0, edns.length - 3))).toMatchObject({ reason: 'malformed', rcode: DnsRcode.FORMERR });
    const twoOpt = dnsPacket.encode({
      type: 'query',
      id: 3,
      questions: [{ type: 'A', name: 'a.b' }],
      additionals: [{ type: 'OPT', name: '.' }, { type: 'OPT', name: '.' }] as dnsPacket.Answer[],
    });
    expect(rejected(twoOpt)).toEqual({ reason: 'malformed', rcode: DnsRcode.FORMERR, id: 3 });
  });

  it('answers REFUSED to classes other than IN (CHAOS version.bind included)', () => {
    const chaos = dnsPacket.encode({ type: 'query', id: 5, questions: [{ type: 'TXT', name: 'version.bind', class: 'CH' }] });
    expect(rejected(chaos)).toEqual({ reason: 'class', rcode: DnsRcode.REFUSED, id: 5 });
  });

  it('never throws on arbitrary bytes, and only rejects with an rcode when it has an id', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const result = parseQuery(bytes);
        if (result.ok) return result.query.raw === bytes;
        return result.rejected.rcode === undefined || result.rejected.id !== undefined;
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on valid queries with random bytes overwritten', () => {
    const seeds = [query({ edns: { size: 1232, do: true } }), query({ name: 'a.very.long.name.example.org', type: 'TXT' })];
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (seed, edits) => {
        const copy = Buffer.from(seed);
        for (const [at, value] of edits) copy[at % copy.length] = value;
        parseQuery(copy);
      }),
      { numRuns: 2000 },
    );
  });
});

/**
 * The general-purpose reading parseQuery's fast paths stand in for (readName + lower case; the OPT record found by a
 * walk over every record): on any input, an accepted query must carry exactly what it gives, and input it cannot
 * read must be rejected.
 */
function referenceReading(buf: Uint8Array): { name: string; hasEdns: boolean; udpPayloadSize: number; dnssecOk: boolean } | 'unreadable' {
  try {
    const { name } = readName(buf, 12);
    let edns = { hasEdns: false, udpPayloadSize: 512, dnssecOk: false };
    forEachRecord(buf, (record) => {
      if (record.type === DnsType.OPT && record.section === 'additional' && !edns.hasEdns) {
        edns = { hasEdns: true, udpPayloadSize: Math.min(1232, Math.max(512, record.class)), dnssecOk: (record.ttl & 0x8000) !== 0 };
      }
    });
    return { name: name.toLowerCase(), ...edns };
  } catch {
    return 'unreadable';
  }
}

describe('parseQuery fast paths', () => {
  const seeds = [
    query({ edns: { size: 1232, do: true } }),
    query({ name: 'Mixed-Case_Host.Example.ORG', edns: { size: 4096 } }),
    query({ name: 'a.very.long.name.example.org', type: 'TXT' }),
    rawQuery([3, 0x61, 0x2e, 0x62, 0, 0, 1, 0, 1]), // a dot inside a label
    rawQuery([3, 0x41, 0xff, 0x20, 0, 0, 1, 0, 1]), // bytes that must be escaped
  ];

  it('read the same name and EDNS as the general reader, for valid and mangled queries alike', () => {
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), (seed, edits) => {
        const copy = Buffer.from(seed);
        for (const [at, value] of edits) copy[at % copy.length] = value;
        const result = parseQuery(copy);
        const reference = referenceReading(copy);
        if (!result.ok) return;
        expect(reference).not.toBe('unreadable');
        const { question, hasEdns, udpPayloadSize, dnssecOk } = result.query;
        expect({ name: question.name, hasEdns, udpPayloadSize, dnssecOk }).toEqual(reference);
      }),
      { numRuns: 5000 },
    );
  });

  it('reject a name of 254 characters (256 octets on the wire) and accept one of 253', () => {
    // 63+1+63+1+63+1+61 = 253 characters; one more in the last label makes 254
    const ok = rawQuery([63, ...Array(63).fill(0x61), 63, ...Array(63).fill(0x61), 63, ...Array(63).fill(0x61), 61, ...Array(61).fill(0x62), 0, 0, 1, 0, 1]);
    const tooLong = rawQuery([63, ...Array(63).fill(0x61), 63, ...Array(63).fill(0x61), 63, ...Array(63).fill(0x61), 62, ...Array(62).fill(0x62), 0, 0, 1, 0, 1]);
    expect(accepted(ok).question.name).toHaveLength(253);
    expect(rejected(tooLong)).toMatchObject({ reason: 'malformed', rcode: DnsRcode.FORMERR });
  });
});

describe('wire helpers', () => {
  it('follow compression pointers and report where the name ends', () => {
    // header, then "example.com" at 12, then "www" + pointer to 12 at 25
    const buf = Buffer.from([...Array<number>(12).fill(0), 7, ...Buffer.from('example'), 3, ...Buffer.from('com'), 0, 3, ...Buffer.from('WWW'), 0xc0, 12]);
    expect(readName(buf, 12)).toEqual({ name: 'example.com', end: 25 });
    expect(readName(buf, 25)).toEqual({ name: 'WWW.example.com', end: 31 });
    expect(skipName(buf, 25)).toBe(31);
    expect(() => readName(buf, 31)).toThrow(DnsWireError);
  });

  it('rewrite TTLs on a copy, leaving OPT alone and flooring at 0', () => {
    const original = response(
      [
        { type: 'A', name: 'example.com', ttl: 300, data: '192.0.2.1' },
        { type: 'A', name: 'example.com', ttl: 60, data: '192.0.2.2' },
      ],
      { edns: true },
    );
    const before = Buffer.from(original);
    const rewritten = rewriteTtls(original, 100.7);
    expect(original).toEqual(before);
    const decoded = dnsPacket.decode(rewritten);
    expect(decoded.answers!.map(ttlOf)).toEqual([200, 0]);
    const opt = decoded.additionals![0] as unknown as { flag_do: boolean; udpPayloadSize: number };
    expect(opt).toMatchObject({ flag_do: true, udpPayloadSize: 1232 });
    expect(minTtl(original)).toBe(60);
    expect(minTtl(original, 'authority')).toBeUndefined();
  });

  it('read id, rcode, TC and the question key of a response', () => {
    const buf = response([], { rcode: DnsRcode.NXDOMAIN, tc: true });
    setId(buf, 0xabcd);
    expect(buf.readUInt16BE(0)).toBe(0xabcd);
    expect(getRcode(buf)).toBe(DnsRcode.NXDOMAIN);
    expect(isTruncated(buf)).toBe(true);
    expect(isTruncated(response([]))).toBe(false);
    expect(responseQuestionKey(buf)).toBe(accepted(query({ name: 'example.com' })).key);
    expect(responseQuestionKey(buf.subarray(0, 20))).toBeUndefined();
  });

  it('visit records in section order with their TTL offsets', () => {
    const buf = dnsPacket.encode({
      type: 'response',
      questions: [{ type: 'A', name: 'a.b' }],
      answers: [{ type: 'A', name: 'a.b', ttl: 10, data: '192.0.2.1' }],
      authorities: [{ type: 'NS', name: 'b', ttl: 20, data: 'ns.b' }],
      additionals: [{ type: 'A', name: 'ns.b', ttl: 30, data: '192.0.2.9' }],
    });
    const seen: [string, number, number][] = [];
    const end = forEachRecord(buf, (r) => void seen.push([r.section, r.ttl, buf.readUInt32BE(r.ttlOffset)]));
    expect(seen).toEqual([['answer', 10, 10], ['authority', 20, 20], ['additional', 30, 30]]);
    expect(end).toBe(buf.length);
  });

  it('throw nothing but DnsWireError on arbitrary bytes', () => {
    const helpers: ((b: Uint8Array) => unknown)[] = [
      (b) => readName(b, 12),
      (b) => skipName(b, 12),
      skipQuestions,
      (b) => forEachRecord(b, () => undefined),
      (b) => rewriteTtls(b, 5),
      minTtl,
      getRcode,
      isTruncated,
      (b) => setId(b, 1),
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const helper of helpers) {
          try {
            helper(bytes);
          } catch (err) {
            if (!(err instanceof DnsWireError)) throw err;
          }
        }
        responseQuestionKey(bytes); // documented as total
        truncateForUdp(bytes, 20);
        buildErrorResponse({ id: 1, raw: bytes }, DnsRcode.FORMERR);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('answers', () => {
  it('build error responses that echo the question, RD, and EDNS', () => {
    const q = accepted(query({ id: 77, name: 'Mixed.Case', edns: { size: 4096, do: true } }));
    const decoded = dnsPacket.decode(buildErrorResponse(q, DnsRcode.SERVFAIL));
    expect(decoded.id).toBe(77);
    expect(rcodeOf(buildErrorResponse(q, DnsRcode.SERVFAIL))).toBe('SERVFAIL');
    expect(decoded.flag_qr && decoded.flag_rd && decoded.flag_ra).toBe(true);
    expect(decoded.questions).toEqual([{ name: 'Mixed.Case', type: 'A', class: 'IN' }]);
    expect(decoded.additionals).toMatchObject([{ type: 'OPT', udpPayloadSize: 1232, flag_do: true }]);
  });

  it('build error responses for unparseable queries with the header only', () => {
    const rejection = rejected(rawQuery([0xc0, 12, 0, 1, 0, 1]));
    const decoded = dnsPacket.decode(buildErrorResponse({ id: rejection.id!, raw: rawQuery([0xc0, 12, 0, 1, 0, 1]) }, rejection.rcode!));
    expect(decoded).toMatchObject({ id: 7, rcode: 'FORMERR', questions: [], additionals: [] });
    expect(dnsPacket.decode(buildErrorResponse({ id: 8 }, DnsRcode.REFUSED))).toMatchObject({ id: 8, rcode: 'REFUSED' });
  });

  it('build local A, PTR and negative answers', () => {
    const q = accepted(query({ name: 'VM1.lan' }));
    const a = dnsPacket.decode(buildLocalAnswer(q, [{ type: DnsType.A, ttl: 0, data: '10.10.0.5' }], { authoritative: true }));
    expect(a).toMatchObject({ id: 0x1234, flag_aa: true, flag_ra: true, rcode: 'NOERROR' });
    expect(a.answers).toMatchObject([{ name: 'VM1.lan', type: 'A', ttl: 0, data: '10.10.0.5' }]);

    const ptrQuery = accepted(query({ name: '5.0.10.10.in-addr.arpa', type: 'PTR' }));
    const ptr = dnsPacket.decode(buildLocalAnswer(ptrQuery, [{ type: DnsType.PTR, ttl: 0, data: 'vm1.lan' }], { authoritative: true }));
    expect(ptr.answers).toMatchObject([{ name: '5.0.10.10.in-addr.arpa', type: 'PTR', data: 'vm1.lan' }]);

    const soa = { zone: 'lan', ttl: 60, mname: 'gateway.lan', rname: 'hostmaster.lan', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 30 };
    const nx = dnsPacket.decode(buildLocalAnswer(q, [], { authoritative: true, rcode: DnsRcode.NXDOMAIN, soa }));
    expect(nx).toMatchObject({ rcode: 'NXDOMAIN', answers: [] });
    expect(nx.authorities).toMatchObject([{ name: 'lan', type: 'SOA', ttl: 60, data: { mname: 'gateway.lan', minimum: 30 } }]);
  });

  it('truncate oversize responses to header + question + OPT with TC set', () => {
    const txt = Array.from({ length: 8 }, () => 'x'.repeat(200));
    const big = dnsPacket.encode({
      type: 'response',
      id: 5,
      questions: [{ type: 'TXT', name: 'big.example' }],
      answers: [{ type: 'TXT', name: 'big.example', ttl: 60, data: txt }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer],
    });
    expect(truncateForUdp(big, big.length)).toEqual(big);
    const cut = truncateForUdp(big, 512);
    expect(cut.length).toBeLessThanOrEqual(512);
    const decoded = dnsPacket.decode(cut);
    expect(decoded).toMatchObject({ id: 5, flag_tc: true, answers: [], questions: [{ name: 'big.example', type: 'TXT' }] });
    expect(decoded.additionals).toMatchObject([{ type: 'OPT', udpPayloadSize: 4096, flag_do: true }]);
  });
});
