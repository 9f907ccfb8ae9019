/**
 * dnsmasq-style dhcp-hostsfile: one static reservation per line, comma-separated fields in any order
 * (`52:54:00:be:0a:f3,10.10.0.5,web`). Operators bring these files from dnsmasq, and natd writes its own
 * reservations in the same format so they stay readable and portable.
 *
 * The parser never throws: every line that cannot be used is reported with its file and line number, and the rest
 * still loads (first definition wins on a conflict), like dnsmasq does on SIGHUP.
 */
import { sanitizeHostname } from '../net/hostname.js';
import { describeAddressProblem, reservedAddressProblem, reservedNameProblem } from './reservation-rules.js';
import type { Reservation } from './types.js';
import { formatIpv4, normalizeMac, parseIpv4, type Subnet } from '../net/ipv4.js';
import { parseLeaseTime } from './option-config.js';
import { INFINITE_LEASE_SECONDS } from './types.js';

export { sanitizeHostname };

/** Something wrong (or worth knowing) about one line of an operator's file. */
export interface FileProblem {
  file: string;
  line: number;
  message: string;
  /** the line was not loaded (the other problems are notes on a line that was) */
  skipped?: true;
}

export interface HostsfileResult {
  reservations: Reservation[];
  problems: FileProblem[];
}

// dnsmasq lease-time field: seconds, or a number with s/m/h/d/w, or "infinite".
const LEASE_TIME = /^(?:\d+[smhdw]?|infinite)$/i;
const MAX_LINE_LENGTH = 4096;

interface ParsedLine {
  reservation?: Reservation;
  /** fatal for the line */
  error?: string;
  /** the line still loads */
  notes: string[];
  /** issue 14: an IPv6-only line, for dhcp6/hostsfile6.ts (no IPv4 reservation, nothing wrong) */
  v6Only?: true;
}

/** The fields of one line sorted by kind (dnsmasq takes them in any order). */
interface LineFields {
  macs: string[];
  addresses: number[];
  names: string[];
  tags: string[];
  /** `id:` fields: a DUID on an IPv6 line, ignored on an IPv4 one */
  duids: string[];
  leaseSeconds?: number;
  /** issue 14: the line has an IPv6 part (dhcp6/hostsfile6.ts's) */
  v6: boolean;
}

/** Classifies the fields of one (comment-free, non-blank) line. */
function parseLine(text: string, domain: string | undefined): ParsedLine {
  const notes: string[] = [];
  const fields = sortFields(text, notes);
  if ('error' in fields) return { error: fields.error, notes };
  // issue 14: an IPv6 line without an IPv4 address is an IPv6 reservation only (hostsfile6.ts); its id: is the DUID
  if (fields.v6 && fields.addresses.length === 0) return { notes, v6Only: true };
  if (!fields.v6) for (const id of fields.duids) notes.push(`client id '${id}' ignored; the reservation is keyed by MAC only`);
  const error = notOneReservation(fields);
  if (error !== undefined) return { error, notes };

  const reservation: Reservation = { mac: fields.macs[0]!, address: fields.addresses[0]! };
  if (fields.tags.length > 0) reservation.tags = fields.tags;
  if (fields.leaseSeconds !== undefined) reservation.leaseSeconds = fields.leaseSeconds;
  const name = fields.names[0];
  const hostname = name === undefined ? undefined : reservationName(name, domain, notes);
  if (hostname !== undefined) reservation.hostname = hostname;
  return { reservation, notes };
}

/** Sorts each comma-separated field by what it looks like; a field no line may have is the line's error. */
function sortFields(text: string, notes: string[]): LineFields | { error: string } {
  const f: LineFields = { macs: [], addresses: [], names: [], tags: [], duids: [], v6: false };
  for (const raw of text.split(',')) {
    const field = raw.trim();
    if (field === '') continue;
    const mac = normalizeMac(field);
    const address = mac === undefined ? parseIpv4(field) : undefined;
    if (mac !== undefined) f.macs.push(mac);
    else if (address !== undefined) f.addresses.push(address);
    else if (LEASE_TIME.test(field)) {
      f.leaseSeconds = parseLeaseTime(field);
      if (f.leaseSeconds === undefined) return { error: `invalid lease time '${field.slice(0, 40)}'` };
    } else if (field === 'ignore') return { error: "'ignore' entries are not supported; line skipped" };
    else if (/^set:[A-Za-z0-9_.-]{1,64}$/i.test(field)) f.tags.push(field.slice(4).toLowerCase());
    else if (/^id:\*$/i.test(field) || /^(?:set|tag):/i.test(field)) notes.push(`field '${field}' ignored (natd matches hosts by MAC only)`);
    else if (/^id:/i.test(field)) f.duids.push(field);
    else if (/^[\d.]+$/.test(field)) return { error: `invalid IPv4 address '${field.slice(0, 80)}'` };
    else if (field.startsWith('[')) f.v6 = true; // issue 14: the line's IPv6 part is dhcp6/hostsfile6.ts's
    else if (/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(field)) f.names.push(field);
    else return { error: `unrecognised field '${field.slice(0, 80)}'` };
  }
  return f;
}

