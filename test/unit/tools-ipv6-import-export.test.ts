/**
 * issue 14: the IPv6 settings through natd's import and export tools: dnsmasq's IPv6 dhcp-range, enable-ra,
 * ra-param and dhcp-host [v6] (import-dnsmasq), libvirt's routed IPv6 and DHCPv6 range (libvirt-xml both ways).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseDnsmasqConf } from '../../src/tools/import-dnsmasq.js';
import { dropUnknownV6Fields } from '../../src/tools/import-dnsmasq-v6.js';
import { parseLibvirtNetwork } from '../../src/tools/import-libvirt.js';
import { natNetworkXml } from '../../src/tools/libvirt-xml.js';
import { resolveConfig } from '../../src/config.js';

/** the DHCPv6 fields, which this build's RawSettings does not type (the DHCPv6 work adds them) */
type V6 = { dhcp6Range?: string; dhcpHost?: string[] };
const at = (problems: { line: number; message: string }[], line: number) => problems.filter((p) => p.line === line).map((p) => p.message).join(' | ');

describe('import-dnsmasq: IPv6 lines', () => {
  it('carries a stateful IPv6 range with its lease time as dhcp6Range, canonical', () => {
    const { settings, problems } = parseDnsmasqConf('interface=br6\ndhcp-range=FD00:0::100,fd00::01ff,64,12h\n', 'c');
    expect(settings).toMatchObject({ bridge: 'br6', dhcp6Range: 'fd00::100-fd00::1ff,12h' });
    expect(problems).toEqual([]);
    expect((parseDnsmasqConf('dhcp-range=fd00::100,fd00::1ff\n', 'c').settings as V6).dhcp6Range).toBe('fd00::100-fd00::1ff');
    expect((parseDnsmasqConf('dhcp-range=fd00::100,fd00::1ff,64,3600\n', 'c').settings as V6).dhcp6Range).toBe('fd00::100-fd00::1ff,3600');
  });

  it('keeps the IPv4 range and the IPv6 range apart', () => {
    const { settings } = parseDnsmasqConf('dhcp-range=10.1.0.10,10.1.0.20,12h\ndhcp-range=fd00::10,fd00::20,64,1h\n', 'c');
    expect(settings).toMatchObject({ dhcpRange: '10.1.0.10-10.1.0.20', leaseTime: 43200, dhcp6Range: 'fd00::10-fd00::20,1h' });
  });

  it('notes SLAAC-only ranges and enable-ra as things natd does anyway, and reports what it cannot carry', () => {
    const text = [
      'dhcp-range=::,constructor:br6,ra-only', // 1
      'enable-ra', // 2
      'dhcp-range=::100,::1ff,constructor:br6,64,12h', // 3
      'dhcp-range=fd00::100,fd00::1ff,56', // 4
      'ra-param=br6,mtu:1400,high,60,1800', // 5
      'dhcp-range=fd00::100,fd00::1ff,64,12h', // 6
      'dhcp-range=fd00::300,fd00::3ff', // 7
      'dhcp-range=fd00::,slaac', // 8
    ].join('\n');
    const { settings, problems, ignored } = parseDnsmasqConf(text, 'c');
    expect(ignored.filter((i) => i.line === 1 || i.line === 2 || i.line === 8).map((i) => i.line)).toEqual([1, 2, 8]);
    expect(ignored.find((i) => i.line === 2)!.reason).toMatch(/router advertisements whenever it serves IPv6/);
    expect(at(problems, 3)).toMatch(/constructor:br6 ranges are relative .* --dhcp6-range START-END; range skipped/);
    expect(at(problems, 4)).toMatch(/prefix length 56; natd serves one \/64/);
    expect(at(problems, 5)).toMatch(/ra-param=br6,mtu:1400,high,60,1800: not carried \(mtu:1400: natd advertises the bridge's MTU.*router priority.*RFC 4861 timers/);
    expect(at(problems, 7)).toMatch(/second IPv6 dhcp-range/);
    expect((settings as V6).dhcp6Range).toBe('fd00::100-fd00::1ff,12h');
  });

  it('dhcp-host with an [IPv6] address: the IPv4 reservation as before, the line kept for DHCPv6', () => {
    const text = 'dhcp-host=52:54:00:aa:bb:01,10.1.0.5,[fd00::5],web\ndhcp-host=52:54:00:aa:bb:02,[fd00::6],db\n';
    const { hosts, settings, problems } = parseDnsmasqConf(text, 'c');
    expect(problems).toEqual([]);
    expect(hosts).toHaveLength(1);
    expect(hosts[0]).toMatchObject({ mac: '52:54:00:aa:bb:01', hostname: 'web' });
    expect((settings as V6).dhcpHost).toEqual(['52:54:00:aa:bb:01,10.1.0.5,[fd00::5],web', '52:54:00:aa:bb:02,[fd00::6],db']);
  });

  it('an IPv6 listen-address is the gateway: subnet6', () => {
    const { settings, problems } = parseDnsmasqConf('listen-address=10.1.0.1,fd00:1::1,fe80::1\n', 'c');
    expect(settings.subnet6).toBe('fd00:1::1/64');
    expect(problems).toEqual([]);
  });

  it('never throws on arbitrary IPv6-ish lines (property)', () => {
    const piece = fc.constantFrom('dhcp-range=', 'ra-param=', 'dhcp-host=', 'enable-ra', '::', 'fd00::1', ',', '64', '12h', 'constructor:x', 'ra-only', '[fd00::5]', 'mtu:1280', 'high', '10.0.0.1', 'x');
    fc.assert(fc.property(fc.array(fc.array(piece, { maxLength: 8 }).map((p) => p.join('')), { maxLength: 6 }), (lines) => {
      const out = parseDnsmasqConf(lines.join('\n'), 'c');
      const v6 = out.settings as V6;
      if (v6.dhcp6Range !== undefined) expect(v6.dhcp6Range).toMatch(/^[0-9a-f:]+-[0-9a-f:]+(,.+)?$/);
    }), { numRuns: 1000 });
  });

  it('drops the DHCPv6 fields a natd build does not take, with a line each', () => {
    const settings: Record<string, unknown> = { bridge: 'br6', dhcp6Range: 'fd00::10-fd00::20', dhcpHost: ['x'] };
    const lines: string[] = [];
    dropUnknownV6Fields(settings, (f) => f === 'dhcpHost', (field, message) => lines.push(`${field}: ${message}`));
    expect(settings).toEqual({ bridge: 'br6', dhcpHost: ['x'] });
    expect(lines).toEqual(['dhcp6Range: "fd00::10-fd00::20": this natd has no dhcp6Range setting (DHCPv6); not carried']);
  });
});

describe('libvirt-xml and import-libvirt: routed IPv6 and the DHCPv6 range', () => {
  const base = { bridge: 'virbr6', subnet: '10.6.0.1/24', subnet6: '2001:db8:6::1/64' };

  it('nat mode writes <nat ipv6=yes>; routed writes <nat> (libvirt then routes the IPv6 prefix)', () => {
    expect(natNetworkXml(base)).toContain("<nat ipv6='yes'>");
    const routed = natNetworkXml({ ...base, ipv6Mode: 'routed' });
    expect(routed).toContain('    <nat>');
    expect(routed).not.toContain("ipv6='yes'");
    expect(routed).toContain("<ip family='ipv6' address='2001:db8:6::1' prefix='64'/>");
  });

  it('writes the DHCPv6 range with its lease in seconds', () => {
    const xml = natNetworkXml({ ...base, dhcp6Range: '2001:db8:6::100-2001:db8:6::1ff,12h' });
    expect(xml).toContain([
      "  <ip family='ipv6' address='2001:db8:6::1' prefix='64'>",
      '    <dhcp>',
      "      <range start='2001:db8:6::100' end='2001:db8:6::1ff'>",
      "        <lease expiry='43200' unit='seconds'/>",
      '      </range>',
      '    </dhcp>',
      '  </ip>',
    ].join('\n'));
  });

  it('round-trips: what libvirt-xml writes, import-libvirt reads back (mode and range)', () => {
    for (const ipv6Mode of ['nat', 'routed'] as const) {
      for (const dhcp6Range of [undefined, '2001:db8:6::100-2001:db8:6::1ff', '2001:db8:6::100-2001:db8:6::1ff,3600']) {
        const xml = natNetworkXml({ ...base, ipv6Mode, ...(dhcp6Range ? { dhcp6Range } : {}) });
        const { settings } = parseLibvirtNetwork(xml);
        expect(settings.subnet6).toBe('2001:db8:6::1/64');
        expect(settings.ipv6Mode).toBe(ipv6Mode === 'routed' ? 'routed' : undefined);
        expect(settings.dhcp6Range).toBe(dhcp6Range);
      }
    }
  });

  it('imports a routed ULA as NAT66 with a problem line (natd routes global prefixes only); forward mode route as routed', () => {
    const ula = parseLibvirtNetwork("<network><name>u</name><forward mode='nat'/><bridge name='virbr8'/><ip family='ipv6' address='fd00:8::1' prefix='64'/></network>");
    expect(ula.settings.ipv6Mode).toBeUndefined();
    expect(ula.problems.map((p) => p.message).join()).toMatch(/unique-local and natd routes only global prefixes: imported as NAT66/);
    const route = parseLibvirtNetwork("<network><name>r</name><forward mode='route'/><bridge name='virbr8'/><ip address='10.8.0.1' prefix='24'/><ip family='ipv6' address='2001:db8:8::1' prefix='64'/></network>");
    expect(route.settings.ipv6Mode).toBe('routed');
    expect(route.problems.map((p) => p.message).join()).toMatch(/mode 'route': natd NATs IPv4 always/);
    expect(() => resolveConfig({}, route.settings)).not.toThrow();
  });
});
