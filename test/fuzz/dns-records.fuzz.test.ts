/**
 * Property tests of the custom-record path (issue 15): the spec parsers never throw and say why they refuse; what they
 * accept formats back to text that parses to the same record; and random questions against a random record set are
 * always answered with a message dig can decode, with NXDOMAIN/NODATA consistent with the set.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { buildLocalAnswer } from '../../src/dns/answers.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { resolveLocally } from '../../src/dns/local-resolver.js';
import { parseQuery } from '../../src/dns/query.js';
import { parseRecordSettings, checkRecordSet } from '../../src/dns/record-config.js';
import { formatRecordSpec, parseRecordSpec, RECORD_KINDS, type RecordKind } from '../../src/dns/record-specs.js';
import { buildRecordZone } from '../../src/dns/record-zone.js';
import { DnsRcode, DnsType } from '../../src/dns/types.js';
import { parseCidr } from '../../src/net/ipv4.js';

const { address: gateway, subnet } = parseCidr('10.10.0.1/24')!;

const label = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,8}$/).filter((l) => !l.endsWith('-'));
const LABELS = ['api', 'etcd', 'www', 'apps', 'x', 'ocp', 'mail'];
const SUFFIXES = ['ocp.lab', 'lab', 'vm', 'apps.ocp.lab', 'example.org'];
/** names drawn from a small alphabet so records, queries and chains meet often */
const smallName = fc.tuple(fc.constantFrom(...LABELS), fc.constantFrom(...SUFFIXES)).map(([l, s]) => `${l}.${s}`);
const anyName = fc.oneof(smallName, fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.')));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const ipv6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
const txt = fc.string({ maxLength: 40 }).filter((t) => !/[\r\n]/.test(t));

/** Valid-looking spec text of each kind (the generators may still produce something the parser refuses). */
const specText: Record<RecordKind, fc.Arbitrary<string>> = {
  hostRecord: fc.tuple(fc.array(smallName, { minLength: 1, maxLength: 3 }), fc.option(ipv4, { nil: undefined }), fc.option(ipv6, { nil: undefined }), fc.option(fc.nat(100_000), { nil: undefined }))
    .map(([names, v4, v6, ttl]) => [...names, ...(v4 ? [v4] : []), ...(v6 ? [v6] : []), ...(ttl !== undefined ? [String(ttl)] : [])].join(',')),
  cname: fc.tuple(fc.array(smallName, { minLength: 1, maxLength: 2 }), anyName).map(([aliases, target]) => [...aliases, target].join(',')),
  srvHost: fc.tuple(fc.constantFrom('_etcd-server-ssl._tcp', '_ldap._udp'), fc.constantFrom('', '.ocp.lab'), fc.option(smallName, { nil: undefined }), fc.nat(70_000), fc.nat(10), fc.nat(10))
    .map(([service, zone, target, port, prio, weight]) => (target ? `${service}${zone},${target},${port},${prio},${weight}` : `${service}${zone}`)),
  txtRecord: fc.tuple(smallName, fc.array(txt, { maxLength: 3 })).map(([name, texts]) => [name, ...texts.map((t) => `"${t.replace(/(["\\])/g, '\\$1')}"`)].join(',')),
  mxHost: fc.tuple(smallName, fc.option(smallName, { nil: undefined }), fc.option(fc.nat(70_000), { nil: undefined }))
    .map(([name, target, pref]) => [name, ...(target ? [target] : []), ...(pref !== undefined ? [String(pref)] : [])].join(',')),
  ptrRecord: fc.tuple(anyName, fc.option(smallName, { nil: undefined })).map(([name, target]) => (target ? `${name},${target}` : name)),
  address: fc.tuple(fc.array(smallName, { minLength: 1, maxLength: 2 }), fc.oneof(fc.constant(''), fc.constant('#'), ipv4, ipv6)).map(([ds, a]) => `/${ds.join('/')}/${a}`),
};

describe('record spec parsers (property)', () => {
  it('never throw on any text, and refuse with a non-empty reason', () => {
    fc.assert(
      fc.property(fc.constantFrom(...RECORD_KINDS), fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), fc.constantFrom(',', '/', '//', '"', ',,,', '/a.b/', '::', '0,0')), (kind, text) => {
        const parsed = parseRecordSpec(kind, text, { domain: 'vm' });
        if (!parsed.ok) expect(parsed.error.length).toBeGreaterThan(0);
      }),
      { numRuns: 5000 },
    );
  });

  it('round trip: whatever parses formats to text that parses to the same record', () => {
    for (const kind of RECORD_KINDS) {
      fc.assert(
        fc.property(specText[kind], (text) => {
          const parsed = parseRecordSpec(kind, text, { domain: 'vm' });
          if (!parsed.ok) return;
          const again = parseRecordSpec(kind, formatRecordSpec(parsed.spec), { domain: 'vm' });
          expect(again).toEqual(parsed);
        }),
        { numRuns: 500 },
      );
    }
  });

  it('a config of random specs yields problems or a zone, never an exception', () => {
    const settings = fc.record(Object.fromEntries(RECORD_KINDS.map((k) => [k, fc.array(fc.oneof(specText[k], fc.string({ maxLength: 30 })), { maxLength: 4 })])) as Record<RecordKind, fc.Arbitrary<string[]>>);
    fc.assert(
      fc.property(settings, (s) => {
        const parsed = parseRecordSettings(s, { domain: 'vm' });
        const checked = checkRecordSet(parsed.specs, { domain: 'vm', ttl: 0 });
        for (const p of [...parsed.problems, ...checked.problems]) expect(p).toMatch(/^(hostRecord|cname|srvHost|txtRecord|mxHost|ptrRecord|address)\.\d+: /);
      }),
      { numRuns: 500 },
    );
  });
});

