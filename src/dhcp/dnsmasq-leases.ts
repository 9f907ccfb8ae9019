/**
 * Import of a dnsmasq leases file, so VMs keep their addresses when an operator switches to natd.
 * Format (one lease per line, space-separated): `<expiry epoch s> <mac> <ip> <hostname|*> <clientid|*>`.
 * DHCPv6 sections (`duid ...` and the lines after it, with IPv6 addresses) are skipped.
 * Never throws: unusable lines are reported with file and line number and the rest still loads.
 */
import type { Lease } from './types.js';
import { formatIpv4, parseIpv4, subnetContains, type Subnet } from '../net/ipv4.js';
import { sanitizeHostname, type FileProblem } from './hostsfile.js';

export interface DnsmasqLeasesOptions {
  /** ms epoch; the base for leases dnsmasq recorded as infinite */
  now: number;
  /** when given, leases outside it are reported and skipped */
  subnet?: Subnet;
}

export interface DnsmasqLeasesResult {
  /** Every usable lease, expired ones included (the lease store drops those on load). */
  leases: Lease[];
  problems: FileProblem[];
}

/**
 * dnsmasq writes expiry 0 for an infinite lease. natd never stores infinite leases, so it grants one day: long
 * enough for the VM to renew against natd (which then answers with a normal lease), and the address stays the
 * VM's meanwhile.
 */
const INFINITE_LEASE_GRACE_MS = 24 * 60 * 60 * 1000;

const HEX_BYTES = /^[0-9a-f]{1,2}(?::[0-9a-f]{1,2})*$/i;

/** `aa:b:cc` -> ['aa','0b','cc']; undefined when not colon-separated hex. */
function hexBytes(text: string): string[] | undefined {
  if (!HEX_BYTES.test(text)) return undefined;
  return text.toLowerCase().split(':').map((b) => b.padStart(2, '0'));
}

/**
 * dnsmasq prints Ethernet addresses bare and other hardware types as `<htype hex>-<bytes>`.
 * Returns the hardware type and the address bytes.
 */
function parseHardwareAddress(field: string): { htype: number; bytes: string[] } | undefined {
  const m = /^(?:([0-9a-f]{1,2})-)?([0-9a-f:]+)$/i.exec(field);
  if (!m) return undefined;
  const bytes = hexBytes(m[2]!);
  if (!bytes || bytes.length > 16) return undefined;
  const htype = m[1] === undefined ? 1 : parseInt(m[1], 16);
  if (htype === 1 && bytes.length !== 6) return undefined;
  return { htype, bytes };
}

export function parseDnsmasqLeases(text: string, file: string, options: DnsmasqLeasesOptions): DnsmasqLeasesResult {
  const leases: Lease[] = [];
  const problems: FileProblem[] = [];
  const byClient = new Map<string, number>();
  const byAddress = new Map<number, number>();
  let inDhcpv6Section = false;

  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const report = (message: string): void => void problems.push({ file, line: lineNo, message });
    const content = lines[i]!.trim();
    if (content === '' || content.startsWith('#')) continue;
    const fields = content.split(/\s+/);
    if (fields[0] === 'duid') {
      inDhcpv6Section = true; // dnsmasq writes the server DUID, then its DHCPv6 leases
      continue;
    }
    if (fields.length < 4 || fields.length > 5) {
      report(`expected '<expiry> <mac> <ip> <hostname|*> [<client id|*>]', got ${fields.length} fields; line skipped`);
      continue;
    }
    const [expiryField, macField, ipField, nameField, idField = '*'] = fields as [string, string, string, string, string?];
    if (ipField.includes(':')) {
      if (!inDhcpv6Section) report('IPv6 lease skipped (natd serves DHCPv4 only)');
      continue;
    }

    if (!/^\d{1,15}$/.test(expiryField)) {
      report(`invalid expiry '${expiryField.slice(0, 40)}'; line skipped`);
      continue;
    }
    const expirySeconds = Number(expiryField);
    const expiresAt = expirySeconds === 0 ? options.now + INFINITE_LEASE_GRACE_MS : expirySeconds * 1000;

    const hw = parseHardwareAddress(macField);
    if (!hw) {
      report(`invalid hardware address '${macField.slice(0, 60)}'; line skipped`);
      continue;
    }
    const address = parseIpv4(ipField);
    if (address === undefined) {
      report(`invalid IPv4 address '${ipField.slice(0, 40)}'; line skipped`);
      continue;
    }
    const ip = formatIpv4(address);
    if (options.subnet && !subnetContains(options.subnet, address)) {
      report(`address ${ip} is outside the subnet; line skipped`);
      continue;
    }

    let clientId: string;
    if (idField === '*') {
      // Same key natd derives for a client without option 61: htype as two hex digits, then chaddr.
      clientId = hw.htype.toString(16).padStart(2, '0') + hw.bytes.join('');
    } else {
      const idBytes = hexBytes(idField);
      if (!idBytes) {
        report(`invalid client id '${idField.slice(0, 60)}'; line skipped`);
        continue;
      }
      clientId = idBytes.join('');
    }

    const lease: Lease = { clientId, mac: hw.bytes.join(':'), address, expiresAt };
    if (nameField !== '*') {
      const hostname = sanitizeHostname(nameField);
      if (hostname === undefined) report(`host name '${nameField.slice(0, 60)}' has no usable characters; lease kept without it`);
      else lease.hostname = hostname;
    }

    const clientLine = byClient.get(clientId);
    if (clientLine !== undefined) {
      report(`client ${clientId} already has a lease at line ${clientLine}; line skipped`);
      continue;
    }
    const addressLine = byAddress.get(address);
    if (addressLine !== undefined) {
      report(`address ${ip} already leased at line ${addressLine}; line skipped`);
      continue;
    }
    byClient.set(clientId, lineNo);
    byAddress.set(address, lineNo);
    leases.push(lease);
  }
  return { leases, problems };
}
