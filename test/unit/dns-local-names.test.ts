import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LocalNames, parseHostsFormat, policyFor } from '../../src/dns/local-names.js';
import { DnsRcode, DnsType, type DnsQuestion } from '../../src/dns/types.js';
import { parseCidr, reverseName } from '../../src/net/ipv4.js';
import { ip } from '../support/addresses.js';

const { address: gateway, subnet } = parseCidr('10.10.0.1/24')!;
const q = (name: string, type: number = DnsType.A): DnsQuestion => ({ name, type, class: 1 });
const aRecords = (addresses: string[]) => addresses.map((data) => ({ type: DnsType.A, ttl: 0, data }));
const ptrRecord = (data: string) => [{ type: DnsType.PTR, ttl: 0, data }];

function names(domain: string | null = 'lan') {
  return new LocalNames({ ...(domain === null ? {} : { domain }), subnet, gatewayAddress: gateway });
}

describe('LocalNames', () => {
  it('answers name and name.<domain> with A, case-insensitively, and the gateway by its name', () => {
    const local = names();
    local.setHost('VM1', ip('10.10.0.5'), 'lease');
    for (const name of ['vm1', 'VM1.LAN', 'vm1.lan.']) {
      expect(local.lookup(q(name))).toEqual({ rcode: 0, records: aRecords(['10.10.0.5']), authoritative: true });
    }
    expect(local.lookup(q('gateway.lan'))?.records).toEqual(aRecords(['10.10.0.1']));
    expect(local.lookup(q('vm1.example.com'))).toBeUndefined();
    expect(local.lookup({ ...q('vm1'), class: 3 })).toBeUndefined();
  });

  it('answers NODATA (not NXDOMAIN) for other types of a local name, NXDOMAIN for unknown names in the domain', () => {
    const local = names();
    local.setHost('vm1', ip('10.10.0.5'), 'lease');
    expect(local.lookup(q('vm1.lan', DnsType.AAAA))).toEqual({ rcode: DnsRcode.NOERROR, records: [], authoritative: true });
    expect(local.lookup(q('vm1', DnsType.MX))?.records).toEqual([]);
    expect(local.lookup(q('nothere.lan'))?.rcode).toBe(DnsRcode.NXDOMAIN);
    expect(local.lookup(q('lan', DnsType.SOA))).toEqual({ rcode: DnsRcode.NOERROR, records: [], authoritative: true });
    expect(local.lookup(q('nothere'))).toBeUndefined(); // policyFor decides
  });

  it('answers PTR for hosts in the subnet (name.<domain>), NXDOMAIN for addresses with no host', () => {
    const local = names();
    local.setHost('vm1', ip('10.10.0.5'), 'lease');
    expect(local.lookup(q(reverseName(ip('10.10.0.5')), DnsType.PTR))?.records).toEqual(ptrRecord('vm1.lan'));
    expect(local.lookup(q(reverseName(ip('10.10.0.1')), DnsType.PTR))?.records).toEqual(ptrRecord('gateway.lan'));
    expect(local.lookup(q(reverseName(ip('10.10.0.6')), DnsType.PTR))?.rcode).toBe(DnsRcode.NXDOMAIN);
    expect(local.lookup(q(reverseName(ip('10.10.0.5')), DnsType.A))).toMatchObject({ rcode: 0, records: [] });
    expect(local.lookup(q(reverseName(ip('192.0.2.1')), DnsType.PTR))).toBeUndefined();
    expect(names(null).lookup(q(reverseName(gateway), DnsType.PTR))?.records).toEqual(ptrRecord('gateway'));
  });

  it('lets a reservation win over a lease for the same name, in both directions', () => {
    const local = names();
    local.setHost('web', ip('10.10.0.50'), 'lease');
    local.setHost('web', ip('10.10.0.10'), 'reservation');
    expect(local.lookup(q('web'))?.records).toEqual(aRecords(['10.10.0.10']));
    // the lease address no longer claims the name
    expect(local.lookup(q(reverseName(ip('10.10.0.50')), DnsType.PTR))?.rcode).toBe(DnsRcode.NXDOMAIN);
    local.clearSource('reservation');
    expect(local.lookup(q('web'))?.records).toEqual(aRecords(['10.10.0.50']));
  });

  it('shows lease changes at once: renames, removals, a second guest with the same name', () => {
    const local = names();
    local.setHost('old', ip('10.10.0.5'), 'lease');
    local.setHost('renamed', ip('10.10.0.5'), 'lease'); // same guest, new hostname
    expect(local.lookup(q('old.lan'))?.rcode).toBe(DnsRcode.NXDOMAIN);
    expect(local.lookup(q(reverseName(ip('10.10.0.5')), DnsType.PTR))?.records).toEqual(ptrRecord('renamed.lan'));

    local.setHost('renamed', ip('10.10.0.6'), 'lease'); // another guest took the name
    local.removeHost('renamed', ip('10.10.0.5'), 'lease'); // the first guest's lease expires later
    expect(local.lookup(q('renamed'))?.records).toEqual(aRecords(['10.10.0.6']));
    local.removeHost('renamed');
    expect(local.lookup(q('renamed.lan'))?.rcode).toBe(DnsRcode.NXDOMAIN);
    local.removeHost('gateway');
    expect(local.lookup(q('gateway'))?.records).toEqual(aRecords(['10.10.0.1']));
  });

  it('refuses names a guest cannot publish', () => {
    const local = names();
    for (const bad of ['', 'has space', 'a..b', 'x'.repeat(64), 'ünï']) {
      expect(local.setHost(bad, ip('10.10.0.9'), 'lease')).toBe(false);
    }
    expect(local.lookup(q(reverseName(ip('10.10.0.9')), DnsType.PTR))?.rcode).toBe(DnsRcode.NXDOMAIN);
  });

  it('serves static hosts-file entries with several addresses and aliases, reloaded as a whole', () => {
    const local = names();
    const { entries, problems } = parseHostsFormat(
      ['10.10.0.7 printer printer-alias.lan', '192.0.2.8 printer', '::1 localhost ip6-localhost'].join('\n'),
      'hosts',
    );
    expect(problems).toEqual([]);
    local.replaceStatic(entries);
    expect(local.lookup(q('printer'))?.records).toEqual(aRecords(['10.10.0.7', '192.0.2.8']));
    expect(local.lookup(q('printer-alias'))?.records).toEqual(aRecords(['10.10.0.7']));
    expect(local.lookup(q(reverseName(ip('10.10.0.7')), DnsType.PTR))?.records).toEqual(ptrRecord('printer.lan'));
    local.replaceStatic([]);
    expect(local.lookup(q('printer.lan'))?.rcode).toBe(DnsRcode.NXDOMAIN);
  });
});

