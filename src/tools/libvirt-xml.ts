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
