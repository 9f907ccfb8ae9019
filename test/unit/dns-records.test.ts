import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { buildLocalAnswer } from '../../src/dns/answers.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { resolveLocally } from '../../src/dns/local-resolver.js';
import { checkRecordSet, parseRecordSettings, type RecordSettings } from '../../src/dns/record-config.js';
import { canonicalIpv6, formatRecordSpec, ipv6ReverseName, ipv6Bytes, parseRecordSpec } from '../../src/dns/record-specs.js';
import { buildRecordZone, type RecordZone } from '../../src/dns/record-zone.js';
import { parseQuery } from '../../src/dns/query.js';
import { DnsRcode, DnsType, type DnsQuestion } from '../../src/dns/types.js';
import { parseCidr, reverseName } from '../../src/net/ipv4.js';
import { resolveConfig } from '../../src/config.js';
import { ip } from '../support/addresses.js';

const { address: gateway, subnet } = parseCidr('10.10.0.1/24')!;
const q = (name: string, type: number = DnsType.A): DnsQuestion => ({ name, type, class: 1 });

function zoneOf(settings: RecordSettings, domain = 'vm'): RecordZone {
  const parsed = parseRecordSettings(settings, { domain });
  expect(parsed.problems).toEqual([]);
  const { zone, errors } = buildRecordZone(parsed.specs, { domain, subnet, ttl: 7, serverName: `gateway.${domain}`, serial: 42 });
  expect(errors).toEqual([]);
  return zone;
}

function namesWith(domain = 'vm'): LocalNames {
  const names = new LocalNames({ domain, subnet, gatewayAddress: gateway, ttlSeconds: 7 });
  names.setHost('web', ip('10.10.0.20'), 'lease', { clientId: 'c1', mac: '52:54:00:00:00:20' });
  return names;
}

/** The OpenShift example of the README, one config. */
const OPENSHIFT: RecordSettings = {
  hostRecord: ['api.ocp.lab,api-int.ocp.lab,10.10.0.5', 'etcd-0.ocp.lab,10.10.0.11', 'etcd-1.ocp.lab,10.10.0.12', 'etcd-2.ocp.lab,10.10.0.13'],
  srvHost: ['_etcd-server-ssl._tcp.ocp.lab,etcd-0.ocp.lab,2380,0,10', '_etcd-server-ssl._tcp.ocp.lab,etcd-1.ocp.lab,2380,0,10', '_etcd-server-ssl._tcp.ocp.lab,etcd-2.ocp.lab,2380,0,10'],
  address: ['/apps.ocp.lab/10.10.0.50'],
};

