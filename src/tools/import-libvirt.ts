/**
 * `natd import-libvirt NETWORK.xml` / `--from-virsh NAME`: turns a libvirt `<network>` (the XML `virsh
 * net-dumpxml` prints) into natd's config, so that a libvirt NAT network — libvirt's own `default` included — moves
 * to natd in one command. The leases libvirt's dnsmasq holds (its `<bridge>.status` file) come along, so guests
 * keep their addresses.
 *
 * Like import-dnsmasq, nothing is dropped silently: every element natd has no equivalent for is listed with the
 * reason. The parser never throws on content; the import validates the result with natd's own config validation
 * before anything is written.
 *
 * The XML is read with fast-xml-parser (a maintained, dependency-light parser; libvirt's schema is attribute-heavy
 * and the library keeps attributes and repeated elements apart without a DOM).
 */
import { join, resolve } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { isKnownSetting, resolveConfig, type RawSettings } from '../config.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4, normalizeMac, parseIpv4 } from '../net/ipv4.js';
import { formatHostsfile, type FileProblem } from '../dhcp/hostsfile.js';
import { parseDnsmasqLeases } from '../dhcp/dnsmasq-leases.js';
import { JOURNAL_FILE } from '../dhcp/lease-store.js';
import { INFINITE_LEASE_SECONDS, type Lease, type Reservation } from '../dhcp/types.js';
import { describeAddressProblem, reservedAddressProblem } from '../dhcp/reservation-rules.js';
import { writeFileAtomic } from '../state/atomic-file.js';
import { checkTargets, exists, mergeReservations, readOptional, RESERVATIONS_FILE, settingsSubnet, writeImportedConfig, writeLeases } from './import-writer.js';
import { subnet6Problem } from '../ipv6/settings.js'; // issue 14
import { importDhcp6Range, importIpv6Mode } from './libvirt-v6.js';
import { dropUnknownV6Fields } from './import-dnsmasq-v6.js';

/** Elements that repeat in libvirt's network schema (always parsed as arrays, even when there is one). */
const REPEATED = new Set([
  'network.ip',
  'network.ip.dhcp.range',
  'network.ip.dhcp.host',
  'network.dns.host',
  'network.dns.host.hostname',
  'network.dns.forwarder',
  'network.dns.srv',
  'network.dns.txt',
  'network.route',
  'network.portgroup',
  'network.forward.interface',
  'network.forward.pf',
]);

type Node = Record<string, unknown>;

export interface LibvirtProblem {
  /** the element, as a path like `ip[1]/dhcp/range` */
  element: string;
  message: string;
}

/** A per-host DHCP lease time that libvirt's `<host><lease expiry/></host>` asked for (seconds; 0 = infinite). */
export interface HostLeaseTime {
  mac: string;
  seconds: number;
}

export interface ParsedLibvirtNetwork {
  /** the libvirt network name */
  name?: string;
  /** natd settings, in the config file's camelCase field names (values in dnsmasq's syntax) */
  settings: RawSettings & Record<string, unknown>;
  reservations: Reservation[];
  /** per-host lease times (written to the reservations file's lease-time field) */
  hostLeaseTimes: HostLeaseTime[];
  /** what has no natd equivalent, or could not be read */
  problems: LibvirtProblem[];
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseAttributeValue: false,
  parseTagValue: false,
  trimValues: false, // a TXT value keeps its spaces; text() trims where whitespace is not meaningful
  processEntities: true,
  isArray: (_name, jPath, _leaf, isAttribute) => !isAttribute && REPEATED.has(String(jPath)),
});

function node(value: unknown): Node | undefined {
  if (value === '' ) return {}; // an empty element like <dhcp></dhcp>
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Node) : undefined;
}

function list(value: unknown): Node[] {
  return Array.isArray(value) ? value.map((v) => node(v) ?? {}) : [];
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim() === '' ? undefined : value.trim();
  const n = node(value);
  return n && typeof n['#text'] === 'string' ? n['#text'] : undefined;
}

/** libvirt's `<lease expiry='N' unit='seconds|minutes|hours'/>` in seconds; 0 means infinite; undefined = invalid. */
export function leaseSeconds(lease: Node): number | undefined {
  const expiry = text(lease.expiry);
  if (expiry === undefined || !/^\d{1,9}$/.test(expiry)) return undefined;
  const unit = { seconds: 1, minutes: 60, hours: 3600 }[text(lease.unit) ?? 'minutes'];
  return unit === undefined ? undefined : Number(expiry) * unit;
}

