/**
 * issue 18: the parser builds the cache key flat (dns/wire.ts lastPlainNameKey) instead of concatenating it per query.
 * It must be exactly the key cacheKey() builds from the parsed fields, and query.key exactly responseQuestionKey's
 * format for the reply to the same question: otherwise hits would miss and upstream replies would not match.
 */
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cacheKey } from '../../src/dns/cache.js';
import { parseQuery } from '../../src/dns/query.js';
import { questionKey, responseQuestionKey } from '../../src/dns/wire.js';

const CD = 0x0010;
const label = fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/);
const name = fc.array(label, { minLength: 1, maxLength: 5 }).map((labels) => labels.join('.'));
/** dns-packet takes type names: [name, code] */
const type = fc.constantFrom<[string, number]>(['A', 1], ['NS', 2], ['PTR', 12], ['MX', 15], ['TXT', 16], ['AAAA', 28], ['SRV', 33], ['CAA', 257]);

describe('the flat cache key (issue 18)', () => {
  it('equals cacheKey of the parsed fields and the reply\'s question key, for any case, type, EDNS, DO and CD', () => {
    fc.assert(fc.property(name, type, fc.boolean(), fc.boolean(), fc.boolean(), (qname, [typeName, qtype], edns, dnssecOk, cd) => {
      const raw = dnsPacket.encode({
        id: 7, type: 'query', flags: dnsPacket.RECURSION_DESIRED | (cd ? CD : 0),
        questions: [{ name: qname, type: typeName as 'A' }],
        additionals: edns ? [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: dnssecOk ? dnsPacket.DNSSEC_OK : 0, options: [] } as never] : [],
      });
      const parsed = parseQuery(raw);
      if (!parsed.ok) throw new Error(`not parsed: ${JSON.stringify(parsed.rejected)}`);
      const { query } = parsed;
      expect(query.cacheKey).toBeDefined(); // a plainly written name: the parser built it
      expect(query.key).toBe(questionKey(qname.toLowerCase(), qtype, 1));
      const flavour = `${edns ? (dnssecOk ? 'd' : 'e') : '-'}${cd ? 'c' : '-'}`;
      expect(cacheKey(query)).toBe(`${query.key}|${flavour}`);
      expect(cacheKey({ ...query, cacheKey: undefined })).toBe(cacheKey(query)); // the concatenating fallback agrees
      const reply = dnsPacket.encode({ id: 7, type: 'response', flags: 0, questions: [{ name: qname, type: typeName as 'A' }] });
      expect(responseQuestionKey(reply)).toBe(query.key);
    }), { numRuns: 500 });
  });

  it('is rebuilt for every query: a second parse does not leave the first query\'s key stale', () => {
    const parse = (n: string) => {
      const parsed = parseQuery(dnsPacket.encode({ id: 1, type: 'query', questions: [{ name: n, type: 'A' }] }));
      if (!parsed.ok) throw new Error('not parsed');
      return parsed.query;
    };
    const long = parse('a-much-longer-name.example.test');
    const short = parse('b.test');
    expect(cacheKey(long)).toBe('a-much-longer-name.example.test|1|1|--');
    expect(cacheKey(short)).toBe('b.test|1|1|--');
  });
});
