/**
 * issue 14: the DHCPv6 settings, checked into what the core serves. Pure (no I/O).
 *
 * - `--dhcp6-range START-END[,LEASETIME]` (config `dhcp6Range`), or dnsmasq's `--dhcp-range=START6,END6[,64][,LEASETIME]`
 *   (an IPv6 --dhcp-range is routed here): stateful DHCPv6 (IA_NA) from the range. Without it, DHCPv6 is stateless
 *   (Information-request) whenever IPv6 is on.
 * - `--dhcp-host` lines in dnsmasq's syntax (config `dhcpHost`): `id:00:01:00:01:...,[fd00::5],name` reserves by DUID,
 *   `52:54:00:aa:bb:cc,[fd00::5],name` by MAC; a line may carry an IPv4 address too (that part is an IPv4
 *   reservation, config.ts adds it to `reservations`).
 * - An address whose upper 64 bits are zero (`::100`, `[::5]`) is an interface identifier inside the served /64 —
 *   what to write with `--ipv6 auto`, whose prefix is only known at start. Full addresses are checked against
 *   `subnet6` here, and against the auto prefix by `dhcp6CoreSettings` at start.
 * - Rapid Commit follows `--dhcp-rapid-commit` / `--no-dhcp-rapid-commit`, as dnsmasq's one option does for both.
 */
import { formatIpv6, networkOf, parseIpv6, sameBytes, type Ipv6Bytes } from '../ipv6/address.js';
import { servedIpv6, type Ipv6Served, type Ipv6Setting } from '../ipv6/settings.js';
import { configError } from '../config/served-subnet.js';
import { LEASE_TIME_HINT, parseLeaseTime } from '../dhcp/option-config.js';
import { INFINITE_LEASE_SECONDS } from '../dhcp/types.js';
import { normalizeMac, parseIpv4 } from '../net/ipv4.js';
import { sanitizeHostname } from '../net/hostname.js';
import { formatDuid, parseDuidText } from './duid.js';
import type { Dhcp6Reservation } from './types.js';
import type { Dhcp6CoreOptions } from './core.js';

/** An address as configured: a full one, or an interface identifier in the served /64 (upper 64 bits zero). */
export type Dhcp6AddressSpec = { readonly kind: 'full'; readonly address: string } | { readonly kind: 'suffix'; readonly address: string };

export interface Dhcp6HostSpec {
  /** formatDuid text */
  readonly duid?: string;
  readonly mac?: string;
  readonly address: Dhcp6AddressSpec;
  readonly hostname?: string;
  /** where it was configured ("dhcpHost.2"), for problems found at start */
  readonly field?: string;
}

/** Config.dhcp6: DHCPv6 on the bridge (defined whenever IPv6 is). */
export interface Dhcp6Setting {
  /** stateful IA_NA range; undefined: stateless DHCPv6 only */
  readonly range: { readonly start: Dhcp6AddressSpec; readonly end: Dhcp6AddressSpec } | undefined;
  /** preferred = valid lifetime, seconds (INFINITE_LEASE_SECONDS: infinite) */
  readonly leaseSeconds: number;
  readonly reservations: readonly Dhcp6HostSpec[];
  readonly rapidCommit: boolean;
}

/** What the core gets for a served /64 (dhcp6CoreSettings). */
export interface Dhcp6Resolved {
  range: { start: string; end: string } | undefined;
  reservations: Dhcp6Reservation[];
  leaseSeconds: number;
  rapidCommit: boolean;
}

/** A --dhcp-host line split into its IPv4 and IPv6 parts. */
export interface DhcpHostLine {
  mac?: string;
  duid?: string;
  ipv4?: number;
  ipv6?: Dhcp6AddressSpec;
  hostname?: string;
  leaseSeconds?: number;
}

export function addressSpec(text: string): Dhcp6AddressSpec | undefined {
  const bytes = parseIpv6(text.trim());
  if (!bytes) return undefined;
  const suffix = bytes.subarray(0, 8).every((b) => b === 0);
  return { kind: suffix ? 'suffix' : 'full', address: formatIpv6(bytes) };
}

/** True when `text` is meant as an IPv6 range (dnsmasq routes a --dhcp-range by its address family too). */
export function isIpv6Range(text: string): boolean {
  const first = text.trim().split(/[,-]/)[0] ?? '';
  return first.includes(':');
}

