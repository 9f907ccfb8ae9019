import { describe, expect, it } from 'vitest';
import { LeaseNames } from '../../src/lease-names.js';
import { LocalNames } from '../../src/dns/local-names.js';
import type { Lease, LeaseChange } from '../../src/dhcp/types.js';
import { DnsType } from '../../src/dns/types.js';
import { parseCidr, parseIpv4, reverseName } from '../../src/net/ipv4.js';

const { address: gateway, subnet } = parseCidr('10.10.0.1/24')!;
const ip = (text: string) => parseIpv4(text)!;

function setup() {
  const local = new LocalNames({ domain: 'vm', subnet, gatewayAddress: gateway });
  const names = new LeaseNames(local);
  const addressOf = (name: string) => local.lookup({ name, type: DnsType.A, class: 1 })?.records.map((r) => r.data);
  const nameOf = (address: string) => local.lookup({ name: reverseName(ip(address)), type: DnsType.PTR, class: 1 })?.records.map((r) => r.data);
  return { local, names, addressOf, nameOf };
}

const lease = (clientId: string, address: string, hostname?: string): Lease => ({
  clientId, mac: '52:54:00:00:00:01', address: ip(address), expiresAt: 1e12, ...(hostname ? { hostname } : {}),
});
const bind = (l: Lease): LeaseChange => ({ kind: 'bind', lease: l });
const release = (clientId: string, address: string): LeaseChange => ({ kind: 'release', clientId, address: ip(address) });

describe('LeaseNames', () => {
  it('publishes restored lease names and follows binds, renewals and releases', () => {
    const { names, addressOf, nameOf } = setup();
    names.restore([lease('01aa', '10.10.0.10', 'web'), lease('01bb', '10.10.0.11')]);
    expect(addressOf('web.vm')).toEqual(['10.10.0.10']);
    expect(nameOf('10.10.0.11')).toEqual([]); // NXDOMAIN: no name for it

    names.apply([bind(lease('01aa', '10.10.0.10', 'web'))]); // renewal
    expect(addressOf('web')).toEqual(['10.10.0.10']);
    names.apply([release('01aa', '10.10.0.10')]);
    expect(addressOf('web.vm')).toEqual([]);
    expect(nameOf('10.10.0.10')).toEqual([]);
  });

  it('drops the old name when an address is renamed, and moves a name to its newest address', () => {
    const { names, addressOf, nameOf } = setup();
    names.apply([bind(lease('01aa', '10.10.0.10', 'web'))]);
    names.apply([bind(lease('01aa', '10.10.0.10', 'www'))]);
    expect(addressOf('web.vm')).toEqual([]);
    expect(addressOf('www.vm')).toEqual(['10.10.0.10']);

    names.apply([bind(lease('01bb', '10.10.0.20', 'www'))]);
    expect(addressOf('www')).toEqual(['10.10.0.20']);
    expect(nameOf('10.10.0.10')).toEqual([]);
    names.apply([release('01aa', '10.10.0.10')]); // the old holder leaving does not take the name with it
    expect(addressOf('www')).toEqual(['10.10.0.20']);
  });

  it('leaves an address unnamed when its lease loses its name or carries an unusable one', () => {
    const { names, addressOf } = setup();
    names.apply([bind(lease('01aa', '10.10.0.10', 'web'))]);
    names.apply([bind(lease('01aa', '10.10.0.10', 'bad name!'))]);
    expect(addressOf('web.vm')).toEqual([]);
    names.apply([bind(lease('01aa', '10.10.0.10', 'web'))]);
    names.apply([bind(lease('01aa', '10.10.0.10'))]);
    expect(addressOf('web.vm')).toEqual([]);
  });

  it('lets reservation names win over lease names, and replaces reservations as a whole', () => {
    const { names, addressOf } = setup();
    names.apply([bind(lease('01aa', '10.10.0.50', 'db'))]);
    names.setReservations([{ mac: '52:54:00:00:00:09', address: ip('10.10.0.9'), hostname: 'db' }]);
    expect(addressOf('db')).toEqual(['10.10.0.9']);
    names.setReservations([]);
    expect(addressOf('db')).toEqual(['10.10.0.50']);
  });
});
