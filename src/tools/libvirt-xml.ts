/**
 * `natd libvirt-xml`: the libvirt definitions that put VMs on natd's bridge.
 *
 * The network uses `<forward mode='bridge'/>`: libvirt then only attaches guests to an existing bridge and runs no
 * dnsmasq, adds no firewall rules and assigns no address, because natd does DHCP, DNS and NAT for that bridge.
 * With it defined (`virsh net-define`, `net-start`, `net-autostart`), `virt-install --network network=virbr10`
 * works; the interface snippet is for `virsh edit` of an existing VM (keep its MAC so the VM keeps its lease).
 */
import { normalizeMac } from '../net/ipv4.js';
import { ErrorCodes, NatdError } from '../errors.js';

/** Escapes text for an XML attribute value or element content. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

// Characters XML 1.0 cannot carry at all, even escaped.
const NOT_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

function attribute(field: string, value: string): string {
  if (value === '' || NOT_XML_CHAR.test(value)) {
    throw new NatdError(ErrorCodes.COMMAND, `${field}: ${JSON.stringify(value)} cannot be written into libvirt XML`);
  }
  return `'${escapeXml(value)}'`;
}

export interface NetworkXmlOptions {
  bridge: string;
  /** libvirt network name; defaults to the bridge name */
  name?: string;
}

/** A libvirt `<network>` attaching guests to the existing bridge, with no libvirt DHCP/DNS/NAT. */
export function networkXml(opts: NetworkXmlOptions): string {
  const bridge = attribute('bridge', opts.bridge);
  return [
    '<network>',
    `  <name>${escapeXml(checked('name', opts.name ?? opts.bridge))}</name>`,
    "  <forward mode='bridge'/>",
    `  <bridge name=${bridge}/>`,
    '</network>',
    '',
  ].join('\n');
}

export interface InterfaceXmlOptions {
  bridge: string;
  /** the VM's existing MAC, so it keeps its address; libvirt generates one when omitted */
  mac?: string;
}

/** The `<interface type='bridge'>` snippet for a VM's domain XML. Throws NatdError(COMMAND) on a malformed MAC. */
export function interfaceXml(opts: InterfaceXmlOptions): string {
  const lines = ["<interface type='bridge'>", `  <source bridge=${attribute('bridge', opts.bridge)}/>`];
  if (opts.mac !== undefined) {
    const mac = normalizeMac(opts.mac);
    if (mac === undefined) throw new NatdError(ErrorCodes.COMMAND, `mac: ${JSON.stringify(opts.mac)} is not a MAC address like 52:54:00:4f:47:f2`);
    lines.push(`  <mac address='${mac}'/>`);
  }
  lines.push("  <model type='virtio'/>", '</interface>', '');
  return lines.join('\n');
}

function checked(field: string, value: string): string {
  attribute(field, value); // same rules as an attribute
  return value;
}

/** The natd settings a libvirt NAT network can carry, in natd's config names (values in dnsmasq's syntax). */
export interface NatNetworkSettings {
  bridge: string;
  bridgeMac?: string;
  mtu?: number;
  domain?: string;
  subnet?: string;
  dhcpRange?: string;
  leaseTime?: number | 'infinite';
  masqueradePorts?: [number, number];
  upstreams?: string[];
  server?: string[];
  local?: string[];
  hostRecord?: string[];
  srvHost?: string[];
  txtRecord?: string[];
  /** dnsmasq dhcp-boot specs; libvirt's <bootp> holds one, the first without tags */
  dhcpBoot?: string[];
  enableTftp?: boolean;
  tftpRoot?: string;
  routes?: string[];
  reservations?: { mac: string; address: string; hostname?: string }[];
  /** issue 14: the IPv6 gateway/64 (libvirt <ip family='ipv6'> with <nat ipv6='yes'/>), routed or not, DHCPv6 (libvirt-v6.ts) */
  subnet6?: string;
  ipv6Mode?: string;
  dhcp6Range?: string;
}

// issue 14
import { ipv6Xml, natOpenTag } from './libvirt-v6.js';

const attrs = (pairs: [string, string | number | undefined][]): string =>
  pairs.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => ` ${k}=${attribute(k, String(v))}`).join('');

/** `/a/b/ADDR` → the domains and the address (empty for local=/a/). */
function splitDomains(spec: string): { domains: string[]; addr: string } {
  const parts = spec.split('/');
  return { domains: parts.slice(1, -1).filter(Boolean), addr: parts[parts.length - 1] ?? '' };
}

