/**
 * Configuration: flags and an optional JSON config file, validated once with zod into one frozen object.
 * Flags win over the file. Every problem is reported together, each naming its field and value, and nothing on
 * the system is touched before validation passes.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { ErrorCodes, NatdError } from './errors.js';
import { formatIpv4, normalizeMac, parseCidr, parseIpv4, subnetContains, type Subnet } from './net/ipv4.js';
import type { LogLevel } from './log.js';
import { parseForwardSpec } from './nft/forward-spec.js';
import type { HostService } from './nft/ruleset.js';
import { reservedAddressProblem, reservedNameProblem } from './dhcp/reservation-rules.js';
// issue 15: custom DNS records
import { checkRecordSet, DEFAULT_LOCAL_TTL, parseRecordSettings } from './dns/record-config.js';
import type { SourcedSpec } from './dns/record-zone.js';
// issue 14: IPv6 for the guests
import { ipv6Setting, type Ipv6Setting } from './ipv6/settings.js';

export const DEFAULT_SUBNET = '10.10.0.1/24';
export const DEFAULT_LEASE_SECONDS = 3600;
export const DEFAULT_STATE_ROOT = '/var/lib/natd';
export const DEFAULT_RUN_ROOT = '/run/natd';

/** Raw settings before validation: the union of what flags and the config file can say. */
export interface RawSettings {
  bridge?: unknown;
  subnet?: unknown;
  dhcpRange?: unknown;
  leaseTime?: unknown;
  domain?: unknown;
  upstreams?: unknown;
  stateDir?: unknown;
  controlSocket?: unknown;
  forwards?: unknown;
  hostsfile?: unknown;
  addnHosts?: unknown;
  reservations?: unknown;
  logLevel?: unknown;
  bridgeMac?: unknown;
  cacheSize?: unknown;
  masqueradePorts?: unknown;
  resolvConf?: unknown;
  dns?: unknown;
  firewall?: unknown;
  metricsListen?: unknown;
  allowIpv6Forward?: unknown;
  searchDomains?: unknown;
  routes?: unknown;
  conflictProbe?: unknown;
  // issue 12, hostile guests (DNS): limits that bound what one guest can take
  cacheMaxBytes?: unknown;
  dnsForwardMax?: unknown;
  dnsMaxPendingPerClient?: unknown;
  dnsMaxTcpPerClient?: unknown;
  /** let --metrics-listen take an address other than loopback (the endpoint has no authentication) */
  metricsAllowRemote?: unknown;
  /** host services guests may reach besides DHCP/DNS/ping: [tcp|udp:]PORT[-PORT], or 'all' */
  guestToHost?: unknown;
  /** issue 12: bound on quarantined (declined) addresses */
  dhcpMaxDeclinedPercent?: unknown;
  /** issue 13: how long the conflict probe waits for an ARP answer before an OFFER, ms */
  dhcpProbeTimeoutMs?: unknown;
  /** issue 16: lease events: dnsmasq's dhcp-script, and how long one run may take */
  dhcpScript?: unknown;
  dhcpScriptTimeout?: unknown;
  // issue 15: custom DNS records, each in its dnsmasq option's value syntax; the TTL of natd's own answers
  hostRecord?: unknown;
  cname?: unknown;
  srvHost?: unknown;
  txtRecord?: unknown;
  mxHost?: unknown;
  ptrRecord?: unknown;
  address?: unknown;
  localTtl?: unknown;
  // issue 14: IPv6 for the guests: the gateway/64 (as subnet), or 'auto' for a ULA /64 derived from the bridge name
  subnet6?: unknown;
  ipv6?: unknown;
}

const ipv4 = z.string().refine((s) => parseIpv4(s) !== undefined, { message: 'not an IPv4 address' });

const DURATION_HINT = 'expected seconds or a duration like 3600, 90s, 30m, 1h or 1d';
const durationSeconds = z.union([z.number().int().positive(), z.string()], { error: DURATION_HINT }).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^(\d+)\s*([smhd]?)$/.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: DURATION_HINT });
    return z.NEVER;
  }
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
});

