/**
 * Port forwards that would capture the guests' DNS/DHCP to natd (nft/forward-services.ts): refused where the guests
 * send those packets (every local address, the gateways, the broadcasts for DHCP), allowed on any other host address
 * (DNAT from the uplink to a guest's DNS server is a legitimate forward).
 * With natd's TFTP server on, the gateway's UDP 69 joins the list. Then the same rule at every entry point:
 * the config loader and check-config (with the subnet from --subnet, from the bridge, or the IPv6 prefix), and the
 * firewall's start, reload and runtime add, which leave nft untouched when they refuse.
 */
import fc from 'fast-check';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { checkBeforeStart } from '../../src/config/served-subnet.js';
import { forwards6CaptureProblems } from '../../src/ipv6/egress-config.js';
import { parseIpv6 } from '../../src/ipv6/address.js';
import { parseIpv4 } from '../../src/net/ipv4.js';
import { parseForwardSpec } from '../../src/nft/forward-spec.js';
import { parseForwardEntry } from '../../src/nft/forward-set.js';
import { configuredCaptureProblems, serviceCaptureProblem, type ServiceAddresses } from '../../src/nft/forward-services.js';

const AT: ServiceAddresses = { gateway: parseIpv4('10.77.0.1')!, broadcast: parseIpv4('10.77.0.255')!, gateway6: 'fd00:77::1' };
const problem = (text: string, at = AT) => serviceCaptureProblem(parseForwardSpec(text), at);