function dnsXml(s: NatNetworkSettings): string[] {
  const lines: string[] = [];
  for (const addr of s.upstreams ?? []) lines.push(`    <forwarder${attrs([['addr', addr]])}/>`);
  for (const spec of [...(s.server ?? []), ...(s.local ?? [])]) {
    const { domains, addr } = splitDomains(spec);
    for (const domain of domains) lines.push(`    <forwarder${attrs([['domain', domain], ['addr', addr]])}/>`);
  }
  for (const spec of s.txtRecord ?? []) {
    const comma = spec.indexOf(',');
    const name = comma === -1 ? spec : spec.slice(0, comma);
    const value = comma === -1 ? undefined : spec.slice(comma + 1).replace(/^"|"$/g, '').replace(/\\"/g, '"');
    lines.push(`    <txt${attrs([['name', name], ['value', value]])}/>`);
  }
  for (const spec of s.srvHost ?? []) {
    const [owner = '', target, port, priority, weight] = spec.split(',');
    const [service, protocol, ...domain] = owner.split('.');
    lines.push(
      `    <srv${attrs([['service', service?.replace(/^_/, '')], ['protocol', protocol?.replace(/^_/, '')], ['domain', domain.join('.')], ['target', target], ['port', port], ['priority', priority], ['weight', weight]])}/>`,
    );
  }
  for (const spec of s.hostRecord ?? []) {
    const fields = spec.split(',');
    const ipIndex = fields.findIndex((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
    if (ipIndex <= 0) continue; // no IPv4 address: libvirt's <host> needs one
    lines.push(`    <host${attrs([['ip', fields[ipIndex]]])}>`, ...fields.slice(0, ipIndex).map((n) => `      <hostname>${escapeXml(n)}</hostname>`), '    </host>');
  }
  return lines.length ? ['  <dns>', ...lines, '  </dns>'] : [];
}

function ipXml(s: NatNetworkSettings): string[] {
  if (!s.subnet) return [];
  const [address, prefix] = s.subnet.split('/');
  const lines = [`  <ip${attrs([['address', address], ['prefix', prefix]])}>`];
  if (s.enableTftp && s.tftpRoot) lines.push(`    <tftp${attrs([['root', s.tftpRoot]])}/>`);
  const dhcp: string[] = [];
  if (s.dhcpRange) {
    const [start, end] = s.dhcpRange.split('-');
    const lease = s.leaseTime === undefined ? undefined : s.leaseTime === 'infinite' ? 0 : s.leaseTime;
    dhcp.push(lease === undefined ? `      <range${attrs([['start', start], ['end', end]])}/>` : `      <range${attrs([['start', start], ['end', end]])}>`);
    if (lease !== undefined) dhcp.push(`        <lease${attrs([['expiry', lease], ['unit', 'seconds']])}/>`, '      </range>');
  }
  for (const r of s.reservations ?? []) dhcp.push(`      <host${attrs([['mac', r.mac], ['name', r.hostname], ['ip', r.address]])}/>`);
  const boot = s.dhcpBoot?.find((spec) => !spec.startsWith('tag:'));
  if (boot) {
    const [file, , server] = boot.split(',');
    dhcp.push(`      <bootp${attrs([['file', file], ['server', server]])}/>`);
  }
  if (dhcp.length) lines.push('    <dhcp>', ...dhcp, '    </dhcp>');
  lines.push('  </ip>');
  return lines;
}

/**
 * The libvirt NAT network with natd's settings: what `natd import-libvirt` reads, emitted back. It is the way back
 * to libvirt's own dnsmasq and iptables rules (libvirt runs them for a NAT network), e.g. to compare or roll back.
 */
export function natNetworkXml(s: NatNetworkSettings, name = s.bridge): string {
  const [portStart, portEnd] = s.masqueradePorts ?? [1024, 65535];
  const routes = (s.routes ?? []).map((spec) => {
    const [net = '', gateway] = spec.split('=');
    const [address, prefix] = net.split('/');
    return `  <route${attrs([['address', address], ['prefix', prefix], ['gateway', gateway]])}/>`;
  });
  return [
    '<network>',
    `  <name>${escapeXml(checked('name', name))}</name>`,
    "  <forward mode='nat'>",
    natOpenTag(s), // issue 14: NAT66 or routed IPv6
    `      <port${attrs([['start', portStart], ['end', portEnd]])}/>`,
    '    </nat>',
    '  </forward>',
    `  <bridge name=${attribute('bridge', s.bridge)} stp='on' delay='0'/>`,
    ...(s.bridgeMac ? [`  <mac${attrs([['address', s.bridgeMac]])}/>`] : []),
    ...(s.mtu ? [`  <mtu${attrs([['size', s.mtu]])}/>`] : []),
    ...(s.domain ? [`  <domain${attrs([['name', s.domain], ['localOnly', 'yes']])}/>`] : []),
    ...dnsXml(s),
    ...ipXml(s),
    ...ipv6Xml(s, attrs), // issue 14
    ...routes,
    '</network>',
    '',
  ].join('\n');
}
