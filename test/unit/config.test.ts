import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { ErrorCodes, NatdError } from '../../src/errors.js';

function problemOf(flags: Record<string, unknown>): string {
  try {
    resolveConfig(flags);
  } catch (err) {
    expect(err).toBeInstanceOf(NatdError);
    expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
    return (err as Error).message;
  }
  throw new Error('expected a configuration error');
}

describe('config validation covers what the daemon would reject later', () => {
  it('a port forward that does not parse is a config error naming the field and the spec', () => {
    expect(problemOf({ bridge: 'virbr10', forwards: ['junk'] })).toMatch(/forwards\.0: port forward "junk"/);
  });

  it('the second bad forward is named by its index, with every problem reported together', () => {
    const message = problemOf({ bridge: 'virbr10', subnet: '10.10.0.1/24', forwards: ['tcp:2222=web:22', 'tcp:99999=web:22'], dhcpRange: '10.20.0.10-10.20.0.20' });
    expect(message).toMatch(/forwards\.1: /);
    expect(message).toMatch(/dhcpRange/);
  });

  it('a forward to a guest address outside the given subnet is refused', () => {
    expect(problemOf({ bridge: 'virbr10', subnet: '10.10.0.1/24', forwards: ['80=10.20.0.5:80'] })).toMatch(/forwards\.0: .*not inside subnet/);
  });

  it('valid forwards (by address and by reservation name) pass', () => {
    const config = resolveConfig({ bridge: 'virbr10', subnet: '10.10.0.1/24', forwards: ['tcp:2222=web:22', 'udp:198.51.100.1:5353=10.10.0.5:53'] });
    expect(config.forwards).toEqual(['tcp:2222=web:22', 'udp:198.51.100.1:5353=10.10.0.5:53']);
  });

  it('guest-to-host entries parse to protocol and port range; junk names the field and index', () => {
    const config = resolveConfig({ bridge: 'virbr10', guestToHost: ['2049', 'udp:5000-5010'] });
    expect(config.guestToHost).toEqual([{ protocol: 'tcp', ports: [2049, 2049] }, { protocol: 'udp', ports: [5000, 5010] }]);
    expect(resolveConfig({ bridge: 'virbr10', guestToHost: ['all'] }).guestToHost).toBe('all');
    expect(problemOf({ bridge: 'virbr10', guestToHost: ['tcp:22', 'sctp:9'] })).toMatch(/guestToHost\.1: .*"sctp:9"/);
    expect(problemOf({ bridge: 'virbr10', guestToHost: ['all', '22'] })).toMatch(/guestToHost: 'all' cannot be combined/);
  });
});

describe('dhcpProbeTimeoutMs (issue 13)', () => {
  it('defaults to 250 ms and takes the flag as a number', () => {
    expect(resolveConfig({ bridge: 'virbr10' }).dhcpProbeTimeoutMs).toBe(250);
    expect(resolveConfig({ bridge: 'virbr10', dhcpProbeTimeoutMs: 100 }).dhcpProbeTimeoutMs).toBe(100);
  });

  it('refuses a wait too short to hear a busy guest or too long for a client, naming the field', () => {
    expect(problemOf({ bridge: 'virbr10', dhcpProbeTimeoutMs: 5 })).toMatch(/dhcpProbeTimeoutMs/);
    expect(problemOf({ bridge: 'virbr10', dhcpProbeTimeoutMs: 60_000 })).toMatch(/dhcpProbeTimeoutMs/);
    expect(problemOf({ bridge: 'virbr10', dhcpProbeTimeoutMs: 'soon' })).toMatch(/dhcpProbeTimeoutMs/);
  });
});

