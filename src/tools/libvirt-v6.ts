/**
 * issue 14: natd's IPv6 settings and libvirt's network XML, both ways (libvirt-xml.ts writes, import-libvirt.ts reads).
 *
 * The mapping: a libvirt `<forward mode='nat'>` network with an `<ip family='ipv6'>` ROUTES the IPv6 prefix (libvirt
 * adds its routing firewall rules for it) unless `<nat ipv6='yes'/>` asks for NAT66. So
 *   natd --ipv6-mode nat     ↔ <forward mode='nat'><nat ipv6='yes'>   + <ip family='ipv6' .../>
 *   natd --ipv6-mode routed  ↔ <forward mode='nat'><nat>               + <ip family='ipv6' .../>
 * and `<forward mode='route'>` (IPv4 routed too) imports as routed IPv6 with a problem line: natd always NATs IPv4.
 *   dhcp6Range "START-END[,LEASE]" ↔ <ip family='ipv6'><dhcp><range start end>[<lease expiry unit='seconds'/>]
 */
import { formatIpv6, parseIpv6 } from '../ipv6/address.js';
import { parseLeaseTime } from '../dhcp/option-config.js';
import { INFINITE_LEASE_SECONDS } from '../dhcp/types.js';
import { isUniqueLocal } from '../ipv6/egress-config.js';

export interface V6XmlSettings {
  subnet6?: string;
  ipv6Mode?: string;
  dhcp6Range?: string;
}

type Attr = (pairs: [string, string | number | undefined][]) => string;

/** `<nat ipv6='yes'>` for NAT66, `<nat>` when the prefix is routed (or there is no IPv6). */
export function natOpenTag(s: V6XmlSettings): string {
  return s.subnet6 && s.ipv6Mode !== 'routed' ? "    <nat ipv6='yes'>" : '    <nat>';
}

/** The `<ip family='ipv6'>` element, with the DHCPv6 range when dhcp6Range is set. */
export function ipv6Xml(s: V6XmlSettings, attrs: Attr): string[] {
  if (!s.subnet6) return [];
  const [address, prefix] = s.subnet6.split('/');
  const open = `  <ip${attrs([['family', 'ipv6'], ['address', address], ['prefix', prefix]])}`;
  const range = s.dhcp6Range ? /^([^-,]+)-([^,]+)(?:,(.+))?$/.exec(s.dhcp6Range.trim()) : null;
  if (!range) return [`${open}/>`];
  const lease = range[3] === undefined ? undefined : parseLeaseTime(range[3]);
  const rangeAttrs = attrs([['start', range[1]], ['end', range[2]]]);
  const rangeLines = lease === undefined
    ? [`      <range${rangeAttrs}/>`]
    : [`      <range${rangeAttrs}>`, `        <lease${attrs([['expiry', lease === INFINITE_LEASE_SECONDS ? 0 : lease], ['unit', 'seconds']])}/>`, '      </range>'];
  return [`${open}>`, '    <dhcp>', ...rangeLines, '    </dhcp>', '  </ip>'];
}

export interface V6ImportSink {
  settings: Record<string, unknown>;
  problem(element: string, message: string): void;
}

/** `<range start end>` of an IPv6 `<dhcp>` → dhcp6Range (`leaseSeconds` from the range's `<lease>`, if any). */
export function importDhcp6Range(start: string | undefined, end: string | undefined, leaseSeconds: number | undefined, where: string, sink: V6ImportSink): void {
  const a = parseIpv6(start ?? '');
  const b = parseIpv6(end ?? '');
  if (!a || !b) return sink.problem(where, `start/end are not IPv6 addresses (${start ?? ''}, ${end ?? ''}); skipped`);
  if (sink.settings.dhcp6Range !== undefined) return sink.problem(where, 'a second DHCPv6 range: natd serves one; skipped');
  sink.settings.dhcp6Range = `${formatIpv6(a)}-${formatIpv6(b)}${leaseSeconds === undefined ? '' : `,${leaseSeconds === 0 ? 'infinite' : leaseSeconds}`}`;
}

/** After the `<ip>` elements: the IPv6 mode the network's `<forward>` means, when it has an IPv6 prefix. */
export function importIpv6Mode(forwardMode: string, natIpv6: string | undefined, sink: V6ImportSink): void {
  const subnet6 = sink.settings.subnet6;
  if (typeof subnet6 !== 'string') return;
  const routed = forwardMode === 'route' || (forwardMode === 'nat' && natIpv6 !== 'yes');
  if (!routed) return; // nat, natd's default
  const gateway = parseIpv6(subnet6.split('/')[0]!);
  if (gateway && isUniqueLocal(gateway)) {
    return sink.problem('forward/nat', `libvirt routes the IPv6 prefix ${subnet6} (no <nat ipv6='yes'/>), but it is unique-local and natd routes only global prefixes: imported as NAT66 (ipv6Mode nat)`);
  }
  sink.settings.ipv6Mode = 'routed';
}