/**
 * `START-END[,LEASETIME]` or dnsmasq's `START,END[,PREFIXLEN][,LEASETIME]`; undefined with a problem naming `field`.
 * dnsmasq's mode words (ra-only, slaac, constructor:...) are refused: natd sends RAs itself (issue 14's RA side).
 */
export function parseDhcp6Range(text: string, field: string, problems: string[]): { start: Dhcp6AddressSpec; end: Dhcp6AddressSpec; leaseSeconds?: number } | undefined {
  const fail = (why: string): undefined => {
    problems.push(`${field}: ${why} (got "${text}")`);
    return undefined;
  };
  const trimmed = text.trim();
  const dash = /^([0-9A-Fa-f:.]+)-([0-9A-Fa-f:.]+)((?:,[^,]*)?)$/.exec(trimmed);
  const fields = dash ? [dash[1]!, dash[2]!, ...(dash[3] ? [dash[3].slice(1)] : [])] : trimmed.split(',').map((f) => f.trim());
  if (fields.length < 2 || fields.length > 4) return fail('expected START-END[,LEASETIME] or START,END[,64][,LEASETIME], e.g. fd00:10:10::100-fd00:10:10::1ff or ::100-::1ff');
  const start = addressSpec(fields[0]!);
  const end = addressSpec(fields[1]!);
  if (!start || !end) return fail('not two IPv6 addresses');
  if (start.kind !== end.kind) return fail('give both ends as full addresses or both as ::suffixes');
  let leaseSeconds: number | undefined;
  let prefixSeen = false;
  for (const f of fields.slice(2)) {
    if (/^\d{1,3}$/.test(f) && !prefixSeen && leaseSeconds === undefined && Number(f) <= 128) {
      if (Number(f) !== 64) return fail(`the prefix length must be 64, the served /64 (got ${f})`);
      prefixSeen = true;
      continue;
    }
    const lease = parseLeaseTime(f);
    if (lease === undefined || leaseSeconds !== undefined) return fail(`"${f}" is neither the prefix length 64 nor a lease time; ${LEASE_TIME_HINT}`);
    leaseSeconds = lease;
  }
  if (low64(parseIpv6(start.address)!) > low64(parseIpv6(end.address)!) || (start.kind === 'full' && !sameBytes(networkOf(parseIpv6(start.address)!, 64), networkOf(parseIpv6(end.address)!, 64))))
    return fail('start is after end, or the two are in different /64s');
  const out: { start: Dhcp6AddressSpec; end: Dhcp6AddressSpec; leaseSeconds?: number } = { start, end };
  if (leaseSeconds !== undefined) out.leaseSeconds = leaseSeconds;
  return out;
}

/**
 * One dnsmasq dhcp-host line (`id:DUID`, MAC, `[IPv6]`, IPv4, name, lease time, in any order); undefined with a
 * problem naming `field` when it cannot be used. `set:TAG` and `id:*` are refused here (natd's tags live in
 * `reservations`).
 */
export function parseDhcpHostLine(text: string, field: string, problems: string[]): DhcpHostLine | undefined {
  const fail = (why: string): undefined => {
    problems.push(`${field}: ${why} (got "${text.length > 120 ? text.slice(0, 117) + '...' : text}")`);
    return undefined;
  };
  const line: DhcpHostLine = {};
  for (const raw of text.split(',')) {
    const f = raw.trim();
    if (f === '') continue;
    const mac = normalizeMac(f);
    if (/^id:/i.test(f)) {
      const duid = parseDuidText(f.slice(3));
      if (!duid) return fail(`"${f}" is not id: followed by a DUID in hex bytes, e.g. id:00:01:00:01:2b:3c:4d:5e:52:54:00:aa:bb:cc`);
      if (line.duid !== undefined) return fail('more than one id:');
      line.duid = formatDuid(duid);
    } else if (mac !== undefined) {
      if (line.mac !== undefined) return fail('more than one MAC address');
      line.mac = mac;
    } else if (/^\[.*\]$/.test(f)) {
      const spec = addressSpec(f.slice(1, -1));
      if (!spec) return fail(`"${f}" is not an IPv6 address in brackets`);
      if (line.ipv6 !== undefined) return fail('more than one IPv6 address');
      line.ipv6 = spec;
    } else if (parseIpv4(f) !== undefined) {
      if (line.ipv4 !== undefined) return fail('more than one IPv4 address');
      line.ipv4 = parseIpv4(f)!;
    } else if (/^(?:\d+[smhdw]?|infinite)$/i.test(f)) {
      const lease = parseLeaseTime(f);
      if (lease === undefined) return fail(`invalid lease time "${f}"`);
      line.leaseSeconds = lease;
    } else if (/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/.test(f)) {
      const name = sanitizeHostname(f);
      if (name === undefined || line.hostname !== undefined) return fail(`"${f}" is a second host name or not a usable one`);
      line.hostname = name;
    } else return fail(`unrecognised field "${f.slice(0, 60)}"`);
  }
  if (line.ipv6 === undefined && line.ipv4 === undefined) return fail('no address: give [IPv6] and/or an IPv4 address');
  if (line.ipv6 !== undefined && line.duid === undefined && line.mac === undefined) return fail('an IPv6 reservation needs id:DUID or a MAC address');
  if (line.ipv4 !== undefined && line.mac === undefined) return fail('an IPv4 reservation needs a MAC address (natd matches IPv4 hosts by MAC)');
  return line;
}