const SIZE_HINT = 'expected bytes or a size like 32M, 64MiB, 512K or 1G (K/M/G are powers of 1024)';
const sizeBytes = z.union([z.number().int().positive(), z.string()], { error: SIZE_HINT }).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^(\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: SIZE_HINT });
    return z.NEVER;
  }
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
});

const DOMAIN_RE = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

const reservationSchema = z.object({
  mac: z.string().refine((s) => normalizeMac(s) !== undefined, { message: 'not a MAC address like 52:54:00:12:34:56' }),
  address: ipv4,
  hostname: z.string().regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/, 'not a DNS label').optional(),
});

const settingsSchema = z
  .object({
    bridge: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/, 'an interface name of 1-15 letters, digits, _ . -'),
    subnet: z
      .string()
      .refine((s) => parseCidr(s) !== undefined, { message: 'expected the gateway address with prefix, e.g. 10.10.0.1/24' })
      .optional(),
    dhcpRange: z
      .string()
      .regex(/^[\d.]+-[\d.]+$/, 'expected START-END, e.g. 10.10.0.10-10.10.0.200')
      .optional(),
    leaseTime: durationSeconds.default(DEFAULT_LEASE_SECONDS),
    domain: z.string().regex(DOMAIN_RE, 'not a domain name').optional(),
    upstreams: z.array(ipv4).default([]),
    stateDir: z.string().min(1).optional(),
    controlSocket: z.string().min(1).optional(),
    forwards: z.array(z.string()).default([]),
    hostsfile: z.string().min(1).optional(),
    addnHosts: z.array(z.string().min(1)).default([]),
    reservations: z.array(reservationSchema).default([]),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    bridgeMac: z
      .string()
      .refine((s) => normalizeMac(s) !== undefined, { message: 'not a MAC address' })
      .optional(),
    cacheSize: z.number().int().min(0).max(1_000_000).default(10_000),
    masqueradePorts: z
      .tuple([z.number().int().min(1).max(65535), z.number().int().min(1).max(65535)])
      .refine(([a, b]) => a <= b, { message: 'first port must not exceed the second' })
      .default([1024, 65535]),
    resolvConf: z.string().default('/etc/resolv.conf'),
    dns: z.boolean().default(true),
    firewall: z.boolean().default(true),
    allowIpv6Forward: z.boolean().default(false),
    conflictProbe: z.boolean().default(true),
    searchDomains: z.array(z.string().regex(DOMAIN_RE, 'not a domain name')).optional(),
    routes: z.array(z.string().regex(/^[\d.]+\/\d{1,2}=[\d.]+$/, 'expected NETWORK/PREFIX=ROUTER, e.g. 192.168.50.0/24=10.10.0.2')).default([]),
    metricsListen: z
      .string()
      .regex(/^([\d.]+|\[[0-9a-fA-F:.]+\]):\d{1,5}$/, 'expected ADDRESS:PORT, e.g. 127.0.0.1:9153 or [::1]:9153')
      .optional(),
    // issue 12 (DNS): the cache's byte budget, the global upstream cap (dnsmasq's dns-forward-max), per-client caps
    cacheMaxBytes: sizeBytes.pipe(z.number().int().min(64 * 1024, 'at least 64K').max(16 * 1024 ** 3)).default(32 * 1024 * 1024),
    dnsForwardMax: z.number().int().min(1).max(65_536).default(4096),
    dnsMaxPendingPerClient: z.number().int().min(1).max(65_536).default(256),
    dnsMaxTcpPerClient: z.number().int().min(1).max(64).default(8),
    metricsAllowRemote: z.boolean().default(false),
    guestToHost: z.array(z.string()).default([]),
    // issue 12: share of the DHCP range that confirmed DECLINEs may quarantine at once
    dhcpMaxDeclinedPercent: z.number({ error: 'expected a percentage from 0 to 100' }).int().min(0).max(100).default(10),
    // issue 13: the ARP conflict probe's wait (Kea's ping check waits 100 ms per echo, dnsmasq 3 s)
    dhcpProbeTimeoutMs: z.number({ error: 'expected milliseconds from 10 to 5000' }).int().min(10).max(5000).default(250),
    // issue 16: the lease script (dnsmasq's dhcp-script): an absolute path, checked to be an executable file
    dhcpScript: z.string().refine((p) => p.startsWith('/'), { message: 'expected an absolute path' }).optional(),
    dhcpScriptTimeout: durationSeconds.pipe(z.number().max(3600, 'at most 1h')).default(10),
    // issue 15: custom DNS records (dnsmasq syntax, parsed in resolveConfig) and --local-ttl
    hostRecord: z.array(z.string()).default([]),
    cname: z.array(z.string()).default([]),
    srvHost: z.array(z.string()).default([]),
    txtRecord: z.array(z.string()).default([]),
    mxHost: z.array(z.string()).default([]),
    ptrRecord: z.array(z.string()).default([]),
    address: z.array(z.string()).default([]),
    localTtl: z.number({ error: 'expected seconds from 0 to 2147483647' }).int().min(0).max(2_147_483_647).default(DEFAULT_LOCAL_TTL),
    // issue 14: IPv6 (checked in resolveConfig by ipv6/settings.ts)
    subnet6: z.string().optional(),
    ipv6: z.enum(['auto', 'off'], { error: "expected 'auto' or 'off'" }).optional(),
  })
  .strict();

