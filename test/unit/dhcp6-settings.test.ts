/** issue 14: --dhcp6-range, IPv6 --dhcp-range, --dhcp-host by DUID/MAC: parsed into Config.dhcp6, bad values named. */
import { describe, expect, it } from 'vitest';
import { parseArgs } from 'node:util';
import { resolveConfig } from '../../src/config.js';
import { DAEMON_OPTIONS, HELP, settingsFromFlags } from '../../src/cli.js';
import { ErrorCodes, NatdError } from '../../src/errors.js';
import { checkDhcp6BeforeStart, dhcp6CoreSettings, lifetimesFor, parseDhcp6Range, parseDhcpHostLine } from '../../src/dhcp6/settings.js';
import { formatIpv6, parseIpv6 } from '../../src/ipv6/address.js';
import { deriveUla } from '../../src/ipv6/ula.js';

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

const flags = (...args: string[]) => settingsFromFlags(parseArgs({ args, options: DAEMON_OPTIONS, allowPositionals: true, strict: true }).values);
const BASE = { bridge: 'virbr10', subnet6: 'fd00:10::1/64' };

describe('Config.dhcp6', () => {
  it('is undefined without IPv6, stateless with IPv6 and no range', () => {
    expect(resolveConfig({ bridge: 'virbr10' }).dhcp6).toBeUndefined();
    expect(resolveConfig(BASE).dhcp6).toEqual({ range: undefined, leaseSeconds: 3600, reservations: [], rapidCommit: true });
  });

  it('takes --dhcp6-range with a lease time, and dnsmasq\'s IPv6 --dhcp-range next to an IPv4 one', () => {
    const a = resolveConfig(flags('--bridge', 'virbr10', '--subnet6', 'fd00:10::1/64', '--dhcp6-range', 'fd00:10::100-fd00:10::1ff,12h'));
    expect(a.dhcp6).toMatchObject({ range: { start: { kind: 'full', address: 'fd00:10::100' }, end: { kind: 'full', address: 'fd00:10::1ff' } }, leaseSeconds: 43200 });
    const b = resolveConfig(flags('--bridge', 'virbr10', '--subnet', '10.10.0.1/24', '--subnet6', 'fd00:10::1/64', '--dhcp-range', '10.10.0.10,10.10.0.99,1h', '--dhcp-range', 'fd00:10::100,fd00:10::1ff,64,2h', '--no-dhcp-rapid-commit'));
    expect(b.dhcpRange).toBeDefined();
    expect(b.dhcp6).toMatchObject({ range: { start: { address: 'fd00:10::100' } }, leaseSeconds: 7200, rapidCommit: false });
    // the config file's dhcpRange may be IPv6 too
    expect(resolveConfig({ ...BASE, dhcpRange: '::100,::1ff' }).dhcp6?.range).toEqual({ start: { kind: 'suffix', address: '::100' }, end: { kind: 'suffix', address: '::1ff' } });
  });

  it('takes --dhcp-host lines by DUID and by MAC; a line with an IPv4 address is an IPv4 reservation too', () => {
    const c = resolveConfig(flags('--bridge', 'virbr10', '--subnet', '10.10.0.1/24', '--subnet6', 'fd00:10::1/64',
      '--dhcp-host', 'id:00:01:00:01:2b:3c:4d:5e:52:54:00:aa:bb:cc,[fd00:10::5],db',
      '--dhcp-host', '52:54:00:aa:bb:dd,10.10.0.6,[::6],web',
      '--dhcp-host', '52:54:00:aa:bb:ee,10.10.0.7,mail'));
    expect(c.dhcp6?.reservations).toEqual([
      { duid: '00:01:00:01:2b:3c:4d:5e:52:54:00:aa:bb:cc', address: { kind: 'full', address: 'fd00:10::5' }, hostname: 'db', field: 'dhcpHost.0' },
      { mac: '52:54:00:aa:bb:dd', address: { kind: 'suffix', address: '::6' }, hostname: 'web', field: 'dhcpHost.1' },
    ]);
    expect(c.reservations.map((r) => [r.mac, r.hostname])).toEqual([['52:54:00:aa:bb:dd', 'web'], ['52:54:00:aa:bb:ee', 'mail']]);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['a range without IPv6', { bridge: 'virbr10', dhcp6Range: 'fd00::100-fd00::1ff' }, /dhcp6Range: DHCPv6 needs IPv6 on the bridge/],
    ['a v6 host without IPv6', { bridge: 'virbr10', dhcpHost: ['52:54:00:aa:bb:cc,[fd00::5]'] }, /dhcpHost\.0: an IPv6 reservation needs IPv6/],
    ['a range outside the /64', { ...BASE, dhcp6Range: 'fd00:99::100-fd00:99::1ff' }, /dhcp6Range: .*outside the served fd00:10::\/64/],
    ['a range over the gateway', { ...BASE, dhcp6Range: 'fd00:10::0:1-fd00:10::ff' }, /dhcp6Range: .*contains the gateway/],
    ['a suffix range over auto\'s gateway', { bridge: 'virbr10', ipv6: 'auto', dhcp6Range: '::1-::ff' }, /dhcp6Range: .*contains the gateway/],
    ['start after end', { ...BASE, dhcp6Range: 'fd00:10::1ff-fd00:10::100' }, /dhcp6Range: start is after end/],
    ['a v4 address as a v6 range', { ...BASE, dhcp6Range: '10.0.0.1-10.0.0.9' }, /dhcp6Range: not two IPv6 addresses/],
    ['a prefix length other than 64', { ...BASE, dhcpRange: 'fd00:10::100,fd00:10::1ff,48' }, /dhcp6Range: the prefix length must be 64/],
    ['mixed suffix and full ends', { ...BASE, dhcp6Range: '::100-fd00:10::1ff' }, /both as ::suffixes/],
    ['two v6 ranges', { ...BASE, dhcp6Range: ['::100-::1ff', '::200-::2ff'] }, /dhcp6Range: give one IPv6 range/],
    ['a reservation outside the /64', { ...BASE, dhcpHost: ['52:54:00:aa:bb:cc,[fd00:99::5]'] }, /dhcpHost\.0: \[fd00:99::5\] is outside the served/],
    ['a reservation of the gateway', { ...BASE, dhcpHost: ['52:54:00:aa:bb:cc,[::1]'] }, /dhcpHost\.0: \[::1\] is the gateway's own address/],
    ['the same v6 address twice', { ...BASE, dhcpHost: ['52:54:00:aa:bb:cc,[::5]', '52:54:00:aa:bb:cd,[::5]'] }, /dhcpHost\.1: address ::5 is already reserved by dhcpHost\.0/],
    ['the same DUID twice', { ...BASE, dhcpHost: ['id:00:03:00:01:52:54:00:aa:bb:cc,[::5]', 'id:00:03:00:01:52:54:00:aa:bb:cc,[::6]'] }, /dhcpHost\.1: DUID .* already reserved/],
    ['a bad DUID', { ...BASE, dhcpHost: ['id:xyz,[::5]'] }, /dhcpHost\.0: "id:xyz" is not id: followed by a DUID/],
    ['a v6 host without DUID or MAC', { ...BASE, dhcpHost: ['[::5],db'] }, /dhcpHost\.0: an IPv6 reservation needs id:DUID or a MAC/],
    ['an IPv4 host by DUID only', { ...BASE, dhcpHost: ['id:00:03:00:01:52:54:00:aa:bb:cc,10.10.0.5'] }, /dhcpHost\.0: an IPv4 reservation needs a MAC/],
    ['junk in a host line', { ...BASE, dhcpHost: ['52:54:00:aa:bb:cc,[::5],set:x'] }, /dhcpHost\.0: unrecognised field "set:x"/],
  ];
  it.each(bad)('refuses %s, naming the field', (_name, settings, message) => {
    expect(problemOf(settings)).toMatch(message);
  });

  it('--help and the flags list the new options', () => {
    expect(HELP).toContain('--dhcp6-range START-END[,LEASETIME]');
    expect(HELP).toContain('--dhcp-host SPEC');
  });
});

describe('dhcp6 settings, pure parts', () => {
  it('parses range forms', () => {
    const p: string[] = [];
    expect(parseDhcp6Range('::100-::1ff', 'r', p)).toEqual({ start: { kind: 'suffix', address: '::100' }, end: { kind: 'suffix', address: '::1ff' } });
    expect(parseDhcp6Range('fd00::a, fd00::b, 64, infinite', 'r', p)).toMatchObject({ leaseSeconds: 0xffffffff });
    expect(parseDhcp6Range('fd00::a,fd00::b,ra-only', 'r', p)).toBeUndefined();
    expect(p).toEqual([expect.stringMatching(/^r: "ra-only" is neither/)]);
  });

  it('parses host lines in any order', () => {
    const p: string[] = [];
    expect(parseDhcpHostLine('web, [fd00::5], 52:54:00:AA:BB:CC, 10.10.0.5, 2h', 'h', p)).toEqual({ hostname: 'web', ipv6: { kind: 'full', address: 'fd00::5' }, mac: '52:54:00:aa:bb:cc', ipv4: 0x0a0a0005, leaseSeconds: 7200 });
    expect(p).toEqual([]);
  });

  it('places suffixes in the served /64 at start, and refuses full addresses outside it (--ipv6 auto)', () => {
    const config = resolveConfig({ bridge: 'virbr10', ipv6: 'auto', dhcp6Range: '::100-::1ff', dhcpHost: ['52:54:00:aa:bb:cc,[::5],db'] });
    const served = { gateway: parseIpv6('fd12:3456:789a::1')!, network: parseIpv6('fd12:3456:789a::')! };
    expect(dhcp6CoreSettings(config.dhcp6!, served)).toEqual({
      range: { start: 'fd12:3456:789a::100', end: 'fd12:3456:789a::1ff' },
      reservations: [{ mac: '52:54:00:aa:bb:cc', address: 'fd12:3456:789a::5', hostname: 'db' }],
      leaseSeconds: 3600,
      rapidCommit: true,
    });
    const full = resolveConfig({ bridge: 'virbr10', ipv6: 'auto', dhcp6Range: 'fd00:10::100-fd00:10::1ff' });
    expect(() => dhcp6CoreSettings(full.dhcp6!, served)).toThrow(/dhcp6Range: .*outside the served fd12:3456:789a::\/64/);
  });

  it('check-config checks full addresses against the ULA --ipv6 auto will derive, as the daemon\'s start does', () => {
    const machineId = '0123456789abcdef0123456789abcdef';
    const ula = deriveUla('virbr10', machineId).gateway;
    const inside = formatIpv6(ula).replace(/::1$/, '::5');
    const good = resolveConfig({ bridge: 'virbr10', ipv6: 'auto', dhcpHost: [`52:54:00:aa:bb:cc,[${inside}]`] });
    expect(() => checkDhcp6BeforeStart(good, machineId)).not.toThrow();
    const bad = resolveConfig({ bridge: 'virbr10', ipv6: 'auto', dhcpHost: ['52:54:00:aa:bb:cc,[fd00:99::5]'] });
    expect(() => checkDhcp6BeforeStart(bad, machineId)).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG, message: expect.stringMatching(/dhcpHost\.0: \[fd00:99::5\] is outside the served/) }));
    expect(() => checkDhcp6BeforeStart(resolveConfig({ bridge: 'virbr10' }), machineId)).not.toThrow();
  });

  it('maps lease times to lifetimes, infinite to infinity', () => {
    expect(lifetimesFor(3600)).toEqual({ preferredLifetime: 3600, validLifetime: 3600 });
    expect(lifetimesFor(0xffffffff)).toEqual({ preferredLifetime: 0xffffffff, validLifetime: 0xffffffff });
  });
});