function low64(a: Ipv6Bytes): bigint {
  let v = 0n;
  for (let i = 8; i < 16; i++) v = (v << 8n) | BigInt(a[i]!);
  return v;
}

/** The setting's address inside the served network. */
function place(spec: Dhcp6AddressSpec, network: Ipv6Bytes): Ipv6Bytes {
  const a = parseIpv6(spec.address)!;
  if (spec.kind === 'full') return a;
  const out = Uint8Array.from(network);
  out.set(a.subarray(8), 8);
  return out;
}

/**
 * Config.dhcp6 from the settings: undefined when IPv6 is off (a range or v6 host then is a problem). Problems name
 * the field. With `subnet6`, everything is checked against it here; `--ipv6 auto` leaves the full-address checks
 * to dhcp6CoreSettings at start.
 */
export function dhcp6Setting(
  input: { ipv6: Ipv6Setting | undefined; dhcp6Range?: string | undefined; hosts: readonly { line: DhcpHostLine; field: string }[]; leaseSeconds: number; rapidCommit: boolean },
  problems: string[],
): Dhcp6Setting | undefined {
  const v6Hosts = input.hosts.filter((h) => h.line.ipv6 !== undefined);
  if (!input.ipv6) {
    if (input.dhcp6Range !== undefined) problems.push(`dhcp6Range: DHCPv6 needs IPv6 on the bridge: give subnet6 or ipv6 "auto" (got "${input.dhcp6Range}")`);
    for (const h of v6Hosts) problems.push(`${h.field}: an IPv6 reservation needs IPv6 on the bridge: give subnet6 or ipv6 "auto"`);
    return undefined;
  }
  const parsed = input.dhcp6Range === undefined ? undefined : parseDhcp6Range(input.dhcp6Range, 'dhcp6Range', problems);
  const reservations: Dhcp6HostSpec[] = v6Hosts.map(({ line, field }) => {
    const spec: { -readonly [K in keyof Dhcp6HostSpec]: Dhcp6HostSpec[K] } = { address: line.ipv6!, field };
    if (line.duid !== undefined) spec.duid = line.duid;
    if (line.mac !== undefined) spec.mac = line.mac;
    if (line.hostname !== undefined) spec.hostname = line.hostname;
    return Object.freeze(spec);
  });
  const setting: Dhcp6Setting = Object.freeze({
    range: parsed ? Object.freeze({ start: parsed.start, end: parsed.end }) : undefined,
    leaseSeconds: parsed?.leaseSeconds ?? input.leaseSeconds,
    reservations: Object.freeze(reservations),
    rapidCommit: input.rapidCommit,
  });
  // duplicates, and (with subnet6) everything against the /64
  const fields = v6Hosts.map((h) => h.field);
  problems.push(...duplicateProblems(setting, fields));
  if (input.ipv6.mode === 'subnet') {
    const gateway = parseIpv6(input.ipv6.cidr.split('/')[0]!)!;
    problems.push(...servedProblems(setting, gateway, fields));
  } else {
    // auto: the prefix is derived at start; a suffix can still be checked against the gateway's ::1
    problems.push(...servedProblems(setting, undefined, fields));
  }
  return setting;
}