export interface Config {
  readonly bridge: string;
  /** gateway address + prefix requested; undefined = take it from the bridge, or DEFAULT_SUBNET when creating it */
  readonly subnetCidr: string | undefined;
  readonly dhcpRange: { readonly start: number; readonly end: number } | undefined;
  readonly leaseTimeSeconds: number;
  readonly domain: string | undefined;
  readonly upstreams: readonly string[];
  readonly stateDir: string;
  readonly controlSocket: string;
  readonly forwards: readonly string[];
  readonly hostsfile: string | undefined;
  /** extra DNS records in /etc/hosts format (dnsmasq's addn-hosts) */
  readonly addnHosts: readonly string[];
  readonly reservations: readonly { readonly mac: string; readonly address: number; readonly hostname?: string }[];
  readonly logLevel: LogLevel;
  readonly bridgeMac: string | undefined;
  readonly cacheSize: number;
  readonly masqueradePorts: readonly [number, number];
  readonly resolvConf: string;
  readonly dns: boolean;
  readonly firewall: boolean;
  /** DHCP option 119; default: the domain, when one is set */
  readonly searchDomains: readonly string[];
  /** DHCP option 121 (classless static routes) besides the default route */
  readonly routes: readonly { readonly network: number; readonly prefix: number; readonly router: number }[];
  /** ping an address before offering it for the first time (dnsmasq's default; off = its --no-ping) */
  readonly conflictProbe: boolean;
  /** let IPv6 routed through the bridge pass instead of rejecting it */
  readonly allowIpv6Forward: boolean;
  /** where the Prometheus /metrics endpoint listens, when wanted; loopback unless metricsAllowRemote */
  readonly metricsListen: MetricsListen | undefined;
  /** where the config file was, when one was given (SIGHUP re-reads it) */
  readonly configFile: string | undefined;
  /** bytes the DNS cache may hold (besides cacheSize entries) */
  readonly cacheMaxBytes: number;
  /** upstream queries in flight at once, all clients together (dnsmasq's dns-forward-max) */
  readonly dnsForwardMax: number;
  /** upstream queries one client address may have pending; more get SERVFAIL at once */
  readonly dnsMaxPendingPerClient: number;
  /** DNS TCP connections one client address may hold (of 64) */
  readonly dnsMaxTcpPerClient: number;
  /** metricsListen may be an address other than loopback (natd's input chain still keeps guests away from it) */
  readonly metricsAllowRemote: boolean;
  /** host services the guests may reach besides DHCP, DNS and ping; 'all' = natd rejects no guest traffic to the host */
  readonly guestToHost: readonly HostService[] | 'all';
  /** most declined addresses quarantined at once, in percent of the DHCP range (at least one address) */
  readonly dhcpMaxDeclinedPercent: number;
  /** how long a conflict probe waits for an answer before the address counts as free, ms */
  readonly dhcpProbeTimeoutMs: number;
  /** run for each lease event (add/old/del), as dnsmasq's dhcp-script */
  readonly dhcpScript: string | undefined;
  /** a script run longer than this is killed, seconds */
  readonly dhcpScriptTimeoutSeconds: number;
  /** issue 15: the operator's DNS records (host-record, cname, srv-host, txt-record, mx-host, ptr-record, address) */
  readonly records: readonly SourcedSpec[];
  /** issue 15: TTL of natd's own answers (dnsmasq's local-ttl) */
  readonly localTtl: number;
  /** issue 14: IPv6 on the bridge (address, RAs, NAT66); undefined: IPv4 only */
  readonly ipv6: Ipv6Setting | undefined;
}