/** Netmask to prefix length, or undefined when the mask is not contiguous. */
function maskPrefix(mask: string): number | undefined {
  const value = parseIpv4(mask);
  if (value === undefined) return undefined;
  const host = ~value >>> 0;
  return (host & (host + 1)) === 0 ? Math.clz32(host) : undefined;
}

class Collector {
  readonly out: ParsedLibvirtNetwork = { settings: {}, reservations: [], hostLeaseTimes: [], problems: [] };
  problem(element: string, message: string): void {
    this.out.problems.push({ element, message });
  }
  push(field: string, value: string): void {
    const current = this.out.settings[field];
    this.out.settings[field] = [...(Array.isArray(current) ? current : []), value];
  }
}

function readForward(forward: Node | undefined, c: Collector): void {
  // no <forward>: an isolated network; natd always routes its guests out through the NAT
  if (!forward) return c.problem('network', 'no <forward>: an isolated network; natd always NATs its guests out (use --guest-to-host and your own rules to isolate)');
  const mode = text(forward.mode) ?? 'nat';
  if (mode === 'route') c.problem('forward', "mode 'route': natd NATs IPv4 always; an IPv6 prefix is imported as routed (ipv6Mode routed)"); // issue 14
  else if (mode !== 'nat') return c.problem('forward', `mode '${mode}' has no natd equivalent (natd serves NAT networks); imported as NAT`);
  if (forward.dev !== undefined) c.problem('forward', `dev='${text(forward.dev)}': natd masquerades out of any uplink (the kernel's route decides)`);
  const nat = node(forward.nat);
  const port = nat && node(nat.port);
  if (port) {
    const start = Number(text(port.start));
    const end = Number(text(port.end));
    if (Number.isInteger(start) && Number.isInteger(end)) c.out.settings.masqueradePorts = [start, end];
    else c.problem('forward/nat/port', 'start/end are not port numbers; not imported');
  }
  if (nat && nat.address !== undefined) c.problem('forward/nat/address', 'a SNAT address range has no natd equivalent (natd masquerades)');
  // issue 14: ipv6='yes' (NAT66) or not (routed IPv6) is read after the <ip> elements (libvirt-v6.ts importIpv6Mode)
}

function readBridge(network: Node, c: Collector): void {
  const bridge = node(network.bridge);
  const name = bridge && text(bridge.name);
  if (name) c.out.settings.bridge = name;
  else c.problem('bridge', 'no bridge name: natd needs one (give it with --bridge)');
  const mac = node(network.mac);
  const address = mac && text(mac.address);
  if (address !== undefined) {
    if (normalizeMac(address)) c.out.settings.bridgeMac = normalizeMac(address);
    else c.problem('mac', `${address} is not a MAC address; not imported`);
  }
  const mtu = node(network.mtu);
  const size = mtu && text(mtu.size);
  if (size !== undefined) {
    if (/^\d{3,5}$/.test(size)) c.out.settings.mtu = Number(size);
    else c.problem('mtu', `size '${size}' is not a number; not imported`);
  }
  const domain = node(network.domain);
  const domainName = domain && text(domain.name);
  if (domainName) {
    c.out.settings.domain = domainName.replace(/\.$/, '');
    // localOnly='yes' keeps the domain's names off the upstreams: natd answers its own domain itself anyway
  }
}