/** Why the fields are not one IPv4 reservation (exactly one MAC and one address, at most one name), or undefined. */
function notOneReservation(f: LineFields): string | undefined {
  if (f.macs.length !== 1) return f.macs.length === 0 ? 'no MAC address' : 'more than one MAC address (not supported by natd)';
  if (f.addresses.length !== 1) return f.addresses.length === 0 ? 'no IPv4 address (natd reservations need one)' : 'more than one IPv4 address';
  if (f.names.length > 1) return 'more than one host name';
  return undefined;
}

/** The host name as the reservation's DNS label, or undefined (noted) when natd cannot publish it. */
function reservationName(name: string, domain: string | undefined, notes: string[]): string | undefined {
  const label = sanitizeHostname(name);
  if (label === undefined) {
    notes.push(`host name '${name}' has no usable characters; reservation loaded without a name`);
    return undefined;
  }
  const denied = reservedNameProblem(label, domain);
  if (denied) {
    notes.push(`host name '${name}' is ${denied}, which natd never publishes; reservation loaded without a name`);
    return undefined;
  }
  if (label !== name.toLowerCase()) notes.push(`host name '${name}' used as '${label}'`);
  return label;
}

/** Removes a comment: '#' at the start of the line or after whitespace. */
function stripComment(line: string): string {
  const m = /(?:^|\s)#/.exec(line);
  return m ? line.slice(0, m.index) : line;
}

/** The lines that reserved each MAC, address and name so far: the first definition wins. */
class SeenLines {
  private readonly byMac = new Map<string, number>();
  private readonly byAddress = new Map<number, number>();
  private readonly byName = new Map<string, number>();

  /** Why `r` repeats an earlier line, or undefined. */
  duplicate(r: Reservation): string | undefined {
    const macLine = this.byMac.get(r.mac);
    if (macLine !== undefined) return `MAC ${r.mac} already reserved at line ${macLine}`;
    const addressLine = this.byAddress.get(r.address);
    if (addressLine !== undefined) return `address ${formatIpv4(r.address)} already reserved for another MAC at line ${addressLine}`;
    const nameLine = r.hostname === undefined ? undefined : this.byName.get(r.hostname);
    if (nameLine !== undefined) return `host name '${r.hostname}' already used at line ${nameLine}`;
    return undefined;
  }

  add(r: Reservation, line: number): void {
    this.byMac.set(r.mac, line);
    this.byAddress.set(r.address, line);
    if (r.hostname !== undefined) this.byName.set(r.hostname, line);
  }
}

export function parseHostsfile(text: string, file: string, subnet?: Subnet, domain?: string, gateway?: number): HostsfileResult {
  const reservations: Reservation[] = [];
  const problems: FileProblem[] = [];
  const seen = new SeenLines();

  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const report = (message: string): void => void problems.push({ file, line: lineNo, message });
    const skip = (message: string): void => void problems.push({ file, line: lineNo, message, skipped: true });
    // Accept a pasted dnsmasq.conf line too.
    const content = stripComment(lines[i]!).trim().replace(/^dhcp-host\s*=\s*/, '');
    if (content === '') continue;
    if (content.length > MAX_LINE_LENGTH) {
      skip('line too long; skipped');
      continue;
    }

    const parsed = parseLine(content, domain);
    for (const note of parsed.notes) report(note);
    const r = parsed.reservation;
    if (parsed.v6Only) continue;
    if (!r) {
      skip(`${parsed.error ?? 'malformed'}; line skipped`);
      continue;
    }

    const addressProblem = subnet ? reservedAddressProblem(r.address, subnet, gateway) : undefined;
    if (addressProblem) {
      skip(`address ${describeAddressProblem(addressProblem, r.address, subnet!)}; line skipped`);
      continue;
    }
    const duplicate = seen.duplicate(r);
    if (duplicate) {
      skip(`${duplicate}; line skipped`);
      continue;
    }
    seen.add(r, lineNo);
    reservations.push(r);
  }
  return { reservations, problems };
}

/**
 * natd's own reservations file, readable back by parseHostsfile and by dnsmasq. A name that reads as a lease time
 * (`12`, `1h`, `infinite`) is ambiguous in this format, for dnsmasq too: callers should not accept such names.
 */
export function formatHostsfile(reservations: readonly Reservation[]): string {
  const lines = ['# natd reservations: MAC,address[,name] (dnsmasq dhcp-hostsfile format)'];
  for (const r of reservations) {
    const fields = [r.mac, formatIpv4(r.address)];
    // Re-sanitised so a name that came in through another path can never break the line format.
    const name = r.hostname === undefined ? undefined : sanitizeHostname(r.hostname);
    if (name !== undefined) fields.push(name);
    for (const tag of r.tags ?? []) if (/^[a-z0-9_.-]{1,64}$/i.test(tag)) fields.push(`set:${tag}`);
    if (r.leaseSeconds !== undefined) fields.push(r.leaseSeconds === INFINITE_LEASE_SECONDS ? 'infinite' : String(r.leaseSeconds));
    lines.push(fields.join(','));
  }
  return lines.join('\n') + '\n';
}