export interface MetricsListen {
  /** an IPv4 or IPv6 address, without brackets */
  readonly host: string;
  readonly port: number;
  /** as given, for log lines: 127.0.0.1:9153, [::1]:9153 */
  readonly text: string;
}

/** The addresses that only the host itself can reach: 127.0.0.0/8 and ::1. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * The metrics endpoint has no authentication, so by default it listens on loopback only; any other address is an
 * explicit choice (metricsAllowRemote). Problems are pushed with the field named.
 */
function parseMetricsListen(text: string, allowRemote: boolean, problems: string[]): MetricsListen | undefined {
  const i = text.lastIndexOf(':');
  const host = text.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(text.slice(i + 1));
  const family = isIPv4(host) ? 'ipv4' : isIPv6(host) ? 'ipv6' : undefined;
  if (!family) problems.push(`metricsListen: ${host} is not an IP address (got "${text}")`);
  else if (port < 1 || port > 65535) problems.push(`metricsListen: port ${port} is not in 1-65535 (got "${text}")`);
  else if (!allowRemote && !LOOPBACK.check(host, family)) {
    problems.push(
      `metricsListen: ${host} is not a loopback address; the endpoint has no authentication, so listening beyond ` +
        `the host needs --metrics-allow-remote (metricsAllowRemote: true) (got "${text}")`,
    );
  } else return Object.freeze({ host, port, text });
  return undefined;
}