function readDns(dnsValue: unknown, c: Collector): void {
  const dns = node(dnsValue);
  if (!dns) return;
  if (text(dns.enable) === 'no') {
    c.out.settings.dns = false;
    return;
  }
  if (text(dns.forwardPlainNames) === 'no') {
    c.problem('dns', "forwardPlainNames='no': natd never forwards bare names anyway (domain-needed)");
  }
  for (const [i, f] of list(dns.forwarder).entries()) {
    const domain = text(f.domain)?.replace(/\.$/, '');
    const addr = text(f.addr);
    if (addr === undefined && domain !== undefined) c.push('local', `/${domain}/`);
    else if (addr !== undefined && domain !== undefined) c.push('server', `/${domain}/${addr}`);
    else if (addr !== undefined) c.push('upstreams', addr);
    else c.problem(`dns/forwarder[${i + 1}]`, 'neither addr nor domain; skipped');
  }
  for (const [i, h] of list(dns.host).entries()) {
    const ip = text(h.ip);
    const names = list(h.hostname).length ? (h.hostname as unknown[]).map(text) : [];
    const valid = names.filter((n): n is string => n !== undefined);
    if (ip === undefined || valid.length === 0) c.problem(`dns/host[${i + 1}]`, 'needs ip and at least one hostname; skipped');
    else c.push('hostRecord', [...valid, ip].join(','));
  }
  for (const [i, s] of list(dns.srv).entries()) {
    const service = text(s.service);
    const protocol = text(s.protocol);
    if (!service || !protocol) {
      c.problem(`dns/srv[${i + 1}]`, 'needs service and protocol; skipped');
      continue;
    }
    const owner = [`_${service}`, `_${protocol}`, text(s.domain)].filter(Boolean).join('.');
    const rest = [text(s.target), text(s.port), text(s.priority), text(s.weight)];
    // dnsmasq's srv-host fields are positional: stop at the first one libvirt left out
    const present = rest.slice(0, rest.findIndex((v) => v === undefined) === -1 ? 4 : rest.findIndex((v) => v === undefined));
    c.push('srvHost', [owner, ...present].join(','));
  }
  for (const [i, t] of list(dns.txt).entries()) {
    const name = text(t.name);
    if (!name) {
      c.problem(`dns/txt[${i + 1}]`, 'needs a name; skipped');
      continue;
    }
    const value = typeof t.value === 'string' && t.value !== '' ? t.value : undefined;
    c.push('txtRecord', value === undefined ? name : `${name},"${value.replace(/"/g, '\\"')}"`);
  }
}

function readDhcp(dhcpNode: Node, where: string, c: Collector): void {
  const ranges = list(dhcpNode.range);
  for (const [i, r] of ranges.entries()) {
    const start = parseIpv4(text(r.start) ?? '');
    const end = parseIpv4(text(r.end) ?? '');
    if (start === undefined || end === undefined) {
      c.problem(`${where}/dhcp/range[${i + 1}]`, 'start/end are not IPv4 addresses; skipped');
      continue;
    }
    if (c.out.settings.dhcpRange !== undefined) {
      c.problem(`${where}/dhcp/range[${i + 1}]`, `second range ${formatIpv4(start)}-${formatIpv4(end)} skipped: natd serves one range`);
      continue;
    }
    c.out.settings.dhcpRange = `${formatIpv4(start)}-${formatIpv4(end)}`;
    const lease = node(r.lease);
    if (lease) {
      const seconds = leaseSeconds(lease);
      if (seconds === undefined) c.problem(`${where}/dhcp/range/lease`, 'expiry/unit not understood; default lease time kept');
      else c.out.settings.leaseTime = seconds === 0 ? 'infinite' : seconds;
    }
  }
  for (const [i, h] of list(dhcpNode.host).entries()) {
    const element = `${where}/dhcp/host[${i + 1}]`;
    const mac = normalizeMac(text(h.mac) ?? '');
    const address = parseIpv4(text(h.ip) ?? '');
    if (h.id !== undefined) c.problem(element, `id='${text(h.id)}' (a client id/DUID) is not supported: natd reserves by MAC; skipped`);
    if (mac === undefined || address === undefined) {
      if (h.id === undefined) c.problem(element, 'needs mac and ip; skipped');
      continue;
    }
    // libvirt allows a qualified name here; natd's reservation names are one label under its domain
    const name = text(h.name)?.split('.')[0];
    c.out.reservations.push({ mac, address, ...(name ? { hostname: name } : {}) });
    const lease = node(h.lease);
    const seconds = lease && leaseSeconds(lease);
    if (lease && seconds === undefined) c.problem(`${element}/lease`, 'expiry/unit not understood; the range lease time applies');
    if (seconds !== undefined) c.out.hostLeaseTimes.push({ mac, seconds });
  }
  const bootp = node(dhcpNode.bootp);
  const file = bootp && text(bootp.file);
  if (file) c.push('dhcpBoot', [file, ...(text(bootp!.server) ? ['', text(bootp!.server)!] : [])].join(','));
}