describe('issue 16: DHCP options, DNS servers, MTU, lease times', () => {
  it('parses --dhcp-option, --dhcp-option-force and --dhcp-dns into specs, --dhcp-dns first', () => {
    const c = resolveConfig({ bridge: 'virbr10', dhcpOptions: ['option:mtu,1400', 'tag:lab,42,10.0.0.5'], dhcpOptionsForce: ['224,"x"'], dhcpDns: ['10.0.0.53'] });
    expect(c.dhcpOptions.map((s) => [s.code, s.force, s.when.length])).toEqual([[6, false, 0], [26, false, 0], [42, false, 1], [224, true, 0]]);
    expect(resolveConfig({ bridge: 'virbr10', dhcpDns: 'none' }).dhcpOptions[0]).toMatchObject({ code: 6, value: undefined });
    expect(resolveConfig({ bridge: 'virbr10' }).dhcpRapidCommit).toBe(true);
  });

  it('names the field and the spec of every bad one, together', () => {
    const message = problemOf({ bridge: 'virbr10', dhcpOptions: ['26,1400', 'option:mtu,big'], dhcpOptionsForce: ['51,60'], dhcpDns: ['x'] });
    expect(message).toMatch(/dhcpOptions\.1: option 26 \(mtu\) takes one integer .*"option:mtu,big"/);
    expect(message).toMatch(/dhcpOptionsForce\.0: option 51 \(lease-time\) cannot be set/);
    expect(message).toMatch(/dhcpDns: expected IPv4 addresses or none/);
  });

  it('refuses DNS servers given twice (dhcpDns and option 6)', () => {
    expect(problemOf({ bridge: 'virbr10', dhcpDns: ['10.0.0.53'], dhcpOptions: ['6,10.0.0.54'] })).toMatch(/dhcpDns: give the DNS servers once/);
  });

  it('mtu within 68-65535', () => {
    expect(resolveConfig({ bridge: 'virbr10', mtu: 1400 }).mtu).toBe(1400);
    expect(problemOf({ bridge: 'virbr10', mtu: 20 })).toMatch(/mtu/);
  });

  it('dhcpRange in dnsmasq\'s START,END[,NETMASK][,LEASETIME] form sets the lease time; START-END still works', () => {
    const c = resolveConfig({ bridge: 'virbr10', subnet: '10.10.0.1/24', dhcpRange: '10.10.0.10,10.10.0.20,255.255.255.0,12h' });
    expect(c.dhcpRange).toEqual({ start: 168427530, end: 168427540 });
    expect(c.leaseTimeSeconds).toBe(43200);
    expect(resolveConfig({ bridge: 'virbr10', dhcpRange: '10.10.0.10,10.10.0.20,infinite' }).leaseTimeSeconds).toBe(0xffffffff);
    expect(resolveConfig({ bridge: 'virbr10', dhcpRange: '10.10.0.10-10.10.0.20', leaseTime: '1w' }).leaseTimeSeconds).toBe(604800);
    expect(problemOf({ bridge: 'virbr10', subnet: '10.10.0.1/24', dhcpRange: '10.10.0.10,10.10.0.20,255.255.0.0' })).toMatch(/netmask 255.255.0.0 is not the subnet's/);
    expect(problemOf({ bridge: 'virbr10', dhcpRange: '10.10.0.10,10.10.0.20,static' })).toMatch(/dhcpRange: "static" is neither/);
    expect(problemOf({ bridge: 'virbr10', leaseTime: 'forever' })).toMatch(/leaseTime: expected seconds/);
  });

  it('reservations take tags, their own options (without tags) and a lease time', () => {
    const c = resolveConfig({ bridge: 'virbr10', reservations: [{ mac: '52:54:00:00:00:01', address: '10.10.0.5', tags: ['Lab'], options: ['option:ntp-server,10.0.0.5'], leaseTime: 'infinite' }] });
    expect(c.reservations[0]).toMatchObject({ tags: ['lab'], leaseSeconds: 0xffffffff, options: [expect.objectContaining({ code: 42 })] });
    expect(problemOf({ bridge: 'virbr10', reservations: [{ mac: '52:54:00:00:00:01', address: '10.10.0.5', options: ['tag:x,3,1.2.3.4'] }] }))
      .toMatch(/reservations\.0\.options\.0: tag: conditions have no meaning/);
  });
});