function configError(problems: string[]): NatdError {
  const text = problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  ${problems.join('\n  ')}`;
  return new NatdError(ErrorCodes.CONFIG, `invalid configuration: ${text}`);
}

/** Reads a JSON config file; errors name the file. */
export function readConfigFile(file: string): RawSettings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw configError([`config: cannot read ${file}: ${(err as Error).message}`]);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as RawSettings;
  } catch (err) {
    throw configError([`config: ${file} is not valid JSON: ${(err as Error).message}`]);
  }
}

function describeValue(raw: Record<string, unknown>, path: PropertyKey[]): string {
  let v: unknown = raw;
  for (const key of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined;
  if (v === undefined) return '';
  const text = JSON.stringify(v);
  return ` (got ${text && text.length > 60 ? text.slice(0, 57) + '...' : text})`;
}

/** Validates settings (file first, flags over it) into the frozen Config. Throws NatdError(CONFIG) listing all problems. */
export function resolveConfig(flags: RawSettings, fileSettings: RawSettings = {}, configFile?: string): Config {
  const merged: Record<string, unknown> = { ...fileSettings };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) merged[k] = v;

  const parsed = settingsSchema.safeParse(merged);
  if (!parsed.success) {
    throw configError(
      parsed.error.issues.map((i) => {
        const field = i.path.length ? i.path.join('.') : 'config';
        const message = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message;
        return `${field}: ${message}${describeValue(merged, i.path)}`;
      }),
    );
  }
  const s = parsed.data;
  const problems: string[] = [];

  let subnet: Subnet | undefined;
  if (s.subnet) {
    const cidr = parseCidr(s.subnet)!;
    subnet = cidr.subnet;
    if (cidr.subnet.prefix > 30) problems.push(`subnet: prefix /${cidr.subnet.prefix} leaves no room for guests (got "${s.subnet}")`);
    if (cidr.address === cidr.subnet.network || cidr.address === cidr.subnet.broadcast)
      problems.push(`subnet: give the gateway address, not the network or broadcast address (got "${s.subnet}")`);
  }

  let dhcpRange: Config['dhcpRange'];
  if (s.dhcpRange) {
    const [a, b] = s.dhcpRange.split('-');
    const start = parseIpv4(a!);
    const end = parseIpv4(b!);
    if (start === undefined || end === undefined) problems.push(`dhcpRange: not two IPv4 addresses (got "${s.dhcpRange}")`);
    else if (start > end) problems.push(`dhcpRange: start is after end (got "${s.dhcpRange}")`);
    else if (subnet && (!subnetContains(subnet, start) || !subnetContains(subnet, end)))
      problems.push(`dhcpRange: ${s.dhcpRange} is not inside subnet ${s.subnet}`);
    else dhcpRange = Object.freeze({ start, end });
  }

  const routes = s.routes.map((text, i) => {
    const [cidrText, routerText] = text.split('=');
    const cidr = parseCidr(cidrText!);
    const router = parseIpv4(routerText!);
    if (!cidr || router === undefined) {
      problems.push(`routes.${i}: not NETWORK/PREFIX=ROUTER (got "${text}")`);
      return undefined;
    }
    if (cidr.address !== cidr.subnet.network) problems.push(`routes.${i}: ${cidrText} has host bits set; use ${formatIpv4(cidr.subnet.network)}/${cidr.subnet.prefix}`);
    if (subnet && !subnetContains(subnet, router)) problems.push(`routes.${i}: router ${routerText} is not inside subnet ${s.subnet}`);
    return Object.freeze({ network: cidr.subnet.network, prefix: cidr.subnet.prefix, router });
  }).filter((r) => r !== undefined);

  const reservations = s.reservations.map((r, i) => {
    const address = parseIpv4(r.address)!;
    // only 'outside' is fatal here: the gateway is unknown until the bridge is, and the daemon skips (with a warning)
    // a network, broadcast or gateway address the same way whichever source it came from
    if (subnet && reservedAddressProblem(address, subnet) === 'outside') problems.push(`reservations.${i}.address: ${r.address} is not inside subnet ${s.subnet}`);
    const denied = r.hostname === undefined ? undefined : reservedNameProblem(r.hostname, s.domain);
    if (denied) problems.push(`reservations.${i}.hostname: "${r.hostname}" is ${denied}; natd never publishes it`);
    return Object.freeze({ mac: normalizeMac(r.mac)!, address, ...(r.hostname ? { hostname: r.hostname.toLowerCase() } : {}) });
  });

  // parsed here too, so check-config rejects a spec before the daemon has touched the bridge, sysctls or nftables
  s.forwards.forEach((text, i) => {
    try {
      const spec = parseForwardSpec(text);
      if (subnet && 'address' in spec.guest && !subnetContains(subnet, spec.guest.address))
        problems.push(`forwards.${i}: "${text}": guest ${formatIpv4(spec.guest.address)} is not inside subnet ${s.subnet}`);
    } catch (err) {
      problems.push(`forwards.${i}: ${(err as Error).message}`);
    }
  });
  const metricsListen = s.metricsListen === undefined ? undefined : parseMetricsListen(s.metricsListen, s.metricsAllowRemote, problems);

  const guestToHost = parseGuestToHost(s.guestToHost, problems);
  if (s.dhcpScript !== undefined) {
    const why = executableProblem(s.dhcpScript);
    if (why) problems.push(`dhcpScript: ${s.dhcpScript} ${why}`);
  }

  // issue 15: the records as one set, checked against each other and against the reservations' names
  const recordSettings = { hostRecord: s.hostRecord, cname: s.cname, srvHost: s.srvHost, txtRecord: s.txtRecord, mxHost: s.mxHost, ptrRecord: s.ptrRecord, address: s.address };
  const parsedRecords = parseRecordSettings(recordSettings, { domain: s.domain });
  problems.push(...parsedRecords.problems);
  const reservedNames = reservations.flatMap((r, i) => (r.hostname ? [{ name: r.hostname, field: `reservations.${i}.hostname` }] : []));
  problems.push(...checkRecordSet(parsedRecords.specs, { domain: s.domain, ttl: s.localTtl, reservedNames }).problems);

  // issue 14: IPv6
  const ipv6 = ipv6Setting(s.ipv6, s.subnet6, problems);

  if (problems.length) throw configError(problems);

  return Object.freeze({
    bridge: s.bridge,
    subnetCidr: s.subnet,
    dhcpRange,
    leaseTimeSeconds: s.leaseTime,
    domain: s.domain?.toLowerCase(),
    upstreams: Object.freeze([...s.upstreams]),
    stateDir: s.stateDir ?? `${DEFAULT_STATE_ROOT}/${s.bridge}`,
    controlSocket: s.controlSocket ?? `${DEFAULT_RUN_ROOT}/${s.bridge}.sock`,
    forwards: Object.freeze([...s.forwards]),
    hostsfile: s.hostsfile,
    addnHosts: Object.freeze([...s.addnHosts]),
    reservations: Object.freeze(reservations),
    logLevel: s.logLevel,
    bridgeMac: s.bridgeMac ? normalizeMac(s.bridgeMac) : undefined,
    cacheSize: s.cacheSize,
    masqueradePorts: Object.freeze([s.masqueradePorts[0], s.masqueradePorts[1]]) as readonly [number, number],
    resolvConf: s.resolvConf,
    dns: s.dns,
    firewall: s.firewall,
    metricsListen,
    allowIpv6Forward: s.allowIpv6Forward,
    conflictProbe: s.conflictProbe,
    searchDomains: Object.freeze((s.searchDomains ?? (s.domain ? [s.domain] : [])).map((d) => d.toLowerCase())),
    routes: Object.freeze(routes),
    guestToHost,
    configFile,
    cacheMaxBytes: s.cacheMaxBytes,
    dnsForwardMax: s.dnsForwardMax,
    dnsMaxPendingPerClient: s.dnsMaxPendingPerClient,
    dnsMaxTcpPerClient: s.dnsMaxTcpPerClient,
    metricsAllowRemote: s.metricsAllowRemote,
    dhcpMaxDeclinedPercent: s.dhcpMaxDeclinedPercent,
    dhcpProbeTimeoutMs: s.dhcpProbeTimeoutMs,
    dhcpScript: s.dhcpScript,
    dhcpScriptTimeoutSeconds: s.dhcpScriptTimeout,
    records: Object.freeze(parsedRecords.specs.map((r) => Object.freeze(r))),
    localTtl: s.localTtl,
    ipv6, // issue 14
  });
}

/** Why `file` cannot be run as natd's lease script, or undefined when it can. */
function executableProblem(file: string): string | undefined {
  try {
    if (!statSync(file).isFile()) return 'is not a regular file';
    accessSync(file, fsConstants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not executable' : `cannot be used (${code ?? 'error'})`;
  }
}

const HOST_SERVICE_RE = /^(?:(tcp|udp):)?(\d{1,5})(?:-(\d{1,5}))?$/;

/**
 * `--guest-to-host`: the host services guests may reach (the input chain rejects the rest, as firewalld's libvirt
 * zone does). Each entry is [tcp|udp:]PORT[-PORT] (tcp when no protocol), or 'all' alone to reject nothing.
 */
function parseGuestToHost(entries: readonly string[], problems: string[]): readonly HostService[] | 'all' {
  if (entries.includes('all')) {
    if (entries.length > 1) problems.push(`guestToHost: 'all' cannot be combined with ports (got "${entries.join(',')}")`);
    return 'all';
  }
  const services: HostService[] = [];
  entries.forEach((text, i) => {
    const m = HOST_SERVICE_RE.exec(text.trim().toLowerCase());
    const first = Number(m?.[2]);
    const last = m?.[3] === undefined ? first : Number(m[3]);
    if (!m || first < 1 || last > 65535 || first > last) {
      problems.push(`guestToHost.${i}: expected [tcp|udp:]PORT[-PORT] with ports 1-65535, or all (got "${text}")`);
      return;
    }
    services.push(Object.freeze({ protocol: (m[1] ?? 'tcp') as 'tcp' | 'udp', ports: Object.freeze([first, last]) as readonly [number, number] }));
  });
  return Object.freeze(services);
}

/** Default dynamic range for a subnet: skip the first 9 hosts (gateway, static guests), end before broadcast. */
export function defaultDhcpRange(subnet: Subnet, gateway: number): { start: number; end: number } {
  const size = subnet.broadcast - subnet.network - 1;
  const skip = size > 20 ? 9 : 1;
  let start = subnet.network + 1 + skip;
  const end = subnet.broadcast - 1;
  if (start === gateway) start++;
  return { start, end };
}

export function describeRange(range: { start: number; end: number }): string {
  return `${formatIpv4(range.start)}-${formatIpv4(range.end)}`;
}
