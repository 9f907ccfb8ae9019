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

type LineResult = { lease: Lease; notes: string[] } | { error: string };

/** One IPv4 lease line's fields (expiry, MAC, address, name, client id) as a lease, or why it is skipped. */
function parseLeaseFields(fields: readonly string[], options: DnsmasqLeasesOptions): LineResult {
  const [expiryField, macField, ipField, nameField, idField = '*'] = fields as [string, string, string, string, string?];
  if (!/^\d{1,15}$/.test(expiryField)) return { error: `invalid expiry '${expiryField.slice(0, 40)}'` };
  const expirySeconds = Number(expiryField);
  const expiresAt = expirySeconds === 0 ? options.now + INFINITE_LEASE_GRACE_MS : expirySeconds * 1000;
  const hw = parseHardwareAddress(macField);
  if (!hw) return { error: `invalid hardware address '${macField.slice(0, 60)}'` };
  const address = parseIpv4(ipField);
  if (address === undefined) return { error: `invalid IPv4 address '${ipField.slice(0, 40)}'` };
  if (options.subnet && !subnetContains(options.subnet, address)) return { error: `address ${formatIpv4(address)} is outside the subnet` };

  let clientId: string;
  if (idField === '*') {
    // Same key natd derives for a client without option 61: htype as two hex digits, then chaddr.
    clientId = hw.htype.toString(16).padStart(2, '0') + hw.bytes.join('');
  } else {
    const idBytes = hexBytes(idField);
    if (!idBytes) return { error: `invalid client id '${idField.slice(0, 60)}'` };
    clientId = idBytes.join('');
  }

  const lease: Lease = { clientId, mac: hw.bytes.join(':'), address, expiresAt };
  const notes: string[] = [];
  if (nameField !== '*') {
    const hostname = sanitizeHostname(nameField);
    if (hostname === undefined) notes.push(`host name '${nameField.slice(0, 60)}' has no usable characters; lease kept without it`);
    else lease.hostname = hostname;
  }
  return { lease, notes };
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
    if (fields[2]!.includes(':')) {
      if (!inDhcpv6Section) report('IPv6 lease skipped (natd serves DHCPv4 only)');
      continue;
    }
    const parsed = parseLeaseFields(fields, options);
    if ('error' in parsed) {
      report(`${parsed.error}; line skipped`);
      continue;
    }
    const { lease, notes } = parsed;
    notes.forEach(report);

    const clientLine = byClient.get(lease.clientId);
    if (clientLine !== undefined) {
      report(`client ${lease.clientId} already has a lease at line ${clientLine}; line skipped`);
      continue;
    }
    const addressLine = byAddress.get(lease.address);
    if (addressLine !== undefined) {
      report(`address ${formatIpv4(lease.address)} already leased at line ${addressLine}; line skipped`);
      continue;
    }
    byClient.set(lease.clientId, lineNo);
    byAddress.set(lease.address, lineNo);
    leases.push(lease);
  }
  return { leases, problems };
}