function readIp(ips: Node[], c: Collector): void {
  let served = false;
  for (const [i, ip] of ips.entries()) {
    const where = `ip[${i + 1}]`;
    if ((text(ip.family) ?? 'ipv4') !== 'ipv4') {
      readIpv6(ip, where, c); // issue 14
      continue;
    }
    if (served) {
      c.problem(where, 'a second IPv4 subnet: natd serves one subnet per bridge; skipped');
      continue;
    }
    const address = parseIpv4(text(ip.address) ?? '');
    const prefix = text(ip.prefix) !== undefined ? Number(text(ip.prefix)) : maskPrefix(text(ip.netmask) ?? '');
    if (address === undefined || prefix === undefined || !Number.isInteger(prefix) || prefix < 1 || prefix > 30) {
      c.problem(where, 'address with netmask or prefix (1-30) expected; skipped');
      continue;
    }
    served = true;
    c.out.settings.subnet = `${formatIpv4(address)}/${prefix}`;
    const tftp = node(ip.tftp);
    const root = tftp && text(tftp.root);
    if (root) {
      c.out.settings.enableTftp = true;
      c.out.settings.tftpRoot = root;
    }
    const dhcp = node(ip.dhcp);
    if (dhcp) readDhcp(dhcp, where, c);
  }
}

/** issue 14: <ip family='ipv6' address prefix='64'> → subnet6 (natd sends RAs for it and masquerades it). */
function readIpv6(ip: Node, where: string, c: Collector): void {
  if (c.out.settings.subnet6 !== undefined) return c.problem(where, 'a second IPv6 prefix: natd serves one per bridge; skipped');
  const cidr = `${text(ip.address) ?? ''}/${text(ip.prefix) ?? ''}`;
  const why = subnet6Problem(cidr);
  if (why) return c.problem(where, `IPv6 ${cidr}: ${why}; skipped`);
  c.out.settings.subnet6 = cidr;
  const dhcp = node(ip.dhcp);
  if (!dhcp) return;
  const sink = { settings: c.out.settings, problem: (e: string, m: string) => c.problem(e, m) };
  for (const [j, range] of list(dhcp.range).entries()) {
    const lease = node(range.lease);
    importDhcp6Range(text(range.start), text(range.end), lease ? leaseSeconds(lease) : undefined, `${where}/dhcp/range[${j + 1}]`, sink);
  }
  if (dhcp.host !== undefined) c.problem(`${where}/dhcp/host`, 'DHCPv6 hosts: give them as dhcp-host lines with [IPv6] addresses; skipped');
}

function readRoutes(routes: Node[], c: Collector): void {
  for (const [i, r] of routes.entries()) {
    const address = parseIpv4(text(r.address) ?? '');
    const gateway = parseIpv4(text(r.gateway) ?? '');
    const prefix = text(r.prefix) !== undefined ? Number(text(r.prefix)) : maskPrefix(text(r.netmask) ?? '');
    if (text(r.family) === 'ipv6' || address === undefined || gateway === undefined || prefix === undefined) {
      c.problem(`route[${i + 1}]`, 'only IPv4 routes with address, prefix/netmask and gateway are imported; skipped');
      continue;
    }
    // natd hands these to the guests (option 121) — the way libvirt's host route reaches the same next hop
    c.push('routes', `${formatIpv4(address)}/${prefix}=${formatIpv4(gateway)}`);
  }
}

/** Parses a libvirt network XML document. Never throws on content: what cannot be read is in `problems`. */
export function parseLibvirtNetwork(xml: string): ParsedLibvirtNetwork {
  const c = new Collector();
  let doc: Node;
  try {
    doc = parser.parse(xml) as Node;
  } catch (err) {
    c.problem('network', `not well-formed XML: ${(err as Error).message.split('\n')[0]}`);
    return c.out;
  }
  const network = node(doc.network);
  if (!network) {
    c.problem('network', 'no <network> element: is this a libvirt network XML (virsh net-dumpxml)?');
    return c.out;
  }
  const name = text(network.name);
  if (name) c.out.name = name;
  readForward(node(network.forward), c);
  readBridge(network, c);
  readDns(network.dns, c);
  readIp(list(network.ip), c);
  // issue 14: routed or NAT66, now that the IPv6 prefix is known
  const forward = node(network.forward);
  if (forward) importIpv6Mode(text(forward.mode) ?? 'nat', text(node(forward.nat)?.ipv6), { settings: c.out.settings, problem: (e, m) => c.problem(e, m) });
  readRoutes(list(network.route), c);
  if (network.portgroup !== undefined) c.problem('portgroup', 'portgroups are libvirt guest-attachment settings; keep them in the bridge-mode network natd libvirt-xml writes');
  if (network.bandwidth !== undefined) c.problem('bandwidth', 'bandwidth limits have no natd equivalent');
  if (network.vlan !== undefined) c.problem('vlan', 'VLAN tags have no natd equivalent');
  if (network.dnsmasq !== undefined || network['dnsmasq:options'] !== undefined) {
    c.problem('dnsmasq:options', 'raw dnsmasq options: import them with natd import-dnsmasq');
  }
  return c.out;
}