describe('parseHostsFormat', () => {
  it('reads IPv4 lines, skips comments and IPv6, reports bad lines with their number', () => {
    const text = '# comment\n\n10.0.0.1  a  B.example. # trailing\nfe80::1 v6only\nnot-an-ip x\n10.0.0.2\n10.0.0.3 bad_name! ok\n';
    const { entries, problems } = parseHostsFormat(text, '/etc/natd/hosts');
    expect(entries).toEqual([
      { address: ip('10.0.0.1'), names: ['a', 'b.example'] },
      { address: ip('10.0.0.3'), names: ['ok'] },
    ]);
    expect(problems.map((p) => [p.file, p.line])).toEqual([
      ['/etc/natd/hosts', 5],
      ['/etc/natd/hosts', 6],
      ['/etc/natd/hosts', 7],
    ]);
  });

  it('never throws on arbitrary text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (text) => void parseHostsFormat(text, 'f')), { numRuns: 500 });
  });
});

describe('policyFor', () => {
  const opts = { domain: 'lan', subnet };
  it('keeps the local domain and the subnet reverse zone local', () => {
    expect(policyFor(q('anything.lan'), opts)).toBe('local');
    expect(policyFor(q('LAN', DnsType.SOA), opts)).toBe('local');
    expect(policyFor(q(reverseName(ip('10.10.0.77')), DnsType.PTR), opts)).toBe('local');
  });

  it('answers private reverse lookups locally (bogus-priv), forwards public ones', () => {
    for (const address of ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '127.0.0.1', '169.254.1.1']) {
      expect(policyFor(q(reverseName(ip(address)), DnsType.PTR), opts)).toBe('private-reverse');
    }
    expect(policyFor(q('168.192.in-addr.arpa', DnsType.SOA), opts)).toBe('private-reverse');
    expect(policyFor(q('junk.10.in-addr.arpa', DnsType.PTR), opts)).toBe('private-reverse');
    for (const address of ['8.8.8.8', '172.32.0.1', '100.128.0.1', '192.169.0.1']) {
      expect(policyFor(q(reverseName(ip(address)), DnsType.PTR), opts)).toBe('forward');
    }
    expect(policyFor(q('172.in-addr.arpa', DnsType.NS), opts)).toBe('forward'); // wider than 172.16/12
  });

  it('does not forward single-label names (domain-needed), except TLD lookups DNSSEC needs', () => {
    expect(policyFor(q('printer'), opts)).toBe('refuse-single-label');
    expect(policyFor(q('wpad', DnsType.AAAA), opts)).toBe('refuse-single-label');
    expect(policyFor(q('com', 43), opts)).toBe('forward');
    expect(policyFor(q('', DnsType.NS), opts)).toBe('forward');
    expect(policyFor(q('example.com'), opts)).toBe('forward');
    expect(policyFor(q('printer.lan'), { subnet })).toBe('forward'); // no local domain configured
  });
});