describe('serviceCaptureProblem', () => {
  it.each([
    ['udp:10.77.0.1:53=web:53', /host address 10\.77\.0\.1 is the bridge's gateway, where natd serves the guests' DNS \(udp 53\).*untracked/],
    ['tcp:10.77.0.1:53=web:53', /host address 10\.77\.0\.1 is the bridge's gateway, where natd serves the guests' DNS \(tcp 53\)/],
    ['udp:10.77.0.1:67=web:67', /gateway, where natd serves the guests' DHCP \(udp 67\)/],
    ['udp:10.77.0.255:67=web:67', /host address 10\.77\.0\.255 is a broadcast address the guests' DHCP requests go to/],
    ['udp:255.255.255.255:67=web:67', /host address 255\.255\.255\.255 is a broadcast address/],
    ['udp:[fd00:77::1]:53=web:53', /host address \[fd00:77::1\] is the bridge's IPv6 gateway, where natd serves the guests' DNS \(udp 53\)/],
    ['tcp:[fd00:77:0::1]:53=[fd00:77::5]:53', /IPv6 gateway, where natd serves the guests' DNS \(tcp 53\)/],
    ['udp:[fd00:77::1]:547=[fd00:77::5]:547', /IPv6 gateway, where natd serves the guests' DHCPv6 \(udp 547\)/],
    ['udp:53=web:53', /port 53 on every local address would capture the guests' DNS\/DHCP/],
    ['tcp:53=web:53', /every local address/],
    ['udp:67=web:67', /every local address/],
    ['udp:547=[fd00:77::5]:547', /every local address/],
  ])('refuses %s', (text, message) => {
    expect(problem(text)).toMatch(message);
  });

  it.each([
    'udp:198.51.100.1:53=web:53', // DNAT from the uplink to a guest's DNS server
    'tcp:198.51.100.1:53=web:53',
    'udp:198.51.100.1:67=web:67',
    'udp:[2001:db8::1]:53=web:53',
    'udp:[2001:db8::1]:547=[fd00:77::5]:547',
    'tcp:10.77.0.1:67=web:67', // natd's DHCP is UDP only
    'udp:10.77.0.1:547=web:547', // no DHCPv6 over IPv4
    'udp:[fd00:77::1]:67=[fd00:77::5]:67', // nor DHCPv4 over IPv6
    'udp:10.77.0.255:53=web:53', // DNS is not broadcast
    'tcp:10.77.0.1:2222=web:22',
    'udp:5353=web:53',
  ])('allows %s', (text) => {
    expect(problem(text)).toBeUndefined();
  });

  it.each([
    ['udp:10.77.0.1:69=web:69', /host address 10\.77\.0\.1 is the bridge's gateway, where natd serves the guests' TFTP \(udp 69\): the forward would capture it; bind it to the uplink address instead$/],
    ['udp:69=web:69', /^port 69 on every local address would capture the guests' TFTP \(PXE boot\); give a host address \(e\.g\. udp:198\.51\.100\.1:69=web:69\)$/],
  ])('with TFTP on, refuses %s', (text, message) => {
    expect(problem(text, { ...AT, tftp: true })).toMatch(message);
    expect(problem(text)).toBeUndefined(); // without TFTP natd has nothing on port 69
  });

  it.each([
    'udp:198.51.100.1:69=web:69', // the uplink's TFTP forwarded to a guest's server
    'tcp:10.77.0.1:69=web:69', // TFTP is UDP only
    'tcp:69=web:69',
    'udp:10.77.0.255:69=web:69', // read requests are unicast to the next-server
    'udp:[fd00:77::1]:69=[fd00:77::5]:69', // natd's TFTP is IPv4 only
    'udp:10.77.0.1:6969=web:69',
  ])('with TFTP on, allows %s', (text) => {
    expect(problem(text, { ...AT, tftp: true })).toBeUndefined();
  });

  it('without the addresses (not known yet) only the any-address rule applies', () => {
    expect(problem('udp:10.77.0.1:53=web:53', {})).toBeUndefined();
    expect(problem('udp:53=web:53', {})).toBeDefined();
  });

  it('property: refused exactly when the listen address includes one the guests send this service to', () => {
    const hosts4 = ['', '10.77.0.1:', '10.77.0.255:', '255.255.255.255:', '198.51.100.1:', '10.77.0.5:'];
    const hosts6 = ['[fd00:77::1]:', '[2001:db8::1]:', '[fd00:77::5]:'];
    const ports = [53, 67, 547, 69, 22, 68, 5353];
    const spec = fc.record({ protocol: fc.constantFrom('tcp', 'udp'), host: fc.constantFrom(...hosts4, ...hosts6), port: fc.constantFrom(...ports), tftp: fc.boolean() });
    fc.assert(fc.property(spec, ({ protocol, host, port, tftp }) => {
      const guest = host.startsWith('[') ? '[fd00:77::9]' : 'web';
      const refused = problem(`${protocol}:${host}${port}=${guest}:80`, { ...AT, tftp }) !== undefined;
      const dns = port === 53;
      const dhcp4 = protocol === 'udp' && port === 67;
      const dhcp6 = protocol === 'udp' && port === 547;
      const tftp4 = tftp && protocol === 'udp' && port === 69;
      const expected = host === '' ? dns || dhcp4 || dhcp6 || tftp4
        : host === '10.77.0.1:' ? dns || dhcp4 || tftp4
          : host === '10.77.0.255:' || host === '255.255.255.255:' ? dhcp4
            : host === '[fd00:77::1]:' ? dns || dhcp6
              : false;
      expect(refused).toBe(expected);
    }));
  });
});

describe('parseForwardEntry (the firewall\'s runtime add, start and reload)', () => {
  it('names the spec as written and the reason', () => {
    expect(() => parseForwardEntry(' udp:10.77.0.1:53=web:53 ', 'runtime', AT)).toThrow(/^forward "udp:10\.77\.0\.1:53=web:53": host address 10\.77\.0\.1 is the bridge's gateway/);
    expect(parseForwardEntry('udp:198.51.100.1:53=web:53', 'runtime', AT).text).toBe('udp:198.51.100.1:53=web:53');
  });
});

describe('configuration: the field is named, check-config refuses what the daemon would', () => {
  it('the loader with --subnet refuses forwards bound to the gateway or the broadcast', () => {
    const load = (forwards: string[]) => () => resolveConfig({ bridge: 'br7', subnet: '10.77.0.1/24', forwards });
    expect(load(['tcp:2222=web:22', 'udp:10.77.0.1:53=web:53'])).toThrow(/forwards\.1: "udp:10\.77\.0\.1:53=web:53": host address 10\.77\.0\.1 is the bridge's gateway/);
    expect(load(['udp:10.77.0.255:67=web:67'])).toThrow(/forwards\.0: .*broadcast address/);
    expect(load(['udp:53=web:53'])).toThrow(/forwards\.0: "udp:53=web:53": port 53 on every local address/);
    expect(() => load(['udp:198.51.100.1:53=web:53'])()).not.toThrow();
  });

  it('without --subnet, check-config against the bridge\'s address (the daemon runs the same check)', async () => {
    const config = resolveConfig({ bridge: 'br7', forwards: ['tcp:10.30.0.1:53=web:53'] });
    await expect(checkBeforeStart(config, async () => '10.30.0.1/24')).rejects.toThrow(/forwards\.0: "tcp:10\.30\.0\.1:53=web:53": host address 10\.30\.0\.1 is the bridge's gateway/);
    expect(await checkBeforeStart(config, async () => '10.40.0.1/24')).toBe('10.40.0.1/24');
  });

  it('subnet6: a forward bound to the IPv6 gateway on DNS or DHCPv6', () => {
    const load = (forwards: string[]) => () => resolveConfig({ bridge: 'br7', subnet: '10.77.0.1/24', subnet6: 'fd00:77::1/64', forwards });
    expect(load(['udp:[fd00:77::1]:547=[fd00:77::5]:547'])).toThrow(/forwards\.0: .*IPv6 gateway, where natd serves the guests' DHCPv6/);
    expect(() => load(['udp:[fd00:77::2]:547=[fd00:77::5]:547'])()).not.toThrow();
  });

  it('enableTftp: the gateway\'s UDP 69 and every local address\'s are refused by the loader and check-config', async () => {
    const tftp = { enableTftp: true, tftpRoot: tmpdir() };
    const load = (forwards: string[], extra: object = tftp) => () => resolveConfig({ bridge: 'br7', subnet: '10.77.0.1/24', forwards, ...extra });
    expect(load(['udp:10.77.0.1:69=web:69'])).toThrow(/forwards\.0: "udp:10\.77\.0\.1:69=web:69": host address 10\.77\.0\.1 is the bridge's gateway, where natd serves the guests' TFTP \(udp 69\)/);
    expect(load(['tcp:2222=web:22', 'udp:69=web:69'])).toThrow(/forwards\.1: "udp:69=web:69": port 69 on every local address would capture the guests' TFTP/);
    expect(() => load(['udp:198.51.100.1:69=web:69'])()).not.toThrow();
    expect(() => load(['udp:10.77.0.1:69=web:69', 'udp:69=web:69'], {})()).not.toThrow(); // TFTP off: port 69 is free
    // without --subnet: against the bridge's address, as the daemon checks before it starts
    const config = resolveConfig({ bridge: 'br7', forwards: ['udp:10.30.0.1:69=web:69'], ...tftp });
    await expect(checkBeforeStart(config, async () => '10.30.0.1/24')).rejects.toThrow(/forwards\.0: "udp:10\.30\.0\.1:69=web:69": .*TFTP \(udp 69\)/);
    expect(await checkBeforeStart(config, async () => '10.40.0.1/24')).toBe('10.40.0.1/24');
  });

  it('ipv6 auto: check-config checks against the derived gateway', () => {
    const gateway = parseIpv6('fd12:3456::1')!;
    expect(forwards6CaptureProblems(['tcp:[fd12:3456::1]:53=web:53', 'tcp:[fd12:3456::2]:53=web:53'], gateway)).toEqual([
      expect.stringMatching(/^forwards\.0: "tcp:\[fd12:3456::1\]:53=web:53": host address \[fd12:3456::1\] is the bridge's IPv6 gateway/),
    ]);
  });

  it('configuredCaptureProblems leaves unparsable specs to the syntax check and other listen kinds to their check', () => {
    expect(configuredCaptureProblems(['junk', 'udp:53=web:53', 'udp:10.77.0.1:53=web:53'], 'ipv4', AT)).toEqual([expect.stringMatching(/^forwards\.2: /)]);
  });
});