/** One lease from libvirt's `<bridge>.status` file (what libvirt_leaseshelper writes for its dnsmasq). */
interface StatusEntry {
  'ip-address'?: unknown;
  'mac-address'?: unknown;
  hostname?: unknown;
  'client-id'?: unknown;
  'expiry-time'?: unknown;
}

/**
 * libvirt's lease status file (a JSON array) as lines of a dnsmasq lease file, so natd's dnsmasq lease parser (and
 * its checks) reads them. Entries that are not IPv4 leases are left out (listed in `skipped`).
 */
export function statusToDnsmasqLeases(json: string): { text: string; skipped: string[] } {
  const skipped: string[] = [];
  let entries: unknown;
  try {
    entries = JSON.parse(json);
  } catch (err) {
    return { text: '', skipped: [`not JSON: ${(err as Error).message}`] };
  }
  if (!Array.isArray(entries)) return { text: '', skipped: ['not a JSON array of leases'] };
  const lines: string[] = [];
  for (const [i, raw] of entries.entries()) {
    const e = (typeof raw === 'object' && raw !== null ? raw : {}) as StatusEntry;
    const ip = typeof e['ip-address'] === 'string' ? e['ip-address'] : '';
    const mac = typeof e['mac-address'] === 'string' ? e['mac-address'] : '';
    const expiry = typeof e['expiry-time'] === 'number' ? e['expiry-time'] : Number.NaN;
    if (parseIpv4(ip) === undefined || !Number.isInteger(expiry) || !/^[0-9a-f:]+$/i.test(mac)) {
      skipped.push(`entry ${i + 1}: not an IPv4 lease with mac, ip and expiry-time; skipped`);
      continue;
    }
    const host = typeof e.hostname === 'string' && /^[\w.-]+$/.test(e.hostname) ? e.hostname : '*';
    const id = typeof e['client-id'] === 'string' && /^[0-9a-f:]+$/i.test(e['client-id']) ? e['client-id'] : '*';
    lines.push(`${expiry} ${mac} ${ip} ${host} ${id}`);
  }
  return { text: lines.join('\n') + '\n', skipped };
}

// ---- the import -------------------------------------------------------------------------------------------------

/** Where libvirt keeps its dnsmasq's leases for a bridge. */
export const LIBVIRT_STATUS_DIR = '/var/lib/libvirt/dnsmasq';

export interface LibvirtImportOptions {
  /** the network XML text (read from a file or from `virsh net-dumpxml`) */
  xml: string;
  /** names the XML's source in messages */
  source: string;
  /** natd's state dir for the bridge (default /var/lib/natd/BRIDGE, chosen by the caller) */
  outDir: (bridge: string) => string;
  /** where natd's JSON config is written */
  configOut: (bridge: string) => string;
  /** libvirt's lease status file; default LIBVIRT_STATUS_DIR/BRIDGE.status when it exists */
  statusFile?: string;
  force?: boolean;
  /** ms epoch used to drop expired leases (tests) */
  now?: number;
}

export interface LibvirtImportReport {
  network?: string;
  configFile: string;
  reservationsFile: string;
  leaseJournal: string;
  settings: RawSettings;
  reservations: Reservation[];
  leases: Lease[];
  expiredLeases: number;
  statusFile?: string;
  /** what has no natd equivalent, or was not imported as written */
  problems: LibvirtProblem[];
}

/**
 * Converts the network, reads libvirt's lease status file for its bridge, validates the result with natd's own
 * config validation and only then writes the reservations file, the lease journal and (last) the config.
 */
