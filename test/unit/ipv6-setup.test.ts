/** issue 14, step 1: IPv6 addresses, the stable ULA of --ipv6 auto, the subnet6/ipv6 settings and the host step. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { formatIpv6, networkOf, parseIpv6 } from '../../src/ipv6/address.js';
import { interfacesNeedingAcceptRa2, setUpIpv6Host, type SysctlIo } from '../../src/ipv6/host.js';
import { servedIpv6, subnet6Problem } from '../../src/ipv6/settings.js';
import { deriveUla, describeUla } from '../../src/ipv6/ula.js';
import type { IpRunner } from '../../src/net/ip-command.js';
import { recordingLogger } from '../support/recording-logger.js';

const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });

describe('IPv6 text', () => {
  it('formats as RFC 5952 (the WHATWG URL parser as the oracle) and parses back', () => {
    fc.assert(
      fc.property(bytes16, fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 8 }), (raw, zeroFrom, zeroLen) => {
        const a = Uint8Array.from(raw);
        a.fill(0, 2 * zeroFrom, Math.min(16, 2 * (zeroFrom + zeroLen))); // runs of zero groups, where :: matters
        const text = formatIpv6(a);
        expect(text).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
        expect(parseIpv6(text)).toEqual(a);
      }),
    );
  });

  it('parses the other spellings and refuses what is not an address', () => {
    expect(formatIpv6(parseIpv6('FD00:0:0:0:0:0:0:1')!)).toBe('fd00::1');
    expect(formatIpv6(parseIpv6('::ffff:10.1.2.3')!)).toBe('::ffff:a01:203');
    expect(formatIpv6(parseIpv6('1:0:0:2:0:0:0:3')!)).toBe('1:0:0:2::3');
    for (const bad of ['', '1::2::3', 'fe80::1%eth0', '10.0.0.1', '12345::', 'g::1']) expect(parseIpv6(bad)).toBeUndefined();
    expect(formatIpv6(networkOf(parseIpv6('fd12:3456:789a:1:2:3:4:5')!, 64))).toBe('fd12:3456:789a:1::');
  });
});

describe('--ipv6 auto: the ULA', () => {
  it('is fd + 40 bits, subnet 0, gateway ::1, the same on every call', () => {
    const a = deriveUla('virbr10', '0123456789abcdef0123456789abcdef');
    expect(deriveUla('virbr10', '0123456789abcdef0123456789abcdef\n')).toEqual(a);
    expect(a.network[0]).toBe(0xfd);
    expect([...a.network.slice(6)].every((b) => b === 0)).toBe(true);
    expect(formatIpv6(a.gateway)).toBe(formatIpv6(a.network).replace(/::$/, '::1'));
    expect(describeUla(a)).toMatch(/^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64$/);
  });

  it('differs between bridges and between hosts', () => {
    const seen = new Set<string>();
    for (const bridge of ['virbr0', 'virbr1', 'br0', 'natd0']) for (const id of ['aaaa', 'bbbb', undefined]) seen.add(describeUla(deriveUla(bridge, id)));
    expect(seen.size).toBe(12);
  });
});

describe('subnet6 / ipv6 settings', () => {
  const problem = (flags: Record<string, unknown>): string => {
    try {
      resolveConfig({ bridge: 'br0', ...flags });
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error(`accepted ${JSON.stringify(flags)}`);
  };

  it('is off by default, subnet6 for an explicit gateway/64, auto for the ULA', () => {
    expect(resolveConfig({ bridge: 'br0' }).ipv6).toBeUndefined();
    expect(resolveConfig({ bridge: 'br0', ipv6: 'off' }).ipv6).toBeUndefined();
    expect(resolveConfig({ bridge: 'br0', subnet6: 'fd00:10:10::1/64' }).ipv6).toEqual({ mode: 'subnet', cidr: 'fd00:10:10::1/64' });
    expect(resolveConfig({ bridge: 'br0', ipv6: 'auto' }).ipv6).toEqual({ mode: 'auto' });
    const served = servedIpv6({ mode: 'subnet', cidr: 'fd00:10:10::1/64' }, 'br0', undefined);
    expect([served.gatewayCidr, served.networkCidr, served.source]).toEqual(['fd00:10:10::1/64', 'fd00:10:10::/64', 'subnet6']);
    expect(servedIpv6({ mode: 'auto' }, 'br0', 'id').gatewayCidr).toBe(`${formatIpv6(deriveUla('br0', 'id').gateway)}/64`);
  });

  it('rejects bad values naming the field', () => {
    expect(problem({ subnet6: 'fd00::1/48' })).toMatch(/subnet6: the prefix must be \/64/);
    expect(problem({ subnet6: 'fd00:1::/64' })).toMatch(/subnet6: give the gateway address, not the network address/);
    expect(problem({ subnet6: 'fe80::1/64' })).toMatch(/subnet6: give a global or unique-local address/);
    expect(problem({ subnet6: '10.0.0.1/24' })).toMatch(/subnet6: expected the gateway's IPv6 address/);
    expect(problem({ ipv6: 'yes' })).toMatch(/ipv6: expected 'auto' or 'off'/);
    expect(problem({ ipv6: 'auto', subnet6: 'fd00:1::1/64' })).toMatch(/ipv6: give either/);
    expect(subnet6Problem('2001:db8:1:2::1/64')).toBeUndefined();
  });
});

describe('the host step', () => {
  function fakeHost(routes: object[], acceptRa: Record<string, string>, addrs: object[] = []) {
    const sys: Record<string, string> = { 'net/ipv6/conf/all/forwarding': '0', 'net/ipv6/conf/br0/accept_ra': '1', 'net/ipv6/conf/br0/accept_dad': '1' };
    for (const [dev, v] of Object.entries(acceptRa)) sys[`net/ipv6/conf/${dev}/accept_ra`] = v;
    const writes: string[] = [];
    const ipCalls: string[] = [];
    const sysctl: SysctlIo = {
      read: async (p) => sys[p.join('/')],
      write: async (p, v) => {
        writes.push(`${p.join('.')}=${v}`);
        sys[p.join('/')] = v;
      },
    };
    const ip: IpRunner = async (args) => {
      ipCalls.push(args.join(' '));
      if (args.includes('route')) return JSON.stringify(routes);
      if (args.includes('show')) return JSON.stringify([{ ifname: 'br0', addr_info: addrs }]);
      return '';
    };
    return { sysctl, ip, writes, ipCalls };
  }
  const served = servedIpv6({ mode: 'subnet', cidr: 'fd00:10:10::1/64' }, 'br0', undefined);

  it('adds the address nodad, sets accept_ra=2 where an RA default route depends on it, then forwarding', async () => {
    const host = fakeHost([{ dst: 'default', dev: 'eth0', protocol: 'ra' }, { dst: 'default', dev: 'wlan0', protocol: 'ra' }], { eth0: '1', wlan0: '2' });
    const logger = recordingLogger();
    await setUpIpv6Host('br0', served, logger, host);
    expect(host.ipCalls).toContain('-6 addr add fd00:10:10::1/64 dev br0 nodad');
    expect(host.writes).toEqual(['net.ipv6.conf.br0.accept_ra=0', 'net.ipv6.conf.br0.accept_dad=0', 'net.ipv6.conf.eth0.accept_ra=2', 'net.ipv6.conf.all.forwarding=1']);
    expect(logger.lines.find((l) => l.level === 'warn')?.fields).toEqual({ interface: 'eth0' });
  });

  it('changes nothing that is already right', async () => {
    const host = fakeHost([], {}, [{ family: 'inet6', local: 'fd00:10:10:0::1', prefixlen: 64 }]);
    await setUpIpv6Host('br0', served, recordingLogger(), host);
    await setUpIpv6Host('br0', served, recordingLogger(), host);
    expect(host.ipCalls.filter((c) => c.startsWith('-6 addr add'))).toEqual([]);
    expect(host.writes).toEqual(['net.ipv6.conf.br0.accept_ra=0', 'net.ipv6.conf.br0.accept_dad=0', 'net.ipv6.conf.all.forwarding=1']);
  });

  it('picks only interfaces with accept_ra=1, never the bridge', () => {
    const ra = new Map([['eth0', '1'], ['eth1', '0'], ['eth2', '2'], ['br0', '1']]);
    expect(interfacesNeedingAcceptRa2(['eth0', 'eth1', 'eth2', 'br0', 'gone'], ra, 'br0')).toEqual(['eth0']);
  });
});
