/**
 * issue 14: the IPv6 egress side: --ipv6-mode nat|routed checked against the prefix, IPv6 port forward specs
 * (bracketed addresses; property: format/parse round trip, arbitrary text parses or fails with CONFIG), which
 * family a forward serves (forward6.ts), and the name → IPv6 lookup the daemon injects.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { ErrorCodes, NatdError } from '../../src/errors.js';
import { parseIpv6 } from '../../src/ipv6/address.js';
import { formatForwardSpec, parseForwardSpec, type PortForwardSpec } from '../../src/nft/forward-spec.js';
import { resolveFamilies, type GuestResolvers } from '../../src/nft/forward6.js';
import { guestIpv6Resolver } from '../../src/daemon/guest-ipv6.js';
import { ip } from '../support/addresses.js';
import { diagnoseRoutedIpv6, routedPrefixInTable } from '../../src/tools/doctor-ipv6.js';
import { buildRuleset, EXAMPLE_INPUT } from '../../src/nft/ruleset.js';

const configProblem = (raw: Record<string, unknown>): string => {
  try {
    resolveConfig({ bridge: 'br0', ...raw });
  } catch (err) {
    return (err as Error).message;
  }
  return '';
};

describe('ipv6Mode', () => {
  it('is nat by default; routed with a global subnet6', () => {
    expect(resolveConfig({ bridge: 'br0', subnet6: '2001:db8:77::1/64' }).ipv6Mode).toBe('nat');
    expect(resolveConfig({ bridge: 'br0', subnet6: '2001:db8:77::1/64', ipv6Mode: 'routed' }).ipv6Mode).toBe('routed');
  });

  it.each([
    [{ ipv6: 'auto', ipv6Mode: 'routed' }, /ipv6Mode: routed needs a global prefix in subnet6; ipv6 "auto" is a unique-local/],
    [{ subnet6: 'fd00:10:10::1/64', ipv6Mode: 'routed' }, /ipv6Mode: routed needs a global prefix, but subnet6 fd00:10:10::1\/64 is unique-local/],
    [{ subnet6: 'fc00:1::1/64', ipv6Mode: 'routed' }, /is unique-local/],
    [{ ipv6Mode: 'routed' }, /ipv6Mode: routed needs the global prefix routed to this host in subnet6/],
    [{ subnet6: '2001:db8::1/64', ipv6Mode: 'bridged' }, /ipv6Mode.*expected 'nat' or 'routed'/],
  ])('refuses %j naming the field', (raw, message) => {
    expect(configProblem(raw)).toMatch(message);
  });
});

describe('IPv6 forward specs', () => {
  it.each<[string, PortForwardSpec]>([
    ['tcp:[2001:db8::1]:2222=web:22', { protocol: 'tcp', hostAddress6: '2001:db8::1', hostPort: 2222, guest: { name: 'web' }, guestPort: 22 }],
    ['tcp:[2001:DB8:0::1]:2222=[fd00:0::5]:22', { protocol: 'tcp', hostAddress6: '2001:db8::1', hostPort: 2222, guest: { address6: 'fd00::5' }, guestPort: 22 }],
    ['udp:5353=[fd00::5]:53', { protocol: 'udp', hostPort: 5353, guest: { address6: 'fd00::5' }, guestPort: 53 }],
    ['2222=[fd00::5]:22', { protocol: 'tcp', hostPort: 2222, guest: { address6: 'fd00::5' }, guestPort: 22 }],
    ['[2001:db8::1]:80=Web:8080', { protocol: 'tcp', hostAddress6: '2001:db8::1', hostPort: 80, guest: { name: 'web' }, guestPort: 8080 }],
  ])('parses %s', (text, spec) => {
    expect(parseForwardSpec(text)).toEqual(spec);
  });

  it('writes the canonical text with brackets', () => {
    expect(formatForwardSpec(parseForwardSpec('[2001:DB8:0:0::1]:80=[FD00::5]:8080'))).toBe('tcp:[2001:db8::1]:80=[fd00::5]:8080');
    expect(formatForwardSpec({ family: 'ipv6', protocol: 'udp', hostPort: 53, guestAddress: 'fd00::5', guestPort: 5353 })).toBe('udp:53=[fd00::5]:5353');
  });

  it.each([
    ['tcp:[2001:db8::1]:2222=10.77.0.5:22', /host address 2001:db8::1 is IPv6 but guest 10.77.0.5 is IPv4/],
    ['tcp:198.51.100.1:2222=[fd00::5]:22', /host address 198.51.100.1 is IPv4 but the guest is IPv6/],
    ['tcp:[2001:db8::g]:22=web:22', /host address "\[2001:db8::g\]" is not an IPv6 address/],
    ['tcp:[fe80::1]:22=web:22', /link-local, multicast or unspecified/],
    ['tcp:2222=[ff02::1]:22', /guest address \[ff02::1\] is link-local, multicast or unspecified/],
    ['tcp:2222=[::]:22', /link-local, multicast or unspecified/],
    ['sctp:[2001:db8::1]:22=web:22', /unknown protocol "sctp"/],
    ['tcp:[2001:db8::1]:0=web:22', /host port 0 is outside 1-65535/],
    ['tcp:2001:db8::1:2222=web:22', /unknown protocol|malformed/],
    ['tcp:2222=fd00::5:22', /neither an IPv4 address nor a reservation name/],
    ['tcp:2222=[fd00::5:22', /guest side .* is malformed/],
  ])('rejects %s naming the problem', (text, message) => {
    let caught: unknown;
    try {
      parseForwardSpec(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(NatdError);
    expect((caught as NatdError).code).toBe(ErrorCodes.CONFIG);
    expect((caught as NatdError).message).toMatch(message);
  });

  const v6Address = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
    .map((g) => g.map((x) => x.toString(16)).join(':'))
    .filter((a) => { const b = parseIpv6(a)!; return b[0] !== 0xff && !(b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) && !b.every((x) => x === 0); });

  it('round-trips: format then parse gives the same spec (property)', () => {
    const spec = fc.record({
      protocol: fc.constantFrom<'tcp' | 'udp'>('tcp', 'udp'),
      host: fc.option(v6Address, { nil: undefined }),
      hostPort: fc.integer({ min: 1, max: 65535 }),
      guest: fc.oneof(v6Address.map((a) => ({ address6: a })), fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9]$/).map((name) => ({ name }))),
      guestPort: fc.integer({ min: 1, max: 65535 }),
    }).filter((s) => s.host !== undefined || 'address6' in s.guest);
    fc.assert(fc.property(spec, (s) => {
      const text = `${s.protocol}:${s.host ? `[${s.host}]:` : ''}${s.hostPort}=${'name' in s.guest ? s.guest.name : `[${s.guest.address6}]`}:${s.guestPort}`;
      const parsed = parseForwardSpec(text);
      expect(parseForwardSpec(formatForwardSpec(parsed))).toEqual(parsed);
      expect(parsed.hostPort).toBe(s.hostPort);
    }), { numRuns: 500 });
  });

  it('on arbitrary bracketed text either parses or throws NatdError(CONFIG), nothing else (property)', () => {
    const pieces = fc.constantFrom('tcp', 'udp', ':', '=', '[', ']', '::', 'fd00', '2001:db8::1', '1', '80', '65536', '10.0.0.1', 'web', ' ', '');
    fc.assert(fc.property(fc.array(pieces, { maxLength: 10 }).map((p) => p.join('')), (t) => {
      try {
        const spec = parseForwardSpec(t);
        expect(parseForwardSpec(formatForwardSpec(spec))).toEqual(spec);
      } catch (err) {
        expect(err).toBeInstanceOf(NatdError);
        expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
      }
    }), { numRuns: 3000 });
  });
});

describe('which family a forward serves', () => {
  const network = parseIpv6('fd00:10:10::')!;
  const names4 = new Map([['web', ip('10.77.0.50')], ['old', ip('10.77.0.51')]]);
  const names6 = new Map([['web', 'fd00:10:10::50'], ['v6only', 'fd00:10:10::52'], ['far', '2001:db8:99::1']]);
  const both: GuestResolvers = { v4: (n) => names4.get(n), v6: { network, lookup: (n) => names6.get(n) } };
  const v4only: GuestResolvers = { v4: (n) => names4.get(n) };
  const resolve = (text: string, r: GuestResolvers = both) => resolveFamilies(parseForwardSpec(text), r);

  it('any address + name: IPv4 and IPv6 when both are known, either alone otherwise', () => {
    expect(resolve('tcp:2222=web:22')).toEqual({
      v4: { protocol: 'tcp', hostPort: 2222, guestAddress: ip('10.77.0.50'), guestPort: 22 },
      v6: { family: 'ipv6', protocol: 'tcp', hostPort: 2222, guestAddress: 'fd00:10:10::50', guestPort: 22 },
    });
    expect(Object.keys(resolve('tcp:2222=old:22'))).toEqual(['v4']);
    expect(Object.keys(resolve('tcp:2222=v6only:22'))).toEqual(['v6']);
    expect(Object.keys(resolve('tcp:2222=web:22', v4only))).toEqual(['v4']); // natd serves no IPv6
    expect(() => resolve('tcp:2222=nosuch:22')).toThrow(/no reservation named "nosuch"/);
  });

  it('an IPv4 host or guest address: IPv4 only; an IPv6 one: IPv6 only', () => {
    expect(Object.keys(resolve('tcp:198.51.100.1:2222=web:22'))).toEqual(['v4']);
    expect(resolve('tcp:[2001:db8:51::1]:2222=web:22')).toEqual({ v6: { family: 'ipv6', protocol: 'tcp', hostAddress: '2001:db8:51::1', hostPort: 2222, guestAddress: 'fd00:10:10::50', guestPort: 22 } });
    expect(Object.keys(resolve('tcp:2222=[fd00:10:10::9]:22'))).toEqual(['v6']);
  });

  it('refuses IPv6 without IPv6 on the bridge, an unknown IPv6 name, and a guest outside the prefix (no open relay)', () => {
    expect(() => resolve('tcp:2222=[fd00:10:10::9]:22', v4only)).toThrow(/natd serves no IPv6 on the bridge/);
    expect(() => resolve('tcp:[2001:db8:51::1]:2222=old:22')).toThrow(/no IPv6 address known for "old"/);
    expect(() => resolve('tcp:2222=[2001:db8:99::1]:22')).toThrow(/outside the IPv6 prefix natd serves/);
    expect(() => resolve('tcp:[2001:db8:51::1]:2222=far:22')).toThrow(/outside the IPv6 prefix/);
  });

  it('config: an IPv6 forward needs IPv6 on the bridge and a guest inside subnet6', () => {
    expect(configProblem({ forwards: ['tcp:2222=[fd00:10:10::9]:22'] })).toMatch(/forwards\.0: "tcp:2222=\[fd00:10:10::9\]:22" is over IPv6, but natd serves no IPv6/);
    expect(configProblem({ subnet6: 'fd00:10:10::1/64', forwards: ['tcp:2222=[fd00:99::9]:22'] })).toMatch(/forwards\.0: .*guest fd00:99::9 is not inside subnet6 fd00:10:10::1\/64/);
    expect(resolveConfig({ bridge: 'br0', subnet6: 'fd00:10:10::1/64', forwards: ['tcp:[2001:db8::1]:2222=[fd00:10:10::9]:22'] }).forwards).toHaveLength(1);
  });
});

describe('guest name → IPv6 address (the function the daemon injects)', () => {
  it('takes a reservation\'s ipv6 when the config carries one, canonical, by lower-case name', () => {
    const lookup = guestIpv6Resolver([{ hostname: 'web', ipv6: '[FD00:10:10:0::50]' }, { hostname: 'db' }, { hostname: 'bad', ipv6: 'nope' }]);
    expect(lookup('web')).toBe('fd00:10:10::50');
    expect(lookup('WEB')).toBe('fd00:10:10::50');
    expect(lookup('db')).toBeUndefined();
    expect(lookup('bad')).toBeUndefined();
  });
});

describe('doctor: routed IPv6', () => {
  const base = { bridge: 'br0', subnet6: '2001:db8:77::1/64', forwarding: '1', natdRunning: true, addresses: [{ dev: 'br0', local: '2001:db8:77::1', prefixlen: 64 }, { dev: 'wan0', local: '2001:db8:51::1', prefixlen: 64 }] };
  const messages = (f: ReturnType<typeof diagnoseRoutedIpv6>) => f.map((x) => `${x.severity} ${x.message}`);

  it('a ready host: only the line that the upstream route cannot be checked here', () => {
    expect(messages(diagnoseRoutedIpv6(base))).toEqual([expect.stringMatching(/^ok routed IPv6: whether 2001:db8:77::\/64 is routed to this host cannot be checked from here/)]);
  });

  it('finds a ULA, forwarding off while natd runs, and the prefix also on-link on the uplink', () => {
    expect(messages(diagnoseRoutedIpv6({ ...base, subnet6: 'fd00:77::1/64' }))[0]).toMatch(/^error .*unique-local/);
    expect(messages(diagnoseRoutedIpv6({ ...base, forwarding: '0' }))[0]).toMatch(/^error .*forwarding is not 1 while natd runs/);
    expect(messages(diagnoseRoutedIpv6({ ...base, forwarding: '0', natdRunning: false }))[0]).toMatch(/^ok .*natd turns it on at start/);
    const onLink = diagnoseRoutedIpv6({ ...base, addresses: [...base.addresses, { dev: 'eth0', local: '2001:db8:77::abcd', prefixlen: 64 }] });
    expect(messages(onLink)[0]).toMatch(/^warn .*also on-link on eth0.*natd does not proxy/);
    expect(messages(diagnoseRoutedIpv6({ ...base, subnet6: undefined }))[0]).toMatch(/^error .*has no global IPv6 \/64/);
  });

  it('reads the routed prefix from natd\'s own table', () => {
    const table = buildRuleset({ ...EXAMPLE_INPUT, ipv6: { network: '2001:db8:77::', prefix: 64, gateway: '2001:db8:77::1', mode: 'routed' } });
    const listed = { nftables: table.nftables.flatMap((c) => ('add' in c && 'rule' in c.add ? [{ rule: c.add.rule }] : [])) };
    expect(routedPrefixInTable(listed, 'natd-br0')).toBe('2001:db8:77::');
    const nat = buildRuleset({ ...EXAMPLE_INPUT, ipv6: { network: '2001:db8:77::', prefix: 64, gateway: '2001:db8:77::1' } });
    expect(routedPrefixInTable({ nftables: nat.nftables.flatMap((c) => ('add' in c && 'rule' in c.add ? [{ rule: c.add.rule }] : [])) }, 'natd-br0')).toBeUndefined();
  });
});
