/**
 * Issue 15: the --server/--local spec parser and the domain-route lookup (dns/domain-routes.ts), with property tests:
 * the parser never throws anything but an Error with a message on any string, round-trips what it accepts, and the
 * lookup always returns the route of the longest configured suffix on label boundaries (checked against a naive
 * reference).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DomainRouteTable, formatUpstreamAddress, parseServerSpec, parseUpstreamAddress, planRoutes, type ServerSpec,
} from '../../src/dns/domain-routes.js';

describe('parseUpstreamAddress', () => {
  it.each([
    ['10.0.0.53', '10.0.0.53', 53],
    ['192.0.2.53#5353', '192.0.2.53', 5353],
    ['192.0.2.53:5353', '192.0.2.53', 5353],
    ['[2001:db8::53]:53', '2001:db8::53', 53],
    ['[2001:db8::53]:5353', '2001:db8::53', 5353],
    ['[2001:db8::53]', '2001:db8::53', 53],
    ['2001:db8::53#53', '2001:db8::53', 53],
    ['2001:DB8:0::53', '2001:db8::53', 53],
    ['2001:db8::53', '2001:db8::53', 53],
  ])('%s → %s port %i', (text, address, port) => {
    expect(parseUpstreamAddress(text)).toEqual({ address, port });
  });

  it.each([
    ['10.0.0.300', /not an IP address/],
    ['corp.example', /not an IP address/],
    ['10.0.0.53#0', /port "0" is not in 1-65535/],
    ['10.0.0.53#65536', /not in 1-65535/],
    ['10.0.0.53#', /not in 1-65535/],
    ['[2001:db8::53]:x', /not an IP address|port/],
    ['10.0.0.53@eth0', /@source-address/],
    ['10.0.0.53#53@eth0', /not in 1-65535|@source/],
  ])('rejects %s', (text, message) => {
    expect(() => parseUpstreamAddress(text)).toThrow(message);
  });

  it('formats labels as the upstream client does', () => {
    expect(formatUpstreamAddress(parseUpstreamAddress('2001:db8::53#5353'))).toBe('[2001:db8::53]:5353');
    expect(formatUpstreamAddress(parseUpstreamAddress('192.0.2.1'))).toBe('192.0.2.1:53');
  });
});

describe('parseServerSpec', () => {
  it('reads every dnsmasq form', () => {
    expect(parseServerSpec('/corp.example/10.0.0.53')).toEqual({ kind: 'forward', domains: ['corp.example'], server: { address: '10.0.0.53', port: 53 } });
    expect(parseServerSpec('/a.example/B.example./10.0.0.53#5353')).toEqual({
      kind: 'forward', domains: ['a.example', 'b.example'], server: { address: '10.0.0.53', port: 5353 },
    });
    expect(parseServerSpec('/0.0.10.in-addr.arpa/10.0.0.53')).toMatchObject({ kind: 'forward', domains: ['0.0.10.in-addr.arpa'] });
    expect(parseServerSpec('/inner.corp.example/#')).toEqual({ kind: 'default', domains: ['inner.corp.example'] });
    expect(parseServerSpec('/lab/')).toEqual({ kind: 'local', domains: ['lab'] });
    expect(parseServerSpec('/lab/', 'local')).toEqual({ kind: 'local', domains: ['lab'] });
    expect(parseServerSpec('//10.0.0.53')).toEqual({ kind: 'forward', domains: [''], server: { address: '10.0.0.53', port: 53 } });
    expect(parseServerSpec('/#/10.0.0.53')).toEqual({ kind: 'upstream', server: { address: '10.0.0.53', port: 53 } });
    expect(parseServerSpec('10.0.0.53#5353')).toEqual({ kind: 'upstream', server: { address: '10.0.0.53', port: 5353 } });
    expect(parseServerSpec('/corp.example/[2001:db8::53]:53')).toMatchObject({ server: { address: '2001:db8::53', port: 53 } });
    expect(parseServerSpec('/_msdcs.corp.example/10.0.0.53')).toMatchObject({ domains: ['_msdcs.corp.example'] });
  });

  it.each([
    ['/corp.example', /closing \/ is missing/],
    ['/*.corp.example/10.0.0.53', /wildcard/],
    ['/corp..example/10.0.0.53', /not a domain name/],
    ['/-corp.example/10.0.0.53', /not a domain name/],
    ['/corp.example/not-an-ip', /not an IP address/],
    ['/corp.example/10.0.0.53@eth0', /@source-address/],
    ['/#/a.example/10.0.0.53', /cannot be combined/],
    ['/#/', /needs a server/],
    ['', /empty server/],
  ])('rejects %s', (text, message) => {
    expect(() => parseServerSpec(text)).toThrow(message);
  });

  it('--local without a domain is not an upstream in disguise', () => {
    expect(() => parseServerSpec('10.0.0.53', 'local')).toThrow(/expected \/DOMAIN\//);
  });

  it('never throws anything but an Error with a message, on any string (property)', () => {
    const chars = fc.constantFrom(...'/#.:[]@*-_ abcAZ0123456789%'.split(''));
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: chars, maxLength: 40 })), (text) => {
        try {
          const spec = parseServerSpec(text);
          expect(['upstream', 'forward', 'local', 'default']).toContain(spec.kind);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips generated specs (property)', () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
    const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
    const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
    const port = fc.integer({ min: 1, max: 65535 });
    fc.assert(
      fc.property(fc.uniqueArray(domain, { minLength: 1, maxLength: 3 }), ipv4, fc.option(port, { nil: undefined }), (domains, ip, p) => {
        const spec = parseServerSpec(`/${domains.join('/')}/${ip}${p === undefined ? '' : `#${p}`}`);
        expect(spec).toEqual({ kind: 'forward', domains, server: { address: ip, port: p ?? 53 } });
      }),
      { numRuns: 1000 },
    );
  });
});

describe('planRoutes', () => {
  it('merges servers per domain and keeps plain servers apart', () => {
    const specs: ServerSpec[] = ['/corp.example/10.0.0.53', '/corp.example/10.0.0.54', '/corp.example/10.0.0.53', '198.51.100.1', '/lab/'].map((t) => parseServerSpec(t));
    const { routes, upstreams } = planRoutes(specs);
    expect(upstreams).toEqual([{ address: '198.51.100.1', port: 53 }]);
    expect(routes).toEqual([
      { domain: 'corp.example', kind: 'forward', servers: [{ address: '10.0.0.53', port: 53 }, { address: '10.0.0.54', port: 53 }], group: undefined },
      { domain: 'lab', kind: 'local', servers: [], group: undefined },
    ]);
  });

  it('refuses a domain that is both local and forwarded, naming both entries', () => {
    const specs = ['/lab/10.0.0.53', '/lab/'].map((t) => parseServerSpec(t));
    expect(() => planRoutes(specs, ['server.0', 'local.0'])).toThrow(/lab is forwarded in server.0 and local \(answered here only\) in local.0/);
  });
});

describe('DomainRouteTable.lookup', () => {
  const table = (...specs: string[]) => new DomainRouteTable(planRoutes(specs.map((s) => parseServerSpec(s))).routes);

  it('matches the domain and names below it, on label boundaries only', () => {
    const t = table('/corp.example/10.0.0.53');
    expect(t.lookup('corp.example')?.domain).toBe('corp.example');
    expect(t.lookup('a.b.corp.example')?.domain).toBe('corp.example');
    expect(t.lookup('evilcorp.example')).toBeUndefined();
    expect(t.lookup('corp.example.evil')).toBeUndefined();
    expect(t.lookup('example')).toBeUndefined();
    // a '.' inside a label is \046 in presentation form (readName): one label, not two
    expect(t.lookup('x.corp\\046example')).toBeUndefined();
    expect(t.lookup('')).toBeUndefined();
  });

  it('takes the most specific domain, whatever the order given', () => {
    for (const t of [table('/example/10.0.0.1', '/corp.example/10.0.0.2', '/in.corp.example/#'), table('/in.corp.example/#', '/corp.example/10.0.0.2', '/example/10.0.0.1')]) {
      expect(t.lookup('www.example')?.servers).toEqual([{ address: '10.0.0.1', port: 53 }]);
      expect(t.lookup('www.corp.example')?.servers).toEqual([{ address: '10.0.0.2', port: 53 }]);
      expect(t.lookup('www.in.corp.example')?.kind).toBe('default');
    }
  });

  it('routes unqualified names with //, and a route named like the single label first', () => {
    const t = table('//10.0.0.9', '/lab/');
    expect(t.lookup('printer')?.servers).toEqual([{ address: '10.0.0.9', port: 53 }]);
    expect(t.lookup('lab')?.kind).toBe('local');
    expect(t.lookup('printer.other')).toBeUndefined();
  });

  it('is the longest matching suffix (property, against a naive reference)', () => {
    const label = fc.constantFrom('a', 'b', 'c', 'corp', 'x-1', '_tcp');
    const name = fc.array(label, { minLength: 1, maxLength: 6 }).map((l) => l.join('.'));
    fc.assert(
      fc.property(fc.uniqueArray(name, { maxLength: 12 }), fc.array(name, { minLength: 1, maxLength: 20 }), (domains, names) => {
        const t = table(...domains.map((d, i) => `/${d}/10.0.${i >> 8}.${i & 255}`));
        for (const n of names) {
          const matches = domains.filter((d) => n === d || n.endsWith(`.${d}`));
          const best = matches.sort((p, q) => q.length - p.length)[0];
          expect(t.lookup(n)?.domain).toBe(best);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('describes routes for natd status', () => {
    expect(table('/corp.example/[2001:db8::53]:5353', '//10.0.0.9').describe()).toEqual([
      { domain: 'corp.example', kind: 'forward', servers: ['[2001:db8::53]:5353'] },
      { domain: '(unqualified)', kind: 'forward', servers: ['10.0.0.9:53'] },
    ]);
  });
});