describe('LocalNames never speaks for a TLD or above its domain (issue 12, row 6)', () => {
  const DNSSEC_TYPES = [DnsType.NS, DnsType.SOA, 43 /* DS */, 48 /* DNSKEY */];

  it('refuses denied names from any source: special-use names, the gateway, the domain itself', () => {
    const local = names();
    for (const name of ['localhost', 'wpad', 'WPAD.lan', 'isatap', 'local', 'gateway', 'lan']) {
      expect(local.refusalOf(name), name).toBe('denied');
      expect(local.setHost(name, ip('10.10.0.9'), 'static'), name).toBe(false);
    }
    expect(local.refusalOf('has space')).toBe('invalid');
    expect(local.refusalOf('db')).toBeUndefined();
    expect(local.lookup(q(reverseName(ip('10.10.0.9')), DnsType.PTR))?.rcode).toBe(DnsRcode.NXDOMAIN);
    expect(local.lookup(q('localhost'))).toBeUndefined();
    expect(local.lookup(q('wpad.lan'))?.rcode).toBe(DnsRcode.NXDOMAIN);
  });

  it('publishes a TLD label only under the domain (app.lan), never bare; without a domain it is refused', () => {
    const local = names();
    for (const name of ['app', 'com', 'xn--fiqs8s']) {
      expect(local.setHost(name, ip('10.10.0.9'), 'lease'), name).toBe(true);
      expect(local.lookup(q(`${name}.lan`))?.records, name).toEqual([{ type: DnsType.A, ttl: 0, data: '10.10.0.9' }]);
      for (const type of [DnsType.A, ...DNSSEC_TYPES]) expect(local.lookup(q(name, type)), name).toBeUndefined();
      expect(local.lookup(q(reverseName(ip('10.10.0.9')), DnsType.PTR))?.records[0]?.data).toBe(`${name}.lan`);
    }
    const bare = new LocalNames({ subnet, gatewayAddress: ip('10.10.0.1') });
    for (const name of ['app', 'com', 'net.']) expect(bare.refusalOf(name), name).toBe('denied');
  });

  it('leaves TLD questions (DS/NS/DNSKEY/SOA) to the upstream, but answers a guest name under the domain', () => {
    const local = names();
    local.setHost('db', ip('10.10.0.5'), 'lease');
    for (const type of DNSSEC_TYPES) {
      expect(local.lookup(q('com', type))).toBeUndefined();
      expect(policyFor(q('com', type), { domain: 'lan', subnet })).toBe('forward');
      expect(local.lookup(q('db.lan', type))).toEqual({ rcode: DnsRcode.NOERROR, records: [], authoritative: true });
    }
  });

  it('does not answer the ancestors of a multi-label domain, even for an operator entry', () => {
    const local = names('vm.example.com');
    expect(local.setHost('example.com', ip('10.10.0.7'), 'static')).toBe(true); // an operator's choice to publish
    for (const name of ['example.com', 'com']) for (const type of [DnsType.A, ...DNSSEC_TYPES]) expect(local.lookup(q(name, type)), name).toBeUndefined();
    expect(local.lookup(q('vm.example.com', DnsType.SOA))?.rcode).toBe(DnsRcode.NOERROR); // its own apex
  });

  it('keeps a domain that is itself a TLD for its names, but not its apex', () => {
    const local = names('dev');
    local.setHost('db', ip('10.10.0.5'), 'lease');
    expect(local.lookup(q('db.dev'))?.records).toEqual(aRecords(['10.10.0.5']));
    for (const type of DNSSEC_TYPES) {
      expect(local.lookup(q('dev', type))).toBeUndefined();
      expect(policyFor(q('dev', type), { domain: 'dev', subnet })).toBe('forward');
    }
    expect(policyFor(q('nothere.dev'), { domain: 'dev', subnet })).toBe('local');
  });

  it('tells who holds a name: the winning source, with the claimant', () => {
    const local = names();
    local.setHost('db', ip('10.10.0.5'), 'lease', { clientId: '01aa', mac: '52:54:00:00:00:01' });
    expect(local.holderOf('db.lan')).toMatchObject({ source: 'lease', address: ip('10.10.0.5'), clientId: '01aa' });
    local.setHost('db', ip('10.10.0.6'), 'reservation', { mac: '52:54:00:00:00:02' });
    expect(local.holderOf('db')).toMatchObject({ source: 'reservation', mac: '52:54:00:00:00:02' });
    local.removeLeaseClaimsExcept('db', '52:54:00:00:00:02');
    local.clearSource('reservation');
    expect(local.holderOf('db')).toBeUndefined();
  });

  it('reports denied names in a hosts file with file and line, and loads the rest', () => {
    const parsed = parseHostsFormat('10.10.0.7 wpad fileserver\n10.10.0.8 localhost\n', '/etc/natd/hosts');
    expect(parsed.entries).toEqual([{ address: ip('10.10.0.7'), names: ['fileserver'] }]);
    expect(parsed.problems).toEqual([
      { file: '/etc/natd/hosts', line: 1, message: expect.stringContaining('"wpad" is a special-use name') },
      { file: '/etc/natd/hosts', line: 2, message: expect.stringContaining('"localhost" is a special-use name') },
    ]);
  });
});