describe('dhcp6CoreOptions', () => {
  it('builds a working core from the config and the served /64', async () => {
    const { Dhcp6Core } = await import('../../src/dhcp6/core.js');
    const { duidLl } = await import('../../src/dhcp6/duid.js');
    const { TestClient6, T, liveAddresses, replyOf } = await import('../support/dhcp6-client.js');
    const config = resolveConfig({ bridge: 'virbr10', ipv6: 'auto', dhcp6Range: '::100-::100,2h', dhcpHost: ['52:54:00:aa:bb:cc,[::5],db'], domain: 'vm' });
    const served = { gateway: parseIpv6('fd12:3456:789a::1')!, network: parseIpv6('fd12:3456:789a::')! };
    const { dhcp6CoreOptions } = await import('../../src/dhcp6/settings.js');
    const options = dhcp6CoreOptions({ dhcp6: config.dhcp6!, searchDomains: config.searchDomains }, served, { serverDuid: duidLl('02:00:00:00:00:01'), dnsServers: ['fd12:3456:789a::1'] });
    expect(options).toMatchObject({ prefix: 'fd12:3456:789a::', serverAddress: 'fd12:3456:789a::1', range: { start: 'fd12:3456:789a::100', end: 'fd12:3456:789a::100' }, preferredLifetime: 7200, validLifetime: 7200, domainSearch: ['vm'], rapidCommit: true });
    const core = new Dhcp6Core(options);
    const reply = replyOf((await core.handle(new TestClient6('52:54:00:aa:bb:cc').bytes(T.SOLICIT, { rapidCommit: true }), { address: 'fe80::1' })).reply);
    expect(liveAddresses(reply)).toEqual(['fd12:3456:789a::5']);
    expect(reply.domainList).toEqual(['vm']);
  });
});