describe('answer path (property): random questions against a random record set', () => {
  const QTYPES = ['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'SRV', 'PTR', 'NS', 'SOA', 'ANY', 'HTTPS'] as const;
  const recordSet = fc.record(Object.fromEntries(RECORD_KINDS.map((k) => [k, fc.array(specText[k], { maxLength: 5 })])) as Record<RecordKind, fc.Arbitrary<string[]>>);

  it('always yields a decodable answer; NXDOMAIN only under an address=/d/ rule or the domain; an owner name is never NXDOMAIN', () => {
    fc.assert(
      fc.property(recordSet, fc.oneof(smallName, anyName, fc.constant('_tcp.ocp.lab')), fc.constantFrom(...QTYPES), fc.boolean(), (settings, name, qtype, upper) => {
        const parsed = parseRecordSettings(settings, { domain: 'vm' });
        const { zone, errors } = buildRecordZone(parsed.specs, { domain: 'vm', subnet, ttl: 5, serverName: 'gateway.vm' });
        fc.pre(errors.length === 0);
        const names = new LocalNames({ domain: 'vm', subnet, gatewayAddress: gateway });
        const raw = dnsPacket.encode({ id: 1, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: upper ? name.toUpperCase() : name, type: qtype as 'A' }] });
        const query = parseQuery(raw);
        if (!query.ok) return;
        const found = resolveLocally(query.query.question, zone, names);
        if (!found) {
          expect(zone.node(name)).toBeUndefined();
          return;
        }
        const wire = buildLocalAnswer(query.query, found.records, { authoritative: true, rcode: found.rcode, ...(found.soa ? { soa: found.soa } : {}) });
        const decoded = dnsPacket.decode(wire) as unknown as { rcode: string; answers: { type: string }[]; authorities: { type: string }[] };
        expect(decoded.answers).toHaveLength(found.records.length);
        if (found.rcode === DnsRcode.NXDOMAIN) {
          expect(zone.wildcardFor(name)?.nxdomain || name === 'vm' || name.endsWith('.vm') || found.records[0]?.type === DnsType.CNAME).toBe(true);
        }
        const node = zone.node(name);
        if (node && !node.cname) expect(found.rcode).toBe(DnsRcode.NOERROR);
        if (found.records.length === 0 && found.rcode === DnsRcode.NOERROR && node) expect(decoded.authorities.map((a) => a.type)).toEqual(['SOA']);
      }),
      { numRuns: 1000 },
    );
  });
});