describe('record specs: dnsmasq syntax', () => {
  it('reads host-record with several names, both families and a TTL', () => {
    expect(parseRecordSpec('hostRecord', 'API.ocp.lab.,api-int.ocp.lab,10.10.0.5,FD00::0005,300')).toEqual({
      ok: true, spec: { kind: 'hostRecord', names: ['api.ocp.lab', 'api-int.ocp.lab'], ipv4: '10.10.0.5', ipv6: 'fd00::5', ttl: 300 },
    });
    expect(parseRecordSpec('hostRecord', 'v6only.lab,::1')).toMatchObject({ ok: true, spec: { ipv6: '::1' } });
  });

  it('reads cname with several aliases, srv-host defaults, quoted TXT texts with commas, mx-host forms, ptr-record', () => {
    expect(parseRecordSpec('cname', 'www.lab,ftp.lab,web.lab,60')).toEqual({ ok: true, spec: { kind: 'cname', aliases: ['www.lab', 'ftp.lab'], target: 'web.lab', ttl: 60 } });
    expect(parseRecordSpec('srvHost', '_ldap._tcp', { domain: 'vm' })).toEqual({ ok: true, spec: { kind: 'srvHost', name: '_ldap._tcp.vm', port: 1, priority: 0, weight: 0 } });
    expect(parseRecordSpec('srvHost', '_ldap._tcp.lab,ldap.lab,389,10')).toMatchObject({ ok: true, spec: { target: 'ldap.lab', port: 389, priority: 10, weight: 0 } });
    expect(parseRecordSpec('txtRecord', 'lab,"v=spf1 a, mx -all","two \\"quoted\\""')).toEqual({ ok: true, spec: { kind: 'txtRecord', name: 'lab', texts: ['v=spf1 a, mx -all', 'two "quoted"'] } });
    expect(parseRecordSpec('mxHost', 'lab')).toEqual({ ok: true, spec: { kind: 'mxHost', name: 'lab', preference: 1 } });
    expect(parseRecordSpec('mxHost', 'lab,10')).toEqual({ ok: true, spec: { kind: 'mxHost', name: 'lab', preference: 10 } });
    expect(parseRecordSpec('mxHost', 'lab,mail.lab,5')).toEqual({ ok: true, spec: { kind: 'mxHost', name: 'lab', target: 'mail.lab', preference: 5 } });
    expect(parseRecordSpec('ptrRecord', '9.0.10.10.in-addr.arpa,printer.lab')).toEqual({ ok: true, spec: { kind: 'ptrRecord', name: '9.0.10.10.in-addr.arpa', target: 'printer.lab' } });
  });

  it('reads address= with several domains, IPv6, # and no address', () => {
    expect(parseRecordSpec('address', '/apps.ocp.lab/10.10.0.50')).toEqual({ ok: true, spec: { kind: 'address', domains: ['apps.ocp.lab'], address: '10.10.0.50' } });
    expect(parseRecordSpec('address', '/a.lab/b.lab/fd00::50')).toEqual({ ok: true, spec: { kind: 'address', domains: ['a.lab', 'b.lab'], address: 'fd00::50' } });
    expect(parseRecordSpec('address', '/ads.example.com/')).toEqual({ ok: true, spec: { kind: 'address', domains: ['ads.example.com'] } });
    expect(parseRecordSpec('address', '/ads.example.com/#')).toMatchObject({ ok: true, spec: { address: '#' } });
  });

  it.each([
    ['hostRecord', 'api.lab', /no address/],
    ['hostRecord', '10.0.0.1', /no name/],
    ['hostRecord', 'a.lab,10.0.0.1,10.0.0.2', /second IPv4/],
    ['hostRecord', 'bad name,10.0.0.1', /not a DNS name/],
    ['cname', 'only.lab', /alias/],
    ['cname', 'a.lab,a.lab', /alias of itself/],
    ['srvHost', 'ldap.lab,x.lab', /_service\._proto/],
    ['srvHost', '_ldap._tcp.lab,x.lab,70000', /port/],
    ['txtRecord', 'lab,"unterminated', /closing/],
    ['txtRecord', `lab,"${'x'.repeat(256)}"`, /255 bytes/],
    ['mxHost', 'lab,a.lab,b.lab', /expected/],
    ['address', 'apps.lab/1.2.3.4', /expected \/domain/],
    ['address', '/#/1.2.3.4', /every name/],
    ['address', '/lab/1.2.3.4', /single label/],
    ['address', '/apps.lab/1.2.3', /not an IPv4 or IPv6/],
  ] as const)('rejects %s=%s with a clear reason', (kind, text, reason) => {
    const parsed = parseRecordSpec(kind, text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(reason);
  });

  it('formats back what it reads', () => {
    for (const [kind, text] of [['hostRecord', 'a.lab,b.lab,10.0.0.1,fd00::1,30'], ['cname', 'x.lab,y.lab'], ['srvHost', '_x._tcp.lab,t.lab,80,1,2'], ['txtRecord', 'lab,"a,b","c\\"d"'], ['mxHost', 'lab,mx.lab,5'], ['ptrRecord', 'p.lab'], ['address', '/a.lab/b.lab/']] as const) {
      const parsed = parseRecordSpec(kind, text);
      expect(parsed.ok).toBe(true);
      if (parsed.ok) expect(formatRecordSpec(parsed.spec)).toBe(text);
    }
  });

  it('handles IPv6 text and reverse names', () => {
    expect(canonicalIpv6('2001:0DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIpv6('::ffff:10.0.0.1')).toBe('::ffff:a00:1');
    expect(ipv6Bytes('1:2:3:4:5:6:7:8').toString('hex')).toBe('00010002000300040005000600070008');
    expect(ipv6ReverseName(ipv6Bytes('2001:db8::1'))).toBe(`1.0.0.0.${'0.'.repeat(20)}8.b.d.0.1.0.0.2.ip6.arpa`);
  });
});

describe('record set checks (config errors name the field)', () => {
  const problems = (settings: RecordSettings, reserved: { name: string; field: string }[] = []) => {
    const parsed = parseRecordSettings(settings, { domain: 'vm' });
    return [...parsed.problems, ...checkRecordSet(parsed.specs, { domain: 'vm', ttl: 0, reservedNames: reserved }).problems];
  };

  it('names the field of a bad spec', () => {
    expect(problems({ hostRecord: ['ok.lab,10.0.0.1', 'nope.lab'] })).toEqual([expect.stringMatching(/^hostRecord\.1: .*no address.*host-record syntax/)]);
  });

  it('rejects a CNAME beside other data, two CNAMEs on a name, loops, and an address rule both NXDOMAIN and answered', () => {
    expect(problems({ hostRecord: ['www.lab,10.0.0.1'], cname: ['www.lab,web.lab'] })).toEqual([expect.stringMatching(/^cname\.0: "www\.lab" also has records \(hostRecord\.0\)/)]);
    expect(problems({ cname: ['a.lab,b.lab', 'a.lab,c.lab'] })).toEqual([expect.stringMatching(/^cname\.1: "a\.lab" is already an alias/)]);
    expect(problems({ cname: ['a.lab,b.lab', 'b.lab,a.lab'] })).toEqual([expect.stringMatching(/CNAME loop a\.lab → b\.lab → a\.lab/)]);
    expect(problems({ address: ['/x.lab/', '/x.lab/1.2.3.4'] })).toEqual([expect.stringMatching(/^address\.1: \/x\.lab\/ is both NXDOMAIN/)]);
  });

  it("rejects natd's own name and a reservation name that is also a record name", () => {
    expect(problems({ hostRecord: ['gateway.vm,10.0.0.9'] })).toEqual([expect.stringMatching(/^hostRecord\.0: "gateway\.vm" is natd's own name/)]);
    expect(problems({ hostRecord: ['db.vm,10.10.0.7'] }, [{ name: 'db', field: 'reservations.0.hostname' }])).toEqual([
      expect.stringMatching(/^reservations\.0\.hostname: "db" is also a DNS record name \(hostRecord\.0\)/),
    ]);
  });

  it('resolveConfig reports record problems with the field, and check-config would too', () => {
    expect(() => resolveConfig({ bridge: 'br0', domain: 'vm', hostRecord: ['db.vm,10.10.0.7'], reservations: [{ mac: '52:54:00:00:00:07', address: '10.10.0.7', hostname: 'db' }] }))
      .toThrow(/reservations\.0\.hostname: "db" is also a DNS record name/);
    expect(() => resolveConfig({ bridge: 'br0', address: ['apps.lab/1.2.3.4'] })).toThrow(/address\.0: expected \/domain/);
    expect(() => resolveConfig({ bridge: 'br0', localTtl: -1 })).toThrow(/localTtl/);
    const config = resolveConfig({ bridge: 'br0', localTtl: 30 }, OPENSHIFT as Record<string, unknown>);
    expect(config.records).toHaveLength(8);
    expect(config.localTtl).toBe(30);
  });
});

describe('local answers from records (resolveLocally)', () => {
  const zone = zoneOf({
    ...OPENSHIFT,
    hostRecord: [...OPENSHIFT.hostRecord!, 'dual.lab,10.10.0.30,fd00::30,120', 'bare,10.10.0.31'],
    cname: ['www.lab,alias2.lab,dual.lab', 'ext.lab,example.org', 'hop1.lab,www.lab', 'towild.lab,x.apps.ocp.lab', 'tonx.lab,gone.nx.lab', 'tolease.lab,web.vm'],
    txtRecord: ['dual.lab,"hello","world"', 'web.vm,"v=1"'],
    mxHost: ['lab,mail.lab,10', 'lab'],
    ptrRecord: ['_svc._tcp.lab,inst._svc._tcp.lab', 'empty.lab'],
    address: [...OPENSHIFT.address!, '/apps.ocp.lab/fd00::50', '/nx.lab/'],
  });
  const names = namesWith();
  const ask = (name: string, type: number = DnsType.A) => resolveLocally(q(name, type), zone, names);

  it('answers every record type, case-insensitively through the parsed question', () => {
    expect(ask('api.ocp.lab')?.records).toEqual([{ type: DnsType.A, ttl: 7, data: '10.10.0.5' }]);
    expect(ask('api-int.ocp.lab')?.records[0]?.data).toBe('10.10.0.5');
    expect(ask('dual.lab', DnsType.AAAA)?.records).toEqual([{ type: DnsType.AAAA, ttl: 120, data: 'fd00::30' }]);
    expect(ask('dual.lab', DnsType.TXT)?.records).toEqual([{ type: DnsType.TXT, ttl: 7, data: 'helloworld', texts: ['hello', 'world'] }]);
    expect(ask('_etcd-server-ssl._tcp.ocp.lab', DnsType.SRV)?.records.map((r) => r.data)).toEqual(['0 10 2380 etcd-0.ocp.lab', '0 10 2380 etcd-1.ocp.lab', '0 10 2380 etcd-2.ocp.lab']);
    expect(ask('lab', DnsType.MX)?.records.map((r) => r.data)).toEqual(['10 mail.lab', '1 gateway.vm']);
    expect(ask('_svc._tcp.lab', DnsType.PTR)?.records[0]?.data).toBe('inst._svc._tcp.lab');
    expect(ask(reverseName(ip('10.10.0.5')), DnsType.PTR)?.records).toEqual([{ type: DnsType.PTR, ttl: 7, data: 'api.ocp.lab' }]);
    expect(ask(ipv6ReverseName(ipv6Bytes('fd00::30')), DnsType.PTR)?.records[0]?.data).toBe('dual.lab');
    expect(ask('bare')?.records[0]?.data).toBe('10.10.0.31');
    expect(ask('bare.vm')?.records[0]?.data).toBe('10.10.0.31');
  });

  it('NODATA with the zone SOA for a name that exists with other types, and for empty non-terminals', () => {
    const nodata = ask('api.ocp.lab', DnsType.AAAA);
    expect(nodata).toMatchObject({ rcode: DnsRcode.NOERROR, records: [] });
    expect(nodata?.soa).toMatchObject({ zone: 'ocp.lab', mname: 'gateway.vm', rname: 'hostmaster.ocp.lab', ttl: 7, minimum: 7, serial: 42 });
    expect(ask('_tcp.ocp.lab', DnsType.SRV)).toMatchObject({ rcode: DnsRcode.NOERROR, records: [], soa: { zone: 'ocp.lab' } });
    expect(ask('empty.lab', DnsType.PTR)).toMatchObject({ rcode: DnsRcode.NOERROR, records: [] });
  });

  it('leaves unknown names outside its zones to the policy (undefined), as dnsmasq forwards them', () => {
    expect(ask('nothere.ocp.lab')).toBeUndefined();
    expect(ask('example.org')).toBeUndefined();
  });

  it('answers the wildcard for the domain and every name under it, A and AAAA; NODATA for other types', () => {
    for (const name of ['apps.ocp.lab', 'console-openshift-console.apps.ocp.lab', 'a.b.c.apps.ocp.lab']) {
      expect(ask(name)?.records).toEqual([{ type: DnsType.A, ttl: 7, data: '10.10.0.50' }]);
      expect(ask(name, DnsType.AAAA)?.records).toEqual([{ type: DnsType.AAAA, ttl: 7, data: 'fd00::50' }]);
    }
    expect(ask('x.apps.ocp.lab', DnsType.MX)).toMatchObject({ rcode: DnsRcode.NOERROR, records: [], soa: { zone: 'apps.ocp.lab' } });
    expect(ask('xapps.ocp.lab')).toBeUndefined();
  });

  it('picks the longest matching address rule, on label boundaries only, the same on every ask', () => {
    const nested = zoneOf({ address: ['/a.lab/10.0.0.1', '/b.a.lab/10.0.0.2', '/c.b.a.lab/'] });
    for (let round = 0; round < 2; round++) {
      expect(nested.wildcardFor('x.b.a.lab')?.domain).toBe('b.a.lab');
      expect(nested.wildcardFor('b.a.lab')?.domain).toBe('b.a.lab');
      expect(nested.wildcardFor('x.a.lab')?.domain).toBe('a.lab');
      expect(nested.wildcardFor('deep.c.b.a.lab')?.nxdomain).toBe(true);
      expect(nested.wildcardFor('xa.lab')).toBeUndefined();
      expect(nested.wildcardFor('lab')).toBeUndefined();
    }
  });

  it('keeps its per-name wildcard memo bounded when a guest asks endless unique names', () => {
    const nested = zoneOf({ address: ['/a.lab/10.0.0.1'] });
    for (let i = 0; i < 10_000; i++) expect(nested.wildcardFor(`n${i}.x${i % 7}.a.lab`)?.domain).toBe('a.lab');
    expect((nested as unknown as { wildcardMemo: Map<string, unknown> }).wildcardMemo.size).toBeLessThanOrEqual(4096);
  });

  it('address=/d/ with no address is NXDOMAIN with the SOA of d', () => {
    expect(ask('nx.lab')).toMatchObject({ rcode: DnsRcode.NXDOMAIN, records: [], soa: { zone: 'nx.lab' } });
    expect(ask('deep.down.nx.lab', DnsType.TXT)).toMatchObject({ rcode: DnsRcode.NXDOMAIN });
  });

  it('follows CNAME chains through local targets, and stops at an external target', () => {
    expect(ask('www.lab')?.records).toEqual([
      { type: DnsType.CNAME, ttl: 7, data: 'dual.lab' },
      { type: DnsType.A, ttl: 120, data: '10.10.0.30', name: 'dual.lab' },
    ]);
    expect(ask('hop1.lab', DnsType.AAAA)?.records).toEqual([
      { type: DnsType.CNAME, ttl: 7, data: 'www.lab' },
      { type: DnsType.CNAME, ttl: 7, data: 'dual.lab', name: 'www.lab' },
      { type: DnsType.AAAA, ttl: 120, data: 'fd00::30', name: 'dual.lab' },
    ]);
    expect(ask('towild.lab')?.records.at(-1)).toEqual({ type: DnsType.A, ttl: 7, data: '10.10.0.50', name: 'x.apps.ocp.lab' });
    expect(ask('tolease.lab')?.records.at(-1)).toEqual({ type: DnsType.A, ttl: 7, data: '10.10.0.20', name: 'web.vm' });
    expect(ask('ext.lab')).toEqual({ rcode: DnsRcode.NOERROR, records: [{ type: DnsType.CNAME, ttl: 7, data: 'example.org' }], authoritative: true });
    expect(ask('tonx.lab')).toMatchObject({ rcode: DnsRcode.NXDOMAIN, records: [{ type: DnsType.CNAME }] });
    expect(ask('www.lab', DnsType.CNAME)?.records).toEqual([{ type: DnsType.CNAME, ttl: 7, data: 'dual.lab' }]);
    // a chain target that exists without the type: the CNAME and NODATA
    expect(ask('www.lab', DnsType.SRV)).toMatchObject({ rcode: DnsRcode.NOERROR, records: [{ type: DnsType.CNAME }] });
  });

  it('merges records with lease/hosts names of the same owner: records for their types, the name for A', () => {
    expect(ask('web.vm', DnsType.TXT)?.records[0]?.texts).toEqual(['v=1']);
    expect(ask('web.vm')?.records).toEqual([{ type: DnsType.A, ttl: 7, data: '10.10.0.20' }]);
  });

  it("keeps natd's own names: NXDOMAIN in the domain now carries the domain's SOA", () => {
    expect(ask('gateway.vm')?.records[0]?.data).toBe('10.10.0.1');
    expect(ask('nothere.vm')).toMatchObject({ rcode: DnsRcode.NXDOMAIN, soa: { zone: 'vm' } });
    expect(ask(reverseName(ip('10.10.0.99')), DnsType.PTR)).toMatchObject({ rcode: DnsRcode.NXDOMAIN, soa: { zone: '0.10.10.in-addr.arpa' } });
  });
});

describe('buildLocalAnswer with records: wire format dig reads', () => {
  const zone = zoneOf({ ...OPENSHIFT, cname: ['www.lab,api.ocp.lab'], txtRecord: ['t.lab,"a","b"'], mxHost: ['lab,mail.lab,5'] });
  const names = namesWith();
  const wire = (name: string, type: string) => {
    const raw = dnsPacket.encode({ id: 7, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A' }] });
    const parsed = parseQuery(raw);
    if (!parsed.ok) throw new Error('bad query');
    const found = resolveLocally(parsed.query.question, zone, names)!;
    return dnsPacket.decode(buildLocalAnswer(parsed.query, found.records, { authoritative: true, rcode: found.rcode, ...(found.soa ? { soa: found.soa } : {}) })) as unknown as {
      rcode: string; answers: { name: string; type: string; data: unknown }[]; authorities: { name: string; type: string; data: { minimum: number } }[];
    };
  };

  it('encodes SRV, MX, multi-string TXT, a CNAME chain with its owners, and the SOA of NODATA', () => {
    expect(wire('_etcd-server-ssl._tcp.ocp.lab', 'SRV').answers[0]).toMatchObject({ type: 'SRV', data: { priority: 0, weight: 10, port: 2380, target: 'etcd-0.ocp.lab' } });
    expect(wire('lab', 'MX').answers[0]).toMatchObject({ type: 'MX', data: { preference: 5, exchange: 'mail.lab' } });
    expect((wire('t.lab', 'TXT').answers[0]!.data as Buffer[]).map(String)).toEqual(['a', 'b']);
    expect(wire('WWW.Lab', 'A').answers).toMatchObject([{ name: 'WWW.Lab', type: 'CNAME', data: 'api.ocp.lab' }, { name: 'api.ocp.lab', type: 'A', data: '10.10.0.5' }]);
    const nodata = wire('api.ocp.lab', 'AAAA');
    expect(nodata.rcode).toBe('NOERROR');
    expect(nodata.answers).toEqual([]);
    expect(nodata.authorities).toMatchObject([{ name: 'ocp.lab', type: 'SOA', data: { minimum: 7 } }]);
  });
});

describe('guest names never shadow operator records (LeaseNames with operatorName)', () => {
  it('refuses a lease name that is a record owner or lies under an address rule, counts it as "record", journals the lease without it', async () => {
    const { LeaseNames } = await import('../../src/daemon/lease-names.js');
    const zone = zoneOf({ hostRecord: ['api.vm,10.10.0.5'], address: ['/apps.vm/10.10.0.50'] });
    const local = new LocalNames({ domain: 'vm', subnet, gatewayAddress: gateway });
    const owns = (name: string) => zone.owns(name.toLowerCase()) || zone.owns(`${name.toLowerCase()}.vm`); // as RecordBook.owns
    const leases = new LeaseNames(local, { operatorName: owns });
    const lease = (hostname: string, last: number) => ({ clientId: `01${last}`, mac: `52:54:00:00:00:${last}`, address: ip(`10.10.0.${last}`), expiresAt: 1e12, hostname });
    const journaled = leases.settle([{ kind: 'bind', lease: lease('api', 20) }, { kind: 'bind', lease: lease('apps', 21) }, { kind: 'bind', lease: lease('free', 22) }]);
    expect(journaled.map((c) => (c.kind === 'bind' ? c.lease.hostname : undefined))).toEqual([undefined, undefined, 'free']);
    expect(leases.refusals.record).toBe(2);
    expect(leases.nameAllowed('API', { clientId: '0130', mac: '52:54:00:00:00:30', address: ip('10.10.0.30') }, false)).toBe(false);
    expect(resolveLocally(q('api.vm'), zone, local)?.records[0]?.data).toBe('10.10.0.5');
    expect(resolveLocally(q('free.vm'), zone, local)?.records[0]?.data).toBe('10.10.0.22');
  });
});