/** The network's DHCP hosts that natd can serve (inside the subnet, not its gateway), with their lease times. */
function usableReservations(parsed: ParsedLibvirtNetwork, source: string, skipped: FileProblem[]): Reservation[] {
  const subnet = settingsSubnet(parsed.settings);
  const gateway = subnet && parseIpv4(String(parsed.settings.subnet).split('/')[0]!);
  const usable = parsed.reservations.filter((r) => {
    const why = subnet && reservedAddressProblem(r.address, subnet, gateway);
    if (why) skipped.push({ file: source, line: 0, message: `dhcp host ${r.mac}: ${describeAddressProblem(why, r.address, subnet!)}; skipped` });
    return !why;
  });
  // libvirt's <host><lease expiry/></host> is the hostsfile's lease-time field (0: infinite)
  const leaseOf = new Map(parsed.hostLeaseTimes.map((h) => [h.mac, h.seconds === 0 ? INFINITE_LEASE_SECONDS : h.seconds]));
  const timed = usable.map((r) => (leaseOf.has(r.mac) ? { ...r, leaseSeconds: leaseOf.get(r.mac)! } : r));
  return mergeReservations([], timed, source, skipped);
}

/** The unexpired IPv4 leases of libvirt's status file for the bridge, when it has one (or `statusFile` is given). */
async function statusLeases(statusFile: string, given: boolean, settings: RawSettings, now: number, skipped: FileProblem[]) {
  const text = given || (await exists(statusFile)) ? await readOptional(statusFile, skipped, 'libvirt lease status file') : undefined;
  if (text === undefined) return { read: false, leases: [] as Lease[], expired: 0 };
  const converted = statusToDnsmasqLeases(text);
  for (const message of converted.skipped) skipped.push({ file: statusFile, line: 0, message });
  const subnet = settingsSubnet(settings);
  const read = parseDnsmasqLeases(converted.text, statusFile, { now, ...(subnet ? { subnet } : {}) });
  skipped.push(...read.problems);
  const leases = read.leases.filter((l) => l.expiresAt > now);
  return { read: true, leases, expired: read.leases.length - leases.length };
}

export async function importLibvirt(opts: LibvirtImportOptions): Promise<LibvirtImportReport> {
  const now = opts.now ?? Date.now();
  const parsed = parseLibvirtNetwork(opts.xml);
  const bridge = parsed.settings.bridge;
  if (typeof bridge !== 'string') {
    const why = parsed.problems.map((p) => `${p.element}: ${p.message}`).join('; ');
    throw new NatdError(ErrorCodes.CONFIG, `${opts.source}: no bridge to import (${why})`);
  }
  const outDir = resolve(opts.outDir(bridge));
  const configOut = opts.configOut(bridge);
  const reservationsFile = join(outDir, RESERVATIONS_FILE);
  const journal = join(outDir, JOURNAL_FILE);
  const skipped: FileProblem[] = [];
  const reservations = usableReservations(parsed, opts.source, skipped);
  const statusFile = opts.statusFile ?? join(LIBVIRT_STATUS_DIR, `${bridge}.status`);
  const status = await statusLeases(statusFile, opts.statusFile !== undefined, parsed.settings, now, skipped);
  const problems = [...parsed.problems, ...skipped.map((s) => ({ element: s.line ? `${s.file}:${s.line}` : s.file, message: s.message }))];

  const settings: RawSettings = { ...parsed.settings, stateDir: outDir, hostsfile: reservationsFile };
  dropUnknownV6Fields(settings as Record<string, unknown>, isKnownSetting, (field, message) => problems.push({ element: field, message })); // issue 14
  try {
    resolveConfig({}, settings);
  } catch (err) {
    throw new NatdError(ErrorCodes.CONFIG, `the settings imported from ${opts.source} are not valid for natd (nothing written): ${(err as Error).message}`, { cause: err });
  }
  await checkTargets(opts.force, configOut, reservationsFile, journal);
  await writeLeases(outDir, status.leases, opts.force === true, now);
  await writeFileAtomic(reservationsFile, formatHostsfile(reservations));
  await writeImportedConfig(configOut, settings);
  return {
    ...(parsed.name !== undefined ? { network: parsed.name } : {}),
    configFile: configOut, reservationsFile, leaseJournal: journal, settings, reservations,
    leases: status.leases, expiredLeases: status.expired, ...(status.read ? { statusFile } : {}), problems,
  };
}