function duplicateProblems(s: Dhcp6Setting, fields: readonly string[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  s.reservations.forEach((r, i) => {
    for (const [what, value] of [['address', `${r.address.kind}:${r.address.address}`], ['DUID', r.duid], ['MAC', r.mac]] as const) {
      if (value === undefined) continue;
      const earlier = seen.get(`${what}=${value}`);
      if (earlier !== undefined) problems.push(`${fields[i]}: ${what} ${value.replace(/^(full|suffix):/, '')} is already reserved by ${earlier}`);
      else seen.set(`${what}=${value}`, fields[i]!);
    }
  });
  return problems;
}

/** Checks against the served gateway (/64); `gateway` undefined: only what the suffixes show (auto, before start). */
function servedProblems(s: Dhcp6Setting, gateway: Ipv6Bytes | undefined, fields: readonly string[], rangeField = 'dhcp6Range'): string[] {
  const problems: string[] = [];
  const network = gateway ? networkOf(gateway, 64) : undefined;
  const gatewayId = gateway ? low64(gateway) : 1n; // auto's gateway is ::1 in its /64 (ula.ts)
  const check = (spec: Dhcp6AddressSpec): string | undefined => {
    const a = parseIpv6(spec.address)!;
    if (spec.kind === 'full' && network && !sameBytes(networkOf(a, 64), network)) return `is outside the served ${formatIpv6(network)}/64`;
    if (low64(a) === 0n) return 'is the /64\'s network address (the subnet-router anycast address)';
    return undefined;
  };
  if (s.range) {
    const why = check(s.range.start) ?? check(s.range.end);
    const lo = low64(parseIpv6(s.range.start.address)!);
    const hi = low64(parseIpv6(s.range.end.address)!);
    if (why) problems.push(`${rangeField}: ${s.range.start.address}-${s.range.end.address} ${why}`);
    else if ((gateway || s.range.start.kind === 'suffix') && gatewayId >= lo && gatewayId <= hi) problems.push(`${rangeField}: ${s.range.start.address}-${s.range.end.address} contains the gateway's own address`);
  }
  s.reservations.forEach((r, i) => {
    const why = check(r.address);
    if (why) problems.push(`${fields[i]}: [${r.address.address}] ${why}`);
    else if ((gateway || r.address.kind === 'suffix') && low64(parseIpv6(r.address.address)!) === gatewayId && (!gateway || r.address.kind === 'suffix' || sameBytes(parseIpv6(r.address.address)!, gateway)))
      problems.push(`${fields[i]}: [${r.address.address}] is the gateway's own address`);
  });
  return problems;
}

/**
 * The core's addresses for the served /64 (at start, when `--ipv6 auto`'s prefix is known). Throws the problems
 * (each naming its field) as one Error when the settings do not fit the prefix; check-config calls it with the same
 * served prefix the daemon would derive.
 */
export function dhcp6CoreSettings(s: Dhcp6Setting, served: Pick<Ipv6Served, 'gateway' | 'network'>): Dhcp6Resolved {
  const problems = servedProblems(s, served.gateway, s.reservations.map((r, i) => r.field ?? `dhcpHost (reservation ${i + 1})`));
  if (problems.length) throw new RangeError(problems.join('; '));
  const range = s.range ? { start: formatIpv6(place(s.range.start, served.network)), end: formatIpv6(place(s.range.end, served.network)) } : undefined;
  const reservations = s.reservations.map((r) => {
    const out: Dhcp6Reservation = { address: formatIpv6(place(r.address, served.network)) };
    if (r.duid !== undefined) out.duid = r.duid;
    if (r.mac !== undefined) out.mac = r.mac;
    if (r.hostname !== undefined) out.hostname = r.hostname;
    return out;
  });
  return { range, reservations, leaseSeconds: s.leaseSeconds, rapidCommit: s.rapidCommit };
}

/** The lease time as DHCPv6 lifetimes (seconds; 0xffffffff is infinity in both). */
export function lifetimesFor(leaseSeconds: number): { preferredLifetime: number; validLifetime: number } {
  const v = leaseSeconds >= INFINITE_LEASE_SECONDS ? 0xffffffff : leaseSeconds;
  return { preferredLifetime: v, validLifetime: v };
}

/** A --dhcp-host line's IPv4 part, in the shape of a `reservations` entry. */
export interface HostV4Reservation {
  mac: string;
  address: string;
  hostname?: string;
  leaseTime?: number;
}

/**
 * The DHCP settings that mix families, split (config.ts): an IPv6 `dhcpRange` (dnsmasq's way) is the `dhcp6Range`;
 * `dhcpHost` lines give IPv6 reservations and, for their IPv4 address, `reservations` entries.
 */
export function splitDhcpFamilies(
  input: { dhcpRange?: string | undefined; dhcp6Range?: string | readonly string[] | undefined; dhcpHost: readonly string[] },
  problems: string[],
): { dhcpRange: string | undefined; dhcp6Range: string | undefined; hosts: { line: DhcpHostLine; field: string }[]; v4Reservations: HostV4Reservation[] } {
  const v6Ranges = typeof input.dhcp6Range === 'string' ? [input.dhcp6Range] : [...(input.dhcp6Range ?? [])];
  let dhcpRange = input.dhcpRange;
  if (dhcpRange !== undefined && isIpv6Range(dhcpRange)) {
    v6Ranges.push(dhcpRange);
    dhcpRange = undefined;
  }
  if (v6Ranges.length > 1) problems.push(`dhcp6Range: give one IPv6 range (natd serves one /64; got ${v6Ranges.map((r) => `"${r}"`).join(', ')})`);
  const hosts: { line: DhcpHostLine; field: string }[] = [];
  const v4Reservations: HostV4Reservation[] = [];
  input.dhcpHost.forEach((text, i) => {
    const field = `dhcpHost.${i}`;
    const line = parseDhcpHostLine(text, field, problems);
    if (!line) return;
    hosts.push({ line, field });
    if (line.ipv4 !== undefined && line.mac !== undefined) {
      const r: HostV4Reservation = { mac: line.mac, address: [24, 16, 8, 0].map((s) => (line.ipv4! >>> s) & 0xff).join('.') };
      if (line.hostname !== undefined) r.hostname = line.hostname;
      if (line.leaseSeconds !== undefined) r.leaseTime = line.leaseSeconds;
      v4Reservations.push(r);
    }
  });
  return { dhcpRange, dhcp6Range: v6Ranges.length === 1 ? v6Ranges[0] : undefined, hosts, v4Reservations };
}

/**
 * Everything the core needs, from the config and the served /64 (the daemon's one call; throws like
 * dhcp6CoreSettings). `dnsServers`: where guests should send DNS over IPv6 (natd's own DNS on the bridge's IPv6
 * gateway when it listens there; empty: none sent).
 */
export function dhcp6CoreOptions(
  config: { readonly dhcp6: Dhcp6Setting; readonly searchDomains: readonly string[] },
  served: Pick<Ipv6Served, 'gateway' | 'network'>,
  deps: Pick<Dhcp6CoreOptions, 'serverDuid' | 'store' | 'now' | 'logger' | 'fqdn'> & { dnsServers: readonly string[] },
  nameAllowed?: Dhcp6CoreOptions['nameAllowed'],
): Dhcp6CoreOptions {
  const resolved = dhcp6CoreSettings(config.dhcp6, served);
  const options: Dhcp6CoreOptions = {
    ...deps,
    prefix: formatIpv6(served.network),
    serverAddress: formatIpv6(served.gateway),
    reservations: resolved.reservations,
    ...lifetimesFor(resolved.leaseSeconds),
    dnsServers: deps.dnsServers,
    domainSearch: config.searchDomains,
    rapidCommit: resolved.rapidCommit,
  };
  if (resolved.range) options.range = resolved.range;
  if (nameAllowed) options.nameAllowed = nameAllowed;
  return options;
}

/**
 * check-config's DHCPv6 check: the settings against the /64 the daemon will serve (with `--ipv6 auto`, the ULA it
 * derives from the bridge name and the machine-id), so check-config rejects what the daemon's start would.
 * Throws NatdError(CONFIG).
 */
export function checkDhcp6BeforeStart(config: { readonly bridge: string; readonly ipv6: Ipv6Setting | undefined; readonly dhcp6: Dhcp6Setting | undefined }, machineId: string | undefined, hostsfile6?: (served: Ipv6Served, fromConfig: readonly Dhcp6Reservation[]) => string[]): void {
  if (!config.ipv6 || !config.dhcp6) return;
  let resolved: Dhcp6Resolved;
  const served = servedIpv6(config.ipv6, config.bridge, machineId);
  try {
    resolved = dhcp6CoreSettings(config.dhcp6, served);
  } catch (err) {
    throw configError([(err as Error).message]);
  }
  const problems = hostsfile6?.(served, resolved.reservations) ?? []; // issue 14: the hostsfile's IPv6 lines
  if (problems.length) throw configError(problems);
}
